//! The rule engine of boot-copy: Elastic's detection-rule files with single-event EQL queries,
//! evaluated natively with Elasticsearch's semantics (`docs/SEMANTICS.md`).
//!
//! The path of an event: a [`Document`] (the event as a flat map of dotted ECS field names) →
//! [`RuleSet::evaluate`] (each [`Rule`]'s [`CompiledQuery`], then its [`Exceptions`]) → the
//! matching rules, from which the host builds its alerts. Rules come from rule files
//! ([`load_rules`], [`parse_rule`], the [`bundled`] ones) or, with every problem listed, from
//! [`load_ruleset`]; [`RuleSet::prefilter`] names the process names the kernel must report for
//! them. Queries are compiled once ([`compile`]); evaluating one allocates nothing.
//!
//! One deliberate difference from Elasticsearch: values longer than 1024 characters are matched
//! in full. Elasticsearch's keyword mappings (`ignore_above: 1024`) leave such values unindexed,
//! so there they never match; padding an argument past that length does not hide it here.
//!
//! ```
//! use boot_copy_rules::{Document, RuleSet, bundled};
//!
//! let rules = RuleSet::from_rules(bundled());
//! let event = serde_json::json!({
//!     "event": {"category": ["process"], "type": ["start"], "action": "exec"},
//!     "host": {"os": {"type": "linux"}},
//!     "process": {"name": "cp", "args": ["cp", "x", "/boot/y"],
//!                 "parent": {"name": "bash", "executable": "/usr/bin/bash"}},
//! });
//! let doc = Document::from_json(&event);
//! let names: Vec<&str> = rules.evaluate(&doc).map(|rule| rule.name.as_str()).collect();
//! assert_eq!(names, ["Boot File Copy"]);
//! ```
#![deny(missing_docs)]

mod check;
mod document;
mod eql;
mod exceptions;
mod file_dirs;
mod index;
mod prefilter;
mod rulefile;
mod ruleset;

pub use check::{Bundled, Problem, check, check_with, load_ruleset, load_ruleset_with};
pub use document::{Document, FieldHasher, FieldSet, Value};
pub use eql::{CompiledQuery, EqlError, ast, compile};
pub use exceptions::{Entry, EntryValue, ExceptionError, ExceptionItem, Exceptions, Operator};
pub use file_dirs::file_dirs;
pub use prefilter::{AnalysisGate, Prefilter};
pub use rulefile::{
    BUNDLED_BOOT_FILE_COPY, BUNDLED_BOOT_FILE_COPY_STRICT, BUNDLED_BOOT_FILE_WRITE, Rule,
    RuleError, Subtechnique, Tactic, Technique, Threat, bundled, bundled_file, bundled_strict,
    load_rules, parse_rule,
};
pub use ruleset::RuleSet;

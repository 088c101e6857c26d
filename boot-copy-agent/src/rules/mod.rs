//! Detection rules: Elastic's single-event EQL rule files, evaluated natively with
//! Elasticsearch's semantics.
//!
//! The path of an event through this module: [`document::Document`] (the event as a flat field
//! map) → [`ruleset::RuleSet::evaluate`] (each [`rulefile::Rule`]'s compiled [`eql`] query, then
//! its [`exceptions`]) → the agent's `alert` module (the alert document). [`prefilter`] derives from the rules
//! which process names the kernel needs to report; [`replay`] runs recorded events through the
//! rules; [`check`] validates and lists rules for the CLI.
//!
//! One deliberate difference from Elasticsearch: values longer than 1024 characters are matched
//! in full. Elasticsearch's keyword mappings (`ignore_above: 1024`) leave such values unindexed,
//! so there they never match; padding an argument past that length does not hide it here.

pub mod check;
pub mod document;
pub mod eql;
pub mod exceptions;
pub mod prefilter;
pub mod replay;
pub mod rulefile;
pub mod ruleset;

pub use document::{Document, FieldSet, Value};
pub use eql::{CompiledQuery, EqlError};
pub use exceptions::Exceptions;
pub use prefilter::Prefilter;
pub use rulefile::{Rule, RuleError, Threat, bundled, bundled_strict, load_rules};
pub use ruleset::RuleSet;

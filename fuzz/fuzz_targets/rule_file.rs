//! Arbitrary text as a detection-rules TOML file: the loader must accept it or list problems,
//! never panic; a rule it accepts must evaluate without panicking.
#![no_main]

use boot_copy_rules::{Document, parse_rule};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let Ok(rule) = parse_rule(text, Path::new("fuzz.toml")) else {
        return;
    };
    let mut doc = Document::new();
    doc.insert("event.category", vec!["process"]);
    doc.insert("process.name", "cp");
    doc.insert("process.args", vec!["cp", "x", "/boot/y"]);
    let _ = rule.query.matches(&doc);
    let _ = rule.severity_score();
});

//! Arbitrary bytes as replay input (normally one NDJSON line): decoding, evaluating the rules and
//! writing alerts must never panic; bad lines are counted as skipped.
#![no_main]

use boot_copy_agent::rules::replay;
use boot_copy_rules::{RuleSet, bundled, parse_rule};
use libfuzzer_sys::fuzz_target;
use std::{io, path::Path, sync::LazyLock};

/// The bundled rule, plus one that alerts on every process event so that alert building runs.
static RULES: LazyLock<RuleSet> = LazyLock::new(|| {
    let mut rules = bundled();
    let every = r#"
[rule]
rule_id = "00000000-0000-4000-8000-00000000f022"
name = "Every process event"
description = "Fuzzing: alerts on every process event."
severity = "low"
risk_score = 21
language = "eql"
type = "eql"
query = 'process where true'
"#;
    rules.push(parse_rule(every, Path::new("fuzz.toml")).expect("valid rule"));
    RuleSet::from_rules(rules)
});

fuzz_target!(|input: &[u8]| {
    let stats = replay::replay_with_diagnostics(input, &RULES, io::sink(), io::sink())
        .expect("writing to a sink cannot fail");
    assert!(stats.skipped <= stats.lines);
    if let Ok(line) = std::str::from_utf8(input) {
        let _ = replay::decode_line(line);
    }
});

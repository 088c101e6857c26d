//! Rule evaluation throughput on one core (run by `cargo xtask bench`): the bundled rule, a
//! newer-style rule and Elastic's whole vendored Linux process-rule library over Defend-shaped
//! events, evaluator alone (documents built beforehand) and with JSON decoding included. Prints
//! one JSON object.
use boot_copy_rules::{Document, RuleSet, bundled, load_rules};
use std::{hint::black_box, path::Path, time::Instant};

const EVENTS: &str = include_str!("../../tests/data/defend_boot_copy.ndjson");
const ROUNDS: usize = 200_000;

fn main() {
    let lines: Vec<&str> = EVENTS.lines().filter(|l| !l.trim().is_empty()).collect();
    let newer = load_rules(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/newer_style.toml"
    )))
    .expect("newer-style test rule loads");
    let library = load_rules(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../boot-copy-rules/tests/data/detection-rules"
    )))
    .expect("the vendored rule library loads");
    let sets = [
        ("boot_file_copy_v2", RuleSet::from_rules(bundled())),
        ("newer_style", RuleSet::from_rules(newer)),
        ("library", RuleSet::from_rules(library)),
    ];
    let mut results = serde_json::Map::new();
    for (name, rules) in &sets {
        results.insert(
            format!("{name}_eval_events_per_s"),
            evaluator_only(rules, &lines).into(),
        );
        results.insert(
            format!("{name}_with_json_events_per_s"),
            with_json(rules, &lines).into(),
        );
    }
    println!("{}", serde_json::Value::Object(results));
}

fn evaluator_only(rules: &RuleSet, lines: &[&str]) -> f64 {
    let docs: Vec<Document> = lines
        .iter()
        .map(|l| Document::from_json(&serde_json::from_str(l).unwrap()))
        .collect();
    let start = Instant::now();
    let mut alerts = 0usize;
    for i in 0..ROUNDS {
        alerts += rules.evaluate(black_box(&docs[i % docs.len()])).count();
    }
    black_box(alerts);
    ROUNDS as f64 / start.elapsed().as_secs_f64()
}

fn with_json(rules: &RuleSet, lines: &[&str]) -> f64 {
    let rounds = ROUNDS / 10;
    let start = Instant::now();
    let mut alerts = 0usize;
    for i in 0..rounds {
        let value: serde_json::Value =
            serde_json::from_str(black_box(lines[i % lines.len()])).unwrap();
        alerts += rules.evaluate(&Document::from_json(&value)).count();
    }
    black_box(alerts);
    rounds as f64 / start.elapsed().as_secs_f64()
}

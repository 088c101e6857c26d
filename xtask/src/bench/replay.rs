//! Rule evaluation throughput on one core (issue 7, 3): the `replay_bench` example, run once per
//! block; each figure is the median of the blocks with their range.
use super::{
    BLOCKS, Outcome,
    stats::{Summary, num, verdict},
};
use crate::workspace_root;
use anyhow::{Context as _, bail};
use serde_json::{Map, Value};
use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
};

/// Issue 3: events per second for version 2, evaluator alone.
const V2_TARGET: f64 = 1e6;
/// Issue 19: events per second per core with every rule of the library, as `replay` runs them.
const LIBRARY_TARGET: f64 = 5e5;

pub fn run() -> anyhow::Result<Outcome> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for block in 0..BLOCKS {
        let out = Command::new(&cargo)
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "boot-copy-agent",
            ])
            .args(["--example", "replay_bench"])
            .current_dir(workspace_root())
            .stderr(Stdio::inherit())
            .output()
            .context("running the replay benchmark")?;
        if !out.status.success() {
            bail!("replay benchmark failed: {}", out.status);
        }
        let result: Value = serde_json::from_slice(&out.stdout)?;
        for (k, v) in result.as_object().into_iter().flatten() {
            samples
                .entry(k.clone())
                .or_default()
                .push(v.as_f64().unwrap_or(f64::NAN));
        }
        eprintln!("replay block {block} done");
    }
    let summaries: BTreeMap<&str, Summary> = samples
        .iter()
        .map(|(k, v)| (k.as_str(), Summary::of(v)))
        .collect();
    let get = |k: &str| summaries.get(k).copied().unwrap_or(Summary::of(&[]));
    let row = |label: &str, set: &str| {
        format!(
            "| {label} | {} | {} |\n",
            get(&format!("{set}_eval_events_per_s")).show(0),
            get(&format!("{set}_with_json_events_per_s")).show(0)
        )
    };
    let v2 = get("boot_file_copy_v2_eval_events_per_s").median;
    let library = get("library_with_json_events_per_s").median;
    let library_eval = get("library_eval_events_per_s").median;
    let markdown = format!(
        "## Rule evaluation (`cargo xtask bench replay`)\n\n\
         One core, the `replay_bench` example (15 Defend-shaped events evaluated round-robin), {BLOCKS} runs; events/s, median (min–max).\n\n\
         | rule set | evaluator alone | with JSON decoding and flattening |\n|---|---|---|\n{}{}{}\n\
         Targets: ≥ 1 M events/s for version 2, evaluator alone: {} ({} M); \
         ≥ 500 k events/s with the whole library as `replay` runs it (JSON included): {} ({} k; evaluator alone {} k).\n",
        row("Boot File Copy v2 (bundled)", "boot_file_copy_v2"),
        row(
            "newer-style rule (`tests/data/newer_style.toml`)",
            "newer_style"
        ),
        row(
            "Elastic's Linux process-rule library (`boot-copy-rules/tests/data/detection-rules`)",
            "library"
        ),
        verdict(v2 >= V2_TARGET),
        num(v2 / 1e6, 2),
        verdict(library >= LIBRARY_TARGET),
        num(library / 1e3, 0),
        num(library_eval / 1e3, 0),
    );
    let result: Map<String, Value> = summaries
        .iter()
        .map(|(k, s)| (k.to_string(), s.json()))
        .collect();
    Ok(Outcome {
        name: "replay",
        result: Value::Object(result),
        markdown,
    })
}

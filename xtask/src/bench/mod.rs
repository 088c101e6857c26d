//! `cargo xtask bench [NAME...]`: benchmarks whose figures are ratios or latencies measured in
//! one run, with the variants in alternating blocks, so machine noise hits every variant alike.
//! Each benchmark writes `target/bench/NAME.json`; the run also writes
//! `target/bench/summary.md` (the tables BENCHMARKS.md quotes, with the command and date).
mod agent;
mod alertlog;
mod alerts;
mod auditd;
mod before;
mod bigargv;
mod boot_writes;
mod bpf;
mod cproject;
mod exec;
mod files;
mod floor;
mod footprint;
mod paced;
mod procs;
mod replay;
mod stats;
mod storm;
mod trigger;

use crate::{cargo, setup, workspace_root};
use anyhow::bail;
use serde_json::{Value, json};
use std::{fs, path::PathBuf, process::Command, time::SystemTime};

/// Blocks per variant in every comparison.
pub const BLOCKS: usize = 5;
const NAMES: [&str; 8] = [
    "exec",
    "paced",
    "storm",
    "alerts",
    "replay",
    "footprint",
    "bigargv",
    "files",
];

/// One benchmark's outcome: the machine-readable result and its section of the summary.
pub struct Outcome {
    pub name: &'static str,
    pub result: Value,
    pub markdown: String,
}

/// Runs the named benchmarks, or all of them.
pub fn run(names: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = names.iter().find(|n| !NAMES.contains(&n.as_str())) {
        bail!(
            "unknown benchmark {unknown}: choose from {}",
            NAMES.join(", ")
        );
    }
    let wants = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let live = [
        "exec",
        "paced",
        "storm",
        "alerts",
        "footprint",
        "bigargv",
        "files",
    ];
    if live.iter().any(|n| wants(n)) {
        setup::require_root(
            "the exec, paced, storm, alert, footprint, bigargv and files benchmarks",
        )?;
        cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    }
    if wants("exec") {
        before::build()?;
    }
    let header = Header::now(names);
    let mut outcomes = Vec::new();
    for name in NAMES.iter().filter(|n| wants(n)) {
        let outcome = match *name {
            "replay" => replay::run()?,
            "exec" => exec::run()?,
            "paced" => paced::run()?,
            "storm" => storm::run()?,
            "alerts" => alerts::run()?,
            "bigargv" => bigargv::run()?,
            "files" => files::run()?,
            _ => footprint::run()?,
        };
        write_result(&header, &outcome)?;
        println!("{}", outcome.markdown);
        outcomes.push(outcome);
    }
    write_summary(&header, &outcomes)
}

/// What every result carries: the command, when, on what, and how loaded the machine was.
struct Header {
    command: String,
    started: SystemTime,
    machine: String,
    load_before: String,
}

impl Header {
    fn now(names: &[String]) -> Self {
        let mut command = "cargo xtask bench".to_owned();
        for n in names {
            command.push(' ');
            command.push_str(n);
        }
        Self {
            command,
            started: SystemTime::now(),
            machine: machine(),
            load_before: loadavg(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "command": self.command,
            "started": humantime::format_rfc3339_seconds(self.started).to_string(),
            "machine": self.machine,
            "load_average_before": self.load_before,
            "load_average_after": loadavg(),
        })
    }
}

fn write_result(header: &Header, outcome: &Outcome) -> anyhow::Result<()> {
    let mut result = outcome.result.clone();
    result["run"] = header.json();
    let path = bench_dir()?.join(format!("{}.json", outcome.name));
    fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn write_summary(header: &Header, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let mut md = format!(
        "Command: `{}`, started {} UTC.\nMachine: {}. Load average before {}, after {}.\n",
        header.command,
        humantime::format_rfc3339_seconds(header.started)
            .to_string()
            .trim_end_matches('Z')
            .replace('T', " "),
        header.machine,
        header.load_before,
        loadavg()
    );
    for o in outcomes {
        md.push('\n');
        md.push_str(&o.markdown);
    }
    let path = bench_dir()?.join("summary.md");
    fs::write(&path, &md)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `target/bench`, created if missing.
pub fn bench_dir() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// CPU count and model, memory, kernel.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or(0, |kib| kib.div_ceil(1 << 20));
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} vCPUs ({model}), {mem_gib} GiB, kernel {kernel}")
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

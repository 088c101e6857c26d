//! A write storm into /boot (issue 16): one shell creating `ACTS` empty files (one `openat`
//! each) in a tmpfs /boot of a private mount namespace, the agent with its defaults running in
//! that namespace, against the same storm with no agent, in alternating rounds. Every act must
//! raise exactly one Boot File Write alert or be in the kernel's count of dropped file records.
use super::{
    BLOCKS,
    agent::{self, Agent},
    stats::{Summary, num, verdict},
};
use anyhow::Context as _;
use boot_copy_harness::{BootKind, BootNamespace, FILE_WRITE};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    fs,
    time::{Duration, Instant},
};

const ACTS: usize = 5_000;
/// Markers written after the storm, until one alerts (the first may find the ring still full).
const MARKERS_MAX: usize = 20;

/// What one round with the agent saw.
struct Round {
    acts_per_s: f64,
    alerts: usize,
    /// Distinct storm files alerted.
    alerted: usize,
    /// The most alerts any one storm file raised.
    most_per_act: usize,
    /// `file_ringbuf_drops`, less the markers that did not alert.
    drops: usize,
    /// Agent CPU over the storm and its drain, ns.
    cpu_ns: u64,
}

pub fn run() -> anyhow::Result<(Value, String)> {
    let mut baseline = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..BLOCKS {
        baseline.push(storm_alone(round)?);
        let r = storm_watched(round)?;
        eprintln!(
            "boot writes round {round}: {:.0} acts/s alone, {:.0} with the agent; {} alerts, {} dropped",
            baseline[round], r.acts_per_s, r.alerts, r.drops
        );
        rounds.push(r);
    }
    Ok(report(&baseline, &rounds))
}

/// The storm's script: ACTS files created by shell redirections (no exec per act).
fn script(round: usize) -> String {
    format!("i=0; while [ $i -lt {ACTS} ]; do : > /boot/bs-{round}-$i; i=$((i+1)); done")
}

/// Acts per second with no agent.
fn storm_alone(round: usize) -> anyhow::Result<f64> {
    let ns = BootNamespace::new(BootKind::Tmpfs)?;
    let start = Instant::now();
    ns.sh(&script(round))?;
    Ok(ACTS as f64 / start.elapsed().as_secs_f64())
}

fn storm_watched(round: usize) -> anyhow::Result<Round> {
    let ns = BootNamespace::new(BootKind::Tmpfs)?;
    let agent = Agent::start(agent::Options {
        namespace_of: Some(ns.pid()),
        ..agent::Options::default()
    })?;
    let cpu0 = agent.cpu_ns()?;
    let start = Instant::now();
    ns.sh(&script(round))?;
    let acts_per_s = ACTS as f64 / start.elapsed().as_secs_f64();
    let markers = drain(&ns, &agent)?;
    let cpu_ns = agent.cpu_ns()? - cpu0;
    // Read before the stop, which removes the agent's directory: the log is written in order,
    // so the storm's alerts are all in once the marker's is.
    let text = fs::read_to_string(&agent.log)
        .with_context(|| format!("reading {}", agent.log.display()))?;
    let counters = agent.stop()?;
    let mut per_file: HashMap<String, usize> = HashMap::new();
    let mut markers_alerted = 0;
    for record in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if record["rule"]["id"] != FILE_WRITE {
            continue;
        }
        let Some(path) = record["file"]["path"].as_str() else {
            continue;
        };
        if path.starts_with(&format!("/boot/bs-{round}-")) {
            *per_file.entry(path.to_owned()).or_default() += 1;
        } else if path.starts_with("/boot/bs-marker-") {
            markers_alerted += 1;
        }
    }
    let dropped = agent::counter(&counters, "file_ringbuf_drops")? as usize;
    Ok(Round {
        acts_per_s,
        alerts: per_file.values().sum(),
        alerted: per_file.len(),
        most_per_act: per_file.values().copied().max().unwrap_or(0),
        drops: dropped.saturating_sub(markers - markers_alerted),
        cpu_ns,
    })
}

/// Writes markers until one alerts: the agent has then handled every record of the storm.
/// Returns how many were written.
fn drain(ns: &BootNamespace, agent: &Agent) -> anyhow::Result<usize> {
    for n in 1..=MARKERS_MAX {
        let marker = format!("/boot/bs-marker-{n}");
        ns.sh(&format!(": > {marker}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let text = fs::read_to_string(&agent.log).unwrap_or_default();
            if text.contains(&format!("\"path\":\"{marker}\"")) {
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    anyhow::bail!("no marker alerted after the storm ({MARKERS_MAX} written)")
}

fn report(baseline: &[f64], rounds: &[Round]) -> (Value, String) {
    let base = Summary::of(baseline);
    let with = Summary::of(&rounds.iter().map(|r| r.acts_per_s).collect::<Vec<_>>());
    let ratio = with.median / base.median;
    let cpu_us = Summary::of(
        &rounds
            .iter()
            .map(|r| r.cpu_ns as f64 / 1e3 / r.alerts.max(1) as f64)
            .collect::<Vec<_>>(),
    );
    let accounted = rounds.iter().all(|r| r.alerted + r.drops == ACTS);
    let once = rounds.iter().all(|r| r.most_per_act <= 1);
    let mut md = format!(
        "\n### boot_write_storm\n\n{ACTS} files created in a tmpfs /boot by one shell (`: > /boot/f`, one `openat` each), the agent with its defaults in that mount namespace; {BLOCKS} rounds, each the storm alone then with the agent.\n\n| round | acts/s alone | acts/s with the agent | alerts | files alerted | most alerts for one file | file records dropped | alerted + dropped | agent CPU per alert, µs |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for (i, (b, r)) in baseline.iter().zip(rounds).enumerate() {
        md.push_str(&format!(
            "| {i} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            num(*b, 0),
            num(r.acts_per_s, 0),
            r.alerts,
            r.alerted,
            r.most_per_act,
            r.drops,
            r.alerted + r.drops,
            num(r.cpu_ns as f64 / 1e3 / r.alerts.max(1) as f64, 1),
        ));
    }
    md.push_str(&format!(
        "\nThroughput with the agent / alone (medians): {}. Every act alerted or counted as dropped: {}; alerts per act = 1: {}.\n",
        num(ratio, 3),
        verdict(accounted),
        verdict(once),
    ));
    let json = json!({
        "acts": ACTS,
        "acts_per_s_alone": base.json(),
        "acts_per_s_with_agent": with.json(),
        "ratio": ratio,
        "agent_cpu_us_per_alert": cpu_us.json(),
        "rounds": rounds.iter().map(|r| json!({
            "alerts": r.alerts,
            "files_alerted": r.alerted,
            "most_alerts_per_file": r.most_per_act,
            "file_records_dropped": r.drops,
        })).collect::<Vec<_>>(),
        "every_act_accounted": accounted,
        "one_alert_per_act": once,
    });
    (json, md)
}

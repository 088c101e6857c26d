//! Agent CPU at steady exec rates (issue 19), as the Sysmon for Linux performance test runs
//! them: `/bin/true` started at 100, 400, 800 and 1,600 execs/s, with every rule of Elastic's
//! vendored Linux library loaded (the kernel then sends every exec), beside auditd with an
//! execve rule, in alternating blocks. CPU from `schedstat`, as a share of one core and per exec.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent},
    auditd::Auditd,
    stats::{Summary, num, verdict},
};
use anyhow::Context as _;
use serde_json::{Map, Value, json};
use std::{
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

const RATES: [u32; 4] = [100, 400, 800, 1600];
const BLOCK: Duration = Duration::from_secs(4);
/// Long enough for the agent to handle what a block left in its ring.
const DRAIN: Duration = Duration::from_millis(500);
const LIBRARY_DIR: &str = "boot-copy-rules/tests/data/detection-rules";
/// Issue 19: agent CPU at 1,600 execs/s, % of one core.
const PERCENT_TARGET: f64 = 2.0;

#[derive(Clone, Copy)]
enum Peer {
    Agent,
    Auditd,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Agent => "agent_library",
            Peer::Auditd => "auditd",
        }
    }
}

/// One block: execs started, wall seconds, CPU ns of the peer.
struct Block {
    execs: u64,
    secs: f64,
    cpu_ns: u64,
}

pub fn run() -> anyhow::Result<Outcome> {
    let mut result = Map::new();
    let mut md = format!(
        "## Steady exec rates (`cargo xtask bench paced`)\n\n\
         `/bin/true` started at a fixed rate for {} s blocks, {BLOCKS} blocks per peer and rate, \
         alternating: the agent with every rule of `{LIBRARY_DIR}` (every exec sent), and auditd \
         with an execve rule (auditd and kauditd counted). CPU over the block and {} ms after it, \
         from `schedstat`; medians (min–max).\n\n\
         | execs/s asked | achieved | agent, % of a core | agent, µs per exec | auditd, % of a core | auditd, µs per exec |\n\
         |---|---|---|---|---|---|\n",
        BLOCK.as_secs(),
        DRAIN.as_millis()
    );
    let mut at_top = None;
    for rate in RATES {
        let mut blocks: [Vec<Block>; 2] = [Vec::new(), Vec::new()];
        for round in 0..BLOCKS {
            for (i, peer) in [Peer::Agent, Peer::Auditd].into_iter().enumerate() {
                let block = measure(peer, rate)?;
                eprintln!(
                    "paced {rate}/s round {round}: {} {:.0} execs/s, {:.2} ms CPU",
                    peer.name(),
                    block.execs as f64 / block.secs,
                    block.cpu_ns as f64 / 1e6
                );
                blocks[i].push(block);
            }
        }
        let achieved = Summary::of(
            &blocks
                .iter()
                .flatten()
                .map(|b| b.execs as f64 / b.secs)
                .collect::<Vec<_>>(),
        );
        let percent = |b: &[Block]| {
            Summary::of(
                &b.iter()
                    .map(|b| b.cpu_ns as f64 / 1e7 / b.secs)
                    .collect::<Vec<_>>(),
            )
        };
        let per_exec = |b: &[Block]| {
            Summary::of(
                &b.iter()
                    .map(|b| b.cpu_ns as f64 / 1e3 / b.execs.max(1) as f64)
                    .collect::<Vec<_>>(),
            )
        };
        let (agent, audit) = (&blocks[0], &blocks[1]);
        md.push_str(&format!(
            "| {rate} | {} | {} | {} | {} | {} |\n",
            achieved.show(0),
            percent(agent).show(2),
            per_exec(agent).show(1),
            percent(audit).show(2),
            per_exec(audit).show(1),
        ));
        result.insert(
            rate.to_string(),
            json!({
                "achieved_execs_per_s": achieved.json(),
                "agent_library": { "percent_of_core": percent(agent).json(), "us_per_exec": per_exec(agent).json() },
                "auditd": { "percent_of_core": percent(audit).json(), "us_per_exec": per_exec(audit).json() },
            }),
        );
        at_top = Some(percent(agent).median);
    }
    let top = at_top.unwrap_or(f64::NAN);
    md.push_str(&format!(
        "\nTarget: agent ≤ {PERCENT_TARGET} % of one core at {} execs/s: {} ({} %).\n",
        RATES[RATES.len() - 1],
        verdict(top <= PERCENT_TARGET),
        num(top, 2)
    ));
    result.insert("blocks".into(), BLOCKS.into());
    Ok(Outcome {
        name: "paced",
        result: Value::Object(result),
        markdown: md,
    })
}

fn measure(peer: Peer, rate: u32) -> anyhow::Result<Block> {
    match peer {
        Peer::Agent => {
            let agent = Agent::start(agent::Options {
                rules_dir: Some(LIBRARY_DIR),
                ..Default::default()
            })?;
            let cpu0 = agent.cpu_ns()?;
            let (execs, secs) = paced(rate, BLOCK)?;
            thread::sleep(DRAIN);
            let cpu_ns = agent.cpu_ns()? - cpu0;
            agent.stop()?;
            Ok(Block {
                execs,
                secs,
                cpu_ns,
            })
        }
        Peer::Auditd => {
            let peer = Auditd::start()?;
            let cpu0 = peer.cpu_ns()?;
            let (execs, secs) = paced(rate, BLOCK)?;
            thread::sleep(DRAIN);
            let cpu_ns = peer.cpu_ns()?.saturating_sub(cpu0);
            Ok(Block {
                execs,
                secs,
                cpu_ns,
            })
        }
    }
}

/// Starts `/bin/true` every 1/`rate` s for `dur`, reaping children as they end: (execs, wall
/// seconds, until the last child is reaped).
fn paced(rate: u32, dur: Duration) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let total = (f64::from(rate) * dur.as_secs_f64()) as u64;
    let mut running: Vec<Child> = Vec::new();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        running.push(
            Command::new("/bin/true")
                .spawn()
                .context("starting /bin/true")?,
        );
        running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
    for mut child in running {
        child.wait()?;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

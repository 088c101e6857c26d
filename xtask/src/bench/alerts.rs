//! Exec → alert-line latency and agent CPU per alert at a steady, modest rate of triggering
//! execs (20 per second), the everyday case; `storm` is the flood.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent},
    alertlog::Tail,
    procs::ticks_ms,
    stats::{Summary, num, quantile, verdict},
    trigger::Trigger,
};
use anyhow::bail;
use serde_json::json;
use std::{
    thread,
    time::{Duration, Instant},
};

const PER_BLOCK: u64 = 60;
const LATENCY_P99_TARGET_MS: f64 = 50.0;

pub fn run() -> anyhow::Result<Outcome> {
    let agent = Agent::start(agent::Options::default())?;
    let marker = format!("bcalerts{}", std::process::id());
    let mut tail = Tail::from_end(&agent.log, &marker)?;
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut cpu_us = Vec::new();
    for block in 0..BLOCKS {
        let cpu0 = agent.cpu_ticks()?;
        let seen = tail.alerts();
        let mut trigger =
            Trigger::start(1, &format!("{marker}-{block}"), Some(PER_BLOCK), Some(0.05))?;
        while trigger.running()? {
            if !tail.poll()? {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let copies = trigger.finish()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tail.alerts() - seen < copies as usize && Instant::now() < deadline {
            if !tail.poll()? {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let cpu_ms = ticks_ms(agent.cpu_ticks()? - cpu0);
        let got = tail.alerts() - seen;
        if got != copies as usize {
            bail!("block {block}: {got} alerts for {copies} triggering copies");
        }
        let mut lat = tail.latencies_ms[seen..].to_vec();
        lat.sort_by(f64::total_cmp);
        p50.push(quantile(&lat, 0.5));
        p99.push(quantile(&lat, 0.99));
        cpu_us.push(cpu_ms * 1e3 / got as f64);
        eprintln!(
            "alerts block {block}: {got} alerts, p50 {:.1} ms",
            p50[block]
        );
    }
    let mut all = tail.latencies_ms.clone();
    all.sort_by(f64::total_cmp);
    let (s50, s99, scpu) = (Summary::of(&p50), Summary::of(&p99), Summary::of(&cpu_us));
    let pooled = json!({ "p50": quantile(&all, 0.5), "p99": quantile(&all, 0.99), "max": quantile(&all, 1.0) });
    let result = json!({
        "workload": format!("cp into a tmpfs /boot, 20 per second, {PER_BLOCK} per block, one agent (`run`, default rules)"),
        "blocks": BLOCKS,
        "alerts": all.len(),
        "latency_ms_pooled": pooled,
        "latency_ms_p50_per_block": s50.json(),
        "latency_ms_p99_per_block": s99.json(),
        "agent_cpu_us_per_alert_per_block": scpu.json(),
    });
    let markdown = format!(
        "## Exec → alert at 20/s (`cargo xtask bench alerts`)\n\n\
         {n} alerts over {BLOCKS} blocks of {PER_BLOCK}, every one checked against the loop's count.\n\n\
         | measure | pooled | per block, median (min–max) |\n|---|---|---|\n\
         | latency p50, ms | {} | {} |\n| latency p99, ms | {} | {} |\n| latency max, ms | {} | |\n\
         | agent CPU per alert, µs | | {} |\n\n\
         Target: p99 < {LATENCY_P99_TARGET_MS} ms: {}.\n",
        num(quantile(&all, 0.5), 1),
        s50.show(1),
        num(quantile(&all, 0.99), 1),
        s99.show(1),
        num(quantile(&all, 1.0), 1),
        scpu.show(0),
        verdict(quantile(&all, 0.99) < LATENCY_P99_TARGET_MS),
        n = all.len(),
    );
    agent.stop()?;
    Ok(Outcome {
        name: "alerts",
        result,
        markdown,
    })
}

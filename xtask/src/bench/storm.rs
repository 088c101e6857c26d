//! Trigger storm (issue 7, 2): `cp` into a tmpfs `/boot` on two workers as fast as the machine
//! goes. Alerts written against the loops' own count, drops per stage from the agent's final
//! counters, exec → alert latency, agent CPU per alert. If the default ring buffer drops, the
//! benchmark doubles it until a block loses nothing and compares that size too. The alert
//! budget is raised out of reach so that suppression does not mix in.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent, counter},
    alertlog::Tail,
    procs::ticks_ms,
    stats::{Summary, num, quantile, verdict},
    trigger::Trigger,
};
use serde_json::{Map, Value, json};
use std::{
    thread,
    time::{Duration, Instant},
};

const WORKERS: usize = 2;
const STORM: Duration = Duration::from_secs(5);
/// How long alerts may keep arriving after the storm before the block ends.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
const DEFAULT_RING: u32 = 4 << 20;
const LARGEST_RING: u32 = 1 << 30;
/// Loss stages in the agent's counters, in pipeline order.
const STAGES: [&str; 6] = [
    "ringbuf_drops",
    "args_read_failures",
    "decode_errors",
    "suppressed",
    "alert_log_dropped",
    "alert_log_failed",
];

#[derive(Default)]
struct Block {
    copies: u64,
    rate: f64,
    alerts: u64,
    /// Per stage, from the agent's counters.
    drops: Vec<(&'static str, u64)>,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_alert: f64,
}

impl Block {
    /// Ring-buffer drops (none without an agent).
    fn kernel_drops(&self) -> u64 {
        self.drops.first().map_or(0, |(_, n)| *n)
    }

    /// Copies neither alerted on nor counted as dropped by any stage. (Drops may also count
    /// other users' copy-tool execs, so this can only undercount.)
    fn unaccounted(&self) -> u64 {
        let dropped: u64 = self.drops.iter().map(|(_, n)| n).sum();
        self.copies.saturating_sub(self.alerts + dropped)
    }

    fn json(&self) -> Value {
        json!({
            "copies": self.copies, "copies_per_s": self.rate, "alerts": self.alerts,
            "drops": self.drops.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
            "latency_ms": { "p50": self.p50_ms, "p99": self.p99_ms },
            "agent_cpu_us_per_alert": self.cpu_us_per_alert,
        })
    }
}

pub fn run() -> anyhow::Result<Outcome> {
    let marker = format!("bcstorm{}", std::process::id());
    let (zero_ring, search) = search_ring(&marker)?;
    let mut variants: Vec<(String, Option<u32>)> = vec![
        ("baseline".into(), None),
        ("agent".into(), Some(DEFAULT_RING)),
    ];
    if let Some(ring) = zero_ring.filter(|r| *r != DEFAULT_RING) {
        variants.push((format!("agent_ring_{}MiB", ring >> 20), Some(ring)));
    }
    let mut blocks: Vec<Vec<Block>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..BLOCKS {
        for (i, (name, ring)) in variants.iter().enumerate() {
            let b = block(&format!("{marker}r{round}v{i}"), *ring)?;
            eprintln!(
                "storm round {round}: {name} {} copies ({:.0}/s), {} alerts, {} kernel drops",
                b.copies,
                b.rate,
                b.alerts,
                b.kernel_drops()
            );
            blocks[i].push(b);
        }
    }
    Ok(report(&variants, &blocks, zero_ring, &search))
}

/// Every ring size tried, with its block.
type Tried = Vec<(u32, Block)>;

/// Doubles the ring from the default until a block drops nothing in the kernel (or the
/// largest size is reached). The zero-drop size, and every block tried.
fn search_ring(marker: &str) -> anyhow::Result<(Option<u32>, Tried)> {
    let mut tried = Vec::new();
    let mut ring = DEFAULT_RING;
    loop {
        let b = block(&format!("{marker}s{}", ring >> 20), Some(ring))?;
        eprintln!(
            "storm ring {} MiB: {} copies, {} alerts, {} kernel drops",
            ring >> 20,
            b.copies,
            b.alerts,
            b.kernel_drops()
        );
        let zero = b.kernel_drops() == 0;
        tried.push((ring, b));
        if zero {
            return Ok((Some(ring), tried));
        }
        if ring >= LARGEST_RING {
            return Ok((None, tried));
        }
        ring *= 2;
    }
}

/// One storm: without an agent when `ring` is None (the machine's own rate), else under an
/// agent with that ring buffer size.
fn block(marker: &str, ring: Option<u32>) -> anyhow::Result<Block> {
    let Some(ring) = ring else {
        let trigger = Trigger::start(WORKERS, marker, None, None)?;
        let start = Instant::now();
        thread::sleep(STORM);
        trigger.stop()?;
        let copies = trigger.finish()?;
        return Ok(Block {
            copies,
            rate: copies as f64 / start.elapsed().as_secs_f64(),
            ..Block::default()
        });
    };
    let agent = Agent::start(agent::Options {
        ring_bytes: Some(ring),
        ..Default::default()
    })?;
    let mut tail = Tail::from_end(&agent.log, marker)?;
    let cpu0 = agent.cpu_ticks()?;
    let mut trigger = Trigger::start(WORKERS, marker, None, None)?;
    let start = Instant::now();
    while start.elapsed() < STORM {
        if !tail.poll()? {
            thread::sleep(Duration::from_millis(1));
        }
    }
    trigger.stop()?;
    while trigger.running()? {
        tail.poll()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let copies = trigger.finish()?;
    let mut idle = Instant::now();
    while (tail.alerts() as u64) < copies && idle.elapsed() < DRAIN_IDLE {
        if tail.poll()? {
            idle = Instant::now();
        } else {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let cpu_ms = ticks_ms(agent.cpu_ticks()? - cpu0);
    let counters = agent.stop()?;
    let alerts = tail.alerts() as u64;
    let drops = STAGES
        .iter()
        .map(|s| Ok((*s, counter(&counters, s)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut lat = tail.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    Ok(Block {
        copies,
        rate: copies as f64 / secs,
        alerts,
        drops,
        p50_ms: quantile(&lat, 0.5),
        p99_ms: quantile(&lat, 0.99),
        cpu_us_per_alert: cpu_ms * 1e3 / alerts.max(1) as f64,
    })
}

fn report(
    variants: &[(String, Option<u32>)],
    blocks: &[Vec<Block>],
    zero_ring: Option<u32>,
    search: &[(u32, Block)],
) -> Outcome {
    let base_rate = Summary::of(&blocks[0].iter().map(|b| b.rate).collect::<Vec<_>>()).median;
    let mut json_variants = Map::new();
    let mut md = format!(
        "## Trigger storm (`cargo xtask bench storm`)\n\n\
         `cp /etc/hostname /boot/…` on {WORKERS} workers as fast as they go for {} s per block, each in a private mount namespace with a tmpfs `/boot`; \
         agent `run` with default rules, alert budget raised out of reach, alert log on the scratch directory's file system. \
         Ground truth is the loops' own count of copies.\n\n\
         | variant | copies/s median (min–max) | ratio to baseline | alerts / copies, worst block | kernel ring drops, total | other stage drops, total | unaccounted copies, total | latency p50 ms | latency p99 ms | agent CPU µs per alert |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        STORM.as_secs()
    );
    for ((name, ring), bs) in variants.iter().zip(blocks) {
        let of = |f: &dyn Fn(&Block) -> f64| Summary::of(&bs.iter().map(f).collect::<Vec<_>>());
        let rate = of(&|b| b.rate);
        let mut v = json!({
            "ring_buffer_bytes": ring,
            "copies_per_s": rate.json(),
            "ratio_to_baseline": rate.median / base_rate,
        });
        if ring.is_none() {
            md.push_str(&format!(
                "| {name} | {} | 1 | | | | | | | |\n",
                rate.show(0)
            ));
        } else {
            let worst = bs
                .iter()
                .map(|b| b.alerts as f64 / b.copies.max(1) as f64)
                .fold(f64::INFINITY, f64::min);
            let kernel: u64 = bs.iter().map(Block::kernel_drops).sum();
            let other: u64 = bs
                .iter()
                .flat_map(|b| b.drops.iter().skip(1).map(|(_, n)| n))
                .sum();
            let unaccounted: u64 = bs.iter().map(Block::unaccounted).sum();
            let (p50, p99, cpu) = (
                of(&|b| b.p50_ms),
                of(&|b| b.p99_ms),
                of(&|b| b.cpu_us_per_alert),
            );
            v["alerts_over_copies_worst_block"] = worst.into();
            v["kernel_ring_drops_total"] = kernel.into();
            v["other_stage_drops_total"] = other.into();
            v["unaccounted_copies_total"] = unaccounted.into();
            v["latency_ms_p50"] = p50.json();
            v["latency_ms_p99"] = p99.json();
            v["agent_cpu_us_per_alert"] = cpu.json();
            md.push_str(&format!(
                "| {name} | {} | {} | {} | {kernel} | {other} | {unaccounted} | {} | {} | {} |\n",
                rate.show(0),
                num(rate.median / base_rate, 3),
                num(worst, 4),
                p50.show(0),
                p99.show(0),
                cpu.show(0)
            ));
        }
        v["blocks"] = bs.iter().map(Block::json).collect();
        json_variants.insert(name.clone(), v);
    }
    md.push_str(&search_lines(search, zero_ring));
    md.push_str(&targets(&blocks[1]));
    let result = json!({
        "workload": format!("cp into a tmpfs /boot on {WORKERS} workers, {} s blocks, as fast as possible", STORM.as_secs()),
        "blocks": BLOCKS,
        "stages": STAGES,
        "variants": json_variants,
        "ring_search": search.iter().map(|(r, b)| json!({ "ring_buffer_bytes": r, "block": b.json() })).collect::<Vec<_>>(),
        "zero_drop_ring_buffer_bytes": zero_ring,
    });
    Outcome {
        name: "storm",
        result,
        markdown: md,
    }
}

/// Issue 7's storm target, on the default-ring blocks.
fn targets(default_ring: &[Block]) -> String {
    let drops: u64 = default_ring
        .iter()
        .flat_map(|b| b.drops.iter().map(|(_, n)| n))
        .sum();
    let unaccounted: u64 = default_ring.iter().map(Block::unaccounted).sum();
    format!(
        "Targets: zero drops with the default ring: {} ({drops} dropped over {BLOCKS} blocks); \
         otherwise every drop counted: {} ({unaccounted} copies neither alerted on nor counted).\n",
        verdict(drops == 0),
        verdict(unaccounted == 0)
    )
}

fn search_lines(search: &[(u32, Block)], zero_ring: Option<u32>) -> String {
    let tried: Vec<String> = search
        .iter()
        .map(|(r, b)| {
            format!(
                "{} MiB: {} kernel drops of {} copies",
                r >> 20,
                b.kernel_drops(),
                b.copies
            )
        })
        .collect();
    let found = match zero_ring {
        Some(r) if r == DEFAULT_RING => "the default ring (4 MiB) dropped nothing".to_owned(),
        Some(r) => format!(
            "{} MiB is the first size that dropped nothing in a {}-s storm",
            r >> 20,
            STORM.as_secs()
        ),
        None => format!(
            "no size up to {} MiB reached zero drops",
            LARGEST_RING >> 20
        ),
    };
    format!(
        "\nRing size search (one block each, before the comparison): {}; {found}. \
         A ring only absorbs a backlog: a storm longer than the agent can keep up with fills any size eventually, so the zero-drop size holds for this storm length.\n",
        tried.join("; ")
    )
}

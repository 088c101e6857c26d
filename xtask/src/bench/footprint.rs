//! Agent footprint (issue 7, 4): time from start to `READY=1`, memory at steady state, and the
//! cost of seeding the process table, in alternating blocks without and with 10,000 extra idle
//! processes running. Steady state: after an exec storm and a few alerts.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent, Memory},
    exec::storm,
    procs::Crowd,
    stats::{Summary, num, verdict},
    trigger::Trigger,
};
use anyhow::bail;
use serde_json::{Map, json};
use std::{thread, time::Duration};

const CROWD: usize = 10_000;
const RSS_TARGET_KIB: f64 = 20.0 * 1024.0;
const READY_TARGET_MS: f64 = 1000.0;

struct Block {
    ready_ms: f64,
    seeded: f64,
    memory: Memory,
}

pub fn run() -> anyhow::Result<Outcome> {
    let variants = [("plain", 0), ("crowd_10000", CROWD)];
    let mut blocks: Vec<Vec<Block>> = vec![Vec::new(), Vec::new()];
    for round in 0..BLOCKS {
        for (i, (name, extra)) in variants.iter().enumerate() {
            let b = block(*extra, &format!("bcfoot{}r{round}", std::process::id()))?;
            eprintln!(
                "footprint round {round}: {name} READY {:.0} ms, seeded {}, RSS {} KiB",
                b.ready_ms, b.seeded, b.memory.rss
            );
            blocks[i].push(b);
        }
    }
    Ok(report(&variants, &blocks))
}

fn block(extra: usize, marker: &str) -> anyhow::Result<Block> {
    let crowd = Crowd::spawn(extra)?;
    if crowd.len() != extra {
        bail!("spawned {} of {extra} processes", crowd.len());
    }
    let mut agent = Agent::start(agent::Options::default())?;
    let seeded = agent.start_record()?["boot_copy"]["seeded_processes"]
        .as_f64()
        .unwrap_or(f64::NAN);
    storm(1, Duration::from_secs(2));
    Trigger::start(1, marker, Some(20), None)?.finish()?;
    thread::sleep(Duration::from_secs(1));
    let memory = agent.memory()?;
    let ready = agent.ready_after;
    agent.stop()?;
    drop(crowd);
    Ok(Block {
        ready_ms: ready.as_secs_f64() * 1e3,
        seeded,
        memory,
    })
}

fn report(variants: &[(&str, usize)], blocks: &[Vec<Block>]) -> Outcome {
    let of = |i: usize, f: &dyn Fn(&Block) -> f64| {
        Summary::of(&blocks[i].iter().map(f).collect::<Vec<_>>())
    };
    let mut json_variants = Map::new();
    let mut md = format!(
        "## Agent footprint (`cargo xtask bench footprint`)\n\n\
         Agent `run` (release, default rules) started {BLOCKS} times without and {BLOCKS} times with {} extra idle processes, alternating. \
         READY: from spawning the process to its `READY=1` on `$NOTIFY_SOCKET`. Memory after a 2 s exec storm and 20 alerts.\n\n\
         | variant | start → READY, ms | processes seeded | VmRSS, MiB | of which anonymous / BPF ring mapping / binary and libraries, medians | VmHWM, MiB |\n|---|---|---|---|---|---|\n",
        num(CROWD as f64, 0)
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let mib = |f: fn(&Memory) -> f64| of(i, &|b| f(&b.memory) / 1024.0);
        let (ready, seeded) = (of(i, &|b| b.ready_ms), of(i, &|b| b.seeded));
        let (rss, hwm) = (mib(|m| m.rss), mib(|m| m.hwm));
        let (anon, maps, other) = (mib(|m| m.anon), mib(|m| m.bpf_maps), mib(|m| m.other));
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} / {} / {} | {} |\n",
            ready.show(0),
            seeded.show(0),
            rss.show(1),
            num(anon.median, 1),
            num(maps.median, 1),
            num(other.median, 1),
            hwm.show(1)
        ));
        json_variants.insert(
            name.to_string(),
            json!({
                "ready_ms": ready.json(), "seeded_processes": seeded.json(),
                "vm_rss_mib": rss.json(), "vm_hwm_mib": hwm.json(),
                "rss_anon_mib": anon.json(), "rss_bpf_map_mappings_mib": maps.json(), "rss_binary_and_libraries_mib": other.json(),
            }),
        );
    }
    let seed_ms = of(1, &|b| b.ready_ms).median - of(0, &|b| b.ready_ms).median;
    let rss = of(0, &|b| b.memory.rss)
        .median
        .max(of(1, &|b| b.memory.rss).median);
    let ring = of(0, &|b| b.memory.bpf_maps).median;
    let ready = of(0, &|b| b.ready_ms).median;
    md.push_str(&format!(
        "\nSeeding {} more processes adds {} ms to READY (difference of medians).\n\
         Targets: RSS ≤ 20 MiB: {} ({} MiB, larger variant; {} MiB of it the ring buffer's mapping); READY within 1 s: {} ({} ms, without the extra processes).\n",
        num(CROWD as f64, 0),
        num(seed_ms, 0),
        verdict(rss <= RSS_TARGET_KIB),
        num(rss / 1024.0, 1),
        num(ring / 1024.0, 1),
        verdict(ready <= READY_TARGET_MS),
        num(ready, 0)
    ));
    let result = json!({
        "blocks": BLOCKS,
        "extra_processes": CROWD,
        "variants": json_variants,
        "seeding_ms_for_extra_processes": seed_ms,
    });
    Outcome {
        name: "footprint",
        result,
        markdown: md,
    }
}

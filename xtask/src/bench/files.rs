//! File-operation overhead outside the watched trees (issue 16): a file storm in /tmp (create,
//! write 4 KiB, close, unlink, on 2 workers) and a real build (`make -j2` of a generated C
//! project). Variants in alternating blocks: no agent, the agent as shipped (its file program on
//! every syscall exit), and auditd with the one-line rule for writes into /boot (`-w /boot -p
//! wa`). The file program's cost comes from BPF run-time statistics. First, a write storm into
//! /boot (`boot_writes`): every act alerted once or counted as dropped.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent},
    auditd::{Auditd, Rule},
    boot_writes,
    bpf::{self, AgentPrograms, Runs, StatsOn},
    cproject::CProject,
    procs::ticks_ms,
    stats::{Summary, num, verdict},
};
use anyhow::Context as _;
use serde_json::{Map, Value, json};
use std::{
    fs,
    io::Write as _,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

const BLOCK: Duration = Duration::from_secs(3);
const WORKERS: usize = 2;
/// System calls per storm iteration: openat, write, close, unlink.
const CALLS_PER_ITERATION: u64 = 4;
/// Issue 16 targets.
const RATIO_TARGET: f64 = 0.98;
const NS_PER_OPERATION_TARGET: f64 = 150.0;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Baseline,
    Agent,
    Auditd,
}

const VARIANTS: [(&str, Variant); 3] = [
    ("baseline", Variant::Baseline),
    ("agent", Variant::Agent),
    ("auditd_boot_watch", Variant::Auditd),
];

enum Workload {
    Storm,
    Build(CProject),
}

/// What one block measured.
#[derive(Default)]
struct Block {
    throughput: f64,
    /// Storm iterations (each CALLS_PER_ITERATION file system calls).
    iterations: Option<u64>,
    /// CPU of the agent, or of auditd and kauditd, during the block.
    cpu_ms: Option<f64>,
    /// The file program's runs and run time during the block.
    file_program: Option<Runs>,
}

pub fn run() -> anyhow::Result<Outcome> {
    let _stats = StatsOn::enable()?;
    let mut result = Map::new();
    let mut markdown = String::from("## File-operation overhead (`cargo xtask bench files`)\n");
    let (json, md) = boot_writes::run()?;
    result.insert("boot_write_storm".into(), json);
    markdown.push_str(&md);
    for (key, workload) in [
        ("storm_2_workers", Workload::Storm),
        ("build", Workload::Build(CProject::generate()?)),
    ] {
        let blocks = alternate(&workload)?;
        let (json, md) = report(key, &workload, &blocks);
        result.insert(key.into(), json);
        markdown.push_str(&md);
    }
    result.insert("blocks".into(), BLOCKS.into());
    Ok(Outcome {
        name: "files",
        result: Value::Object(result),
        markdown,
    })
}

/// BLOCKS rounds of every variant in turn; blocks[variant][round].
fn alternate(workload: &Workload) -> anyhow::Result<Vec<Vec<Block>>> {
    let mut blocks: Vec<Vec<Block>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    for round in 0..BLOCKS {
        for (i, (name, variant)) in VARIANTS.iter().enumerate() {
            if let Workload::Build(project) = workload {
                project.clean()?;
            }
            let block = measure(workload, *variant)?;
            eprintln!("files round {round}: {name} {:.2}", block.throughput);
            blocks[i].push(block);
        }
    }
    Ok(blocks)
}

/// Throughput (iterations/s or builds/s) and the storm's iterations.
fn workload_run(workload: &Workload) -> anyhow::Result<(f64, Option<u64>)> {
    match workload {
        Workload::Storm => {
            let (n, secs) = storm()?;
            Ok((n as f64 / secs, Some(n)))
        }
        Workload::Build(project) => Ok((1.0 / project.build()?, None)),
    }
}

fn measure(workload: &Workload, variant: Variant) -> anyhow::Result<Block> {
    match variant {
        Variant::Baseline => {
            let (throughput, iterations) = workload_run(workload)?;
            Ok(Block {
                throughput,
                iterations,
                ..Block::default()
            })
        }
        Variant::Agent => {
            let agent = Agent::start(agent::Options::default())?;
            let progs = AgentPrograms::of(agent.pid())?;
            let (runs0, cpu0) = (progs.snapshot()?, agent.cpu_ticks()?);
            let (throughput, iterations) = workload_run(workload)?;
            let (runs1, cpu1) = (progs.snapshot()?, agent.cpu_ticks()?);
            agent.stop()?;
            let file = bpf::program(&bpf::deltas(&runs0, &runs1), "file");
            anyhow::ensure!(file.count > 0, "the agent's file program did not run");
            Ok(Block {
                throughput,
                iterations,
                cpu_ms: Some(ticks_ms(cpu1 - cpu0)),
                file_program: Some(file),
            })
        }
        Variant::Auditd => {
            let peer = Auditd::with(Rule::BOOT_WRITES)?;
            let cpu0 = peer.cpu_ticks()?;
            let (throughput, iterations) = workload_run(workload)?;
            let cpu1 = peer.cpu_ticks()?;
            Ok(Block {
                throughput,
                iterations,
                cpu_ms: Some(ticks_ms(cpu1.saturating_sub(cpu0))),
                file_program: None,
            })
        }
    }
}

/// WORKERS threads creating, writing, closing and unlinking files in /tmp for BLOCK:
/// (iterations, seconds).
fn storm() -> anyhow::Result<(u64, f64)> {
    let dir = std::env::temp_dir().join(format!("bcfiles{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let start = Instant::now();
    let counts = thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let path: PathBuf = dir.join(format!("f{w}"));
                s.spawn(move || -> std::io::Result<u64> {
                    let block = [7u8; 4096];
                    let mut n = 0u64;
                    while start.elapsed() < BLOCK {
                        let mut f = fs::File::create(&path)?;
                        f.write_all(&block)?;
                        drop(f);
                        fs::remove_file(&path)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)))
            .collect::<std::io::Result<Vec<u64>>>()
    });
    let secs = start.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&dir);
    Ok((counts.context("the file storm")?.iter().sum(), secs))
}

fn report(key: &str, workload: &Workload, blocks: &[Vec<Block>]) -> (Value, String) {
    let of = |b: &[Block], f: &dyn Fn(&Block) -> Option<f64>| {
        Summary::of(&b.iter().filter_map(f).collect::<Vec<_>>())
    };
    let storm = matches!(workload, Workload::Storm);
    let (what, unit) = match workload {
        Workload::Storm => (
            format!(
                "create, write 4 KiB, close, unlink in /tmp on {WORKERS} workers, {} s blocks",
                BLOCK.as_secs()
            ),
            "iterations/s",
        ),
        Workload::Build(_) => (
            "make -j2 of a generated C project (200 files), from clean".to_owned(),
            "builds/s",
        ),
    };
    let base = of(&blocks[0], &|b| Some(b.throughput)).median;
    let mut md = format!(
        "\n### {key}\n\n{what}; throughput in {unit}.\n\n| variant | throughput median (min–max) | ratio to baseline | CPU of agent or auditd+kauditd, ms per block | file program ns per run | file program ns per file system call of the workload |\n|---|---|---|---|---|---|\n"
    );
    let mut variants = Map::new();
    let mut agent_figures = None;
    for ((name, variant), b) in VARIANTS.iter().zip(blocks) {
        let throughput = of(b, &|b| Some(b.throughput));
        let ratio = throughput.median / base;
        let cpu = of(b, &|b| b.cpu_ms);
        let per_run = of(b, &|b| Some(b.file_program?.per_run()));
        // All of the program's time during the block (every syscall exit on the machine) over the
        // storm's own file system calls.
        let per_call = of(b, &|b| {
            let calls = b.iterations? * CALLS_PER_ITERATION;
            Some(b.file_program?.ns as f64 / calls.max(1) as f64)
        });
        let show = |s: &Summary, d| {
            if s.median.is_nan() {
                String::new()
            } else {
                s.show(d)
            }
        };
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            throughput.show(if storm { 0 } else { 3 }),
            num(ratio, 3),
            show(&cpu, 0),
            show(&per_run, 0),
            show(&per_call, 0),
        ));
        variants.insert(
            name.to_string(),
            json!({
                "throughput": throughput.json(),
                "ratio_to_baseline": ratio,
                "cpu_ms_per_block": cpu.json(),
                "file_program_ns_per_run": per_run.json(),
                "file_program_ns_per_workload_file_call": per_call.json(),
            }),
        );
        if *variant == Variant::Agent {
            agent_figures = Some((ratio, per_run.median, per_call.median));
        }
    }
    if let Some((ratio, per_run, per_call)) = agent_figures {
        md.push_str(&format!(
            "\nTargets: throughput ratio ≥ {RATIO_TARGET}: {} ({}); ≤ {NS_PER_OPERATION_TARGET} ns per operation outside the watched trees: per program run {} ({} ns){}.\n",
            verdict(ratio >= RATIO_TARGET),
            num(ratio, 3),
            verdict(per_run <= NS_PER_OPERATION_TARGET),
            num(per_run, 0),
            if storm {
                format!(", per file system call of the storm {} ({} ns)", verdict(per_call <= NS_PER_OPERATION_TARGET), num(per_call, 0))
            } else {
                String::new()
            },
        ));
    }
    (json!({ "workload": what, "variants": variants }), md)
}

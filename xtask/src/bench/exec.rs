//! Exec overhead on workloads that trigger no rule (issue 7, 1): a fork+exec storm of
//! `/bin/true` on one and two workers, and a real build (`make -j2` of a generated C project).
//! Variants in alternating blocks: no agent, the agent as shipped, auditd with an execve rule
//! (the peer), on one worker the agent with `rules.strict = false`, and on the storms the agent
//! built from an earlier commit (`before`, see `before::COMMIT`), which the report compares with the shipped one;
//! on two workers also the agent with Elastic's whole vendored Linux library (issue 19). The
//! agent's kernel programs' cost comes from BPF run-time statistics; CPU from /proc.
use super::{
    BLOCKS, Outcome,
    agent::{self, Agent, Build},
    auditd::Auditd,
    before,
    bpf::{self, AgentPrograms, Runs, StatsOn},
    cproject::CProject,
    procs::ticks_ms,
    stats::{Summary, num, verdict},
};
use serde_json::{Map, Value, json};
use std::{
    collections::BTreeMap,
    process::Command,
    thread,
    time::{Duration, Instant},
};

const STORM_BLOCK: Duration = Duration::from_secs(3);
/// Long enough for the agent to handle what a block left in its ring.
const DRAIN: Duration = Duration::from_millis(500);
/// Issue 2 and 7 targets.
const KERNEL_NS_TARGET: f64 = 1500.0;
const RATIO_TARGET: f64 = 0.98;
/// The variant running the agent built from `before::COMMIT`.
const BEFORE: &str = "agent_before";
/// The variant running every vendored rule of Elastic's Linux library (issue 19): the kernel
/// prefilter then sends every exec to the agent.
const LIBRARY: &str = "agent_library";
const LIBRARY_DIR: &str = "boot-copy-rules/tests/data/detection-rules";
/// Issue 19 targets with the library loaded: agent CPU per exec, storm throughput ratio.
const LIBRARY_US_TARGET: f64 = 12.0;
const LIBRARY_RATIO_TARGET: f64 = 0.97;
/// The agent's kernel programs, as `bpf::program` names them.
const PROGRAMS: [&str; 2] = ["exec", "fork"];

#[derive(Clone, Copy)]
enum Variant {
    Baseline,
    Agent(agent::Options),
    Auditd,
}

enum Workload {
    Storm(usize),
    Build(CProject),
}

impl Workload {
    fn key(&self) -> String {
        match self {
            Workload::Storm(w) => format!("storm_{w}_worker{}", if *w > 1 { "s" } else { "" }),
            Workload::Build(_) => "build".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Workload::Storm(w) => format!(
                "fork+exec of /bin/true on {w} worker{}, {} s blocks; throughput in execs/s",
                if *w > 1 { "s" } else { "" },
                STORM_BLOCK.as_secs()
            ),
            Workload::Build(_) => {
                "make -j2 of a generated C project (200 files), from clean; throughput in builds/s (1 / wall time)".to_owned()
            }
        }
    }

    /// Throughput (execs/s or builds/s) and the execs the workload itself counted, if it can.
    fn measure(&self) -> anyhow::Result<(f64, Option<u64>)> {
        match self {
            Workload::Storm(workers) => {
                let (execs, secs) = storm(*workers, STORM_BLOCK);
                Ok((execs as f64 / secs, Some(execs)))
            }
            Workload::Build(project) => Ok((1.0 / project.build()?, None)),
        }
    }

    fn prepare(&self) -> anyhow::Result<()> {
        match self {
            Workload::Storm(_) => Ok(()),
            Workload::Build(project) => project.clean(),
        }
    }
}

/// What one block measured.
#[derive(Default)]
struct Block {
    throughput: f64,
    execs: Option<u64>,
    /// CPU of the agent, or of auditd and kauditd, during the block.
    cpu_ms: Option<f64>,
    /// The agent's programs: runs and run time during the block.
    programs: Option<BTreeMap<String, Runs>>,
    audit_lost: Option<u64>,
}

pub fn run() -> anyhow::Result<Outcome> {
    let _stats = StatsOn::enable()?;
    let strict_off = agent::Options {
        strict: false,
        ..Default::default()
    };
    let shipped = Variant::Agent(agent::Options::default());
    let before = Variant::Agent(agent::Options {
        build: Build::BeforeIssue15,
        ..Default::default()
    });
    let library = Variant::Agent(agent::Options {
        rules_dir: Some(LIBRARY_DIR),
        ..Default::default()
    });
    let plans: Vec<(Workload, Vec<(&str, Variant)>)> = vec![
        (
            Workload::Storm(1),
            vec![
                ("baseline", Variant::Baseline),
                ("agent", shipped),
                ("auditd", Variant::Auditd),
                ("agent_strict_off", Variant::Agent(strict_off)),
                (BEFORE, before),
            ],
        ),
        (
            Workload::Storm(2),
            vec![
                ("baseline", Variant::Baseline),
                ("agent", shipped),
                ("auditd", Variant::Auditd),
                (BEFORE, before),
                (LIBRARY, library),
            ],
        ),
        (
            Workload::Build(CProject::generate()?),
            vec![
                ("baseline", Variant::Baseline),
                ("agent", shipped),
                ("auditd", Variant::Auditd),
            ],
        ),
    ];
    let mut result = Map::new();
    let mut markdown = String::from("## Exec overhead (`cargo xtask bench exec`)\n");
    for (workload, variants) in &plans {
        let blocks = alternate(workload, variants)?;
        let (json, md) = report(workload, variants, &blocks);
        result.insert(workload.key(), json);
        markdown.push_str(&md);
    }
    result.insert("blocks".into(), BLOCKS.into());
    Ok(Outcome {
        name: "exec",
        result: Value::Object(result),
        markdown,
    })
}

/// BLOCKS rounds of every variant in turn; blocks[variant][round].
fn alternate(workload: &Workload, variants: &[(&str, Variant)]) -> anyhow::Result<Vec<Vec<Block>>> {
    let mut blocks: Vec<Vec<Block>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..BLOCKS {
        for (i, (name, variant)) in variants.iter().enumerate() {
            workload.prepare()?;
            let block = measure(workload, *variant)?;
            eprintln!(
                "exec {} round {round}: {name} {:.2}",
                workload.key(),
                block.throughput
            );
            blocks[i].push(block);
        }
    }
    Ok(blocks)
}

fn measure(workload: &Workload, variant: Variant) -> anyhow::Result<Block> {
    match variant {
        Variant::Baseline => {
            let (throughput, execs) = workload.measure()?;
            Ok(Block {
                throughput,
                execs,
                ..Block::default()
            })
        }
        Variant::Agent(opts) => {
            let agent = Agent::start(opts)?;
            let progs = AgentPrograms::of(agent.pid())?;
            let (runs0, cpu0) = (progs.snapshot()?, agent.cpu_ticks()?);
            let (throughput, execs) = workload.measure()?;
            // The agent's CPU counts the records still in the ring when the workload ends.
            thread::sleep(DRAIN);
            let (runs1, cpu1) = (progs.snapshot()?, agent.cpu_ticks()?);
            agent.stop()?;
            Ok(Block {
                throughput,
                execs,
                cpu_ms: Some(ticks_ms(cpu1 - cpu0)),
                programs: Some(bpf::deltas(&runs0, &runs1)),
                audit_lost: None,
            })
        }
        Variant::Auditd => {
            let peer = Auditd::start()?;
            let (cpu0, lost0) = (peer.cpu_ticks()?, peer.lost()?);
            let (throughput, execs) = workload.measure()?;
            let (cpu1, lost1) = (peer.cpu_ticks()?, peer.lost()?);
            Ok(Block {
                throughput,
                execs,
                cpu_ms: Some(ticks_ms(cpu1.saturating_sub(cpu0))),
                programs: None,
                audit_lost: Some(lost1.saturating_sub(lost0)),
            })
        }
    }
}

/// fork+exec of /bin/true on `workers` threads for `dur`: (execs, seconds).
pub(super) fn storm(workers: usize, dur: Duration) -> (u64, f64) {
    let start = Instant::now();
    let execs = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        if Command::new("/bin/true").status().is_ok() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    (execs, start.elapsed().as_secs_f64())
}

/// Per-block figures of one variant.
struct Figures {
    throughput: Summary,
    cpu_per_unit: Summary,
    /// All programs' time over exec runs (the agent sees every exec on the machine).
    all_per_exec: Summary,
    /// exec + fork, each per run: the kernel's cost of one fork+exec (there is no exit program).
    cycle: Summary,
    per_program: BTreeMap<&'static str, Summary>,
    audit_lost: u64,
}

fn figures(blocks: &[Block]) -> Figures {
    let of = |f: &dyn Fn(&Block) -> Option<f64>| {
        Summary::of(&blocks.iter().filter_map(f).collect::<Vec<_>>())
    };
    let prog = |b: &Block, part: &str| b.programs.as_ref().map(|p| bpf::program(p, part));
    let per_program = PROGRAMS
        .into_iter()
        .map(|part| (part, of(&|b| Some(prog(b, part)?.per_run()))))
        .collect();
    Figures {
        throughput: of(&|b| Some(b.throughput)),
        // Per 1,000 execs when the workload counts them, else per build.
        cpu_per_unit: of(&|b| {
            let cpu = b.cpu_ms?;
            Some(b.execs.map_or(cpu, |n| cpu * 1000.0 / n.max(1) as f64))
        }),
        all_per_exec: of(&|b| {
            let p = b.programs.as_ref()?;
            let ns: u64 = p.values().map(|r| r.ns).sum();
            Some(ns as f64 / bpf::program(p, "exec").count.max(1) as f64)
        }),
        cycle: of(&|b| {
            Some(
                PROGRAMS
                    .iter()
                    .map(|part| prog(b, part).unwrap_or_default().per_run())
                    .sum(),
            )
        }),
        per_program,
        audit_lost: blocks.iter().filter_map(|b| b.audit_lost).sum(),
    }
}

fn report(
    workload: &Workload,
    variants: &[(&str, Variant)],
    blocks: &[Vec<Block>],
) -> (Value, String) {
    let figs: Vec<Figures> = blocks.iter().map(|b| figures(b)).collect();
    let base = figs[0].throughput.median;
    let storm = matches!(workload, Workload::Storm(_));
    let cpu_unit = if storm {
        "ms per 1,000 execs"
    } else {
        "ms per build"
    };
    let mut json_variants = Map::new();
    let mut md = format!(
        "\n### {}\n\n{}.\n\n| variant | throughput median (min–max) | ratio to baseline | CPU of agent or auditd+kauditd, {cpu_unit} | kernel ns per fork+exec+exit (exec + fork programs, each per run; no exit program) |\n|---|---|---|---|---|\n",
        workload.key(),
        workload.describe()
    );
    for ((name, variant), f) in variants.iter().zip(&figs) {
        let ratio = f.throughput.median / base;
        let mut v = json!({
            "throughput": f.throughput.json(),
            "ratio_to_baseline": ratio,
        });
        let decimals = if storm { 0 } else { 3 };
        let (cpu, kernel) = match variant {
            Variant::Baseline => ("".to_owned(), "".to_owned()),
            Variant::Agent(_) => {
                v["agent_cpu_ms"] = json!({ "unit": cpu_unit, "summary": f.cpu_per_unit.json() });
                v["kernel_ns_per_fork_exec"] = f.cycle.json();
                v["kernel_ns_all_programs_per_exec_run"] = f.all_per_exec.json();
                v["kernel_ns_per_run"] = json!(
                    f.per_program
                        .iter()
                        .map(|(k, s)| (k.to_string(), s.json()))
                        .collect::<Map<_, _>>()
                );
                (f.cpu_per_unit.show(1), f.cycle.show(0))
            }
            Variant::Auditd => {
                v["auditd_cpu_ms"] = json!({ "unit": cpu_unit, "summary": f.cpu_per_unit.json() });
                v["audit_records_lost"] = f.audit_lost.into();
                (f.cpu_per_unit.show(1), "".to_owned())
            }
        };
        md.push_str(&format!(
            "| {name} | {} | {} | {cpu} | {kernel} |\n",
            f.throughput.show(decimals),
            num(ratio, 3)
        ));
        json_variants.insert(name.to_string(), v);
    }
    let named = |name: &str| {
        variants
            .iter()
            .zip(&figs)
            .find(|((n, _), _)| *n == name)
            .map(|(_, f)| f)
    };
    let mut json = json!({ "workload": workload.describe(), "variants": json_variants });
    if let Some(agent) = named("agent") {
        md.push_str(&targets(agent, base, storm, &figs, variants));
        if let Some(old) = named(BEFORE) {
            let (line, cmp) = against_before(agent, old, base);
            md.push_str(&line);
            json["agent_to_before"] = cmp;
        }
    }
    if let Some(all) = named(LIBRARY) {
        md.push_str(&library_targets(all, base));
    }
    (json, md)
}

/// The shipped agent against the build of `before::COMMIT`, same run: kernel ns per fork+exec and
/// the storm's throughput ratio to the baseline, each with their ratio.
fn against_before(agent: &Figures, old: &Figures, base: f64) -> (String, Value) {
    let kernel = agent.cycle.median / old.cycle.median;
    let (now, then) = (agent.throughput.median / base, old.throughput.median / base);
    let line = format!(
        "Against the agent of `{}` (same run): kernel ns per fork+exec {} against {} \
         ({} of before); throughput ratio to baseline {} against {} ({} of before).\n",
        before::COMMIT,
        num(agent.cycle.median, 0),
        num(old.cycle.median, 0),
        num(kernel, 3),
        num(now, 3),
        num(then, 3),
        num(now / then, 3),
    );
    let cmp = json!({
        "before_commit": before::COMMIT,
        "kernel_ns_ratio": kernel,
        "throughput_ratio_to_baseline": { "agent": now, "before": then, "ratio": now / then },
    });
    (line, cmp)
}

/// The issue 19 target lines for the agent with the whole library loaded (every exec sent).
fn library_targets(all: &Figures, base: f64) -> String {
    let us = all.cpu_per_unit.median; // ms per 1,000 execs = µs per exec
    let ratio = all.throughput.median / base;
    format!(
        "With every rule of `{LIBRARY_DIR}` loaded (every exec sent): agent CPU ≤ {LIBRARY_US_TARGET} µs per exec: {} ({} µs); \
         throughput ratio ≥ {LIBRARY_RATIO_TARGET}: {} ({}); kernel ns per fork+exec {}.\n",
        verdict(us <= LIBRARY_US_TARGET),
        num(us, 1),
        verdict(ratio >= LIBRARY_RATIO_TARGET),
        num(ratio, 3),
        num(all.cycle.median, 0),
    )
}

/// The target lines for the shipped agent on this workload.
fn targets(
    agent: &Figures,
    base: f64,
    storm: bool,
    figs: &[Figures],
    variants: &[(&str, Variant)],
) -> String {
    let ratio = agent.throughput.median / base;
    let auditd = variants
        .iter()
        .zip(figs)
        .find(|((n, _), _)| *n == "auditd")
        .map(|(_, f)| f.throughput.median / base);
    let per_prog: Vec<String> = agent
        .per_program
        .iter()
        .map(|(k, s)| format!("{k} {}", num(s.median, 0)))
        .collect();
    let mut md = format!(
        "\nKernel ns per run, medians: {}; all programs' time over exec runs (every exec on the machine, foreign forks included): {} ns.\n",
        per_prog.join(", "),
        agent.all_per_exec.show(0)
    );
    md.push_str(&format!(
        "Slowdown: agent {} %, auditd {} %.\n",
        num((1.0 - ratio) * 100.0, 1),
        auditd.map_or("–".to_owned(), |r| num((1.0 - r) * 100.0, 1))
    ));
    let lost: u64 = figs.iter().map(|f| f.audit_lost).sum();
    if lost > 0 {
        md.push_str(&format!(
            "auditd lost {lost} records (kernel backlog full).\n"
        ));
    }
    if storm {
        md.push_str(&format!(
            "Targets: throughput ratio ≥ {RATIO_TARGET}: {} ({}); kernel ≤ {} µs per exec: {} ({} ns).\n",
            verdict(ratio >= RATIO_TARGET),
            num(ratio, 3),
            KERNEL_NS_TARGET / 1000.0,
            verdict(agent.cycle.median <= KERNEL_NS_TARGET),
            num(agent.cycle.median, 0)
        ));
    }
    md
}

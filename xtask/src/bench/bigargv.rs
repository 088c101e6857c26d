//! A storm of watched execs each carrying 1 MiB of argv (`cp --suffix=… ×1024 /etc/hostname
//! /boot/MARKER-i`, as fast as two loops can): throughput, what reached the agent whole, what was
//! dropped or incomplete (from the kernel's and the agent's counters), and the agent's CPU per MiB
//! of argv, with the default configuration (4 MiB ring, 6 MiB spill map, stdout sink on); the agent's peak resident set
//! during the storm (VmHWM reset once it is ready) and, apart, while it started.
use super::{
    Outcome,
    agent::{self, Agent},
    alertlog::Tail,
    stats::num,
};
use anyhow::{Context as _, bail};
use serde_json::json;
use std::{
    fs,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

const WORKERS: usize = 2;
const PER_WORKER: u64 = 100;
const ARGV_MIB: u64 = 1;

pub fn run() -> anyhow::Result<Outcome> {
    // The default configuration, stdout sink included: it trims each megabyte record to journald's
    // line limit, which is part of the peak measured.
    let agent = Agent::start(agent::Options {
        stdout: true,
        ..agent::Options::default()
    })?;
    let marker = format!("bcbigargv{}", std::process::id());
    let mut tail = Tail::from_end(&agent.log, &marker)?;
    let pad = std::env::temp_dir().join(format!("{marker}.pad"));
    // 1 MiB of arguments: 1024 options of 1 KiB (NUL included), one per line. The marker leads,
    // so that an alert whose argv is incomplete still carries it.
    let one = format!("--suffix={}\n", "~".repeat(1024 - 10));
    fs::write(&pad, one.repeat((ARGV_MIB * 1024) as usize))?;
    let started_with = agent.memory()?;
    agent.reset_peak()?;
    let cpu0 = agent.cpu_ns()?;
    let started = Instant::now();
    let children = (0..WORKERS)
        .map(|w| {
            let script = format!(
                "mount -t tmpfs bench /boot || exit 1; set -f; IFS='\n'; pad=$(cat {pad}); i=0; \
                 while [ $i -lt {PER_WORKER} ]; do cp --suffix={marker} $pad /etc/hostname /boot/{marker}-{w}-$i || exit 1; \
                 i=$((i+1)); done",
                pad = pad.display()
            );
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
                .stdout(Stdio::null())
                .spawn()
                .context("starting a storm loop")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for mut child in children {
        if !child.wait()?.success() {
            bail!("a storm loop failed");
        }
    }
    let storm = started.elapsed();
    let execs = WORKERS as u64 * PER_WORKER;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (tail.alerts() as u64) < execs && Instant::now() < deadline {
        if !tail.poll()? {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let cpu_ms = (agent.cpu_ns()? - cpu0) as f64 / 1e6;
    let memory = agent.memory()?;
    let alerts = tail.alerts() as u64;
    let _ = fs::remove_file(&pad);
    let counters = agent.stop()?;
    let c = |name| agent::counter(&counters, name);
    let (drops, incomplete, spill_full) = (
        c("ringbuf_drops")?,
        c("args_incomplete")?,
        c("args_spill_full")?,
    );
    let rate = execs as f64 / storm.as_secs_f64();
    let mib = (alerts * ARGV_MIB) as f64;
    let cpu_per_mib = if mib > 0.0 { cpu_ms / mib } else { 0.0 };
    let result = json!({
        "workload": format!("{WORKERS} loops of {PER_WORKER} `cp` with {ARGV_MIB} MiB of options each into a tmpfs /boot, default config"),
        "execs": execs,
        "storm_seconds": storm.as_secs_f64(),
        "execs_per_second": rate,
        "alerts": alerts,
        "ringbuf_drops": drops,
        "args_incomplete": incomplete,
        "args_spill_full": spill_full,
        "agent_cpu_ms": cpu_ms,
        "agent_cpu_ms_per_mib": cpu_per_mib,
        "agent_rss_kib": memory.rss,
        "agent_hwm_kib": memory.hwm,
        "agent_start_hwm_kib": started_with.hwm,
    });
    let markdown = format!(
        "## Watched execs with 1 MiB of argv (`cargo xtask bench bigargv`)\n\n\
         {execs} `cp` with {ARGV_MIB} MiB of options each, {WORKERS} loops, default configuration (4 MiB ring, stdout sink on).\n\n\
         | measure | value |\n|---|---|\n\
         | execs per second | {} |\n| alerts (each with its whole argv, else counted below) | {alerts} |\n\
         | kernel ring drops | {drops} |\n| incomplete argv (spill map full) | {incomplete} ({spill_full}) |\n\
         | agent CPU per MiB of argv, ms | {} |\n| agent RSS after, peak (VmHWM) during the storm, KiB | {:.0}, {:.0} |\n\
         | agent peak (VmHWM) while starting, before the storm, KiB | {:.0} |\n",
        num(rate, 0),
        num(cpu_per_mib, 2),
        memory.rss,
        memory.hwm,
        started_with.hwm,
    );
    // The ring's drops count every watched exec's on the host (other sessions' copies too), so
    // they may exceed ours; every one of ours is an alert or among them.
    if alerts > execs || alerts + drops < execs {
        bail!(
            "{alerts} alerts and {drops} drops for {execs} execs; the agent's counters: {counters}"
        );
    }
    Ok(Outcome {
        name: "bigargv",
        result,
        markdown,
    })
}

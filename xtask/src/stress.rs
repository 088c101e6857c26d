//! `cargo xtask stress`: fault scenarios too long for the test suite's minute, against the
//! release agent on the real kernel. Each cycle stops the agent (SIGSTOP) under a storm of
//! triggering execs and resumes it, then lets a storm run with the agent awake; its syslog sink
//! points at a receiver that is down the whole time. Every cycle must account for every exec
//! (an alert or a kernel drop, exactly), the alert log must lose nothing, syslog losses must be
//! counted, and the agent's heap must come back to where it was.
//!
//! The triggering tool is a copy of cp with a name of its own, watched by a rule of its own, so
//! execs of other processes on the machine take no ring-buffer space. Copies go to a tmpfs over
//! /boot in a private mount namespace.
use crate::{cargo, setup};
use anyhow::{Context as _, ensure};
use boot_copy_harness::{WAIT, eql_rule, has_arg, in_boot_namespace, tempdir};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::{fs, net::TcpListener, path::PathBuf, thread, time::Duration};

/// Execs per storm.
const STORM: usize = 3000;
/// How much the agent's heap may have grown after all cycles.
const HEAP_GROWTH_LIMIT_KB: u64 = 16 * 1024;
/// Waits for a storm's records, in [`WAIT`]s: a storm leaves thousands of records to handle, on a
/// machine that may be busy.
const STORM_WAITS: u32 = 9;

pub fn run(cycles: usize) -> anyhow::Result<()> {
    setup::require_root("the stress scenarios")?;
    cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    let mut agent = Agent::start()?;
    agent.sync("start")?;
    let baseline = agent.rss_anon_kb()?;
    let mut drops_before = agent.counter("ringbuf_drops")?;
    let mut peak = baseline;
    println!("cycle  phase    execs  alerts  kernel-drops  heap-kB");
    for cycle in 0..cycles {
        for (phase, stopped) in [("stopped", true), ("awake", false)] {
            let label = format!("c{cycle}-{phase}");
            if stopped {
                agent.pause()?;
            }
            agent.storm(&label)?;
            if stopped {
                agent.resume()?;
            }
            agent.sync(&label)?;
            // The status file and loss records follow once a second.
            thread::sleep(Duration::from_millis(2500));
            let alerts = agent.alerts_with_prefix(&format!("/boot/{label}-"));
            let drops = agent.counter("ringbuf_drops")?;
            let lost = drops - drops_before;
            drops_before = drops;
            let heap = agent.rss_anon_kb()?;
            peak = peak.max(heap);
            println!("{cycle:>5}  {phase:<7} {STORM:>6}  {alerts:>6}  {lost:>12}  {heap:>7}");
            ensure!(
                alerts + lost as usize == STORM,
                "{label}: {alerts} alerts and {lost} kernel drops for {STORM} execs"
            );
            ensure!(
                !stopped || lost > 0,
                "{label}: the storm did not overflow the ring"
            );
        }
    }
    let reported: u64 = agent
        .records()
        .iter()
        .filter(|r| r["event"]["action"] == "events-lost")
        .filter_map(|r| r["boot_copy"]["loss"]["ringbuf_drops"].as_u64())
        .sum();
    let syslog_lost = agent.counter("syslog_dropped")? + agent.counter("syslog_failed")?;
    let (log_dropped, log_failed) = (
        agent.counter("alert_log_dropped")?,
        agent.counter("alert_log_failed")?,
    );
    println!(
        "loss records: {reported} kernel drops; syslog lost {syslog_lost}; alert log dropped {log_dropped}, failed {log_failed}; heap {baseline} kB at start, {peak} kB at most"
    );
    ensure!(
        reported == drops_before,
        "loss records report {reported} of {drops_before} drops"
    );
    ensure!(syslog_lost > 0, "syslog losses were not counted");
    ensure!(log_dropped + log_failed == 0, "the alert log lost records");
    ensure!(
        peak - baseline < HEAP_GROWTH_LIMIT_KB,
        "the heap grew by {} kB",
        peak - baseline
    );
    Ok(())
}

/// `boot-copy-agent run` (release), started by the shared harness, with its tool and rule in a
/// scratch directory of their own.
struct Agent {
    run: boot_copy_harness::Agent,
    work: PathBuf,
    tool: String,
}

impl Agent {
    fn start() -> anyhow::Result<Self> {
        let work = tempdir("stress-work")?;
        let name = format!("stresscp{}", std::process::id());
        let tool = work.join(&name);
        fs::copy("/usr/bin/cp", &tool).context("copying cp")?;
        let rule = work.join("rule.toml");
        fs::write(&rule, rule_for(&name))?;
        // A port nobody listens on: the syslog receiver is down throughout.
        let down = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let extra = format!(
            "[rules]\npath = \"{rule}\"\n[sensor]\nring_buffer_bytes = 1048576\n[alert_budget]\nmax_alerts = 100000000\n\
             [sinks.stdout]\nenabled = false\n\
             [sinks.syslog]\nenabled = true\ntransport = \"tcp\"\naddress = \"{down}\"\nqueue_capacity = 64\n",
            rule = rule.display(),
        );
        let run = boot_copy_harness::Agent::start(crate::release_agent(), "stress", &extra)?;
        Ok(Self {
            run,
            work,
            tool: tool.display().to_string(),
        })
    }

    fn records(&self) -> Vec<Value> {
        self.run.records()
    }

    /// One triggering copy, waited for: everything before it has been handled.
    fn sync(&mut self, label: &str) -> anyhow::Result<()> {
        let marker = format!("/boot/sync-{label}");
        in_boot_namespace(&format!("{} /etc/hostname {marker}", self.tool))?;
        self.run.wait_for(*WAIT * STORM_WAITS, |r| {
            r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], &marker)
        })?;
        Ok(())
    }

    fn storm(&self, label: &str) -> anyhow::Result<()> {
        Ok(in_boot_namespace(&format!(
            "i=0; while [ $i -lt {STORM} ]; do {} /etc/hostname /boot/{label}-$i; i=$((i+1)); done",
            self.tool
        ))?)
    }

    fn alerts_with_prefix(&self, prefix: &str) -> usize {
        self.records()
            .iter()
            .filter(|r| r["event"]["kind"] == "alert")
            .filter(|r| {
                r["process"]["args"][2]
                    .as_str()
                    .is_some_and(|a| a.starts_with(prefix))
            })
            .count()
    }

    /// A counter from the status file (rewritten every second).
    fn counter(&self, name: &str) -> anyhow::Result<u64> {
        self.run.status_file()?["counters"][name]
            .as_u64()
            .with_context(|| format!("no counter {name} in the status file"))
    }

    /// SIGSTOP, waited for.
    fn pause(&self) -> anyhow::Result<()> {
        self.run.signal(Signal::SIGSTOP)?;
        // Stopped once its state letter says so.
        while proc_state(self.run.pid())? != 'T' {
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn resume(&self) -> anyhow::Result<()> {
        Ok(self.run.signal(Signal::SIGCONT)?)
    }

    /// `RssAnon` in kB: the heap, without the ring buffer's shared pages.
    fn rss_anon_kb(&self) -> anyhow::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.run.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("RssAnon in /proc/PID/status")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.run.signal(Signal::SIGCONT);
        let _ = fs::remove_dir_all(&self.work);
    }
}

fn proc_state(pid: u32) -> anyhow::Result<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat[stat.rfind(')').context("stat")? + 2..]
        .chars()
        .next()
        .context("stat")
}

/// The stress scenario's rule: copies into /boot by its own copy tool.
fn rule_for(name: &str) -> String {
    eql_rule(
        "0f0f0f0f-0000-4000-8000-000000000003",
        "Stress copy",
        "Copies into /boot by the stress scenario's own copy tool.",
        &format!(
            r#"process where event.type == "start" and process.name == "{name}" and process.args like~ "/boot/*""#
        ),
    )
}

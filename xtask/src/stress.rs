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
use crate::{cargo, setup, workspace_root};
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use std::{
    fs,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Execs per storm.
const STORM: usize = 3000;
/// How much the agent's heap may have grown after all cycles.
const HEAP_GROWTH_LIMIT_KB: u64 = 16 * 1024;
/// Generous: a storm leaves thousands of records to handle, on a machine that may be busy.
const WAIT: Duration = Duration::from_secs(180);

pub fn run(cycles: usize) -> anyhow::Result<()> {
    setup::require_root("the stress scenarios")?;
    cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    let agent = Agent::start()?;
    agent.sync("start")?;
    let baseline = agent.rss_anon_kb()?;
    let mut drops_before = agent.counter("ringbuf_drops")?;
    let mut peak = baseline;
    println!("cycle  phase    execs  alerts  kernel-drops  heap-kB");
    for cycle in 0..cycles {
        for (phase, stopped) in [("stopped", true), ("awake", false)] {
            let label = format!("c{cycle}-{phase}");
            if stopped {
                agent.signal("-STOP")?;
            }
            agent.storm(&label)?;
            if stopped {
                agent.signal("-CONT")?;
            }
            agent.sync(&label)?;
            // The status file and loss records follow once a second.
            thread::sleep(Duration::from_millis(2500));
            let alerts = agent.alerts_with_prefix(&format!("/boot/{label}-"))?;
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
        .records()?
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

/// `boot-copy-agent run` (release) with its files, tool and rule in a scratch directory.
struct Agent {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    tool: String,
}

impl Agent {
    fn start() -> anyhow::Result<Self> {
        let dir = PathBuf::from(format!("/tmp/boot-copy-stress-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let name = format!("stresscp{}", std::process::id());
        let tool = dir.join(&name);
        fs::copy("/usr/bin/cp", &tool).context("copying cp")?;
        let rule = dir.join("rule.toml");
        fs::write(&rule, rule_for(&name))?;
        // A port nobody listens on: the syslog receiver is down throughout.
        let down = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = dir.join("log/alerts.ndjson");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "[rules]\npath = \"{rule}\"\n[sensor]\nring_buffer_bytes = 1048576\n[alert_budget]\nmax_alerts = 100000000\n\
                 [health]\nstate_dir = \"{d}/log\"\n[sinks.stdout]\nenabled = false\n[sinks.alert_log]\npath = \"{l}\"\n\
                 [sinks.syslog]\nenabled = true\ntransport = \"tcp\"\naddress = \"{down}\"\nqueue_capacity = 64\n",
                rule = rule.display(),
                d = dir.display(),
                l = log.display()
            ),
        )?;
        let child = Command::new(workspace_root().join("target/release/boot-copy-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the agent")?;
        let agent = Self {
            child,
            dir,
            log,
            tool: tool.display().to_string(),
        };
        agent.wait(|r| r["event"]["action"] == "agent-started")?;
        Ok(agent)
    }

    fn records(&self) -> anyhow::Result<Vec<Value>> {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        // A last line without its newline is still being written.
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        text.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in the log: {l}")))
            .collect()
    }

    fn wait(&self, pred: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.records()?.iter().any(&pred) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
        bail!("nothing expected in {} within {WAIT:?}", self.log.display())
    }

    /// One triggering copy, waited for: everything before it has been handled.
    fn sync(&self, label: &str) -> anyhow::Result<()> {
        let marker = format!("/boot/sync-{label}");
        in_boot_namespace(&format!("{} /etc/hostname {marker}", self.tool))?;
        self.wait(|r| {
            r["event"]["kind"] == "alert"
                && r["process"]["args"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == marker.as_str()))
        })
    }

    fn storm(&self, label: &str) -> anyhow::Result<()> {
        in_boot_namespace(&format!(
            "i=0; while [ $i -lt {STORM} ]; do {} /etc/hostname /boot/{label}-$i; i=$((i+1)); done",
            self.tool
        ))
    }

    fn alerts_with_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        Ok(self
            .records()?
            .iter()
            .filter(|r| r["event"]["kind"] == "alert")
            .filter(|r| {
                r["process"]["args"][2]
                    .as_str()
                    .is_some_and(|a| a.starts_with(prefix))
            })
            .count())
    }

    /// A counter from the status file (rewritten every second).
    fn counter(&self, name: &str) -> anyhow::Result<u64> {
        let status: Value = serde_json::from_slice(&fs::read(self.dir.join("log/status.json"))?)?;
        status["counters"][name]
            .as_u64()
            .with_context(|| format!("no counter {name} in the status file"))
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        crate::status(
            Command::new("kill")
                .arg(sig)
                .arg(self.child.id().to_string()),
        )?;
        if sig == "-STOP" {
            // Stopped once its state letter says so.
            while proc_state(self.child.id())? != 'T' {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// `RssAnon` in kB: the heap, without the ring buffer's shared pages.
    fn rss_anon_kb(&self) -> anyhow::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("RssAnon in /proc/PID/status")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for sig in ["-CONT", "-TERM"] {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(self.child.id().to_string())
                .status();
        }
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn proc_state(pid: u32) -> anyhow::Result<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat[stat.rfind(')').context("stat")? + 2..]
        .chars()
        .next()
        .context("stat")
}

fn in_boot_namespace(script: &str) -> anyhow::Result<()> {
    let full = format!("mount -t tmpfs boot-copy-stress /boot && {script}");
    crate::status(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        &full,
    ]))
}

fn rule_for(name: &str) -> String {
    format!(
        r#"[metadata]
creation_date = "2026/01/01"
maturity = "development"
updated_date = "2026/01/01"

[rule]
author = ["boot-copy stress"]
description = "Copies into /boot by the stress scenario's own copy tool."
language = "eql"
license = "MIT"
name = "Stress copy"
risk_score = 21
rule_id = "0f0f0f0f-0000-4000-8000-000000000003"
severity = "low"
type = "eql"
version = 1
query = '''
process where event.type == "start" and process.name == "{name}" and process.args like~ "/boot/*"
'''
"#
    )
}

//! `boot-copy-agent run` (release) under the benchmark, started by the shared harness: its
//! readiness timed through `$NOTIFY_SOCKET` (the agent's sd_notify `READY=1`), its CPU time,
//! memory and final counters read from /proc and its stop record.
use super::{before, procs};
use anyhow::{Context as _, bail};
use boot_copy_harness::{Launch, WAIT};
use serde_json::Value;
use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    time::{Duration, Instant},
};

/// How to configure the agent for a block.
#[derive(Clone, Copy)]
pub struct Options {
    /// The strict companion rule (`rules.strict`).
    pub strict: bool,
    /// `sensor.ring_buffer_bytes`; the default when absent.
    pub ring_bytes: Option<u32>,
    /// Which build of the agent runs.
    pub build: Build,
    /// The stdout sink (on by default in the agent; its output goes to /dev/null here).
    pub stdout: bool,
    /// The mount namespace of this process, when the agent runs in it (`nsenter -m`).
    pub namespace_of: Option<u32>,
    /// `rules.path` (relative to the workspace): this directory's rules instead of the bundled ones.
    pub rules_dir: Option<&'static str>,
}

/// The agent of this tree, or the one of `before::COMMIT` (built by [`before::build`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Current,
    BeforeIssue15,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            strict: true,
            ring_bytes: None,
            build: Build::Current,
            stdout: false,
            namespace_of: None,
            rules_dir: None,
        }
    }
}

pub struct Agent {
    run: boot_copy_harness::Agent,
    pub log: PathBuf,
    /// From spawning the process to its `READY=1`.
    pub ready_after: Duration,
}

impl Agent {
    /// Starts the agent and waits for its readiness notification. The alert budget is raised
    /// out of reach so that suppression never mixes into a measurement, and the alert log does
    /// not rotate (the benchmarks follow one file; megabyte alerts would fill 100 MiB).
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        let ring = opts
            .ring_bytes
            .map(|b| format!("[sensor]\nring_buffer_bytes = {b}\n"))
            .unwrap_or_default();
        let rules_path = opts
            .rules_dir
            .map(|dir| {
                format!(
                    "path = \"{}\"\n",
                    crate::workspace_root().join(dir).display()
                )
            })
            .unwrap_or_default();
        let extra = format!(
            "max_bytes = 0\n[rules]\nstrict = {strict}\n{rules_path}{ring}[alert_budget]\nmax_alerts = 1000000000\n[sinks.stdout]\nenabled = {stdout}\n",
            strict = opts.strict,
            stdout = opts.stdout,
        );
        let bin = match opts.build {
            Build::Current => crate::release_agent(),
            Build::BeforeIssue15 => before::path(),
        };
        let mut launch = Launch::fresh(bin, "bench", &extra)?;
        if let Some(pid) = opts.namespace_of {
            launch = launch.in_namespace_of(pid);
        }
        let notify_path = launch.dir().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).context("binding the notify socket")?;
        notify.set_read_timeout(Some(Duration::from_millis(100)))?;
        let spawned = Instant::now();
        let mut run = launch.env("NOTIFY_SOCKET", &notify_path).spawn()?;
        let ready_after = wait_ready(&mut run, &notify, spawned)?;
        Ok(Self {
            log: run.log.clone(),
            run,
            ready_after,
        })
    }

    pub fn pid(&self) -> u32 {
        self.run.pid()
    }
    /// utime + stime so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        procs::cpu_ticks(self.pid())
    }

    /// CPU time so far in nanoseconds, summed over the agent's threads: fine enough to measure
    /// a few alerts, which clock ticks are not.
    pub fn cpu_ns(&self) -> anyhow::Result<u64> {
        procs::cpu_ns(self.pid())
    }

    /// VmRSS, VmHWM and the resident set's parts, in KiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .with_context(|| format!("{name} in /proc/PID/status"))?;
            Ok(line.trim().trim_end_matches(" kB").trim().parse()?)
        };
        let rss = field("VmRSS")?;
        let anon = field("RssAnon")?;
        let bpf_maps = self.bpf_map_rss_kib()?;
        Ok(Memory {
            rss,
            hwm: field("VmHWM")?,
            anon,
            bpf_maps,
            other: rss - anon - bpf_maps,
        })
    }

    /// Resets VmHWM to the current resident set (`/proc/PID/clear_refs`), so that a later
    /// [`memory`](Self::memory) gives the peak since now, not the start's (loading parses the
    /// kernel's BTF).
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .context("resetting the agent's VmHWM")
    }

    /// Resident KiB of the agent's BPF map mappings (the ring buffer: the kernel maps its data
    /// pages twice, so a 4 MiB ring shows as up to 8 MiB once read all round).
    fn bpf_map_rss_kib(&self) -> anyhow::Result<f64> {
        let smaps = fs::read_to_string(format!("/proc/{}/smaps", self.pid()))?;
        let mut in_map = false;
        let mut kib = 0.0;
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                if in_map {
                    kib += rss.trim().trim_end_matches(" kB").trim().parse::<f64>()?;
                }
            } else if line.split(' ').next().is_some_and(|a| a.contains('-')) {
                in_map = line.ends_with("anon_inode:bpf-map");
            }
        }
        Ok(kib)
    }

    /// The `agent-started` record from the alert log (queued before READY=1, written by the
    /// sink's thread soon after).
    pub fn start_record(&mut self) -> anyhow::Result<Value> {
        Ok(self
            .run
            .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")?)
    }

    /// Stops the agent (SIGTERM, it drains first) and returns its final counters, from its
    /// stop record.
    pub fn stop(self) -> anyhow::Result<Value> {
        let (status, _, records) = self.run.stop()?;
        let stopped = records
            .iter()
            .find(|r| r["event"]["action"] == "agent-stopped");
        match stopped {
            Some(r) if status.success() => Ok(r["boot_copy"]["counters"].clone()),
            _ => bail!("the agent did not stop cleanly ({status})"),
        }
    }
}

/// Waits for `READY=1` on the notify socket; the time since `spawned`.
fn wait_ready(
    run: &mut boot_copy_harness::Agent,
    notify: &UnixDatagram,
    spawned: Instant,
) -> anyhow::Result<Duration> {
    let mut buf = [0u8; 4096];
    while spawned.elapsed() < *WAIT {
        match notify.recv(&mut buf) {
            Ok(n) if buf[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") => {
                return Ok(spawned.elapsed());
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("reading the notify socket"),
        }
        if let Some(status) = run.child.try_wait()? {
            bail!("the agent exited before READY=1: {status}");
        }
    }
    bail!("the agent did not report READY=1 within {:?}", *WAIT)
}

/// Memory figures from /proc/PID/status, KiB.
#[derive(Default, Clone, Copy)]
pub struct Memory {
    pub rss: f64,
    pub hwm: f64,
    /// Anonymous: heap, stacks.
    pub anon: f64,
    /// BPF map mappings (the ring buffer).
    pub bpf_maps: f64,
    /// The rest: the binary's and libraries' pages.
    pub other: f64,
}

/// A counter from the agent's final counters (an unknown name is an error, not a zero).
pub fn counter(counters: &Value, name: &str) -> anyhow::Result<u64> {
    counters[name]
        .as_u64()
        .with_context(|| format!("no counter {name} in the agent's status"))
}

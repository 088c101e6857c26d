//! `boot-copy-agent run` (release) under the benchmark: its files in a scratch directory, its
//! readiness timed through `$NOTIFY_SOCKET` (the agent's sd_notify `READY=1`), its CPU time,
//! memory and final counters read from /proc and its status file.
use super::procs;
use crate::workspace_root;
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to configure the agent for a block.
#[derive(Clone, Copy)]
pub struct Options {
    /// The strict companion rule (`rules.strict`).
    pub strict: bool,
    /// `sensor.ring_buffer_bytes`; the default when absent.
    pub ring_bytes: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            strict: true,
            ring_bytes: None,
        }
    }
}

pub struct Agent {
    child: Child,
    dir: PathBuf,
    pub log: PathBuf,
    /// From spawning the process to its `READY=1`.
    pub ready_after: Duration,
    stopped: bool,
}

impl Agent {
    /// Starts the agent and waits for its readiness notification. The alert budget is raised
    /// out of reach so that suppression never mixes into a measurement, and the alert log does
    /// not rotate (the benchmarks follow one file; megabyte alerts would fill 100 MiB).
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/boot-copy-bench-{}-{}",
            std::process::id(),
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let log = dir.join("log/alerts.ndjson");
        let config = dir.join("config.toml");
        let ring = opts
            .ring_bytes
            .map(|b| format!("[sensor]\nring_buffer_bytes = {b}\n"))
            .unwrap_or_default();
        fs::write(
            &config,
            format!(
                "[rules]\nstrict = {strict}\n{ring}[alert_budget]\nmax_alerts = 1000000000\n[health]\nstate_dir = \"{d}/log\"\n[sinks.stdout]\nenabled = false\n[sinks.alert_log]\npath = \"{l}\"\nmax_bytes = 0\n",
                strict = opts.strict,
                d = dir.display(),
                l = log.display()
            ),
        )?;
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).context("binding the notify socket")?;
        notify.set_read_timeout(Some(Duration::from_millis(100)))?;
        let spawned = Instant::now();
        let child = Command::new(workspace_root().join("target/release/boot-copy-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the agent")?;
        let mut agent = Self {
            child,
            dir,
            log,
            ready_after: Duration::ZERO,
            stopped: false,
        };
        agent.ready_after = agent.wait_ready(&notify, spawned)?;
        Ok(agent)
    }

    /// Waits for `READY=1` on the notify socket; the time since `spawned`.
    fn wait_ready(&mut self, notify: &UnixDatagram, spawned: Instant) -> anyhow::Result<Duration> {
        let mut buf = [0u8; 4096];
        while spawned.elapsed() < READY_TIMEOUT {
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
            if let Some(status) = self.child.try_wait()? {
                self.stopped = true;
                bail!("the agent exited before READY=1: {status}");
            }
        }
        bail!("the agent did not report READY=1 within {READY_TIMEOUT:?}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        procs::cpu_ticks(self.pid())
    }

    /// CPU time so far in nanoseconds, summed over the agent's threads (`schedstat`): fine
    /// enough to measure a few alerts, which clock ticks are not.
    pub fn cpu_ns(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for task in fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let stat = fs::read_to_string(task?.path().join("schedstat"))?;
            let run_ns = stat.split_whitespace().next().context("schedstat")?;
            total += run_ns.parse::<u64>()?;
        }
        Ok(total)
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
    pub fn start_record(&self) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| r["event"]["action"] == "agent-started");
            if let Some(record) = found {
                return Ok(record);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("no agent-started record in the alert log within 10 s")
    }

    /// Stops the agent (SIGTERM, it drains first) and returns its final counters.
    pub fn stop(mut self) -> anyhow::Result<Value> {
        self.terminate();
        let text = fs::read_to_string(self.dir.join("log/status.json"))
            .context("reading the agent's status file")?;
        let status: Value = serde_json::from_str(&text)?;
        if status["stopped"] != true {
            bail!("the agent did not stop cleanly");
        }
        Ok(status["counters"].clone())
    }

    fn terminate(&mut self) {
        if !self.stopped {
            procs::signal(self.pid(), libc::SIGTERM);
            let _ = self.child.wait();
            self.stopped = true;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
        let _ = fs::remove_dir_all(&self.dir);
    }
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

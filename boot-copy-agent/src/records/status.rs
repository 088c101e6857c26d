//! The agent's status file, `status.json` in the state directory (inside the log directory):
//! rewritten every second while the agent runs, marked stopped at a clean stop. `status` reads
//! it; the next start reads it to tell whether the previous run stopped cleanly.
use super::Counters;
use crate::context::{clock::rfc3339, procfs};
use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// The kernel's boot id and the process's start time (boot clock, ns): a pid alone may
    /// belong to another process after a reboot or pid reuse.
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub start_ns: u64,
    pub version: String,
    pub started: String,
    pub updated: String,
    pub stopped: bool,
    pub seq: u64,
    /// HMAC of record `seq`, when records are chained: the next run's first record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_hmac: Option<String>,
    /// SIGHUP reloads handled so far, and why the last one was refused (none: it was applied).
    #[serde(default)]
    pub reloads: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    pub counters: serde_json::Value,
}

pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    /// The status file in `dir`, creating the directory (0750) if needed.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        Ok(Self {
            path: dir.join("status.json"),
        })
    }

    pub fn read(&self) -> anyhow::Result<Option<Status>> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("parsing {}", self.path.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// The previous run's status if it did not stop cleanly. Refuses to go on if that run is
    /// still alive: two agents would report every alert twice.
    pub fn unclean_previous(&self) -> anyhow::Result<Option<Status>> {
        let Some(prev) = self.read().unwrap_or(None) else {
            return Ok(None);
        };
        if prev.stopped {
            return Ok(None);
        }
        if prev.pid != std::process::id() && running(&prev) {
            bail!(
                "another boot-copy-agent (pid {}) is running with state in {}; stop it first",
                prev.pid,
                self.path.display()
            );
        }
        Ok(Some(prev))
    }

    /// Atomically replaces the status file (0640).
    pub fn write(&self, status: &Status) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(status)?)?;
        fs::rename(&tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))
    }
}

impl Status {
    pub fn new(started: SystemTime, seq: u64, counters: &Counters, stopped: bool) -> Self {
        let this = this_process();
        Self {
            pid: std::process::id(),
            boot_id: this.boot_id.clone(),
            start_ns: this.start_ns,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: rfc3339(started),
            updated: rfc3339(SystemTime::now()),
            stopped,
            seq,
            chain_hmac: None,
            reloads: 0,
            reload_error: None,
            counters: counters.json(),
        }
    }
}

/// Whether the agent that wrote `status` still runs: same boot, and its pid is the same process.
pub fn running(status: &Status) -> bool {
    status.boot_id == boot_id()
        && procfs::stat(status.pid).is_ok_and(|(_, start)| start == status.start_ns)
}

/// This process's boot id and start time, read once (they do not change while it runs).
struct ThisProcess {
    boot_id: String,
    start_ns: u64,
}

fn this_process() -> &'static ThisProcess {
    static THIS: std::sync::OnceLock<ThisProcess> = std::sync::OnceLock::new();
    THIS.get_or_init(|| ThisProcess {
        boot_id: boot_id(),
        start_ns: procfs::stat(std::process::id()).map_or(0, |(_, start)| start),
    })
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unclean_detection() {
        let dir = std::env::temp_dir().join(format!("bc-status-{}", std::process::id()));
        let file = StatusFile::new(&dir).unwrap();
        assert!(file.unclean_previous().unwrap().is_none());
        let mut counters = Counters::default();
        counters.detect.alerts = 3;
        counters.daemon = Some(Default::default());
        let mut dead = Status::new(SystemTime::now(), 7, &counters, false);
        dead.pid = u32::MAX; // no such process: a run that died
        file.write(&dead).unwrap();
        let prev = file.unclean_previous().unwrap().expect("unclean");
        assert_eq!(prev.seq, 7);
        assert_eq!(prev.counters["alerts"], 3);
        file.write(&Status::new(SystemTime::now(), 8, &counters, true))
            .unwrap();
        assert!(file.unclean_previous().unwrap().is_none());
        let mut reused = Status::new(SystemTime::now(), 1, &counters, false);
        reused.pid = 1; // alive, but not the process that wrote the file
        file.write(&reused).unwrap();
        assert!(file.unclean_previous().unwrap().is_some());
        let mut live = Status::new(SystemTime::now(), 1, &counters, false);
        live.pid = 1;
        live.start_ns = procfs::stat(1).unwrap().1;
        file.write(&live).unwrap();
        assert!(
            file.unclean_previous().is_err(),
            "a running agent is refused"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

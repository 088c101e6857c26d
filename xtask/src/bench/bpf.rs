//! Kernel BPF run-time statistics of one agent's programs. Several agents may run on the machine
//! (other tests, other benchmarks), so the programs are found through the agent's own file
//! descriptors rather than by name.
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    fs,
    os::fd::{FromRawFd as _, OwnedFd},
    process::Command,
};

/// Run-time statistics are on while this lives (`BPF_ENABLE_STATS`: a reference the kernel
/// drops when the descriptor closes, so a crash leaves them off and another user's sysctl
/// toggling does not turn them off under us).
pub struct StatsOn {
    _fd: OwnedFd,
}

impl StatsOn {
    pub fn enable() -> anyhow::Result<Self> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        let attr = [BPF_STATS_RUN_TIME, 0u32];
        // SAFETY: the attribute is a valid `union bpf_attr` prefix for this command.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("enabling BPF run-time stats");
        }
        // SAFETY: the kernel just returned this descriptor to us.
        Ok(Self {
            _fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        })
    }
}

/// One program's totals at an instant.
#[derive(Clone, Copy, Default)]
pub struct Runs {
    pub ns: u64,
    pub count: u64,
}

impl Runs {
    pub fn since(self, before: Runs) -> Runs {
        Runs {
            ns: self.ns.saturating_sub(before.ns),
            count: self.count.saturating_sub(before.count),
        }
    }

    /// Nanoseconds per run.
    pub fn per_run(self) -> f64 {
        self.ns as f64 / self.count.max(1) as f64
    }
}

/// The programs an agent process holds, by name (`boot_copy_exec`, `_fork`).
pub struct AgentPrograms {
    pid: u32,
    /// Program id → name.
    names: BTreeMap<u32, String>,
}

impl AgentPrograms {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let ids: Vec<u32> = prog_fdinfo(pid)?.into_keys().collect();
        let out = Command::new("bpftool")
            .args(["prog", "show", "--json"])
            .output()
            .context("running bpftool")?;
        let progs: Value = serde_json::from_slice(&out.stdout)?;
        let names: BTreeMap<u32, String> = progs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let id = p["id"].as_u64()? as u32;
                ids.contains(&id)
                    .then(|| (id, p["name"].as_str().unwrap_or_default().to_owned()))
            })
            .collect();
        if !names.values().any(|n| n.contains("exec")) {
            bail!("agent {pid} holds no exec program (ids {ids:?})");
        }
        Ok(Self { pid, names })
    }

    /// Totals per program name now.
    pub fn snapshot(&self) -> anyhow::Result<BTreeMap<String, Runs>> {
        let info = prog_fdinfo(self.pid)?;
        Ok(self
            .names
            .iter()
            .filter_map(|(id, name)| Some((name.clone(), *info.get(id)?)))
            .collect())
    }
}

/// Per-program deltas between two snapshots.
pub fn deltas(
    before: &BTreeMap<String, Runs>,
    after: &BTreeMap<String, Runs>,
) -> BTreeMap<String, Runs> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            (name.clone(), a.since(b))
        })
        .collect()
}

/// The program whose name contains `part`.
pub fn program(d: &BTreeMap<String, Runs>, part: &str) -> Runs {
    d.iter()
        .filter(|(n, _)| n.contains(part))
        .map(|(_, r)| *r)
        .next()
        .unwrap_or_default()
}

/// `prog_id` → run totals, from the `/proc/PID/fdinfo` of the process's BPF program descriptors.
fn prog_fdinfo(pid: u32) -> anyhow::Result<BTreeMap<u32, Runs>> {
    let mut progs = BTreeMap::new();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).context("listing the agent's fds")?;
    for fd in fds.flatten() {
        let is_prog =
            fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(id) = field("prog_id:") {
            let runs = Runs {
                ns: field("run_time_ns:").unwrap_or(0),
                count: field("run_cnt:").unwrap_or(0),
            };
            progs.insert(id as u32, runs);
        }
    }
    Ok(progs)
}

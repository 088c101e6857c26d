//! The peer every Linux host already has: auditd with an execve rule (or a watch on /boot, the
//! one-line rule for file writes: `-w /boot -p wa`). For one block it starts
//! auditd if none runs, sets the backlog Debian's default rules set, adds the rule, and on drop
//! puts everything back as it found it (rule removed, a daemon it started stopped, the enabled
//! flag and backlog limit restored).
use super::procs;
use crate::status;
use anyhow::{Context as _, bail};
use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// An audit rule: the `auditctl` arguments that add it and those that delete it.
#[derive(Clone, Copy)]
pub struct Rule {
    add: &'static [&'static str],
    delete: &'static [&'static str],
}

impl Rule {
    /// `-a always,exit -S execve`.
    pub const EXECVE: Rule = Rule {
        add: &[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-F",
            "key=boot-copy-bench",
        ],
        delete: &[
            "-d",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve",
            "-F",
            "key=boot-copy-bench",
        ],
    };
    /// `-w /boot -p wa`: every write or attribute change under /boot.
    pub const BOOT_WRITES: Rule = Rule {
        add: &["-w", "/boot", "-p", "wa", "-k", "boot-copy-bench"],
        delete: &["-W", "/boot", "-p", "wa", "-k", "boot-copy-bench"],
    };
}

/// `-b 8192`, as in Debian's /etc/audit/rules.d/audit.rules.
const BACKLOG: &str = "8192";

pub struct Auditd {
    /// The daemon, when this block started it.
    started: Option<Child>,
    enabled_before: String,
    backlog_before: String,
    rule: Rule,
    rule_added: bool,
}

impl Auditd {
    /// auditd with the execve rule.
    pub fn start() -> anyhow::Result<Self> {
        Self::with(Rule::EXECVE)
    }

    pub fn with(rule: Rule) -> anyhow::Result<Self> {
        let before = AuditStatus::read()?;
        let mut peer = Self {
            started: None,
            enabled_before: before.get("enabled"),
            backlog_before: before.get("backlog_limit"),
            rule,
            rule_added: false,
        };
        if before.get("pid") == "0" {
            let child = Command::new("auditd")
                .arg("-n")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting auditd (cargo xtask setup installs it)")?;
            let pid = child.id().to_string();
            peer.started = Some(child);
            wait_for(|| Ok(AuditStatus::read()?.get("pid") == pid))
                .context("auditd did not register with the kernel")?;
        }
        auditctl(&["-e", "1"])?;
        auditctl(&["-b", BACKLOG])?;
        // A run killed mid-block left its rule behind: adding it again would fail.
        let _ = Command::new("auditctl")
            .args(rule.delete)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        auditctl(rule.add)?;
        peer.rule_added = true;
        Ok(peer)
    }

    /// CPU ticks of the daemon and of the kernel's `kauditd` thread together.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let pid: u32 = AuditStatus::read()?.get("pid").parse()?;
        let kthread = procs::pid_by_comm("kauditd").map_or(Ok(0), procs::cpu_ticks)?;
        Ok(procs::cpu_ticks(pid)? + kthread)
    }

    /// CPU time of the daemon and of `kauditd` together, in nanoseconds.
    pub fn cpu_ns(&self) -> anyhow::Result<u64> {
        let pid: u32 = AuditStatus::read()?.get("pid").parse()?;
        let kthread = procs::pid_by_comm("kauditd").map_or(Ok(0), procs::cpu_ns)?;
        Ok(procs::cpu_ns(pid)? + kthread)
    }

    /// Records the kernel could not queue (`lost`), so far.
    pub fn lost(&self) -> anyhow::Result<u64> {
        Ok(AuditStatus::read()?.get("lost").parse()?)
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if self.rule_added {
            let _ = auditctl(self.rule.delete);
        }
        if let Some(mut child) = self.started.take() {
            procs::signal(child.id(), libc::SIGTERM);
            let _ = child.wait();
        }
        let _ = auditctl(&["-b", &self.backlog_before]);
        let _ = auditctl(&["-e", &self.enabled_before]);
    }
}

fn auditctl(args: &[&str]) -> anyhow::Result<()> {
    status(Command::new("auditctl").args(args).stdout(Stdio::null()))
}

/// `auditctl -s`: "key value" lines.
struct AuditStatus(String);

impl AuditStatus {
    fn read() -> anyhow::Result<Self> {
        let out = Command::new("auditctl")
            .arg("-s")
            .output()
            .context("running auditctl (cargo xtask setup installs auditd)")?;
        if !out.status.success() {
            bail!(
                "auditctl -s failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn get(&self, key: &str) -> String {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(|v| v.split(' ').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }
}

fn wait_for(mut ok: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok()? {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out")
}

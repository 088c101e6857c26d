//! The `boot-copy-agent run` harness of the end-to-end tests: an agent writing into a directory
//! of its own, its records read back from the alert log, and scenarios run in a private mount
//! namespace with a tmpfs over /boot (`unshare -m`), so the host's /boot is never touched.
// Each test binary uses a part of the harness.
#![allow(dead_code)]
use serde_json::Value;
use std::{
    ffi::OsStr,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// `boot-copy-agent run --config CONFIG`, which must fail: its standard error.
pub fn refused_run(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .args(["run", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted; stderr: {err}");
    err
}

/// Makes the configuration load its rules from the directory `rules`.
pub fn use_rules_dir(config: &Path, rules: &Path) {
    let text = fs::read_to_string(config).unwrap();
    fs::write(
        config,
        format!("[rules]\npath = \"{}\"\n{text}", rules.display()),
    )
    .unwrap();
}

/// The published rule, Boot File Copy.
pub const PUBLISHED: &str = "5bda8597-69a6-4b9e-87a2-69a7c963ea83";
/// The strict companion rule.
pub const STRICT: &str = "995bf1fa-2bb9-4ac5-b686-73a539902f99";

/// How much slower than native this runs: the kernel matrix sets `BOOT_COPY_TEST_SLOWDOWN` (under
/// QEMU's emulation the verifier alone takes seconds).
pub fn slowdown() -> u32 {
    std::env::var("BOOT_COPY_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// How long to wait for the agent.
pub static WAIT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| Duration::from_secs(20) * slowdown());

/// A running `boot-copy-agent run` writing to an alert log in its own directory.
pub struct Agent {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// Starts the agent with `extra` appended to a config that points every file it writes into
    /// a fresh directory, and waits for its start record.
    pub fn start(tag: &str, extra: &str) -> Agent {
        let dir = tempdir(tag);
        let log = dir.join("log/alerts.ndjson");
        let state_dir = format!("state_dir = \"{}/log\"\n", dir.display());
        let health = if extra.contains("[health]\n") {
            extra.replace("[health]\n", &format!("[health]\n{state_dir}"))
        } else {
            format!("{extra}\n[health]\n{state_dir}")
        };
        let config = format!(
            "[sinks.alert_log]\npath = \"{}\"\n\n{health}",
            log.display()
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let child = spawn_run(&dir);
        let mut agent = Agent { child, dir, log };
        agent
            .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")
            .expect("start record");
        agent
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every record in the alert log; panics on a line that is not one JSON object. A last line
    /// without its newline is still being written, and is left for the next read.
    pub fn records(&self) -> Vec<Value> {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
            .collect()
    }

    /// The first record satisfying `pred` within `timeout`; panics if the agent exits.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.records().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited: {status}");
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Alerts of any rule whose `process.args` contain `arg`.
    pub fn alerts_with_arg(&self, arg: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], arg))
            .collect()
    }

    /// Alerts of rule `rule_id` whose `process.args` contain `arg`.
    pub fn alerts_of(&self, rule_id: &str, arg: &str) -> Vec<Value> {
        self.alerts_with_arg(arg)
            .into_iter()
            .filter(|r| r["rule"]["id"] == rule_id)
            .collect()
    }

    /// Alerts (of any rule) for process `pid`.
    pub fn alerts_for_pid(&self, pid: u32) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && r["process"]["pid"] == pid)
            .collect()
    }

    /// Runs a sentinel copy that must alert and waits for its alert: every exec before it has
    /// then been processed, so an absent alert is a verdict, not a race.
    pub fn sync(&mut self) {
        let marker = format!("/boot/sentinel-{}", unique());
        in_boot_namespace(&format!("cp /etc/hostname {marker}"));
        self.wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], &marker)
        })
        .expect("sentinel alert");
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGTERM; returns the exit status, how long the agent took to exit, and every record.
    pub fn stop(mut self) -> (std::process::ExitStatus, Duration, Vec<Value>) {
        let start = Instant::now();
        self.signal(nix::sys::signal::Signal::SIGTERM);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed(), self.records());
            }
            assert!(start.elapsed() < *WAIT, "agent ignores SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the agent with `sig` (SIGKILL: an unclean stop), then starts a new `run` with the
    /// same configuration (the harness now owns the new process) and waits for its start record.
    pub fn restart(&mut self, sig: nix::sys::signal::Signal) {
        self.signal(sig);
        self.child.wait().unwrap();
        let starts = |a: &Agent| {
            a.records()
                .iter()
                .filter(|r| r["event"]["action"] == "agent-started")
                .count()
        };
        let before = starts(self);
        self.child = spawn_run(&self.dir);
        let deadline = Instant::now() + *WAIT;
        while starts(self) == before {
            assert!(
                Instant::now() < deadline,
                "no start record after the restart"
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("restarted agent exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn_run(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .arg("run")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(Stdio::null())
        .spawn()
        .expect("agent starts")
}

/// A name no other test (or test binary) uses.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory (0755: the agent refuses configuration in directories others can write).
pub fn tempdir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/boot-copy-e2e-{tag}-{}", unique()));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub fn has_arg(args: &Value, arg: &str) -> bool {
    args.as_array().is_some_and(|a| a.iter().any(|x| x == arg))
}

/// Runs `script` with /bin/sh in a private mount namespace where /boot is an empty tmpfs.
pub fn in_boot_namespace(script: &str) {
    let full = format!("mount -t tmpfs boot-copy-test /boot && {script}");
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c", &full])
        .status()
        .expect("unshare runs");
    assert!(status.success(), "scenario failed: {script}");
}

/// A command that execs `program` with `args` (any bytes, no shell quoting) in a private mount
/// namespace where /boot is an empty tmpfs. The program keeps the pid of the spawned child and
/// has the caller as its parent.
pub fn exec_in_boot_namespace<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg("mount -t tmpfs boot-copy-test /boot && exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    cmd
}

/// A rule file in Elastic's detection-rules format with an EQL `query` of the test's own.
pub fn eql_rule(rule_id: &str, name: &str, description: &str, query: &str) -> String {
    format!(
        r#"[metadata]
creation_date = "2026/01/01"
maturity = "development"
updated_date = "2026/01/01"

[rule]
author = ["boot-copy tests"]
description = "{description}"
language = "eql"
license = "MIT"
name = "{name}"
risk_score = 21
rule_id = "{rule_id}"
severity = "low"
type = "eql"
version = 1
query = '''
{query}
'''
"#
    )
}

//! The strict companion rule "Boot File Copy (strict)" end-to-end: `boot-copy-agent run` with the
//! bundled rules on the real kernel. One scenario per evasion of the published rule: the
//! published rule does not alert, the strict rule does, once, naming the evasion. Every copy into
//! /boot happens inside a private mount namespace with a tmpfs over /boot (`unshare -m`), so the
//! host's /boot is never touched. Needs root (and busybox for the applet cases).
use serde_json::Value;
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

#[path = "support/ecs_schema.rs"]
mod ecs_schema;

const PUBLISHED: &str = "5bda8597-69a6-4b9e-87a2-69a7c963ea83";
const STRICT: &str = "995bf1fa-2bb9-4ac5-b686-73a539902f99";

/// How long to wait for the agent, scaled by `BOOT_COPY_TEST_SLOWDOWN` (the kernel matrix sets it:
/// under QEMU's emulation the verifier alone takes seconds).
static WAIT: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
    let factor = std::env::var("BOOT_COPY_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Duration::from_secs(20) * factor
});

/// A running `boot-copy-agent run` writing to an alert log in its own directory.
struct Agent {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// Starts the agent with `extra` appended to a config that points every file it writes into
    /// a fresh directory, and waits for its start record.
    fn start(tag: &str, extra: &str) -> Agent {
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
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .spawn()
            .expect("agent starts");
        let mut agent = Agent { child, dir, log };
        agent
            .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")
            .expect("start record");
        agent
    }

    fn records(&self) -> Vec<Value> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
            .collect()
    }

    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
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

    /// Alerts whose `process.args` contain `arg`.
    fn alerts_with_arg(&self, arg: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], arg))
            .collect()
    }

    /// Runs a sentinel copy that must alert and waits for its alert: every exec before it has
    /// then been processed, so an absent alert is a verdict, not a race.
    fn sync(&mut self) {
        let marker = format!("/boot/sentinel-{}", unique());
        in_boot_namespace(&format!("cp /etc/hostname {marker}"));
        self.wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], &marker)
        })
        .expect("sentinel alert");
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGTERM; returns the exit status, how long the agent took to exit, and every record.
    fn stop(mut self) -> (std::process::ExitStatus, Duration, Vec<Value>) {
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

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/boot-copy-strict-{tag}-{}", unique()));
    fs::create_dir_all(&dir).unwrap();
    // The agent refuses configuration in directories others can write.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn has_arg(args: &Value, arg: &str) -> bool {
    args.as_array().is_some_and(|a| a.iter().any(|x| x == arg))
}

/// Runs `script` with /bin/sh in a private mount namespace where /boot is an empty tmpfs.
fn in_boot_namespace(script: &str) {
    let full = format!("mount -t tmpfs boot-copy-test /boot && {script}");
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c", &full])
        .status()
        .expect("unshare runs");
    assert!(status.success(), "scenario failed: {script}");
}

fn busybox() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        !path.is_empty(),
        "busybox is needed (apt-get install -y busybox)"
    );
    fs::canonicalize(path).unwrap().display().to_string()
}

/// A scenario: a script run in the boot namespace with the unique source file `src` (its alerts
/// are found by that argument), and the evasion the strict alert must name (`None`: no alert of
/// either rule; `Some("published")`: exactly one alert, the published rule's).
struct Case {
    script: String,
    src: String,
    expect: Option<&'static str>,
}

fn source(work: &std::path::Path) -> String {
    let p = work.join(format!("src-{}", unique()));
    fs::write(&p, "boot-copy strict test\n").unwrap();
    p.display().to_string()
}

#[test]
fn each_evasion_alerts_once_under_the_strict_rule() {
    let mut agent = Agent::start("evasions", "");
    let work = tempdir("evasion-work");
    let w = work.display().to_string();
    let bb = busybox();
    fs::copy("/usr/bin/cp", work.join("xyz")).unwrap();
    std::os::unix::fs::symlink(&bb, work.join("cp")).unwrap();
    std::os::unix::fs::symlink("/boot", work.join("bl")).unwrap();
    let dash = fs::canonicalize("/bin/sh").unwrap();
    fs::copy(&dash, work.join("update-initramfs")).unwrap();
    fs::copy(&dash, work.join("grub-mkconfig")).unwrap();
    let mut cases = Vec::new();
    let mut case = |script: &dyn Fn(&str) -> String, expect: Option<&'static str>| {
        let src = source(&work);
        cases.push(Case {
            script: script(&src),
            src,
            expect,
        });
    };
    case(&|s| format!("cd /boot && cp {s} ."), Some("dot_segment"));
    case(&|s| format!("cd /boot && cp {s} ."), Some("relative_path"));
    case(
        &|s| format!("cd / && cp {s} boot/rel"),
        Some("relative_path"),
    );
    case(&|s| format!("cp {s} /boot"), Some("no_trailing_slash"));
    case(&|s| format!("cp {s} //boot/x"), Some("double_slash"));
    case(&|s| format!("cp {s} /./boot/x"), Some("dot_segment"));
    case(&|s| format!("cp {s} /tmp/../boot/x"), Some("dotdot"));
    case(&|s| format!("cp -t/boot {s}"), Some("joined_target_option"));
    case(
        &|s| format!("cp --target-directory=/boot {s}"),
        Some("long_target_option"),
    );
    case(&|s| format!("mv {s} /boot"), Some("no_trailing_slash"));
    case(
        &|s| format!("{bb} cp {s} /boot/y"),
        Some("multicall_applet"),
    );
    case(
        &|s| format!("{w}/cp {s} /boot/y2"),
        Some("multicall_applet"),
    );
    case(&|s| format!("{w}/xyz {s} /boot/b"), Some("renamed_binary"));
    case(&|s| format!("cp {s} {w}/bl/y"), Some("symlink_to_boot"));
    // The published rule's verdict stays: it alerts, the strict rule does not (no double alert).
    case(&|s| format!("cp {s} /boot/plain"), Some("published"));
    case(&|s| format!("cp -t /boot/ {s}"), Some("published"));
    // Nothing into /boot: no alert at all.
    case(&|s| format!("cp {s} /tmp/ && cp {s} {w}/elsewhere"), None);
    // The published rule's exclusions suppress the strict rule for legitimate tooling.
    case(
        &|s| format!("{w}/update-initramfs -c 'cd /boot && cp {s} .; true'"),
        None,
    );
    case(
        &|s| format!("{w}/grub-mkconfig -c 'cp {s} /boot; true'"),
        None,
    );
    for c in &cases {
        in_boot_namespace(&c.script);
    }
    agent.sync();
    let schema = ecs_schema::Schema::load();
    let mut failures = Vec::new();
    for c in &cases {
        let alerts = agent.alerts_with_arg(&c.src);
        let ok = match c.expect {
            None => alerts.is_empty(),
            Some("published") => alerts.len() == 1 && alerts[0]["rule"]["id"] == PUBLISHED,
            Some(evasion) => {
                alerts.len() == 1
                    && alerts[0]["rule"]["id"] == STRICT
                    && alerts[0]["rule"]["name"] == "Boot File Copy (strict)"
                    && alerts[0]["boot_copy"]["strict"]["into_boot"] == true
                    && alerts[0]["boot_copy"]["strict"]["evasion"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == evasion))
            }
        };
        for a in &alerts {
            let problems = schema.violations(a);
            assert!(problems.is_empty(), "alert is not ECS 9.4.0: {problems:#?}");
        }
        if !ok {
            failures.push(format!(
                "`{}`: expected {:?}, got {}",
                c.script,
                c.expect,
                serde_json::to_string_pretty(
                    &alerts
                        .iter()
                        .map(|a| (a["rule"]["name"].clone(), a["boot_copy"]["strict"].clone()))
                        .collect::<Vec<_>>()
                )
                .unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn strict_rule_can_be_disabled() {
    let mut agent = Agent::start("disabled", "[rules]\nstrict = false\n");
    let work = tempdir("disabled-work");
    let src = source(&work);
    in_boot_namespace(&format!("cp {src} /boot"));
    agent.sync();
    assert!(agent.alerts_with_arg(&src).is_empty());
    let (status, _, records) = agent.stop();
    assert!(status.success());
    assert_eq!(
        records[0]["boot_copy"]["prefilter"],
        "process.name in (\"cp\", \"mv\")"
    );
    fs::remove_dir_all(&work).unwrap();
}

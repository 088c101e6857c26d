//! End-to-end: `boot-copy-agent run` with the bundled rule on the real kernel. Every copy into
//! /boot happens inside a private mount namespace with a tmpfs over /boot (`unshare -m`), so the
//! host's /boot is never touched. Needs root.
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

/// How much slower than native this runs: the kernel matrix sets `BOOT_COPY_TEST_SLOWDOWN` (under
/// QEMU's emulation the verifier alone takes seconds).
fn slowdown() -> u32 {
    std::env::var("BOOT_COPY_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// How long to wait for the agent.
static WAIT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| Duration::from_secs(20) * slowdown());

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

    /// Alerts of the published rule whose `process.args` contain `arg` (the strict companion
    /// rule's alerts are tested in `tests/strict.rs`).
    fn alerts_with_arg(&self, arg: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| {
                r["event"]["kind"] == "alert"
                    && r["rule"]["id"] == "5bda8597-69a6-4b9e-87a2-69a7c963ea83"
                    && has_arg(&r["process"]["args"], arg)
            })
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
    let dir = PathBuf::from(format!("/tmp/boot-copy-daemon-{tag}-{}", unique()));
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

#[test]
fn cp_and_mv_into_boot_alert_once_with_ecs_fields() {
    let mut agent = Agent::start("basic", "");
    let cp_target = format!("/boot/cp-{}", unique());
    let mv_target = format!("/boot/mv-{}", unique());
    in_boot_namespace(&format!(
        "cp /etc/hostname {cp_target} && cp /etc/hostname /tmp/mv-src-$$ && mv /tmp/mv-src-$$ {mv_target}"
    ));
    agent.sync();
    let cp = agent.alerts_with_arg(&cp_target);
    let mv = agent.alerts_with_arg(&mv_target);
    assert_eq!(cp.len(), 1, "{cp:#?}");
    assert_eq!(mv.len(), 1, "{mv:#?}");
    let a = &cp[0];
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["category"][0], "process");
    assert_eq!(a["event"]["severity"], 21);
    assert_eq!(a["event"]["risk_score"], 21);
    assert_eq!(a["rule"]["id"], "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
    assert_eq!(a["rule"]["name"], "Boot File Copy");
    assert_eq!(a["rule"]["version"], "2");
    assert_eq!(a["rule"]["uuid"], a["rule"]["id"]);
    assert_eq!(a["rule"]["ruleset"], "boot-copy");
    assert_eq!(a["rule"]["license"], "Elastic License v2");
    assert_eq!(a["agent"]["type"], "boot-copy");
    assert_eq!(a["ecs"]["version"], "9.4.0");
    assert_eq!(a["threat"]["tactic"]["id"][0], "TA0003");
    assert_eq!(a["process"]["name"], "cp");
    assert_eq!(a["process"]["parent"]["name"], "dash");
    assert_eq!(mv[0]["process"]["name"], "mv");
    let message = a["message"].as_str().unwrap();
    assert!(
        message.contains(&cp_target) && message.contains("under dash"),
        "{message}"
    );
    let schema = ecs_schema::Schema::load();
    for alert in [&cp[0], &mv[0]] {
        let problems = schema.violations(alert);
        assert!(problems.is_empty(), "alert is not ECS 9.4.0: {problems:#?}");
    }
    let (status, took, _) = agent.stop();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(2) * slowdown(),
        "SIGTERM took {took:?}"
    );
}

#[test]
fn verdicts_follow_elastic_semantics() {
    let mut agent = Agent::start("verdicts", "");
    let work = tempdir("verdict-work");
    let dash = fs::canonicalize("/bin/sh").unwrap();
    // Parents whose executables are really named like the rule's excluded tools.
    for name in [
        "update-initramfs",
        "grub-mkconfig",
        "sudo",
        "update-grub-gfxpayload",
    ] {
        fs::copy(&dash, work.join(name)).unwrap();
    }
    // (script, expect an alert)
    let mut cases: Vec<(String, String, bool)> = Vec::new();
    for name in [
        "update-initramfs",
        "grub-mkconfig",
        "sudo",
        "update-grub-gfxpayload",
    ] {
        let target = format!("/boot/{name}-{}", unique());
        let script = format!(
            "{} -c 'cp /etc/hostname {target}; true'",
            work.join(name).display()
        );
        cases.push((script, target, false));
    }
    // `sudo sh -c 'cp …'`: the parent of cp is sh, not sudo.
    let target = format!("/boot/sudo-sh-{}", unique());
    let script = format!(
        "{} -c \"/bin/sh -c 'cp /etc/hostname {target}; true'\"",
        work.join("sudo").display()
    );
    cases.push((script, target, true));
    // A maintainer script under /var/lib/dpkg/info/ (a private tmpfs there).
    let target = format!("/boot/postinst-{}", unique());
    let script = format!(
        "mount -t tmpfs t /var/lib/dpkg/info && printf '#!/bin/sh\\ncp /etc/hostname {target}\\ntrue\\n' > /var/lib/dpkg/info/grub-pc.postinst && chmod +x /var/lib/dpkg/info/grub-pc.postinst && /var/lib/dpkg/info/grub-pc.postinst configure"
    );
    cases.push((script, target, false));
    // `/bin/sh /usr/bin/mkinitcpio` (an overlay over /usr/bin keeps the host's untouched).
    let target = format!("/boot/mkinitcpio-{}", unique());
    let script = format!(
        "mkdir -p {w}/upper {w}/work && mount -t overlay o -o lowerdir=/usr/bin,upperdir={w}/upper,workdir={w}/work /usr/bin && printf 'cp /etc/hostname {target}\\ntrue\\n' > /usr/bin/mkinitcpio && /bin/sh /usr/bin/mkinitcpio",
        w = work.display()
    );
    cases.push((script, target, false));
    // rpm scriptlets: `/var/tmp/rpm-tmp.*` is excluded; `.` is literal, so rpm-tmpX is not.
    for (file, alert) in [("rpm-tmp.Xy12", false), ("rpm-tmpXy12", true)] {
        let target = format!("/boot/{file}-{}", unique());
        let path = format!("/var/tmp/{file}-{}", unique());
        fs::write(&path, format!("cp /etc/hostname {target}\ntrue\n")).unwrap();
        cases.push((format!("/bin/sh {path}; rm -f {path}"), target, alert));
    }
    // No trailing slash: `/boot` itself does not match `/boot/*`.
    cases.push(("cp /etc/hostname /boot".into(), "/boot".into(), false));
    // Case-insensitive pattern: /BOOT/ matches (the copy itself fails: no such directory).
    let target = format!("/BOOT/upper-{}", unique());
    cases.push((format!("cp /etc/hostname {target} || true"), target, true));
    for (script, _, _) in &cases {
        in_boot_namespace(script);
    }
    agent.sync();
    for (script, target, expect) in &cases {
        let alerts = agent.alerts_with_arg(target);
        let want = usize::from(*expect);
        assert_eq!(
            alerts.len(),
            want,
            "`{script}`: expected {want} alerts, got {alerts:#?}"
        );
    }
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn configured_exception_suppresses_its_case() {
    let exception = r#"
[[exceptions."5bda8597-69a6-4b9e-87a2-69a7c963ea83"]]
name = "kernel installer"
entries = [{ field = "process.args", operator = "matches", value = "/boot/vmlinuz-*" }]
"#;
    let mut agent = Agent::start("exception", exception);
    let excepted = format!("/boot/vmlinuz-{}", unique());
    let other = format!("/boot/other-{}", unique());
    in_boot_namespace(&format!(
        "cp /etc/hostname {excepted}; cp /etc/hostname {other}"
    ));
    agent.sync();
    assert!(agent.alerts_with_arg(&excepted).is_empty());
    assert_eq!(agent.alerts_with_arg(&other).len(), 1);
}

#[test]
fn alert_budget_suppresses_and_reports() {
    let mut agent = Agent::start(
        "budget",
        "[alert_budget]\nmax_alerts = 100\nwindow_seconds = 8\n",
    );
    let tag = unique();
    in_boot_namespace(&format!(
        "i=0; while [ $i -lt 150 ]; do cp /etc/hostname /boot/budget-{tag}-$i; i=$((i+1)); done"
    ));
    let record = agent
        .wait_for(Duration::from_secs(30), |r| {
            r["event"]["action"] == "alerts-suppressed"
                && r["rule"]["id"] == "5bda8597-69a6-4b9e-87a2-69a7c963ea83"
        })
        .expect("suppression record");
    assert_eq!(record["boot_copy"]["suppressed"]["count"], 50);
    assert_eq!(record["rule"]["id"], "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
    let alerts = agent
        .records()
        .into_iter()
        .filter(|r| {
            r["event"]["kind"] == "alert"
                && r["process"]["command_line"]
                    .as_str()
                    .is_some_and(|c| c.contains(&format!("budget-{tag}-")))
        })
        .count();
    assert_eq!(alerts, 100);
}

#[test]
fn records_are_numbered_and_health_is_reported() {
    let agent = Agent::start("health", "[health]\nheartbeat_seconds = 1\n");
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _, records) = agent.stop();
    assert!(status.success());
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["boot_copy"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gapless sequence"
    );
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["event"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"agent-started"));
    assert!(actions.contains(&"heartbeat"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"agent-stopped"));
    // The bundled strict rule adds the copy tools and multi-call binaries it recognises.
    assert_eq!(
        records[0]["boot_copy"]["prefilter"],
        "process.name in (\"busybox\", \"coreutils\", \"cp\", \"install\", \"mv\", \"rsync\")"
    );
    let schema = ecs_schema::Schema::load();
    for r in &records {
        let problems = schema.violations(r);
        assert!(
            problems.is_empty(),
            "{}: {problems:#?}",
            r["event"]["action"]
        );
    }
}

#[test]
fn unclean_stop_is_reported_at_the_next_start() {
    let agent = Agent::start("unclean", "");
    let config = agent.dir.join("config.toml");
    let dir = agent.dir.clone();
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.join("log/alerts.ndjson");
    let deadline = Instant::now() + *WAIT;
    let found = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if let Some(r) = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["event"]["action"] == "previous-run-unclean")
        {
            break Some(r);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    second.wait().unwrap();
    let r = found.expect("unclean-stop record");
    assert_eq!(r["boot_copy"]["previous"]["pid"], agent.child.id());
    assert!(r["event"]["start"].is_string());
}

#[test]
fn bad_config_fails_before_attaching() {
    let dir = tempdir("badconfig");
    let config = dir.join("config.toml");
    fs::write(&config, "[alert_budget]\nmax_alerts = \"many\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&config.display().to_string())
            && err.contains("line 2")
            && err.contains("max_alerts"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sighup_with_a_bad_rule_keeps_the_running_rules() {
    let mut agent = Agent::start("reload", "");
    let config = agent.dir.join("config.toml");
    let rules = agent.dir.join("rules");
    fs::create_dir(&rules).unwrap();
    fs::write(
        rules.join("broken.toml"),
        "[rule]\nquery = 'sequence [process where true]'\n",
    )
    .unwrap();
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        format!("[rules]\npath = \"{}\"\n{text}", rules.display()),
    )
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let failed = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "reload-failed")
        .expect("reload-failed record");
    assert!(
        failed["message"].as_str().unwrap().contains("broken.toml"),
        "{failed}"
    );
    agent.sync(); // the bundled rule still alerts
}

#[test]
fn status_and_metrics_show_the_live_counters() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Agent::start(
        "status",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    agent.sync();
    std::thread::sleep(Duration::from_millis(1500)); // the status file is rewritten every second
    let out = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .args(["status", "--config"])
        .arg(agent.dir.join("config.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("(pid {}): running", agent.child.id())),
        "{text}"
    );
    let alerts_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("alerts "))
        .unwrap();
    assert!(
        alerts_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1,
        "{text}"
    );

    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.contains("boot_copy_alerts_total "), "{body}");
    assert!(body.contains("boot_copy_ringbuf_drops_total 0"), "{body}");
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .output_with_stdin(body.as_bytes());
    let said =
        String::from_utf8_lossy(&promtool.stdout) + String::from_utf8_lossy(&promtool.stderr);
    assert!(
        promtool.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

/// `Command::output` with bytes on stdin.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output;
}

impl OutputWithStdin for Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// A copy of the kernel's BTF in which member `member` of `struct name` is renamed (its name
/// string gets a different first byte: same length, so every offset stays valid). Relocating
/// against it is what loading on a kernel without that field looks like.
fn btf_without_member(name: &str, member: &str, out: &std::path::Path) {
    let mut btf = fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    assert_eq!(&btf[..2], &0xeb9fu16.to_le_bytes(), "BTF magic");
    let hdr_len = u32_at(&btf, 4) as usize;
    let types = hdr_len + u32_at(&btf, 8) as usize;
    let types_end = types + u32_at(&btf, 12) as usize;
    let strings = hdr_len + u32_at(&btf, 16) as usize;
    let string = |b: &[u8], off: u32| -> Vec<u8> {
        let s = &b[strings + off as usize..];
        s[..s.iter().position(|&c| c == 0).unwrap()].to_vec()
    };
    let mut at = types;
    let mut patched = None;
    while at < types_end && patched.is_none() {
        let name_off = u32_at(&btf, at);
        let info = u32_at(&btf, at + 4);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        at += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,          // int, var, decl_tag
            3 => 12,                   // array
            4 | 5 => vlen * 12,        // struct, union: members
            6 | 13 => vlen * 8,        // enum, func_proto
            15 | 19 => vlen * 12,      // datasec, enum64
            2 | 7..=12 | 16 | 18 => 0, // ptr, fwd, typedef, qualifiers, func, float, type_tag
            k => panic!("unknown BTF kind {k}"),
        };
        if kind == 4 && string(&btf, name_off) == name.as_bytes() {
            for m in 0..vlen {
                let member_name = u32_at(&btf, at + m * 12);
                if string(&btf, member_name) == member.as_bytes() {
                    patched = Some(strings + member_name as usize);
                }
            }
        }
        at += extra;
    }
    let pos = patched.unwrap_or_else(|| panic!("no member {name}.{member} in the kernel BTF"));
    // The name is a string of its own, not the tail of another one.
    assert_eq!(btf[pos - 1], 0);
    btf[pos] = if btf[pos] == b'x' { b'y' } else { b'x' };
    fs::write(out, btf).unwrap();
}

/// A BTF without `task_struct.start_boottime` (as kernels before 5.5): the agent still loads,
/// says which field is missing, alerts with every other field, leaves the process start time
/// and entity id out and counts the records.
#[test]
fn missing_kernel_field_degrades_its_ecs_fields_only() {
    let dir = tempdir("btf");
    let btf = dir.join("vmlinux-no-start-boottime");
    btf_without_member("task_struct", "start_boottime", &btf);
    let mut agent = Agent::start(
        "degraded",
        &format!("[sensor]\nbtf = \"{}\"\n", btf.display()),
    );
    let started = agent
        .records()
        .into_iter()
        .find(|r| r["event"]["action"] == "agent-started")
        .unwrap();
    assert_eq!(
        started["boot_copy"]["sensor"]["degraded_fields"],
        serde_json::json!(["task_struct.start_boottime"]),
        "{started:#}"
    );
    assert!(
        started["message"]
            .as_str()
            .unwrap()
            .contains("task_struct.start_boottime")
    );
    let target = format!("/boot/degraded-{}", unique());
    in_boot_namespace(&format!("cp /etc/hostname {target}"));
    agent.sync();
    let alerts = agent.alerts_with_arg(&target);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let p = &alerts[0]["process"];
    assert_eq!(p["name"], "cp");
    assert_eq!(
        p["args"],
        serde_json::json!(["cp", "/etc/hostname", target])
    );
    assert!(p["pid"].as_u64().unwrap() > 0);
    assert!(p["working_directory"].is_string());
    assert_eq!(p["parent"]["name"], "dash");
    assert!(p["user"]["id"].is_string());
    for absent in [
        &p["start"],
        &p["entity_id"],
        &p["parent"]["start"],
        &p["parent"]["entity_id"],
    ] {
        assert!(absent.is_null(), "{p:#}");
    }
    let (status, _, records) = agent.stop();
    assert!(status.success());
    let stopped = records.last().unwrap();
    assert_eq!(stopped["event"]["action"], "agent-stopped");
    // The cp and the sentinel cp at least.
    let degraded = stopped["boot_copy"]["counters"]["degraded_records"]
        .as_u64()
        .unwrap();
    assert!(degraded >= 2, "{stopped:#}");
    fs::remove_dir_all(&dir).unwrap();
}

/// With the kernel's own BTF nothing is degraded and nothing is counted.
#[test]
fn kernel_btf_degrades_nothing() {
    let mut agent = Agent::start("not-degraded", "");
    agent.sync();
    let (_, _, records) = agent.stop();
    assert_eq!(
        records[0]["boot_copy"]["sensor"]["degraded_fields"],
        serde_json::json!([])
    );
    let stopped = records.last().unwrap();
    assert_eq!(stopped["boot_copy"]["counters"]["degraded_records"], 0);
    let alert = records
        .iter()
        .find(|r| r["event"]["kind"] == "alert")
        .unwrap();
    assert!(alert["process"]["start"].is_string() && alert["process"]["entity_id"].is_string());
}

/// A `sensor.btf` that is missing or not BTF stops the agent before it loads anything, with a
/// message naming the file.
#[test]
fn bad_sensor_btf_fails_before_attaching() {
    let dir = tempdir("badbtf");
    let garbage = dir.join("garbage.btf");
    fs::write(&garbage, b"not BTF at all, just text\n").unwrap();
    for btf in [dir.join("missing.btf"), garbage] {
        let config = dir.join("config.toml");
        let log = dir.join("log/alerts.ndjson");
        fs::write(
            &config,
            format!(
                "[sensor]\nbtf = \"{}\"\n[sinks.alert_log]\npath = \"{}\"\n[health]\nstate_dir = \"{}/log\"\n",
                btf.display(),
                log.display(),
                dir.display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&btf.display().to_string()) && err.contains("sensor.btf"),
            "{err}"
        );
        // Nothing was started: no start record.
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("agent-started"), "{text}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

//! End-to-end: `boot-copy-agent run` with the bundled rule on the real kernel. Every copy into
//! /boot happens inside a private mount namespace with a tmpfs over /boot (`unshare -m`), so the
//! host's /boot is never touched. Needs root.
use serde_json::Value;
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use crate::AGENT;
use boot_copy_harness::{
    Agent, PUBLISHED, WAIT, in_boot_namespace, slowdown, tempdir, unique, use_rules_dir,
};

#[test]
fn cp_and_mv_into_boot_alert_once_with_ecs_fields() {
    let mut agent = Agent::start(AGENT, "basic", "").unwrap();
    cp_and_mv_alert_once(&mut agent);
    let (status, took, _) = agent.stop().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(2) * slowdown(),
        "SIGTERM took {took:?}"
    );
}

fn cp_and_mv_alert_once(agent: &mut Agent) {
    let cp_target = format!("/boot/cp-{}", unique());
    let mv_target = format!("/boot/mv-{}", unique());
    in_boot_namespace(&format!(
        "cp /etc/hostname {cp_target} && cp /etc/hostname /tmp/mv-src-$$ && mv /tmp/mv-src-$$ {mv_target}"
    )).unwrap();
    agent.sync().unwrap();
    let cp = agent.alerts_of(PUBLISHED, &cp_target);
    let mv = agent.alerts_of(PUBLISHED, &mv_target);
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
    // `message` is the rule's name, the same for every alert of the rule (Kibana's External
    // Alerts rule names its alerts by it); the summary is `event.reason`.
    assert_eq!(
        (&a["message"], &mv[0]["message"]),
        (&"Boot File Copy".into(), &"Boot File Copy".into())
    );
    let reason = a["event"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&cp_target) && reason.contains("under dash"),
        "{reason}"
    );
    let schema = crate::support::ecs_schema::Schema::load();
    for alert in [&cp[0], &mv[0]] {
        let problems = schema.violations(alert);
        assert!(problems.is_empty(), "alert is not ECS 9.4.0: {problems:#?}");
    }
}

#[test]
fn verdicts_follow_elastic_semantics() {
    verdicts(&mut Agent::start(AGENT, "verdicts", "").unwrap());
}

fn verdicts(agent: &mut Agent) {
    let work = tempdir("verdict-work").unwrap();
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
        in_boot_namespace(script).unwrap();
    }
    agent.sync().unwrap();
    for (script, target, expect) in &cases {
        let alerts = agent.alerts_of(PUBLISHED, target);
        let want = usize::from(*expect);
        assert_eq!(
            alerts.len(),
            want,
            "`{script}`: expected {want} alerts, got {alerts:#?}"
        );
    }
    fs::remove_dir_all(&work).unwrap();
}

const EXCEPTION: &str = r#"
[[exceptions."5bda8597-69a6-4b9e-87a2-69a7c963ea83"]]
name = "kernel installer"
entries = [{ field = "process.args", operator = "matches", value = "/boot/vmlinuz-*" }]
"#;

#[test]
fn configured_exception_suppresses_its_case() {
    exception_suppresses(&mut Agent::start(AGENT, "exception", EXCEPTION).unwrap());
}

/// The alert scenarios in turn against one agent: the kernel matrix runs this, since under
/// emulation loading the programs costs seconds per agent.
#[test]
fn alert_scenarios_on_one_agent() {
    let mut agent = Agent::start(AGENT, "matrix", EXCEPTION).unwrap();
    cp_and_mv_alert_once(&mut agent);
    verdicts(&mut agent);
    exception_suppresses(&mut agent);
}

fn exception_suppresses(agent: &mut Agent) {
    let excepted = format!("/boot/vmlinuz-{}", unique());
    let other = format!("/boot/other-{}", unique());
    in_boot_namespace(&format!(
        "cp /etc/hostname {excepted}; cp /etc/hostname {other}"
    ))
    .unwrap();
    agent.sync().unwrap();
    assert!(agent.alerts_of(PUBLISHED, &excepted).is_empty());
    assert_eq!(agent.alerts_of(PUBLISHED, &other).len(), 1);
}

#[test]
fn alert_budget_suppresses_and_reports() {
    let mut agent = Agent::start(
        AGENT,
        "budget",
        "[alert_budget]\nmax_alerts = 100\nwindow_seconds = 8\n",
    )
    .unwrap();
    let tag = unique();
    in_boot_namespace(&format!(
        "i=0; while [ $i -lt 150 ]; do cp /etc/hostname /boot/budget-{tag}-$i; i=$((i+1)); done"
    ))
    .unwrap();
    let record = agent
        // Reported once the 8 s window closes.
        .wait_for(*WAIT + Duration::from_secs(10), |r| {
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
    let agent = Agent::start(AGENT, "health", "[health]\nheartbeat_seconds = 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _, records) = agent.stop().unwrap();
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
    let schema = crate::support::ecs_schema::Schema::load();
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
    use nix::sys::signal::Signal;
    let mut agent = Agent::start(AGENT, "unclean", "").unwrap();
    agent.sync().unwrap();
    let seq = |r: &Value| r["boot_copy"]["seq"].as_u64().unwrap();
    let synced = seq(agent.records().last().unwrap());
    // The status file is rewritten every second: let it catch up with the sync.
    let status = agent.dir().join("log/status.json");
    let deadline = std::time::Instant::now() + *WAIT;
    while fs::read_to_string(&status)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_none_or(|v| v["seq"].as_u64().is_none_or(|s| s < synced))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "status.json lags behind seq {synced}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_pid = agent.pid();
    let killed_at = SystemTime::now();
    agent.restart(Signal::SIGKILL).unwrap();
    let restarted_at = SystemTime::now();
    let records = agent.records();
    let unclean: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["action"] == "previous-run-unclean")
        .collect();
    assert_eq!(unclean.len(), 1, "{unclean:#?}");
    let r = unclean[0];
    assert_eq!(r["event"]["kind"], "state");
    assert_eq!(r["boot_copy"]["previous"]["pid"], first_pid);
    // The previous run's last status write: after the sync, at most its last record (other
    // processes on the machine may copy into their own /boot and raise alerts meanwhile).
    let old_run = records
        .iter()
        .take_while(|x| x["event"]["action"] != "previous-run-unclean");
    let old_last = old_run.map(seq).max().unwrap();
    let last_seq = r["boot_copy"]["previous"]["last_seq"].as_u64().unwrap();
    assert!(
        (synced..=old_last).contains(&last_seq),
        "{last_seq} not in {synced}..={old_last}"
    );
    assert_eq!(r["boot_copy"]["seq"], 1, "the new run's first record");
    // Nothing was watched from the previous run's last sign of life until this start.
    let time = |v: &Value| humantime::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let (start, end) = (time(&r["event"]["start"]), time(&r["event"]["end"]));
    assert!(
        // Written every second; a loaded machine may delay a write by a few.
        start <= killed_at
            && killed_at.duration_since(start).unwrap() < Duration::from_secs(5) * slowdown(),
        "span starts at the last status write before the kill: {r}"
    );
    assert!(end >= killed_at && end <= restarted_at, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains(&format!("(pid {first_pid}) did not stop cleanly")),
        "{r}"
    );
    agent.sync().unwrap(); // the new run detects
    // A clean stop is not reported as unclean at the next start.
    agent.restart(Signal::SIGTERM).unwrap();
    let unclean = agent
        .records()
        .iter()
        .filter(|r| r["event"]["action"] == "previous-run-unclean")
        .count();
    assert_eq!(unclean, 1);
}

#[test]
fn every_record_has_a_unique_id_a_creation_time_and_its_sequence_across_restarts() {
    let mut agent = Agent::start(AGENT, "eventid", "").unwrap();
    agent.sync().unwrap();
    agent.restart(nix::sys::signal::Signal::SIGTERM).unwrap();
    agent.sync().unwrap();
    agent.restart(nix::sys::signal::Signal::SIGKILL).unwrap();
    agent.sync().unwrap();
    let records = agent.records();
    let starts = records
        .iter()
        .filter(|r| r["event"]["action"] == "agent-started")
        .count();
    assert_eq!(starts, 3);
    let mut ids = std::collections::BTreeSet::new();
    for r in &records {
        let id = r["event"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no event.id: {r}"));
        assert!(ids.insert(id.to_owned()), "event.id {id} twice");
        assert_eq!(r["event"]["sequence"], r["boot_copy"]["seq"], "{r}");
        let created = r["event"]["created"].as_str().unwrap();
        humantime::parse_rfc3339(created).unwrap_or_else(|e| panic!("{created}: {e}"));
    }
    // Numbers restart with each run; the ids do not repeat.
    let ones = records
        .iter()
        .filter(|r| r["event"]["sequence"] == 1)
        .count();
    assert_eq!(ones, 3);
}

#[test]
fn bad_config_fails_before_attaching() {
    let dir = tempdir("badconfig").unwrap();
    let config = dir.join("config.toml");
    fs::write(&config, "[alert_budget]\nmax_alerts = \"many\"\n").unwrap();
    let err = boot_copy_harness::refused_run(AGENT, &config).unwrap();
    assert!(
        err.contains(&config.display().to_string())
            && err.contains("line 2")
            && err.contains("max_alerts"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_configuration_exits_with_ex_config() {
    let dir = tempdir("exconfig").unwrap();
    let config = dir.join("config.toml");
    let run = |config: &std::path::Path| {
        Command::new(AGENT)
            .args(["run", "--config"])
            .arg(config)
            .output()
            .unwrap()
            .status
            .code()
    };
    // An unknown key, an invalid rule directory, a loose file mode: all 78, so that the unit's
    // RestartPreventExitStatus=78 stops the restart loop.
    fs::write(&config, "no_such_key = 1\n").unwrap();
    assert_eq!(run(&config), Some(78));
    fs::write(&config, "[rules]\npath = \"/nonexistent/rules\"\n").unwrap();
    assert_eq!(run(&config), Some(78));
    fs::write(&config, "").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(run(&config), Some(78));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reload_command_waits_for_the_agent_and_fails_when_it_refuses() {
    let mut agent = Agent::start(AGENT, "reloadcmd", "").unwrap();
    let config = agent.dir().join("config.toml");
    let reload = || {
        Command::new(AGENT)
            .args(["reload", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let rules = agent.dir().join("rules");
    fs::create_dir(&rules).unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/boot-file-copy.toml"),
        rules.join("boot-file-copy.toml"),
    )
    .unwrap();
    fs::write(rules.join("broken.toml"), "[rule]\nname = \"broken\"\n").unwrap();
    use_rules_dir(&config, &rules).unwrap();
    let out = reload();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("broken.toml"),
        "{err}"
    );
    // It returned after the agent's verdict: the record is already there.
    assert!(
        agent
            .records()
            .iter()
            .any(|r| r["event"]["action"] == "reload-failed"),
        "reload returned before the agent reported"
    );
    fs::remove_file(rules.join("broken.toml")).unwrap();
    let out = reload();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        agent
            .records()
            .iter()
            .any(|r| r["event"]["action"] == "rules-reloaded"),
        "reload returned before the agent reported"
    );
    agent.sync().unwrap();
}

/// An agent serving metrics on a free loopback port, and the port.
fn agent_with_metrics(tag: &str) -> (Agent, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    (Agent::start(AGENT, tag, &extra).unwrap(), port)
}

#[test]
fn idle_connections_from_a_user_cannot_starve_the_metrics_endpoint() {
    let (mut agent, port) = agent_with_metrics("idleconns");
    // nobody opens 2,000 connections and holds them, sending nothing.
    let hold = r#"
use IO::Socket::INET;
my @held;
for (1 .. 2000) {
    push @held, IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0], Proto => "tcp")
        or die "connect: $!";
}
$| = 1;
print "held\n";
sleep 60;
"#;
    let mut holder = Command::new("prlimit")
        .args([
            "--nofile=4096",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .args(["/usr/bin/perl", "-e", hold])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    use std::io::{Read, Write};
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:.200}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    agent.sync().unwrap(); // alerts are still written
    let fds = fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .count();
    assert!(fds < 100, "the agent holds {fds} descriptors");
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn sighup_with_a_bad_rule_keeps_the_running_rules() {
    let mut agent = Agent::start(AGENT, "reload", "").unwrap();
    let config = agent.dir().join("config.toml");
    let rules = agent.dir().join("rules");
    fs::create_dir(&rules).unwrap();
    fs::write(
        rules.join("broken.toml"),
        "[rule]\nquery = 'sequence [process where true]'\n",
    )
    .unwrap();
    boot_copy_harness::use_rules_dir(&config, &rules).unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    let failed = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "reload-failed")
        .expect("reload-failed record");
    assert!(
        failed["message"].as_str().unwrap().contains("broken.toml"),
        "{failed}"
    );
    agent.sync().unwrap(); // the bundled rule still alerts
}

#[test]
fn status_and_metrics_show_the_live_counters() {
    let (mut agent, port) = agent_with_metrics("status");
    agent.sync().unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // the status file is rewritten every second
    let out = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .args(["status", "--config"])
        .arg(agent.dir().join("config.toml"))
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

/// A reload whose rules watch another process name updates the kernel prefilter: the new
/// name's execs reach the rule without a restart.
#[test]
fn sighup_with_new_process_names_updates_the_kernel_prefilter() {
    let bundled = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/boot-file-copy.toml"),
    )
    .unwrap();
    let names = r#"process.name in ("cp", "mv")"#;
    assert!(bundled.contains(names));
    let dir = tempdir("prefilter-rules").unwrap();
    let rule = dir.join("boot-file-copy.toml");
    fs::write(&rule, &bundled).unwrap();
    let mut agent = Agent::start(
        AGENT,
        "prefilter",
        &format!("[rules]\npath = \"{}\"\n", rule.display()),
    )
    .unwrap();
    let before = format!("/boot/touch-{}", unique());
    in_boot_namespace(&format!("touch {before}")).unwrap();
    fs::write(
        &rule,
        bundled.replace(names, r#"process.name in ("cp", "mv", "touch")"#),
    )
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "rules-reloaded")
        .expect("rules-reloaded record");
    let after = format!("/boot/touch-{}", unique());
    in_boot_namespace(&format!("touch {after}")).unwrap();
    agent.sync().unwrap();
    assert!(agent.alerts_with_arg(&before).is_empty());
    assert_eq!(agent.alerts_with_arg(&after).len(), 1);
    fs::remove_dir_all(&dir).unwrap();
}

/// A rule reading a field the sensor never fills is named with it by `check` and `rules`, and
/// `run` warns of it at start.
#[test]
fn a_rule_reading_unfilled_fields_is_named_by_check_rules_and_run() {
    let dir = tempdir("unfilled").unwrap();
    let rules = dir.join("rules");
    fs::create_dir(&rules).unwrap();
    let rule = rules.join("environment.toml");
    fs::write(
        &rule,
        boot_copy_harness::eql_rule(
            "0f0f0f0f-0000-4000-8000-00000000f111",
            "Environment test",
            "Reads a field no event carries.",
            r#"process where process.name == "cp" and process.env_vars == "LD_PRELOAD=x""#,
        ),
    )
    .unwrap();
    let config = dir.join("config.toml");
    let extra = format!("[rules]\npath = \"{}\"\n", rules.display());
    fs::write(&config, &extra).unwrap();
    let expected = "rule 0f0f0f0f-0000-4000-8000-00000000f111 (Environment test) reads fields never filled: process.env_vars (the process's environment is not captured: set sensor.capture_env_vars to the variables the rule reads)";
    let listed = |config: &Path, command: &str| {
        let out = Command::new(AGENT)
            .args([command, "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{command}: {stdout}");
        stdout
    };
    for command in ["check", "rules"] {
        let stdout = listed(&config, command);
        assert!(stdout.contains(expected), "{command}: {stdout}");
    }
    // Captured, the field is filled: no rule is named.
    let captured = dir.join("captured.toml");
    fs::write(
        &captured,
        format!("{extra}[sensor]\ncapture_env_vars = [\"LD_PRELOAD\"]\n"),
    )
    .unwrap();
    for command in ["check", "rules"] {
        let stdout = listed(&captured, command);
        assert!(!stdout.contains("never filled"), "{command}: {stdout}");
    }
    let stderr = dir.join("stderr");
    let agent = boot_copy_harness::Launch::fresh(AGENT, "unfilled", &extra)
        .unwrap()
        .stderr_to(stderr.clone())
        .start()
        .unwrap();
    let (status, ..) = agent.stop().unwrap();
    assert!(status.success());
    let log = fs::read_to_string(&stderr).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(expected)),
        "{log}"
    );
    fs::remove_dir_all(&dir).unwrap();
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
    let dir = tempdir("btf").unwrap();
    let btf = dir.join("vmlinux-no-start-boottime");
    btf_without_member("task_struct", "start_boottime", &btf);
    let mut agent = Agent::start(
        AGENT,
        "degraded",
        &format!("[sensor]\nbtf = \"{}\"\n", btf.display()),
    )
    .unwrap();
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
    in_boot_namespace(&format!("cp /etc/hostname {target}")).unwrap();
    agent.sync().unwrap();
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
    let (status, _, records) = agent.stop().unwrap();
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
    let mut agent = Agent::start(AGENT, "not-degraded", "").unwrap();
    agent.sync().unwrap();
    let (_, _, records) = agent.stop().unwrap();
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
    let dir = tempdir("badbtf").unwrap();
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
        let err = boot_copy_harness::refused_run(AGENT, &config).unwrap();
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

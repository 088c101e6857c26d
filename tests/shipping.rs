//! Shipping to a SIEM with real components as users have them: a stock rsyslogd (default
//! parsers and message size) on the local socket receiving the agent's syslog sink, and the
//! shipping configurations in `contrib/` (rsyslog's imfile + omfwd, syslog-ng's file source +
//! syslog destination) run as they are, forwarding the alert log to a TCP receiver while
//! logrotate rotates it. Needs root; installs rsyslog and logrotate, and unpacks Debian's
//! syslog-ng (which conflicts with rsyslog as a package) under `target/tools`, if missing.
use crate::AGENT;
use boot_copy_agent::sink::{AlertLogConfig, Record, Severity, Sinks, SinksConfig, StdoutConfig};
use boot_copy_harness::{
    Agent, PUBLISHED, WAIT, exec_in_boot_namespace, has_arg, in_boot_namespace, tempdir, unique,
};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn apt_install(packages: &[&str]) {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get install {missing:?} failed");
}

/// Debian's syslog-ng, unpacked (the package conflicts with rsyslog's): its binary and modules.
fn syslog_ng() -> PathBuf {
    let root = PathBuf::from(format!("{REPO}/target/tools/syslog-ng"));
    let bin = root.join("usr/sbin/syslog-ng");
    if bin.exists() {
        return root;
    }
    apt_install(&[
        "libivykis0",
        "libnet1",
        "libjson-c5",
        "libpcre3",
        "libwrap0",
    ]);
    let dl = root.with_extension("download");
    fs::create_dir_all(&dl).unwrap();
    let ok = Command::new("apt-get")
        .args(["download", "syslog-ng-core"])
        .current_dir(&dl)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get download syslog-ng-core failed");
    let deb = fs::read_dir(&dl)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("the downloaded package");
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && bin.exists(), "unpacking {}", deb.display());
    root
}

/// A process of the test's own, killed and reaped when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SIEM's syslog receiver: TCP with octet-counting framing (RFC 6587), keeping each message.
struct Receiver {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let out = messages.clone();
        // Ends with the test process.
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let out = out.clone();
                thread::spawn(move || {
                    let mut r = BufReader::new(conn);
                    while let Some(m) = frame(&mut r) {
                        out.lock().unwrap().push(m);
                    }
                });
            }
        });
        Receiver { port, messages }
    }

    /// How many times each record (by `seq`) arrived.
    fn counts(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for msg in self.messages.lock().unwrap().iter() {
            let json = &msg[msg
                .find('{')
                .unwrap_or_else(|| panic!("no JSON in {msg:.200}"))..];
            let v: Value = serde_json::from_str(json.trim_end())
                .unwrap_or_else(|e| panic!("the receiver got broken JSON ({e}): {msg:.300}"));
            *m.entry(v["seq"].as_u64().expect("seq")).or_default() += 1;
        }
        m
    }
}

/// One octet-counted frame: `LEN SP MSG`.
fn frame(r: &mut impl BufRead) -> Option<String> {
    let mut len = Vec::new();
    r.read_until(b' ', &mut len).ok()?;
    let n: usize = std::str::from_utf8(len.strip_suffix(b" ")?)
        .ok()?
        .parse()
        .ok()?;
    let mut msg = vec![0; n];
    r.read_exact(&mut msg).ok()?;
    Some(String::from_utf8_lossy(&msg).into_owned())
}

/// A `contrib/` file with the alert log's directory (the log is `alerts.ndjson` there, as in
/// /var/log/boot-copy) and the receiver's port put in.
fn contrib(name: &str, log: &Path, port: u16) -> String {
    assert_eq!(log.file_name().unwrap(), "alerts.ndjson");
    let dir = log.parent().unwrap().display().to_string();
    let text = fs::read_to_string(format!("{REPO}/contrib/{name}")).unwrap();
    let out = text
        .replace("/var/log/boot-copy", &dir)
        .replace("6514", &port.to_string());
    assert!(out.contains(&port.to_string()) && out.contains(&dir));
    out
}

/// Records written to an alert log by the sink while the packaged logrotate snippet rotates it
/// `rotations` times (the postrotate's SIGHUP is the sink's reopen), with a shipper started on
/// it; returns how many were written. Rotations come 1.2 s apart: the shippers poll.
fn stream_through_logrotate(dir: &Path, log: &Path, rotations: usize) -> usize {
    let cfg = SinksConfig {
        alert_log: AlertLogConfig {
            path: log.to_owned(),
            max_bytes: 0,
            ..Default::default()
        },
        stdout: StdoutConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let sinks = Sinks::start(&cfg).unwrap();
    let snippet = fs::read_to_string(format!("{REPO}/systemd/boot-copy.logrotate")).unwrap();
    let conf = dir.join("logrotate.conf");
    fs::write(
        &conf,
        snippet
            .replace(
                "/var/log/boot-copy/alerts.ndjson",
                &log.display().to_string(),
            )
            .replace(
                "systemctl kill --signal=HUP boot-copy-agent.service",
                "true",
            ),
    )
    .unwrap();
    let state = dir.join("logrotate.state");
    let mut seq = 0;
    let mut send = |n: usize| {
        for _ in 0..n {
            let line =
                json!({ "seq": seq, "event": { "kind": "alert" }, "pad": "x".repeat(seq % 300) });
            sinks.send(&Record::alert(line.to_string(), Severity::Warning));
            seq += 1;
            thread::sleep(Duration::from_millis(2));
        }
    };
    for _ in 0..rotations {
        send(600);
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(&state)
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sinks.reopen();
    }
    send(600);
    let st = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sinks.shutdown(Duration::from_secs(5)));
    assert_eq!(st[0].written as usize, seq, "the sink lost records: {st:?}");
    seq
}

/// Every record arrived exactly once, within a deadline.
fn assert_every_record_once(receiver: &Receiver, sent: usize, shipper: &str) {
    let deadline = Instant::now() + *WAIT;
    while receiver.counts().len() < sent && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    thread::sleep(Duration::from_millis(500));
    let counts = receiver.counts();
    let missing: Vec<u64> = (0..sent as u64)
        .filter(|i| !counts.contains_key(i))
        .collect();
    let twice: Vec<u64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{shipper}: {} of {sent} missing (first {:?}), {} duplicated (first {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
}

/// A shipper run as users run it: its `contrib/` snippet (`snippet`, saved as `file` in a scratch
/// directory, with the log's directory and the receiver's port put in) included by a main
/// configuration that `main` writes for that directory; `start` starts the shipper there. Then a
/// stream of records through logrotate must reach the receiver exactly once each.
fn ship_through_logrotate(
    name: &str,
    snippet: &str,
    file: &str,
    main: impl Fn(&Path) -> String,
    start: impl Fn(&Path) -> Command,
) {
    let dir = tempdir(name).unwrap();
    let log = dir.join("log/alerts.ndjson");
    fs::create_dir_all(dir.join("log")).unwrap();
    fs::create_dir_all(dir.join("work")).unwrap();
    fs::write(&log, "").unwrap();
    let receiver = Receiver::start();
    fs::write(dir.join(file), contrib(snippet, &log, receiver.port)).unwrap();
    fs::write(dir.join("main.conf"), main(&dir)).unwrap();
    let _shipper = Daemon(
        start(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}")),
    );
    let sent = stream_through_logrotate(&dir, &log, 3);
    assert_every_record_once(&receiver, sent, name);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn shipped_rsyslog_config_forwards_every_alert_once_through_logrotate() {
    apt_install(&["rsyslog", "logrotate"]);
    ship_through_logrotate(
        "rsyslog",
        "rsyslog/60-boot-copy.conf",
        "60-boot-copy.conf",
        // As /etc/rsyslog.conf would be, less the host's own logging, with the larger message
        // size the snippet asks for.
        |d| {
            format!(
                "global(workDirectory=\"{d}/work\" maxMessageSize=\"1m\")\ninclude(file=\"{d}/60-boot-copy.conf\")\n",
                d = d.display()
            )
        },
        |d| {
            let mut c = Command::new("rsyslogd");
            c.arg("-n").arg("-f").arg(d.join("main.conf"));
            c.arg("-i").arg(d.join("rsyslogd.pid"));
            c
        },
    );
}

#[test]
fn shipped_syslog_ng_config_forwards_every_alert_once_through_logrotate() {
    apt_install(&["logrotate"]);
    let root = syslog_ng();
    ship_through_logrotate(
        "syslog-ng",
        "syslog-ng/boot-copy.conf",
        "boot-copy.conf",
        // As /etc/syslog-ng/syslog-ng.conf includes conf.d/*.conf, less the host's own logging.
        |d| {
            format!(
                "@version: 3.38\n@include \"{}/boot-copy.conf\"\n",
                d.display()
            )
        },
        |d| {
            let mut c = Command::new(root.join("usr/sbin/syslog-ng"));
            c.arg("-F").arg("--no-caps");
            c.arg(format!(
                "--module-path={}/usr/lib/syslog-ng/3.38",
                root.display()
            ));
            c.arg("-f").arg(d.join("main.conf"));
            c.arg("-R").arg(d.join("persist"));
            c.arg("-p").arg(d.join("syslog-ng.pid"));
            c.arg("-c").arg(d.join("syslog-ng.ctl"));
            c.env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"));
            c
        },
    );
}

/// A stock rsyslogd on the agent's local socket: default parsers, default 8 KiB
/// maxMessageSize, default rate limit. Its only non-default setting is the socket's path.
struct StockRsyslog {
    dir: PathBuf,
    _daemon: Daemon,
}

impl StockRsyslog {
    fn start() -> StockRsyslog {
        apt_install(&["rsyslog"]);
        let dir = tempdir("stock-rsyslog").unwrap();
        fs::create_dir_all(dir.join("work")).unwrap();
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock" CreatePath="on")
template(name="fields" type="string" string="%programname%|%procid%|%msg%\n")
*.* action(type="omfile" file="{d}/messages" template="fields")
"#
        );
        fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let daemon = Daemon(
            Command::new("rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(dir.join("rsyslog.conf"))
                .arg("-i")
                .arg(dir.join("rsyslogd.pid"))
                .stdout(Stdio::null())
                .spawn()
                .expect("rsyslogd starts"),
        );
        let deadline = Instant::now() + *WAIT;
        while !dir.join("log.sock").exists() {
            assert!(Instant::now() < deadline, "rsyslogd made no socket");
            thread::sleep(Duration::from_millis(50));
        }
        StockRsyslog {
            dir,
            _daemon: daemon,
        }
    }

    /// (program name, pid, message) of every message filed.
    fn messages(&self) -> Vec<(String, String, String)> {
        fs::read_to_string(self.dir.join("messages"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, '|');
                Some((f.next()?.into(), f.next()?.into(), f.next()?.into()))
            })
            .collect()
    }
}

impl Drop for StockRsyslog {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn stock_rsyslog_on_the_local_socket_files_every_alert_as_json_under_its_tag() {
    let rsyslog = StockRsyslog::start();
    let mut agent = Agent::start(
        AGENT,
        "stock-rsyslog",
        &format!(
            "[sinks.syslog]\nenabled = true\naddress = \"{}\"\n",
            rsyslog.dir.join("log.sock").display()
        ),
    )
    .unwrap();
    let targets: Vec<String> = (0..5)
        .map(|i| format!("/boot/stock-{i}-{}", unique()))
        .collect();
    for t in &targets {
        in_boot_namespace(&format!("cp /etc/hostname {t}")).unwrap();
    }
    // 80 KiB of arguments: the alert is far over rsyslog's 8 KiB.
    let big = format!("/boot/stock-big-{}", unique());
    let mut args: Vec<String> = (0..80)
        .map(|i| format!("--suffix={i:04}{}", "s".repeat(1000)))
        .collect();
    args.extend(["/etc/hostname".into(), big.clone()]);
    let status = exec_in_boot_namespace("cp", &args).status().unwrap();
    assert!(status.success());
    for t in targets.iter().chain([&big]) {
        agent
            .wait_for(*WAIT, |r| has_arg(&r["process"]["args"], t))
            .unwrap_or_else(|e| panic!("no alert for {t} in the log: {e}"));
    }
    let deadline = Instant::now() + *WAIT;
    let filed = |t: &str| -> Vec<Value> {
        rsyslog
            .messages()
            .into_iter()
            .filter(|(_, _, m)| m.contains(t))
            .map(|(prog, pid, m)| {
                assert_eq!(
                    (prog.as_str(), pid),
                    ("boot-copy", agent.pid().to_string()),
                    "{m:.200}"
                );
                serde_json::from_str(m.trim()).unwrap_or_else(|e| {
                    panic!("the message is not the alert's JSON ({e}): {m:.300}")
                })
            })
            .collect()
    };
    while targets.iter().chain([&big]).any(|t| filed(t).is_empty()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    for t in &targets {
        let got = filed(t);
        assert_eq!(got.len(), 1, "{t}: {got:?}");
        assert_eq!(got[0]["rule"]["id"], PUBLISHED);
        assert_eq!(got[0]["event"]["kind"], "alert");
        assert!(got[0]["boot_copy"]["trimmed"].is_null());
    }
    let got = filed(&big);
    assert_eq!(got.len(), 1, "{got:?}");
    let trimmed = &got[0]["boot_copy"]["trimmed"];
    assert!(
        trimmed["original_bytes"].as_u64().unwrap() > 80 * 1024,
        "{trimmed}"
    );
    assert!(
        trimmed["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("process.args")),
        "{trimmed}"
    );
    assert_eq!(got[0]["process"]["args_count"], 83);
    assert_eq!(
        got[0]["process"]["args"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        &json!(big)
    );
    // The alert log keeps the whole alert.
    let whole = agent.alerts_of(PUBLISHED, &big);
    assert_eq!(whole[0]["process"]["args"].as_array().unwrap().len(), 83);
    assert!(whole[0]["boot_copy"]["trimmed"].is_null());
}

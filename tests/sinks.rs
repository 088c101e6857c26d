//! The alert sinks against real components: the file system (permissions, symlinks, a full
//! tmpfs, logrotate) and a private rsyslogd receiving over the local socket, UDP and TCP.
//! Needs root (tmpfs mounts, rsyslogd) and installs rsyslog and logrotate if missing.
use boot_copy_agent::sink::{
    AlertLogConfig, Record, Severity, SinkError, SinkStats, Sinks, SinksConfig, StdoutConfig,
    SyslogConfig, SyslogFormat, SyslogTransport,
};
use regex::Regex;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    net::{TcpListener, TcpStream, UdpSocket},
    os::unix::{
        fs::{MetadataExt, symlink},
        net::UnixDatagram,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Once,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    thread,
    time::{Duration, Instant},
};

use boot_copy_harness::WAIT;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A record line with quotes, escaped newlines and non-ASCII, and a sequence number.
fn line(seq: usize, pad: usize) -> String {
    json!({
        "seq": seq,
        "message": "cp \"/tmp/a b\" → /boot\n\t'x' é 漢字 \u{202e}evil \u{1b}[31m {\"json\":1}",
        "pad": "x".repeat(pad),
    })
    .to_string()
}

fn record(seq: usize, pad: usize) -> Record {
    Record::alert(line(seq, pad), Severity::Warning)
}

fn seq_of(v: &Value) -> usize {
    v["seq"].as_u64().expect("seq") as usize
}

/// Every line of a file must be a complete JSON object: no torn or forged lines.
fn read_records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends with a partial line",
        path.display()
    );
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("torn line in {} ({e}): {l:.200}", path.display()))
        })
        .collect()
}

fn seqs(path: &Path) -> Vec<usize> {
    read_records(path).iter().map(seq_of).collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < *WAIT, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn log_only(path: &Path) -> SinksConfig {
    SinksConfig {
        alert_log: AlertLogConfig {
            path: path.into(),
            ..Default::default()
        },
        stdout: no_stdout(),
        syslog: SyslogConfig::default(),
    }
}

/// Tests read what the sinks wrote, not the test binary's stdout.
fn no_stdout() -> StdoutConfig {
    StdoutConfig {
        enabled: false,
        ..Default::default()
    }
}

/// Syslog alone, RFC 5424 on every transport and no size limit: this file's rsyslogd parses
/// RFC 5424 on its local socket too and takes 256 KiB messages. (The stock receivers are in
/// tests/shipping.rs.)
fn syslog_only(transport: SyslogTransport, address: String) -> SinksConfig {
    SinksConfig {
        alert_log: AlertLogConfig {
            enabled: false,
            ..Default::default()
        },
        syslog: SyslogConfig {
            enabled: true,
            transport,
            address: Some(address),
            format: Some(SyslogFormat::Rfc5424),
            max_record_bytes: 0,
            ..Default::default()
        },
        stdout: no_stdout(),
    }
}

fn stats_of(sinks: &Sinks, name: &str) -> SinkStats {
    sinks.stats().into_iter().find(|s| s.sink == name).unwrap()
}

fn shutdown(sinks: Sinks, deadline: Duration) -> Vec<SinkStats> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(sinks.shutdown(deadline))
}

fn final_stats(stats: &[SinkStats], name: &str) -> SinkStats {
    stats.iter().find(|s| s.sink == name).unwrap().clone()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn ensure_installed() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let installed = |p: &str| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        };
        if !installed("rsyslog") || !installed("logrotate") {
            let ok = Command::new("apt-get")
                .args(["install", "-y", "rsyslog", "logrotate"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "apt-get install rsyslog logrotate failed");
        }
    });
}

fn free_port() -> u16 {
    // A port free for both TCP and UDP on loopback.
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A private rsyslogd: its own config, work directory, unix socket and loopback ports.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: usize,
}

/// One message as rsyslog parsed it.
#[derive(Debug)]
struct Received {
    input: String,
    fields: Vec<String>,
    json: Value,
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        Self::start_tailing(dir, None)
    }

    /// With `tail`, rsyslog's imfile also ships that log, like a shipper on the host would.
    fn start_tailing(dir: &Path, tail: Option<&Path>) -> Rsyslog {
        ensure_installed();
        let dir = dir.join("rsyslog");
        fs::create_dir_all(dir.join("work")).unwrap();
        let port = free_port();
        let d = dir.display();
        let imfile = tail.map_or(String::new(), |p| {
            format!(
                "module(load=\"imfile\" mode=\"inotify\")\n\
                 input(type=\"imfile\" File=\"{}\" Tag=\"shipper\" freshStartTail=\"off\")",
                p.display()
            )
        });
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="256k")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
input(type="imuxsock" Socket="{d}/log.sock" CreatePath="on" RateLimit.Interval="0"
      UseSpecialParser="off" ParseHostname="on")
input(type="imudp" address="127.0.0.1" port="{port}" name="udp" RateLimit.Interval="0")
input(type="imtcp" address="127.0.0.1" port="{port}" name="tcp")
template(name="parsed" type="string"
  string="%inputname%|%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
template(name="raw" type="string" string="%inputname%|%rawmsg%\n")
{imfile}
action(type="omfile" file="{d}/parsed.log" template="parsed")
action(type="omfile" file="{d}/raw.log" template="raw")
"#
        );
        fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let mut r = Rsyslog {
            dir,
            port,
            child: None,
            starts: 0,
        };
        r.run();
        r
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts rsyslogd and waits until a probe got through each of its inputs.
    fn run(&mut self) {
        let out = fs::File::create(self.dir.join(format!("rsyslogd.{}.out", self.starts))).unwrap();
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("rsyslogd");
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("rsyslogd starts");
        self.child = Some(child);
        self.starts += 1;
        let tag = format!("probe{}", self.starts);
        let msg = format!("<14>1 - probehost probe - {tag} - x");
        let start = Instant::now();
        let mut seen = [false; 3];
        while seen != [true; 3] {
            assert!(
                start.elapsed() < *WAIT,
                "rsyslogd did not come up; see {}",
                self.dir.display()
            );
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rsyslogd exited: {status}; see {}", self.dir.display());
            }
            let _ = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.send_to(msg.as_bytes(), ("127.0.0.1", self.port)));
            let _ = UnixDatagram::unbound().and_then(|s| s.send_to(msg.as_bytes(), self.sock()));
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = write!(s, "{} {msg}", msg.len());
            }
            thread::sleep(Duration::from_millis(100));
            let raw = fs::read_to_string(self.dir.join("parsed.log")).unwrap_or_default();
            for l in raw.lines().filter(|l| l.contains(&tag)) {
                let i = ["udp", "tcp", "imuxsock"]
                    .iter()
                    .position(|n| l.starts_with(&format!("{n}|")));
                if let Some(i) = i {
                    seen[i] = true;
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// Messages of ours (probes excluded), in arrival order.
    fn received(&self) -> Vec<Received> {
        let text = fs::read_to_string(self.dir.join("parsed.log")).unwrap_or_default();
        text.lines()
            .map(|l| l.splitn(10, '|').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() == 10 && f[5] != "probe")
            .map(|f| Received {
                input: f[0].clone(),
                json: serde_json::from_str(&f[9]).unwrap_or_else(|e| {
                    panic!("rsyslog got a broken JSON MSG ({e}): {:.300}", f[9])
                }),
                fields: f,
            })
            .collect()
    }

    fn raw(&self, input: &str) -> Vec<String> {
        let text = fs::read_to_string(self.dir.join("raw.log")).unwrap_or_default();
        let prefix = format!("{input}|");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter(|l| !l.contains(" probe - "))
            .map(str::to_owned)
            .collect()
    }

    /// How many times each seq arrived on `input`.
    fn counts(&self, input: &str) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for r in self.received().iter().filter(|r| r.input == input) {
            *m.entry(seq_of(&r.json)).or_default() += 1;
        }
        m
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A small tmpfs mounted for the test, unmounted at the end.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs needs root");
        Tmpfs(at.into())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------------------------
// Alert log

#[test]
fn alert_log_is_created_private_and_gets_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a/b/alerts.ndjson");
    let sinks = Sinks::start(&log_only(&path)).unwrap();
    assert_eq!(mode(path.parent().unwrap()), 0o750);
    assert_eq!(mode(&path), 0o640);
    for i in 0..500 {
        sinks.send(&record(i, i % 300));
    }
    let st = final_stats(&shutdown(sinks, Duration::from_secs(2)), "alert_log");
    assert_eq!((st.written, st.dropped, st.failed), (500, 0, 0));
    let recs = read_records(&path);
    assert_eq!(
        recs.iter().map(seq_of).collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
    assert_eq!(
        recs[3]["message"],
        json!(serde_json::from_str::<Value>(&line(3, 0)).unwrap()["message"])
    );
}

#[test]
fn alert_log_existing_file_loses_world_access() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.ndjson");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let sinks = Sinks::start(&log_only(&path)).unwrap();
    assert_eq!(mode(&path), 0o640);
    shutdown(sinks, Duration::from_secs(1));
}

#[test]
fn alert_log_refuses_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    fs::write(&target, "precious\n").unwrap();

    // The file is a link to another file.
    let link = tmp.path().join("alerts.ndjson");
    symlink(&target, &link).unwrap();
    let err = Sinks::start(&log_only(&link))
        .err()
        .expect("a symlinked log is refused");
    assert!(matches!(err, SinkError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("alerts.ndjson"), "{err}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");

    // A dangling link: nothing gets created where it points.
    let dangling = tmp.path().join("dangling.ndjson");
    symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        Sinks::start(&log_only(&dangling)),
        Err(SinkError::Symlink { .. })
    ));
    assert!(!tmp.path().join("nowhere").exists());

    // The directory is a link.
    let real_dir = tmp.path().join("real");
    fs::create_dir(&real_dir).unwrap();
    symlink(&real_dir, tmp.path().join("logdir")).unwrap();
    let err = Sinks::start(&log_only(&tmp.path().join("logdir/alerts.ndjson")))
        .err()
        .expect("a symlinked directory is refused");
    assert!(matches!(err, SinkError::Symlink { .. }), "{err}");
    assert!(!real_dir.join("alerts.ndjson").exists());
}

#[test]
fn rotation_keeps_n_files_and_no_line_is_torn_or_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.alert_log.max_bytes = 4000;
    cfg.alert_log.keep = 3;
    let sinks = Sinks::start(&cfg).unwrap();
    let n = 600;
    for i in 0..n {
        sinks.send(&record(i, (i * 7) % 150));
    }
    let st = final_stats(&shutdown(sinks, Duration::from_secs(2)), "alert_log");
    assert_eq!((st.written, st.dropped, st.failed), (n as u64, 0, 0));
    let numbered = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
    assert!(!numbered(4).exists(), "only 3 rotated files are kept");
    // Oldest to newest, the kept lines are the last ones sent, without a gap.
    let mut all = Vec::new();
    for p in [numbered(3), numbered(2), numbered(1), path.clone()] {
        let size = fs::metadata(&p).unwrap().len();
        assert!(size <= 4000, "{} has {size} bytes", p.display());
        assert_eq!(mode(&p), 0o640);
        all.extend(seqs(&p));
    }
    let first = all[0];
    assert!(first > 0, "rotation dropped nothing?");
    assert_eq!(all, (first..n).collect::<Vec<_>>());
}

#[test]
fn reopen_after_rename_writes_to_the_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.alert_log.max_bytes = 0;
    let sinks = Sinks::start(&cfg).unwrap();
    for i in 0..10 {
        sinks.send(&record(i, 0));
    }
    wait_for("10 written", || stats_of(&sinks, "alert_log").written == 10);
    // logrotate's create mode: rename, create, then SIGHUP.
    let rotated = tmp.path().join("alerts.ndjson.1");
    fs::rename(&path, &rotated).unwrap();
    fs::File::create(&path).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    sinks.reopen();
    for i in 10..20 {
        sinks.send(&record(i, 0));
    }
    let st = final_stats(&shutdown(sinks, Duration::from_secs(2)), "alert_log");
    assert_eq!(st.written, 20);
    assert_eq!(seqs(&rotated), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs(&path), (10..20).collect::<Vec<_>>());
}

#[test]
fn deleted_or_moved_log_is_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    let path = dir.join("alerts.ndjson");
    let sinks = Sinks::start(&log_only(&path)).unwrap();
    for i in 0..5 {
        sinks.send(&record(i, 0));
    }
    wait_for("5 written", || stats_of(&sinks, "alert_log").written == 5);

    // Deleted: the next records go to a new file.
    fs::remove_file(&path).unwrap();
    for i in 5..10 {
        sinks.send(&record(i, 0));
    }
    wait_for("10 written", || stats_of(&sinks, "alert_log").written == 10);
    assert_eq!(seqs(&path), (5..10).collect::<Vec<_>>());
    assert_eq!(mode(&path), 0o640);

    // Moved away with its directory: records wait a moment for a new file (a rotation may be
    // under way), then the file and its directory are recreated.
    let moved = tmp.path().join("moved");
    fs::rename(&dir, &moved).unwrap();
    for i in 10..15 {
        sinks.send(&record(i, 0));
    }
    wait_for("the log to be recreated", || path.exists());
    for i in 15..20 {
        sinks.send(&record(i, 0));
    }
    let st = final_stats(&shutdown(sinks, Duration::from_secs(2)), "alert_log");
    assert_eq!((st.written, st.failed), (20, 0));
    let old = seqs(&moved.join("alerts.ndjson"));
    let new = seqs(&path);
    assert!(new.ends_with(&(15..20).collect::<Vec<_>>()), "{new:?}");
    assert_eq!([old, new].concat(), (5..20).collect::<Vec<_>>());
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn full_disk_counts_failures_keeps_other_sinks_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(tmp.path());
    let mnt = tmp.path().join("mnt");
    let _fs = Tmpfs::mount(&mnt, "64k");
    let path = mnt.join("log/alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.syslog = SyslogConfig {
        enabled: true,
        transport: SyslogTransport::Tcp,
        address: Some(rsyslog.addr()),
        ..Default::default()
    };
    let sinks = Sinks::start(&cfg).unwrap();
    // Leave about 16 KiB.
    let filler = mnt.join("filler");
    fs::write(&filler, vec![0u8; 44 * 1024]).unwrap();

    let n = 100;
    for i in 0..n {
        sinks.send(&record(i, 900));
    }
    wait_for("all 100 handled", || {
        let s = stats_of(&sinks, "alert_log");
        s.written + s.failed == n as u64
    });
    let st = stats_of(&sinks, "alert_log");
    assert!(st.failed > 0 && st.written > 0, "{st:?}");
    assert!(!st.healthy, "{st:?}");
    // What was written is intact and in order; what failed is counted, not torn.
    assert_eq!(seqs(&path), (0..st.written as usize).collect::<Vec<_>>());
    // Syslog was not held back by the full disk.
    wait_for("syslog got all 100", || rsyslog.counts("tcp").len() == n);

    // Space comes back: writing resumes, and what failed stays counted.
    fs::remove_file(&filler).unwrap();
    for i in n..n + 10 {
        sinks.send(&record(i, 900));
    }
    let stats = shutdown(sinks, Duration::from_secs(2));
    let st2 = final_stats(&stats, "alert_log");
    assert_eq!(st2.written, st.written + 10);
    assert_eq!(st2.failed, st.failed);
    assert!(st2.healthy);
    let mut expect: Vec<usize> = (0..st.written as usize).collect();
    expect.extend(n..n + 10);
    assert_eq!(seqs(&path), expect);
    let sl = final_stats(&stats, "syslog");
    assert_eq!((sl.written, sl.failed, sl.dropped), (110, 0, 0));
}

#[test]
fn logrotate_under_a_stream_of_records_loses_and_duplicates_nothing() {
    ensure_installed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let path = dir.join("alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.alert_log.max_bytes = 0;
    let sinks = Sinks::start(&cfg).unwrap();
    // A shipper tailing the log through the rotations.
    let rsyslog = Rsyslog::start_tailing(tmp.path(), Some(&path));
    let conf = tmp.path().join("logrotate.conf");
    fs::write(
        &conf,
        format!(
            "{} {{\n  rotate 100\n  create 0640 root root\n  missingok\n  ifempty\n  nocompress\n}}\n",
            path.display()
        ),
    )
    .unwrap();
    let state = tmp.path().join("logrotate.state");
    let rotations: usize = 8;
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(SeqCst) {
                sinks.send(&record(i, i % 200));
                i += 1;
                sent.store(i, SeqCst);
                thread::sleep(Duration::from_micros(200));
            }
        });
        for _ in 0..rotations {
            thread::sleep(Duration::from_millis(150));
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
            // What the shipped snippet's postrotate (SIGHUP) makes the daemon do.
            sinks.reopen();
        }
        thread::sleep(Duration::from_millis(150));
        stop.store(true, SeqCst);
    });
    let sent = sent.load(SeqCst);
    let st = final_stats(&shutdown(sinks, Duration::from_secs(2)), "alert_log");
    assert_eq!((st.written, st.dropped, st.failed), (sent as u64, 0, 0));
    let mut all = Vec::new();
    for i in (1..=rotations).rev() {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        let s = seqs(&p);
        assert!(!s.is_empty(), "{} is empty", p.display());
        assert_eq!(mode(&p), 0o640);
        all.extend(&s);
    }
    all.extend(seqs(&path));
    assert_eq!(all.len(), sent, "a record was lost or duplicated");
    // No `-YYYYMMDDHH.backup`: logrotate never found a file of ours in its way.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), rotations + 1);
    assert_eq!(all, (0..sent).collect::<Vec<_>>());

    // Until the shipper has everything, or has read nothing new for 3 s.
    let (mut last, mut changed) = (0, Instant::now());
    while last < sent && changed.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(50));
        let n = rsyslog.counts("imfile").len();
        if n != last {
            (last, changed) = (n, Instant::now());
        }
    }
    thread::sleep(Duration::from_millis(300));
    let shipped = rsyslog.counts("imfile");
    assert!(
        shipped.values().all(|&c| c == 1),
        "the shipper read a record twice"
    );
    // Every record exactly once: the sink never writes into a file logrotate has moved away
    // (it waits for the new one), and imfile reads the moved file to its end.
    let missing: Vec<_> = (0..sent).filter(|i| !shipped.contains_key(i)).collect();
    assert!(missing.is_empty(), "the shipper missed {missing:?}");
}

/// The shipped logrotate snippet's rotation, end to end: the real agent alerting on real
/// copies into a private tmpfs /boot, logrotate rotating its log repeatedly (postrotate:
/// SIGHUP to the agent), and rsyslog's imfile shipping it: every alert is in the log files
/// and shipped exactly once.
#[test]
fn shipper_gets_every_real_alert_once_through_repeated_logrotate() {
    ensure_installed();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = tmp.path().join("log");
    let path = dir.join("alerts.ndjson");
    let config = tmp.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[sinks.alert_log]\npath = \"{}\"\nmax_bytes = 0\n[sinks.stdout]\nenabled = false\n\
             [alert_budget]\nmax_alerts = 100000\n[health]\nstate_dir = \"{}\"\n",
            path.display(),
            dir.display()
        ),
    )
    .unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_boot-copy-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("agent starts");
    let agent_pid = agent.id();
    wait_for("the agent's start record", || {
        fs::read_to_string(&path).is_ok_and(|t| t.contains("\"agent-started\""))
    });
    let rsyslog = Rsyslog::start_tailing(tmp.path(), Some(&path));
    let conf =
        logrotate_conf(&path, &format!("kill -HUP {agent_pid}")).replace("rotate 5", "rotate 100");
    let conf_path = tmp.path().join("boot-copy.logrotate");
    fs::write(&conf_path, conf).unwrap();

    let tag = format!("ship-{}", std::process::id());
    let copies = 300;
    let storm = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg(format!(
            "mount -t tmpfs t /boot && i=0; while [ $i -lt {copies} ]; do \
             cp /etc/hostname /boot/{tag}-$i; i=$((i+1)); sleep 0.01; done"
        ))
        .spawn()
        .unwrap();
    let storm_pid = storm.id();
    let mut storm = storm;
    let mut rotations = 0;
    while storm.try_wait().unwrap().is_none() {
        thread::sleep(Duration::from_millis(300));
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(tmp.path().join("state"))
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        rotations += 1;
    }
    assert!(
        storm.wait().unwrap().success(),
        "copy loop {storm_pid} failed"
    );
    assert!(rotations >= 3, "only {rotations} rotations");

    // Every copy's alert, read back from the log files.
    let index = |line: &str| -> Option<usize> {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["event"]["kind"] != "alert" {
            return None;
        }
        let args = v["process"]["args"].as_array()?;
        args.iter()
            .filter_map(|a| a.as_str()?.strip_prefix(&format!("/boot/{tag}-")))
            .find_map(|n| n.parse().ok())
    };
    let in_files = || -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for entry in fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.to_string_lossy().contains("alerts.ndjson") {
                for i in fs::read_to_string(&p).unwrap().lines().filter_map(index) {
                    *m.entry(i).or_default() += 1;
                }
            }
        }
        m
    };
    wait_for("every alert in the log files", || {
        in_files().len() == copies
    });
    assert!(
        in_files().values().all(|&c| c == 1),
        "an alert was logged twice"
    );
    let shipped = || -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for line in rsyslog.raw("imfile") {
            if let Some(i) = line.find('{').and_then(|at| index(&line[at..])) {
                *m.entry(i).or_default() += 1;
            }
        }
        m
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while shipped().len() < copies && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(300));
    let shipped = shipped();
    let missing: Vec<_> = (0..copies).filter(|i| !shipped.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "the shipper missed {missing:?} over {rotations} rotations"
    );
    assert!(
        shipped.values().all(|&c| c == 1),
        "the shipper read an alert twice"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(agent.wait().unwrap().success());
}

// ---------------------------------------------------------------------------------------------
// Syslog

#[test]
fn syslog_delivers_every_record_once_over_unix_udp_and_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(tmp.path());
    let n: usize = 300;
    let header = Regex::new(
        r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S{1,255}) boot-copy (\d+) (alert|health) - (\{.*\})$",
    )
    .unwrap();
    let cases = [
        (
            SyslogTransport::Unix,
            rsyslog.sock().display().to_string(),
            "imuxsock",
        ),
        (SyslogTransport::Udp, rsyslog.addr(), "udp"),
        (SyslogTransport::Tcp, rsyslog.addr(), "tcp"),
    ];
    for (transport, address, input) in cases {
        let sinks = Sinks::start(&syslog_only(transport, address)).unwrap();
        for i in 0..n {
            // One 20 KiB record: beyond the classic 1 KiB / 8 KiB syslog limits.
            let pad = if i == 7 { 20_000 } else { i % 100 };
            let rec = if i.is_multiple_of(10) {
                Record::health(line(i, pad), Severity::Info)
            } else {
                record(i, pad)
            };
            sinks.send(&rec);
            if i.is_multiple_of(50) {
                // Keep UDP within the receiver's socket buffer.
                thread::sleep(Duration::from_millis(5));
            }
        }
        let st = final_stats(&shutdown(sinks, Duration::from_secs(5)), "syslog");
        assert_eq!(
            (st.written, st.dropped, st.failed),
            (n as u64, 0, 0),
            "{input}"
        );
        wait_for(input, || rsyslog.counts(input).len() == n);
        thread::sleep(Duration::from_millis(200));
        let counts = rsyslog.counts(input);
        assert_eq!(
            counts.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>()
        );
        assert!(
            counts.values().all(|&c| c == 1),
            "{input}: duplicates {counts:?}"
        );

        for r in rsyslog.received().iter().filter(|r| r.input == input) {
            let i = seq_of(&r.json);
            let expect: Value =
                serde_json::from_str(&line(i, if i == 7 { 20_000 } else { i % 100 })).unwrap();
            assert_eq!(r.json, expect, "{input}: JSON changed in transit");
            let f = &r.fields;
            let (pri, msgid) = if i.is_multiple_of(10) {
                ("38", "health")
            } else {
                ("36", "alert")
            };
            // auth (4) * 8 + warning (4) = 36; + info (6) = 38.
            assert_eq!(f[1], pri, "{input}: {f:?}");
            assert_eq!(
                (&*f[2], &*f[5], &*f[7], &*f[8]),
                ("1", "boot-copy", msgid, "-")
            );
            assert_eq!(f[6], std::process::id().to_string());
        }
        let raw = rsyslog.raw(input);
        assert_eq!(raw.len(), n, "{input}");
        for m in raw {
            let c = header
                .captures(&m)
                .unwrap_or_else(|| panic!("{input}: not RFC 5424: {m:.200}"));
            assert!(c[4].parse::<u32>().unwrap() == std::process::id());
            serde_json::from_str::<Value>(&c[6]).unwrap();
        }
    }
}

#[test]
fn syslog_receiver_down_then_back_leaves_detection_and_the_log_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::start(tmp.path());
    let path = tmp.path().join("log/alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.syslog = SyslogConfig {
        enabled: true,
        transport: SyslogTransport::Tcp,
        address: Some(rsyslog.addr()),
        queue_capacity: 16,
        reconnect_max_ms: 300,
        ..Default::default()
    };
    let sinks = Sinks::start(&cfg).unwrap();
    let mut slowest = Duration::ZERO;
    let mut send = |i: usize| {
        let t = Instant::now();
        sinks.send(&record(i, 50));
        slowest = slowest.max(t.elapsed());
    };
    // Paced by the sink, so the small queue never overflows while rsyslog is up.
    let drained = || stats_of(&sinks, "syslog").queued == 0;
    for i in 0..20 {
        send(i);
        wait_for("the syslog queue to drain", drained);
    }
    wait_for("first 20 over tcp", || rsyslog.counts("tcp").len() == 20);

    rsyslog.stop();
    for i in 20..220 {
        send(i);
        thread::sleep(Duration::from_millis(1));
    }
    wait_for("the log to get all 220", || {
        stats_of(&sinks, "alert_log").written == 220
    });
    wait_for("syslog to count losses", || {
        let s = stats_of(&sinks, "syslog");
        s.dropped + s.failed > 0 && !s.healthy
    });
    assert_eq!(stats_of(&sinks, "alert_log").failed, 0);

    rsyslog.run();
    // The sink reconnects and delivers what waited in its queue.
    wait_for("syslog to reconnect", || {
        let s = stats_of(&sinks, "syslog");
        s.healthy && s.queued == 0
    });
    for i in 220..240 {
        send(i);
        wait_for("the syslog queue to drain", drained);
    }
    wait_for("records after the restart", || {
        let c = rsyslog.counts("tcp");
        (220..240).all(|i| c.contains_key(&i))
    });
    let stats = shutdown(sinks, Duration::from_secs(2));
    // Waiting on the sink would take its 5 s send timeout; a loaded CI machine may add some ms.
    assert!(
        slowest < Duration::from_secs(1),
        "send blocked for {slowest:?}"
    );
    let log = final_stats(&stats, "alert_log");
    assert_eq!((log.written, log.dropped, log.failed), (240, 0, 0));
    assert_eq!(seqs(&path), (0..240).collect::<Vec<_>>());
    let sl = final_stats(&stats, "syslog");
    assert_eq!(sl.written + sl.dropped + sl.failed, 240, "{sl:?}");
    assert!(sl.dropped + sl.failed >= 150, "{sl:?}");
    thread::sleep(Duration::from_millis(300));
    let counts = rsyslog.counts("tcp");
    assert!(counts.values().all(|&c| c == 1), "duplicates: {counts:?}");
    assert_eq!(
        counts.len() as u64,
        sl.written,
        "every record counted written arrived"
    );
    // What was lost was lost during the outage: everything sent while rsyslog ran arrived.
    let missing: Vec<usize> = (0..240).filter(|i| !counts.contains_key(i)).collect();
    assert!(missing.iter().all(|i| (20..220).contains(i)), "{missing:?}");
}

#[test]
fn syslog_receiver_that_never_reads_only_costs_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            h.lock().unwrap().push(s); // accepted, never read
        }
    });
    let path = tmp.path().join("alerts.ndjson");
    let mut cfg = log_only(&path);
    cfg.syslog = SyslogConfig {
        enabled: true,
        transport: SyslogTransport::Tcp,
        address: Some(addr),
        queue_capacity: 64,
        ..Default::default()
    };
    let sinks = Sinks::start(&cfg).unwrap();
    let n = 3000;
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        sinks.send(&record(i, 4000));
        slowest = slowest.max(t.elapsed());
        if i.is_multiple_of(100) {
            // The queue plus the record in hand.
            assert!(stats_of(&sinks, "syslog").queued <= 65, "queue is bounded");
            thread::sleep(Duration::from_millis(10));
        }
    }
    wait_for("the log to get everything", || {
        stats_of(&sinks, "alert_log").written == n as u64
    });
    let t = Instant::now();
    let stats = shutdown(sinks, Duration::from_secs(1));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "shutdown took {:?}",
        t.elapsed()
    );
    // Waiting on the sink would take its 5 s send timeout; a loaded CI machine may add some ms.
    assert!(
        slowest < Duration::from_secs(1),
        "send blocked for {slowest:?}"
    );
    let sl = final_stats(&stats, "syslog");
    assert_eq!(sl.written + sl.dropped + sl.failed, n as u64, "{sl:?}");
    assert!(sl.dropped > 0, "{sl:?}");
    assert_eq!(seqs(&path).len(), n);
}

#[test]
fn syslog_receiver_that_resets_connections_is_survived() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    thread::spawn(move || {
        use std::os::fd::AsRawFd;
        for s in listener.incoming().flatten() {
            a.fetch_add(1, SeqCst);
            // SO_LINGER 0: close sends RST.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and option buffer.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s);
        }
    });
    let mut cfg = syslog_only(SyslogTransport::Tcp, addr);
    cfg.syslog.queue_capacity = 32;
    cfg.syslog.reconnect_max_ms = 400;
    let sinks = Sinks::start(&cfg).unwrap();
    let n: usize = 300;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        sinks.send(&record(i, 100));
        slowest = slowest.max(t.elapsed());
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let stats = shutdown(sinks, Duration::from_secs(1));
    let sl = final_stats(&stats, "syslog");
    assert_eq!(sl.written + sl.dropped + sl.failed, n as u64, "{sl:?}");
    assert!(sl.dropped + sl.failed > 0, "{sl:?}");
    // Waiting on the sink would take its 5 s send timeout; a loaded CI machine may add some ms.
    assert!(
        slowest < Duration::from_secs(1),
        "send blocked for {slowest:?}"
    );
    // Back-off: no reconnect storm.
    let conns = accepted.load(SeqCst);
    let max = (elapsed.as_millis() / 100) as usize + 5;
    assert!(conns <= max, "{conns} connections in {elapsed:?}");
}

#[test]
fn shipped_logrotate_snippet_rotates_and_the_hook_reopens() {
    ensure_installed();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("log/alerts.ndjson");
    let sinks = Sinks::start(&log_only(&path)).unwrap();
    for i in 0..10 {
        sinks.send(&record(i, 0));
    }
    wait_for("10 written", || stats_of(&sinks, "alert_log").written == 10);
    // The shipped snippet, pointed at the test's log, its SIGHUP replaced by a marker.
    let hook = tmp.path().join("hooked");
    let conf = logrotate_conf(&path, &format!("touch {}", hook.display()));
    let conf_path = tmp.path().join("boot-copy.logrotate");
    fs::write(&conf_path, conf).unwrap();
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(tmp.path().join("state"))
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hook.exists(), "postrotate did not run");
    sinks.reopen();
    for i in 10..20 {
        sinks.send(&record(i, 0));
    }
    shutdown(sinks, Duration::from_secs(2));
    let rotated = PathBuf::from(format!("{}.1", path.display()));
    assert_eq!(seqs(&rotated), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs(&path), (10..20).collect::<Vec<_>>());
    assert_eq!(mode(&path), 0o640);
}

/// The shipped logrotate snippet for the log at `path`, its SIGHUP replaced by `postrotate`.
fn logrotate_conf(path: &Path, postrotate: &str) -> String {
    let snippet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/boot-copy.logrotate"
    ))
    .unwrap();
    let conf = snippet
        .replace(
            "/var/log/boot-copy/alerts.ndjson",
            &path.display().to_string(),
        )
        .replace(
            "systemctl kill --signal=HUP boot-copy-agent.service",
            postrotate,
        );
    assert_ne!(conf, snippet);
    conf
}

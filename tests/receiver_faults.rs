//! A syslog receiver that is down, slow, or resets connections, end-to-end: `boot-copy-agent run`
//! with its TCP syslog sink pointed at it while a stream of large alerts is raised. Detection and
//! the alert log must not notice (every copy alerts once, the log loses nothing), the agent's
//! heap stays bounded by the sink's queue, and what syslog could not take is counted and
//! reported. Copies go to a tmpfs over /boot in a private mount namespace. Needs root.
use serde_json::Value;
use std::{
    io::Read,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
    },
    thread,
    time::Duration,
};

use crate::AGENT;
use boot_copy_harness::{Agent, PUBLISHED, in_boot_namespace, slowdown, unique};

/// Copies per scenario, and the size of the padding argument each carries (an alert holds it
/// three times: `process.args`, `process.command_line`, `message`).
const COPIES: usize = 300;
const PAD: usize = 8 * 1024;
/// What the agent's heap may grow by while the storm runs. The alerts it handles add up to
/// about twice this, so an unbounded queue or buffer would exceed it.
const HEAP_GROWTH_LIMIT_KB: u64 = 4 * 1024;

fn set_int_option(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: a valid socket and a c_int option buffer.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt");
}

/// A TCP receiver run by a thread until dropped; `serve` handles each connection.
struct Receiver {
    addr: String,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicU64>,
}

impl Receiver {
    fn start(
        tune: impl Fn(&TcpListener),
        serve: impl Fn(TcpStream, &AtomicBool, &AtomicU64) + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tune(&listener);
        listener.set_nonblocking(true).unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap().to_string(),
            stop: Arc::default(),
            accepted: Arc::default(),
            received: Arc::default(),
        };
        let (stop, accepted, received) = (r.stop.clone(), r.accepted.clone(), r.received.clone());
        let serve = Arc::new(serve);
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        accepted.fetch_add(1, SeqCst);
                        conn.set_nonblocking(false).unwrap();
                        let (serve, stop, received) =
                            (serve.clone(), stop.clone(), received.clone());
                        thread::spawn(move || serve(conn, &stop, &received));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        r
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

/// What one scenario observed.
struct Outcome {
    /// Alerts of the published rule per copy of the storm.
    alerts_per_copy: Vec<usize>,
    heap_growth_kb: u64,
    /// The counters of the agent's stop record.
    counters: Value,
    /// Loss records naming syslog.
    syslog_loss_records: usize,
    alert_log_lines: usize,
}

/// `RssAnon` of `pid` in kB: the heap, without the ring buffer's shared pages.
fn rss_anon_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Runs the storm with the agent's syslog sink on `addr`, `max_record_bytes` its longest record.
fn storm_against(addr: &str, max_record_bytes: usize, tag: &str) -> Outcome {
    let config = format!(
        "[sinks.syslog]\nenabled = true\ntransport = \"tcp\"\naddress = \"{addr}\"\nqueue_capacity = 16\ntimeout_ms = 1000\nreconnect_max_ms = 1000\nmax_record_bytes = {max_record_bytes}\n\
         [alert_budget]\nmax_alerts = 1000000\n[sensor]\nring_buffer_bytes = 33554432\n"
    );
    let mut agent = Agent::start(AGENT, tag, &config).unwrap();
    agent.sync().unwrap();
    let pid = agent.pid();
    let baseline = rss_anon_kb(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        thread::spawn(move || {
            while sampling.load(SeqCst) {
                peak.fetch_max(rss_anon_kb(pid), SeqCst);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let run = unique();
    let pad = "P".repeat(PAD);
    in_boot_namespace(&format!(
        "i=0; while [ $i -lt {COPIES} ]; do cp --suffix={pad} /etc/hostname /boot/rf-{run}-$i; i=$((i+1)); done"
    )).unwrap();
    agent.sync().unwrap(); // every copy of the storm has been handled
    // The once-a-second tick reports losses.
    thread::sleep(Duration::from_millis(1500));
    sampling.store(false, SeqCst);
    sampler.join().unwrap();
    // A receiver that is down does not make the stop fail or slow.
    let (status, took, records) = agent.stop().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(2) * slowdown(),
        "SIGTERM took {took:?}"
    );
    let alerts_per_copy = (0..COPIES)
        .map(|i| {
            let target = format!("/boot/rf-{run}-{i}");
            records
                .iter()
                .filter(|r| {
                    r["event"]["kind"] == "alert"
                        && r["rule"]["id"] == PUBLISHED
                        && boot_copy_harness::has_arg(&r["process"]["args"], &target)
                })
                .count()
        })
        .collect();
    let counters = records
        .iter()
        .find(|r| r["event"]["action"] == "agent-stopped")
        .expect("the stop record reached the alert log")["boot_copy"]["counters"]
        .clone();
    let syslog_loss_records = records
        .iter()
        .filter(|r| {
            r["event"]["action"] == "events-lost"
                && (r["boot_copy"]["loss"]["syslog_dropped"].as_u64() > Some(0)
                    || r["boot_copy"]["loss"]["syslog_failed"].as_u64() > Some(0))
        })
        .count();
    Outcome {
        alerts_per_copy,
        heap_growth_kb: peak.load(SeqCst).saturating_sub(baseline),
        counters,
        syslog_loss_records,
        alert_log_lines: records.len(),
    }
}

/// What every scenario must show.
fn assert_unaffected(o: &Outcome) {
    let c = &o.counters;
    eprintln!(
        "heap growth {} kB; syslog written {} dropped {} failed {}; alert log {} lines",
        o.heap_growth_kb,
        c["syslog_written"],
        c["syslog_dropped"],
        c["syslog_failed"],
        o.alert_log_lines
    );
    let wrong: Vec<(usize, usize)> = o
        .alerts_per_copy
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "(copy, alerts) not alerted exactly once: {wrong:?}"
    );
    assert_eq!(c["ringbuf_drops"], 0, "{c}");
    assert_eq!(c["alert_log_dropped"], 0, "{c}");
    assert_eq!(c["alert_log_failed"], 0, "{c}");
    assert!(
        c["alert_log_written"].as_u64().unwrap() >= COPIES as u64,
        "{c}"
    );
    let lost = c["syslog_dropped"].as_u64().unwrap() + c["syslog_failed"].as_u64().unwrap();
    assert!(lost > 0, "syslog losses are counted: {c}");
    assert!(o.syslog_loss_records > 0, "and reported in a loss record");
    assert!(
        o.heap_growth_kb < HEAP_GROWTH_LIMIT_KB,
        "heap grew by {} kB",
        o.heap_growth_kb
    );
}

#[test]
fn syslog_receiver_down_costs_only_syslog_records() {
    // A port nobody listens on: every connect is refused.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let o = storm_against(&addr, 8096, "syslog-down");
    assert_unaffected(&o);
    assert_eq!(o.counters["syslog_written"], 0);
}

#[test]
fn slow_syslog_receiver_costs_only_syslog_records() {
    // Reads 4 KiB every 50 ms through a 4 KiB receive buffer: about 80 KB/s.
    let receiver = Receiver::start(
        |l| set_int_option(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096),
        |mut conn, stop, received| {
            let mut buf = [0u8; 4096];
            while !stop.load(SeqCst) {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.fetch_add(n as u64, SeqCst),
                };
                thread::sleep(Duration::from_millis(50));
            }
        },
    );
    // Untrimmed alerts (about 26 KB each, 8 MB in all) are more than the agent's socket buffer
    // (at most tcp_wmem's 4 MB) and what the receiver reads while the storm runs: losses
    // follow from the volume, however fast the agent formats records.
    let o = storm_against(&receiver.addr, 0, "syslog-slow");
    assert_unaffected(&o);
    assert!(
        receiver.received.load(SeqCst) > 0,
        "the receiver got records"
    );
    assert!(o.counters["syslog_written"].as_u64().unwrap() > 0);
}

#[test]
fn syslog_receiver_resetting_connections_costs_only_syslog_records() {
    // Accepts, then closes with SO_LINGER 0: the agent gets a reset.
    let receiver = Receiver::start(
        |_| {},
        |conn, _, _| {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and option buffer.
            unsafe {
                libc::setsockopt(
                    conn.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        },
    );
    let started = std::time::Instant::now();
    let o = storm_against(&receiver.addr, 8096, "syslog-reset");
    let elapsed = started.elapsed();
    assert_unaffected(&o);
    // Reconnects back off (at most 1 s apart at the end): no connection storm.
    let conns = receiver.accepted.load(SeqCst);
    assert!(conns > 0);
    let max = (elapsed.as_millis() / 100) as usize + 5;
    assert!(conns <= max, "{conns} connections in {elapsed:?}");
}

//! Where records go: the alert log (NDJSON, always whole), stdout (journald) and syslog (the
//! local syslog(3) format or RFC 5424); the last two trim a record over their size limit.
//!
//! Each enabled sink runs on its own OS thread fed by its own bounded queue. [`Sinks::send`]
//! only does `try_send`, so a slow, dead or full sink never blocks detection or the other
//! sinks; what it cannot take is counted as dropped. A large record (the alert of an exec with
//! megabytes of argv) is bounded in bytes as well: each sink holds one at a time, queued or
//! being written, and one it cannot take is dropped and counted; [`Sinks::wait_large`] lets
//! the writer wait for the sinks' last one to be written before it makes the next (so a storm
//! of such alerts keeps one line in memory, not one per alert): up to 10 s, and once per record
//! a stuck sink holds. Write errors (disk full, receiver down)
//! are counted as failed, the sink keeps trying the next records and logs once when an outage
//! begins and once, with the records it lost, when it ends; the daemon's loss records report
//! the counts.
//!
//! Threads instead of tokio tasks: every sink does blocking file or socket I/O with timeouts,
//! and a thread per sink keeps the code straight-line and isolated from the runtime. `worker`
//! is that thread's loop and the counters it shares; `file`, `stdout` and `syslog` are the
//! sinks.
mod file;
mod stdout;
mod syslog;
mod trim;
mod worker;

pub use file::{AlertLogConfig, FsyncPolicy};
pub use stdout::StdoutConfig;
pub use syslog::{Facility, SyslogConfig, SyslogFormat, SyslogTransport};

use serde::Deserialize;
use std::{
    io,
    path::PathBuf,
    sync::{
        Arc,
        atomic::Ordering::Relaxed,
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};
use thiserror::Error;
use worker::{Msg, Shared, Worker, run};

/// The smallest size limit a sink accepts: room for an alert's fixed fields.
pub const MIN_RECORD_LIMIT: usize = 1024;

/// Default capacity of each sink's queue, in records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// A record (or a line buffer) of more than this is large: a sink holds one such record at a
/// time, and its buffers do not keep that size. Alerts of ordinary execs are a few KiB.
pub const LARGE_RECORD: usize = 256 * 1024;

/// How long the writer waits for each sink to write its large record before making the next
/// one: longer than a sink takes to trim and write the alert of the kernel's largest argv (a
/// second or more in a debug build or under emulation: a shorter wait dropped such records from
/// stdout), short enough that a sink stuck on its receiver stalls detection once (then it is not
/// waited for until it writes again) rather than for long.
const LARGE_WAIT: Duration = Duration::from_secs(10);

/// One record: a complete JSON object serialized on one line, no trailing newline. Shared by
/// every sink's queue; an `Arc<String>` takes the serialized line over without copying it (an
/// alert of a megabyte argv is megabytes).
#[derive(Debug, Clone)]
pub struct Record {
    pub line: Arc<String>,
    pub severity: Severity,
    /// What the record is; becomes the syslog MSGID (`alert` or `health`).
    pub msgid: MsgId,
}

impl Record {
    pub fn new(line: impl Into<String>, severity: Severity, msgid: MsgId) -> Self {
        Self {
            line: Arc::new(line.into()),
            severity,
            msgid,
        }
    }

    /// An alert of the given severity.
    pub fn alert(line: impl Into<String>, severity: Severity) -> Self {
        Self::new(line, severity, MsgId::Alert)
    }

    /// One of the agent's own records (start, stop, heartbeat, loss, suppression).
    pub fn health(line: impl Into<String>, severity: Severity) -> Self {
        Self::new(line, severity, MsgId::Health)
    }

    /// Over [`LARGE_RECORD`]: one at a time per sink.
    pub fn is_large(&self) -> bool {
        self.line.len() > LARGE_RECORD
    }
}

/// Drops a line buffer grown past what ordinary records need (the alert of an exec with megabytes
/// of argv), so that its memory is not kept.
fn release_large(buf: &mut Vec<u8>) {
    if buf.capacity() > LARGE_RECORD {
        *buf = Vec::new();
    }
}

/// Syslog severities used: heartbeat/health = Info, low alert = Notice, medium/high = Warning,
/// critical = Err.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Err,
}

impl Severity {
    /// The RFC 5424 numeric severity.
    pub fn code(self) -> u8 {
        match self {
            Severity::Err => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
            Severity::Info => 6,
        }
    }
}

/// The syslog MSGID of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MsgId {
    #[default]
    Alert,
    Health,
}

impl MsgId {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgId::Alert => "alert",
            MsgId::Health => "health",
        }
    }
}

/// `[sinks]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SinksConfig {
    pub alert_log: AlertLogConfig,
    pub stdout: StdoutConfig,
    pub syslog: SyslogConfig,
}

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("cannot open {what} {path}: {error}; {fix}")]
    Open {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
        fix: &'static str,
    },
    #[error(
        "{path} is a symbolic link and the alert log never follows links; remove it or set \
         [sinks.alert_log] path to a location without links"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is not a {expected}; remove it or set [sinks.alert_log] path elsewhere")]
    WrongType {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("[sinks.{key}]: {message}")]
    Config { key: &'static str, message: String },
    #[error("syslog address {address}: {message}")]
    Address { address: String, message: String },
    #[error("cannot start the {sink} sink thread: {error}")]
    Spawn {
        sink: &'static str,
        error: io::Error,
    },
}

/// One sink's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// `alert_log`, `stdout` or `syslog`.
    pub sink: &'static str,
    /// Records written (for syslog: handed to the socket).
    pub written: u64,
    /// Records refused because the queue was full (or still queued at a shutdown deadline).
    pub dropped: u64,
    /// Records lost to write errors: disk full, receiver down, datagram too large.
    pub failed: u64,
    /// Records waiting in the queue.
    pub queued: u64,
    /// False from the first error until the next successful write.
    pub healthy: bool,
}

struct Handle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    done: tokio::sync::oneshot::Receiver<()>,
}

/// The running sinks.
pub struct Sinks {
    handles: Vec<Handle>,
    /// [`LARGE_WAIT`]; shorter in tests.
    large_wait: Duration,
}

/// Sinks opened (log file created, addresses checked) whose threads have not started: the
/// daemon opens them before attaching anything, and starts them once it has dropped its
/// capabilities (which are per thread).
pub struct OpenSinks {
    workers: Vec<(&'static str, usize, Box<dyn Worker>)>,
}

impl OpenSinks {
    /// Starts one thread per sink, each fed by its own bounded queue.
    pub fn start(self) -> Result<Sinks, SinkError> {
        let mut sinks = Sinks {
            handles: Vec::new(),
            large_wait: LARGE_WAIT,
        };
        for (name, capacity, worker) in self.workers {
            sinks.spawn(name, capacity, worker)?;
        }
        Ok(sinks)
    }
}

impl Sinks {
    /// Opens every enabled sink (errors name the path or address and the fix) and starts one
    /// thread per sink, each fed by its own bounded queue. Syslog receivers need not be up:
    /// the sink connects (and reconnects) in the background.
    pub fn start(cfg: &SinksConfig) -> Result<Sinks, SinkError> {
        Self::open(cfg)?.start()
    }

    /// Opens every enabled sink without starting its thread.
    pub fn open(cfg: &SinksConfig) -> Result<OpenSinks, SinkError> {
        let mut workers: Vec<(&'static str, usize, Box<dyn Worker>)> = Vec::new();
        if cfg.alert_log.enabled {
            let worker = file::AlertLog::open(&cfg.alert_log)?;
            workers.push(("alert_log", cfg.alert_log.queue_capacity, Box::new(worker)));
        }
        if cfg.stdout.enabled {
            let worker = stdout::Stdout::new(&cfg.stdout);
            workers.push(("stdout", cfg.stdout.queue_capacity, Box::new(worker)));
        }
        if cfg.syslog.enabled {
            let worker = syslog::Syslog::new(&cfg.syslog)?;
            workers.push(("syslog", cfg.syslog.queue_capacity, Box::new(worker)));
        }
        for (key, max) in [
            ("stdout", cfg.stdout.max_record_bytes),
            ("syslog", cfg.syslog.max_record_bytes),
        ] {
            if max != 0 && max < MIN_RECORD_LIMIT {
                return Err(SinkError::Config {
                    key,
                    message: format!(
                        "max_record_bytes must be 0 (no limit) or at least {MIN_RECORD_LIMIT}"
                    ),
                });
            }
        }
        if let Some((name, _, _)) = workers.iter().find(|(_, capacity, _)| *capacity == 0) {
            return Err(SinkError::Config {
                key: name,
                message: "queue_capacity must be at least 1".into(),
            });
        }
        Ok(OpenSinks { workers })
    }

    fn spawn(
        &mut self,
        name: &'static str,
        capacity: usize,
        worker: impl Worker,
    ) -> Result<(), SinkError> {
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared::new(name));
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                run(worker, rx, &thread_shared);
                let _ = done_tx.send(());
            })
            .map_err(|error| SinkError::Spawn { sink: name, error })?;
        self.handles.push(Handle { tx, shared, done });
        Ok(())
    }

    /// Never blocks: offers the record to each sink's queue; a full queue, or a large record
    /// to a sink that holds one already, counts a drop for that sink.
    pub fn send(&self, record: &Record) {
        let large = record.is_large();
        for h in &self.handles {
            if large && !h.shared.take_large() {
                h.shared.dropped.fetch_add(1, Relaxed);
                continue;
            }
            match h.tx.try_send(Msg::Record(record.clone())) {
                Ok(()) => h.shared.accepted.fetch_add(1, Relaxed),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    if large {
                        h.shared.free_large();
                    }
                    h.shared.dropped.fetch_add(1, Relaxed)
                }
            };
        }
    }

    /// Waits (up to [`LARGE_WAIT`] for each) until the sinks have written their large record,
    /// if they hold one: before the next large record is made, so that the two are not in
    /// memory at once.
    pub fn wait_large(&self) {
        for h in &self.handles {
            h.shared.wait_large(self.large_wait);
        }
    }

    /// Reopens the alert log at its path (SIGHUP, after logrotate renamed it).
    pub fn reopen(&self) {
        for h in &self.handles {
            h.shared.reopen.store(true, Relaxed);
            // A full queue wakes the thread anyway.
            let _ = h.tx.try_send(Msg::Wake);
        }
    }

    /// Per-sink counters.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.handles.iter().map(|h| h.shared.stats()).collect()
    }

    /// Drains the queues, flushes and closes, within `deadline`. Records a sink could not
    /// write by then are counted as dropped; the final counters are returned.
    pub async fn shutdown(self, deadline: Duration) -> Vec<SinkStats> {
        let end = tokio::time::Instant::now() + deadline;
        // Dropping the senders lets every thread drain its queue and exit, all at once.
        let waiting: Vec<_> = self
            .handles
            .into_iter()
            .map(|Handle { shared, done, .. }| (shared, done))
            .collect();
        let mut stats = Vec::new();
        for (shared, done) in waiting {
            if tokio::time::timeout_at(end, done).await.is_err() {
                shared.abort.store(true, Relaxed);
                tracing::warn!(
                    sink = shared.name,
                    "shutdown deadline passed with records queued"
                );
            }
            let mut s = shared.stats();
            s.dropped += s.queued;
            s.queued = 0;
            stats.push(s);
        }
        stats
    }
}

/// A JSON line must stay one line: serde_json never emits raw CR/LF, but a stray one would
/// forge a second record in the log, so it becomes a space (legal JSON whitespace; inside a
/// string it was invalid JSON already).
fn one_line(line: &str) -> std::borrow::Cow<'_, str> {
    // A byte scan: both are ASCII, and decoding the line into chars costs several times more.
    if line.bytes().any(|b| matches!(b, b'\n' | b'\r')) {
        line.replace(['\n', '\r'], " ").into()
    } else {
        line.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_from_empty_toml() {
        let cfg: SinksConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, SinksConfig::default());
        assert!(cfg.alert_log.enabled);
        assert!(cfg.stdout.enabled);
        assert!(!cfg.syslog.enabled);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<SinksConfig>("[alert_log]\nmax_byte = 1\n").unwrap_err();
        assert!(err.to_string().contains("max_byte"), "{err}");
    }

    #[test]
    fn one_line_replaces_raw_newlines_only() {
        assert_eq!(one_line(r#"{"a":"x\ny"}"#), r#"{"a":"x\ny"}"#);
        assert_eq!(one_line("{\"a\":1,\n\"b\":2}\r"), "{\"a\":1, \"b\":2} ");
    }

    /// A sink whose writes each wait for the test to allow them (a receiver that is slow or
    /// stuck).
    struct Held(std::sync::mpsc::Receiver<()>);

    impl Worker for Held {
        fn write(&mut self, _record: &Record, shared: &Shared) {
            let _ = self.0.recv();
            shared.ok();
        }
    }

    fn held_sink() -> (Sinks, SyncSender<()>) {
        let (allow, allowed) = sync_channel(16);
        let mut sinks = Sinks {
            handles: vec![],
            large_wait: WAIT,
        };
        sinks.spawn("held", 16, Held(allowed)).unwrap();
        (sinks, allow)
    }

    /// The tests' [`LARGE_WAIT`].
    const WAIT: Duration = Duration::from_millis(300);

    fn large() -> Record {
        Record::alert("x".repeat(LARGE_RECORD + 1), Severity::Warning)
    }

    #[test]
    fn a_large_record_is_freed_before_the_next_is_made() {
        let (sinks, allow) = held_sink();
        let mut previous: Option<std::sync::Weak<String>> = None;
        for _ in 0..3 {
            allow.send(()).unwrap();
            sinks.wait_large();
            assert!(previous.is_none_or(|p| p.upgrade().is_none()));
            let record = large();
            previous = Some(Arc::downgrade(&record.line));
            sinks.send(&record);
        }
        sinks.wait_large();
        let s = &sinks.stats()[0];
        assert_eq!((s.written, s.dropped, s.queued), (3, 0, 0));
    }

    #[test]
    fn a_stuck_sink_is_waited_for_once_and_its_drops_are_counted() {
        let (sinks, allow) = held_sink();
        sinks.send(&large());
        let started = std::time::Instant::now();
        sinks.wait_large();
        assert!(started.elapsed() >= WAIT);
        // Stuck: not waited for again, and a second large record is dropped, counted; small
        // records still queue.
        let again = std::time::Instant::now();
        sinks.wait_large();
        assert!(again.elapsed() < WAIT / 2);
        sinks.send(&large());
        sinks.send(&Record::health("{}", Severity::Info));
        let s = &sinks.stats()[0];
        assert_eq!((s.written, s.dropped, s.queued), (0, 1, 2));
        // Once it writes, the next large record is taken again.
        allow.send(()).unwrap();
        while sinks.handles[0].shared.holds_large() {
            std::thread::sleep(Duration::from_millis(1));
        }
        sinks.send(&large());
        assert_eq!(sinks.stats()[0].dropped, 1);
        for _ in 0..2 {
            allow.send(()).unwrap();
        }
        sinks.wait_large();
        let s = &sinks.stats()[0];
        assert_eq!((s.written, s.dropped), (3, 1));
    }

    #[test]
    fn severity_codes() {
        let codes: Vec<u8> = [
            Severity::Err,
            Severity::Warning,
            Severity::Notice,
            Severity::Info,
        ]
        .map(Severity::code)
        .into();
        assert_eq!(codes, [3, 4, 5, 6]);
    }
}

//! Where records go: the alert log (NDJSON), stdout (journald) and syslog (RFC 5424).
//!
//! Each enabled sink runs on its own OS thread fed by its own bounded queue. [`Sinks::send`]
//! only does `try_send`, so a slow, dead or full sink never blocks detection or the other
//! sinks; what it cannot take is counted as dropped. Write errors (disk full, receiver down)
//! are counted as failed, the sink keeps trying the next records, and when it recovers the
//! span of the outage is kept as a [`Gap`] for the daemon's loss records.
//!
//! Threads instead of tokio tasks: every sink does blocking file or socket I/O with timeouts,
//! and a thread per sink keeps the code straight-line and isolated from the runtime.
mod file;
mod stdout;
mod syslog;

pub use file::{AlertLogConfig, FsyncPolicy};
pub use stdout::StdoutConfig;
pub use syslog::{Facility, SyslogConfig, SyslogTransport};

use serde::Deserialize;
use std::{
    fmt::Display,
    io,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel},
    },
    time::{Duration, Instant, SystemTime},
};
use thiserror::Error;

/// Default capacity of each sink's queue, in records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// One record: a complete JSON object serialized on one line, no trailing newline.
#[derive(Debug, Clone)]
pub struct Record {
    pub line: Arc<str>,
    pub severity: Severity,
    /// What the record is; becomes the syslog MSGID (`alert` or `health`).
    pub msgid: MsgId,
}

impl Record {
    pub fn new(line: impl Into<Arc<str>>, severity: Severity, msgid: MsgId) -> Self {
        Self {
            line: line.into(),
            severity,
            msgid,
        }
    }

    /// An alert of the given severity.
    pub fn alert(line: impl Into<Arc<str>>, severity: Severity) -> Self {
        Self::new(line, severity, MsgId::Alert)
    }

    /// One of the agent's own records (start, stop, heartbeat, loss, suppression).
    pub fn health(line: impl Into<Arc<str>>, severity: Severity) -> Self {
        Self::new(line, severity, MsgId::Health)
    }
}

/// Drops a line buffer grown past what ordinary records need (the alert of an exec with megabytes
/// of argv), so that its memory is not kept.
fn release_large(buf: &mut Vec<u8>) {
    if buf.capacity() > 256 * 1024 {
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

/// A span during which a sink lost records, closed when it wrote again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Records failed or dropped between `since` and `until`.
    pub lost: u64,
    pub since: SystemTime,
    pub until: SystemTime,
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
    /// Outages so far that ended with a successful write.
    pub gaps: u64,
    /// The last outage that ended.
    pub last_gap: Option<Gap>,
    /// When the current outage began, if the sink is failing now.
    pub failing_since: Option<SystemTime>,
}

/// Counters and control flags shared by a sink's thread and [`Sinks`].
struct Shared {
    name: &'static str,
    accepted: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    healthy: AtomicBool,
    /// Fast-path mirror of `outage.current.is_some()`.
    failing: AtomicBool,
    gaps: AtomicU64,
    outage: Mutex<Outage>,
    reopen: AtomicBool,
    abort: AtomicBool,
}

#[derive(Default)]
struct Outage {
    /// Start time and `failed + dropped` at the start.
    current: Option<(SystemTime, u64)>,
    last: Option<Gap>,
}

impl Shared {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            accepted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            gaps: AtomicU64::new(0),
            outage: Mutex::new(Outage::default()),
            reopen: AtomicBool::new(false),
            abort: AtomicBool::new(false),
        }
    }

    fn lost(&self) -> u64 {
        self.failed.load(Relaxed) + self.dropped.load(Relaxed)
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record was written.
    fn ok(&self) {
        self.written.fetch_add(1, Relaxed);
        self.healthy.store(true, Relaxed);
        if self.failing.load(Relaxed) {
            self.recovered();
        }
    }

    /// A record was lost to a write error.
    fn fail(&self, error: &dyn Display) {
        // Starting the outage first counts this record in its gap.
        self.down(error);
        self.failed.fetch_add(1, Relaxed);
    }

    /// The sink cannot write (yet no record is lost by this call): starts an outage.
    fn down(&self, error: &dyn Display) {
        self.healthy.store(false, Relaxed);
        if self.failing.swap(true, Relaxed) {
            return;
        }
        self.outage().current = Some((SystemTime::now(), self.lost()));
        // Logged once per outage, not per record.
        tracing::warn!(
            sink = self.name,
            "{error}; counting lost records until it recovers"
        );
    }

    /// The sink is up again (connected, reopened) without having written yet.
    fn up(&self) {
        self.healthy.store(true, Relaxed);
    }

    fn recovered(&self) {
        let mut outage = self.outage();
        let Some((since, lost_before)) = outage.current.take() else {
            return;
        };
        self.failing.store(false, Relaxed);
        let gap = Gap {
            lost: self.lost().saturating_sub(lost_before),
            since,
            until: SystemTime::now(),
        };
        outage.last = Some(gap);
        self.gaps.fetch_add(1, Relaxed);
        let secs = gap
            .until
            .duration_since(since)
            .unwrap_or_default()
            .as_secs_f64();
        tracing::warn!(
            sink = self.name,
            lost = gap.lost,
            "writing again after {secs:.1}s; {} records lost meanwhile",
            gap.lost
        );
    }

    fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    fn stats(&self) -> SinkStats {
        let outage = self.outage();
        let (written, failed) = (self.written.load(Relaxed), self.failed.load(Relaxed));
        SinkStats {
            sink: self.name,
            written,
            dropped: self.dropped.load(Relaxed),
            failed,
            queued: self.accepted.load(Relaxed).saturating_sub(written + failed),
            healthy: self.healthy.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            last_gap: outage.last,
            failing_since: outage.current.map(|(since, _)| since),
        }
    }
}

enum Msg {
    Record(Record),
    /// Wakes the thread to look at its flags (reopen).
    Wake,
}

/// What a sink thread does; the loop around it is [`run`].
trait Worker: Send + 'static {
    /// Writes one record, accounting for it through `shared` (unless aborted).
    fn write(&mut self, record: &Record, shared: &Shared);
    /// Before each record: e.g. is the log file still the one at its path? Per record, so a
    /// file renamed by logrotate gets no more writes than needed after the rename (a shipper
    /// may stop reading it soon after).
    fn check(&mut self, _shared: &Shared) {}
    /// Periodic work, also when idle.
    fn tick(&mut self, _shared: &Shared) {}
    fn tick_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn reopen(&mut self, _shared: &Shared) {}
    /// Flush and close, at shutdown.
    fn close(&mut self, _shared: &Shared) {}
}

fn run(mut worker: impl Worker, rx: Receiver<Msg>, shared: &Shared) {
    let mut last_tick = Instant::now();
    // Records are taken one at a time, so at most queue capacity + 1 are held in memory.
    while !shared.aborted() {
        let msg = match rx.try_recv() {
            Ok(msg) => Some(msg),
            // Only reported once the queue is empty: the clean shutdown.
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => match rx.recv_timeout(worker.tick_interval()) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if shared.reopen.swap(false, Relaxed) {
            worker.reopen(shared);
        }
        if let Some(Msg::Record(record)) = msg {
            worker.check(shared);
            worker.write(&record, shared);
        }
        if last_tick.elapsed() >= worker.tick_interval() {
            worker.tick(shared);
            last_tick = Instant::now();
        }
    }
    if !shared.aborted() {
        worker.close(shared);
    }
}

struct Handle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    done: tokio::sync::oneshot::Receiver<()>,
}

/// The running sinks.
pub struct Sinks {
    handles: Vec<Handle>,
}

/// Forwarding, so sinks opened up front can be started later as one list.
impl Worker for Box<dyn Worker> {
    fn write(&mut self, record: &Record, shared: &Shared) {
        (**self).write(record, shared)
    }
    fn check(&mut self, shared: &Shared) {
        (**self).check(shared)
    }
    fn tick(&mut self, shared: &Shared) {
        (**self).tick(shared)
    }
    fn tick_interval(&self) -> Duration {
        (**self).tick_interval()
    }
    fn reopen(&mut self, shared: &Shared) {
        (**self).reopen(shared)
    }
    fn close(&mut self, shared: &Shared) {
        (**self).close(shared)
    }
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
            let worker = stdout::Stdout::new();
            workers.push(("stdout", cfg.stdout.queue_capacity, Box::new(worker)));
        }
        if cfg.syslog.enabled {
            let worker = syslog::Syslog::new(&cfg.syslog)?;
            workers.push(("syslog", cfg.syslog.queue_capacity, Box::new(worker)));
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

    /// Never blocks: offers the record to each sink's queue; a full queue counts a drop for
    /// that sink.
    pub fn send(&self, record: &Record) {
        for h in &self.handles {
            match h.tx.try_send(Msg::Record(record.clone())) {
                Ok(()) => h.shared.accepted.fetch_add(1, Relaxed),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    h.shared.dropped.fetch_add(1, Relaxed)
                }
            };
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

    #[test]
    fn outage_becomes_a_gap_on_recovery() {
        let s = Shared::new("t");
        s.ok();
        s.fail(&"disk full");
        s.fail(&"disk full");
        s.dropped.fetch_add(1, Relaxed);
        let st = s.stats();
        assert!(!st.healthy && st.failing_since.is_some() && st.last_gap.is_none());
        s.ok();
        let st = s.stats();
        assert!(st.healthy && st.failing_since.is_none());
        assert_eq!((st.gaps, st.last_gap.unwrap().lost), (1, 3));
        assert_eq!((st.written, st.failed, st.dropped), (2, 2, 1));
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

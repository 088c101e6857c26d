//! The daemon's loop: drain the ring into detection and the writer, and once a second close
//! budget windows, follow the wall clock, report losses and tampering and rewrite the status
//! file; heartbeats, the watchdog, signals; at SIGTERM a drain and a clean stop.
use super::guards::Guards;
use crate::{
    config::Config,
    context::clock::BootEpoch,
    detect::{Detector, Finding},
    metrics,
    records::{
        Counters, DaemonCounters, KernelCounters, Origin, Writer, lifecycle, loss,
        loss::LossTracker,
        status::{Status, StatusFile},
    },
    sensor::{RingReader, Sensor, roots::MountTable},
    service,
    sink::Severity,
};
use anyhow::{Context as _, bail};
use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How often the ring is drained when the kernel batches records without waking the reader
/// (when it reports every exec); otherwise every record wakes the reader and no timer is needed.
const POLL: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_secs(1);
const SHUTDOWN: Duration = Duration::from_millis(1500);

/// The signals the daemon handles, registered before anything is written: a signal that comes
/// as soon as the start record is visible must not hit the default action (termination).
pub(super) struct Signals {
    term: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    pub(super) fn register() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

/// SIGHUP reloads handled, and why the last was refused: what `boot-copy-agent reload` reads
/// back from the status file.
#[derive(Default)]
pub(super) struct ReloadState {
    pub(super) count: u64,
    pub(super) error: Option<String>,
}

pub(super) struct Daemon {
    pub(super) origin: Origin,
    pub(super) detector: Detector,
    pub(super) writer: Writer,
    pub(super) sensor: Sensor,
    pub(super) guards: Guards,
    pub(super) loss: LossTracker,
    pub(super) status: StatusFile,
    pub(super) started: SystemTime,
    pub(super) config_path: PathBuf,
    pub(super) explicit: bool,
    pub(super) metrics: metrics::Page,
    pub(super) reload: ReloadState,
    pub(super) mounts: MountTable,
}

impl Daemon {
    /// Runs until SIGTERM or SIGINT, or until a program was detached.
    pub(super) async fn main_loop(
        &mut self,
        reader: &mut RingReader,
        config: &Config,
        signals: &mut Signals,
    ) -> anyhow::Result<()> {
        // Drain at least this often (else on wake-ups, and once a second).
        let poll = self.detector.rules().kernel.all_execs().then_some(POLL);
        let mut tick = tokio::time::interval(TICK);
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(config.health.heartbeat_seconds));
        heartbeat.tick().await; // the first tick is immediate; the start record covers it
        let watchdog = service::watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                ready = reader.wait(poll) => {
                    ready.context("waiting on the ring buffer")?;
                    self.drain(reader);
                }
                _ = tick.tick() => {
                    self.drain(reader);
                    self.tick()?;
                    if self.guards.detached() > 0 {
                        return Ok(()); // blind: stop, so that a restart attaches again
                    }
                }
                _ = heartbeat.tick() => {
                    let record = lifecycle::heartbeat(&self.origin, &self.counters(self.sensor.counters()?));
                    self.writer.health(record, Severity::Info);
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => service::notify("WATCHDOG=1"),
                _ = signals.hangup.recv() => self.reload(),
                _ = signals.term.recv() => return Ok(()),
                _ = signals.interrupt.recv() => return Ok(()),
            }
        }
    }

    /// Each record's alerts go to the sinks before the next record is read, so that a full ring
    /// does not hold all its alerts in memory at once.
    fn drain(&mut self, reader: &mut RingReader) {
        let now = Instant::now();
        let Daemon {
            detector,
            writer,
            origin,
            ..
        } = self;
        reader.drain(|record| {
            detector.handle(record, now, &mut |finding| {
                write_finding(writer, origin, finding, now)
            });
        });
    }

    /// Once a second: closed budget windows, the wall clock, losses, guards, the heap's free pages,
    /// the status file.
    fn tick(&mut self) -> anyhow::Result<()> {
        self.close_windows(false);
        if self.mounts.changed() {
            self.follow_mounts();
        }
        match BootEpoch::now() {
            Ok(epoch) => self.detector.describer().follow_clock(epoch),
            Err(e) => tracing::debug!("boot epoch not read this second: {e}"),
        }
        // Read once a tick: one syscall per counter.
        let kernel = self.sensor.counters()?;
        self.report_losses(kernel);
        for record in self.guards.check(&self.origin) {
            self.writer.health(record, Severity::Err);
        }
        crate::memory::release_freed();
        self.write_status(kernel, false)
    }

    /// The mount table changed: the same trees, their mounts and the paths showing them
    /// (bind mounts) found again.
    fn follow_mounts(&mut self) {
        let dirs = self.sensor.watched().trees.clone();
        match self.sensor.watch(&dirs) {
            Ok(trees) => {
                let trees = trees.clone();
                self.detector.set_trees(trees);
            }
            Err(e) => tracing::warn!(error = %e, "following a change of the mount table"),
        }
    }

    /// Summaries of the budget windows that closed (all of them at shutdown).
    fn close_windows(&mut self, all: bool) {
        let now = Instant::now();
        for s in self.detector.close_windows(now, all) {
            write_finding(&mut self.writer, &self.origin, Finding::Suppressed(s), now);
        }
    }

    /// Every counter, with the kernel's as read.
    pub(super) fn counters(&self, kernel: KernelCounters) -> Counters {
        Counters {
            kernel,
            detect: self.detector.counts,
            daemon: Some(DaemonCounters {
                programs_detached: self.guards.detached(),
                maps_tampered: self.guards.tampered(),
                args_chunks_missing: self.sensor.chunks_missing(),
                sinks: self.writer.sinks().stats(),
            }),
        }
    }

    /// A loss record if anything was lost since the last one.
    fn report_losses(&mut self, kernel: KernelCounters) {
        let counters = self.counters(kernel);
        if let Some(record) = self.loss.check(&self.origin, &counters) {
            self.writer.health(record, Severity::Warning);
        }
    }

    /// The status file and the metrics page, from the same counters.
    pub(super) fn write_status(&self, kernel: KernelCounters, stopped: bool) -> anyhow::Result<()> {
        let counters = self.counters(kernel);
        self.metrics.update(&counters);
        let mut status = Status::new(self.started, self.writer.last_seq(), &counters, stopped);
        status.chain_hmac = self.writer.chain_hex();
        status.reloads = self.reload.count;
        status.reload_error.clone_from(&self.reload.error);
        self.status.write(&status)
    }

    /// SIGTERM: drain the ring, close budget windows, say goodbye, flush the sinks.
    pub(super) async fn shutdown(mut self, reader: &mut RingReader) -> anyhow::Result<()> {
        service::notify("STOPPING=1");
        self.drain(reader);
        self.close_windows(true);
        let kernel = self.sensor.counters()?;
        self.report_losses(kernel);
        let stop = lifecycle::stopped(&self.origin, &self.counters(kernel));
        self.writer.health(stop, Severity::Info);
        self.write_status(kernel, true)?;
        let detached = self.guards.detached();
        let stats = self.writer.shutdown(SHUTDOWN).await;
        let lost: u64 = stats.iter().map(|s| s.dropped).sum();
        if detached > 0 {
            // Another process closed descriptors the sensor owns: dropping it would close
            // them again (or whatever reuses their numbers). The process is exiting anyway.
            std::mem::forget(self.sensor);
            bail!(
                "{detached} of the kernel programs were detached by another process; exiting so that the service manager restarts the agent and attaches them again"
            );
        }
        if lost > 0 {
            // Counted in every heartbeat and loss record so far; what was still queued at the
            // deadline (a receiver that is down) can only be said here. Not a failed stop.
            tracing::warn!(
                lost,
                "records dropped by the sinks, those queued at the shutdown deadline included"
            );
        }
        Ok(())
    }
}

/// An alert, or the summary of a budget window that withheld some, to the writer.
fn write_finding(writer: &mut Writer, origin: &Origin, finding: Finding<'_>, now: Instant) {
    match finding {
        Finding::Alert { alert, severity } => writer.alert(alert, severity),
        Finding::Suppressed(s) => {
            writer.health(loss::suppressed(origin, &s, now), Severity::Warning)
        }
    }
}

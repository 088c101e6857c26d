//! A sink's thread: the [`Worker`] it runs, the loop around it, and the counters and flags it
//! shares with [`Sinks`](super::Sinks).
use super::{Record, SinkStats};
use std::{
    fmt::Display,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError, TryRecvError},
    },
    time::{Duration, Instant, SystemTime},
};

/// Counters and control flags shared by a sink's thread and [`Sinks`].
pub(super) struct Shared {
    pub(super) name: &'static str,
    pub(super) accepted: AtomicU64,
    pub(super) written: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) healthy: AtomicBool,
    /// Fast-path mirror of `outage.is_some()`.
    failing: AtomicBool,
    /// The current outage: its start and `failed + dropped` then.
    outage: Mutex<Option<(SystemTime, u64)>>,
    pub(super) reopen: AtomicBool,
    pub(super) abort: AtomicBool,
    /// Whether a large record is queued or being written: a sink holds one at a time.
    large: Mutex<LargeSlot>,
    large_freed: Condvar,
}

/// The one large record a sink may hold (see [`Shared::wait_large`]).
#[derive(Default)]
struct LargeSlot {
    taken: bool,
    /// A wait for this record timed out: the next ones do not wait until it is written.
    stalled: bool,
}

impl Shared {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            accepted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            outage: Mutex::new(None),
            reopen: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            large: Mutex::new(LargeSlot::default()),
            large_freed: Condvar::new(),
        }
    }

    fn large(&self) -> MutexGuard<'_, LargeSlot> {
        self.large.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the sink's large record to be written and freed. A sink that
    /// is down, or whose last wait timed out (stuck on a receiver), is not waited for again
    /// until that record is written: one stall per stuck record, not one per alert.
    pub(super) fn wait_large(&self, timeout: Duration) {
        let slot = self.large();
        if !slot.taken || slot.stalled || !self.healthy.load(Relaxed) {
            return;
        }
        let (mut slot, _) = self
            .large_freed
            .wait_timeout_while(slot, timeout, |s| s.taken)
            .unwrap_or_else(|e| e.into_inner());
        slot.stalled = slot.taken;
    }

    /// Takes the large-record slot; false if the sink holds one already.
    pub(super) fn take_large(&self) -> bool {
        let mut slot = self.large();
        !std::mem::replace(&mut slot.taken, true)
    }

    #[cfg(test)]
    pub(super) fn holds_large(&self) -> bool {
        self.large().taken
    }

    /// The large record was written (or lost) and freed.
    pub(super) fn free_large(&self) {
        *self.large() = LargeSlot::default();
        self.large_freed.notify_all();
    }

    fn lost(&self) -> u64 {
        self.failed.load(Relaxed) + self.dropped.load(Relaxed)
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Option<(SystemTime, u64)>> {
        self.outage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record was written.
    pub(super) fn ok(&self) {
        self.written.fetch_add(1, Relaxed);
        self.healthy.store(true, Relaxed);
        if self.failing.load(Relaxed) {
            self.recovered();
        }
    }

    /// A record was lost to a write error.
    pub(super) fn fail(&self, error: &dyn Display) {
        // Starting the outage first counts this record in its gap.
        self.down(error);
        self.failed.fetch_add(1, Relaxed);
    }

    /// The sink cannot write (yet no record is lost by this call): starts an outage.
    pub(super) fn down(&self, error: &dyn Display) {
        self.healthy.store(false, Relaxed);
        if self.failing.swap(true, Relaxed) {
            return;
        }
        *self.outage() = Some((SystemTime::now(), self.lost()));
        // Logged once per outage, not per record.
        tracing::warn!(
            sink = self.name,
            "{error}; counting lost records until it recovers"
        );
    }

    /// The sink is up again (connected, reopened) without having written yet.
    pub(super) fn up(&self) {
        self.healthy.store(true, Relaxed);
    }

    fn recovered(&self) {
        let Some((since, lost_before)) = self.outage().take() else {
            return;
        };
        self.failing.store(false, Relaxed);
        let lost = self.lost().saturating_sub(lost_before);
        let secs = since.elapsed().unwrap_or_default().as_secs_f64();
        tracing::warn!(
            sink = self.name,
            lost,
            "writing again after {secs:.1}s; {lost} records lost meanwhile"
        );
    }

    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    pub(super) fn stats(&self) -> SinkStats {
        let (written, failed) = (self.written.load(Relaxed), self.failed.load(Relaxed));
        SinkStats {
            sink: self.name,
            written,
            dropped: self.dropped.load(Relaxed),
            failed,
            queued: self.accepted.load(Relaxed).saturating_sub(written + failed),
            healthy: self.healthy.load(Relaxed),
        }
    }
}

pub(super) enum Msg {
    Record(Record),
    /// Wakes the thread to look at its flags (reopen).
    Wake,
}

/// What a sink thread does; the loop around it is [`run`].
pub(super) trait Worker: Send + 'static {
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

pub(super) fn run(mut worker: impl Worker, rx: Receiver<Msg>, shared: &Shared) {
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
            let large = record.is_large();
            // Freed before the slot is: the next large line is made only once this one is gone.
            drop(record);
            if large {
                shared.free_large();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_unhealthy_and_counted_until_a_write_succeeds() {
        let s = Shared::new("t");
        s.ok();
        s.fail(&"disk full");
        s.fail(&"disk full");
        s.dropped.fetch_add(1, Relaxed);
        let st = s.stats();
        assert!(!st.healthy);
        assert_eq!((st.written, st.failed, st.dropped), (1, 2, 1));
        s.ok();
        let st = s.stats();
        assert!(st.healthy && s.outage().is_none());
        assert_eq!((st.written, st.failed, st.dropped), (2, 2, 1));
    }
}

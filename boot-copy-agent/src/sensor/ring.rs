//! Reading exec records from the `EVENTS` ring buffer (their spilled argv put back in), and the
//! kernel programs' diagnostics from aya-log's ring.
use std::{borrow::Cow, io, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use super::{diagnostics::KernelLog, spill::Spill};

/// The ring-buffer consumer. Registered with tokio on first `wait` (so it can be created outside
/// a runtime and moved into a task).
pub struct RingReader {
    state: State,
    spill: Spill,
    log: Option<KernelLog>,
}

enum State {
    Plain(RingBuf<MapData>),
    Registered(AsyncFd<RingBuf<MapData>>),
    /// Only while switching between the two.
    Empty,
}

impl RingReader {
    pub(super) fn new(ring: RingBuf<MapData>, spill: Spill, log: Option<KernelLog>) -> Self {
        Self {
            state: State::Plain(ring),
            spill,
            log,
        }
    }

    /// Waits until the ring is readable or `poll_interval` (if any) elapses. Unwatched records
    /// are submitted without a wake-up, so callers that receive them drain after every return,
    /// readable or not.
    pub async fn wait(&mut self, poll_interval: Option<Duration>) -> io::Result<()> {
        if let State::Plain(_) = self.state {
            let State::Plain(ring) = std::mem::replace(&mut self.state, State::Empty) else {
                unreachable!("checked above")
            };
            // SAFETY: the ring buffer owns its map fd, which stays open (and the same file) for
            // as long as the AsyncFd owns the ring.
            match unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } {
                Ok(fd) => self.state = State::Registered(fd),
                Err(e) => {
                    let (ring, err) = e.into_parts();
                    self.state = State::Plain(ring);
                    return Err(err);
                }
            }
        }
        let State::Registered(fd) = &mut self.state else {
            return Ok(());
        };
        let readable = match poll_interval {
            Some(interval) => match tokio::time::timeout(interval, fd.readable_mut()).await {
                Ok(readable) => readable,
                Err(_elapsed) => return Ok(()),
            },
            None => fd.readable_mut().await,
        };
        readable?.clear_ready();
        Ok(())
    }

    /// Calls `f` for every record currently in the ring, whole (a reassembled one owned, so
    /// that `f` can free its megabytes as soon as it has read them); returns how many. Forwards
    /// the kernel's diagnostics first.
    pub fn drain(&mut self, mut f: impl FnMut(Cow<'_, [u8]>)) -> usize {
        if let Some(log) = &mut self.log {
            log.flush();
        }
        let ring = match &mut self.state {
            State::Plain(ring) => ring,
            State::Registered(fd) => fd.get_mut(),
            State::Empty => return 0,
        };
        let mut n = 0;
        while let Some(item) = ring.next() {
            match self.spill.assemble(&item) {
                Some(whole) => {
                    drop(item); // frees its ring space before the (large) record is handled
                    f(Cow::Owned(whole));
                    crate::memory::release_freed();
                }
                None => f(Cow::Borrowed(&item)),
            }
            n += 1;
        }
        n
    }
}

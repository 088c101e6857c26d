//! Reading exec records from the `EVENTS` ring buffer.
use std::{io, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

/// The ring-buffer consumer. Registered with tokio on first `wait` (so it can be created outside
/// a runtime and moved into a task).
pub struct RingReader {
    state: State,
}

enum State {
    Plain(RingBuf<MapData>),
    Registered(AsyncFd<RingBuf<MapData>>),
    /// Only while switching between the two.
    Empty,
}

impl RingReader {
    pub(super) fn new(ring: RingBuf<MapData>) -> Self {
        Self {
            state: State::Plain(ring),
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

    /// Calls `f` for every record currently in the ring; returns how many.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let ring = match &mut self.state {
            State::Plain(ring) => ring,
            State::Registered(fd) => fd.get_mut(),
            State::Empty => return 0,
        };
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        n
    }
}

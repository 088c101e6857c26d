//! Kernel boot-time clock → wall clock. The kernel stamps events with `bpf_ktime_get_boot_ns()`
//! and task start times with `start_boottime`; adding the boot epoch (realtime − boottime) gives
//! wall-clock times. The daemon re-derives the epoch every second, so a stepped wall clock (NTP,
//! settimeofday) is followed within a second.
use nix::time::{ClockId, clock_gettime};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time at which the boot-time clock read zero, in ns since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEpoch(i128);

/// Differences up to this are reading noise or NTP slewing, not a step: keeping the epoch then
/// keeps `process.start` of one process the same in all its events.
const STEP_NS: i128 = 1_000_000;

/// A reading whose two boot-clock reads lie further apart than this (the thread was preempted
/// between them) is too imprecise to follow: its error, half of it, stays below a step.
const MAX_BRACKET_NS: i128 = STEP_NS / 2;

/// Readings taken to find one whose boot-clock reads lie close together (under emulation, or
/// on a busy host, a single one is often preempted).
const ATTEMPTS: usize = 10;

/// The system's clocks, in ns.
fn system_clock(clock: ClockId) -> std::io::Result<i128> {
    let t = clock_gettime(clock).map_err(std::io::Error::from)?;
    Ok(t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
}

impl BootEpoch {
    /// The epoch now, precise enough to tell a step of the wall clock from noise; an error if
    /// no reading was (the caller keeps the epoch it has).
    pub fn now() -> std::io::Result<Self> {
        Self::read(system_clock)
    }

    /// The epoch at start: the most precise of a few readings, however imprecise (an error of
    /// half its bracket in every wall-clock time, until the next precise reading replaces it).
    pub fn at_start() -> std::io::Result<Self> {
        Ok(Self::best(system_clock)?.0)
    }

    /// The epoch from `clock` (ns of a clock id), refused if no reading was precise enough.
    pub fn read(clock: impl FnMut(ClockId) -> std::io::Result<i128>) -> std::io::Result<Self> {
        match Self::best(clock)? {
            (epoch, bracket) if bracket <= MAX_BRACKET_NS => Ok(epoch),
            _ => Err(std::io::Error::other("clock reads too far apart")),
        }
    }

    /// The tightest of [`ATTEMPTS`] readings, each the realtime read bracketed between two
    /// boottime reads, which bounds its error, with its bracket.
    fn best(
        mut clock: impl FnMut(ClockId) -> std::io::Result<i128>,
    ) -> std::io::Result<(Self, i128)> {
        let mut best: Option<(Self, i128)> = None;
        for _ in 0..ATTEMPTS {
            let b0 = clock(ClockId::CLOCK_BOOTTIME)?;
            let real = clock(ClockId::CLOCK_REALTIME)?;
            let b1 = clock(ClockId::CLOCK_BOOTTIME)?;
            let reading = (Self(real - (b0 + b1) / 2), b1 - b0);
            if best.is_none_or(|(_, b)| reading.1 < b) {
                best = Some(reading);
            }
            if reading.1 <= MAX_BRACKET_NS / 10 {
                break;
            }
        }
        Ok(best.expect("at least one reading"))
    }

    /// This epoch, or `now` if the wall clock stepped since.
    pub fn follow(self, now: BootEpoch) -> BootEpoch {
        if (now.0 - self.0).abs() > STEP_NS {
            now
        } else {
            self
        }
    }

    /// Wall-clock time of a boot-clock reading.
    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let ns = self.0 + boot_ns as i128;
        UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
    }
}

/// RFC 3339 in UTC with nanoseconds, as ECS dates are written.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_epoch_maps_now_to_now() {
        let epoch = BootEpoch::now().unwrap();
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).unwrap();
        let boot_ns = boot.tv_sec() as u64 * 1_000_000_000 + boot.tv_nsec() as u64;
        let skew = SystemTime::now()
            .duration_since(epoch.wall(boot_ns))
            .unwrap_or_default();
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
    }

    /// Clocks that read `real` and `boot` ns (boottime advancing 10 ns per read).
    fn reading(real: i128, boot: i128) -> BootEpoch {
        let mut reads = 0;
        BootEpoch::read(|clock| {
            reads += 1;
            Ok(match clock {
                ClockId::CLOCK_REALTIME => real,
                _ => boot + 10 * reads,
            })
        })
        .unwrap()
    }

    #[test]
    fn epoch_follows_a_step_of_the_wall_clock_and_not_noise() {
        let t = 1_764_388_800 * 1_000_000_000;
        let epoch = reading(t, 5_000_000_000);
        assert_eq!(
            epoch.wall(5_000_000_020),
            UNIX_EPOCH + Duration::from_nanos(t as u64)
        );
        // The wall clock stepped an hour ahead while the boot clock ran on for a second.
        let hour = 3_600_000_000_000;
        let stepped = epoch.follow(reading(t + hour + 1_000_000_000, 6_000_000_000));
        assert_eq!(
            stepped.wall(6_000_000_020),
            UNIX_EPOCH + Duration::from_nanos((t + hour + 1_000_000_000) as u64)
        );
        // A reading a few µs off is noise: the epoch stays, and with it every derived time.
        let noisy = reading(t + hour + 2_000_004_000, 7_000_000_000);
        assert_eq!(stepped.follow(noisy), stepped);
        // A preempted reading is refused rather than followed.
        let mut boot = 0;
        let slow = BootEpoch::read(|clock| {
            boot += 1_000_000;
            Ok(if clock == ClockId::CLOCK_REALTIME {
                t
            } else {
                boot
            })
        });
        assert!(slow.is_err());
    }

    #[test]
    fn formats_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_764_388_800, 5);
        assert_eq!(rfc3339(t), "2025-11-29T04:00:00.000000005Z");
    }
}

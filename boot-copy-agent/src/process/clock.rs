//! Kernel boot-time clock → wall clock. The kernel stamps events with `bpf_ktime_get_boot_ns()`
//! and task start times with `start_boottime`; adding the boot epoch (realtime − boottime,
//! re-derived on demand so NTP steps are followed) gives wall-clock times.
use nix::time::{ClockId, clock_gettime};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time at which the boot-time clock read zero, in ns since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct BootEpoch(i128);

impl BootEpoch {
    pub fn now() -> std::io::Result<Self> {
        let ns = |c| -> std::io::Result<i128> {
            let t = clock_gettime(c).map_err(std::io::Error::from)?;
            Ok(t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        };
        // Bracket the realtime read between two boottime reads to bound the error.
        let b0 = ns(ClockId::CLOCK_BOOTTIME)?;
        let real = ns(ClockId::CLOCK_REALTIME)?;
        let b1 = ns(ClockId::CLOCK_BOOTTIME)?;
        Ok(Self(real - (b0 + b1) / 2))
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

    #[test]
    fn formats_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_764_388_800, 5);
        assert_eq!(rfc3339(t), "2025-11-29T04:00:00.000000005Z");
    }
}

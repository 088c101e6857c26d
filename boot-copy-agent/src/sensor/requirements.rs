//! Checks that the host can run the sensor, before anything is loaded.
use std::{ffi::CString, fs, io, path::Path};

use super::SensorError;

/// Capability bits (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Oldest kernel with BPF ring buffers (5.8); tp_btf and bpf_ktime_get_boot_ns are older.
const MIN_KERNEL: (u32, u32) = (5, 8);

const TRACEFS: &str = "/sys/kernel/tracing";

/// Every check `Sensor::start` makes before loading (tracefs excepted, see `ensure_tracefs`).
pub fn check() -> Result<(), SensorError> {
    check_kernel_version()?;
    check_privileges()?;
    check_btf()?;
    Ok(())
}

/// Needs root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN implies both).
pub fn check_privileges() -> Result<(), SensorError> {
    let status = fs::read_to_string("/proc/self/status").map_err(|source| SensorError::Io {
        what: "/proc/self/status",
        source,
    })?;
    let cap_eff = parse_cap_eff(&status).unwrap_or(0);
    if has_bpf_caps(cap_eff) {
        Ok(())
    } else {
        Err(SensorError::NotPrivileged { cap_eff })
    }
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn has_bpf_caps(cap_eff: u64) -> bool {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub fn check_btf() -> Result<(), SensorError> {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        Ok(())
    } else {
        Err(SensorError::NoBtf)
    }
}

pub fn check_kernel_version() -> Result<(), SensorError> {
    let uts = nix::sys::utsname::uname().map_err(|e| SensorError::Io {
        what: "uname",
        source: e.into(),
    })?;
    let release = uts.release().to_string_lossy().into_owned();
    match parse_release(&release) {
        Some(v) if v >= MIN_KERNEL => Ok(()),
        // An unparsable release is not proof of an old kernel: let loading decide.
        None => Ok(()),
        Some(_) => Err(SensorError::KernelTooOld { release }),
    }
}

/// Whether the running kernel is `min` or newer (an unparsable release counts as new).
pub fn kernel_at_least(min: (u32, u32)) -> bool {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|uts| parse_release(&uts.release().to_string_lossy()))
        .is_none_or(|v| v >= min)
}

/// "6.18.44-fc-v782" → (6, 18).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Makes sure tracefs is mounted, mounting it at /sys/kernel/tracing if needed. The BTF
/// tracepoints the sensor attaches do not need it; tools and classic tracepoints do.
pub fn ensure_tracefs() -> Result<(), SensorError> {
    let mounts = fs::read_to_string("/proc/self/mounts").map_err(|source| SensorError::Io {
        what: "/proc/self/mounts",
        source,
    })?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("tracefs"))
    {
        return Ok(());
    }
    let target = CString::new(TRACEFS).expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    let source = CString::new("nodev").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SensorError::TracefsUnavailable {
            source: io::Error::last_os_error(),
        })
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it.
pub fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "raising RLIMIT_MEMLOCK");
    }
}

/// Highest possible CPU id + 1 (the slots a per-CPU-indexed array needs).
pub fn possible_cpu_slots() -> Result<u32, SensorError> {
    const POSSIBLE: &str = "/sys/devices/system/cpu/possible";
    let text = fs::read_to_string(POSSIBLE).map_err(|source| SensorError::Io {
        what: POSSIBLE,
        source,
    })?;
    parse_max_cpu(&text)
        .map(|max| max + 1)
        .ok_or_else(|| SensorError::Io {
            what: POSSIBLE,
            source: io::Error::new(io::ErrorKind::InvalidData, format!("unparsable: {text:?}")),
        })
}

/// "0-3,8-11\n" → 11.
fn parse_max_cpu(text: &str) -> Option<u32> {
    text.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.rsplit('-')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok())
        })
        .try_fold(None, |max: Option<u32>, n| {
            n.map(|n| Some(max.map_or(n, |m| m.max(n))))
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_release("5.10.0-32-amd64"), Some((5, 10)));
        assert_eq!(parse_release("4.19"), Some((4, 19)));
        assert_eq!(parse_release("x"), None);
        assert!((5, 7) < MIN_KERNEL && (5, 10) >= MIN_KERNEL);
    }

    #[test]
    fn caps() {
        let status = "Name:\tx\nCapInh:\t0\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert!(has_bpf_caps(0x1ff_ffff_ffff));
        assert!(has_bpf_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!has_bpf_caps(1 << CAP_BPF));
        assert!(!has_bpf_caps(0));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_max_cpu("0-1\n"), Some(1));
        assert_eq!(parse_max_cpu("0\n"), Some(0));
        assert_eq!(parse_max_cpu("0-3,8-11"), Some(11));
        assert_eq!(parse_max_cpu(""), None);
        assert_eq!(parse_max_cpu("a-b"), None);
    }
}

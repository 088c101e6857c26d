//! The process table (`PROC_TABLE`): which entry describes which process.
use boot_copy_common::{ProcImage, image_flags};

/// /proc reports start times in clock ticks (USER_HZ, 100 on Linux): an entry the agent seeded
/// holds its process's start time rounded down to one.
const PROC_TICK_NS: u64 = 10_000_000;

/// Whether `img`, a kernel-made entry, describes the process's current exec image: the process
/// that started at `start_ns` (not an earlier holder of its pid) after its latest exec.
#[inline(always)]
pub unsafe fn is_current(img: *const ProcImage, start_ns: u64, exec_id: u64) -> bool {
    // SAFETY: img is a PROC_TABLE value.
    unsafe {
        (*img).flags & image_flags::FROM_PROC == 0
            && (*img).start_boottime_ns == start_ns
            && (*img).exec_id == exec_id
    }
}

/// Whether `img` may describe a child's parent: current, or seeded from /proc for the process
/// that started at `start_ns` (a seeded entry has no exec count; it stands until the process
/// forks again).
#[inline(always)]
pub unsafe fn describes(img: *const ProcImage, start_ns: u64, exec_id: u64) -> bool {
    // SAFETY: img is a PROC_TABLE value.
    unsafe {
        let held = (*img).start_boottime_ns;
        if (*img).flags & image_flags::FROM_PROC != 0 {
            start_ns >= held && start_ns - held < PROC_TICK_NS
        } else {
            is_current(img, start_ns, exec_id)
        }
    }
}

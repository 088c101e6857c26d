//! Filling a `ProcImage` (a process-table entry) from an exec record's buffers.
//!
//! Only the valid bytes are copied (most paths and argument lists are far shorter than the
//! capacities); strings are NUL-terminated within their capacity and bytes past a length are
//! unspecified.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use boot_copy_common::{IMAGE_ARGS_CAP, IMAGE_CWD_CAP, IMAGE_EXE_CAP, ProcImage, image_flags};

use crate::co_re::{self, Task, bc_copy_prefix};

/// Copies a string prefix of at most `CAP - 1` bytes plus a NUL (`CAP` a power of two); returns
/// the stored length and whether it was cut.
#[inline(always)]
unsafe fn copy_str<const CAP: usize>(dst: *mut u8, src: *const u8, len: u32) -> (u32, bool) {
    // SAFETY: dst has CAP bytes and src at least min(len, CAP - 1), both in map values.
    unsafe {
        let n = bc_copy_prefix(dst, src, len, CAP as u32 - 1) & (CAP as u32 - 1);
        *dst.add(n as usize) = 0;
        (n, len as usize > CAP - 1)
    }
}

/// Sets `exe`; returns the image flags to add.
#[inline(always)]
pub unsafe fn set_exe(img: *mut ProcImage, src: *const u8, len: u32, src_truncated: bool) -> u32 {
    // SAFETY: img is a map value; see copy_str.
    unsafe {
        let (n, cut) = copy_str::<IMAGE_EXE_CAP>((&raw mut (*img).exe).cast(), src, len);
        (*img).exe_len = n;
        if cut || src_truncated {
            image_flags::EXE_TRUNCATED
        } else {
            0
        }
    }
}

/// Sets `cwd`; returns the image flags to add.
#[inline(always)]
pub unsafe fn set_cwd(img: *mut ProcImage, src: *const u8, len: u32, src_truncated: bool) -> u32 {
    // SAFETY: img is a map value; see copy_str.
    unsafe {
        let (n, cut) = copy_str::<IMAGE_CWD_CAP>((&raw mut (*img).cwd).cast(), src, len);
        (*img).cwd_len = n;
        if cut || src_truncated {
            image_flags::CWD_TRUNCATED
        } else {
            0
        }
    }
}

/// Sets `args` from the captured argument bytes (`len` of a true `size`).
#[inline(always)]
pub unsafe fn set_args(img: *mut ProcImage, src: *const u8, len: u32, size: u64) -> u32 {
    // SAFETY: img is a map value; src is the record's argument area with at least `len` bytes.
    unsafe {
        let n = bc_copy_prefix(
            (&raw mut (*img).args).cast(),
            src,
            len,
            IMAGE_ARGS_CAP as u32,
        );
        (*img).args_len = n;
        if (n as u64) < size {
            image_flags::ARGS_TRUNCATED
        } else {
            0
        }
    }
}

/// Sets `args` straight from the current process's argv (an exec whose record is not sent, or
/// a fork); returns the image flags to add.
#[inline(always)]
pub unsafe fn read_args(img: *mut ProcImage, task: Task) -> u32 {
    // SAFETY: img is a map value with IMAGE_ARGS_CAP argument bytes; the helper faults safely.
    unsafe {
        let mut size = 0u64;
        let start = co_re::bc_task_args(task, &mut size);
        let want = (if size < IMAGE_ARGS_CAP as u64 {
            size
        } else {
            IMAGE_ARGS_CAP as u64
        }) as u32;
        (*img).args_len = 0;
        // (The second bound is for the verifier, which does not follow the clamp above.)
        if want == 0 || want > IMAGE_ARGS_CAP as u32 {
            return 0;
        }
        let dst = (&raw mut (*img).args).cast();
        if bpf_probe_read_user(dst, want, start as usize as *const c_void) < 0 {
            return image_flags::ARGS_READ_FAILED;
        }
        (*img).args_len = want;
        if (want as u64) < size {
            image_flags::ARGS_TRUNCATED
        } else {
            0
        }
    }
}

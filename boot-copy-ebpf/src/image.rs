//! Filling a `ProcImage` (a process-table entry) from an exec record's buffers.
//!
//! Copies are of the fixed field capacity (verifier-friendly); the length fields say how much is
//! valid, and strings are NUL-terminated within their capacity.
use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use boot_copy_common::{IMAGE_ARGS_CAP, IMAGE_CWD_CAP, IMAGE_EXE_CAP, ProcImage, image_flags};

/// Copies a NUL-terminated string prefix; returns the stored length and whether it was cut.
#[inline(always)]
unsafe fn copy_str<const CAP: usize>(dst: *mut u8, src: *const u8, len: u32) -> (u32, bool) {
    // SAFETY: dst has CAP bytes; src is a map value with at least CAP bytes.
    unsafe {
        bpf_probe_read_kernel(dst.cast(), CAP as u32, src.cast());
        if len as usize >= CAP {
            *dst.add(CAP - 1) = 0;
            ((CAP - 1) as u32, true)
        } else {
            (len, false)
        }
    }
}

/// Sets `exe`; returns the image flags to add.
#[inline(always)]
pub unsafe fn set_exe(img: *mut ProcImage, src: *const u8, len: u32, src_truncated: bool) -> u32 {
    // SAFETY: img is a map value; see copy_str.
    unsafe {
        let (n, cut) = copy_str::<IMAGE_EXE_CAP>((&raw mut (*img).exe).cast(), src, len);
        (*img).exe_len = n;
        if cut || src_truncated { image_flags::EXE_TRUNCATED } else { 0 }
    }
}

/// Sets `cwd`; returns the image flags to add.
#[inline(always)]
pub unsafe fn set_cwd(img: *mut ProcImage, src: *const u8, len: u32, src_truncated: bool) -> u32 {
    // SAFETY: img is a map value; see copy_str.
    unsafe {
        let (n, cut) = copy_str::<IMAGE_CWD_CAP>((&raw mut (*img).cwd).cast(), src, len);
        (*img).cwd_len = n;
        if cut || src_truncated { image_flags::CWD_TRUNCATED } else { 0 }
    }
}

/// Sets `args` from the captured argument bytes (`len` of a true `size`).
#[inline(always)]
pub unsafe fn set_args(img: *mut ProcImage, src: *const u8, len: u32, size: u64) -> u32 {
    // SAFETY: img is a map value; src is the record's argument area (much larger than the cap).
    unsafe {
        bpf_probe_read_kernel(
            (&raw mut (*img).args).cast(),
            IMAGE_ARGS_CAP as u32,
            src.cast(),
        );
        let n = if (len as usize) < IMAGE_ARGS_CAP { len } else { IMAGE_ARGS_CAP as u32 };
        (*img).args_len = n;
        if (n as u64) < size { image_flags::ARGS_TRUNCATED } else { 0 }
    }
}

//! Absolute paths of kernel `struct path`s (a bounded dentry walk across mounts, in the shim).
use crate::co_re::{self, KPath};

/// Writes the absolute path of `path` into `out` (`PATH_CAP` bytes, NUL-terminated) using
/// `scratch` (`PATH_CAP` bytes). Both must lie in map values with `2 * PATH_CAP` bytes from their
/// start. A null `path` gives an empty string. Returns (length, truncated).
#[inline(always)]
pub unsafe fn resolve(path: KPath, scratch: *mut u8, out: *mut u8) -> (u32, bool) {
    if path.is_null() {
        // SAFETY: out has PATH_CAP bytes.
        unsafe { *out = 0 };
        return (0, false);
    }
    let mut truncated = 0u32;
    // SAFETY: buffer requirements are the caller's; path is a kernel pointer read via helpers.
    let len = unsafe { co_re::bc_path_resolve(path, scratch, out, &mut truncated) };
    (len, truncated != 0)
}

//! boot-copy kernel programs: exec records, and a process table (the parent context) kept by
//! fork and exec; file records for writes into watched trees (`file`).
//!
//! Kernel structures are read through CO-RE accessors written in C (`c/shim.c`, see
//! `co_re`); the record layouts are in `boot-copy-common`.
#![no_std]
#![no_main]

mod co_re;
mod diag;
mod exec;
mod file;
mod fork;
mod hook;
mod image;
mod maps;
mod path;
mod table;

use boot_copy_common::file_action;

use aya_ebpf::{
    macros::{btf_tracepoint, kprobe, socket_filter},
    programs::{BtfTracePointContext, ProbeContext, SkBuffContext},
};

/// `tp_btf/sched_process_exec` (task, old_pid, bprm).
#[btf_tracepoint(function = "sched_process_exec")]
pub fn boot_copy_exec(ctx: BtfTracePointContext) -> u32 {
    match exec::handle(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

/// `tp_btf/sched_process_fork` (parent, child).
#[btf_tracepoint(function = "sched_process_fork")]
pub fn boot_copy_fork(ctx: BtfTracePointContext) -> u32 {
    match fork::handle(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

/// `tp_btf/sys_exit` (regs, ret): the file operations of syscalls that succeeded.
#[btf_tracepoint(function = "sys_exit")]
pub fn boot_copy_file(ctx: BtfTracePointContext) -> u32 {
    match file::handle(ctx.arg(0), ctx.arg(1)) {
        Ok(r) | Err(r) => r,
    }
}

/// `security_path_{mknod,mkdir,symlink}` (dir, dentry, ...).
#[kprobe]
pub fn boot_copy_path_create(ctx: ProbeContext) -> u32 {
    hook::entry(file_action::CREATION, arg(&ctx, 0), arg(&ctx, 1))
}

/// `security_path_{unlink,rmdir}` (dir, dentry).
#[kprobe]
pub fn boot_copy_path_delete(ctx: ProbeContext) -> u32 {
    hook::entry(file_action::DELETION, arg(&ctx, 0), arg(&ctx, 1))
}

/// `security_path_link` (old_dentry, new_dir, new_dentry).
#[kprobe]
pub fn boot_copy_path_link(ctx: ProbeContext) -> u32 {
    hook::entry(file_action::CREATION, arg(&ctx, 1), arg(&ctx, 2))
}

/// `security_path_rename` (old_dir, old_dentry, new_dir, new_dentry, flags).
#[kprobe]
pub fn boot_copy_path_rename(ctx: ProbeContext) -> u32 {
    hook::rename(arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2), arg(&ctx, 3))
}

/// `security_path_truncate` (path).
#[kprobe]
pub fn boot_copy_path_truncate(ctx: ProbeContext) -> u32 {
    hook::file(file_action::MODIFICATION, arg(&ctx, 0))
}

/// `security_path_{chmod,chown}` and `vfs_utimes` (path, ...).
#[kprobe]
pub fn boot_copy_path_attributes(ctx: ProbeContext) -> u32 {
    hook::file(file_action::ATTRIBUTES_MODIFICATION, arg(&ctx, 0))
}

/// `security_file_open` (file).
#[kprobe]
pub fn boot_copy_file_open(ctx: ProbeContext) -> u32 {
    hook::opened(arg(&ctx, 0))
}

/// A kprobe's argument `n` (0 if absent).
#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg(n).unwrap_or(0)
}

/// Never attached: the loader test-runs it once to learn which kernel fields the BTF it
/// relocated against lacks (the same CO-RE relocations as the tracepoint programs').
#[socket_filter]
pub fn boot_copy_layout(_ctx: SkBuffContext) -> i64 {
    // SAFETY: a constant computed from relocations; no memory access.
    let missing = unsafe { co_re::bc_missing_fields() };
    if let Some(slot) = maps::LAYOUT.get_ptr_mut(0) {
        // SAFETY: the map's only value; the probe is the only writer.
        unsafe { *slot = missing };
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

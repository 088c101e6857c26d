//! Path-named file operations as the kernel resolved them: kprobes on the LSM path hooks
//! (`security_path_mkdir`, ..., and `vfs_utimes`, which has none), called after the lookup with
//! the parent directory's (or the file's) `struct path`: symlinks followed, `..` resolved,
//! through whichever mount the caller used (a bind mount of /boot reaches the same dentries).
//!
//! A hook decides and keeps what it found for its thread (`PATH_STASH`); the syscall's exit
//! sends it if the operation succeeded (`file::boot_copy_hooked`). Every successful path-named
//! syscall passes through its hook, which keeps or clears the thread's entry: an entry a failed
//! operation left is never sent for a later one.
//!
//! An io_uring worker's operation has no syscall exit of its own: its hook sends it at once,
//! before its result, flagged `IO_URING`. (An open with `O_CREAT` passes `security_path_mknod`,
//! one with `O_TRUNC` `security_path_truncate`, so io_uring's creating and truncating opens are
//! seen too.)
use aya_ebpf::helpers::generated::{
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel,
};
use boot_copy_common::{PATH_CAP, counter, file_action, file_flags};

use crate::{
    co_re::{self, Dentry, KFile, KPath, Task},
    file::{self, slot},
    maps::{FileScratch, NAME_CAP, PATH_HOOKS, PATH_STASH, count},
};

/// Whether the path hooks are attached: the syscall exits then leave the operations they cover
/// to them.
#[inline(always)]
pub fn on() -> bool {
    PATH_HOOKS.get(0).is_some_and(|&v| v != 0)
}

/// An entry `dentry` of the directory `dir` made or linked (`security_path_mknod`, `_mkdir`,
/// `_symlink`, `_link`) or removed (`_rmdir`, `_unlink`): `action`.
pub fn entry(action: u32, dir: u64, dentry: u64) -> u32 {
    let tree = file::watched_entry(dir, dentry);
    if tree == 0 {
        return clear();
    }
    boot_copy_stash(tree, dir, dentry, 0, 0);
    keep(action, 0)
}

/// `security_path_rename`: either side in a watched tree keeps both.
pub fn rename(old_dir: u64, old_dentry: u64, new_dir: u64, new_dentry: u64) -> u32 {
    let new = file::watched_entry(new_dir, new_dentry);
    let old = file::watched_entry(old_dir, old_dentry);
    let tree = if new != 0 { new } else { old };
    if tree == 0 {
        return clear();
    }
    boot_copy_stash(tree, new_dir, new_dentry, old_dir, old_dentry);
    keep(file_action::RENAME, 0)
}

/// The file at `path` itself, truncated (`security_path_truncate`) or its attributes changed
/// (`_chmod`, `_chown`, `vfs_utimes`): `action`.
pub fn file(action: u32, path: u64) -> u32 {
    let tree = file::watched(path as usize as KPath);
    if tree == 0 {
        return clear();
    }
    boot_copy_stash(tree, path, 0, 0, 0);
    keep(action, 0)
}

/// `security_file_open` (file): an open for writing that neither creates nor truncates, which
/// no path hook sees. A syscall's open is sent by its exit from the descriptor; this one is
/// kept for an io_uring open: a worker's is sent at once, one issued inline by
/// `io_uring_enter` (a cached path, 5.12+) is sent by that syscall's exit.
pub fn opened(file: u64) -> u32 {
    let file = file as usize as KFile;
    // SAFETY: the shim reads the file through helpers.
    if unsafe { co_re::bc_file_open_modifies(file) } == 0 {
        return 0;
    }
    // SAFETY: as above.
    let path = unsafe { co_re::bc_file_path(file) };
    let tree = file::watched(path);
    if tree == 0 {
        return 0;
    }
    boot_copy_stash(tree, path as u64, 0, 0, 0);
    keep(file_action::MODIFICATION, 1)
}

/// Keeps this CPU's stash for the thread's syscall exit, marked `open` (`PathStash::open`); an
/// io_uring worker's is sent at once.
#[inline(always)]
fn keep(action: u32, open: u32) -> u32 {
    // SAFETY: plain helper calls; the shim reads the task through helpers.
    let (key, worker) = unsafe {
        let task = bpf_get_current_task() as usize as Task;
        (
            bpf_get_current_pid_tgid(),
            co_re::bc_cur_io_worker(task) != 0,
        )
    };
    if worker {
        return file::boot_copy_send_kept(action);
    }
    let Ok(scratch) = file::scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value.
    unsafe { (*scratch).stash.open = open };
    // SAFETY: as above.
    if PATH_STASH
        .insert(&key, unsafe { &(*scratch).stash }, 0)
        .is_err()
    {
        count(counter::FILE_STASH_FAILURES);
    }
    0
}

/// Drops what this thread kept from an earlier operation (one that failed, or that its exit did
/// not take): this one is not in a watched tree.
#[inline(always)]
fn clear() -> u32 {
    // SAFETY: plain helper call.
    let key = unsafe { bpf_get_current_pid_tgid() };
    // Looked up first: a lookup takes no lock, a removal does, and there is rarely anything.
    // SAFETY: the value is not read.
    if unsafe { PATH_STASH.get(&key) }.is_some() {
        let _ = PATH_STASH.remove(&key);
    }
    0
}

/// Builds in this CPU's stash the operation in `tree`: the directory `dir` resolved and its
/// entry `dentry`'s name (no name when `dentry` is 0: `dir` is the file), and a rename's source
/// likewise when `old_dir` is not 0.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_stash(
    tree: u32,
    dir: u64,
    dentry: u64,
    old_dir: u64,
    old_dentry: u64,
) -> u32 {
    let Ok(scratch) = file::scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value; kernel pointers are read through helpers.
    unsafe {
        let stash = &raw mut (*scratch).stash;
        (*stash).tree = tree;
        (*stash).flags = 0;
        let (len, cut) = resolve_into(scratch, dir, slot::DIR);
        (*stash).dir_len = len;
        (*stash).name_len = name(dentry, (&raw mut (*stash).name).cast());
        (*stash).old_dir_len = 0;
        (*stash).old_name_len = 0;
        let mut flags = if cut { file_flags::PATH_TRUNCATED } else { 0 };
        if old_dir != 0 {
            let (len, cut) = resolve_into(scratch, old_dir, slot::OLD_DIR);
            (*stash).old_dir_len = len;
            (*stash).old_name_len = name(old_dentry, (&raw mut (*stash).old_name).cast());
            if cut {
                flags |= file_flags::OLD_PATH_TRUNCATED;
            }
        }
        (*stash).flags = flags;
    }
    0
}

/// Resolves `path` into the record's buffer `slot` (`DIR` or `OLD_DIR`) and copies it into the
/// stash's buffer of the same slot (`dir`, `old_dir`: consecutive there too): (length, cut).
#[inline(always)]
unsafe fn resolve_into(scratch: *mut FileScratch, path: u64, slot: u32) -> (u32, bool) {
    let (len, cut) = file::resolve(path as usize as KPath, slot);
    let at = (slot & 1) as usize * PATH_CAP;
    // SAFETY: this CPU's map value; both buffers have PATH_CAP bytes at `at`.
    unsafe {
        bpf_probe_read_kernel(
            (&raw mut (*scratch).stash.dir).cast::<u8>().add(at).cast(),
            PATH_CAP as u32,
            (&raw const (*scratch).record.dir)
                .cast::<u8>()
                .add(at)
                .cast(),
        );
    }
    (len, cut)
}

/// The entry's name into `out` (`NAME_CAP` bytes); its length (0 for no entry).
#[inline(always)]
unsafe fn name(dentry: u64, out: *mut u8) -> u32 {
    if dentry == 0 {
        // SAFETY: out has NAME_CAP bytes.
        unsafe { *out = 0 };
        return 0;
    }
    // SAFETY: as above; the dentry is read through helpers.
    unsafe { co_re::bc_dentry_name(dentry as usize as Dentry, out, NAME_CAP as u32) }
}

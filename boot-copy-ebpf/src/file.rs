//! File operations in watched trees: one record per act (creation, modification, rename,
//! deletion, attribute change), from the syscalls that succeeded (`sys_exit`).
//!
//! Most operations on a host are outside the watched trees, so the program decides that first,
//! without building a path. A file known by an open descriptor (an open's result, `ftruncate`,
//! `fchmod`, ...) is decided by a walk up from its dentry, across mount points, looking each
//! directory's (device, inode) up in `WATCHED_ROOTS` (behind a bitmap): bind mounts and paths
//! through symlinks reach the same directories. A file named by a path is decided by the path
//! hooks (`hook`), which see it resolved, and sent from what they kept. Without them (a kernel
//! built without `CONFIG_SECURITY_PATH`), and for the extended-attribute calls, which have no
//! path hook, it is decided from the path as passed: a relative one by the same walk from the
//! directory it starts at, an absolute one by comparing it with `WATCHED_PREFIXES`.
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::BPF_RB_FORCE_WAKEUP,
    helpers::generated::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
        bpf_probe_read_user,
    },
};
use boot_copy_common::{
    FILE_ARGS_CAP, FILE_WALK_DEPTH, FileRecord, IMAGE_EXE_CAP, InodeKey, PASSED_PATH_CAP, PATH_CAP,
    ProcImage, RECORD_FILE, TREE_CLIMBS, WATCHED_PREFIX_ENTRIES, counter, dev_bit, file_action,
    file_flags, image_flags,
};

use crate::{
    co_re::{self, Dentry, KFile, KPath, Regs, Task, Walk},
    diag, hook, image,
    maps::{
        EVENTS, FILE_RECENT, FILE_SCRATCH, FileScratch, NAME_CAP, PATH_STASH, PROC_TABLE,
        PathStash, ROOT_BITS, RecentKey, WATCHED_PREFIXES, WATCHED_ROOTS, count,
    },
    path, table,
};

/// A second event of one process on one open file within this time is the same act (an open
/// for writing followed by its `ftruncate` or `fchmod`).
const REPEAT_NS: u64 = 1_000_000_000;

const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
/// `AT_FDCWD` as a syscall argument register holds it.
const AT_FDCWD: u64 = -100i64 as u64;

/// How a syscall names its file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// An open: the file is the returned descriptor, the flags argument `arg`.
    Open,
    /// `creat`: an open for writing and creating.
    Creat,
    /// `openat2`: an open whose flags are in the `struct open_how` at argument `arg`.
    OpenHow,
    /// An open descriptor, argument `arg`.
    Fd,
    /// A path (argument `arg`) relative to a directory descriptor (argument `dir`, or the working
    /// directory); a rename's source likewise (`old`, `old_dir`).
    Path,
    /// A path as for `Path`, resolved by a path hook when they are attached.
    Hooked,
    /// `io_uring_enter`: an open it issued inline, kept by the open hook.
    Uring,
}

/// A file syscall: what it does and where its arguments are. Every field is always set (the
/// verifier of older kernels refuses reads of stack slots a path left unwritten, which an enum
/// with payloads can compile to).
#[derive(Clone, Copy)]
struct Call {
    action: u32,
    names: Names,
    arg: u32,
    dir: u32,
    old: u32,
    old_dir: u32,
}

/// An argument index meaning "none": the working directory for `dir`, no source for `old`.
const NONE: u32 = u32::MAX;

/// The x86_64 syscalls that create, change, rename or delete files.
#[inline(always)]
fn syscall(nr: u64) -> Option<Call> {
    use file_action::*;
    let call = |action, names, arg, dir| Call {
        action,
        names,
        arg,
        dir,
        old: NONE,
        old_dir: NONE,
    };
    let cwd = |action, arg| call(action, Names::Hooked, arg, NONE);
    let at = |action, arg: u32| call(action, Names::Hooked, arg, arg - 1);
    let unhooked = |action, arg| call(action, Names::Path, arg, NONE);
    Some(match nr {
        2 => call(MODIFICATION, Names::Open, 1, NONE), // open
        85 => call(CREATION, Names::Creat, 0, NONE),   // creat
        257 => call(MODIFICATION, Names::Open, 2, NONE), // openat
        437 => call(MODIFICATION, Names::OpenHow, 2, NONE), // openat2
        83 | 133 => cwd(CREATION, 0),                  // mkdir, mknod
        86 | 88 => cwd(CREATION, 1),                   // link, symlink
        258 | 259 => at(CREATION, 1),                  // mkdirat, mknodat
        265 => at(CREATION, 3),                        // linkat
        266 => at(CREATION, 2),                        // symlinkat
        84 | 87 => cwd(DELETION, 0),                   // rmdir, unlink
        263 => at(DELETION, 1),                        // unlinkat
        82 => Call {
            old: 0,
            ..cwd(RENAME, 1)
        }, // rename
        264 | 316 => Call {
            old: 1,
            old_dir: 0,
            ..at(RENAME, 3)
        }, // renameat, renameat2
        76 => cwd(MODIFICATION, 0),                    // truncate
        77 => call(MODIFICATION, Names::Fd, 0, NONE),  // ftruncate
        // chmod, chown, lchown, utime, utimes
        90 | 92 | 94 | 132 | 235 => cwd(ATTRIBUTES_MODIFICATION, 0),
        // setxattr, lsetxattr, removexattr, lremovexattr
        188 | 189 | 197 | 198 => unhooked(ATTRIBUTES_MODIFICATION, 0),
        // fchmod, fchown, fsetxattr, fremovexattr
        91 | 93 | 190 | 199 => call(ATTRIBUTES_MODIFICATION, Names::Fd, 0, NONE),
        // fchmodat, fchownat, futimesat, utimensat, fchmodat2
        268 | 260 | 261 | 280 | 452 => at(ATTRIBUTES_MODIFICATION, 1),
        426 => call(MODIFICATION, Names::Uring, 0, NONE), // io_uring_enter
        _ => return None,
    })
}

/// `sys_exit`: the file operation of a syscall that succeeded, if it has one in a watched tree.
pub fn handle(regs: Regs, ret: i64) -> Result<u32, u32> {
    if ret < 0 {
        return Ok(0);
    }
    // SAFETY: regs is the tracepoint's typed argument, read through the shim.
    let Some(call) = syscall(unsafe { co_re::bc_regs_nr(regs) }) else {
        return Ok(0);
    };
    count(counter::FILE_OPS_SEEN);
    let call = through_map(call)?;
    // SAFETY: as above.
    let arg = |i: u32| unsafe { co_re::bc_regs_arg(regs, i) };
    let dir_fd = |i: u32| if i == NONE { AT_FDCWD } else { arg(i) };
    // SAFETY: plain helper call.
    let task = unsafe { bpf_get_current_task() } as usize as Task;
    // SAFETY (the descriptor lookups): the shim reads kernel memory through helpers.
    let fd_file = |fd: u64| unsafe { co_re::bc_cur_fd_file(task, fd as u32 as u64) };
    match call.names {
        Names::Open | Names::Creat | Names::OpenHow => {
            let flags = match call.names {
                Names::Open => arg(call.arg),
                Names::OpenHow => open_how_flags(arg(call.arg)),
                _ => O_CREAT | 1,
            };
            if flags & (O_ACCMODE | O_CREAT | O_TRUNC) == 0 {
                return Ok(0); // read-only: most opens end here
            }
            let file = fd_file(ret as u64);
            // SAFETY: as above.
            let created = !file.is_null() && unsafe { co_re::bc_file_open_created(file) } != 0;
            if !created && flags & (O_ACCMODE | O_TRUNC) == 0 {
                return Ok(0); // O_CREAT of a file that was there, read-only
            }
            let action = if created {
                file_action::CREATION
            } else {
                call.action
            };
            by_fd(action, file)
        }
        Names::Fd => by_fd(call.action, fd_file(arg(call.arg))),
        Names::Uring if hook::on() => Ok(boot_copy_hooked(call.action, 1)),
        Names::Uring => Ok(0),
        Names::Path | Names::Hooked => {
            // utimensat(fd, NULL, ...) changes the descriptor's file.
            if arg(call.arg) == 0 {
                return by_fd(call.action, fd_file(dir_fd(call.dir)));
            }
            if call.names == Names::Hooked && hook::on() {
                return Ok(boot_copy_hooked(call.action, 0));
            }
            let dir = base_dir(task, dir_fd(call.dir));
            let (old_dir, old) = if call.old == NONE {
                (core::ptr::null(), 0)
            } else {
                (base_dir(task, dir_fd(call.old_dir)), arg(call.old))
            };
            by_path(call.action, dir, arg(call.arg), old_dir, old)
        }
    }
}

/// The table entry written to and read back from map memory: the verifier then follows one
/// state per kind of syscall, not one per syscall (each entry is a constant it would otherwise
/// track through the whole program, path walks included).
#[inline(always)]
fn through_map(call: Call) -> Result<Call, u32> {
    let scratch = scratch()?;
    // SAFETY: this CPU's map value.
    unsafe {
        let slot = (&raw mut (*scratch).call).cast::<u32>();
        let names = match call.names {
            Names::Open => 0,
            Names::Creat => 1,
            Names::OpenHow => 2,
            Names::Fd => 3,
            Names::Path => 4,
            Names::Hooked => 5,
            Names::Uring => 6,
        };
        let fields = [
            call.action,
            names,
            call.arg,
            call.dir,
            call.old,
            call.old_dir,
        ];
        for (i, v) in fields.iter().enumerate() {
            core::ptr::write_volatile(slot.add(i), *v);
        }
        let read = |i: usize| core::ptr::read_volatile(slot.add(i));
        Ok(Call {
            action: read(0),
            names: match read(1) {
                0 => Names::Open,
                1 => Names::Creat,
                2 => Names::OpenHow,
                3 => Names::Fd,
                4 => Names::Path,
                5 => Names::Hooked,
                _ => Names::Uring,
            },
            arg: read(2),
            dir: read(3),
            old: read(4),
            old_dir: read(5),
        })
    }
}

/// `open_how.flags` (its first field) from user memory; 0 if unreadable.
#[inline(always)]
fn open_how_flags(how: u64) -> u64 {
    let mut flags = 0u64;
    // SAFETY: a bounded read of user memory into a stack variable.
    unsafe { bpf_probe_read_user((&raw mut flags).cast(), 8, how as usize as *const c_void) };
    flags
}

/// The directory a relative path starts at: the working directory, or the descriptor's file.
#[inline(always)]
fn base_dir(task: Task, fd: u64) -> KPath {
    // SAFETY: the shim reads kernel memory through helpers.
    unsafe {
        // The kernel reads a descriptor argument as an int: the register's low half.
        if fd as u32 == AT_FDCWD as u32 {
            co_re::bc_cur_pwd(task)
        } else {
            let file = co_re::bc_cur_fd_file(task, fd as u32 as u64);
            if file.is_null() {
                core::ptr::null()
            } else {
                co_re::bc_file_path(file)
            }
        }
    }
}

/// A file known by its open descriptor's file.
#[inline(always)]
fn by_fd(action: u32, file: KFile) -> Result<u32, u32> {
    if file.is_null() {
        return Ok(0);
    }
    // SAFETY: kernel pointers, read through helpers.
    unsafe {
        let path = co_re::bc_file_path(file);
        let tree = watched(path);
        if tree == 0 {
            return Ok(0);
        }
        let (pid_tgid, now) = (bpf_get_current_pid_tgid(), bpf_ktime_get_boot_ns());
        let tgid = (pid_tgid >> 32) as u32;
        if hook::on() {
            // What a hook kept for this operation (an `O_TRUNC`, `ftruncate`, `fchmod`...): this
            // exit takes it, not a later one.
            let _ = PATH_STASH.remove(&pid_tgid);
        }
        if repeat(tgid, co_re::bc_path_dentry(path), now) {
            count(counter::FILE_REPEATS);
            return Ok(0);
        }
        let scratch = scratch()?;
        let rec = &raw mut (*scratch).record;
        *(&raw mut (*rec).name).cast::<u8>() = 0;
        (*rec).header.name_len = 0;
        (*rec).header.old_dir_len = 0;
        (*rec).header.old_name_len = 0;
        (*rec).header.flags = 0;
        let (len, cut) = resolve(path, slot::DIR);
        (*rec).header.dir_len = len;
        (*rec).header.tree = tree;
        if cut {
            set_flag(rec, file_flags::PATH_TRUNCATED);
        }
        boot_copy_send(action, now);
    }
    Ok(0)
}

/// A file named by a path (and a rename's source, when `old` is not 0): read the paths as
/// passed, decide, and send.
#[inline(always)]
fn by_path(action: u32, dir: KPath, path: u64, old_dir: KPath, old: u64) -> Result<u32, u32> {
    let scratch = scratch()?;
    // SAFETY: this CPU's slot; kernel pointers are read through helpers.
    unsafe {
        let rec = &raw mut (*scratch).record;
        let name = (&raw mut (*rec).name).cast::<u8>();
        let old_name = (&raw mut (*rec).old_name).cast::<u8>();
        let (len, tree) = passed(dir, path, name, false);
        (*rec).header.name_len = len;
        let mut tree = tree;
        (*rec).header.old_name_len = 0;
        *old_name = 0;
        if old != 0 {
            let (len, old_tree) = passed(old_dir, old, old_name, true);
            (*rec).header.old_name_len = len;
            // A tree either side decided wins over a `..` that may climb into one.
            if tree == 0 || (tree == TREE_CLIMBS && old_tree != 0) {
                tree = old_tree;
            }
        }
        if tree == 0 {
            return Ok(0);
        }
        (*rec).header.tree = tree;
        (*rec).header.flags = 0;
        (*rec).header.dir_len = 0;
        if *name != b'/' {
            let (len, cut) = resolve(dir, slot::DIR);
            (*rec).header.dir_len = len;
            if cut {
                set_flag(rec, file_flags::PATH_TRUNCATED);
            }
        }
        (*rec).header.old_dir_len = 0;
        if old != 0 && *old_name != b'/' {
            let (len, cut) = resolve(old_dir, slot::OLD_DIR);
            (*rec).header.old_dir_len = len;
            if cut {
                set_flag(rec, file_flags::OLD_PATH_TRUNCATED);
            }
        }
        boot_copy_send(action, bpf_ktime_get_boot_ns());
    }
    Ok(0)
}

/// Reads the path as passed into `out` (the record's `name`, or its `old_name` for a rename's
/// source); returns its length and the watched tree it is in (0: none).
#[inline(always)]
unsafe fn passed(dir: KPath, path: u64, out: *mut u8, old: bool) -> (u32, u32) {
    // SAFETY: out is a record buffer of PASSED_PATH_CAP bytes.
    let len = unsafe { co_re::bc_read_user_path(out, path, PASSED_PATH_CAP as u32) };
    if len < 0 {
        return (0, 0);
    }
    // SAFETY: as above.
    let tree = if unsafe { *out } == b'/' {
        boot_copy_prefix_watched(old as u32)
    } else if dir.is_null() {
        0
    } else {
        watched(dir)
    };
    if tree == 0 && boot_copy_climbs(old as u32, len as u32) != 0 {
        return (len as u32, TREE_CLIMBS);
    }
    (len as u32, tree)
}

// The functions below are global BPF functions (exported by the linker, see build.rs): the
// verifier checks each once, for any value of its scalar arguments, apart from its callers.
// Inlined, each path walk was verified again at every call site and for every state reaching
// it, and the verifiers of 5.10 and 6.1 gave up on the program. Pointers pass as integers
// (5.10's verifier accepts only scalars as a global function's arguments), and the record is
// found again in `FILE_SCRATCH`.

/// The record's path buffers, in order: `boot_copy_resolve`'s slots.
pub mod slot {
    pub const DIR: u32 = 0;
    pub const OLD_DIR: u32 = 1;
    pub const EXE: u32 = 2;
    pub const CWD: u32 = 3;
}

/// Resolves `path` into the record's path buffer `slot`: (length, truncated).
#[inline(always)]
pub fn resolve(path: KPath, slot: u32) -> (u32, bool) {
    let r = boot_copy_resolve(path as u64, slot);
    (r as u32, r >> 32 != 0)
}

/// The absolute path of the kernel `struct path` at `path` into the record's path buffer
/// `slot` (they are consecutive in the record); its length, and bit 32 set when truncated.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_resolve(path: u64, slot: u32) -> u64 {
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value, with the bound `path::resolve` needs past each buffer.
    unsafe {
        let rec = &raw mut (*scratch).record;
        let out = (&raw mut (*rec).dir)
            .cast::<u8>()
            .add((slot & 3) as usize * PATH_CAP);
        let walk = (&raw mut (*scratch).walk).cast::<u8>();
        let (len, cut) = path::resolve(path as usize as KPath, walk, out);
        len as u64 | (cut as u64) << 32
    }
}

/// Whether the record's `name` (`old_name` when `old` is 1) has two dots in a row in its first
/// `len` bytes (a `..` that may climb into a watched tree). A word at a time; bytes after the
/// string's end in its last word can only make this true, costing one record more.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_climbs(old: u32, len: u32) -> u32 {
    const WORDS: usize = PASSED_PATH_CAP / 8;
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value; `name` and `old_name` are consecutive, 8-byte aligned.
    let words = unsafe {
        (&raw const (*scratch).record.name)
            .cast::<u8>()
            .add((old & 1) as usize * PASSED_PATH_CAP)
            .cast::<u64>()
    };
    let mut carry = 0u64;
    for k in 0..WORDS {
        if k * 8 > len as usize {
            break;
        }
        // SAFETY: k < WORDS, inside the buffer.
        let w = unsafe { core::ptr::read_volatile(words.add(k & (WORDS - 1))) };
        let x = w ^ DOTS;
        // 0x80 in each byte that is a dot (exact: no carry crosses a byte).
        let dots = !((((x & LOW7).wrapping_add(LOW7)) | x) | LOW7);
        // A dot followed by a dot: the next byte is the next higher one (little-endian), and a
        // dot ending the previous word pairs with one starting this word.
        if (dots & (dots >> 8)) | (carry & dots) != 0 {
            return 1;
        }
        carry = (dots >> 56) & 0x80;
    }
    0
}

/// The tree of the first watched prefix the record's `name` (`old_name` when `old` is 1)
/// starts with (0: none; the agent orders the prefixes longest first).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_prefix_watched(old: u32) -> u32 {
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value; `name` and `old_name` are consecutive.
    let s = unsafe {
        (&raw const (*scratch).record.name)
            .cast::<u8>()
            .add((old & 1) as usize * PASSED_PATH_CAP)
    };
    for i in 0..WATCHED_PREFIX_ENTRIES {
        let Some(p) = WATCHED_PREFIXES.get(i) else {
            return 0;
        };
        if p.len == 0 {
            return 0;
        }
        // SAFETY: s has PASSED_PATH_CAP bytes; the prefix is a map value.
        if unsafe { co_re::bc_prefix_match(s, p.bytes.as_ptr(), p.len) } != 0 {
            return p.tree;
        }
    }
    0
}

/// This CPU's record.
#[inline(always)]
pub fn scratch() -> Result<*mut FileScratch, u32> {
    // SAFETY: plain helper call; the CPU cannot change while the program runs.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    FILE_SCRATCH
        .get_ptr_mut(cpu)
        .ok_or_else(|| diag::lookup_failed("FILE_SCRATCH"))
}

/// Completes this CPU's record (its paths are in) with the writer, and submits it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_send(action: u32, now: u64) -> u32 {
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value.
    unsafe {
        let rec = &raw mut (*scratch).record;
        (*rec).header.kind = RECORD_FILE;
        (*rec).header.action = action;
        (*rec).header.ktime_boot_ns = now;
        writer(rec);
        submit(rec);
    }
    0
}

/// A path-named operation that succeeded, from what its path hook kept for this thread
/// (nothing when it was outside the watched trees); for `io_uring_enter` (`open` 1), the open it
/// issued, from what the open hook kept. What the other kind of hook kept is dropped unsent.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_hooked(action: u32, open: u32) -> u32 {
    // SAFETY: plain helper call.
    let key = unsafe { bpf_get_current_pid_tgid() };
    let Some(stash) = PATH_STASH.get_ptr(&key) else {
        return 0;
    };
    // SAFETY: a map value.
    if unsafe { (*stash).open } != open {
        let _ = PATH_STASH.remove(&key);
        return 0;
    }
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // An io_uring_enter's open is io_uring's too.
    let flags = if open != 0 { file_flags::IO_URING } else { 0 };
    // SAFETY: both are map values.
    unsafe { take_stash(scratch, stash, flags) };
    let _ = PATH_STASH.remove(&key);
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    boot_copy_send(action, now)
}

/// Sends this CPU's stash as it is (an io_uring worker's operation, see `hook`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_send_kept(action: u32) -> u32 {
    let Ok(scratch) = scratch() else {
        return 0;
    };
    // SAFETY: this CPU's map value.
    unsafe { take_stash(scratch, &raw const (*scratch).stash, file_flags::IO_URING) };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    boot_copy_send(action, now)
}

/// This CPU's record's paths from a path hook's stash, with its flags and `flags`.
#[inline(always)]
unsafe fn take_stash(scratch: *mut FileScratch, stash: *const PathStash, flags: u32) {
    // SAFETY: map values, copied through helpers.
    unsafe {
        let rec = &raw mut (*scratch).record;
        let copy = |dst: *mut u8, src: *const u8, len: usize| {
            bpf_probe_read_kernel(dst.cast(), len as u32, src.cast());
        };
        copy(
            (&raw mut (*rec).dir).cast(),
            (&raw const (*stash).dir).cast(),
            PATH_CAP,
        );
        copy(
            (&raw mut (*rec).old_dir).cast(),
            (&raw const (*stash).old_dir).cast(),
            PATH_CAP,
        );
        copy(
            (&raw mut (*rec).name).cast(),
            (&raw const (*stash).name).cast(),
            NAME_CAP,
        );
        copy(
            (&raw mut (*rec).old_name).cast(),
            (&raw const (*stash).old_name).cast(),
            NAME_CAP,
        );
        let h = &raw mut (*rec).header;
        (*h).tree = (*stash).tree;
        (*h).flags = (*stash).flags | flags;
        (*h).dir_len = (*stash).dir_len;
        (*h).old_dir_len = (*stash).old_dir_len;
        (*h).name_len = (*stash).name_len;
        (*h).old_name_len = (*stash).old_name_len;
    }
}

/// The tree of the nearest watched root the kernel `struct path` at `path` is at or under (0:
/// none).
#[inline(always)]
pub fn watched(path: KPath) -> u32 {
    // SAFETY: the shim reads kernel memory through helpers.
    let (mnt, dentry) = unsafe { (co_re::bc_path_mnt(path), co_re::bc_path_dentry(path)) };
    boot_copy_watched(mnt as u64, dentry as u64)
}

/// The tree of the nearest watched root the entry `dentry` of the directory at `dir` is at or
/// under (0: none): the entry itself may be a root (`rmdir /boot`).
#[inline(always)]
pub fn watched_entry(dir: u64, dentry: u64) -> u32 {
    // SAFETY: as above.
    let mnt = unsafe { co_re::bc_path_mnt(dir as usize as KPath) };
    boot_copy_watched(mnt as u64, dentry)
}

/// The tree of the nearest watched root `dentry`, seen through the mount `mnt`, is at or under
/// (0: none): a bounded walk up, one map lookup per directory whose bit is set.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn boot_copy_watched(mnt: u64, dentry: u64) -> u32 {
    if mnt == 0 || dentry == 0 {
        return 0;
    }
    let Some(bits) = ROOT_BITS.get(0) else {
        return 0;
    };
    // Uninitialised: the shim writes every field (a zeroing would be linked as a memset call).
    let mut w = MaybeUninit::<Walk>::uninit();
    // SAFETY: the shim reads kernel memory through helpers and fills the walk.
    let w = unsafe {
        co_re::bc_walk_start(
            mnt as usize as *const c_void,
            dentry as usize as Dentry,
            w.as_mut_ptr(),
        );
        w.assume_init_mut()
    };
    for _ in 0..FILE_WALK_DEPTH {
        if bits.devs & (1 << dev_bit(w.dev)) == 0 {
            // No root on this file system: straight to its mount point.
            // SAFETY: as above.
            if unsafe { co_re::bc_walk_cross(w) } == 0 {
                return 0;
            }
            continue;
        }
        let key = InodeKey {
            dev: w.dev,
            ino: w.ino,
        };
        let bit = key.bit();
        if bits.inodes[(bit / 64) & 3] & (1 << (bit % 64)) != 0 {
            // SAFETY: the value is copied out at once.
            if let Some(&tree) = unsafe { WATCHED_ROOTS.get(&key) } {
                return tree;
            }
        }
        // SAFETY: as above.
        if unsafe { co_re::bc_walk_up(w) } == 0 {
            return 0;
        }
    }
    count(counter::FILE_WALKS_CUT);
    0
}

/// Whether this process sent an event for this file moments ago; records this one otherwise.
#[inline(always)]
fn repeat(tgid: u32, target: Dentry, now: u64) -> bool {
    let key = RecentKey {
        tgid: tgid as u64,
        dentry: target as u64,
    };
    // SAFETY: the value is copied out at once.
    if let Some(&last) = unsafe { FILE_RECENT.get(&key) } {
        if now.wrapping_sub(last) < REPEAT_NS {
            return true;
        }
    }
    let _ = FILE_RECENT.insert(&key, &now, 0);
    false
}

/// The writing process: ids, executable, working directory, arguments, and its parent's
/// process-table entry (as an exec record describes a process and its parent).
#[inline(always)]
unsafe fn writer(rec: *mut FileRecord) {
    // SAFETY (whole function): `rec` is this CPU's map value; kernel pointers are read through
    // helpers.
    unsafe {
        let h = &raw mut (*rec).header;
        let task = bpf_get_current_task() as usize as Task;
        let pid_tgid = bpf_get_current_pid_tgid();
        (*h).pid = pid_tgid as u32;
        (*h).tgid = (pid_tgid >> 32) as u32;
        (*h).ppid = co_re::bc_cur_ppid(task);
        (*h).start_boottime_ns = co_re::bc_cur_leader_start(task);
        let mut creds = [0u32; 4];
        co_re::bc_cur_creds(task, creds.as_mut_ptr());
        (*h).uid = creds[0];
        (*h).euid = creds[1];
        (*h).gid = creds[2];
        (*h).egid = creds[3];
        bpf_get_current_comm((&raw mut (*h).comm).cast(), 16);
        co_re::bc_task_session(task, &raw mut (*h).session);

        // The parent first: its executable is resolved through the `exe` buffer.
        parent(rec, task);
        if !script(rec, task) {
            let (len, cut) = resolve(co_re::bc_cur_exe_path(task), slot::EXE);
            (*h).exe_len = len;
            if cut {
                set_flag(rec, file_flags::EXE_TRUNCATED);
            }
        }
        let pwd = co_re::bc_cur_pwd(task);
        if pwd.is_null() {
            set_flag(rec, file_flags::CWD_MISSING);
        }
        let (len, cut) = resolve(pwd, slot::CWD);
        (*h).cwd_len = len;
        if cut {
            set_flag(rec, file_flags::CWD_TRUNCATED);
        }

        args(rec, task);
    }
}

/// A writer running a `#!` script is named by the script, as its exec event named it: its own
/// process-table entry (made at that exec) holds the script's path. Whether it did.
#[inline(always)]
unsafe fn script(rec: *mut FileRecord, task: Task) -> bool {
    // SAFETY: as in `writer`.
    unsafe {
        let h = &raw mut (*rec).header;
        let own = PROC_TABLE.get_ptr((*h).tgid).filter(|&entry| {
            table::describes(entry, (*h).start_boottime_ns, co_re::bc_cur_exec_id(task))
        });
        let Some(entry) = own else {
            return false;
        };
        if (*entry).flags & image_flags::EXE_IS_FILENAME == 0 {
            return false;
        }
        let exe = (&raw mut (*rec).exe).cast::<c_void>();
        bpf_probe_read_kernel(exe, IMAGE_EXE_CAP as u32, (&raw const (*entry).exe).cast());
        (*h).exe_len = (*entry).exe_len & (IMAGE_EXE_CAP as u32 - 1);
        set_flag(rec, file_flags::SCRIPT);
        if (*entry).flags & image_flags::EXE_TRUNCATED != 0 {
            set_flag(rec, file_flags::EXE_TRUNCATED);
        }
        true
    }
}

/// One bounded read of the writer's argv.
#[inline(always)]
unsafe fn args(rec: *mut FileRecord, task: Task) {
    // SAFETY: as in `writer`.
    unsafe {
        let h = &raw mut (*rec).header;
        let mut size = 0u64;
        let start = co_re::bc_cur_args(task, &mut size);
        let cap = FILE_ARGS_CAP as u64;
        let want = (if size < cap { size } else { cap }) as u32 & (FILE_ARGS_CAP as u32 - 1);
        (*h).args_size = size as u32;
        (*h).args_len = 0;
        if size > want as u64 {
            set_flag(rec, file_flags::ARGS_TRUNCATED);
        }
        if want > 0 {
            let dst = (&raw mut (*rec).args).cast::<c_void>();
            if bpf_probe_read_user(dst, want, start as usize as *const c_void) < 0 {
                set_flag(rec, file_flags::ARGS_READ_FAILED);
            } else {
                (*h).args_len = want;
            }
        }
    }
}

/// The writer's parent from the process table, its executable resolved from the live parent.
#[inline(always)]
unsafe fn parent(rec: *mut FileRecord, task: Task) {
    // SAFETY: as in `writer`.
    unsafe {
        let h = &raw mut (*rec).header;
        let image = &raw mut (*rec).parent;
        let found = PROC_TABLE.get_ptr((*h).ppid).filter(|&entry| {
            let start = co_re::bc_cur_parent_start(task);
            table::describes(entry, start, co_re::bc_cur_parent_exec_id(task))
        });
        let Some(entry) = found else {
            count(counter::PARENT_MISSES);
            return;
        };
        bpf_probe_read_kernel(image.cast(), size_of::<ProcImage>() as u32, entry.cast());
        set_flag(rec, file_flags::PARENT_FOUND);
        if (*image).flags & image_flags::EXE_IS_FILENAME != 0 {
            return;
        }
        let exe = co_re::bc_cur_parent_exe_path(task);
        if exe.is_null() {
            return;
        }
        let (len, cut) = resolve(exe, slot::EXE);
        let cut = image::set_exe(image, (&raw const (*rec).exe).cast(), len, cut);
        (*image).flags = ((*image).flags & !image_flags::EXE_TRUNCATED) | cut;
    }
}

/// Sets a header flag in map memory, read back unknown: the verifier then sees the same state
/// whether a flag was set or not, and explores what follows (the path walks) once, not once per
/// combination of flags.
#[inline(always)]
unsafe fn set_flag(rec: *mut FileRecord, flag: u32) {
    // SAFETY: a header field of this CPU's record.
    unsafe {
        let flags = &raw mut (*rec).header.flags;
        core::ptr::write_volatile(flags, core::ptr::read_volatile(flags) | flag);
    }
}

/// Submits the whole record, waking the reader: file events are rare and each may alert.
#[inline(always)]
unsafe fn submit(rec: *const FileRecord) {
    // SAFETY: the record is a map value.
    let data = unsafe { &*rec };
    match EVENTS.output::<FileRecord>(data, BPF_RB_FORCE_WAKEUP as u64) {
        Ok(()) => {
            count(counter::EVENTS_SUBMITTED);
            count(counter::FILE_EVENTS_SUBMITTED);
        }
        Err(_) => {
            count(counter::RINGBUF_DROPS);
            count(counter::FILE_RINGBUF_DROPS);
        }
    }
}

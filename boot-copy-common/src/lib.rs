//! `#[repr(C)]` types shared by the kernel program (`boot-copy-ebpf`) and the agent.
//!
//! Every record that crosses the ring buffer starts with a `u32` kind. Layout changes here must be
//! made on both sides at once; the size assertions at the bottom catch accidental drift.
#![no_std]

/// Capacity of full paths in an exec record (PATH_MAX).
pub const PATH_CAP: usize = 4096;
/// Capacity of the `#!` interpreter string (the kernel's BINPRM_BUF_SIZE bounds it).
pub const INTERP_CAP: usize = 256;
/// Argument bytes a watched exec's record carries (the rest goes to `ARGV_SPILL`, see
/// `SPILL_CHUNK`); it must stay a power of two (used as a verifier mask).
pub const ARGS_CAP_WATCHED: usize = 512 * 1024;
/// Argument bytes captured for other execs when all execs are requested (Elastic keeps 20 KiB).
pub const ARGS_CAP_OTHER: usize = 32 * 1024;
/// A watched exec's argv beyond what its record carries goes to the `ARGV_SPILL` map in chunks
/// of this size (a power of two), which the agent reads back and deletes.
pub const SPILL_CHUNK: usize = 64 * 1024;
/// Chunks one exec may spill: with the record's part, more than the kernel's own ceiling of
/// argv plus environment (6 MiB, `bprm_stack_limits` with an unlimited stack).
pub const SPILL_CHUNKS_MAX: u32 = 96;
/// `ARGV_SPILL` holds this many times the ring buffer's size (4 MiB by default: 6 MiB of chunks,
/// one exec of the kernel's largest argv).
pub const SPILL_PER_RING_BYTE: (u32, u32) = (3, 2);
/// Bounds of a process image kept in the kernel's process table (the parent context).
pub const IMAGE_EXE_CAP: usize = 512;
pub const IMAGE_ARGS_CAP: usize = 1024;
pub const IMAGE_CWD_CAP: usize = 512;
/// Key size of the watched-name map: a name is the executable's basename, zero-padded.
pub const NAME_KEY_CAP: usize = 64;
/// Default number of processes the process table holds (LRU beyond that).
pub const PROC_TABLE_ENTRIES: u32 = 16384;
/// Maximum number of watched names.
pub const WATCHED_ENTRIES: u32 = 256;
/// Maximum number of watched executable sizes.
pub const WATCHED_SIZE_ENTRIES: u32 = 64;

/// Record kinds (first `u32` of every ring-buffer record).
pub const RECORD_EXEC: u32 = 1;
/// A file operation in a watched tree (`FileRecord`).
pub const RECORD_FILE: u32 = 2;

/// `ExecHeader::flags`.
pub mod exec_flags {
    /// Fewer argument bytes were captured than the process has.
    pub const ARGS_TRUNCATED: u32 = 1 << 0;
    /// The argument read from user memory failed; `args` is empty.
    pub const ARGS_READ_FAILED: u32 = 1 << 1;
    pub const FILENAME_TRUNCATED: u32 = 1 << 2;
    pub const EXE_TRUNCATED: u32 = 1 << 3;
    pub const CWD_TRUNCATED: u32 = 1 << 4;
    /// `bprm->interp` differs from `bprm->filename`: a `#!` script (or binfmt_misc).
    /// `exe` then holds the interpreter's resolved path and `filename` the script path.
    pub const SCRIPT: u32 = 1 << 5;
    /// The executable's name is in the watched set.
    pub const WATCHED: u32 = 1 << 6;
    /// `parent` holds the parent's entry from the kernel process table.
    pub const PARENT_FOUND: u32 = 1 << 7;
    /// The working directory could not be read (kernel thread, no fs).
    pub const CWD_MISSING: u32 = 1 << 8;
    /// `ExecHeader::spill_len` bytes of argv follow the record's in `ARGV_SPILL` chunks (cleared
    /// by the agent once it has put them into the record).
    pub const SPILLED: u32 = 1 << 9;
    /// A chunk did not fit into `ARGV_SPILL` (it was full): argv is incomplete.
    pub const SPILL_FULL: u32 = 1 << 10;
    /// Set by the agent: a spilled chunk was not in `ARGV_SPILL` when it was read.
    pub const CHUNK_MISSING: u32 = 1 << 11;
    /// Set by the agent's decoder: the last captured argument was cut (no terminating NUL).
    pub const LAST_ARG_CUT: u32 = 1 << 12;
    /// The environment follows argv in the record (`config_flags::CAPTURE_ENV`, and the block
    /// right after argv in memory, as exec leaves it): `env_size` is its true size.
    pub const ENV_CAPTURED: u32 = 1 << 13;
    /// Set by the agent's decoder: fewer environment bytes were captured than the process has
    /// (the record's capacity, a faulted read, or a full spill map).
    pub const ENV_INCOMPLETE: u32 = 1 << 14;
}

/// `ProcImage::flags`.
pub mod image_flags {
    pub const EXE_TRUNCATED: u32 = 1 << 0;
    pub const ARGS_TRUNCATED: u32 = 1 << 1;
    pub const CWD_TRUNCATED: u32 = 1 << 2;
    /// `exe` is the path as passed to execve of a script and may be relative to `cwd`.
    pub const EXE_IS_FILENAME: u32 = 1 << 3;
    /// Written by the agent from /proc at start, not by the kernel at exec.
    pub const FROM_PROC: u32 = 1 << 4;
    /// Copied from the parent's entry: the process has not exec'd since it was forked (a
    /// subshell).
    pub const FORKED: u32 = 1 << 5;
    /// The argument read from user memory failed (a page swapped out); `args` is empty.
    pub const ARGS_READ_FAILED: u32 = 1 << 6;
    /// `exe` was resolved at the fork: the process leads its process group or session, and
    /// its members' records describe it from this entry once it has exited.
    pub const LEADER_EXE: u32 = 1 << 7;
}

/// Counter indexes into the per-CPU `COUNTERS` array.
pub mod counter {
    pub const EXECS_SEEN: u32 = 0;
    pub const EVENTS_SUBMITTED: u32 = 1;
    /// Ring-buffer reservations that failed: events lost in the kernel.
    pub const RINGBUF_DROPS: u32 = 2;
    pub const ARGS_TRUNCATED: u32 = 3;
    /// Records sent whose parent had no process-table entry.
    pub const PARENT_MISSES: u32 = 4;
    pub const ARGS_READ_FAILURES: u32 = 5;
    pub const PATH_TRUNCATIONS: u32 = 6;
    pub const TABLE_UPDATE_FAILURES: u32 = 7;
    pub const FORKS: u32 = 8;
    /// Records submitted while a guarded kernel field is missing (see `kernel_fields`): each
    /// lacks the values those fields feed.
    pub const DEGRADED_RECORDS: u32 = 9;
    /// Watched execs whose argv went partly to `ARGV_SPILL`.
    pub const ARGS_SPILLED: u32 = 10;
    /// Watched execs whose argv did not fit into `ARGV_SPILL`.
    pub const SPILL_FULL: u32 = 11;
    /// Watched execs sent without their whole argv (spill full, or a read that faulted).
    pub const ARGS_INCOMPLETE: u32 = 12;
    /// Map lookups that failed where they cannot (a per-CPU scratch slot, the configuration): the
    /// program gave up on that exec or fork.
    pub const MAP_LOOKUP_FAILURES: u32 = 13;
    /// File operations the file programs looked at (writes, creations, renames, deletions,
    /// attribute changes anywhere).
    pub const FILE_OPS_SEEN: u32 = 14;
    /// File records submitted (operations in a watched tree, once per act).
    pub const FILE_EVENTS_SUBMITTED: u32 = 15;
    /// File records lost because the ring buffer was full.
    pub const FILE_RINGBUF_DROPS: u32 = 16;
    /// Operations in a watched tree not sent because the same process touched the same file
    /// moments before (one event per act).
    pub const FILE_REPEATS: u32 = 17;
    /// Walks up the directory tree that gave up at `FILE_WALK_DEPTH` without reaching a root.
    pub const FILE_WALKS_CUT: u32 = 18;
    /// Operations in a watched tree a path hook found but could not keep for its syscall's
    /// exit: not sent.
    pub const FILE_STASH_FAILURES: u32 = 19;
    pub const COUNT: u32 = 20;
    /// Names in index order, as the agent reports them.
    pub const NAMES: [&str; COUNT as usize] = [
        "execs_seen",
        "events_submitted",
        "ringbuf_drops",
        "args_truncated",
        "parent_misses",
        "args_read_failures",
        "path_truncations",
        "table_update_failures",
        "forks",
        "degraded_records",
        "args_spilled",
        "args_spill_full",
        "args_incomplete",
        "map_lookup_failures",
        "file_ops_seen",
        "file_events_submitted",
        "file_ringbuf_drops",
        "file_repeats",
        "file_walks_cut",
        "file_stash_failures",
    ];
}

/// Kernel structure fields the programs read through CO-RE, one bit each in the mask the
/// layout probe (`boot_copy_layout`) writes to `LAYOUT[0]`: a set bit is a field the BTF used for
/// relocation lacks. Bit numbers must match `boot-copy-ebpf/src/c/shim.c`.
///
/// Optional fields are read under `bpf_core_field_exists`: without one the programs still load
/// and the values it feeds stay empty. The sensor cannot work without a required field, and
/// the agent refuses to start, naming it.
pub mod kernel_fields {
    /// (bit, field, what is left empty without it).
    pub const OPTIONAL: [(u32, &str, &str); 16] = [
        (
            0,
            "task_struct.start_boottime",
            "process.start, process.entity_id",
        ),
        (1, "task_struct.comm", "boot_copy.process.comm"),
        (2, "task_struct.mm", "process.args"),
        (3, "mm_struct.arg_start", "process.args"),
        (4, "mm_struct.arg_end", "process.args"),
        (5, "task_struct.fs", "process.working_directory"),
        (6, "fs_struct.pwd", "process.working_directory"),
        (
            7,
            "linux_binprm.interp",
            "boot_copy.process.interpreter (scripts)",
        ),
        (8, "file.f_inode", "executable size prefilter"),
        (9, "inode.i_size", "executable size prefilter"),
        (
            12,
            "mm_struct.exe_file",
            "process.parent.executable, parent context of forked subshells",
        ),
        (
            13,
            "mm_struct.start_stack",
            "process.parent.args_count beyond the captured arguments",
        ),
        (
            14,
            "task_struct.signal",
            "process.group_leader, process.session_leader, process.tty",
        ),
        (15, "signal_struct.tty", "process.tty, process.interactive"),
        (
            16,
            "task_struct.nsproxy",
            "boot_copy.process.mount_namespace, boot_copy.boot.host_filesystem",
        ),
        (17, "cred.group_info", "process.supplemental_groups"),
    ];
    /// (bit, field).
    pub const REQUIRED: [(u32, &str); 24] = [
        (32, "task_struct.pid"),
        (33, "task_struct.tgid"),
        (34, "task_struct.real_parent"),
        (35, "task_struct.cred"),
        (36, "cred.uid"),
        (37, "cred.euid"),
        (38, "cred.gid"),
        (39, "cred.egid"),
        (40, "linux_binprm.file"),
        (41, "linux_binprm.filename"),
        (42, "linux_binprm.argc"),
        (43, "file.f_path"),
        (44, "path.mnt"),
        (45, "path.dentry"),
        (46, "dentry.d_parent"),
        (47, "dentry.d_name"),
        (48, "qstr.name"),
        (49, "qstr.len"),
        (50, "vfsmount.mnt_root"),
        (51, "mount.mnt"),
        (52, "mount.mnt_parent"),
        (53, "mount.mnt_mountpoint"),
        (54, "task_struct.group_leader"),
        (55, "task_struct.self_exec_id"),
    ];
    pub const START_BOOTTIME: u64 = 1 << 0;
}

/// `CONFIG[0]`: what the exec program sends, read on every exec, so kept in one cache line.
///
/// Beside the flags, two bitmaps (one-hash Bloom filters) of the watched names and sizes:
/// an exec whose name and size bits are clear is not watched, and the exec program decides
/// that without a hash-map lookup; a set bit sends it on to `WATCHED` and `WATCHED_SIZES`,
/// which decide.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefilter {
    /// `config_flags`.
    pub flags: u64,
    pub names: [u64; 4],
    pub sizes: [u64; 2],
}

/// A watched-name key as the exec program holds it (8-byte aligned words).
pub type NameWords = [u64; NAME_KEY_CAP / 8];

impl Prefilter {
    pub fn new(names: &[NameWords], sizes: &[u64], flags: u64) -> Self {
        let mut p = Prefilter {
            flags,
            ..Default::default()
        };
        for words in names {
            let bit = name_bit(words);
            p.names[bit / 64] |= 1 << (bit % 64);
        }
        for &size in sizes {
            let bit = size_bit(size);
            p.sizes[bit / 64] |= 1 << (bit % 64);
        }
        p
    }

    /// False when the name is certainly not watched.
    #[inline(always)]
    pub fn may_watch_name(&self, words: &NameWords) -> bool {
        let bit = name_bit(words);
        self.names[(bit / 64) & 3] & (1 << (bit % 64)) != 0
    }

    /// False when the size is certainly not watched.
    #[inline(always)]
    pub fn may_watch_size(&self, size: u64) -> bool {
        let bit = size_bit(size);
        self.sizes[(bit / 64) & 1] & (1 << (bit % 64)) != 0
    }
}

/// Fibonacci hashing: the top bits of a multiply by 2^64 / φ.
const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
fn name_bit(words: &NameWords) -> usize {
    let mut h = 0u64;
    let mut i = 0;
    while i < words.len() {
        h = (h ^ words[i]).wrapping_mul(PHI);
        i += 1;
    }
    (h >> 56) as usize // 256 bits
}

#[inline(always)]
fn size_bit(size: u64) -> usize {
    (size.wrapping_mul(PHI) >> 57) as usize // 128 bits
}

/// The words of a watched-name key (its bytes as the kernel compares them).
pub fn name_words(key: &[u8; NAME_KEY_CAP]) -> NameWords {
    let mut words = [0u64; NAME_KEY_CAP / 8];
    for (w, chunk) in words.iter_mut().zip(key.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    words
}

/// `Prefilter::flags` bits.
pub mod config_flags {
    /// Submit every exec, not only watched names (`events --all`, or a rule without a name filter).
    pub const ALL_EXECS: u64 = 1 << 0;
    /// Read each sent exec's environment after its argv (`process.env_vars` is configured).
    pub const CAPTURE_ENV: u64 = 1 << 1;
}

/// A process's current image, as kept in the kernel process table keyed by tgid.
/// Strings are NUL-terminated within their capacity; `args` is argv NUL-separated.
///
/// Entries are made when they can first be needed, as the parent context of a child: a process
/// gets one at its first fork after its exec (from its own memory, or copied from its parent's
/// entry when it has not exec'd since its own fork) and a script at its exec (only the exec knows
/// the script's path). An entry is current while its process's start time and exec count
/// (`exec_id`) match; nothing removes it, the LRU reuses stale ones. So the execs and exits of
/// processes that never fork, most of them, touch no table.
///
/// In the table, `exe` is set only for a script (`EXE_IS_FILENAME`) and by the agent's seeding
/// (`FROM_PROC`), and `cwd` only for scripts run by a relative path: the kernel resolves a
/// parent's executable from the live parent when a child's record is sent, which spares the
/// path walk. In a record's `parent`, `exe` is that resolved path.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcImage {
    /// `task->start_boottime` of the thread-group leader, in ns.
    pub start_boottime_ns: u64,
    /// `task->self_exec_id` when the entry was made (0 in a seeded entry).
    pub exec_id: u64,
    pub tgid: u32,
    pub flags: u32,
    /// True argc (not only what fits in `args`).
    pub args_count: u32,
    /// Bytes of `args` that are valid.
    pub args_len: u32,
    pub exe_len: u32,
    pub cwd_len: u32,
    /// The process's effective user and group when the entry was made.
    pub euid: u32,
    pub egid: u32,
    pub exe: [u8; IMAGE_EXE_CAP],
    pub args: [u8; IMAGE_ARGS_CAP],
    pub cwd: [u8; IMAGE_CWD_CAP],
}

/// What ties a process to others and where it runs, read when its record is sent: its process
/// group and session (Elastic Defend's group and session leaders), its controlling terminal,
/// its parent's credentials, its mount namespace and cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// Host pids of the process group's and the session's leaders.
    pub pgid: u32,
    pub sid: u32,
    /// The controlling terminal's device numbers; major 0: none.
    pub tty_major: u32,
    pub tty_minor: u32,
    /// The parent's effective user and group.
    pub parent_euid: u32,
    pub parent_egid: u32,
    /// Inode number of the mount namespace (as `/proc/PID/ns/mnt` shows it); 0 unknown.
    pub mnt_ns: u32,
    /// The process's supplementary groups: how many it has (`groups` holds the first
    /// `SUPPLEMENTAL_GROUPS_CAP`).
    pub ngroups: u32,
    /// Id of the process's cgroup in the unified (v2) hierarchy: its directory's inode number.
    pub cgroup_id: u64,
    /// Id of its cgroup in the memory controller's hierarchy, where a cgroup v1 host's runtimes
    /// place containers (on a cgroup v2 host, the unified hierarchy's again); 0 unknown.
    pub memory_cgroup_id: u64,
    /// Start time (boot clock, ns) and exec count (`self_exec_id`) of the process leading the
    /// group, and of the one leading the session, while it lives; 0, 0 once it has exited. The
    /// agent keeps a leader's description while these stay the same.
    pub group_leader_start: u64,
    pub group_leader_exec_id: u64,
    pub session_leader_start: u64,
    pub session_leader_exec_id: u64,
    /// The parent's controlling terminal; major 0: none.
    pub parent_tty_major: u32,
    pub parent_tty_minor: u32,
    pub groups: [u32; SUPPLEMENTAL_GROUPS_CAP],
}

/// Supplementary groups a record carries.
pub const SUPPLEMENTAL_GROUPS_CAP: usize = 16;

/// Fixed part of an exec record. Lengths exclude the terminating NUL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecHeader {
    /// Always `RECORD_EXEC`.
    pub kind: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns()` when the exec was seen.
    pub ktime_boot_ns: u64,
    /// `task->start_boottime` of the process, in ns.
    pub start_boottime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    /// `task->real_parent->tgid`.
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// True argc (`bprm->argc`).
    pub args_count: u32,
    /// True argument byte count (`mm->arg_end - mm->arg_start`).
    pub args_size: u32,
    /// Bytes present in `ExecRecord::args` (and in the submitted record): argv's, then the
    /// environment's when `ENV_CAPTURED`.
    pub args_len: u32,
    pub filename_len: u32,
    pub exe_len: u32,
    pub interp_len: u32,
    pub cwd_len: u32,
    /// Bytes that follow in `ARGV_SPILL` chunks (`SPILLED`), after those in `args`.
    pub spill_len: u32,
    /// The error of the helper call that cut argv short (a read or a spill insert), else 0.
    pub args_error: i32,
    /// True environment byte count (`mm->env_end - mm->env_start`) when `ENV_CAPTURED`, else 0.
    pub env_size: u32,
    pub _pad: u32,
    pub comm: [u8; 16],
    pub session: Session,
}

/// `FileHeader::action`: what was done to the file (Elastic Defend's `event.action`).
pub mod file_action {
    pub const CREATION: u32 = 1;
    pub const MODIFICATION: u32 = 2;
    pub const RENAME: u32 = 3;
    pub const DELETION: u32 = 4;
    pub const ATTRIBUTES_MODIFICATION: u32 = 5;
}

/// `FileHeader::flags`.
pub mod file_flags {
    /// `dir` or `name` was cut.
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    pub const OLD_PATH_TRUNCATED: u32 = 1 << 1;
    pub const EXE_TRUNCATED: u32 = 1 << 2;
    pub const CWD_TRUNCATED: u32 = 1 << 3;
    pub const ARGS_TRUNCATED: u32 = 1 << 4;
    pub const ARGS_READ_FAILED: u32 = 1 << 5;
    /// `parent` holds the writer's parent's entry from the kernel process table.
    pub const PARENT_FOUND: u32 = 1 << 6;
    /// The writer has no working directory (a kernel thread).
    pub const CWD_MISSING: u32 = 1 << 7;
    /// The writer runs a `#!` script: `exe` is the script's path as its exec passed it (from
    /// the writer's own process-table entry), as its exec event names it.
    pub const SCRIPT: u32 = 1 << 8;
    /// An io_uring worker began the operation: it was sent from its path hook, before its
    /// result (no syscall exit of its own follows).
    pub const IO_URING: u32 = 1 << 9;
}

/// Capacity of a path as passed to a syscall in a file record.
pub const PASSED_PATH_CAP: usize = 1024;
/// Most watched path prefixes (`WATCHED_PREFIXES` entries).
pub const WATCHED_PREFIX_ENTRIES: u32 = 8;
/// Longest watched path prefix, in bytes.
pub const WATCHED_PREFIX_CAP: usize = 64;

/// A watched tree's absolute path (the tree itself, or a bind mount of it), for syscalls that
/// name a file by an absolute path: the kernel compares the path as passed with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchedPrefix {
    pub bytes: [u8; WATCHED_PREFIX_CAP],
    /// 0: an unused entry.
    pub len: u32,
    /// The tree this path shows (`FileHeader::tree`).
    pub tree: u32,
}
/// Argument bytes of the writing process a file record carries.
pub const FILE_ARGS_CAP: usize = 4096;
/// Directory levels (and mount crossings) the in-kernel filter walks up from a file.
pub const FILE_WALK_DEPTH: u32 = 48;
/// Most watched roots (`WATCHED_ROOTS` entries).
pub const WATCHED_ROOT_ENTRIES: u32 = 256;

/// A watched root as the file programs find it: the kernel's `super_block.s_dev` (major << 20 |
/// minor) and the inode number of a directory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub dev: u64,
    pub ino: u64,
}

impl InodeKey {
    /// Its bit in the 256-bit bitmap in front of the watched-roots map.
    #[inline(always)]
    pub fn bit(&self) -> usize {
        ((self.dev ^ self.ino.wrapping_mul(PHI)).wrapping_mul(PHI) >> 56) as usize
    }
}

/// The bit of a device number in `RootBits::devs`.
#[inline(always)]
pub fn dev_bit(dev: u64) -> u64 {
    dev.wrapping_mul(PHI) >> 58
}

/// The bitmaps in front of the watched-roots map: a directory whose `InodeKey::bit` is clear
/// in `inodes` is not a root; a file system whose `dev_bit` is clear in `devs` holds none, and
/// the walk up from a file crosses it to its mount point at once.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootBits {
    pub inodes: [u64; 4],
    pub devs: u64,
}

impl RootBits {
    pub fn of<'k>(keys: impl IntoIterator<Item = &'k InodeKey>) -> Self {
        let mut bits = Self::default();
        for k in keys {
            let bit = k.bit();
            bits.inodes[bit / 64] |= 1 << (bit % 64);
            bits.devs |= 1 << dev_bit(k.dev);
        }
        bits
    }
}

/// Fixed part of a file record. Lengths exclude the terminating NUL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileHeader {
    /// Always `RECORD_FILE`.
    pub kind: u32,
    /// `file_action`.
    pub action: u32,
    pub flags: u32,
    /// `name` is the path as passed to the syscall, `dir` the resolved directory a relative
    /// `name` starts from; with an empty `name`, `dir` is the resolved file itself.
    pub dir_len: u32,
    pub name_len: u32,
    /// A rename's source (`old_dir` and `old_name`), as above.
    pub old_dir_len: u32,
    pub old_name_len: u32,
    /// The writer's executable, working directory and captured argument bytes.
    pub exe_len: u32,
    pub cwd_len: u32,
    pub args_len: u32,
    /// True argument byte count (`mm->arg_end - mm->arg_start`).
    pub args_size: u32,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// The watched tree the file (or a rename's source) is in: the `WATCHED_ROOTS` value or
    /// `WatchedPrefix::tree` that decided, an index the agent assigned (from 1); or
    /// `TREE_CLIMBS`.
    pub tree: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_boot_ns()` at the operation.
    pub ktime_boot_ns: u64,
    /// `task->start_boottime` of the writer's process, in ns.
    pub start_boottime_ns: u64,
    pub comm: [u8; 16],
    pub session: Session,
}

/// `FileHeader::tree` of a path-named operation outside every watched tree as the kernel
/// decides, whose path has a `..` in it: it may climb into one (`cd /tmp && mkdir ../boot/x`),
/// and the agent decides from the path made absolute.
pub const TREE_CLIMBS: u32 = u32::MAX;

/// A file record as built and submitted (whole) by the file programs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileRecord {
    pub header: FileHeader,
    /// The writer's parent's process-table entry (valid when `PARENT_FOUND` is set).
    pub parent: ProcImage,
    pub dir: [u8; PATH_CAP],
    pub old_dir: [u8; PATH_CAP],
    pub exe: [u8; PATH_CAP],
    pub cwd: [u8; PATH_CAP],
    pub name: [u8; PASSED_PATH_CAP],
    pub old_name: [u8; PASSED_PATH_CAP],
    pub args: [u8; FILE_ARGS_CAP],
}

/// Key of an `ARGV_SPILL` chunk: the exec (its record's time and tgid) and the chunk's index.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpillKey {
    pub ktime_boot_ns: u64,
    pub tgid: u32,
    pub index: u32,
}

/// An exec record as built in the kernel. Only `ARGS_OFFSET + header.args_len` bytes are
/// submitted: the argument area is variable-length at the end.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecRecord {
    pub header: ExecHeader,
    /// The parent's process-table entry (valid when `PARENT_FOUND` is set).
    pub parent: ProcImage,
    /// `bprm->filename`: the path as passed to execve (may be relative).
    pub filename: [u8; PATH_CAP],
    /// Resolved path of `bprm->file` (for a script: the interpreter).
    pub exe: [u8; PATH_CAP],
    /// `bprm->interp` when it differs from the filename.
    pub interp: [u8; INTERP_CAP],
    /// Working directory (`task->fs->pwd`).
    pub cwd: [u8; PATH_CAP],
    pub args: [u8; ARGS_CAP_WATCHED],
    /// Where a chunk is read before it is copied into `ARGV_SPILL` (never submitted).
    pub spill: [u8; SPILL_CHUNK],
}

/// Byte offset of the argument area in a submitted exec record.
pub const ARGS_OFFSET: usize = core::mem::offset_of!(ExecRecord, args);

const _: () = assert!(
    core::mem::size_of::<ProcImage>() == 48 + IMAGE_EXE_CAP + IMAGE_ARGS_CAP + IMAGE_CWD_CAP
);
const _: () = assert!(core::mem::size_of::<Session>() == 152);
const _: () = assert!(core::mem::size_of::<ExecHeader>() == 264);
const _: () = assert!(SPILL_CHUNK.is_power_of_two());
const _: () = assert!(core::mem::size_of::<FileHeader>() == 264);
const _: () = assert!(core::mem::offset_of!(FileRecord, dir).is_multiple_of(8));
const _: () = assert!(FILE_ARGS_CAP.is_power_of_two() && PASSED_PATH_CAP.is_power_of_two());
const _: () = assert!(ARGS_CAP_WATCHED + SPILL_CHUNKS_MAX as usize * SPILL_CHUNK > 6 << 20);
const _: () = assert!(ARGS_OFFSET.is_multiple_of(8));
const _: () = assert!(ARGS_CAP_WATCHED.is_power_of_two() && ARGS_CAP_OTHER.is_power_of_two());

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, `#[repr(C)]`, no padding-dependent invariants.
    unsafe impl aya::Pod for super::ProcImage {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Prefilter {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SpillKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::InodeKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::WatchedPrefix {}
    unsafe impl aya::Pod for super::RootBits {}
}

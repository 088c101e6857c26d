//! Maps shared with the loader (`boot_copy_agent::sensor`), which sizes them at load time: the
//! sizes here are small defaults.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use boot_copy_common::{
    ExecRecord, FileRecord, InodeKey, NAME_KEY_CAP, PATH_CAP, Prefilter, ProcImage, RootBits,
    SPILL_CHUNK, SpillKey, WATCHED_ENTRIES, WATCHED_PREFIX_ENTRIES, WATCHED_ROOT_ENTRIES,
    WATCHED_SIZE_ENTRIES, WatchedPrefix, counter,
};

/// Exec records for the agent. The loader sets the size (default 4 MiB).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

/// The part of a watched exec's argv that its record cannot carry, in chunks keyed by exec and
/// index: the agent reads each chunk back when the record arrives, and deletes it. Preallocated;
/// the loader sizes it from the ring buffer's size (`SPILL_PER_RING_BYTE`).
#[map]
pub static ARGV_SPILL: HashMap<SpillKey, [u8; SPILL_CHUNK]> = HashMap::with_max_entries(1, 0);

/// One exec record per possible CPU (too large for a per-CPU map); indexed by CPU id, which is
/// stable while a tracepoint program runs. The loader sets max_entries.
#[map]
pub static SCRATCH: Array<ExecRecord> = Array::with_max_entries(1, 0);

/// Where a process image is assembled before it goes into `PROC_TABLE`.
#[map]
pub static IMAGE_SCRATCH: PerCpuArray<ProcImage> = PerCpuArray::with_max_entries(1, 0);

/// Current image of each process (tgid), for the parent context of its children's execs.
#[map]
pub static PROC_TABLE: LruHashMap<u32, ProcImage> = LruHashMap::with_max_entries(1024, 0);

/// Processes that forked recently and have a current `PROC_TABLE` entry, by `tgid % FORKERS_LEN`:
/// a fork that finds itself here is done without a `PROC_TABLE` lookup. (A lookup there costs
/// most of the fork program: the table's memory is vmalloc'd, so each lookup misses the TLB,
/// and under nested paging that is dear. This array is small enough to be kmalloc'd.) A hit does
/// not refresh the entry's LRU position: if the table reuses the entry of a process that keeps
/// forking, its children's records miss the table (`parent_misses`) and the agent describes the
/// parent from /proc.
#[map]
pub static FORKERS: Array<Forker> = Array::with_max_entries(FORKERS_LEN, 0);

pub const FORKERS_LEN: u32 = 1024;

/// A `FORKERS` slot. Slots are written without locks: a torn slot can only match the process
/// whose fields it holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Forker {
    pub tgid: u32,
    pub start_boottime_ns: u64,
    pub exec_id: u64,
}

/// Executable basenames (zero-padded) whose execs are always submitted with full arguments.
#[map]
pub static WATCHED: HashMap<[u8; NAME_KEY_CAP], u8> = HashMap::with_max_entries(WATCHED_ENTRIES, 0);

/// Executable file sizes whose execs are submitted like watched names: the agent confirms the
/// identity (a renamed or copied cp/mv) in userspace. A size matches few other binaries.
#[map]
pub static WATCHED_SIZES: HashMap<u64, u8> = HashMap::with_max_entries(WATCHED_SIZE_ENTRIES, 0);

/// Index 0: the `Prefilter` (flags, and the bitmaps in front of `WATCHED` and `WATCHED_SIZES`).
#[map]
pub static CONFIG: Array<Prefilter> = Array::with_max_entries(1, 0);

/// Index 0: the kernel fields missing from the relocation BTF, written by `boot_copy_layout`
/// when the loader test-runs it.
#[map]
pub static LAYOUT: Array<u64> = Array::with_max_entries(1, 0);

/// Per-CPU event counters, indexed by `boot_copy_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Adds one to a counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot; programs do not nest on a CPU.
        unsafe { *c += 1 };
    }
}

/// `CONFIG[0]`.
#[inline(always)]
pub fn prefilter() -> Option<&'static Prefilter> {
    CONFIG.get(0)
}

/// Watched roots of the file programs, by device and inode (the agent fills it: /boot, the trees
/// the file rules name, and the mounts under them). The value is the root's tree
/// (`FileHeader::tree`).
#[map]
pub static WATCHED_ROOTS: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(WATCHED_ROOT_ENTRIES, 0);

/// Watched trees by absolute path (entries with `len` 0 are unused), for syscalls that name a
/// file by one: the agent fills it with /boot and the bind mounts of it.
#[map]
pub static WATCHED_PREFIXES: Array<WatchedPrefix> =
    Array::with_max_entries(WATCHED_PREFIX_ENTRIES, 0);

/// Index 0: the bitmaps in front of `WATCHED_ROOTS` (`RootBits`): a directory whose bit is
/// clear is not a root, and the walk goes on without a hash-map lookup; a file system whose bit
/// is clear holds no root, and the walk crosses it.
#[map]
pub static ROOT_BITS: Array<RootBits> = Array::with_max_entries(1, 0);

/// A file record and the path walk's scratch space, one per possible CPU (too large for a
/// per-CPU map), indexed by CPU id. The loader sets max_entries.
#[map]
pub static FILE_SCRATCH: Array<FileScratch> = Array::with_max_entries(1, 0);

/// The path walk writes its output with a `2 * PATH_CAP` bound from the start of each path
/// buffer, and needs `2 * PATH_CAP + 8` bytes of scratch (see `path::resolve`): `walk` is that
/// scratch, and what follows each of the record's paths in the record covers the bound.
#[repr(C)]
pub struct FileScratch {
    pub record: FileRecord,
    /// The syscall's table entry, passed through map memory (see `file::handle`).
    pub call: [u32; 6],
    pub _pad: u32,
    /// Where a path hook assembles what it keeps for the syscall's exit.
    pub stash: PathStash,
    pub walk: [u8; 2 * PATH_CAP + 8],
}

/// A path-named operation in a watched tree as a path hook found it, kept for the thread until
/// its syscall's exit sends it (see `hook`): the fields of a file record's paths.
#[repr(C)]
pub struct PathStash {
    /// 1 when kept by the open hook (sent by an `io_uring_enter` exit only), 0 by a path hook.
    pub open: u32,
    pub tree: u32,
    /// `file_flags::PATH_TRUNCATED` and `OLD_PATH_TRUNCATED`.
    pub flags: u32,
    pub dir_len: u32,
    pub old_dir_len: u32,
    pub name_len: u32,
    pub old_name_len: u32,
    pub _pad: u32,
    pub dir: [u8; PATH_CAP],
    pub old_dir: [u8; PATH_CAP],
    pub name: [u8; NAME_CAP],
    pub old_name: [u8; NAME_CAP],
}

/// Index 0: 1 once the loader has attached the path hooks (see `hook`).
#[map]
pub static PATH_HOOKS: Array<u32> = Array::with_max_entries(1, 0);

/// A directory entry's name with its NUL (`NAME_MAX` is 255).
pub const NAME_CAP: usize = 256;

/// Each thread's `PathStash`, by `pid_tgid`, from its path hook to its syscall's exit. An LRU
/// map: an entry a failed or fd-named operation leaves behind (its exit does not take it) goes
/// in time, and cannot fill the map.
#[map]
pub static PATH_STASH: LruHashMap<u64, PathStash> = LruHashMap::with_max_entries(512, 0);

/// The last file event each process sent for each open file (by dentry), with its time: a
/// repeat moments later is the same act (see `file::repeat`).
#[map]
pub static FILE_RECENT: LruHashMap<RecentKey, u64> = LruHashMap::with_max_entries(4096, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RecentKey {
    pub tgid: u64,
    pub dentry: u64,
}

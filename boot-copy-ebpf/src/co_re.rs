//! Kernel structure accessors, implemented in `c/shim.c` with CO-RE relocations (field offsets
//! are fixed up by the loader for the running kernel). Pointers are opaque kernel addresses.
use core::ffi::c_void;

/// `struct task_struct *`.
pub type Task = *const c_void;
/// `struct linux_binprm *`.
pub type Binprm = *const c_void;
/// `struct path *`.
pub type KPath = *const c_void;
/// `struct pt_regs *`.
pub type Regs = *const c_void;
/// `struct file *`.
pub type KFile = *const c_void;
/// `struct dentry *`.
pub type Dentry = *const c_void;

/// The shim's `struct walk`: a walk up the directory tree from a file (see `file::watched`).
#[repr(C)]
pub struct Walk {
    pub dentry: Dentry,
    pub mnt: *const c_void,
    pub mnt_root: Dentry,
    /// `super_block.s_dev` of the current mount's file system.
    pub dev: u64,
    /// Inode number of `dentry`.
    pub ino: u64,
}

unsafe extern "C" {
    pub fn bc_task_pid(task: Task) -> u32;
    pub fn bc_task_tgid(task: Task) -> u32;
    pub fn bc_task_ppid(task: Task) -> u32;
    pub fn bc_task_start_boottime(task: Task) -> u64;
    /// Start time of the task's process (its thread-group leader).
    pub fn bc_task_leader_start(task: Task) -> u64;
    /// Start time of the task's parent process.
    pub fn bc_task_parent_start(task: Task) -> u64;
    /// `self_exec_id`: counts execs (see shim.c).
    pub fn bc_task_exec_id(task: Task) -> u64;
    pub fn bc_task_parent_exec_id(task: Task) -> u64;
    /// argc from the bottom of the initial stack (current task only), 0 when unknown.
    pub fn bc_task_argc(task: Task) -> u32;
    /// Non-zero when the task runs its real parent's exec image (forked, not exec'd since).
    pub fn bc_task_shares_parent_image(task: Task) -> i32;
    /// uid, euid, gid, egid.
    pub fn bc_task_creds(task: Task, out: *mut u32);
    pub fn bc_task_comm(task: Task, out: *mut u8);
    /// Start address of argv in user memory; `size` gets its byte length.
    pub fn bc_task_args(task: Task, size: *mut u64) -> u64;
    /// Start of the environment block; `*size` gets its length (0: none).
    pub fn bc_task_env(task: Task, size: *mut u64) -> u64;
    /// `&task->fs->pwd` or null.
    pub fn bc_task_pwd(task: Task) -> KPath;

    /// `&task->real_parent->mm->exe_file->f_path` or null.
    pub fn bc_task_parent_exe_path(task: Task) -> KPath;

    pub fn bc_bprm_filename(bprm: Binprm) -> *const u8;
    pub fn bc_bprm_interp(bprm: Binprm) -> *const u8;
    pub fn bc_bprm_argc(bprm: Binprm) -> u32;
    pub fn bc_bprm_file_size(bprm: Binprm) -> u64;
    /// `&bprm->file->f_path` or null.
    pub fn bc_bprm_file_path(bprm: Binprm) -> KPath;

    /// Fields the relocation BTF lacks (`boot_copy_common::kernel_fields` bits); a constant
    /// once the object is relocated.
    pub fn bc_missing_fields() -> u64;
    /// The optional part of `bc_missing_fields`: non-zero when records lack some values.
    pub fn bc_degraded() -> u32;

    /// Absolute path of `path` into `out`, built in `scratch` (see shim.c for the buffer rules).
    pub fn bc_path_resolve(path: KPath, scratch: *mut u8, out: *mut u8, truncated: *mut u32)
    -> u32;
    /// Zero-padded basename of `buf[..len]` into `key` (always fully written); -1 if empty or
    /// too long.
    pub fn bc_basename_key(buf: *const u8, len: u32, key: *mut u8) -> i32;
    /// Zero-padded name of the executable file (its dentry's name) into `key` (always fully
    /// written); -1 if empty or too long.
    pub fn bc_exe_name_key(bprm: Binprm, key: *mut u8) -> i32;
    /// Reads `min(len, SPILL_CHUNK)` bytes of user memory into a SPILL_CHUNK-byte map area;
    /// returns the bytes read or the helper's negative error.
    pub fn bc_read_user_chunk(dst: *mut u8, src: u64, len: u64) -> i32;
    /// The syscall number and argument `i` (0-3) of a sys_exit's `pt_regs`.
    pub fn bc_regs_nr(regs: Regs) -> u64;
    pub fn bc_regs_arg(regs: Regs, i: u32) -> u64;
    /// The current task's open file `fd`, or null.
    pub fn bc_cur_fd_file(task: Task, fd: u64) -> KFile;
    /// A user string into `out` (`cap` bytes, a constant); its length or -1.
    pub fn bc_read_user_path(out: *mut u8, src: u64, cap: u32) -> i32;
    /// Whether the string `s` (map memory, 64 bytes at least) starts with the directory
    /// `prefix[..len]`.
    pub fn bc_prefix_match(s: *const u8, prefix: *const u8, len: u32) -> i32;
    /// The open created the file (`FMODE_CREATED`).
    pub fn bc_file_open_created(file: KFile) -> i32;
    /// The open is for writing, and neither created nor truncates the file.
    pub fn bc_file_open_modifies(file: KFile) -> i32;
    /// `&file->f_path`.
    pub fn bc_file_path(file: KFile) -> KPath;
    pub fn bc_path_dentry(path: KPath) -> Dentry;
    /// `path->mnt` (a `struct vfsmount *`).
    pub fn bc_path_mnt(path: KPath) -> *const c_void;
    /// Starts a walk at `dentry` as seen through the mount `mnt`.
    pub fn bc_walk_start(mnt: *const c_void, dentry: Dentry, walk: *mut Walk);
    /// The dentry's name into `out` (`cap` bytes, a constant); its length, 0 if unreadable.
    pub fn bc_dentry_name(dentry: Dentry, out: *mut u8, cap: u32) -> u32;
    /// One step up (to the parent, or across a mount point); 0 when nothing is above.
    pub fn bc_walk_up(walk: *mut Walk) -> i32;
    /// Across the file system the walk is in, to its mount point; 0 when nothing is above.
    pub fn bc_walk_cross(walk: *mut Walk) -> i32;

    // The current task (`bpf_get_current_task`, untyped), read with BPF_CORE_READ.
    pub fn bc_cur_ppid(task: Task) -> u32;
    pub fn bc_cur_leader_start(task: Task) -> u64;
    pub fn bc_cur_parent_start(task: Task) -> u64;
    pub fn bc_cur_parent_exec_id(task: Task) -> u64;
    pub fn bc_cur_exec_id(task: Task) -> u64;
    /// Non-zero for an io_uring worker.
    pub fn bc_cur_io_worker(task: Task) -> i32;
    /// uid, euid, gid, egid.
    pub fn bc_cur_creds(task: Task, out: *mut u32);
    pub fn bc_cur_exe_path(task: Task) -> KPath;
    pub fn bc_cur_parent_exe_path(task: Task) -> KPath;
    pub fn bc_cur_pwd(task: Task) -> KPath;
    /// Start address of argv in user memory; `size` gets its byte length.
    pub fn bc_cur_args(task: Task, size: *mut u64) -> u64;

    /// The current task's process group, session, terminal, parent credentials, mount
    /// namespace and cgroup (typed or untyped task pointer).
    pub fn bc_task_session(task: Task, out: *mut boot_copy_common::Session);
    /// Non-zero when the task's process leads its process group or its session.
    pub fn bc_task_leads(task: Task) -> i32;

    /// Copies `min(len, cap)` bytes between map values (`cap` must be a constant); returns it.
    pub fn bc_copy_prefix(dst: *mut u8, src: *const u8, len: u32, cap: u32) -> u32;
}

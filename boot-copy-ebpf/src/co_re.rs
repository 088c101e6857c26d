//! Kernel structure accessors, implemented in `c/shim.c` with CO-RE relocations (field offsets
//! are fixed up by the loader for the running kernel). Pointers are opaque kernel addresses.
use core::ffi::c_void;

/// `struct task_struct *`.
pub type Task = *const c_void;
/// `struct linux_binprm *`.
pub type Binprm = *const c_void;
/// `struct path *`.
pub type KPath = *const c_void;

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
    /// Copies `min(len, cap)` bytes between map values (`cap` must be a constant); returns it.
    pub fn bc_copy_prefix(dst: *mut u8, src: *const u8, len: u32, cap: u32) -> u32;
}

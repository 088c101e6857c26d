// CO-RE accessors for the kernel structures boot-copy reads.
//
// Only the fields used are declared, with `preserve_access_index`, so clang records a BTF
// relocation for every access and the loader (aya) rewrites offsets for the running kernel.
// The eBPF crate's build.rs compiles this file to LLVM bitcode that bpf-linker links with the
// Rust code; Rust calls the `bc_*` functions through `extern "C"` (see src/co_re.rs).
//
// No kernel or libc headers: the few integer types libbpf's headers need are declared here.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define SHIM __attribute__((always_inline))

// barrier_var (bpf_helpers.h) hides a value's known range from the compiler, so that masks the
// verifier needs (it tracks ranges less well than clang) are not optimised away as redundant.

// Must match boot-copy-common.
#define PATH_CAP 4096
#define PATH_MASK (PATH_CAP - 1)
#define NAME_KEY_CAP 64
#define NAME_KEY_MASK (NAME_KEY_CAP - 1)
// Longest single path component (NAME_MAX); also the verifier bound of one component copy.
#define COMPONENT_MASK 255
// Path components (and mount crossings) walked at most.
#define PATH_MAX_DEPTH 64

// ---------------------------------------------------------------------------------------------
// Kernel structures (only the needed fields)

typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct qstr {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode;

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
} __attribute__((preserve_access_index));

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct inode {
	long long i_size;
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
	unsigned int f_mode;
	unsigned int f_flags;
} __attribute__((preserve_access_index));

struct fs_struct {
	struct path pwd;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long start_stack;
	unsigned long arg_start;
	unsigned long arg_end;
	unsigned long env_start;
	unsigned long env_end;
	struct file *exe_file;
} __attribute__((preserve_access_index));

struct group_info {
	int ngroups;
	kgid_t gid[1];
} __attribute__((preserve_access_index));

struct cred {
	struct group_info *group_info;
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kgid_t egid;
} __attribute__((preserve_access_index));

struct upid {
	int nr;
} __attribute__((preserve_access_index));

struct hlist_node {
	struct hlist_node *next;
} __attribute__((preserve_access_index));

struct hlist_head {
	struct hlist_node *first;
} __attribute__((preserve_access_index));

struct pid {
	struct hlist_head tasks[4];
	struct upid numbers[1];
} __attribute__((preserve_access_index));

struct tty_driver {
	int major;
	int minor_start;
} __attribute__((preserve_access_index));

struct tty_struct {
	struct tty_driver *driver;
	int index;
} __attribute__((preserve_access_index));

// pids[PIDTYPE_MAX] since 4.19.
struct signal_struct {
	struct pid *pids[4];
	struct tty_struct *tty;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct mnt_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct nsproxy {
	struct mnt_namespace *mnt_ns;
} __attribute__((preserve_access_index));

// A task's cgroups: one per controller (`subsys`, indexed by the kernel's cgroup_subsys_id,
// whose values depend on the controllers built in, hence relocated).
enum cgroup_subsys_id { memory_cgrp_id = 0 };

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup_subsys_state *subsys[1];
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	__u64 start_boottime;
	__u64 self_exec_id;
	struct cred *cred;
	struct fs_struct *fs;
	struct mm_struct *mm;
	struct signal_struct *signal;
	struct nsproxy *nsproxy;
	struct css_set *cgroups;
	struct hlist_node pid_links[4];
	char comm[16];
	unsigned int flags;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
	const char *filename;
	const char *interp;
	int argc;
} __attribute__((preserve_access_index));

// ---------------------------------------------------------------------------------------------
// task_struct and linux_binprm
//
// These take the BTF-typed pointers a tp_btf program receives (and pointers loaded from them),
// so fields are read with plain loads: the verifier knows the pointee types from the kernel's
// BTF and turns each load into a fault-tolerant one (a NULL or bad pointer reads as 0). That is
// much cheaper than a bpf_probe_read_kernel call per field. Pointers that are computed rather
// than loaded (struct mount, in the path walk) lose the type and use BPF_CORE_READ.

SHIM __u32 bc_task_pid(struct task_struct *task)
{
	return task->pid;
}

SHIM __u32 bc_task_tgid(struct task_struct *task)
{
	return task->tgid;
}

SHIM __u32 bc_task_ppid(struct task_struct *task)
{
	return task->real_parent->tgid;
}

// Reads of optional fields (boot_copy_common::kernel_fields::OPTIONAL) are guarded by
// bpf_core_field_exists: the condition is a constant once the loader has applied the CO-RE
// relocations, the verifier drops the dead branch, and a missing field gives an empty value
// instead of a program that cannot load. bc_missing_fields reports which ones are missing.

// 0 without the field (before 5.5 it was real_start_time).
SHIM __u64 bc_task_start_boottime(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->start_boottime))
		return 0;
	return task->start_boottime;
}

// The process's start time: its thread-group leader's, which process table entries keep (0
// without the field).
SHIM __u64 bc_task_leader_start(struct task_struct *task)
{
	return bc_task_start_boottime(task->group_leader);
}

// The parent process's start time (the real parent may be a thread of it).
SHIM __u64 bc_task_parent_start(struct task_struct *task)
{
	return bc_task_start_boottime(task->real_parent->group_leader);
}

// Counts the task's execs (inherited at fork, one more at each exec; threads share it, since
// an exec ends the others): with the start time, what makes a table entry current.
SHIM __u64 bc_task_exec_id(struct task_struct *task)
{
	return task->self_exec_id;
}

SHIM __u64 bc_task_parent_exec_id(struct task_struct *task)
{
	return task->real_parent->self_exec_id;
}

// uid, euid, gid, egid into out[0..4].
SHIM void bc_task_creds(struct task_struct *task, __u32 *out)
{
	struct cred *cred = task->cred;
	out[0] = cred->uid.val;
	out[1] = cred->euid.val;
	out[2] = cred->gid.val;
	out[3] = cred->egid.val;
}

// Copies the 16-byte comm into out (an empty string without the field).
SHIM void bc_task_comm(struct task_struct *task, char *out)
{
	if (!bpf_core_field_exists(task->comm)) {
		out[0] = 0;
		return;
	}
	bpf_core_read(out, 16, &task->comm);
}

// Start of argv in user memory; *size gets arg_end - arg_start (0 without an mm, or without
// the fields).
SHIM __u64 bc_task_args(struct task_struct *task, __u64 *size)
{
	*size = 0;
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, arg_start) ||
	    !bpf_core_field_exists(struct mm_struct, arg_end))
		return 0;
	struct mm_struct *mm = task->mm;
	if (!mm)
		return 0;
	__u64 start = mm->arg_start;
	__u64 end = mm->arg_end;
	if (end > start)
		*size = end - start;
	return start;
}

// Start of the environment block in user memory; *size gets env_end - env_start (0 without an
// mm, or without the fields).
SHIM __u64 bc_task_env(struct task_struct *task, __u64 *size)
{
	*size = 0;
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, env_start) ||
	    !bpf_core_field_exists(struct mm_struct, env_end))
		return 0;
	struct mm_struct *mm = task->mm;
	if (!mm)
		return 0;
	__u64 start = mm->env_start;
	__u64 end = mm->env_end;
	if (end > start)
		*size = end - start;
	return start;
}

// argc as the ELF loader left it at the bottom of the initial stack (mm->start_stack), 0 when
// unknown. User memory: only for the current task.
SHIM __u32 bc_task_argc(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, start_stack))
		return 0;
	struct mm_struct *mm = task->mm;
	if (!mm)
		return 0;
	__u64 argc = 0;
	if (bpf_probe_read_user(&argc, sizeof(argc), (const void *)mm->start_stack) < 0 ||
	    argc > 0xffffffff)
		return 0;
	return argc;
}

// Whether the task runs the same exec image as its real parent: a forked process that has not
// exec'd since. Each exec opens its own struct file for mm->exe_file, and a forked mm holds a
// reference to its parent's, so the pointers are equal exactly then.
SHIM int bc_task_shares_parent_image(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, exe_file))
		return 0;
	struct mm_struct *mm = task->mm;
	struct mm_struct *parent_mm = task->real_parent->mm;
	if (!mm || !parent_mm)
		return 0;
	struct file *exe = mm->exe_file;
	return exe && exe == parent_mm->exe_file;
}

// &task->fs->pwd, or NULL without an fs (kernel threads, exiting tasks) or the fields.
SHIM struct path *bc_task_pwd(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->fs) || !bpf_core_field_exists(struct fs_struct, pwd))
		return 0;
	struct fs_struct *fs = task->fs;
	if (!fs)
		return 0;
	return &fs->pwd;
}

// &task->real_parent->mm->exe_file->f_path: the parent's executable as it runs now, or NULL (a
// parent without an mm, a kernel thread; or without the fields).
SHIM struct path *bc_task_parent_exe_path(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, exe_file))
		return 0;
	struct mm_struct *mm = task->real_parent->mm;
	if (!mm)
		return 0;
	struct file *file = mm->exe_file;
	if (!file)
		return 0;
	return &file->f_path;
}

SHIM const char *bc_bprm_filename(struct linux_binprm *bprm)
{
	return bprm->filename;
}

// NULL without the field: scripts then look like their interpreter.
SHIM const char *bc_bprm_interp(struct linux_binprm *bprm)
{
	if (!bpf_core_field_exists(bprm->interp))
		return 0;
	return bprm->interp;
}

SHIM __u32 bc_bprm_argc(struct linux_binprm *bprm)
{
	return bprm->argc;
}

// Size in bytes of the file the kernel runs (0 if unknown): the second prefilter key, which
// catches renamed or copied cp/mv binaries whose name is not watched.
SHIM __u64 bc_bprm_file_size(struct linux_binprm *bprm)
{
	if (!bpf_core_field_exists(struct file, f_inode) || !bpf_core_field_exists(struct inode, i_size))
		return 0;
	struct file *file = bprm->file;
	if (!file)
		return 0;
	return file->f_inode->i_size;
}

// &bprm->file->f_path, or NULL.
SHIM struct path *bc_bprm_file_path(struct linux_binprm *bprm)
{
	struct file *file = bprm->file;
	if (!file)
		return 0;
	return &file->f_path;
}

// Bit BIT set when the field is missing from the BTF the object was relocated against.
#define MISSING(bit, type, field) (bpf_core_field_exists(struct type, field) ? 0 : 1ULL << (bit))

// The kernel fields the programs read that the relocation BTF lacks, bit numbers as in
// boot_copy_common::kernel_fields (optional fields in bits 0-31, required ones from 32).
SHIM __u64 bc_missing_fields(void)
{
	return MISSING(0, task_struct, start_boottime) | MISSING(1, task_struct, comm) |
	       MISSING(2, task_struct, mm) | MISSING(3, mm_struct, arg_start) |
	       MISSING(4, mm_struct, arg_end) | MISSING(5, task_struct, fs) | MISSING(6, fs_struct, pwd) |
	       MISSING(7, linux_binprm, interp) | MISSING(8, file, f_inode) | MISSING(9, inode, i_size) |
	       MISSING(12, mm_struct, exe_file) | MISSING(13, mm_struct, start_stack) |
	       MISSING(14, task_struct, signal) | MISSING(15, signal_struct, tty) |
	       MISSING(16, task_struct, nsproxy) | MISSING(17, cred, group_info) |
	       MISSING(32, task_struct, pid) | MISSING(33, task_struct, tgid) |
	       MISSING(34, task_struct, real_parent) | MISSING(35, task_struct, cred) |
	       MISSING(36, cred, uid) | MISSING(37, cred, euid) | MISSING(38, cred, gid) |
	       MISSING(39, cred, egid) | MISSING(40, linux_binprm, file) |
	       MISSING(41, linux_binprm, filename) | MISSING(42, linux_binprm, argc) |
	       MISSING(43, file, f_path) | MISSING(44, path, mnt) | MISSING(45, path, dentry) |
	       MISSING(46, dentry, d_parent) | MISSING(47, dentry, d_name) | MISSING(48, qstr, name) |
	       MISSING(49, qstr, len) | MISSING(50, vfsmount, mnt_root) | MISSING(51, mount, mnt) |
	       MISSING(52, mount, mnt_parent) | MISSING(53, mount, mnt_mountpoint) |
	       MISSING(54, task_struct, group_leader) | MISSING(55, task_struct, self_exec_id);
}

// The optional part of bc_missing_fields: non-zero when records lack some values.
SHIM __u32 bc_degraded(void)
{
	return (__u32)bc_missing_fields();
}

// Zeroes a NAME_KEY_CAP-byte, 8-byte-aligned key. Volatile stores: a memset would be linked as
// a call to compiler_builtins' byte loop.
static __always_inline void zero_key(char *key)
{
	volatile __u64 *k = (volatile __u64 *)key;
#pragma unroll
	for (int i = 0; i < NAME_KEY_CAP / 8; i++)
		k[i] = 0;
}

// ---------------------------------------------------------------------------------------------
// Path walk

static __always_inline struct mount *real_mount(struct vfsmount *mnt)
{
	return (struct mount *)((char *)mnt - bpf_core_field_offset(struct mount, mnt));
}

// A dentry's parent and name, read with one helper call where the running kernel has d_parent
// directly followed by d_name (every kernel so far); field by field otherwise. The condition is
// a constant once the loader has applied the CO-RE relocations, and the verifier drops the dead
// branch.
struct dentry_link {
	struct dentry *parent;
	__u64 hash_len; // little-endian qstr: hash in the low half, len in the high half
	const unsigned char *name;
};

static __always_inline void read_dentry_link(struct dentry *dentry, struct dentry_link *link)
{
	if (bpf_core_field_offset(struct dentry, d_name) ==
		    bpf_core_field_offset(struct dentry, d_parent) + 8 &&
	    bpf_core_field_offset(struct qstr, name) == 8 && bpf_core_field_size(struct qstr, hash_len) == 8) {
		bpf_probe_read_kernel(link, sizeof(*link), &dentry->d_parent);
	} else {
		link->parent = BPF_CORE_READ(dentry, d_parent);
		link->hash_len = (__u64)BPF_CORE_READ(dentry, d_name.len) << 32;
		link->name = BPF_CORE_READ(dentry, d_name.name);
	}
}

// A mount's parent and mount point, likewise (mnt_parent is followed by mnt_mountpoint).
struct mount_link {
	struct mount *parent;
	struct dentry *mountpoint;
};

static __always_inline void read_mount_link(struct mount *mnt, struct mount_link *link)
{
	if (bpf_core_field_offset(struct mount, mnt_mountpoint) ==
	    bpf_core_field_offset(struct mount, mnt_parent) + 8) {
		bpf_probe_read_kernel(link, sizeof(*link), &mnt->mnt_parent);
	} else {
		link->parent = BPF_CORE_READ(mnt, mnt_parent);
		link->mountpoint = BPF_CORE_READ(mnt, mnt_mountpoint);
	}
}

// Writes the absolute path of `path` into out (NUL-terminated, at most PATH_CAP bytes with the
// NUL), crossing mount points up to the root of the mount namespace.
//
// Components are written backwards into scratch[0..PATH_CAP) and then copied to out in one
// piece. Both buffers must be map-value memory: scratch with 2 * PATH_CAP + 8 bytes and out with
// 2 * PATH_CAP bytes from their start (the verifier checks masked offsets plus the largest size
// against the whole value).
// Returns the path length (without the NUL); *truncated is set to 1 when components were
// dropped (too deep or too long), in which case out holds the deepest part of the path.
//
// Cost: two helper calls per component (its parent and name, then the name's bytes) and one per
// mount crossed (including the final check for the namespace root).
//
// Verifier cost: the write position lives in map memory (scratch[2 * PATH_CAP]) and is reloaded
// and masked every iteration, so every path through an iteration (and every exit of the loop)
// leaves the same abstract state and the verifier prunes them; kept in a register, its range
// would differ per path and per exit, and the rest of the program would be verified once for
// each of them.
SHIM __u32 bc_path_resolve(struct path *path, char *scratch, char *out, __u32 *truncated)
{
	volatile __u32 *posp = (volatile __u32 *)(scratch + 2 * PATH_CAP);
	volatile __u32 *completep = posp + 1;
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *mnt = real_mount(vfsmnt);
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);

	*posp = PATH_CAP - 1;
	*completep = 0;
	scratch[PATH_CAP - 1] = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < PATH_MAX_DEPTH; i++) {
		if (dentry == mnt_root) {
			struct mount_link up;
			read_mount_link(mnt, &up);
			if (up.parent == mnt || !up.parent) {
				*completep = 1;
				break;
			}
			dentry = up.mountpoint;
			mnt = up.parent;
			vfsmnt = &up.parent->mnt;
			mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
			continue;
		}

		struct dentry_link link;
		read_dentry_link(dentry, &link);
		// A filesystem root that is not a mount root: detached or internal (pipe:, anon).
		if (link.parent == dentry || !link.parent) {
			*completep = 1;
			break;
		}

		__u32 len = link.hash_len >> 32;
		__u32 pos = *posp & PATH_MASK;
		if (len > COMPONENT_MASK || len + 1 > pos)
			break;
		pos -= len + 1;
		barrier_var(len);
		barrier_var(pos);
		bpf_probe_read_kernel(scratch + ((pos + 1) & PATH_MASK), len & COMPONENT_MASK, link.name);
		scratch[pos & PATH_MASK] = '/';
		*posp = pos;
		dentry = link.parent;
	}

	// The root of an internal filesystem that is not its mount's root is a file with no path
	// above it (a memfd, an anonymous file): name it by its dentry, as /proc/PID/exe does
	// (without the " (deleted)" suffix of d_path), rather than "/".
	if (*completep && *posp == PATH_CAP - 1 && dentry != mnt_root) {
		struct dentry_link self;
		read_dentry_link(dentry, &self);
		__u32 len = self.hash_len >> 32;
		if (len > 0 && len <= COMPONENT_MASK) {
			__u32 pos = PATH_CAP - 2 - len;
			barrier_var(len);
			barrier_var(pos);
			bpf_probe_read_kernel(scratch + ((pos + 1) & PATH_MASK), len & COMPONENT_MASK,
					      self.name);
			scratch[pos & PATH_MASK] = '/';
			*posp = pos;
		}
	}

	__u32 pos = *posp & PATH_MASK;
	if (pos == PATH_CAP - 1) {
		pos -= 1;
		scratch[pos & PATH_MASK] = '/';
		*posp = pos;
	}
	*truncated = *completep ? 0 : 1;
	pos = *posp & PATH_MASK;
	__u32 n = PATH_CAP - pos;
	barrier_var(n);
	bpf_probe_read_kernel(out, n & (2 * PATH_CAP - 1), scratch + pos);
	return (PATH_CAP - 1 - pos) & PATH_MASK;
}

// Copies min(len, cap) bytes from map-value memory to map-value memory, where cap is a constant
// after inlining (the verifier sees the clamp). Returns the bytes copied.
SHIM __u32 bc_copy_prefix(char *dst, const char *src, __u32 len, __u32 cap)
{
	if (len > cap)
		len = cap;
	barrier_var(len);
	if (len > cap)
		return 0;
	if (len)
		bpf_probe_read_kernel(dst, len, src);
	return len;
}

// Zero-padded name of the file the kernel runs (its dentry's name: the basename of its
// resolved path) into key[NAME_KEY_CAP], read before and without any path walk.
// Returns the name's length, or -1 when it is empty or does not fit a key.
SHIM int bc_exe_name_key(struct linux_binprm *bprm, char *key)
{
	zero_key(key);
	struct file *file = bprm->file;
	if (!file)
		return -1;
	struct dentry *dentry = file->f_path.dentry;
	if (!dentry)
		return -1;
	__u32 n = dentry->d_name.len;
	const unsigned char *name = dentry->d_name.name;
	if (n == 0 || n > NAME_KEY_CAP - 1)
		return -1;
	barrier_var(n);
	bpf_probe_read_kernel(key, n & NAME_KEY_MASK, name);
	return n;
}

// Zero-padded basename of the string buf[0..len) into key[NAME_KEY_CAP].
// Returns the basename length, or -1 when it is empty or does not fit a key.
// buf must be map-value memory with at least PATH_CAP + NAME_KEY_CAP bytes.
SHIM int bc_basename_key(const char *buf, __u32 len, char *key)
{
	zero_key(key);
	__u32 start = 0;
	int found = 0;

	len &= PATH_MASK;
#pragma clang loop unroll(disable)
	for (__u32 i = 1; i <= NAME_KEY_CAP; i++) {
		if (i > len) {
			found = 1;
			break;
		}
		if (buf[(len - i) & PATH_MASK] == '/') {
			start = len - i + 1;
			found = 1;
			break;
		}
	}
	if (!found)
		return -1;
	__u32 n = len - start;
	if (n == 0 || n > NAME_KEY_CAP - 1)
		return -1;
	barrier_var(n);
	barrier_var(start);
	bpf_probe_read_kernel(key, n & NAME_KEY_MASK, buf + (start & PATH_MASK));
	return n;
}

// Reads min(len, SPILL_CHUNK) bytes of user memory at src into dst (a SPILL_CHUNK-byte area at
// the end of a map value). Returns the bytes read, or the helper's negative error.
#define SPILL_CHUNK (64 * 1024)
SHIM int bc_read_user_chunk(char *dst, __u64 src, __u64 len)
{
	__u32 n = len > SPILL_CHUNK ? SPILL_CHUNK : (__u32)len;
	barrier_var(n);
	if (n == 0 || n > SPILL_CHUNK)
		return 0;
	long err = bpf_probe_read_user(dst, n, (const void *)src);
	if (err < 0)
		return (int)err;
	return (int)n;
}

// ---------------------------------------------------------------------------------------------
// File operations (file.rs)
//
// The file program runs at the sys_exit tracepoint (fentry, LSM programs and kprobes are not
// available on every kernel this runs on). The current task is not BTF-typed there
// (bpf_get_current_task_btf needs 5.11) and the walk crosses mounts through computed pointers,
// so everything but the typed pt_regs reads with BPF_CORE_READ.

struct pt_regs {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long r10;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct___files {
	struct files_struct *files;
} __attribute__((preserve_access_index));

// The syscall number and its first four arguments (x86_64 order).
SHIM __u64 bc_regs_nr(struct pt_regs *regs)
{
	return regs->orig_ax;
}

SHIM __u64 bc_regs_arg(struct pt_regs *regs, __u32 i)
{
	switch (i) {
	case 0:
		return regs->di;
	case 1:
		return regs->si;
	case 2:
		return regs->dx;
	default:
		return regs->r10;
	}
}

// The current task's open file `fd`, or NULL.
SHIM struct file *bc_cur_fd_file(struct task_struct *task, __u64 fd)
{
	struct task_struct___files *t = (void *)task;
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0;
	bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	return file;
}

// Reads the first `cap` bytes of a user string into out (NUL-terminated); returns its length
// without the NUL, or -1 when the read failed. cap must be a constant power of two.
SHIM int bc_read_user_path(char *out, __u64 src, __u32 cap)
{
	long n = bpf_probe_read_user_str(out, cap, (const void *)src);
	if (n <= 0) {
		out[0] = 0;
		return -1;
	}
	return (int)(n - 1);
}

#define PREFIX_CAP 64
#define PREFIX_WORDS (PREFIX_CAP / 8)

// The bits of little-endian word k (bytes 8k..8k+8) that lie within the first len bytes,
// computed without a branch (barrier_var keeps clang from turning the clamps into selects,
// which are branches in BPF).
static __always_inline __u64 prefix_mask(__u32 len, __u32 k)
{
	__s64 d = (__s64)len - 8 * (__s64)k;
	barrier_var(d);
	d &= ~(d >> 63); // max(d, 0)
	barrier_var(d);
	__s64 big = (7 - d) >> 63; // -1 when d > 7
	__u64 n = (__u64)((d & ~big) | (8 & big)); // min(d, 8)
	barrier_var(n);
	// For n = 8 the second shift overflows to 0, and the mask is all ones.
	return ((1ULL << (4 * n)) << (4 * n)) - 1;
}

// Whether the NUL-terminated string s starts with the len bytes of prefix, followed by a '/' or
// the string's end: the prefix names the directory or an ancestor of it. Both in map memory,
// 8-byte aligned, s with at least 64 bytes.
//
// Compared a word at a time, the words after the first without a branch: an early exit per
// byte gave the verifier of 5.10 more pending branches than it allows ("sequence of jumps is
// too complex"). The first word decides for most paths, with one branch.
SHIM int bc_prefix_match(const char *s, const char *prefix, __u32 len)
{
	if (len == 0 || len >= PREFIX_CAP)
		return 0;
	const __u64 *sw = (const __u64 *)s;
	const __u64 *pw = (const __u64 *)prefix;
	if ((sw[0] ^ pw[0]) & prefix_mask(len, 0))
		return 0;
	__u64 diff = 0;
#pragma clang loop unroll(disable)
	for (__u32 k = 1; k < PREFIX_WORDS; k++) {
		// The index masked where it is used (older verifiers do not bound a strength-reduced
		// pointer walk by the loop's condition).
		__u32 j = k;
		barrier_var(j);
		j &= PREFIX_WORDS - 1;
		diff |= (sw[j] ^ pw[j]) & prefix_mask(len, j);
	}
	if (diff)
		return 0;
	__u32 at = len;
	barrier_var(at);
	char next = s[at & (PREFIX_CAP - 1)];
	return next == '/' || next == 0;
}

#define FMODE_CREATED 0x100000

// Whether an open created the file (FMODE_CREATED).
SHIM int bc_file_open_created(struct file *file)
{
	return (BPF_CORE_READ(file, f_mode) & FMODE_CREATED) != 0;
}

#define FMODE_WRITE 0x2
#define O_TRUNC 01000

// Whether an open that passed security_file_open modifies what is there: for writing, neither
// created (security_path_mknod saw that) nor truncated (security_path_truncate will).
SHIM int bc_file_open_modifies(struct file *file)
{
	__u32 mode = BPF_CORE_READ(file, f_mode);
	__u32 flags = BPF_CORE_READ(file, f_flags);
	return (mode & FMODE_WRITE) && !(mode & FMODE_CREATED) && !(flags & O_TRUNC);
}

SHIM struct path *bc_file_path(struct file *file)
{
	return &file->f_path;
}

SHIM struct dentry *bc_path_dentry(struct path *path)
{
	return BPF_CORE_READ(path, dentry);
}

// Where the walk up from a file stands: the dentry, its mount, that mount's root, and the
// device of that mount's file system (a dentry's inode number is unique within it).
struct walk {
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *mnt_root;
	__u64 dev;
	__u64 ino;
};

static __always_inline void walk_mount(struct walk *w, struct mount *mnt)
{
	struct vfsmount *vfsmnt = &mnt->mnt;
	w->mnt = mnt;
	w->mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	w->dev = BPF_CORE_READ(vfsmnt, mnt_sb, s_dev);
}

// (BPF_CORE_READ records a relocation for every access in its first argument, so fields of
// struct walk, which is not a kernel type, are loaded into locals first.)
static __always_inline void walk_inode(struct walk *w)
{
	struct dentry *dentry = w->dentry;
	w->ino = BPF_CORE_READ(dentry, d_inode, i_ino);
}

SHIM struct vfsmount *bc_path_mnt(struct path *path)
{
	return BPF_CORE_READ(path, mnt);
}

// Starts a walk at a dentry seen through the mount mnt; w->dev and w->ino name it (ino 0 for a
// negative dentry: the name an operation is about to create).
SHIM void bc_walk_start(struct vfsmount *mnt, struct dentry *dentry, struct walk *w)
{
	w->dentry = dentry;
	walk_mount(w, real_mount(mnt));
	walk_inode(w);
}

// The dentry's name into out (cap bytes, a constant power of two; NUL-terminated): its length
// without the NUL, or 0 when unreadable.
SHIM __u32 bc_dentry_name(struct dentry *dentry, char *out, __u32 cap)
{
	const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
	long n = bpf_probe_read_kernel_str(out, cap, name);
	if (n <= 0) {
		out[0] = 0;
		return 0;
	}
	return (__u32)(n - 1);
}

// One step up: to the parent directory, or across a mount point to the directory it is
// mounted on (which names the same place). Returns 0 at the root of the mount namespace (or
// of a detached tree): nothing is above.
SHIM int bc_walk_up(struct walk *w)
{
	if (w->dentry == w->mnt_root) {
		struct mount_link up;
		read_mount_link(w->mnt, &up);
		if (up.parent == w->mnt || !up.parent)
			return 0;
		w->dentry = up.mountpoint;
		walk_mount(w, up.parent);
	} else {
		struct dentry *dentry = w->dentry;
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		if (!parent || parent == dentry)
			return 0;
		w->dentry = parent;
	}
	walk_inode(w);
	return 1;
}

// Across the file system the walk is in, to the directory its mount is mounted on. Returns 0
// at the root of the mount namespace (or of a detached tree).
SHIM int bc_walk_cross(struct walk *w)
{
	struct mount_link up;
	read_mount_link(w->mnt, &up);
	if (up.parent == w->mnt || !up.parent)
		return 0;
	w->dentry = up.mountpoint;
	walk_mount(w, up.parent);
	walk_inode(w);
	return 1;
}

// The current task (untyped: bpf_get_current_task), read with BPF_CORE_READ.
SHIM __u32 bc_cur_ppid(struct task_struct *task)
{
	return BPF_CORE_READ(task, real_parent, tgid);
}

SHIM __u64 bc_cur_leader_start(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->start_boottime))
		return 0;
	return BPF_CORE_READ(task, group_leader, start_boottime);
}

SHIM __u64 bc_cur_parent_start(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->start_boottime))
		return 0;
	return BPF_CORE_READ(task, real_parent, group_leader, start_boottime);
}

SHIM __u64 bc_cur_parent_exec_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, real_parent, self_exec_id);
}

SHIM __u64 bc_cur_exec_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, self_exec_id);
}

#define PF_IO_WORKER 0x00000010

// Whether the current task is an io_uring worker (a thread of the process that queued the
// operation; a kernel thread working for it before 5.12).
SHIM int bc_cur_io_worker(struct task_struct *task)
{
	return (BPF_CORE_READ(task, flags) & PF_IO_WORKER) != 0;
}

// uid, euid, gid, egid into out[0..4].
SHIM void bc_cur_creds(struct task_struct *task, __u32 *out)
{
	struct cred *cred = BPF_CORE_READ(task, cred);
	out[0] = BPF_CORE_READ(cred, uid.val);
	out[1] = BPF_CORE_READ(cred, euid.val);
	out[2] = BPF_CORE_READ(cred, gid.val);
	out[3] = BPF_CORE_READ(cred, egid.val);
}

// &mm->exe_file->f_path of the task (self), or of its real parent; NULL without one.
static __always_inline struct path *mm_exe_path(struct mm_struct *mm)
{
	if (!bpf_core_field_exists(mm->exe_file) || !mm)
		return 0;
	struct file *file = BPF_CORE_READ(mm, exe_file);
	if (!file)
		return 0;
	return &file->f_path;
}

SHIM struct path *bc_cur_exe_path(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->mm))
		return 0;
	return mm_exe_path(BPF_CORE_READ(task, mm));
}

SHIM struct path *bc_cur_parent_exe_path(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->mm))
		return 0;
	return mm_exe_path(BPF_CORE_READ(task, real_parent, mm));
}

SHIM struct path *bc_cur_pwd(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->fs) || !bpf_core_field_exists(struct fs_struct, pwd))
		return 0;
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	if (!fs)
		return 0;
	return &fs->pwd;
}

// Start of argv in user memory; *size gets its byte length (0 without an mm).
SHIM __u64 bc_cur_args(struct task_struct *task, __u64 *size)
{
	*size = 0;
	if (!bpf_core_field_exists(task->mm) || !bpf_core_field_exists(struct mm_struct, arg_start) ||
	    !bpf_core_field_exists(struct mm_struct, arg_end))
		return 0;
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	if (!mm)
		return 0;
	__u64 start = BPF_CORE_READ(mm, arg_start);
	__u64 end = BPF_CORE_READ(mm, arg_end);
	if (end > start)
		*size = end - start;
	return start;
}

// ---------------------------------------------------------------------------------------------
// Sessions, namespaces and cgroups (boot_copy_common::Session), for records that are sent and
// for table entries of leaders. Read with BPF_CORE_READ: the exec and the file programs share
// them, and the latter has an untyped task pointer.

#define PIDTYPE_PGID 2
#define PIDTYPE_SID 3

// Must match boot_copy_common::Session.
struct session {
	__u32 pgid;
	__u32 sid;
	__u32 tty_major;
	__u32 tty_minor;
	__u32 parent_euid;
	__u32 parent_egid;
	__u32 mnt_ns;
	__u32 ngroups;
	__u64 cgroup_id;
	__u64 memory_cgroup_id;
	__u64 group_leader_start;
	__u64 group_leader_exec_id;
	__u64 session_leader_start;
	__u64 session_leader_exec_id;
	__u32 parent_tty_major;
	__u32 parent_tty_minor;
	__u32 groups[16];
};

// numbers[0] is the pid in the initial namespace: a host pid, as everywhere in the records.
static __always_inline __u32 signal_pid(struct signal_struct *signal, int type)
{
	struct pid *pid = BPF_CORE_READ(signal, pids[type]);
	return pid ? BPF_CORE_READ(pid, numbers[0].nr) : 0;
}

#define PIDTYPE_PID 0

// The start time and exec count of the live process whose pid leads the signal struct's group
// or session (`type`); 0, 0 when it has exited. What tells the agent that the leader it
// described before is still the same image.
static __always_inline void signal_leader(struct signal_struct *signal, int type, __u64 *start,
					  __u64 *exec_id)
{
	*start = 0;
	*exec_id = 0;
	struct pid *pid = BPF_CORE_READ(signal, pids[type]);
	if (!pid)
		return;
	struct hlist_node *first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return;
	struct task_struct *leader =
		(void *)first - bpf_core_field_offset(struct task_struct, pid_links);
	if (bpf_core_field_exists(leader->start_boottime))
		*start = BPF_CORE_READ(leader, start_boottime);
	*exec_id = BPF_CORE_READ(leader, self_exec_id);
}

// A task's controlling terminal's device numbers into major/minor (0, 0: none).
static __always_inline void task_tty(struct task_struct *task, __u32 *major, __u32 *minor)
{
	*major = 0;
	*minor = 0;
	if (!bpf_core_field_exists(task->signal) || !bpf_core_field_exists(struct signal_struct, tty))
		return;
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
	if (!tty)
		return;
	// As the kernel numbers a tty's device (tty_devnum).
	*major = BPF_CORE_READ(tty, driver, major);
	*minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
}

// Id of the task's cgroup in the memory controller's hierarchy (its directory's inode number):
// on a cgroup v1 host, where a runtime's cgroupfs driver places containers; 0 if the kernel
// has no memory controller.
static __always_inline __u64 memory_cgroup_id(struct task_struct *task)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	__u64 idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = 0;
	if (!cset || idx >= 64)
		return 0;
	void *slot = (void *)__builtin_preserve_access_index(&cset->subsys) + idx * sizeof(css);
	if (bpf_probe_read_kernel(&css, sizeof(css), slot) || !css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

// The current task's session (task is the current task, typed or not).
SHIM void bc_task_session(struct task_struct *task, struct session *out)
{
	out->pgid = 0;
	out->sid = 0;
	out->group_leader_start = 0;
	out->group_leader_exec_id = 0;
	out->session_leader_start = 0;
	out->session_leader_exec_id = 0;
	if (bpf_core_field_exists(task->signal)) {
		struct signal_struct *signal = BPF_CORE_READ(task, signal);
		out->pgid = signal_pid(signal, PIDTYPE_PGID);
		out->sid = signal_pid(signal, PIDTYPE_SID);
		signal_leader(signal, PIDTYPE_PGID, &out->group_leader_start,
			      &out->group_leader_exec_id);
		signal_leader(signal, PIDTYPE_SID, &out->session_leader_start,
			      &out->session_leader_exec_id);
	}
	task_tty(task, &out->tty_major, &out->tty_minor);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	task_tty(parent, &out->parent_tty_major, &out->parent_tty_minor);
	struct cred *cred = BPF_CORE_READ(parent, cred);
	out->parent_euid = BPF_CORE_READ(cred, euid.val);
	out->parent_egid = BPF_CORE_READ(cred, egid.val);
	out->mnt_ns = 0;
	if (bpf_core_field_exists(task->nsproxy))
		out->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	out->ngroups = 0;
	if (bpf_core_field_exists(struct cred, group_info)) {
		struct group_info *groups = BPF_CORE_READ(task, cred, group_info);
		if (groups) {
			out->ngroups = BPF_CORE_READ(groups, ngroups);
			// The first 16 at once; only ngroups of them are read by the agent.
			bpf_probe_read_kernel(out->groups, sizeof(out->groups),
					      __builtin_preserve_access_index(&groups->gid));
		}
	}
	out->cgroup_id = bpf_get_current_cgroup_id();
	out->memory_cgroup_id = memory_cgroup_id(task);
}

// Whether the task's process leads its process group or its session.
SHIM int bc_task_leads(struct task_struct *task)
{
	if (!bpf_core_field_exists(task->signal))
		return 0;
	struct signal_struct *signal = BPF_CORE_READ(task, signal);
	__u32 tgid = BPF_CORE_READ(task, tgid);
	return tgid == signal_pid(signal, PIDTYPE_PGID) || tgid == signal_pid(signal, PIDTYPE_SID);
}

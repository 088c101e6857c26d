//! `sched_process_exec`: one exec record per exec (submitted when watched or when all execs are
//! requested) and the process's new image in `PROC_TABLE`.
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{
        BPF_ANY, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    },
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str, bpf_probe_read_user,
    },
    programs::BtfTracePointContext,
};
use boot_copy_common::{
    ARGS_CAP_OTHER, ARGS_CAP_WATCHED, ARGS_OFFSET, ExecRecord, IMAGE_ARGS_CAP, INTERP_CAP,
    NAME_KEY_CAP, PATH_CAP, ProcImage, RECORD_EXEC, config_flags, counter, exec_flags, image_flags,
};

use crate::{
    co_re::{self, Binprm, Task},
    image,
    maps::{self, EVENTS, IMAGE_SCRATCH, PROC_TABLE, SCRATCH, WATCHED, WATCHED_SIZES, count},
    path,
};

/// Mask that bounds argument lengths for the verifier (`ARGS_CAP_WATCHED` is a power of two).
const ARGS_MASK: u32 = ARGS_CAP_WATCHED as u32 - 1;

pub fn handle(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let task: Task = ctx.arg(0);
    let bprm: Binprm = ctx.arg(2);
    count(counter::EXECS_SEEN);
    // SAFETY: plain helper call; the CPU cannot change while a tracepoint program runs.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let rec = SCRATCH.get_ptr_mut(cpu).ok_or(0u32)?;
    let img = IMAGE_SCRATCH.get_ptr_mut(0).ok_or(0u32)?;
    // SAFETY: `rec` and `img` are this CPU's map slots; task and bprm come from the tracepoint.
    unsafe { record(task, bprm, rec, img) };
    Ok(0)
}

/// Reads a kernel string into `dst` (capacity `cap`); returns (length without NUL, truncated).
#[inline(always)]
unsafe fn read_str(dst: *mut u8, cap: usize, src: *const u8) -> (u32, bool) {
    // SAFETY: dst has `cap` bytes; the helper faults safely on a bad src.
    let n = unsafe { bpf_probe_read_kernel_str(dst.cast(), cap as u32, src.cast()) };
    if n <= 0 {
        // SAFETY: dst has at least one byte.
        unsafe { *dst = 0 };
        return (0, false);
    }
    ((n - 1) as u32, n as usize >= cap)
}

unsafe fn record(task: Task, bprm: Binprm, rec: *mut ExecRecord, img: *mut ProcImage) {
    // SAFETY (whole function): `rec` and `img` point into map values of their full types, only
    // this program on this CPU uses them, and kernel pointers are only read through helpers.
    unsafe {
        let h = &raw mut (*rec).header;
        let mut flags = 0u32;

        (*h).kind = RECORD_EXEC;
        (*h).ktime_boot_ns = bpf_ktime_get_boot_ns();
        let start_boottime = co_re::bc_task_start_boottime(task);
        (*h).start_boottime_ns = start_boottime;
        (*h).pid = co_re::bc_task_pid(task);
        let tgid = co_re::bc_task_tgid(task);
        (*h).tgid = tgid;
        let ppid = co_re::bc_task_ppid(task);
        (*h).ppid = ppid;
        let mut creds = [0u32; 4];
        co_re::bc_task_creds(task, creds.as_mut_ptr());
        (*h).uid = creds[0];
        (*h).euid = creds[1];
        (*h).gid = creds[2];
        (*h).egid = creds[3];
        co_re::bc_task_comm(task, (&raw mut (*h).comm).cast());
        let argc = co_re::bc_bprm_argc(bprm);
        (*h).args_count = argc;

        // The path as passed to execve, and the interpreter when it differs (a `#!` script).
        let filename_ptr = co_re::bc_bprm_filename(bprm);
        let filename = (&raw mut (*rec).filename).cast::<u8>();
        let (filename_len, truncated) = read_str(filename, PATH_CAP, filename_ptr);
        if truncated {
            flags |= exec_flags::FILENAME_TRUNCATED;
        }
        (*h).filename_len = filename_len;

        let interp_ptr = co_re::bc_bprm_interp(bprm);
        let interp = (&raw mut (*rec).interp).cast::<u8>();
        let script = !interp_ptr.is_null() && interp_ptr != filename_ptr;
        let mut interp_len = 0;
        if script {
            flags |= exec_flags::SCRIPT;
            interp_len = read_str(interp, INTERP_CAP, interp_ptr).0;
        } else {
            *interp = 0;
        }
        (*h).interp_len = interp_len;

        // Resolved paths of the executable file and the working directory. The argument area
        // is free until argv is read below: it serves as the path walk's scratch space.
        let scratch = (&raw mut (*rec).args).cast::<u8>();
        let file_path = co_re::bc_bprm_file_path(bprm);
        let exe = (&raw mut (*rec).exe).cast::<u8>();
        let (exe_len, exe_truncated) = path::resolve(file_path, scratch, exe);
        if exe_truncated {
            flags |= exec_flags::EXE_TRUNCATED;
        }
        (*h).exe_len = exe_len;

        let pwd = co_re::bc_task_pwd(task);
        let cwd = (&raw mut (*rec).cwd).cast::<u8>();
        if pwd.is_null() {
            flags |= exec_flags::CWD_MISSING;
        }
        let (cwd_len, cwd_truncated) = path::resolve(pwd, scratch, cwd);
        if cwd_truncated {
            flags |= exec_flags::CWD_TRUNCATED;
        }
        (*h).cwd_len = cwd_len;

        // Prefilter: the basename of the resolved executable (of the filename, for a script).
        // (Zeroed by the shim: a Rust zero-initialisation becomes a call to a byte-loop memset.)
        // 8-byte aligned, so that the zeroing is eight stores.
        let mut key = MaybeUninit::<[u64; NAME_KEY_CAP / 8]>::uninit();
        let (name_src, name_len) = if script {
            (filename, filename_len)
        } else {
            (exe, exe_len)
        };
        let key_len = co_re::bc_basename_key(name_src, name_len, key.as_mut_ptr().cast());
        // SAFETY: the shim functions write all NAME_KEY_CAP bytes when they return >= 0.
        let key: &[u8; NAME_KEY_CAP] = &*key.as_ptr().cast();
        let watched = (key_len > 0 && WATCHED.get_ptr(key).is_some())
            || WATCHED_SIZES
                .get_ptr(&co_re::bc_bprm_file_size(bprm))
                .is_some();
        if watched {
            flags |= exec_flags::WATCHED;
        }
        let all = maps::config_flags() & config_flags::ALL_EXECS != 0;
        let submit = watched || all;

        // argv: one bounded read of user memory.
        let mut args_size = 0u64;
        let args_start = co_re::bc_task_args(task, &mut args_size);
        let cap = if watched {
            ARGS_CAP_WATCHED - 1
        } else if all {
            ARGS_CAP_OTHER
        } else {
            IMAGE_ARGS_CAP
        } as u64;
        let want = (if args_size < cap { args_size } else { cap }) as u32 & ARGS_MASK;
        let mut args_len = 0u32;
        if want > 0 {
            let src = args_start as usize as *const c_void;
            if bpf_probe_read_user(scratch.cast(), want, src) < 0 {
                flags |= exec_flags::ARGS_READ_FAILED;
                count(counter::ARGS_READ_FAILURES);
            } else {
                args_len = want;
            }
        }
        if (args_len as u64) < args_size && flags & exec_flags::ARGS_READ_FAILED == 0 {
            flags |= exec_flags::ARGS_TRUNCATED;
            if submit {
                count(counter::ARGS_TRUNCATED);
            }
        }
        (*h).args_size = if args_size > u32::MAX as u64 {
            u32::MAX
        } else {
            args_size as u32
        };
        (*h).args_len = args_len;
        if submit && flags & (exec_flags::EXE_TRUNCATED | exec_flags::CWD_TRUNCATED) != 0 {
            count(counter::PATH_TRUNCATIONS);
        }
        if submit && co_re::bc_degraded() != 0 {
            count(counter::DEGRADED_RECORDS);
        }

        // Parent context from the process table (copied only into records that are sent).
        match PROC_TABLE.get_ptr(ppid) {
            Some(parent) => {
                if submit {
                    bpf_probe_read_kernel(
                        (&raw mut (*rec).parent).cast(),
                        size_of::<ProcImage>() as u32,
                        parent.cast(),
                    );
                }
                flags |= exec_flags::PARENT_FOUND;
            }
            None => count(counter::PARENT_MISSES),
        }
        (*h).flags = flags;

        // This process's new image.
        (*img).start_boottime_ns = start_boottime;
        (*img).tgid = tgid;
        (*img).args_count = argc;
        let mut img_flags = 0u32;
        let (exe_src, exe_src_len) = if script {
            img_flags |= image_flags::EXE_IS_FILENAME;
            (filename.cast_const(), filename_len)
        } else {
            (exe.cast_const(), exe_len)
        };
        let src_truncated = if script {
            flags & exec_flags::FILENAME_TRUNCATED != 0
        } else {
            exe_truncated
        };
        img_flags |= image::set_exe(img, exe_src, exe_src_len, src_truncated);
        img_flags |= image::set_args(img, scratch, args_len, args_size);
        if pwd.is_null() {
            *(&raw mut (*img).cwd).cast::<u8>() = 0;
            (*img).cwd_len = 0;
        } else {
            img_flags |= image::set_cwd(img, cwd, cwd_len, cwd_truncated);
        }
        (*img).flags = img_flags;
        // By reference: a by-value image would be copied to the 512-byte stack.
        let image: &ProcImage = &*img;
        if PROC_TABLE.insert(tgid, image, BPF_ANY as u64).is_err() {
            count(counter::TABLE_UPDATE_FAILURES);
        }

        if submit {
            submit_record(rec, args_len, watched);
        }
    }
}

/// Sends `ARGS_OFFSET + args_len` bytes of the record.
#[inline(always)]
unsafe fn submit_record(rec: *const ExecRecord, args_len: u32, watched: bool) {
    let len = ARGS_OFFSET + (args_len & ARGS_MASK) as usize;
    let wakeup = if watched {
        BPF_RB_FORCE_WAKEUP
    } else if EVENTS.query(BPF_RB_AVAIL_DATA as u64) > EVENTS.query(BPF_RB_RING_SIZE as u64) / 4 {
        // Unwatched records are batched; wake the reader once a quarter of the ring is used.
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    } as u64;
    // SAFETY: the record is a map value of size_of::<ExecRecord>() >= len bytes.
    let data = unsafe { core::slice::from_raw_parts(rec.cast::<u8>(), len) };
    match EVENTS.output::<[u8]>(data, wakeup) {
        Ok(()) => count(counter::EVENTS_SUBMITTED),
        Err(_) => count(counter::RINGBUF_DROPS),
    }
}

//! `sched_process_exec`: one exec record per exec (submitted when watched or when all execs are
//! requested), and a script's `PROC_TABLE` entry (see `ProcImage`).
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{
        BPF_ANY, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        BPF_RB_RING_SIZE,
    },
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str, bpf_probe_read_user,
    },
    programs::BtfTracePointContext,
};
use boot_copy_common::{
    ARGS_CAP_OTHER, ARGS_CAP_WATCHED, ARGS_OFFSET, ExecHeader, ExecRecord, INTERP_CAP,
    NAME_KEY_CAP, NameWords, PATH_CAP, Prefilter, ProcImage, RECORD_EXEC, SPILL_CHUNK,
    SPILL_CHUNKS_MAX, SpillKey, config_flags, counter, exec_flags, image_flags,
};

use crate::{
    co_re::{self, Binprm, KPath, Task},
    diag, image,
    maps::{
        self, ARGV_SPILL, EVENTS, IMAGE_SCRATCH, PROC_TABLE, SCRATCH, WATCHED, WATCHED_SIZES, count,
    },
    path, table,
};

/// Mask that bounds argument lengths for the verifier (`ARGS_CAP_WATCHED` is a power of two).
const ARGS_MASK: u32 = ARGS_CAP_WATCHED as u32 - 1;

pub fn handle(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let task: Task = ctx.arg(0);
    let bprm: Binprm = ctx.arg(2);
    count(counter::EXECS_SEEN);
    let prefilter = maps::prefilter().ok_or_else(|| diag::lookup_failed("CONFIG"))?;
    // What the prefilter decides first; a script's name is known only from its path (read
    // into the record).
    // SAFETY: bprm comes from the tracepoint and is read through helpers.
    let found = unsafe {
        if is_script(bprm) {
            exec_flags::SCRIPT
        } else if exe_name_watched(prefilter, bprm) {
            exec_flags::WATCHED
        } else if wanted(prefilter, false) {
            0
        } else {
            return Ok(0); // the common case: nothing to send, no table entry to make
        }
    };
    // SAFETY: plain helper call; the CPU cannot change while a tracepoint program runs.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let rec = SCRATCH
        .get_ptr_mut(cpu)
        .ok_or_else(|| diag::lookup_failed("SCRATCH"))?;
    // SAFETY: `rec` is this CPU's map slot; task and bprm come from the tracepoint.
    unsafe { record(task, bprm, prefilter, found, rec) };
    Ok(0)
}

/// `bprm->interp` differs from `bprm->filename`: a `#!` script (or binfmt_misc).
#[inline(always)]
unsafe fn is_script(bprm: Binprm) -> bool {
    // SAFETY: reads through helpers.
    let (filename, interp) =
        unsafe { (co_re::bc_bprm_filename(bprm), co_re::bc_bprm_interp(bprm)) };
    !interp.is_null() && interp != filename
}

/// Whether a record is sent: the exec is watched, or every exec is wanted.
#[inline(always)]
fn wanted(prefilter: &Prefilter, watched: bool) -> bool {
    watched || prefilter.flags & config_flags::ALL_EXECS != 0
}

/// The prefilter of a binary: the executable file's name, or its size.
#[inline(always)]
unsafe fn exe_name_watched(prefilter: &Prefilter, bprm: Binprm) -> bool {
    // 8-byte aligned, so that the shim's zeroing is eight stores. (A Rust zero-initialisation
    // becomes a call to a byte-loop memset.)
    let mut key = MaybeUninit::<NameWords>::uninit();
    // SAFETY: the shim writes all NAME_KEY_CAP bytes of the key.
    unsafe {
        let key_len = co_re::bc_exe_name_key(bprm, key.as_mut_ptr().cast());
        name_or_size_watched(prefilter, key_len, &*key.as_ptr(), bprm)
    }
}

/// The bitmaps first: most execs are decided without a hash-map lookup.
#[inline(always)]
unsafe fn name_or_size_watched(
    prefilter: &Prefilter,
    key_len: i32,
    words: &NameWords,
    bprm: Binprm,
) -> bool {
    // SAFETY: the same memory as bytes.
    let key: &[u8; NAME_KEY_CAP] = unsafe { &*(words as *const NameWords).cast() };
    if key_len > 0 && prefilter.may_watch_name(words) && WATCHED.get_ptr(key).is_some() {
        return true;
    }
    // SAFETY: bprm is read through helpers.
    let size = unsafe { co_re::bc_bprm_file_size(bprm) };
    prefilter.may_watch_size(size) && WATCHED_SIZES.get_ptr(&size).is_some()
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

/// Builds the record and the process's table entry.
///
/// The common case is an exec that is neither watched nor wanted (no record is sent) and not a
/// script: it pays for the prefilter only, decided from the executable file's name with no path
/// walk. The entry its children's parent context needs is made at its first
/// fork (`fork.rs`). Only a script's exec makes one, because only the exec knows the script's
/// path as passed (and, when that is relative, the working directory). A child's record
/// resolves its parent's executable from the live parent (`real_parent->mm->exe_file`) at the
/// child's exec, so that walk is paid by the few execs that are sent. The working directory is
/// walked for records sent.
///
/// Verifier cost: each path walk is a 64-iteration loop the verifier follows in full for every
/// distinct state it is reached with. So what decides between the cases (sent or not, script or
/// not, parent found or not) is kept in the record's header, in map memory, and read back after
/// each branch (`reload`): every case then reaches a walk in the same abstract state and the
/// verifier explores each walk once.
///
/// `found`: `SCRIPT`, or else `WATCHED` as the prefilter found it.
unsafe fn record(
    task: Task,
    bprm: Binprm,
    prefilter: &Prefilter,
    found: u32,
    rec: *mut ExecRecord,
) {
    // SAFETY (whole function): `rec` points into a map value of its full type, only this program
    // on this CPU uses it, and kernel pointers are only read through helpers.
    unsafe {
        let h = &raw mut (*rec).header;
        let mut flags = found;

        // What the image needs; the rest of the header is read only for a record that is sent.
        (*h).start_boottime_ns = co_re::bc_task_start_boottime(task);
        (*h).tgid = co_re::bc_task_tgid(task);
        (*h).args_count = co_re::bc_bprm_argc(bprm);

        // The path as passed to execve, and the interpreter when it differs (a `#!` script).
        let filename_ptr = co_re::bc_bprm_filename(bprm);
        let script = found & exec_flags::SCRIPT != 0;
        let filename = (&raw mut (*rec).filename).cast::<u8>();
        let mut filename_len = 0;
        if script {
            filename_len = read_filename(filename, filename_ptr, &mut flags);
        }

        // Prefilter: the executable's name (for a script, the basename of its path as passed).
        let watched = if script {
            let mut key = MaybeUninit::<NameWords>::uninit();
            let key_len = co_re::bc_basename_key(filename, filename_len, key.as_mut_ptr().cast());
            // SAFETY: the shim writes all NAME_KEY_CAP bytes.
            name_or_size_watched(prefilter, key_len, &*key.as_ptr(), bprm)
        } else {
            found & exec_flags::WATCHED != 0
        };
        if watched {
            flags |= exec_flags::WATCHED;
        }
        let submit = wanted(prefilter, watched);
        // `kind` marks a record to send until it is sent.
        (*h).kind = if submit { RECORD_EXEC } else { 0 };
        (*h).filename_len = filename_len;

        // The working directory, for a record sent and for a script run by a relative path
        // (whose image needs it to resolve that path).
        let relative_script = script && (filename_len == 0 || *filename != b'/');
        let pwd = if submit || relative_script {
            co_re::bc_task_pwd(task)
        } else {
            core::ptr::null()
        };
        if pwd.is_null() {
            flags |= exec_flags::CWD_MISSING;
        }
        (*h).flags = flags;
        resolve_into(
            h,
            pwd,
            rec,
            (&raw mut (*rec).cwd).cast(),
            exec_flags::CWD_TRUNCATED,
        );
        (*h).cwd_len = reload(&raw const (*h).exe_len);

        if reload(&raw const (*h).kind) == RECORD_EXEC {
            send(
                task,
                bprm,
                rec,
                prefilter.flags & config_flags::CAPTURE_ENV != 0,
            );
        }
        if reload(&raw const (*h).flags) & exec_flags::SCRIPT != 0 {
            write_image(task, rec);
        }
    }
}

/// Reads a header field back from map memory: the verifier then knows nothing of its value, so
/// the states of the branches that wrote it merge.
#[inline(always)]
unsafe fn reload(field: *const u32) -> u32 {
    // SAFETY: a header field of this CPU's record.
    unsafe { core::ptr::read_volatile(field) }
}

/// Resolves `path` into `out` (a PATH_CAP buffer of the record) with the argument area as
/// scratch; the length goes to the header's `exe_len` (the caller moves it where it belongs)
/// and a truncation sets `truncated_flag` in the header's flags.
#[inline(always)]
unsafe fn resolve_into(
    h: *mut ExecHeader,
    path: KPath,
    rec: *mut ExecRecord,
    out: *mut u8,
    truncated_flag: u32,
) {
    // SAFETY: out and the argument area are record buffers of the sizes path::resolve needs.
    unsafe {
        let scratch = (&raw mut (*rec).args).cast::<u8>();
        let (len, truncated) = path::resolve(path, scratch, out);
        (*h).exe_len = len;
        if truncated {
            (*h).flags = reload(&raw const (*h).flags) | truncated_flag;
        }
    }
}

/// Completes and submits the record of a watched or wanted exec (header flags, filename of a
/// script and working directory are in already).
#[inline(always)]
unsafe fn send(task: Task, bprm: Binprm, rec: *mut ExecRecord, capture_env: bool) {
    // SAFETY (whole function): as in `record`.
    unsafe {
        let h = &raw mut (*rec).header;
        (*h).ktime_boot_ns = bpf_ktime_get_boot_ns();
        (*h).pid = co_re::bc_task_pid(task);
        (*h).ppid = co_re::bc_task_ppid(task);
        let mut creds = [0u32; 4];
        co_re::bc_task_creds(task, creds.as_mut_ptr());
        (*h).uid = creds[0];
        (*h).euid = creds[1];
        (*h).gid = creds[2];
        (*h).egid = creds[3];
        co_re::bc_task_comm(task, (&raw mut (*h).comm).cast());
        co_re::bc_task_session(task, &raw mut (*h).session);

        let mut flags = reload(&raw const (*h).flags);
        let interp = (&raw mut (*rec).interp).cast::<u8>();
        if flags & exec_flags::SCRIPT == 0 {
            let filename = (&raw mut (*rec).filename).cast::<u8>();
            (*h).filename_len = read_filename(filename, co_re::bc_bprm_filename(bprm), &mut flags);
            *interp = 0;
            (*h).interp_len = 0;
        } else {
            (*h).interp_len = read_str(interp, INTERP_CAP, co_re::bc_bprm_interp(bprm)).0;
        }
        (*h).flags = flags;

        // The parent's image, with its executable resolved from the live parent (unless the
        // image is a script's path as passed). `exe` serves as that walk's output.
        let exe = (&raw mut (*rec).exe).cast::<u8>();
        let parent = &raw mut (*rec).parent;
        let mut parent_exe = core::ptr::null();
        let found = PROC_TABLE
            .get_ptr(reload(&raw const (*h).ppid))
            .filter(|&image| {
                let start = co_re::bc_task_parent_start(task);
                table::describes(image, start, co_re::bc_task_parent_exec_id(task))
            });
        match found {
            Some(image) => {
                bpf_probe_read_kernel(parent.cast(), size_of::<ProcImage>() as u32, image.cast());
                (*h).flags = reload(&raw const (*h).flags) | exec_flags::PARENT_FOUND;
                if (*parent).flags & image_flags::EXE_IS_FILENAME == 0 {
                    parent_exe = co_re::bc_task_parent_exe_path(task);
                }
            }
            None => count(counter::PARENT_MISSES),
        }
        if !parent_exe.is_null() {
            resolve_into(h, parent_exe, rec, exe, 0);
            let len = reload(&raw const (*h).exe_len);
            let cut = image::set_exe(parent, exe, len, false);
            let kept = reload(&raw const (*parent).flags) & !image_flags::EXE_TRUNCATED;
            (*parent).flags = kept | cut;
        }

        resolve_into(
            h,
            co_re::bc_bprm_file_path(bprm),
            rec,
            exe,
            exec_flags::EXE_TRUNCATED,
        );

        // argv (and the environment that follows it, when captured): one bounded read of user
        // memory into the record, and for a watched exec whose block is longer, the rest into
        // ARGV_SPILL.
        let mut flags = reload(&raw const (*h).flags);
        let watched = flags & exec_flags::WATCHED != 0;
        let mut args_size = 0u64;
        let args_start = co_re::bc_task_args(task, &mut args_size);
        let env_size = env_after_args(capture_env, task, args_start + args_size);
        if let Some(env_size) = env_size {
            flags |= exec_flags::ENV_CAPTURED;
            (*h).env_size = if env_size > u32::MAX as u64 {
                u32::MAX
            } else {
                env_size as u32
            };
        } else {
            (*h).env_size = 0;
        }
        let block_size = args_size + env_size.unwrap_or(0);
        // An environment captured has the whole record, so padding it does not push a variable
        // out of an unwatched exec's record.
        let cap = if watched || env_size.is_some() {
            ARGS_CAP_WATCHED - 1
        } else {
            ARGS_CAP_OTHER
        } as u64;
        let want = (if block_size < cap { block_size } else { cap }) as u32 & ARGS_MASK;
        let mut args_len = 0u32;
        (*h).args_error = 0;
        if want > 0 {
            let src = args_start as usize as *const c_void;
            let scratch = (&raw mut (*rec).args).cast::<u8>();
            let err = bpf_probe_read_user(scratch.cast(), want, src);
            if err < 0 {
                flags |= exec_flags::ARGS_READ_FAILED;
                (*h).args_error = err as i32;
                count(counter::ARGS_READ_FAILURES);
            } else {
                args_len = want;
            }
        }
        (*h).args_len = args_len;
        (*h).spill_len = 0;
        if watched && args_len > 0 && (args_len as u64) < block_size {
            flags |= spill(
                rec,
                args_start + args_len as u64,
                block_size - args_len as u64,
            );
        }
        let captured = args_len as u64 + reload(&raw const (*h).spill_len) as u64;
        if captured < args_size {
            if flags & exec_flags::ARGS_READ_FAILED == 0 {
                flags |= exec_flags::ARGS_TRUNCATED;
                count(counter::ARGS_TRUNCATED);
            }
            if watched {
                count(counter::ARGS_INCOMPLETE);
            }
        }
        (*h).args_size = if args_size > u32::MAX as u64 {
            u32::MAX
        } else {
            args_size as u32
        };
        if flags & (exec_flags::EXE_TRUNCATED | exec_flags::CWD_TRUNCATED) != 0 {
            count(counter::PATH_TRUNCATIONS);
        }
        if co_re::bc_degraded() != 0 {
            count(counter::DEGRADED_RECORDS);
        }
        (*h).flags = flags;
        if !submit_record(rec, args_len, watched) {
            unspill(h);
        }
        // Reported once, from map memory: the states of the argv reads merge before it.
        let error = reload((&raw const (*h).args_error).cast());
        if error != 0 {
            let captured = reload(&raw const (*h).args_len) + reload(&raw const (*h).spill_len);
            diag::args_incomplete(error as i32, captured);
        }
    }
}

/// The environment's size when it is captured and its block starts where argv ends (as
/// exec leaves them; `prctl(PR_SET_MM)` can move either later).
#[inline(always)]
unsafe fn env_after_args(capture: bool, task: Task, args_end: u64) -> Option<u64> {
    if !capture {
        return None;
    }
    let mut size = 0u64;
    // SAFETY: the shim reads the task's mm fields with CO-RE and checks for a missing mm.
    let start = unsafe { co_re::bc_task_env(task, &mut size) };
    (start == args_end && start != 0).then_some(size)
}

/// Puts `len` bytes of argv from user address `src` into `ARGV_SPILL`, chunk by chunk, through the
/// record's staging area; sets the header's `spill_len` to the bytes stored and returns the flags
/// to add. Stops at the first chunk that cannot be read or stored: what follows is missing.
#[inline(always)]
unsafe fn spill(rec: *mut ExecRecord, src: u64, len: u64) -> u32 {
    // SAFETY (whole function): as in `record`; the staging area is SPILL_CHUNK bytes of the
    // record.
    unsafe {
        let h = &raw mut (*rec).header;
        let staging = (&raw mut (*rec).spill).cast::<u8>();
        let mut key = SpillKey {
            ktime_boot_ns: (*h).ktime_boot_ns,
            tgid: (*h).tgid,
            index: 0,
        };
        let mut done = 0u64;
        let mut flags = exec_flags::SPILLED;
        // The counter stays in a register, so that the verifier sees the loop's bound.
        let mut i = 0u32;
        while i < SPILL_CHUNKS_MAX && done < len {
            key.index = i;
            let n = co_re::bc_read_user_chunk(staging, src + done, len - done);
            if n < 0 {
                flags |= exec_flags::ARGS_READ_FAILED;
                (*h).args_error = n;
                count(counter::ARGS_READ_FAILURES);
                break;
            }
            let chunk = &*staging.cast::<[u8; SPILL_CHUNK]>();
            if let Err(e) = ARGV_SPILL.insert(&key, chunk, BPF_NOEXIST as u64) {
                flags |= exec_flags::SPILL_FULL;
                (*h).args_error = e as i32;
                count(counter::SPILL_FULL);
                break;
            }
            done += n as u64;
            i += 1;
        }
        if i > 0 {
            count(counter::ARGS_SPILLED);
        } else {
            flags &= !exec_flags::SPILLED;
        }
        (*h).spill_len = done as u32;
        flags
    }
}

/// Deletes the spilled chunks of a record that could not be sent (the agent will never ask for
/// them).
#[inline(always)]
unsafe fn unspill(h: *const ExecHeader) {
    // SAFETY: a header of this CPU's record.
    unsafe {
        let chunks = ((*h).spill_len as usize).div_ceil(SPILL_CHUNK) as u32;
        let mut key = SpillKey {
            ktime_boot_ns: (*h).ktime_boot_ns,
            tgid: (*h).tgid,
            index: 0,
        };
        let mut i = 0u32;
        while i < SPILL_CHUNKS_MAX && i < chunks {
            key.index = i;
            let _ = ARGV_SPILL.remove(&key);
            i += 1;
        }
    }
}

/// A script's image, from the record's header and buffers, written in place when the process
/// has an entry (it forked before this exec), else into an entry made from the scratch image.
#[inline(always)]
unsafe fn write_image(task: Task, rec: *mut ExecRecord) {
    // SAFETY (whole function): as in `record`; img is a PROC_TABLE value.
    unsafe {
        let Some(img_scratch) = IMAGE_SCRATCH.get_ptr_mut(0) else {
            diag::lookup_failed("IMAGE_SCRATCH");
            return;
        };
        let h = &raw const (*rec).header;
        let tgid = (*h).tgid;
        let img = match PROC_TABLE.get_ptr_mut(tgid) {
            Some(img) => img,
            None => {
                let image: &ProcImage = &*img_scratch; // by reference: not via the stack
                let made = PROC_TABLE.insert(tgid, image, BPF_ANY as u64);
                match PROC_TABLE.get_ptr_mut(tgid) {
                    Some(img) if made.is_ok() => img,
                    _ => {
                        count(counter::TABLE_UPDATE_FAILURES);
                        diag::table_update_failed(made.err().unwrap_or(0) as i32);
                        return;
                    }
                }
            }
        };
        (*img).start_boottime_ns = (*h).start_boottime_ns;
        (*img).exec_id = co_re::bc_task_exec_id(task);
        (*img).tgid = tgid;
        (*img).args_count = (*h).args_count;
        (*img).euid = (*h).euid;
        (*img).egid = (*h).egid;
        let flags = (*h).flags;
        // Defend's process.executable of a script is its path as passed.
        let mut img_flags = image_flags::EXE_IS_FILENAME;
        let filename = (&raw const (*rec).filename).cast::<u8>();
        let truncated = flags & exec_flags::FILENAME_TRUNCATED != 0;
        img_flags |= image::set_exe(img, filename, (*h).filename_len, truncated);
        if flags & exec_flags::CWD_MISSING != 0 {
            *(&raw mut (*img).cwd).cast::<u8>() = 0;
            (*img).cwd_len = 0;
        } else {
            let cwd = (&raw const (*rec).cwd).cast::<u8>();
            let truncated = flags & exec_flags::CWD_TRUNCATED != 0;
            img_flags |= image::set_cwd(img, cwd, (*h).cwd_len, truncated);
        }
        img_flags |= if (*h).kind == RECORD_EXEC {
            // The image takes a prefix of the record's arguments.
            let args = (&raw const (*rec).args).cast::<u8>();
            let len = reload(&raw const (*h).args_len);
            let size = (*h).args_size;
            image::set_args(img, args, if len < size { len } else { size }, size as u64)
        } else {
            image::read_args(img, task)
        };
        (*img).flags = img_flags;
    }
}

/// Reads `bprm->filename` into the record; returns its length and flags a truncation.
#[inline(always)]
unsafe fn read_filename(filename: *mut u8, src: *const u8, flags: &mut u32) -> u32 {
    // SAFETY: filename is the record's PATH_CAP-byte field.
    let (len, truncated) = unsafe { read_str(filename, PATH_CAP, src) };
    if truncated {
        *flags |= exec_flags::FILENAME_TRUNCATED;
    }
    len
}

/// Sends `ARGS_OFFSET + args_len` bytes of the record; false if the ring had no room.
#[inline(always)]
unsafe fn submit_record(rec: *const ExecRecord, args_len: u32, watched: bool) -> bool {
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
        Ok(()) => {
            count(counter::EVENTS_SUBMITTED);
            true
        }
        Err(_) => {
            count(counter::RINGBUF_DROPS);
            false
        }
    }
}

//! `sched_process_fork`: a process that forks gets its table entry, the parent context its
//! children's execs will need, unless it has a current one already.
//!
//! The tracepoint runs in the forking process, so its arguments are read from its own memory.
use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::generated::{bpf_get_smp_processor_id, bpf_probe_read_kernel},
    programs::BtfTracePointContext,
};
use boot_copy_common::{ProcImage, counter, image_flags};

use crate::{
    co_re::{self, Task},
    diag, image,
    maps::{FORKERS, FORKERS_LEN, Forker, IMAGE_SCRATCH, PROC_TABLE, SCRATCH, count},
    path, table,
};

pub fn handle(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let parent: Task = ctx.arg(0);
    let child: Task = ctx.arg(1);
    // SAFETY: task pointers from the tracepoint, read through helpers.
    let (child_pid, child_tgid) =
        unsafe { (co_re::bc_task_pid(child), co_re::bc_task_tgid(child)) };
    if child_pid != child_tgid {
        return Ok(0); // a thread, not a process
    }
    count(counter::FORKS);
    // SAFETY: as above.
    let (tgid, start, exec_id) = unsafe {
        (
            co_re::bc_task_tgid(parent),
            co_re::bc_task_leader_start(parent),
            co_re::bc_task_exec_id(parent),
        )
    };
    let me = Forker {
        tgid,
        start_boottime_ns: start,
        exec_id,
    };
    let slot = FORKERS
        .get_ptr_mut(tgid % FORKERS_LEN)
        .ok_or_else(|| diag::lookup_failed("FORKERS"))?;
    // SAFETY: a FORKERS value; see Forker for concurrent writers.
    if unsafe { *slot == me } {
        return Ok(0); // the common case: a process forking again
    }
    if let Some(img) = PROC_TABLE.get_ptr(tgid) {
        // SAFETY: a PROC_TABLE value.
        if unsafe { table::is_current(img, start, exec_id) } {
            // SAFETY: as above.
            unsafe { *slot = me };
            return Ok(0);
        }
    }
    let img = IMAGE_SCRATCH
        .get_ptr_mut(0)
        .ok_or_else(|| diag::lookup_failed("IMAGE_SCRATCH"))?;
    // SAFETY: img is this CPU's scratch image; parent is the current task.
    unsafe {
        if !inherit(parent, img) {
            describe(parent, img);
            if co_re::bc_task_leads(parent) != 0 {
                leader_exe(parent, img)?;
            }
        }
        (*img).start_boottime_ns = start;
        (*img).exec_id = exec_id;
        (*img).tgid = tgid;
        let image: &ProcImage = &*img; // by reference: not through the 512-byte stack
        match PROC_TABLE.insert(tgid, image, BPF_ANY as u64) {
            Ok(()) => *slot = me,
            Err(e) => {
                count(counter::TABLE_UPDATE_FAILURES);
                diag::table_update_failed(e as i32);
            }
        }
    }
    Ok(0)
}

/// A process that has not exec'd since its own fork (a subshell) is described as its parent
/// is, script path included: copies the parent's entry into `img` if there is one for it (the
/// copy is the kernel's, current for this process, even of a seeded entry).
#[inline(always)]
unsafe fn inherit(task: Task, img: *mut ProcImage) -> bool {
    // SAFETY: task is the current task; img is the scratch image.
    unsafe {
        if co_re::bc_task_shares_parent_image(task) == 0 {
            return false;
        }
        let Some(src) = PROC_TABLE.get_ptr(co_re::bc_task_ppid(task)) else {
            return false;
        };
        let parent_start = co_re::bc_task_parent_start(task);
        if !table::describes(src, parent_start, co_re::bc_task_parent_exec_id(task)) {
            return false;
        }
        bpf_probe_read_kernel(img.cast(), size_of::<ProcImage>() as u32, src.cast());
        (*img).flags = ((*img).flags & !image_flags::FROM_PROC) | image_flags::FORKED;
        true
    }
}

/// Describes the current process from its own memory: its arguments (the executable is
/// resolved from the live process when a child's record is sent).
#[inline(always)]
unsafe fn describe(task: Task, img: *mut ProcImage) {
    // SAFETY: task is the current task; img is the scratch image.
    unsafe {
        *(&raw mut (*img).exe).cast::<u8>() = 0;
        (*img).exe_len = 0;
        *(&raw mut (*img).cwd).cast::<u8>() = 0;
        (*img).cwd_len = 0;
        (*img).args_count = co_re::bc_task_argc(task);
        (*img).flags = image::read_args(img, task);
        let mut creds = [0u32; 4];
        co_re::bc_task_creds(task, creds.as_mut_ptr());
        (*img).euid = creds[1];
        (*img).egid = creds[3];
    }
}

/// A process group's or session's leader may exit before its members exec (a pipeline's first
/// command, a shell that started a background job): its entry keeps its executable, resolved
/// now through this CPU's exec record buffers (a fork and an exec do not run on one CPU at
/// once), so that the members' records can describe it. Leaders are few; other entries leave
/// the walk to the children's records.
#[inline(always)]
unsafe fn leader_exe(task: Task, img: *mut ProcImage) -> Result<(), u32> {
    // SAFETY: plain helper call; the CPU cannot change while a tracepoint program runs.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let rec = SCRATCH
        .get_ptr_mut(cpu)
        .ok_or_else(|| diag::lookup_failed("SCRATCH"))?;
    // SAFETY: rec is this CPU's record; its exe and args buffers are PATH_CAP bytes or more.
    unsafe {
        let out = (&raw mut (*rec).exe).cast::<u8>();
        let scratch = (&raw mut (*rec).args).cast::<u8>();
        let (len, truncated) = path::resolve(co_re::bc_cur_exe_path(task), scratch, out);
        let flags = image::set_exe(img, out, len, truncated);
        (*img).flags |= flags | image_flags::LEADER_EXE;
    }
    Ok(())
}

//! `sched_process_fork`: a new process inherits its parent's process-table image.
use aya_ebpf::{
    bindings::BPF_ANY, helpers::generated::bpf_probe_read_kernel, programs::BtfTracePointContext,
};
use boot_copy_common::{ProcImage, counter, image_flags};

use crate::{
    co_re::{self, Task},
    maps::{IMAGE_SCRATCH, PROC_TABLE, count},
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
    let parent_tgid = unsafe { co_re::bc_task_tgid(parent) };
    let Some(src) = PROC_TABLE.get_ptr(parent_tgid) else {
        return Ok(0);
    };
    let img = IMAGE_SCRATCH.get_ptr_mut(0).ok_or(0u32)?;
    // SAFETY: src and img are map values of ProcImage; img is this CPU's slot.
    unsafe {
        bpf_probe_read_kernel(img.cast(), size_of::<ProcImage>() as u32, src.cast());
        (*img).start_boottime_ns = co_re::bc_task_start_boottime(child);
        (*img).tgid = child_tgid;
        (*img).flags |= image_flags::FORKED;
        let image: &ProcImage = &*img; // by reference: not through the 512-byte stack
        if PROC_TABLE
            .insert(child_tgid, image, BPF_ANY as u64)
            .is_err()
        {
            count(counter::TABLE_UPDATE_FAILURES);
        }
    }
    Ok(0)
}

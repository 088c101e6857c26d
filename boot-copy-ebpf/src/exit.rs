//! `sched_process_exit`: drop a process's table entry once its whole thread group is gone.
use aya_ebpf::programs::BtfTracePointContext;
use boot_copy_common::counter;

use crate::{
    co_re::{self, Task},
    maps::{PROC_TABLE, count},
};

pub fn handle(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let task: Task = ctx.arg(0);
    // SAFETY: task pointer from the tracepoint, read through helpers.
    let (live, pid, tgid) = unsafe {
        (
            co_re::bc_task_live(task),
            co_re::bc_task_pid(task),
            co_re::bc_task_tgid(task),
        )
    };
    // `signal->live` is decremented before this tracepoint fires: 0 means the group is dead.
    // Without it, fall back to the leader's exit.
    let group_dead = if live >= 0 { live == 0 } else { pid == tgid };
    if !group_dead {
        return Ok(0);
    }
    let _ = PROC_TABLE.remove(tgid);
    count(counter::EXITS);
    Ok(0)
}

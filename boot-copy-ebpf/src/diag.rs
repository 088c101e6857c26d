//! The kernel programs' rare failures, reported through aya-log into the agent's `tracing`
//! output (each is counted too, where it happens). None of these runs on the path of an ordinary
//! exec or fork: they are the branches of a failed helper call.
use aya_log_ebpf::{error, warn};
use boot_copy_common::counter;

use crate::maps::count;

/// A map lookup that cannot fail did (a per-CPU scratch slot, the configuration): the program
/// gave up on this exec or fork.
#[inline(always)]
pub fn lookup_failed(map: &'static str) -> u32 {
    count(counter::MAP_LOOKUP_FAILURES);
    error!(
        &(),
        "boot-copy: lookup in {} failed; event not handled", map
    );
    0
}

/// A watched exec's argv could not be read whole: a read faulted, or the spill map was full
/// (`error` is the helper's); `captured` bytes reached the record and the spill map.
#[inline(always)]
pub fn args_incomplete(error: i32, captured: u32) {
    warn!(
        &(),
        "boot-copy: argv incomplete after {} bytes (error {}: a faulted read, or the spill map full)",
        captured,
        error
    );
}

/// A process-table insert failed.
#[inline(always)]
pub fn table_update_failed(err: i32) {
    warn!(
        &(),
        "boot-copy: process table update failed (error {})", err
    );
}

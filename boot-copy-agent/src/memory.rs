//! The agent's heap: megabyte records (a watched exec's argv, its alert twice that) are handed
//! back to the kernel once freed, so the resident set returns to its steady state.

/// Allocations of 128 KiB and more are mapped on their own and unmapped when freed, instead of
/// glibc's default, which raises that threshold after each such free and then keeps the memory
/// in the heap. One arena for every thread: a sink thread that parsed a megabyte record to trim
/// it otherwise keeps that memory in an arena of its own, whose top `malloc_trim` does not hand
/// back (the agent's threads allocate little, so they hardly contend for it). Called before any
/// thread is started.
pub fn return_large_allocations() {
    // SAFETY: mallopt only sets the allocator's parameters; a fixed threshold also fixes the trim
    // threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the heap's free pages back: after start (the kernel's BTF parsed, /proc seeded), after
/// a record with a spilled argv (thousands of small allocations, its arguments and their text),
/// and once a second, for what the sinks freed after formatting and trimming such a record's
/// alert.
pub fn release_freed() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

//! Subcommands of `boot-copy-agent`.
pub mod events;
pub mod offline;
pub mod run;

use crate::{context::procfs, decode::image_to_raw, sensor::Sensor};

/// Seeds the kernel's process table with processes that ran before the agent. Entries the kernel
/// wrote meanwhile (an exec or fork since attach) are kept.
pub fn seed_process_table(sensor: &mut Sensor) -> usize {
    let mut seeded = 0;
    for pid in procfs::pids().unwrap_or_default() {
        // Kernel threads have no executable, and processes may exit meanwhile: skip those.
        let Ok(image) = procfs::image(pid) else {
            continue;
        };
        match sensor.seed(pid, &image_to_raw(&image)) {
            Ok(true) => seeded += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(pid, error = %e, "seeding the process table"),
        }
    }
    seeded
}

//! The end-to-end tests, one binary (build once, link once): each module holds the tests of one
//! area. Most load the programs into the running kernel and need root; run them one at a time
//! (`-- --test-threads=1`): every agent on the host sees every exec. The kernel matrix runs the
//! same binary in its guests (`cargo xtask vm-test`).
mod argv;
mod boot_tools;
mod cgroups;
mod container;
mod daemon;
mod events;
mod file_events;
mod file_rules;
mod hostile;
mod integrity;
mod library;
mod overflow;
mod process_tree;
mod receiver_faults;
mod sensor;
mod sessions;
mod shipping;
mod sinks;
mod strict;
mod support;

/// The agent binary cargo built for these tests.
const AGENT: &str = env!("CARGO_BIN_EXE_boot-copy-agent");

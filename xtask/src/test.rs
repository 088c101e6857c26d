//! `cargo xtask test`: the whole suite — the workspace's tests (unit, rule engine, sinks, and the
//! end-to-end tests that load the real programs into the running kernel, so this needs root),
//! a brief fuzzing run, the kernel matrix under QEMU, and the packaged service under a real
//! systemd. Every stage runs; the last line counts stages passed and failed.
use crate::{cargo, fuzz, service, setup, vm};

/// The scenario set (every events, alert-verdict and strict-evasion scenario, one agent per
/// suite) on every kernel of the matrix, the host's included (natively), in one table.
fn kernel_matrix() -> anyhow::Result<()> {
    vm::run(&[])
}

type Stage = (&'static str, fn() -> anyhow::Result<()>);

pub fn run() -> anyhow::Result<()> {
    setup::require_root("the test suite")?;
    let stages: [Stage; 4] = [
        // Kernel tests share the host's exec stream; one test at a time keeps timing honest.
        ("cargo test", || {
            cargo(&[
                "test",
                "--workspace",
                "--no-fail-fast",
                "--",
                "--test-threads=1",
            ])
        }),
        ("fuzz (brief)", fuzz::brief),
        ("kernel matrix", kernel_matrix),
        ("service under systemd", service::run),
    ];
    let mut failed = Vec::new();
    for (name, stage) in stages {
        eprintln!("==> {name}");
        if let Err(e) = stage() {
            eprintln!("==> {name} FAILED: {e:#}");
            failed.push(name);
        }
    }
    let passed = stages.len() - failed.len();
    println!("stages: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        anyhow::bail!("failed stages: {}", failed.join(", "));
    }
    Ok(())
}

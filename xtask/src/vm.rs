//! `cargo xtask vm-test [KERNEL...]`: the kernel matrix. Boots Debian's own kernels under QEMU
//! (TCG: KVM does not work for nested guests on these machines) with an initramfs holding
//! busybox, real coreutils and the statically linked agent and `events` test binary, and runs
//! `tests/vm/scenarios.sh` in each guest; `host` runs the same script natively on this kernel.
//!
//! KERNEL is `5.10` (Debian bullseye), `6.1`, `6.12` (bookworm), `host`, or a path to a bzImage;
//! none means all four. Kernel packages are cached in `/var/cache/boot-copy-vm` (override with
//! `BOOT_COPY_VM_CACHE`); `BOOT_COPY_VM_TIMEOUT` (seconds, default 600) bounds each kernel.
mod binaries;
mod cpio;
mod initramfs;
mod kernels;
mod qemu;
mod report;

use anyhow::{Context as _, bail};
use kernels::Target;
use report::Report;
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The kernels run when none are named.
pub const DEFAULT_KERNELS: [&str; 4] = ["5.10", "6.1", "6.12", "host"];

/// Runs the scenario set on each kernel (all of [`DEFAULT_KERNELS`] when `kernels` is empty) and
/// fails unless every scenario passed on every kernel.
pub fn run(kernels: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    let names: Vec<String> = if kernels.is_empty() {
        DEFAULT_KERNELS.iter().map(|k| k.to_string()).collect()
    } else {
        kernels.to_vec()
    };
    let targets = names
        .iter()
        .map(|n| Target::parse(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if targets.iter().any(|t| matches!(t, Target::Host)) {
        crate::setup::require_root("vm-test on the host kernel")?;
    }

    let step = Instant::now();
    let cache = kernels::cache_dir()?;
    let mut prepared = Vec::new();
    for target in targets {
        prepared.push(target.prepare(&cache)?);
    }
    eprintln!(
        "vm-test: kernels ready in {:.1?} (cache {})",
        step.elapsed(),
        cache.display()
    );

    let step = Instant::now();
    let bins = binaries::build_static()?;
    eprintln!("vm-test: static binaries built in {:.1?}", step.elapsed());

    let work = crate::workspace_root().join("target/vm-test");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let needs_initrd = prepared.iter().any(|k| k.image.is_some());
    let initrd = if needs_initrd {
        let step = Instant::now();
        let initrd = initramfs::build(&bins, &work)?;
        eprintln!(
            "vm-test: initramfs {} built in {:.1?}",
            initrd.display(),
            step.elapsed()
        );
        Some(initrd)
    } else {
        None
    };

    let timeout = kernel_timeout()?;
    let mut reports = Vec::new();
    for kernel in &prepared {
        reports.push(run_one(kernel, &bins, initrd.as_deref(), &work, timeout)?);
    }
    report::print_matrix(&reports);
    eprintln!("vm-test: whole matrix took {:.1?}", started.elapsed());
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.label.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("vm-test failed on: {}", failed.join(", "));
    }
    Ok(())
}

/// Boots (or, for the host, runs natively) one kernel and parses what it printed.
fn run_one(
    kernel: &kernels::Prepared,
    bins: &binaries::Binaries,
    initrd: Option<&Path>,
    work: &Path,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let log = work.join(format!("console-{}.log", kernel.label));
    eprintln!(
        "vm-test: [{}] {} (log {})",
        kernel.label,
        kernel.describe(),
        log.display()
    );
    let label = kernel.label.clone();
    let echo = |line: &str| {
        if line.starts_with("VMTEST") {
            eprintln!("vm-test: [{label}] {line}");
        }
    };
    let run = match (&kernel.image, initrd) {
        (Some(image), Some(initrd)) => qemu::boot(image, initrd, &log, timeout, echo)?,
        _ => qemu::run_host(bins, &log, timeout, echo)?,
    };
    let report = Report::parse(&kernel.label, &kernel.describe(), &run);
    if !report.ok() {
        report.print_failure(&run);
    }
    Ok(report)
}

fn kernel_timeout() -> anyhow::Result<Duration> {
    let secs = match std::env::var("BOOT_COPY_VM_TIMEOUT") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("BOOT_COPY_VM_TIMEOUT={v}"))?,
        Err(_) => 600,
    };
    Ok(Duration::from_secs(secs))
}

/// The guest-side scripts in `tests/vm`.
fn guest_script(name: &str) -> PathBuf {
    crate::workspace_root().join("tests/vm").join(name)
}

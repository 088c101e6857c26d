//! `cargo xtask vm-test [KERNEL...]`: the kernel matrix. Boots Debian's own kernels under QEMU
//! (TCG: KVM does not work for nested guests on these machines) with an initramfs holding
//! busybox, real coreutils and the statically linked agent and end-to-end test binary
//! (tests/tests.rs), and runs `tests/vm/scenarios.sh` in each guest on the required scenarios
//! (see `scenarios.rs`); `host` runs the same script with the same binaries natively on this
//! kernel.
//!
//! KERNEL is `5.10` (Debian bullseye), `6.1`, `6.12` (bookworm), `host`, or a path to a kernel
//! image (bzImage, or a vmlinux with a PVH entry); none means all four. Kernel packages are cached in `/var/cache/boot-copy-vm` (override with
//! `BOOT_COPY_VM_CACHE`); `BOOT_COPY_VM_TIMEOUT` (seconds, default 900) bounds each kernel;
//! `BOOT_COPY_VM_JOBS` runs that many kernels at once (default: one per two host cores);
//! `VMTEST_SET=all` runs every test of the matrix's modules with its own agent instead of the
//! shared scenario set; `VMTEST_ONLY` (a shell glob) selects scenarios by name. Both narrow or
//! change what is required, so `cargo xtask test` refuses them.
pub mod binaries;
mod cpio;
mod initramfs;
mod kernels;
pub mod qemu;
mod report;
mod scenarios;

use anyhow::{Context as _, bail};
use kernels::Target;
pub use report::Report;
use scenarios::Required;
use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// The image of Debian's kernel `series` (`5.10`, `6.1`, `6.12`): from the kernel cache, or
/// downloaded into it.
pub fn debian_kernel(series: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let prepared = Target::parse(series)?.prepare(cache)?;
    prepared
        .image
        .with_context(|| format!("{series} is not a Debian kernel series"))
}

pub use kernels::cache_dir;

/// The kernels run when none are named.
pub const DEFAULT_KERNELS: [&str; 4] = ["5.10", "6.1", "6.12", "host"];

/// Runs the scenario set on each kernel (all of [`DEFAULT_KERNELS`] when `kernels` is empty) and
/// fails unless every required scenario passed on every kernel.
pub fn run(kernels: &[String]) -> anyhow::Result<()> {
    verdict(&matrix(kernels)?)
}

/// Fails unless every kernel passed.
pub fn verdict(reports: &[Report]) -> anyhow::Result<()> {
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

/// Runs the scenario set on each kernel and prints the matrix: one report per kernel.
pub fn matrix(kernels: &[String]) -> anyhow::Result<Vec<Report>> {
    let started = Instant::now();
    let targets = parse_targets(kernels)?;
    let cache = cache_dir()?;
    let prepared = timed("kernels ready", || {
        targets
            .iter()
            .map(|t| t.prepare(&cache))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let bins = timed("static binaries built", binaries::build_static)?;
    let required = Required::of(&bins.tests)?;
    let work = crate::workspace_root().join("target/vm-test");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let initrd = match prepared.iter().any(|k| k.image.is_some()) {
        true => Some(timed("initramfs built", || {
            initramfs::build(&bins, &required, &work)
        })?),
        false => None,
    };
    let runs = run_all(&prepared, &bins, &required, initrd.as_deref(), &work)?;
    for (report, run) in &runs {
        if !report.ok() {
            report.print_failure(run);
        }
    }
    let reports: Vec<Report> = runs.into_iter().map(|(report, _)| report).collect();
    report::print_matrix(&reports);
    eprintln!("vm-test: whole matrix took {:.1?}", started.elapsed());
    Ok(reports)
}

fn parse_targets(kernels: &[String]) -> anyhow::Result<Vec<Target>> {
    let targets = match kernels.is_empty() {
        true => DEFAULT_KERNELS.iter().map(|k| Target::parse(k)).collect(),
        false => kernels
            .iter()
            .map(|k| Target::parse(k))
            .collect::<anyhow::Result<Vec<_>>>(),
    }?;
    if targets.iter().any(|t| matches!(t, Target::Host)) {
        crate::setup::require_root("vm-test on the host kernel")?;
    }
    Ok(targets)
}

/// Runs `step`, printing how long it took.
fn timed<T>(what: &str, step: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let start = Instant::now();
    let out = step()?;
    eprintln!("vm-test: {what} in {:.1?}", start.elapsed());
    Ok(out)
}

/// Runs every kernel, `BOOT_COPY_VM_JOBS` at a time. The default, one per two host cores, keeps
/// runs from starving each other: the tests wait on the wall clock, and a TCG guest loading the
/// agent keeps a host core busy for seconds.
fn run_all(
    kernels: &[kernels::Prepared],
    bins: &binaries::Binaries,
    required: &Required,
    initrd: Option<&Path>,
    work: &Path,
) -> anyhow::Result<Vec<(Report, qemu::Run)>> {
    let timeout = env_number("BOOT_COPY_VM_TIMEOUT", 900)?;
    let cores = thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let jobs = env_number("BOOT_COPY_VM_JOBS", cores / 2)?.max(1) as usize;
    let next = AtomicUsize::new(0);
    let results = Mutex::new((0..kernels.len()).map(|_| None).collect::<Vec<_>>());
    thread::scope(|scope| {
        for _ in 0..jobs.min(kernels.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(kernel) = kernels.get(i) else { break };
                    let timeout = Duration::from_secs(timeout);
                    let result = run_one(kernel, bins, required, initrd, work, timeout);
                    results.lock().unwrap()[i] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    results
        .into_iter()
        .map(|r| r.expect("every kernel ran"))
        .collect()
}

/// Boots (or, for the host, runs natively) one kernel and parses what it printed.
fn run_one(
    kernel: &kernels::Prepared,
    bins: &binaries::Binaries,
    required: &Required,
    initrd: Option<&Path>,
    work: &Path,
    timeout: Duration,
) -> anyhow::Result<(Report, qemu::Run)> {
    let log = work.join(format!("console-{}.log", kernel.label));
    eprintln!(
        "vm-test: [{}] {} (log {})",
        kernel.label,
        kernel.describe(),
        log.display()
    );
    let label = &kernel.label;
    let echo = |line: &str| {
        if line.starts_with("VMTEST") && !line.starts_with("VMTEST-START") {
            eprintln!("vm-test: [{label}] {line}");
        }
    };
    let run = match (&kernel.image, initrd) {
        (Some(image), Some(base)) => {
            let initrd = work.join(format!("initramfs-{}.cpio", kernel.label));
            initramfs::with_modules(base, &kernel.modules, &initrd)?;
            qemu::boot(image, &initrd, &qemu::MATRIX, &log, timeout, echo)?
        }
        _ => qemu::run_host(bins, &required.names, &log, timeout, echo)?,
    };
    let report = Report::parse(&kernel.label, &kernel.describe(), &run, required);
    Ok((report, run))
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The guest-side scripts in `tests/vm`.
fn guest_script(name: &str) -> PathBuf {
    crate::workspace_root().join("tests/vm").join(name)
}

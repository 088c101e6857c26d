//! `cargo xtask service-test`: the Debian package under a real systemd as PID 1.
//!
//! Builds the package (`cargo xtask package`), then boots Debian bookworm under QEMU (TCG; KVM
//! does not work for nested guests on these machines) with Debian's 6.1 kernel and a root file
//! system made by `debootstrap --variant=minbase` (systemd, logrotate, procps), loaded as an
//! initramfs with `rdinit=/sbin/init`. A unit in the guest runs `guest.sh`, which installs the
//! package and checks the service (READY, alerts in the log and the journal, restart after
//! `kill -9` with a record of the gap, logrotate plus reload without loss, clean stop, upgrade,
//! remove, purge). It prints `SERVICETEST <name> PASS|FAIL` lines on the serial console and
//! powers off; this side fails on any FAIL, a missing result or a timeout, printing the console.
//!
//! Cached between runs under `/var/cache/boot-copy-vm` (`BOOT_COPY_VM_CACHE`): the root file
//! system as an uncompressed cpio archive in `service-rootfs/` (the kernel unpacks it faster
//! than a compressed one under emulation) and the kernel in `kernels/`, shared with
//! `cargo xtask vm-test`. `BOOT_COPY_SERVICE_TIMEOUT` (seconds, default 900) bounds the boot;
//! `BOOT_COPY_DEBIAN_MIRROR` replaces http://deb.debian.org/debian; `BOOT_COPY_SERVICE_KERNEL`
//! boots another kernel image (bzImage or PVH vmlinux) instead of Debian's 6.1.
mod guest;
mod rootfs;

use crate::vm::qemu::{self, Machine};
use anyhow::{Context as _, bail};
use std::{
    collections::BTreeMap,
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

/// The checks `guest.sh` makes, in its order; each must report PASS.
/// A Debian root file system unpacked into memory (about 200 MB), systemd as PID 1.
const MACHINE: Machine = Machine {
    memory_mb: 2048,
    append: "rdinit=/sbin/init systemd.show_status=error",
};

const CHECKS: &[&str] = &[
    "install",
    "active",
    "enabled",
    "start-record",
    "path-hooks",
    "log-modes",
    "verify",
    "exposure",
    "capabilities",
    "alert-log",
    "alert-journal",
    "preexisting-parent",
    "restart-after-kill",
    "unclean-record",
    "alert-after-restart",
    "logrotate-no-loss",
    "reload-new-file",
    "reload-record",
    "packaged-rotation",
    "journald-syslog",
    "clock-step",
    "reload-refused",
    "reload-applied",
    "config-exit-78",
    "clean-stop",
    "clean-restart",
    "path-hooks-dropin",
    "upgrade-restarts",
    "remove-stops",
    "remove-disables",
    "remove-keeps-config",
    "purge",
];

pub fn run() -> anyhow::Result<()> {
    crate::setup::require_root("service-test (debootstrap and the package build need root)")?;
    let started = Instant::now();

    let step = Instant::now();
    let deb = crate::package::run()?;
    eprintln!("service-test: package built in {:.1?}", step.elapsed());

    let cache = crate::vm::cache_dir()?;
    let step = Instant::now();
    let kernel = match std::env::var_os("BOOT_COPY_SERVICE_KERNEL") {
        Some(image) => PathBuf::from(image),
        None => crate::vm::debian_kernel("6.1", &cache)?,
    };
    let base = rootfs::base(&cache)?;
    eprintln!(
        "service-test: kernel {} and root file system {} ready in {:.1?}",
        kernel.display(),
        base.display(),
        step.elapsed()
    );

    let work = crate::workspace_root().join("target/service-test");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let step = Instant::now();
    let initrd = guest::initrd(&base, &deb, &readme_exposure()?, &work)?;
    eprintln!("service-test: initramfs built in {:.1?}", step.elapsed());

    let log = work.join("console.log");
    eprintln!(
        "service-test: booting Debian bookworm with systemd as PID 1 (console {})",
        log.display()
    );
    let run = qemu::boot(&kernel, &initrd, &MACHINE, &log, timeout()?, |line| {
        if let Some(at) = line.find("SERVICETEST ") {
            eprintln!("service-test: {}", &line[at..]);
        }
    })?;
    let outcome = Outcome::parse(&run.console);
    let verdict = outcome.verdict(&run);
    eprintln!(
        "service-test: guest ran {:.1?}; whole test {:.1?}",
        run.elapsed,
        started.elapsed()
    );
    if let Err(e) = verdict {
        eprintln!("---- guest console ({}) ----", log.display());
        eprint!("{}", run.console);
        eprintln!("---- end of guest console ----");
        return Err(e);
    }
    eprintln!("service-test: all {} checks passed", CHECKS.len());
    Ok(())
}

/// What the guest reported.
struct Outcome {
    results: BTreeMap<String, (bool, String)>,
    done: bool,
}

impl Outcome {
    fn parse(console: &str) -> Outcome {
        let mut results: BTreeMap<String, (bool, String)> = BTreeMap::new();
        let mut done = false;
        for line in console.lines() {
            let Some(at) = line.find("SERVICETEST ") else {
                continue;
            };
            let mut words = line[at + "SERVICETEST ".len()..].splitn(3, ' ');
            let (Some(name), verdict, detail) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            if name == "done" {
                done = true;
                continue;
            }
            let pass = match verdict {
                Some("PASS") => true,
                Some("FAIL") => false,
                _ => continue,
            };
            let detail = detail.unwrap_or_default().to_owned();
            // A check reported twice counts as failed if either report is a failure.
            let entry = results.entry(name.to_owned()).or_insert((pass, detail));
            entry.0 &= pass;
        }
        Outcome { results, done }
    }

    fn verdict(&self, run: &qemu::Run) -> anyhow::Result<()> {
        let failed: Vec<&str> = self
            .results
            .iter()
            .filter(|(_, (pass, _))| !pass)
            .map(|(name, _)| name.as_str())
            .collect();
        let missing: Vec<&str> = CHECKS
            .iter()
            .copied()
            .filter(|c| !self.results.contains_key(*c))
            .collect();
        let unknown: Vec<&str> = self
            .results
            .keys()
            .map(String::as_str)
            .filter(|name| !CHECKS.contains(name))
            .collect();
        let mut problems = Vec::new();
        if run.timed_out() {
            problems.push(format!("the guest timed out after {:.0?}", run.timeout));
        }
        if !failed.is_empty() {
            problems.push(format!("failed: {}", failed.join(", ")));
        }
        if !missing.is_empty() {
            problems.push(format!("no result: {}", missing.join(", ")));
        }
        if !unknown.is_empty() {
            problems.push(format!(
                "unexpected checks (add them to CHECKS): {}",
                unknown.join(", ")
            ));
        }
        if !self.done && !run.timed_out() {
            problems.push("the guest script did not finish".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("service-test: {}", problems.join("; "))
        }
    }
}

/// The exposure score README.md states for the unit (`... exposure: **2.1**`).
fn readme_exposure() -> anyhow::Result<String> {
    let path = crate::workspace_root().join("README.md");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    exposure_in(&text).with_context(|| {
        format!(
            "{} states no `systemd-analyze security` exposure as `exposure: **N.N**`",
            path.display()
        )
    })
}

fn exposure_in(readme: &str) -> Option<String> {
    let after = readme.split_once("exposure: **")?.1;
    let figure = after.split_once("**")?.0;
    figure.parse::<f64>().ok()?;
    Some(figure.to_owned())
}

fn timeout() -> anyhow::Result<Duration> {
    let secs = match std::env::var("BOOT_COPY_SERVICE_TIMEOUT") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("BOOT_COPY_SERVICE_TIMEOUT={v}"))?,
        Err(_) => 900,
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(timed_out: bool) -> qemu::Run {
        use std::os::unix::process::ExitStatusExt as _;
        qemu::Run {
            console: String::new(),
            status: (!timed_out).then(|| std::process::ExitStatus::from_raw(0)),
            elapsed: Duration::ZERO,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_readme_states_an_exposure_figure() {
        let figure = readme_exposure().unwrap();
        assert!(figure.parse::<f64>().unwrap() > 0.0, "{figure}");
        assert_eq!(exposure_in("x exposure: **2.1**. A"), Some("2.1".into()));
        assert_eq!(exposure_in("x exposure: **low**"), None);
    }

    #[test]
    fn all_checks_passing_is_success() {
        let mut console = String::from("[   1.0] servicetest[9]: SERVICETEST start kernel 6.1\n");
        for c in CHECKS {
            console.push_str(&format!("SERVICETEST {c} PASS some detail\n"));
        }
        console.push_str("SERVICETEST done failed=0\n");
        assert!(Outcome::parse(&console).verdict(&run(false)).is_ok());
    }

    #[test]
    fn a_failure_a_missing_check_or_a_timeout_fails() {
        let mut console = String::new();
        for c in CHECKS {
            let verdict = if *c == "purge" { "FAIL" } else { "PASS" };
            console.push_str(&format!("SERVICETEST {c} {verdict}\n"));
        }
        console.push_str("SERVICETEST done failed=1\n");
        let err = Outcome::parse(&console).verdict(&run(false)).unwrap_err();
        assert!(err.to_string().contains("failed: purge"), "{err}");

        let console: String = CHECKS[..3]
            .iter()
            .map(|c| format!("SERVICETEST {c} PASS\n"))
            .collect();
        let err = Outcome::parse(&console).verdict(&run(true)).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("timed out"), "{err}");
        assert!(err.contains("no result: start-record"), "{err}");
    }

    #[test]
    fn a_check_reported_twice_with_a_failure_fails() {
        let mut console: String = CHECKS
            .iter()
            .map(|c| format!("SERVICETEST {c} PASS\n"))
            .collect();
        console.push_str("SERVICETEST active FAIL restarted\nSERVICETEST done failed=1\n");
        assert!(Outcome::parse(&console).verdict(&run(false)).is_err());
    }
}

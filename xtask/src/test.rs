//! `cargo xtask test`: the whole suite — formatting and clippy, the workspace's tests (the pure
//! packages in parallel; the agent's, whose end-to-end tests load the real programs into the
//! running kernel, one at a time, so this needs root), a brief fuzzing run, the kernel matrix
//! under QEMU, and the packaged service under a real systemd. Every stage runs; the summary lists
//! each stage and each kernel's count of required scenarios passed.
use crate::{cargo, fuzz, service, setup, vm};
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Variables that narrow or loosen a run (`cargo xtask vm-test` and `service-test` accept them
/// by hand): the whole suite refuses to start with any of them set.
const NARROWING: [&str; 4] = [
    "VMTEST_ONLY",
    "VMTEST_SET",
    "BOOT_COPY_SERVICE_KERNEL",
    "BOOT_COPY_TEST_SLOWDOWN",
];

/// Packages whose tests touch neither the kernel nor the host's exec stream: they run in
/// parallel.
const PARALLEL_PACKAGES: [&str; 4] = [
    "boot-copy-common",
    "boot-copy-harness",
    "boot-copy-rules",
    "xtask",
];

/// One stage's outcome, and what the summary shows for it beyond pass or fail.
type Outcome = (anyhow::Result<()>, Vec<String>);

type Stage = (&'static str, fn() -> Outcome);

fn plain(result: anyhow::Result<()>) -> Outcome {
    (result, Vec::new())
}

/// The parallel packages' tests, in one `cargo test`.
fn parallel_tests() -> Outcome {
    let mut args = vec!["test", "--no-fail-fast"];
    for package in PARALLEL_PACKAGES {
        args.extend(["--package", package]);
    }
    cargo_test(&args)
}

/// Runs `cargo ARGS` passing its output through; the summary names each test that failed, so
/// a run's last lines say what broke.
fn cargo_test(args: &[&str]) -> Outcome {
    let run = || -> anyhow::Result<(bool, Vec<String>)> {
        let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .current_dir(crate::workspace_root())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        let stdout = child.stdout.take().context("cargo's stdout")?;
        let mut failed = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            println!("{line}");
            failed.extend(failed_test(&line));
        }
        Ok((child.wait()?.success(), failed))
    };
    match run() {
        Ok((true, _)) => plain(Ok(())),
        Ok((false, failed)) => (
            Err(anyhow::anyhow!("cargo {} failed", args.join(" "))),
            failed.into_iter().map(|t| format!("failed: {t}")).collect(),
        ),
        Err(e) => plain(Err(e)),
    }
}

/// The test a libtest result line names as failed (`test NAME ... FAILED`).
fn failed_test(line: &str) -> Option<String> {
    let name = line.strip_prefix("test ")?.strip_suffix(" ... FAILED")?;
    Some(name.to_string())
}

/// The agent's tests: kernel tests share the host's exec stream, and one test at a time keeps
/// timing honest. The boot-tooling test unpacks a Debian 6.12 kernel package: it is fetched into
/// the matrix's cache first (the matrix stage, which would fetch it too, runs later).
fn kernel_tests() -> Outcome {
    if let Err(e) = vm::cache_dir().and_then(|cache| vm::debian_kernel("6.12", &cache)) {
        return plain(Err(
            e.context("fetching the 6.12 kernel the boot-tooling test unpacks")
        ));
    }
    cargo_test(&[
        "test",
        "--package",
        "boot-copy-agent",
        "--no-fail-fast",
        "--",
        "--test-threads=1",
    ])
}

/// The scenario set on every kernel of the matrix, the host's included (natively), in one table.
fn kernel_matrix() -> Outcome {
    match vm::matrix(&[]) {
        Ok(reports) => {
            let counts = reports.iter().map(vm::Report::count).collect();
            (vm::verdict(&reports), counts)
        }
        Err(e) => plain(Err(e)),
    }
}

/// Refuses a narrowed run, sets up, then runs every stage.
pub fn run() -> anyhow::Result<()> {
    refuse_narrowing(|name| std::env::var_os(name).is_some())?;
    setup::run()?;
    setup::require_root("the test suite")?;
    let stages: [Stage; 7] = [
        ("cargo fmt --check", || {
            plain(cargo(&["fmt", "--all", "--check"]))
        }),
        // The workspace's default members: the eBPF crate builds only for the BPF target.
        ("cargo clippy", || {
            plain(cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]))
        }),
        ("cargo test (parallel)", parallel_tests),
        ("cargo test (kernel, one at a time)", kernel_tests),
        ("fuzz (brief)", || plain(fuzz::brief())),
        ("kernel matrix", kernel_matrix),
        ("service under systemd", || plain(service::run())),
    ];
    let mut summary = Vec::new();
    for (name, stage) in stages {
        eprintln!("==> {name}");
        let (result, details) = stage();
        if let Err(e) = &result {
            eprintln!("==> {name} FAILED: {e:#}");
        }
        summary.push((name, result.is_ok(), details));
    }
    print_summary(&summary)
}

/// Fails naming every variable in [`NARROWING`] that `is_set`.
fn refuse_narrowing(is_set: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let set: Vec<&str> = NARROWING.into_iter().filter(|v| is_set(v)).collect();
    if !set.is_empty() {
        anyhow::bail!(
            "cargo xtask test runs the whole suite; unset {} (it narrows or loosens the run; \
             `cargo xtask vm-test` or `service-test` accept it by hand)",
            set.join(", ")
        );
    }
    Ok(())
}

/// One line per stage (with a line per kernel for the matrix), then the count.
fn print_summary(summary: &[(&str, bool, Vec<String>)]) -> anyhow::Result<()> {
    println!("test summary:");
    for (name, ok, details) in summary {
        println!("  {:<4} {name}", if *ok { "ok" } else { "FAIL" });
        for d in details {
            println!("         {d}");
        }
    }
    let failed: Vec<&str> = summary
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, ..)| *name)
        .collect();
    println!(
        "stages: {} passed, {} failed",
        summary.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        anyhow::bail!("failed stages: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowing_variable_is_refused_by_name() {
        assert!(refuse_narrowing(|_| false).is_ok());
        let err = refuse_narrowing(|v| v == "VMTEST_ONLY" || v == "BOOT_COPY_TEST_SLOWDOWN")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unset VMTEST_ONLY, BOOT_COPY_TEST_SLOWDOWN"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_test_line_names_the_test() {
        assert_eq!(
            failed_test("test daemon::sighup_reloads ... FAILED").as_deref(),
            Some("daemon::sighup_reloads")
        );
        assert_eq!(failed_test("test daemon::sighup_reloads ... ok"), None);
        assert_eq!(failed_test("failures:"), None);
    }
}

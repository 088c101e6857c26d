//! Fuzzing the untrusted inputs with cargo-fuzz (libFuzzer): EQL query text, replay lines
//! (NDJSON events), rule files and the configuration file. `brief` is the test suite's short run;
//! `long` is `cargo xtask fuzz`. Seeds live in `fuzz/seeds/<target>/` (committed); what libFuzzer learns
//! goes to `fuzz/corpus/<target>/` and crashing inputs to `fuzz/artifacts/<target>/` (both
//! ignored by git).
use crate::{status, workspace_root};
use anyhow::{Context as _, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

/// The targets in `fuzz/fuzz_targets/`, each with a seed directory and a dictionary.
pub const TARGETS: &[&str] = &["eql_parse", "replay_decode", "rule_file", "config_toml"];

/// The fuzz crate's feature that builds the targets over the agent's inputs (the rule engine's
/// need only `boot-copy-rules`).
const FEATURES: &str = "agent";

/// Seconds per target in the test suite's run.
pub const BRIEF_SECONDS: u64 = 20;

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// A short run of every target (`BRIEF_SECONDS` each), for the test suite. It starts from the
/// seeds and whatever `cargo xtask fuzz` has learnt, and keeps nothing new (the saved corpus only
/// grows from long runs).
pub fn brief() -> anyhow::Result<()> {
    fuzz_all(BRIEF_SECONDS, false)
}

/// Runs every target for `seconds` each, adding what it learns to `fuzz/corpus/`.
pub fn long(seconds: u64) -> anyhow::Result<()> {
    fuzz_all(seconds, true)
}

/// Fails listing every target that found a crash, with the crashing input's path.
fn fuzz_all(seconds: u64, keep_corpus: bool) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let root = workspace_root();
    let started = Instant::now();
    // One build of all targets up front, so the per-target time budget is spent fuzzing.
    status(cargo_fuzz(&root).args(["build", "--sanitizer", "none", "--features", FEATURES]))
        .context("building the fuzz targets")?;
    let mut failures = Vec::new();
    for target in TARGETS {
        eprintln!("fuzz: {target} for {seconds} s");
        if let Err(e) = run_target(&root, target, seconds, keep_corpus) {
            failures.push(format!("{target}: {e:#}"));
        }
    }
    eprintln!(
        "fuzz: {} targets in {:.0} s",
        TARGETS.len(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "fuzzing found problems (reproduce with `cargo +nightly fuzz run -s none TARGET ARTIFACT`):\n{}",
            failures.join("\n")
        );
    }
    Ok(())
}

fn run_target(root: &Path, target: &str, seconds: u64, keep_corpus: bool) -> anyhow::Result<()> {
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    let dict = root.join("fuzz/dicts").join(format!("{target}.dict"));
    // libFuzzer writes new inputs into the first corpus directory and only reads the others;
    // a brief run writes into a scratch directory that the next brief run empties.
    let first = if keep_corpus {
        corpus.clone()
    } else {
        let scratch = root.join("fuzz/target/brief-corpus").join(target);
        let _ = std::fs::remove_dir_all(&scratch);
        scratch
    };
    std::fs::create_dir_all(&first).with_context(|| format!("creating {}", first.display()))?;
    let mut inputs = vec![first];
    if !keep_corpus && corpus.is_dir() {
        inputs.push(corpus);
    }
    inputs.push(seeds);
    std::fs::create_dir_all(&artifacts)
        .with_context(|| format!("creating {}", artifacts.display()))?;
    let before = crash_files(&artifacts);
    let mut cmd = cargo_fuzz(root);
    cmd.args(["run", "--sanitizer", "none", "--features", FEATURES, target])
        .args(&inputs)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // An input that takes this long is a hang (e.g. runaway wildcard backtracking).
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    let result = status(&mut cmd);
    let new: Vec<PathBuf> = crash_files(&artifacts)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    match (result, new.is_empty()) {
        (Ok(()), true) => Ok(()),
        (_, false) => bail!(
            "crashing inputs: {}",
            new.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Err(e), true) => Err(e),
    }
}

fn crash_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// `cargo fuzz` on the nightly toolchain, in the workspace root (cargo-fuzz finds `fuzz/`).
fn cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(root)
        // Set by the stable cargo running xtask; they would pin the wrong toolchain.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// Installs cargo-fuzz from crates.io when it is missing (a version check otherwise).
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .context("running rustup (fuzzing needs the nightly toolchain)")?;
    if !nightly.status.success() {
        bail!("the nightly toolchain is missing: run `cargo xtask setup`");
    }
    let present = cargo_fuzz(&workspace_root())
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}

//! The statically linked agent and end-to-end test binaries the guests run. One
//! `cargo test --no-run` builds them all (the tests run the agent as
//! `CARGO_BIN_EXE_boot-copy-agent`, an absolute path under target/x86_64-unknown-linux-gnu/release
//! that the initramfs reproduces). With an explicit `--target`, RUSTFLAGS apply to target code
//! only, not to build scripts or proc macros.
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";
const AGENT: &str = "boot-copy-agent";
/// The agent package's end-to-end tests (tests/*.rs) that make up the scenario set: exec events
/// with their fields, the daemon's alerts with their verdicts, the strict rule's evasions, and
/// whole command lines and the loader (tests/argv.rs).
pub const E2E_TESTS: [&str; 4] = ["events", "daemon", "strict", "argv"];

/// RUSTFLAGS of the static build: the caller's own plus crt-static. A host test run with these
/// RUSTFLAGS, `--release` and `--target TRIPLE` shares its build with vm-test.
pub fn static_rustflags() -> String {
    let own = std::env::var("RUSTFLAGS").unwrap_or_default();
    format!("{own} -C target-feature=+crt-static")
        .trim()
        .to_string()
}

pub struct Binaries {
    pub agent: PathBuf,
    /// (test name, executable), in [`E2E_TESTS`] order.
    pub tests: Vec<(String, PathBuf)>,
}

impl Binaries {
    /// The scenario script's TESTS value: `NAME=PATH` words.
    pub fn tests_env(&self) -> String {
        let words: Vec<String> = self
            .tests
            .iter()
            .map(|(name, exe)| format!("{name}={}", exe.display()))
            .collect();
        words.join(" ")
    }
}

pub fn build_static() -> anyhow::Result<Binaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--release",
        "--target",
        TRIPLE,
        "--package",
        AGENT,
    ]);
    for test in E2E_TESTS {
        cmd.args(["--test", test]);
    }
    cmd.arg("--message-format=json-render-diagnostics")
        .env("RUSTFLAGS", static_rustflags())
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut agent = None;
    let mut tests = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        match artifact(&msg) {
            Some(Artifact::Agent(exe)) => agent = Some(exe),
            Some(Artifact::Test(name, exe)) => tests.push((name, exe)),
            None => {}
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("static build failed: {cmd:?}: {st}");
    }
    tests.sort_by_key(|(name, _)| E2E_TESTS.iter().position(|t| t == name));
    match agent {
        Some(agent) if tests.len() == E2E_TESTS.len() => Ok(Binaries { agent, tests }),
        _ => bail!("{cmd:?} did not report the {AGENT} binary and every test executable"),
    }
}

enum Artifact {
    Agent(PathBuf),
    Test(String, PathBuf),
}

/// The binary a `compiler-artifact` message is about, if it is one we need.
fn artifact(msg: &Value) -> Option<Artifact> {
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let exe = PathBuf::from(msg["executable"].as_str()?);
    let target = &msg["target"];
    let is = |kind: &str| {
        target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x == kind))
    };
    // A bin's own unit-test harness has the bin's name and kind too.
    let harness = msg["profile"]["test"] == true;
    let name = target["name"].as_str()?;
    if name == AGENT && is("bin") && !harness {
        Some(Artifact::Agent(exe))
    } else if is("test") && E2E_TESTS.contains(&name) {
        Some(Artifact::Test(name.to_string(), exe))
    } else {
        None
    }
}

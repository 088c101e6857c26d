//! The statically linked agent and end-to-end test binary (tests/tests.rs) the guests run. One
//! `cargo test --no-run` builds both (the tests run the agent as
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
/// The agent package's end-to-end test binary (tests/tests.rs).
const E2E_TESTS: &str = "tests";

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
    /// The end-to-end test binary.
    pub tests: PathBuf,
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
    cmd.args(["--test", E2E_TESTS])
        .arg("--message-format=json-render-diagnostics")
        .env("RUSTFLAGS", static_rustflags())
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut agent = None;
    let mut tests = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        match artifact(&msg) {
            Some(Artifact::Agent(exe)) => agent = Some(exe),
            Some(Artifact::Tests(exe)) => tests = Some(exe),
            None => {}
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("static build failed: {cmd:?}: {st}");
    }
    match (agent, tests) {
        (Some(agent), Some(tests)) => Ok(Binaries { agent, tests }),
        _ => bail!("{cmd:?} did not report the {AGENT} binary and the {E2E_TESTS} executable"),
    }
}

enum Artifact {
    Agent(PathBuf),
    Tests(PathBuf),
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
    } else if is("test") && name == E2E_TESTS {
        Some(Artifact::Tests(exe))
    } else {
        None
    }
}

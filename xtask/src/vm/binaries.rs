//! The statically linked agent and `events` test binary the guests run. One
//! `cargo test --no-run` builds both (the test needs the agent as `CARGO_BIN_EXE_boot-copy-agent`,
//! an absolute path under target/x86_64-unknown-linux-gnu/release that the initramfs reproduces).
//! With an explicit `--target`, RUSTFLAGS apply to target code only, not build scripts.
use anyhow::{Context as _, bail};
use serde_json::Value;
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";
const AGENT: &str = "boot-copy-agent";
const EVENTS_TEST: &str = "events";

pub struct Binaries {
    pub agent: PathBuf,
    pub events_test: PathBuf,
}

pub fn build_static() -> anyhow::Result<Binaries> {
    if let Ok(v) = std::env::var("TMP_STUB") {
        let (a, t) = v.split_once(':').unwrap();
        return Ok(Binaries {
            agent: a.into(),
            events_test: t.into(),
        });
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    rustflags.push_str(" -C target-feature=+crt-static");
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--no-run", "--release", "--target", TRIPLE])
        .args(["--package", AGENT, "--test", EVENTS_TEST])
        .arg("--message-format=json-render-diagnostics")
        .env("RUSTFLAGS", rustflags.trim())
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (mut agent, mut events_test) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let msg: Value = match serde_json::from_str(&line?) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some((kind, exe)) = artifact(&msg) {
            match kind {
                Artifact::Agent => agent = Some(exe),
                Artifact::EventsTest => events_test = Some(exe),
            }
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("static build failed: {cmd:?}: {st}");
    }
    match (agent, events_test) {
        (Some(agent), Some(events_test)) => Ok(Binaries { agent, events_test }),
        _ => bail!("{cmd:?} reported no {AGENT} binary or {EVENTS_TEST} test executable"),
    }
}

enum Artifact {
    Agent,
    EventsTest,
}

/// Which binary a `compiler-artifact` message is about, and its executable.
fn artifact(msg: &Value) -> Option<(Artifact, PathBuf)> {
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
    match target["name"].as_str()? {
        AGENT if is("bin") && !harness => Some((Artifact::Agent, exe)),
        EVENTS_TEST if is("test") => Some((Artifact::EventsTest, exe)),
        _ => None,
    }
}

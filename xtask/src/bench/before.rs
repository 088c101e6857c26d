//! The agent as it was before the latest kernel changes, built from that commit's source, so
//! that the exec benchmark measures both builds in the same run.
//! The source is exported with `git archive` (the repository and its worktrees are untouched)
//! into `target/bench/before-COMMIT/src` and built into its own target directory; later runs
//! reuse both.
use super::bench_dir;
use crate::{status, workspace_root};
use anyhow::Context as _;
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// main before issue 17's kernel work (the session, terminal, namespace and cgroup of each record
/// sent; leaders' executables at their first fork) and issue 16's file-tree numbering.
pub const COMMIT: &str = "dc1a7dd";

/// The release binary of the agent at [`COMMIT`], building it if needed.
pub fn build() -> anyhow::Result<PathBuf> {
    let dir = bench_dir()?.join(format!("before-{COMMIT}"));
    let src = dir.join("src");
    if !src.join("Cargo.toml").exists() {
        export(&src)?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(
        Command::new(cargo)
            .args(["build", "--release", "--package", "boot-copy-agent"])
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .current_dir(&src),
    )?;
    Ok(path())
}

/// Where [`build`] puts the binary.
pub fn path() -> PathBuf {
    workspace_root()
        .join("target/bench")
        .join(format!("before-{COMMIT}/target/release/boot-copy-agent"))
}

/// `git archive COMMIT | tar -x -C src`.
fn export(src: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(src)?;
    let mut archive = Command::new("git")
        .args(["archive", COMMIT])
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let tar = archive.stdout.take().context("git archive's output")?;
    status(Command::new("tar").arg("-x").arg("-C").arg(src).stdin(tar))?;
    let st = archive.wait()?;
    anyhow::ensure!(st.success(), "git archive {COMMIT} failed: {st}");
    Ok(())
}

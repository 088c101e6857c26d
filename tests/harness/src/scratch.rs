//! Scratch names and directories, distinct across tests, test processes and runs.
use crate::{Error, Result};
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

/// A name no other test (or test process) uses.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory `/tmp/boot-copy-TAG-UNIQUE`, 0755 (the agent refuses configuration in
/// directories others can write).
pub fn tempdir(tag: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(format!("/tmp/boot-copy-{tag}-{}", unique()));
    let what = || format!("creating {}", dir.display());
    fs::create_dir_all(&dir).map_err(Error::io(what()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(Error::io(what()))?;
    Ok(dir)
}

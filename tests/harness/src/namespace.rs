//! Scenarios in a private mount namespace where /boot is an empty tmpfs (`unshare -m`): copies
//! into /boot that never touch the host's.
use crate::{Error, Result};
use std::{ffi::OsStr, process::Command};

/// Runs `script` with /bin/sh in a private mount namespace where /boot is an empty tmpfs.
pub fn in_boot_namespace(script: &str) -> Result<()> {
    let full = format!("mount -t tmpfs boot-copy-test /boot && {script}");
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c", &full])
        .status()
        .map_err(Error::io("running unshare"))?;
    match status.success() {
        true => Ok(()),
        false => Err(Error::Scenario {
            script: script.to_owned(),
            status,
        }),
    }
}

/// A command that execs `program` with `args` (any bytes, no shell quoting) in a private mount
/// namespace where /boot is an empty tmpfs. The program keeps the pid of the spawned child and
/// has the caller as its parent.
pub fn exec_in_boot_namespace<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg("mount -t tmpfs boot-copy-test /boot && exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    cmd
}

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

/// How /boot is made in a [`BootNamespace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKind {
    /// A tmpfs.
    Tmpfs,
    /// An ext4 file system on a loop device (its image in the scratch directory).
    Ext4,
    /// A directory of the root file system (a scratch directory bound over /boot).
    RootDirectory,
}

/// A private mount namespace held open by a sleeping process, with /boot made as `kind` asks:
/// the agent and the scenarios enter it (`nsenter -m`), so the agent watches that /boot. The
/// holder is killed, and the scratch directory removed, when this is dropped.
pub struct BootNamespace {
    holder: std::process::Child,
    scratch: std::path::PathBuf,
}

impl BootNamespace {
    pub fn new(kind: BootKind) -> Result<BootNamespace> {
        let scratch = crate::tempdir("bootns")?;
        let mount = match kind {
            BootKind::Tmpfs => "mount -t tmpfs boot-copy-test /boot".to_owned(),
            BootKind::Ext4 => format!(
                "truncate -s 96M {s}/boot.img && mkfs.ext4 -q -F {s}/boot.img && \
                 mount -o loop {s}/boot.img /boot",
                s = scratch.display()
            ),
            BootKind::RootDirectory => format!(
                "mkdir {s}/boot && mount --bind {s}/boot /boot",
                s = scratch.display()
            ),
        };
        let ready = scratch.join("ready");
        let script = format!("{mount} && touch {} && exec sleep 3600", ready.display());
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
            .spawn()
            .map_err(Error::io("running unshare"))?;
        let ns = BootNamespace { holder, scratch };
        let deadline = std::time::Instant::now() + *crate::WAIT;
        while !ready.exists() {
            if std::time::Instant::now() > deadline {
                return Err(Error::Timeout("the boot namespace".into(), *crate::WAIT));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(ns)
    }

    /// The holder's pid (its mount namespace is the one to enter).
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A command that runs `program` in the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid().to_string())
            .args(["-m", "--"])
            .arg(program);
        cmd
    }

    /// Runs `script` with /bin/sh in the namespace; returns the shell's pid.
    pub fn sh(&self, script: &str) -> Result<u32> {
        let mut child = self
            .command("/bin/sh")
            .args(["-c", script])
            .spawn()
            .map_err(Error::io("running nsenter"))?;
        let pid = child.id();
        let status = child.wait().map_err(Error::io("waiting for nsenter"))?;
        match status.success() {
            true => Ok(pid),
            false => Err(Error::Scenario {
                script: script.to_owned(),
                status,
            }),
        }
    }
}

impl BootNamespace {
    /// A command that execs `program` with `args` (any bytes, no shell quoting) in a private
    /// mount namespace made from this one: its /boot is this namespace's (the same file system,
    /// so the agent that runs here sees it as its own /boot), and mounts it makes stay its own.
    /// The program keeps the pid of the spawned child and its working directory.
    pub fn isolated_command<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // `--wd=.`: the directory the command is started in, opened before entering (entering a
        // mount namespace moves to its root).
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid().to_string())
            .args([
                "-m",
                "--wd=.",
                "--",
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
            ])
            .arg(program)
            .args(args);
        cmd
    }

    /// Runs `script` with /bin/sh as [`BootNamespace::isolated_command`] does.
    pub fn isolated(&self, script: &str) -> Result<()> {
        let status = self
            .isolated_command("/bin/sh", ["-c", script])
            .status()
            .map_err(Error::io("running nsenter"))?;
        match status.success() {
            true => Ok(()),
            false => Err(Error::Scenario {
                script: script.to_owned(),
                status,
            }),
        }
    }
}

impl Drop for BootNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

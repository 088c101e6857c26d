//! `reload`: what the unit's `ExecReload` runs. A bare SIGHUP returns before the agent has
//! reloaded and cannot say that it refused the new rules; this sends SIGHUP to the running agent
//! and waits until the agent reports the reload in its status file, failing if it was refused.
use crate::{
    config::Config,
    records::status::{StatusFile, running},
};
use anyhow::{Context as _, bail};
use nix::{sys::signal, unistd::Pid};
use std::time::{Duration, Instant};

/// How often the status file is read while waiting.
const POLL: Duration = Duration::from_millis(50);

pub fn reload(config: &Config, timeout: Duration) -> anyhow::Result<()> {
    let file = StatusFile::new(&config.health.state_dir)?;
    let status = file
        .read()?
        .context("no status file: is boot-copy-agent running?")?;
    if status.stopped || !running(&status) {
        bail!("boot-copy-agent (pid {}) is not running", status.pid);
    }
    signal::kill(Pid::from_raw(status.pid as i32), signal::Signal::SIGHUP)
        .with_context(|| format!("signalling boot-copy-agent (pid {})", status.pid))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        // The file is replaced by rename: a read sees the old or the new one, whole.
        let Some(now) = file.read()? else { continue };
        if now.pid != status.pid || now.stopped {
            bail!(
                "boot-copy-agent (pid {}) stopped during the reload",
                status.pid
            );
        }
        if now.reloads > status.reloads {
            if let Some(why) = now.reload_error {
                bail!("{why}");
            }
            println!("boot-copy-agent reloaded its rules");
            return Ok(());
        }
    }
    bail!(
        "boot-copy-agent (pid {}) reported no reload within {}s",
        status.pid,
        timeout.as_secs()
    )
}

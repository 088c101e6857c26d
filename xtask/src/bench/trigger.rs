//! Triggering execs without touching the real /boot: `cp` into a tmpfs `/boot` inside a private
//! mount namespace. The loop counts its own copies: that count is the ground truth alerts are
//! checked against.
use anyhow::{Context as _, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub struct Trigger {
    children: Vec<Child>,
    stop: PathBuf,
}

impl Trigger {
    /// `workers` loops of `cp /etc/hostname /boot/MARKER-W[-i]`; each runs `count` copies
    /// (`pause` seconds apart), or as fast as it can until `stop` is called when `count` is None.
    pub fn start(
        workers: usize,
        marker: &str,
        count: Option<u64>,
        pause: Option<f64>,
    ) -> anyhow::Result<Self> {
        let stop = std::env::temp_dir().join(format!("{marker}.stop"));
        let _ = fs::remove_file(&stop);
        let children = (0..workers)
            .map(|w| {
                let script = script(&format!("{marker}-{w}"), &stop, count, pause);
                Command::new("unshare")
                    .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting the trigger loop")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { children, stop })
    }

    /// Whether any loop still runs.
    pub fn running(&mut self) -> anyhow::Result<bool> {
        let mut running = false;
        for child in &mut self.children {
            running |= child.try_wait()?.is_none();
        }
        Ok(running)
    }

    /// Tells the loops to stop (when they run until told).
    pub fn stop(&self) -> anyhow::Result<()> {
        fs::write(&self.stop, b"").context("writing the stop file")
    }

    /// Waits for the loops; the copies they made, all together.
    pub fn finish(self) -> anyhow::Result<u64> {
        let mut total = 0;
        for child in self.children {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!("a trigger loop failed: {}", out.status);
            }
            total += String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .context("the trigger loop's count")?;
        }
        let _ = fs::remove_file(&self.stop);
        Ok(total)
    }
}

fn script(name: &str, stop: &Path, count: Option<u64>, pause: Option<f64>) -> String {
    let cond = match count {
        Some(n) => format!("[ $i -lt {n} ]"),
        None => format!("[ ! -e {} ]", stop.display()),
    };
    let sleep = pause.map(|s| format!(" sleep {s};")).unwrap_or_default();
    // Numbered targets when paced (one file each); one reused target when storming.
    let target = if count.is_some() {
        format!("/boot/{name}-$i")
    } else {
        format!("/boot/{name}")
    };
    format!(
        "mount -t tmpfs bench /boot || exit 1; i=0; while {cond}; do cp /etc/hostname {target} || exit 1;{sleep} i=$((i+1)); done; echo $i"
    )
}

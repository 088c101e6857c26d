//! What is added to the cached root file system for one run: the package, the test script and
//! the unit that runs it once systemd has booted, as a second cpio archive appended to the base
//! one (the kernel unpacks concatenated archives in order).
use super::rootfs;
use anyhow::Context as _;
use std::{
    fs,
    io::Write as _,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
};

/// The script the guest runs (see its header).
const SCRIPT: &str = include_str!("guest.sh");

/// Runs the script after boot, on the serial console, then powers off; if the script dies
/// before it does so itself, ExecStopPost still powers off.
const UNIT: &str = "\
[Unit]
Description=boot-copy service test
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/servicetest
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
ExecStopPost=/usr/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
";

/// Builds `work/initrd`: the base archive followed by this run's overlay. `exposure` is the
/// README's figure for `systemd-analyze security`, which the script checks the unit against.
pub fn initrd(base: &Path, deb: &Path, exposure: &str, work: &Path) -> anyhow::Result<PathBuf> {
    let overlay = work.join("overlay");
    let _ = fs::remove_dir_all(&overlay);
    let system = overlay.join("etc/systemd/system");
    fs::create_dir_all(system.join("multi-user.target.wants"))?;
    fs::write(system.join("servicetest.service"), UNIT)?;
    symlink(
        "../servicetest.service",
        system.join("multi-user.target.wants/servicetest.service"),
    )?;
    let script = overlay.join("usr/local/sbin/servicetest");
    fs::create_dir_all(script.parent().expect("has a parent"))?;
    fs::write(&script, SCRIPT)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    fs::create_dir_all(overlay.join("root"))?;
    fs::write(overlay.join("root/readme-exposure"), exposure)?;
    fs::copy(deb, overlay.join("root/boot-copy-agent.deb"))
        .with_context(|| format!("copying {}", deb.display()))?;

    let overlay_cpio = work.join("overlay.cpio");
    rootfs::pack_overlay(&overlay, &overlay_cpio)?;
    let initrd = work.join("initrd");
    let mut out = fs::File::create(&initrd)?;
    for part in [base, overlay_cpio.as_path()] {
        let mut input =
            fs::File::open(part).with_context(|| format!("reading {}", part.display()))?;
        std::io::copy(&mut input, &mut out)?;
    }
    out.flush()?;
    Ok(initrd)
}

//! The guest's root file system: Debian bookworm from `debootstrap --variant=minbase` with
//! systemd as init, trimmed and packed as an uncompressed newc cpio archive, cached in
//! `CACHE/service-rootfs/base.cpio` with a stamp naming how it was made (a different recipe
//! rebuilds it).
use anyhow::{Context as _, bail};
use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// On top of minbase: systemd as PID 1, what the test uses (logrotate; procps for the unit's
/// `/bin/kill` and the package's dependency), util-linux and mount for `unshare`/`mount`, jq to
/// read records.
const INCLUDE: &str = "systemd,systemd-sysv,logrotate,procps,mount,util-linux,jq";
/// Bump when `customize` or `INCLUDE` changes, to rebuild cached root file systems.
const RECIPE: &str = "3";

/// Units that only slow an emulated boot down, or would run during the test (timers, cron).
const MASKED: &[&str] = &[
    "systemd-udev-trigger.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-settle.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "getty-static.service",
    "getty@tty1.service",
    "serial-getty@ttyS0.service",
    "cron.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "logrotate.timer",
    "systemd-tmpfiles-clean.timer",
    "systemd-pstore.service",
    "modprobe@dm_mod.service",
    "modprobe@loop.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@configfs.service",
];

/// The cached base archive, made now if missing or made by another recipe.
pub fn base(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache.join("service-rootfs");
    let archive = dir.join("base.cpio");
    let stamp = dir.join("stamp");
    let mirror = std::env::var("BOOT_COPY_DEBIAN_MIRROR").unwrap_or_else(|_| MIRROR.into());
    let want =
        format!("debootstrap --variant=minbase --include={INCLUDE} {SUITE} recipe {RECIPE}\n");
    if archive.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(archive);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tree = dir.join(format!("tree-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tree);
    let start = Instant::now();
    eprintln!(
        "service-test: debootstrap {SUITE} from {mirror} into {} (a few minutes, once)",
        tree.display()
    );
    let log = dir.join("debootstrap.log");
    let out = fs::File::create(&log)?;
    let st = Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
        .arg(&tree)
        .arg(&mirror)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("running debootstrap (apt-get install debootstrap)")?;
    if !st.success() {
        let _ = fs::remove_dir_all(&tree);
        bail!("debootstrap failed ({st}); see {}", log.display());
    }
    eprintln!("service-test: debootstrap took {:.1?}", start.elapsed());
    customize(&tree)?;
    let tmp = dir.join("base.cpio.tmp");
    pack(&tree, &tmp)?;
    fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    fs::rename(&tmp, &archive)?;
    fs::write(&stamp, want)?;
    Ok(archive)
}

/// Makes the tree a quick-booting test guest.
fn customize(tree: &Path) -> anyhow::Result<()> {
    fs::write(tree.join("etc/hostname"), "bcguest\n")?;
    fs::write(
        tree.join("etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\tbcguest\n::1\tlocalhost ip6-localhost\n",
    )?;
    let system = tree.join("etc/systemd/system");
    for dir in ["multi-user.target.wants", "timers.target.wants"] {
        fs::create_dir_all(system.join(dir))?;
    }
    for unit in MASKED {
        let link = system.join(unit);
        let _ = fs::remove_file(&link);
        symlink("/dev/null", &link)?;
    }
    // Not needed in the guest; a smaller archive unpacks faster.
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ] {
        empty_dir(&tree.join(dir))?;
    }
    Ok(())
}

/// Removes the files in `dir`, keeping subdirectories named `partial` (apt wants them).
fn empty_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "partial" {
                fs::remove_dir_all(&path)?;
            }
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// `find . | cpio -o -H newc` in `tree`, owners kept (debootstrap ran as root).
pub fn pack(tree: &Path, out: &Path) -> anyhow::Result<()> {
    cpio(tree, out, &["-o", "-H", "newc", "--quiet"], false)
}

/// Packs the files (not the directories) under `tree` as root's: an archive appended to the
/// base one, whose directories must not be replaced.
pub fn pack_overlay(tree: &Path, out: &Path) -> anyhow::Result<()> {
    cpio(
        tree,
        out,
        &["-o", "-H", "newc", "--quiet", "-R", "0:0"],
        true,
    )
}

fn cpio(tree: &Path, out: &Path, args: &[&str], files_only: bool) -> anyhow::Result<()> {
    let mut find = Command::new("find");
    find.arg(".");
    if files_only {
        find.args(["!", "-type", "d"]);
    }
    let mut find = find
        .current_dir(tree)
        .stdout(Stdio::piped())
        .spawn()
        .context("running find")?;
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let cpio = Command::new("cpio")
        .args(args)
        .current_dir(tree)
        .stdin(find.stdout.take().expect("piped"))
        .stdout(file)
        .status()
        .context("running cpio")?;
    if !find.wait()?.success() || !cpio.success() {
        bail!("packing {} into {} failed", tree.display(), out.display());
    }
    Ok(())
}

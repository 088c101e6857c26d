//! Legitimate boot tooling from Debian's own packages, run as a user would, raises no alert from
//! any rule (Boot File Copy, its strict companion, Boot File Write): `update-initramfs -c`
//! (initramfs-tools) against a modules tree the test makes, `grub-mkconfig -o
//! /boot/grub/grub.cfg` (grub-common), and dpkg unpacking a Debian linux-image package (the one
//! the kernel matrix caches) into a scratch root whose `boot` is the watched /boot bound there.
//! The same `dd` into /boot from a shell then gives exactly one alert.
//!
//! Everything happens in a private mount namespace the agent runs in too: /boot is an ext4 loop
//! file system (grub-mkconfig's grub-probe must find /boot's device, which a tmpfs has not), and
//! /usr/lib and /var/lib are overlays whose upper layers are a tmpfs, so the modules tree and
//! initramfs-tools' state never reach the host. Needs root, initramfs-tools and grub-common
//! (`cargo xtask setup`), and a cached 6.12 kernel package (`cargo xtask vm-test 6.12`).
use serde_json::Value;
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::AGENT;
use boot_copy_harness::{BootKind, BootNamespace, FILE_WRITE, Launch, WAIT, tempdir};

/// The kernel matrix's package cache (`xtask/src/vm/kernels.rs`: `BOOT_COPY_VM_CACHE`, else
/// /var/cache/boot-copy-vm, else target/vm-cache).
fn cache_dirs() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::env::var_os("BOOT_COPY_VM_CACHE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.extend([
        PathBuf::from("/var/cache/boot-copy-vm"),
        workspace.join("target/vm-cache"),
    ]);
    dirs
}

/// A cached 6.12 kernel: its cache entry (with `modules/overlay.ko`) and package name.
fn cached_kernel() -> (PathBuf, String) {
    for dir in cache_dirs() {
        let Ok(entries) = fs::read_dir(dir.join("kernels")) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("linux-image-6.12.")
                && e.path().join("modules/overlay.ko").is_file()
            {
                return (e.path(), name);
            }
        }
    }
    panic!(
        "no 6.12 kernel in the matrix's cache: `cargo xtask test` (or `cargo xtask vm-test 6.12`) downloads it"
    );
}

/// The package's `.deb` in its cache entry, downloaded there (`apt-get download`) if the entry
/// predates the matrix keeping it.
fn kernel_deb(entry: &Path, package: &str) -> PathBuf {
    let find = || {
        fs::read_dir(entry).unwrap().flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with(&format!("{package}_")) && name.ends_with(".deb")).then(|| e.path())
        })
    };
    if let Some(deb) = find() {
        return deb;
    }
    let st = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(entry)
        .status()
        .unwrap();
    assert!(st.success(), "apt-get download {package}: {st}");
    find().expect("apt-get download left no .deb")
}

/// The namespace: ext4 /boot holding the kernel image and its config (as the package installs
/// them), overlaid /usr/lib and /var/lib, and `/usr/lib/modules/VERSION` with depmod's files.
fn namespace(scratch: &Path, entry: &Path, version: &str) -> BootNamespace {
    let ns = BootNamespace::new(BootKind::Ext4).unwrap();
    let o = scratch.join("overlay");
    let m = format!("/usr/lib/modules/{version}");
    ns.sh(&format!(
        "mkdir -p {o} && mount -t tmpfs bt-overlay {o} && \
         for d in usr var; do mkdir -p {o}/$d/upper {o}/$d/work; done && \
         mount -t overlay bt-usr -o lowerdir=/usr/lib,upperdir={o}/usr/upper,workdir={o}/usr/work /usr/lib && \
         mount -t overlay bt-var -o lowerdir=/var/lib,upperdir={o}/var/upper,workdir={o}/var/work /var/lib && \
         mkdir -p {m}/kernel/fs/overlayfs && cp {e}/modules/overlay.ko {m}/kernel/fs/overlayfs/ && \
         echo kernel/fs/overlayfs/overlay.ko > {m}/modules.order && \
         touch {m}/modules.builtin {m}/modules.builtin.modinfo && depmod {version} && \
         cp {e}/vmlinuz /boot/vmlinuz-{version} && \
         printf 'CONFIG_RD_GZIP=y\\nCONFIG_RD_ZSTD=y\\n' > /boot/config-{version} && \
         mkdir /boot/grub",
        o = o.display(),
        e = entry.display(),
    ))
    .unwrap();
    ns
}

/// A scratch root for `dpkg --root`: a dpkg database of its own (a copy of the host's list of
/// installed packages, which meets the kernel package's dependencies), /usr an overlay of the
/// host's (the maintainer scripts run chrooted there), and `boot` the watched /boot.
fn dpkg_root(ns: &BootNamespace, root: &Path) {
    ns.sh(&format!(
        "mkdir -p {r}/usr {r}/boot {r}/dev {r}/etc {r}/tmp {r}/var/lib/dpkg/info {r}/var/lib/dpkg/updates \
           {r}/.usr && \
         cp /var/lib/dpkg/status {r}/var/lib/dpkg/status && touch {r}/var/lib/dpkg/available && \
         for l in bin sbin lib lib64; do ln -s usr/$l {r}/$l; done && \
         mount -t tmpfs bt-root-usr {r}/.usr && mkdir {r}/.usr/upper {r}/.usr/work && \
         mount -t overlay bt-root-usr -o lowerdir=/usr,upperdir={r}/.usr/upper,workdir={r}/.usr/work {r}/usr && \
         mount --bind /dev {r}/dev && mount --bind /boot {r}/boot",
        r = root.display()
    ))
    .unwrap();
}

/// Alerts about this test's doings: every file alert (only this namespace's /boot is watched),
/// and exec alerts naming one of `markers` (other tests' copies into their own /boot alert here
/// too, as every exec on the host is seen).
fn ours<'a>(records: &'a [Value], markers: &[&str]) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter(|r| {
            let text = r.to_string();
            r["event"]["category"][0] == "file" || markers.iter().any(|m| text.contains(m))
        })
        .collect()
}

#[test]
fn debian_boot_tooling_raises_no_alert_a_dd_one() {
    let (entry, package) = cached_kernel();
    let version = package.strip_prefix("linux-image-").unwrap().to_owned();
    let deb = kernel_deb(&entry, &package);
    let scratch = tempdir("bt-tools").unwrap();
    let ns = namespace(&scratch, &entry, &version);
    let root = scratch.join("root");
    dpkg_root(&ns, &root);
    let mut agent = Launch::fresh(AGENT, "bt-tools", "[rules]\nstrict = true\n")
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap();
    ns.sh(&format!(
        "cd / && update-initramfs -c -k {version} && test -s /boot/initrd.img-{version} && \
         grub-mkconfig -o /boot/grub/grub.cfg && grep -q 'vmlinuz-{version}' /boot/grub/grub.cfg && \
         dpkg --root={r} --unpack {deb} && test -s {r}/boot/vmlinuz-{version} && \
         test -s {r}/usr/lib/modules/{version}/modules.order",
        r = root.display(),
        deb = deb.display(),
    ))
    .unwrap();
    let dd = format!("/boot/bt-dd-{}", boot_copy_harness::unique());
    ns.sh(&format!("dd if=/etc/hostname of={dd} status=none"))
        .unwrap();
    // The log is written in order: once the dd's alert is in, the tools' writes were evaluated.
    agent
        .wait_for(*WAIT, |r| r["file"]["path"] == dd.as_str())
        .unwrap();
    let records = agent.records();
    let root_text = root.display().to_string();
    let alerts = ours(&records, &[&version, &root_text, "/boot/grub/grub.cfg"]);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = alerts[0];
    assert_eq!(a["rule"]["id"], FILE_WRITE, "{a:#}");
    assert_eq!(a["file"]["path"], dd.as_str());
    assert_eq!(a["process"]["name"], "dd");
    drop(agent);
    drop(ns);
    let _ = fs::remove_dir_all(&scratch);
}

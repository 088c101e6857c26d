//! `cargo xtask setup`: installs what the build and the tests need, only what is missing.
use crate::status;
use anyhow::{Context as _, bail};
use std::process::Command;

/// Debian packages: LLVM 22 for bpf-linker, clang-22 and libbpf headers for the CO-RE shim,
/// bpftool for BPF run-time statistics, python3-venv for the EQL differential test, rsyslog and
/// logrotate for the sink tests, prometheus for promtool; debootstrap, lintian, dpkg-dev,
/// binutils, man-db, qemu, cpio and busybox-static for the package, the service test under a
/// real systemd and the kernel matrix; auditd, the peer in the exec benchmark; podman and runc
/// for the agent's image and its test, file(1) to check the image's agent is static (runc: Debian's default crun refuses hybrid cgroup hosts
/// whose v2 hierarchy holds a controller); openssh for the session test's real ssh login.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "clang-22",
    "libbpf-dev",
    "bpftool",
    "python3-venv",
    "rsyslog",
    "logrotate",
    "prometheus",
    "debootstrap",
    "lintian",
    "dpkg-dev",
    "binutils",
    "man-db",
    "qemu-system-x86",
    "cpio",
    "busybox-static",
    "auditd",
    "podman",
    "runc",
    "file",
    "openssh-server",
    "openssh-client",
];

/// Boot tooling the file-event tests run as a user would (`update-initramfs`, `grub-mkconfig`).
/// Their maintainer scripts and triggers may write /boot (`update-initramfs -u`), so they are
/// installed in a private mount namespace whose /boot is a tmpfs: the host's /boot is never
/// written.
const BOOT_TOOLS: &[&str] = &["initramfs-tools", "grub-common"];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> anyhow::Result<()> {
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    Ok(())
}

pub fn require_root(what: &str) -> anyhow::Result<()> {
    if !nix_is_root() {
        bail!(
            "{what} needs root (the kernel programs are loaded into the running kernel): run it with sudo"
        );
    }
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn apt_packages() -> anyhow::Result<()> {
    let missing = |list: &[&'static str]| -> Vec<&'static str> {
        list.iter()
            .copied()
            .filter(|p| !dpkg_installed(p))
            .collect()
    };
    let (missing, boot_tools) = (missing(PACKAGES), missing(BOOT_TOOLS));
    if missing.is_empty() && boot_tools.is_empty() {
        return Ok(());
    }
    require_root("installing Debian packages")?;
    eprintln!(
        "setup: installing {}",
        [&missing[..], &boot_tools[..]].concat().join(" ")
    );
    status(Command::new("apt-get").args(["update", "-q"]))?;
    if !missing.is_empty() {
        status(&mut apt_install(Command::new("apt-get"), &missing))?;
    }
    if !boot_tools.is_empty() {
        status(&mut apt_install(boot_in_tmpfs(), &boot_tools))?;
    }
    Ok(())
}

fn apt_install(mut cmd: Command, packages: &[&str]) -> Command {
    cmd.args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// `apt-get`, run in a private mount namespace with a tmpfs over /boot (gone when it exits).
fn boot_in_tmpfs() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs boot-copy-setup /boot && exec apt-get \"$@\"",
        "sh",
    ]);
    cmd
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| o.stdout.ends_with(b"install ok installed"))
        .unwrap_or(false)
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup (the eBPF program builds with the nightly toolchain)")?;
    if !out.status.success() {
        eprintln!("setup: installing the nightly toolchain");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("setup: adding rust-src to nightly");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    let present = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 2 minutes)");
    // Debian ships LLVM 22; bpf-linker's default feature wants LLVM 23.
    status(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
    )
}

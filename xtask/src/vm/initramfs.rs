//! The guest's initramfs: a merged-/usr tree with busybox-static for the init script's tools,
//! the host's real coreutils (`cp`, `mv`, the file scenario's writers) and `dash` as /bin/sh
//! (the scenarios assert `process.name == "cp"`, which a busybox applet would not give) with
//! their shared libraries,
//! and the static agent and test binaries at the absolute paths the test binary has compiled in.
//! One base archive serves every kernel; each kernel's modules (overlayfs, which Debian builds
//! as a module) go in a second archive appended to it — the kernel unpacks concatenated cpios.
use super::{binaries::Binaries, cpio, guest_script, scenarios::Required};
use anyhow::{Context as _, bail};
use std::{
    fs,
    io::BufWriter,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
};

/// Busybox applets the init script, the scenario script and the tests' shell snippets use
/// (never those of `HOST_PROGRAMS`: they must be the real programs).
const APPLETS: &[&str] = &[
    "cat", "date", "dmesg", "env", "grep", "head", "hostname", "id", "insmod", "ip", "kill", "ls",
    "mktemp", "mount", "nsenter", "poweroff", "printf", "rm", "sed", "sleep", "sync", "tail",
    "timeout", "touch", "umount", "uname", "unshare", "wc",
];
/// Real programs from the host, with their libraries: the copy tools and the shell, the
/// coreutils whose writes the file scenario expects to be named after them (dd, tee, mkdir,
/// ln, truncate, chmod), and util-linux's setsid, script and setpriv for the session scenarios
/// (busybox's setsid cannot wait, and busybox has neither of the others).
const HOST_PROGRAMS: &[&str] = &[
    "/bin/cp",
    "/bin/mv",
    "/bin/true",
    "/bin/dash",
    "/bin/dd",
    "/bin/tee",
    "/bin/mkdir",
    "/bin/ln",
    "/bin/truncate",
    "/bin/chmod",
    "/usr/bin/setsid",
    "/usr/bin/script",
    "/usr/bin/setpriv",
];
/// Host programs some tests use when present (the daemon's metrics test runs promtool).
const OPTIONAL_HOST_PROGRAMS: &[&str] = &["/usr/bin/promtool"];

/// Builds the base archive `work/initramfs.cpio` (uncompressed: TCG is slow at gunzip).
pub fn build(bins: &Binaries, required: &Required, work: &Path) -> anyhow::Result<PathBuf> {
    let root = work.join("rootfs");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    skeleton(&root)?;
    install_busybox(&root)?;
    for program in HOST_PROGRAMS {
        install_host_program(&root, Path::new(program))?;
    }
    for program in OPTIONAL_HOST_PROGRAMS
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
    {
        install_host_program(&root, program)?;
    }
    symlink("dash", root.join("usr/bin/sh"))?;
    install_test_binaries(&root, bins)?;
    install_scripts(&root, bins, required)?;
    let out = work.join("initramfs.cpio");
    write_cpio(&root, &out)?;
    Ok(out)
}

fn skeleton(root: &Path) -> anyhow::Result<()> {
    for dir in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc",
        "proc",
        "sys",
        "dev",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    for dir in [
        "tmp",
        "run",
        "root",
        "vmtest",
        "boot",
        "var/tmp",
        "var/lib/dpkg/info",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    for dir in ["tmp", "var/tmp"] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o1777))?;
    }
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        symlink(target, root.join(link))?;
    }
    symlink("usr/lib64", root.join("lib64"))?;
    let etc = root.join("etc");
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(etc.join("group"), "root:x:0:\n")?;
    fs::write(etc.join("hostname"), "vmtest\n")?;
    fs::write(etc.join("machine-id"), "0123456789abcdef0123456789abcdef\n")?;
    fs::write(
        etc.join("os-release"),
        "PRETTY_NAME=\"boot-copy vm-test guest\"\nNAME=\"boot-copy vm-test\"\nID=boot-copy-vmtest\n",
    )?;
    Ok(())
}

fn install_busybox(root: &Path) -> anyhow::Result<()> {
    let busybox = Path::new("/usr/bin/busybox");
    if !busybox.exists() || !is_static(busybox)? {
        bail!(
            "{} is missing or not static: apt-get install busybox-static",
            busybox.display()
        );
    }
    copy(busybox, &root.join("usr/bin/busybox"))?;
    for applet in APPLETS {
        symlink("busybox", root.join("usr/bin").join(applet))?;
    }
    Ok(())
}

/// Copies the host's `program` (resolved: /bin/cp is /usr/bin/cp on merged /usr) and the
/// shared libraries `ldd` names, each to the same path in the guest.
fn install_host_program(root: &Path, program: &Path) -> anyhow::Result<()> {
    let real =
        fs::canonicalize(program).with_context(|| format!("resolving {}", program.display()))?;
    copy(&real, &under(root, &real))?;
    for lib in shared_libraries(&real)? {
        let dest = under(root, &lib);
        if !dest.exists() {
            copy(&lib, &dest)?;
        }
    }
    Ok(())
}

/// The libraries (and loader) `ldd` lists for `program`.
fn shared_libraries(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .context("running ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// The agent and the test binary at their own absolute paths (the test binary runs
/// `CARGO_BIN_EXE_boot-copy-agent`), plus the data the tests read through
/// `CARGO_MANIFEST_DIR/../tests/data`.
fn install_test_binaries(root: &Path, bins: &Binaries) -> anyhow::Result<()> {
    for bin in [&bins.agent, &bins.tests] {
        if !is_static(bin)? {
            bail!(
                "{} is dynamically linked; the static build did not take",
                bin.display()
            );
        }
        copy(bin, &under(root, bin))?;
    }
    let ws = crate::workspace_root();
    fs::create_dir_all(under(root, &ws.join("boot-copy-agent")))?;
    let data = ws.join("tests/data");
    for entry in fs::read_dir(&data).with_context(|| format!("reading {}", data.display()))? {
        let path = entry?.path();
        if path.is_file() {
            copy(&path, &under(root, &path))?;
        }
    }
    Ok(())
}

fn install_scripts(root: &Path, bins: &Binaries, required: &Required) -> anyhow::Result<()> {
    copy(&guest_script("init"), &root.join("init"))?;
    copy(
        &guest_script("scenarios.sh"),
        &root.join("vmtest/scenarios.sh"),
    )?;
    let env = format!(
        "export AGENT='{}'\nexport TESTS='{}'\nexport SCENARIOS='{}'\n",
        bins.agent.display(),
        bins.tests.display(),
        required.names.join(" ")
    );
    fs::write(root.join("vmtest/env"), env)?;
    Ok(())
}

fn write_cpio(root: &Path, out: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = cpio::Writer::new(BufWriter::new(file));
    w.add_tree(root)?;
    // Without /dev/console in the initramfs, init starts with no stdout.
    w.add_char_device("dev/console", 5, 1)?;
    w.finish()?;
    Ok(())
}

/// `base` followed by an archive holding `modules` as /vmtest/modules/NAME, written to `out`.
pub fn with_modules(base: &Path, modules: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    fs::copy(base, out)
        .with_context(|| format!("copying {} to {}", base.display(), out.display()))?;
    let file = fs::OpenOptions::new().append(true).open(out)?;
    let mut w = cpio::Writer::new(BufWriter::new(file));
    w.add_file("vmtest/modules", 0o040_755, &[])?;
    for module in modules {
        let name = module
            .file_name()
            .context("module without a name")?
            .to_string_lossy();
        let data = fs::read(module).with_context(|| format!("reading {}", module.display()))?;
        w.add_file(&format!("vmtest/modules/{name}"), 0o100_644, &data)?;
    }
    w.finish()?;
    Ok(())
}

/// `path` (absolute) inside `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Copies a file (following symlinks), creating the parent directories and keeping the mode.
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// An ELF file without a PT_INTERP program header needs no dynamic loader.
fn is_static(path: &Path) -> anyhow::Result<bool> {
    let elf = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        bail!("{} is not a little-endian ELF64 file", path.display());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{}: truncated ELF header", path.display());
    };
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum as usize).any(|i| {
        let at = phoff as usize + i * phentsize as usize;
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) == PT_INTERP)
    });
    Ok(!interp)
}

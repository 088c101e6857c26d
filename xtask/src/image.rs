//! `cargo xtask image`: the agent as an OCI image, `localhost/boot-copy-agent:VERSION` (and
//! `:latest`), built locally with no registry: a root file system made here (the statically
//! linked release agent, the packaged configuration and rules, and the few files and mount points
//! it needs), packed by `podman import`. How it runs on a host is
//! `deploy/podman/boot-copy-agent.sh` (podman) or `deploy/kubernetes/daemonset.yaml`.
use crate::{status, vm::binaries, workspace_root};
use anyhow::{Context as _, bail};
use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
};

pub const REPOSITORY: &str = "localhost/boot-copy-agent";
const AGENT: &str = "boot-copy-agent";

/// What goes into the image besides the agent: (source in the workspace, path in the image).
/// The configuration and rules are the package's, so the image runs as the service does.
const FILES: &[(&str, &str)] = &[
    ("systemd/default-config.toml", "etc/boot-copy/config.toml"),
    (
        "rules/boot-file-copy.toml",
        "etc/boot-copy/rules/boot-file-copy.toml",
    ),
    (
        "rules/boot-file-copy-strict.toml",
        "etc/boot-copy/rules/boot-file-copy-strict.toml",
    ),
    (
        "rules/boot-file-write.toml",
        "etc/boot-copy/rules/boot-file-write.toml",
    ),
];

/// Mount points the run command fills from the host (see `deploy/podman/boot-copy-agent.sh`),
/// and the agent's log directory; mode 0755 unless named.
const DIRS: &[(&str, u32)] = &[
    ("boot", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("usr/bin", 0o755),
    ("var/log/boot-copy", 0o750),
];

/// Users and groups for a run without the host's files mounted (root only).
const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\n";

/// Builds the static agent and the image; returns the image's `REPOSITORY:VERSION` name.
pub fn run() -> anyhow::Result<String> {
    crate::setup::require_root("building the image (podman's root storage)")?;
    let agent = build_static_agent()?;
    let out = workspace_root().join("target/image");
    let rootfs = out.join("rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs).with_context(|| format!("removing {}", rootfs.display()))?;
    }
    stage(&rootfs, &agent)?;
    let tar = out.join("rootfs.tar");
    status(
        Command::new("tar")
            .args(["--create", "--numeric-owner", "--owner=0", "--group=0"])
            .arg("--file")
            .arg(&tar)
            .arg("--directory")
            .arg(&rootfs)
            .arg("."),
    )?;
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("{REPOSITORY}:{version}");
    let previous = image_id(&name);
    import(&tar, &name, version)?;
    status(Command::new("podman").args(["tag", &name, &format!("{REPOSITORY}:latest")]))?;
    remove_replaced(previous, &name);
    println!("{name}");
    Ok(name)
}

/// The agent as the kernel matrix's guests run it: release, statically linked, built with the
/// same target and flags as `vm-test`'s binaries so that the two share one build.
fn build_static_agent() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(
        Command::new(cargo)
            .args(["build", "--release", "--target", binaries::TRIPLE])
            .args(["--package", AGENT, "--bin", AGENT])
            .env("RUSTFLAGS", binaries::static_rustflags())
            .current_dir(workspace_root()),
    )?;
    let agent = workspace_root()
        .join("target")
        .join(binaries::TRIPLE)
        .join("release")
        .join(AGENT);
    check_static(&agent)?;
    Ok(agent)
}

/// The image has no C library: a dynamically linked agent would not start in it.
fn check_static(agent: &Path) -> anyhow::Result<()> {
    let out = Command::new("file")
        .arg("--brief")
        .arg(agent)
        .output()
        .context("running file(1)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("statically linked") && !text.contains("static-pie linked") {
        bail!("{} is not statically linked: {text}", agent.display());
    }
    Ok(())
}

fn stage(rootfs: &Path, agent: &Path) -> anyhow::Result<()> {
    for (dir, mode) in DIRS {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
    }
    // Debian's merged /usr: /bin/cp is /usr/bin/cp, where the host's cp and mv are mounted.
    symlink("usr/bin", rootfs.join("bin"))?;
    install(agent, &rootfs.join("usr/bin").join(AGENT), 0o755)?;
    let root = workspace_root();
    for (source, dest) in FILES {
        install(&root.join(source), &rootfs.join(dest), 0o644)?;
    }
    write(&rootfs.join("etc/passwd"), PASSWD)?;
    write(&rootfs.join("etc/group"), GROUP)?;
    Ok(())
}

fn install(source: &Path, dest: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(source, dest)
        .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// The id of image `name`, if there is one.
fn image_id(name: &str) -> Option<String> {
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes the image a rebuild replaced (now untagged), unless a container still uses it.
fn remove_replaced(previous: Option<String>, name: &str) {
    if let Some(old) = previous.filter(|old| image_id(name).as_ref() != Some(old)) {
        let _ = Command::new("podman").args(["rmi", &old]).output();
    }
}

/// `podman import` with the image's command and labels.
fn import(tar: &Path, name: &str, version: &str) -> anyhow::Result<()> {
    let changes = [
        format!(r#"ENTRYPOINT ["/usr/bin/{AGENT}"]"#),
        r#"CMD ["run"]"#.to_string(),
        format!("LABEL org.opencontainers.image.title={AGENT}"),
        format!("LABEL org.opencontainers.image.version={version}"),
        "LABEL org.opencontainers.image.description=\"Boot File Copy detector: eBPF exec sensor \
         plus Elastic's rule; run with the host's pid namespace (deploy/)\""
            .to_string(),
    ];
    let mut cmd = Command::new("podman");
    cmd.arg("import");
    for change in &changes {
        cmd.args(["--change", change]);
    }
    cmd.args(["--message", &format!("{AGENT} {version}")])
        .arg(tar)
        .arg(name);
    status(&mut cmd)
}

//! `cargo xtask package`: the Debian package `target/debian/boot-copy-agent_<version>_<arch>.deb`.
//!
//! Builds the release agent, stages the package tree under `target/debian/` from `systemd/`
//! (unit, default configuration, man page, logrotate snippet, `debian/` metadata and maintainer
//! scripts) and `rules/`, checks that the staged configuration and rules load, that the man page
//! names every subcommand and option of `boot-copy-agent --help`, and that
//! `systemd-analyze verify` accepts the unit, then builds with
//! `dpkg-deb --build --root-owner-group` and fails if `lintian` reports an error.
use crate::{status, workspace_root};
use anyhow::{Context as _, bail};
use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const PACKAGE: &str = "boot-copy-agent";
/// Debian revision appended to the workspace version.
const DEBIAN_REVISION: &str = "1";

/// What goes where: (source relative to the workspace, destination in the package, mode).
const FILES: &[(&str, &str, u32)] = &[
    (
        "systemd/boot-copy-agent.service",
        "lib/systemd/system/boot-copy-agent.service",
        0o644,
    ),
    (
        "systemd/default-config.toml",
        "etc/boot-copy/config.toml",
        0o644,
    ),
    (
        "rules/boot-file-copy.toml",
        "etc/boot-copy/rules/boot-file-copy.toml",
        0o644,
    ),
    (
        "systemd/boot-copy.logrotate",
        "etc/logrotate.d/boot-copy",
        0o644,
    ),
    (
        "systemd/debian/copyright",
        "usr/share/doc/boot-copy-agent/copyright",
        0o644,
    ),
    (
        "systemd/debian/lintian-overrides",
        "usr/share/lintian/overrides/boot-copy-agent",
        0o644,
    ),
];

/// Maintainer scripts copied as they are (`conffiles` is generated: every file under /etc).
const CONTROL_FILES: &[(&str, u32)] = &[("postinst", 0o755), ("prerm", 0o755), ("postrm", 0o755)];

/// Builds the package and returns the path of the `.deb`.
pub fn run() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    crate::cargo(&["build", "--release", "--package", PACKAGE])?;
    let agent = root.join("target/release").join(PACKAGE);

    let version = format!("{}-{DEBIAN_REVISION}", env!("CARGO_PKG_VERSION"));
    check_changelog(&root.join("systemd/debian/changelog"), &version)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let name = format!("{PACKAGE}_{version}_{arch}");
    let out_dir = root.join("target/debian");
    let stage = out_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    fs::create_dir_all(&stage)?;

    stage_files(&root, &agent, &stage)?;
    check_man_page(&agent, &root.join("systemd/boot-copy-agent.8"))?;
    check_config(&agent, &stage)?;
    verify_unit(&stage)?;
    write_control(&root, &stage, &version, &arch)?;

    let deb = out_dir.join(format!("{name}.deb"));
    status(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&stage)
            .arg(&deb),
    )?;
    lintian(&deb)?;
    eprintln!("package: {}", deb.display());
    Ok(deb)
}

/// The newest changelog entry must be for the version being built.
fn check_changelog(changelog: &Path, version: &str) -> anyhow::Result<()> {
    let text = fs::read_to_string(changelog)
        .with_context(|| format!("reading {}", changelog.display()))?;
    let first = text.lines().next().unwrap_or_default();
    let expected = format!("{PACKAGE} ({version}) ");
    if !first.starts_with(&expected) {
        bail!(
            "{}: the newest entry is `{first}`, not version {version}; add an entry for it",
            changelog.display()
        );
    }
    Ok(())
}

fn stage_files(root: &Path, agent: &Path, stage: &Path) -> anyhow::Result<()> {
    let bin = stage.join("usr/bin").join(PACKAGE);
    install(agent, &bin, 0o755)?;
    // As dh_strip does: debug symbols and notes out of the shipped binary.
    status(
        Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(&bin),
    )?;
    for (src, dest, mode) in FILES {
        install(&root.join(src), &stage.join(dest), *mode)?;
    }
    // Every bundled rule, where the packaged configuration's `[rules] path` points.
    let mut rules = 0;
    for entry in fs::read_dir(root.join("rules"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path.file_name().expect("a file");
            install(&path, &stage.join("etc/boot-copy/rules").join(name), 0o644)?;
            rules += 1;
        }
    }
    if rules == 0 {
        bail!("no rules/*.toml to package");
    }
    let man = stage.join("usr/share/man/man8/boot-copy-agent.8.gz");
    gzip(&root.join("systemd/boot-copy-agent.8"), &man)?;
    let changelog = stage.join("usr/share/doc/boot-copy-agent/changelog.Debian.gz");
    gzip(&root.join("systemd/debian/changelog"), &changelog)?;
    // Directories 0755 whatever the umask.
    set_dir_modes(stage)
}

fn install(src: &Path, dest: &Path, mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(dest.parent().expect("has a parent"))?;
    fs::copy(src, dest)
        .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `gzip -9n` (no name or time stamp: reproducible, as lintian wants).
fn gzip(src: &Path, dest: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dest.parent().expect("has a parent"))?;
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    status(
        Command::new("gzip")
            .args(["-9n", "-c"])
            .arg(src)
            .stdout(out),
    )?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn set_dir_modes(dir: &Path) -> anyhow::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            set_dir_modes(&entry.path())?;
        }
    }
    Ok(())
}

/// Every subcommand and option that `boot-copy-agent --help` lists must be in the man page.
fn check_man_page(agent: &Path, man: &Path) -> anyhow::Result<()> {
    let page = fs::read_to_string(man).with_context(|| format!("reading {}", man.display()))?;
    let page = page.replace("\\-", "-");
    let help = output(Command::new(agent).arg("--help"))?;
    let mut missing = Vec::new();
    let mut commands = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            match line.split_whitespace().next() {
                Some(cmd) if line.starts_with("  ") => commands.push(cmd.to_owned()),
                _ => in_commands = false,
            }
        }
    }
    if commands.is_empty() {
        bail!("found no commands in `{} --help`:\n{help}", agent.display());
    }
    for cmd in &commands {
        let listed = page.lines().any(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some(".B" | ".BR" | ".TP")) && words.next() == Some(cmd)
        });
        if !listed {
            missing.push(format!("command `{cmd}`"));
        }
        let sub = if cmd == "help" {
            help.clone()
        } else {
            output(Command::new(agent).args([cmd.as_str(), "--help"]))?
        };
        for word in sub.split_whitespace() {
            let Some(name) = word.strip_prefix("--") else {
                continue;
            };
            let len = name
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(name.len());
            let option = &word[..2 + len];
            if len > 0 && !page.contains(option) {
                missing.push(format!("option `{option}` (of `{cmd}`)"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        bail!(
            "{} does not document {} from `boot-copy-agent --help`",
            man.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// The staged configuration and rules load with the agent being packaged (the agent requires
/// them to be root-owned, so this needs root; others get a warning).
fn check_config(agent: &Path, stage: &Path) -> anyhow::Result<()> {
    if !nix_is_root() {
        eprintln!("package: not root, so the staged configuration is not checked");
        return Ok(());
    }
    let config = stage.join("etc/boot-copy/config.toml");
    let rules = stage.join("etc/boot-copy/rules");
    let out = Command::new(agent)
        .arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(&rules)
        .output()
        .context("running boot-copy-agent check")?;
    if !out.status.success() {
        bail!(
            "the packaged configuration or rules do not load:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `systemd-analyze verify` on the staged unit, finding the man page in the staging tree. The
/// binary is not installed on this machine, so that one complaint is expected here; the
/// service test verifies the installed unit again in the guest, where nothing is missing.
fn verify_unit(stage: &Path) -> anyhow::Result<()> {
    if which("systemd-analyze").is_err() {
        eprintln!("package: systemd-analyze not found; the unit is verified only by service-test");
        return Ok(());
    }
    let unit = stage.join("lib/systemd/system/boot-copy-agent.service");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", stage.join("usr/share/man"))
        .stdin(Stdio::null())
        .output()
        .context("running systemd-analyze verify")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = Path::new("/usr/bin").join(PACKAGE).exists();
    let expected = format!("Command /usr/bin/{PACKAGE} is not executable");
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| installed || !l.contains(&expected))
        .collect();
    if !problems.is_empty() {
        bail!(
            "systemd-analyze verify {} is not clean:\n{}",
            unit.display(),
            problems.join("\n")
        );
    }
    Ok(())
}

fn write_control(root: &Path, stage: &Path, version: &str, arch: &str) -> anyhow::Result<()> {
    let debian = root.join("systemd/debian");
    let control_dir = stage.join("DEBIAN");
    fs::create_dir_all(&control_dir)?;
    fs::set_permissions(&control_dir, fs::Permissions::from_mode(0o755))?;
    for (file, mode) in CONTROL_FILES {
        install(&debian.join(file), &control_dir.join(file), *mode)?;
    }
    let shlibs = shlibs_depends(&stage.join("usr/bin").join(PACKAGE))?;
    let template = fs::read_to_string(debian.join("control"))?;
    let control = template
        .replace("@VERSION@", version)
        .replace("@ARCH@", arch)
        .replace("@INSTALLED_SIZE@", &installed_size(stage)?.to_string())
        .replace("@SHLIBS_DEPENDS@", &shlibs);
    if let Some(line) = control.lines().find(|l| has_placeholder(l)) {
        bail!("systemd/debian/control has an unknown placeholder: {line}");
    }
    let path = control_dir.join("control");
    fs::write(&path, control)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    write_conffiles(stage)?;
    write_md5sums(stage)
}

/// Every file under /etc is a conffile (as debhelper does it): dpkg keeps local changes on
/// upgrade and removes them only on purge.
fn write_conffiles(stage: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect_files(stage, &stage.join("etc"), &mut files)?;
    files.sort();
    let text: String = files.iter().map(|f| format!("/{f}\n")).collect();
    let path = stage.join("DEBIAN/conffiles");
    fs::write(&path, text)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// `@NAME@` with NAME in capitals and underscores.
fn has_placeholder(line: &str) -> bool {
    let parts: Vec<&str> = line.split('@').collect();
    parts.len() > 2
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// The shared-library dependencies of the binary, as dpkg-shlibdeps computes them (it wants a
/// `debian/control` in its working directory; a throw-away one will do).
fn shlibs_depends(binary: &Path) -> anyhow::Result<String> {
    let dir = binary
        .ancestors()
        .nth(3)
        .expect("stage/usr/bin/x")
        .with_extension("shlibdeps");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("debian"))?;
    fs::write(
        dir.join("debian/control"),
        format!("Source: boot-copy\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let out = output(
        Command::new("dpkg-shlibdeps")
            .args(["-O", "--warnings=0"])
            .arg(binary)
            .current_dir(&dir),
    )?;
    fs::remove_dir_all(&dir)?;
    let deps = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default()
        .trim()
        .to_owned();
    if deps.is_empty() {
        bail!(
            "dpkg-shlibdeps found no dependencies for {}",
            binary.display()
        );
    }
    Ok(deps)
}

/// Installed-Size as dpkg-gencontrol computes it: KiB, each file rounded up.
fn installed_size(dir: &Path) -> anyhow::Result<u64> {
    let mut kib = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == "DEBIAN" {
            continue;
        }
        let meta = entry.metadata()?;
        kib += if meta.is_dir() {
            1 + installed_size(&entry.path())?
        } else {
            meta.len().div_ceil(1024)
        };
    }
    Ok(kib)
}

fn write_md5sums(stage: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect_files(stage, stage, &mut files)?;
    files.sort();
    let conffiles = fs::read_to_string(stage.join("DEBIAN/conffiles"))?;
    let mut out = fs::File::create(stage.join("DEBIAN/md5sums"))?;
    for rel in files {
        // dpkg tracks conffiles' sums itself.
        if conffiles.lines().any(|c| c.trim_start_matches('/') == rel) {
            continue;
        }
        let sum = output(Command::new("md5sum").arg(stage.join(&rel)))?;
        let sum = sum.split_whitespace().next().unwrap_or_default();
        writeln!(out, "{sum}  {rel}")?;
    }
    drop(out);
    fs::set_permissions(
        stage.join("DEBIAN/md5sums"),
        fs::Permissions::from_mode(0o644),
    )?;
    Ok(())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if path != root.join("DEBIAN") {
                collect_files(root, &path, out)?;
            }
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Runs lintian (installing it when missing); fails on errors, lists warnings.
fn lintian(deb: &Path) -> anyhow::Result<()> {
    if which("lintian").is_err() {
        if !nix_is_root() {
            bail!("lintian is not installed: `apt-get install lintian` (or run as root)");
        }
        eprintln!("package: installing lintian");
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends", "lintian"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let out = Command::new("lintian")
        .args([
            "--fail-on",
            "error",
            "--display-info",
            "--tag-display-limit",
            "0",
        ])
        .arg(deb)
        .output()
        .context("running lintian")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = text.lines().filter(|l| l.starts_with("E: ")).count();
    let warnings = text.lines().filter(|l| l.starts_with("W: ")).count();
    eprint!("{text}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("package: lintian: {errors} errors, {warnings} warnings");
    if errors > 0 || !out.status.success() {
        bail!("lintian reports errors for {}", deb.display());
    }
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} not found in PATH"))
}

fn nix_is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys the packaged configuration sets to something else than the built-in default.
    const PACKAGED: &[&str] = &["rules.path", "sinks.alert_log.max_bytes"];

    /// `(table, key, value)` of every `key = value` line in the packaged configuration, commented
    /// out or not, and `[[exceptions...]]` examples excepted.
    fn config_keys(text: &str) -> Vec<(String, String, String)> {
        let mut table = String::new();
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = name.to_owned();
                continue;
            }
            let body = line.trim_start_matches('#').trim();
            let Some((key, value)) = body.split_once(" = ") else {
                continue;
            };
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                keys.push((table.clone(), key.to_owned(), value.trim().to_owned()));
            }
        }
        keys
    }

    /// The packaged configuration lists every key of the README's configuration table, with
    /// the README's default where that is a literal (keys it sets on purpose say "PACKAGED").
    #[test]
    fn default_config_lists_every_documented_key_with_its_default() {
        let root = workspace_root();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let config = fs::read_to_string(root.join("systemd/default-config.toml")).unwrap();
        let keys = config_keys(&config);
        let mut problems = Vec::new();
        let mut documented = 0;
        // Only the tables of the README's Configuration section.
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Configuration"))
            .expect("README has a Configuration section");
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (Some(name), Some(default)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let name = name.trim_matches('`');
            let Some((table, key)) = name.rsplit_once('.') else {
                continue;
            };
            if table.starts_with("exceptions") {
                continue;
            }
            documented += 1;
            let found: Vec<&(String, String, String)> = keys
                .iter()
                .filter(|(t, k, _)| t == table && k == key)
                .collect();
            if found.is_empty() {
                problems.push(format!("{name} is missing"));
                continue;
            }
            let literal = default.starts_with('`') && default.ends_with('`') && default.len() > 2;
            let want = default.trim_matches('`').trim_matches('"');
            let packaged = PACKAGED.contains(&name);
            if literal && !packaged && !found.iter().any(|(_, _, v)| v.trim_matches('"') == want) {
                problems.push(format!(
                    "{name}: README says {default}, config has {found:?}"
                ));
            }
        }
        assert!(
            documented > 20,
            "found only {documented} keys in the README"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn placeholders() {
        assert!(has_placeholder("Version: @VERSION@"));
        assert!(has_placeholder("Depends: @SHLIBS_DEPENDS@, procps"));
        assert!(!has_placeholder("Maintainer: A <a@b.example>"));
        assert!(!has_placeholder("Version: 1.0"));
    }
}

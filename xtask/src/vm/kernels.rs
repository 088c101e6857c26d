//! Which kernels the matrix runs, and their cache: Debian kernel packages downloaded once with
//! `apt-get download` (bullseye through a private apt state, never the machine's apt sources),
//! reduced to their `vmlinuz` under `CACHE/kernels/PACKAGE/vmlinuz` (the `.deb` kept beside it,
//! for `tests/boot_tools.rs`), plus the uncompressed ELF `vmlinux` beside it: QEMU boots that
//! directly through its PVH entry, which skips about 6 s of decompression under TCG per boot.
use anyhow::{Context as _, anyhow, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const DEFAULT_CACHE: &str = "/var/cache/boot-copy-vm";
const BULLSEYE_SOURCE: &str = "deb http://deb.debian.org/debian bullseye main\n";

/// A Debian kernel series: packages named `PREFIX<number>SUFFIX`, the highest number wins.
pub struct Series {
    pub name: &'static str,
    prefix: &'static str,
    suffix: &'static str,
    /// From bullseye through the private apt state (else from the machine's apt).
    bullseye: bool,
}

const SERIES: [Series; 3] = [
    Series {
        name: "5.10",
        prefix: "linux-image-5.10.0-",
        suffix: "-amd64",
        bullseye: true,
    },
    Series {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
        bullseye: false,
    },
    Series {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
        bullseye: false,
    },
];

/// One column of the matrix, as named on the command line.
pub enum Target {
    Series(&'static Series),
    Host,
    Image(PathBuf),
}

/// A target ready to run: `image` (what QEMU's -kernel gets) is `None` for the host kernel;
/// `modules` are loaded in the guest before the scenarios.
pub struct Prepared {
    pub label: String,
    pub package: Option<String>,
    pub image: Option<PathBuf>,
    pub modules: Vec<PathBuf>,
}

impl Target {
    pub fn parse(name: &str) -> anyhow::Result<Target> {
        if name == "host" {
            return Ok(Target::Host);
        }
        if let Some(s) = SERIES.iter().find(|s| s.name == name) {
            return Ok(Target::Series(s));
        }
        let path = Path::new(name);
        if path.is_file() {
            return Ok(Target::Image(path.to_path_buf()));
        }
        let known: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
        bail!(
            "unknown kernel {name:?}: expected host, {}, or a bzImage path",
            known.join(", ")
        )
    }

    /// Resolves the kernel, downloading it into `cache` when it is not there yet.
    pub fn prepare(&self, cache: &Path) -> anyhow::Result<Prepared> {
        Ok(match self {
            Target::Host => Prepared {
                label: "host".into(),
                package: None,
                image: None,
                modules: Vec::new(),
            },
            Target::Image(path) => Prepared {
                label: file_label(path),
                package: None,
                image: Some(path.clone()),
                modules: Vec::new(),
            },
            Target::Series(series) => {
                let package = series.resolve(cache)?;
                let entry = fetch(cache, &package, series.bullseye)?;
                Prepared {
                    label: series.name.into(),
                    image: Some(uncompressed(&entry.join("vmlinuz"))?),
                    modules: modules(&entry)?,
                    package: Some(package),
                }
            }
        })
    }
}

impl Prepared {
    pub fn describe(&self) -> String {
        match (&self.package, &self.image) {
            (Some(p), _) => p.clone(),
            (None, Some(v)) => v.display().to_string(),
            (None, None) => format!("host kernel {}", host_release()),
        }
    }
}

impl Series {
    /// The package to use: the newest the apt state lists (bookworm: the machine's apt, read
    /// locally). Bullseye's private lists are only fetched when no 5.10 kernel is cached yet.
    fn resolve(&self, cache: &Path) -> anyhow::Result<String> {
        let cached = self.newest(cached_packages(cache)?);
        if self.bullseye {
            if let Some(p) = cached {
                return Ok(p);
            }
            bullseye_update(cache)?;
        }
        let listed = apt_cache_search(cache, self)?;
        self.newest(listed)
            .or(cached)
            .ok_or_else(|| anyhow!("no {}NUMBER{} package in apt", self.prefix, self.suffix))
    }

    /// The package of this series with the highest number among `names`.
    fn newest(&self, names: impl IntoIterator<Item = String>) -> Option<String> {
        names
            .into_iter()
            .filter_map(|n| Some((self.number(&n)?, n)))
            .max()
            .map(|(_, n)| n)
    }

    fn number(&self, package: &str) -> Option<u64> {
        let middle = package
            .strip_prefix(self.prefix)?
            .strip_suffix(self.suffix)?;
        middle.parse().ok()
    }
}

/// `BOOT_COPY_VM_CACHE`, else /var/cache/boot-copy-vm (outside the clone, so CI keeps it),
/// else target/vm-cache when /var/cache is not writable.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("BOOT_COPY_VM_CACHE") {
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok(dir);
    }
    let dir = PathBuf::from(DEFAULT_CACHE);
    if fs::create_dir_all(&dir).is_ok() && writable(&dir) {
        return Ok(dir);
    }
    let dir = crate::workspace_root().join("target/vm-cache");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let ok = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(probe);
    ok
}

fn cached_packages(cache: &Path) -> anyhow::Result<Vec<String>> {
    let dir = cache.join("kernels");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("vmlinuz").is_file() && entry.path().join("modules").is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// Modules the scenarios need that Debian does not build in (daemon tests mount overlayfs).
const MODULES: [&str; 1] = ["overlay"];

/// The cache entry of `package` (`vmlinuz` and `modules/*.ko`), downloaded and extracted unless
/// already cached.
fn fetch(cache: &Path, package: &str, bullseye: bool) -> anyhow::Result<PathBuf> {
    let dest = cache.join("kernels").join(package);
    if dest.join("vmlinuz").is_file() && dest.join("modules").is_dir() {
        return Ok(dest);
    }
    eprintln!("vm-test: downloading {package} into {}", cache.display());
    let tmp = cache.join(format!("download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut cmd = apt(cache, "apt-get", bullseye);
    crate::status(cmd.arg("download").arg(package).current_dir(&tmp))?;
    let deb = find_deb(&tmp, package)?;
    let unpacked = tmp.join("root");
    extract(&deb, &unpacked)?;
    let entry = tmp.join("entry");
    fs::create_dir_all(entry.join("modules"))?;
    fs::rename(find_vmlinuz(&unpacked)?, entry.join("vmlinuz"))?;
    for module in MODULES {
        match find_module(&unpacked, module)? {
            Some(ko) => {
                decompress_module(&ko, &entry.join("modules").join(format!("{module}.ko")))?
            }
            None => eprintln!("vm-test: {package} has no {module} module"),
        }
    }
    // Each part is renamed into place whole, vmlinuz before modules/ (the mark of a complete
    // entry); parts already there stay, as other runs may be using them.
    fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    for part in ["vmlinuz", "modules"] {
        if !dest.join(part).exists() {
            fs::rename(entry.join(part), dest.join(part))
                .with_context(|| format!("storing {}", dest.join(part).display()))?;
        }
    }
    // The package itself stays too: the boot-tooling test unpacks it with dpkg.
    let kept = dest.join(deb.file_name().context("the package's file name")?);
    if !kept.exists() {
        fs::rename(&deb, &kept).with_context(|| format!("storing {}", kept.display()))?;
    }
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    Ok(dest)
}

/// The modules of a cache entry.
fn modules(entry: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = entry.join("modules");
    let mut found = Vec::new();
    for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        found.push(e?.path());
    }
    found.sort();
    Ok(found)
}

/// Compressed payloads a bzImage may carry: magic and the command that decompresses it.
const PAYLOADS: [(&[u8], &str); 3] = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
];

/// The kernel ELF inside `vmlinuz` (cached as `vmlinux` beside it), found as
/// scripts/extract-vmlinux does: try each payload magic until one decompresses to an ELF.
/// Falls back to `vmlinuz` itself when none does.
fn uncompressed(vmlinuz: &Path) -> anyhow::Result<PathBuf> {
    let vmlinux = vmlinuz.with_file_name("vmlinux");
    if vmlinux.is_file() {
        return Ok(vmlinux);
    }
    let image = fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let tmp = vmlinuz.with_file_name(format!("vmlinux.tmp-{}", std::process::id()));
    for (magic, tool) in PAYLOADS {
        let starts = image
            .windows(magic.len())
            .enumerate()
            .filter(|(_, w)| w == &magic);
        for (at, _) in starts.take(4) {
            if decompress(tool, &image[at..], &tmp)? {
                fs::rename(&tmp, &vmlinux)?;
                return Ok(vmlinux);
            }
        }
    }
    let _ = fs::remove_file(&tmp);
    eprintln!(
        "vm-test: no ELF found inside {}; booting it compressed",
        vmlinuz.display()
    );
    Ok(vmlinuz.to_path_buf())
}

/// Runs `tool -dc` on `data` into `out`; true when the output is an ELF file. The tool's exit
/// status is ignored: the payload is followed by bytes that are not part of it.
fn decompress(tool: &str, data: &[u8], out: &Path) -> anyhow::Result<bool> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {tool}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    // The tool may stop reading early; a broken pipe here is expected.
    let _ = std::io::Write::write_all(&mut stdin, data);
    drop(stdin);
    child.wait()?;
    let mut magic = [0u8; 4];
    let mut f = fs::File::open(out)?;
    Ok(std::io::Read::read_exact(&mut f, &mut magic).is_ok() && &magic == b"\x7fELF")
}

fn find_deb(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{package}_");
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(dir.join(name));
        }
    }
    bail!(
        "apt-get download left no {package}_*.deb in {}",
        dir.display()
    )
}

/// Extracts from `deb` into `dir` only `boot/vmlinuz-*` and the wanted modules (not the
/// ~400 MB of all modules).
fn extract(deb: &Path, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut unpack = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar_input = unpack.stdout.take().expect("piped");
    let patterns = MODULES.iter().map(|m| format!("./lib/modules/*/{m}.ko*"));
    // tar fails when a pattern matches nothing; a missing module is reported by the caller.
    let _ = Command::new("tar")
        .args(["-x", "--wildcards", "./boot/vmlinuz-*"])
        .args(patterns)
        .current_dir(dir)
        .stdin(tar_input)
        .stderr(Stdio::null())
        .status()
        .context("running tar")?;
    let dpkg = unpack.wait()?;
    if !dpkg.success() {
        bail!("dpkg-deb --fsys-tarfile {} failed: {dpkg}", deb.display());
    }
    Ok(())
}

fn find_vmlinuz(unpacked: &Path) -> anyhow::Result<PathBuf> {
    let boot = unpacked.join("boot");
    let entry = fs::read_dir(&boot)
        .with_context(|| format!("no boot/ in the package ({})", boot.display()))?
        .next()
        .ok_or_else(|| anyhow!("no vmlinuz in {}", boot.display()))??;
    Ok(entry.path())
}

/// `lib/modules/*/**/NAME.ko[.xz|.zst]` under `unpacked`.
fn find_module(unpacked: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    fn walk(dir: &Path, name: &str) -> std::io::Result<Option<PathBuf>> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if let Some(found) = walk(&path, name)? {
                    return Ok(Some(found));
                }
            } else if path.file_name().is_some_and(|f| {
                let f = f.to_string_lossy();
                f == format!("{name}.ko") || f.starts_with(&format!("{name}.ko."))
            }) {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }
    let root = unpacked.join("lib/modules");
    if !root.is_dir() {
        return Ok(None);
    }
    Ok(walk(&root, name)?)
}

/// Copies a module to `out`, decompressed (busybox insmod takes plain `.ko` files only).
fn decompress_module(ko: &Path, out: &Path) -> anyhow::Result<()> {
    let tool = match ko.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => {
            fs::copy(ko, out)?;
            return Ok(());
        }
    };
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    crate::status(Command::new(tool).arg("-dc").arg(ko).stdout(file))
}

/// An apt command; with `bullseye`, on the private state under `cache/apt-bullseye`.
fn apt(cache: &Path, program: &str, bullseye: bool) -> Command {
    let mut cmd = Command::new(program);
    // Downloads land in a root-owned directory; apt's _apt sandbox user cannot write there.
    cmd.args(["-o", "APT::Sandbox::User=root"]);
    if bullseye {
        let state = cache.join("apt-bullseye");
        let opt = |k: &str, v: PathBuf| format!("{k}={}", v.display());
        cmd.arg("-o")
            .arg(opt("Dir::Etc::SourceList", state.join("sources.list")));
        cmd.args(["-o", "Dir::Etc::SourceParts=/dev/null"]);
        cmd.arg("-o")
            .arg(opt("Dir::State::Lists", state.join("lists")));
        cmd.arg("-o").arg(opt("Dir::Cache", state.join("cache")));
    }
    cmd
}

/// Fetches bullseye's package lists into the private apt state.
fn bullseye_update(cache: &Path) -> anyhow::Result<()> {
    let state = cache.join("apt-bullseye");
    for dir in ["lists/partial", "cache/archives/partial"] {
        let dir = state.join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(state.join("sources.list"), BULLSEYE_SOURCE)?;
    eprintln!(
        "vm-test: fetching bullseye package lists into {}",
        state.display()
    );
    let mut cmd = apt(cache, "apt-get", true);
    crate::status(cmd.args(["-q", "update"]).stdout(Stdio::null()))
}

/// Package names of `series` that apt knows (the private state for bullseye).
fn apt_cache_search(cache: &Path, series: &Series) -> anyhow::Result<Vec<String>> {
    let pattern = format!(
        "^{}[0-9]+{}$",
        regex_quote(series.prefix),
        regex_quote(series.suffix)
    );
    let mut cmd = apt(cache, "apt-cache", series.bullseye);
    let out = cmd
        .args(["search", "--names-only", &pattern])
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

fn regex_quote(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned())
}

fn host_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_takes_the_highest_number_of_the_plain_flavour() {
        let s = &SERIES[2];
        let names = [
            "linux-image-6.12.9+deb12-amd64",
            "linux-image-6.12.117+deb12-amd64",
            "linux-image-6.12.120+deb12-cloud-amd64",
            "linux-image-6.12-amd64",
        ];
        let got = s.newest(names.iter().map(|n| n.to_string()));
        assert_eq!(got.as_deref(), Some("linux-image-6.12.117+deb12-amd64"));
        let s = &SERIES[1];
        let names = ["linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64"];
        let got = s.newest(names.iter().map(|n| n.to_string()));
        assert_eq!(got.as_deref(), Some("linux-image-6.1.0-56-amd64"));
    }
}

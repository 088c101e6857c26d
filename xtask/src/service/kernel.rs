//! The guest's kernel: Debian bookworm's 6.1 (`linux-image-6.1.0-N-amd64`), from the kernel cache
//! `vm-test` fills (`CACHE/kernels/PACKAGE/{vmlinuz,vmlinux}`), or downloaded with
//! `apt-get download` into the same layout when no 6.1 kernel is cached yet.
use anyhow::{Context as _, anyhow, bail};
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const PREFIX: &str = "linux-image-6.1.0-";
const SUFFIX: &str = "-amd64";

/// The image to boot: the uncompressed `vmlinux` when cached (QEMU boots it through its PVH
/// entry, skipping seconds of emulated decompression), else the `vmlinuz`.
pub fn debian_6_1(cache: &Path) -> anyhow::Result<PathBuf> {
    let kernels = cache.join("kernels");
    let dir = match newest(&cached(&kernels)?) {
        Some(package) => kernels.join(package),
        None => download(&kernels)?,
    };
    let vmlinux = dir.join("vmlinux");
    if vmlinux.is_file() {
        return Ok(vmlinux);
    }
    Ok(dir.join("vmlinuz"))
}

/// The 6.1 packages with a cached vmlinuz.
fn cached(kernels: &Path) -> anyhow::Result<Vec<String>> {
    if !kernels.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(kernels).with_context(|| format!("reading {}", kernels.display()))? {
        let entry = entry?;
        if entry.path().join("vmlinuz").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The package with the highest ABI number, e.g. `linux-image-6.1.0-56-amd64`.
fn newest(names: &[String]) -> Option<&String> {
    names
        .iter()
        .filter_map(|n| {
            let abi: u64 = n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()?;
            Some((abi, n))
        })
        .max()
        .map(|(_, n)| n)
}

/// Downloads the newest 6.1 kernel package the machine's apt knows and keeps its vmlinuz.
fn download(kernels: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("apt-cache")
        .args([
            "search",
            "--names-only",
            &format!("^{}[0-9]+{}$", regex_quote(PREFIX), SUFFIX),
        ])
        .output()
        .context("running apt-cache")?;
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let package = newest(&listed)
        .ok_or_else(|| anyhow!("apt knows no {PREFIX}N{SUFFIX} package (run apt-get update)"))?
        .clone();
    eprintln!("service-test: downloading {package}");
    let tmp = kernels.join(format!("download-service-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    crate::status(
        Command::new("apt-get")
            // The download directory is root's; apt's _apt sandbox user could not write there.
            .args(["-o", "APT::Sandbox::User=root", "download", &package])
            .current_dir(&tmp),
    )?;
    let deb = fs::read_dir(&tmp)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", tmp.display()))?;
    // Only boot/vmlinuz-* (not the ~400 MB of modules).
    let mut unpack = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "--wildcards", "./boot/vmlinuz-*"])
        .current_dir(&tmp)
        .stdin(unpack.stdout.take().expect("piped"))
        .status()
        .context("running tar")?;
    if !unpack.wait()?.success() || !tar.success() {
        bail!("extracting vmlinuz from {} failed", deb.display());
    }
    let image = fs::read_dir(tmp.join("boot"))?
        .next()
        .ok_or_else(|| anyhow!("no vmlinuz in {}", deb.display()))??
        .path();
    let dest = kernels.join(&package);
    fs::create_dir_all(&dest)?;
    // Renamed into place last: a cached vmlinuz is always complete.
    fs::rename(&image, dest.join("vmlinuz"))?;
    fs::remove_dir_all(&tmp)?;
    Ok(dest)
}

fn regex_quote(s: &str) -> String {
    s.replace('.', "\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_takes_the_highest_abi_of_the_plain_flavour() {
        let names: Vec<String> = [
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-56-amd64",
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.12.117+deb12-amd64",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            newest(&names).map(String::as_str),
            Some("linux-image-6.1.0-56-amd64")
        );
    }
}

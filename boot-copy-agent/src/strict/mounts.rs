//! Whether a path outside `/boot` (lexically) still lands there: through a symlink, or on the
//! filesystem mounted at `/boot` by another path (a bind mount or a second mount of the same
//! device).
//!
//! Resolution happens in the agent's own mount namespace and root, at the time the exec is
//! handled: what exists is canonicalized; a target that does not exist yet is resolved through
//! its parent directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The `/boot` the agent sees.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// The device of `/boot` when it is a mount of its own (differs from `/`'s).
    dev: Option<u64>,
}

impl Boot {
    pub fn system() -> Boot {
        let dev = |p: &str| std::fs::metadata(p).ok().map(|m| m.dev());
        let boot = dev("/boot");
        Boot {
            dev: boot.filter(|b| Some(*b) != dev("/")),
        }
    }

    /// Where a lexically normalized absolute path that is not under `/boot` really lies, if in
    /// `/boot`: the canonical path and the evasion tag (`symlink_to_boot` or `boot_filesystem`).
    pub fn locate(&self, path: &str) -> Option<(String, &'static str)> {
        let canon = canonical(Path::new(path))?;
        let text = canon.to_string_lossy().into_owned();
        if super::paths::under_boot(&text) {
            return Some((text, "symlink_to_boot"));
        }
        let boot_dev = self.dev?;
        let probe = if canon.exists() {
            canon.clone()
        } else {
            canon.parent()?.to_owned()
        };
        let dev = std::fs::metadata(&probe).ok()?.dev();
        (dev == boot_dev).then_some((text, "boot_filesystem"))
    }
}

/// The canonical form of `path`, or of its parent joined with its last component when `path`
/// itself does not exist yet.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(path) {
        return Some(c);
    }
    let parent = std::fs::canonicalize(path.parent()?).ok()?;
    Some(parent.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_into_boot_are_followed() {
        let dir = std::env::temp_dir().join(format!("strict-mnt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("bl");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/boot", &link).unwrap();
        let b = Boot::default();
        let target = format!("{}/y", link.display());
        assert_eq!(
            b.locate(&target),
            Some(("/boot/y".to_owned(), "symlink_to_boot"))
        );
        assert_eq!(
            b.locate(link.to_str().unwrap()),
            Some(("/boot".to_owned(), "symlink_to_boot"))
        );
        assert_eq!(b.locate(&format!("{}/z", dir.display())), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

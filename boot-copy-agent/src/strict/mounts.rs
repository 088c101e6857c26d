//! Whether a path outside `/boot` (lexically) still lands there: through a symlink, or on the
//! filesystem mounted at `/boot` by another path (a bind mount or a second mount of the same
//! device).
//!
//! Resolution happens at the time the exec is handled: what exists is canonicalized; a target
//! that does not exist yet is resolved through its parent directory. A process of the agent's
//! own mount namespace has its paths resolved in the agent's root; one of another (a container)
//! in its own root (`/proc/PID/root`, symlinks kept inside it: `openat2` `RESOLVE_IN_ROOT`), where
//! a path lands in the host's `/boot` if a directory on its way up is that `/boot` (by device and
//! inode: a container that bind-mounts it elsewhere reaches it too).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory levels walked up from a target in a process's root.
const ROOT_WALK_DEPTH: usize = 64;

/// The `/boot` the agent sees.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// The device of `/boot` when it is a mount of its own (differs from `/`'s).
    dev: Option<u64>,
    /// Device and inode of `/boot`.
    dir: Option<(u64, u64)>,
}

impl Boot {
    pub fn system() -> Boot {
        let meta = |p: &str| std::fs::metadata(p).ok();
        let boot = meta("/boot");
        Boot {
            dev: boot
                .as_ref()
                .map(|m| m.dev())
                .filter(|b| Some(*b) != meta("/").map(|m| m.dev())),
            dir: boot.map(|m| (m.dev(), m.ino())),
        }
    }

    /// [`Boot::locate`] for process `pid` in its own root: the path as the process names it and
    /// `symlink_to_boot` when it lands in the host's `/boot` by a way its text does not show.
    /// A process already gone has its path resolved as [`Boot::locate`] does, in the agent's root.
    pub fn locate_in(&self, pid: u32, path: &str) -> Option<(String, &'static str)> {
        let Some(root) = open(None, Path::new(&format!("/proc/{pid}/root")), 0) else {
            return self.locate(path);
        };
        let boot = self.dir?;
        let p = Path::new(path);
        // The target if it is a directory (a copy into it), else the directory it is made in
        // (it may exist already: the copy may have created it by now).
        let dir = open(Some(&root), p, libc::RESOLVE_IN_ROOT)
            .filter(is_directory)
            .or_else(|| open(Some(&root), p.parent()?, libc::RESOLVE_IN_ROOT))?;
        lands_in(dir, boot).then(|| (path.to_owned(), "symlink_to_boot"))
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

/// `path` opened `O_PATH` (relative to `dir` if given) with `resolve` flags.
fn open(dir: Option<&OwnedFd>, path: &Path, resolve: u64) -> Option<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: valid pointers for the call's duration; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            at,
            c.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    // SAFETY: a descriptor the call just opened, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn is_directory(fd: &OwnedFd) -> bool {
    fd.try_clone()
        .ok()
        .and_then(|fd| std::fs::File::from(fd).metadata().ok())
        .is_some_and(|m| m.is_dir())
}

/// Whether `dir` or a directory above it is the one with device and inode `boot`.
fn lands_in(mut dir: OwnedFd, boot: (u64, u64)) -> bool {
    let id = |fd: &OwnedFd| {
        let file = std::fs::File::from(fd.try_clone().ok()?);
        let m = file.metadata().ok()?;
        Some((m.dev(), m.ino()))
    };
    let mut last = None;
    for _ in 0..ROOT_WALK_DEPTH {
        let here = id(&dir);
        if here == Some(boot) {
            return true;
        }
        if here.is_none() || here == last {
            return false; // the top of its mount tree
        }
        last = here;
        match open(Some(&dir), Path::new(".."), 0) {
            Some(up) => dir = up,
            None => return false,
        }
    }
    false
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

    /// In a process's own root: a symlink into /boot lands there, another directory does not.
    #[test]
    fn paths_are_followed_in_a_process_root() {
        let dir = std::env::temp_dir().join(format!("strict-root-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("bl");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/boot", &link).unwrap();
        let b = Boot::system();
        let me = std::process::id();
        let target = format!("{}/y", link.display());
        assert_eq!(
            b.locate_in(me, &target),
            Some((target.clone(), "symlink_to_boot"))
        );
        assert_eq!(b.locate_in(me, &format!("{}/z", dir.display())), None);
        // A target that exists already (the copy made it): its directory decides.
        let made = dir.join("made");
        std::fs::write(&made, "x").unwrap();
        assert_eq!(b.locate_in(me, made.to_str().unwrap()), None);
        // A process gone: resolved in the agent's root.
        assert_eq!(
            b.locate_in(u32::MAX, &target),
            Some(("/boot/y".to_owned(), "symlink_to_boot"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

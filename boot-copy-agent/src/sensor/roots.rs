//! The file program's watched trees: `WATCHED_ROOTS` (and the bitmap in front of it,
//! `ROOT_BITS`) holds each watched directory, and every file system mounted under it, by the
//! kernel's device number and inode; the kernel walks up from a file to decide, so these few
//! keys cover whole trees, bind mounts of them and paths through symlinks. `WATCHED_PREFIXES`
//! holds their absolute paths (each directory and every mount point showing the same
//! directory, a bind mount), for syscalls that name a file by an absolute path.
use super::{SensorError, map_mut};
use aya::{
    Ebpf,
    maps::{Array, HashMap},
};
use boot_copy_common::{
    InodeKey, RootBits, WATCHED_PREFIX_CAP, WATCHED_PREFIX_ENTRIES, WATCHED_ROOT_ENTRIES,
    WatchedPrefix,
};
use std::{
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::PathBuf,
};

/// The default watched tree.
pub const BOOT: &str = "/boot";

/// What the kernel is told about the watched trees. Tree `i + 1` (the number the kernel puts
/// into a record) is `trees[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// Each tree's path, as `boot_copy.file.tree` names it (the directory's canonical path).
    pub trees: Vec<PathBuf>,
    /// Root directories (each tree and the file systems mounted under it) and their tree.
    pub keys: Vec<(InodeKey, u32)>,
    /// Absolute paths showing a tree (at most `WATCHED_PREFIX_ENTRIES` of at most
    /// `WATCHED_PREFIX_CAP - 1` bytes), longest first.
    pub prefixes: Vec<(PathBuf, u32)>,
}

impl Watched {
    /// The path of the kernel's tree number `tree`.
    pub fn tree(&self, tree: u32) -> Option<&std::path::Path> {
        let i = usize::try_from(tree).ok()?.checked_sub(1)?;
        self.trees.get(i).map(PathBuf::as_path)
    }

    /// The tree an absolute `path` is in by its components: a tree's path, or one showing it,
    /// is the path or an ancestor of it (as the kernel compares `WATCHED_PREFIXES`).
    pub fn containing(&self, path: &[u8]) -> Option<u32> {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
        let trees = self.trees.iter().zip(1u32..);
        let prefixes = self.prefixes.iter().map(|(p, tree)| (p, *tree));
        trees
            .chain(prefixes)
            .find(|(p, _)| path.starts_with(p))
            .map(|(_, tree)| tree)
    }
}

/// This mount namespace's mount table, watched for changes (the kernel marks its mountinfo
/// file with `POLLPRI` at every mount and unmount): a bind mount of a watched tree made after
/// start gets its `WATCHED_PREFIXES` entry at the next check.
pub struct MountTable {
    file: fs::File,
    /// A change not yet acted on; true at first, as the table may have changed between the
    /// trees' computation and this file's opening.
    pending: bool,
}

impl MountTable {
    pub fn open() -> Result<Self, SensorError> {
        let file = fs::File::open("/proc/self/mountinfo").map_err(|source| SensorError::Io {
            what: "/proc/self/mountinfo",
            source,
        })?;
        Ok(Self {
            file,
            pending: true,
        })
    }

    /// Whether the table changed since the last call (a poll that does not wait).
    pub fn changed(&mut self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLPRI)];
        let flagged = matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR));
        std::mem::take(&mut self.pending) || flagged
    }
}

/// The directories to watch: `/boot`, then for each directory the file rules name
/// (`RuleSet::file_dirs`) the deepest existing directory at or above it. `/` is never watched
/// (every file of the host would be sent), nor a directory inside another one watched.
pub fn dirs(named: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(BOOT)];
    for dir in named {
        let Some(existing) = dir.ancestors().find(|a| a.is_dir()) else {
            continue;
        };
        if existing.parent().is_none() {
            tracing::warn!(dir = %dir.display(), "not watching /: no directory under it holds this rule path");
            continue;
        }
        if !dirs.iter().any(|d| d == existing) {
            dirs.push(existing.to_path_buf());
        }
    }
    dirs
}

/// The watched trees of `dirs` (those that exist), in this mount namespace: one per directory
/// (by canonical path) not inside another; a directory's path is a prefix of the tree it is
/// in.
pub fn watched(dirs: &[PathBuf]) -> Result<Watched, SensorError> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|source| SensorError::Io {
            what: "/proc/self/mountinfo",
            source,
        })?;
    let named: Vec<(PathBuf, PathBuf)> = dirs
        .iter()
        .filter_map(|d| Some((d.clone(), fs::canonicalize(d).ok()?)))
        .filter(|(_, real)| real.is_dir())
        .collect();
    let mut trees: Vec<PathBuf> = Vec::new();
    for (_, real) in &named {
        let inside = named.iter().any(|(_, r)| r != real && real.starts_with(r));
        if !inside && !trees.contains(real) {
            trees.push(real.clone());
        }
    }
    let tree_of = |real: &std::path::Path| -> u32 {
        let i = trees.iter().position(|t| real.starts_with(t)).unwrap_or(0);
        i as u32 + 1
    };
    let mut prefixes: Vec<(PathBuf, u32)> = Vec::new();
    for (path, real) in &named {
        for p in [real, path] {
            push_prefix(&mut prefixes, p, tree_of(real));
        }
    }
    let keys = keys(&prefixes, &mountinfo);
    for m in mount_points(&mountinfo) {
        let alias = fs::metadata(&m)
            .ok()
            .and_then(|meta| keys.iter().find(|(k, _)| *k == key(&meta)));
        if let Some(&(_, tree)) = alias {
            push_prefix(&mut prefixes, &m, tree);
        }
    }
    prefixes.retain(|(p, _)| {
        let fits = p.as_os_str().len() < WATCHED_PREFIX_CAP;
        if !fits {
            tracing::warn!(path = %p.display(), "watched path too long for the kernel's absolute-path check");
        }
        fits
    });
    // The kernel takes the first prefix that matches: a nested one must come first.
    prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
    if prefixes.len() > WATCHED_PREFIX_ENTRIES as usize {
        tracing::warn!(
            "more than {WATCHED_PREFIX_ENTRIES} watched paths: absolute paths under the rest are not checked"
        );
        prefixes.truncate(WATCHED_PREFIX_ENTRIES as usize);
    }
    Ok(Watched {
        trees,
        keys,
        prefixes,
    })
}

/// Adds a path showing `tree` unless one of the tree's paths already covers it.
fn push_prefix(prefixes: &mut Vec<(PathBuf, u32)>, path: &std::path::Path, tree: u32) {
    if !prefixes
        .iter()
        .any(|(p, t)| *t == tree && path.starts_with(p))
    {
        prefixes.push((path.to_path_buf(), tree));
    }
}

/// Keys of the directories `prefixes` name and of the mount points under them, with their
/// tree.
fn keys(prefixes: &[(PathBuf, u32)], mountinfo: &str) -> Vec<(InodeKey, u32)> {
    let mut keys = Vec::new();
    for (dir, tree) in prefixes {
        let mounts = mount_points(mountinfo).filter(|m| m.starts_with(dir));
        for path in std::iter::once(dir.clone()).chain(mounts) {
            if let Ok(meta) = fs::metadata(&path) {
                push_unique(&mut keys, (key(&meta), *tree));
            }
        }
    }
    if keys.len() > WATCHED_ROOT_ENTRIES as usize {
        keys.truncate(WATCHED_ROOT_ENTRIES as usize);
        tracing::warn!("more than {WATCHED_ROOT_ENTRIES} watched roots: the rest are not watched");
    }
    keys
}

/// Adds a root unless its directory is one already (the first tree to reach it keeps it).
fn push_unique(keys: &mut Vec<(InodeKey, u32)>, k: (InodeKey, u32)) {
    if !keys.iter().any(|(have, _)| *have == k.0) {
        keys.push(k);
    }
}

/// A directory's key as the kernel sees it: `super_block.s_dev` is `major << 20 | minor`
/// (userspace's `st_dev` encodes the two differently).
fn key(meta: &fs::Metadata) -> InodeKey {
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    InodeKey {
        dev: major << 20 | minor,
        ino: meta.ino(),
    }
}

/// Mount points of mountinfo lines (the fifth field, octal escapes undone).
fn mount_points(mountinfo: &str) -> impl Iterator<Item = PathBuf> + '_ {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `new` numbered after `old` (a reload): a tree watched before keeps its number, a new one
/// gets the next, so records already in the ring still name their tree.
pub fn renumber(old: &Watched, mut new: Watched) -> Watched {
    let mut trees = old.trees.clone();
    let numbers: Vec<u32> = new
        .trees
        .iter()
        .map(|t| match trees.iter().position(|have| have == t) {
            Some(i) => i as u32 + 1,
            None => {
                trees.push(t.clone());
                trees.len() as u32
            }
        })
        .collect();
    let number = |tree: u32| numbers[tree as usize - 1];
    new.keys.iter_mut().for_each(|(_, t)| *t = number(*t));
    new.prefixes.iter_mut().for_each(|(_, t)| *t = number(*t));
    new.trees = trees;
    new
}

/// Makes the kernel watch `new` instead of `old` without a moment where a tree watched in
/// both is not: new keys first (under both bitmaps), then the prefixes, then the old keys go.
pub(super) fn replace(ebpf: &mut Ebpf, old: &Watched, new: &Watched) -> Result<(), SensorError> {
    let err = |map| move |source| SensorError::Map { map, source };
    let mut both = new.keys.clone();
    both.extend(
        old.keys
            .iter()
            .filter(|(k, _)| !new.keys.iter().any(|(n, _)| n == k)),
    );
    fill(
        ebpf,
        &Watched {
            keys: both,
            ..new.clone()
        },
    )?;
    let mut roots: HashMap<_, InodeKey, u32> =
        HashMap::try_from(map_mut(ebpf, "WATCHED_ROOTS")?).map_err(err("WATCHED_ROOTS"))?;
    for (k, _) in old
        .keys
        .iter()
        .filter(|(k, _)| !new.keys.iter().any(|(n, _)| n == k))
    {
        roots.remove(k).map_err(err("WATCHED_ROOTS"))?;
    }
    let mut bits: Array<_, RootBits> =
        Array::try_from(map_mut(ebpf, "ROOT_BITS")?).map_err(err("ROOT_BITS"))?;
    bits.set(0, bitmap(&new.keys), 0).map_err(err("ROOT_BITS"))
}

/// Writes the keys, their bitmap and the prefixes (every entry: unused ones emptied).
pub(super) fn fill(ebpf: &mut Ebpf, watched: &Watched) -> Result<(), SensorError> {
    let err = |map| move |source| SensorError::Map { map, source };
    let mut roots: HashMap<_, InodeKey, u32> =
        HashMap::try_from(map_mut(ebpf, "WATCHED_ROOTS")?).map_err(err("WATCHED_ROOTS"))?;
    for (k, tree) in &watched.keys {
        roots.insert(k, tree, 0).map_err(err("WATCHED_ROOTS"))?;
    }
    let mut bits: Array<_, RootBits> =
        Array::try_from(map_mut(ebpf, "ROOT_BITS")?).map_err(err("ROOT_BITS"))?;
    bits.set(0, bitmap(&watched.keys), 0)
        .map_err(err("ROOT_BITS"))?;
    let mut prefixes: Array<_, WatchedPrefix> =
        Array::try_from(map_mut(ebpf, "WATCHED_PREFIXES")?).map_err(err("WATCHED_PREFIXES"))?;
    for i in 0..WATCHED_PREFIX_ENTRIES {
        let entry = match watched.prefixes.get(i as usize) {
            Some((p, tree)) => prefix(p, *tree),
            None => WatchedPrefix {
                bytes: [0; WATCHED_PREFIX_CAP],
                len: 0,
                tree: 0,
            },
        };
        prefixes.set(i, entry, 0).map_err(err("WATCHED_PREFIXES"))?;
    }
    Ok(())
}

/// A prefix entry; `p` fits (checked by `watched`).
fn prefix(p: &std::path::Path, tree: u32) -> WatchedPrefix {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    let mut bytes = [0u8; WATCHED_PREFIX_CAP];
    bytes[..b.len()].copy_from_slice(b);
    WatchedPrefix {
        bytes,
        len: b.len() as u32,
        tree,
    }
}

fn bitmap(keys: &[(InodeKey, u32)]) -> RootBits {
    RootBits::of(keys.iter().map(|(k, _)| k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitmaps_name_every_key_and_its_file_system() {
        let keys = [
            (InodeKey { dev: 2049, ino: 2 }, 1),
            (InodeKey { dev: 44, ino: 1 }, 1),
        ];
        let bits = bitmap(&keys);
        for (k, _) in &keys {
            assert_ne!(bits.inodes[k.bit() / 64] & (1 << (k.bit() % 64)), 0);
            assert_ne!(bits.devs & (1 << boot_copy_common::dev_bit(k.dev)), 0);
        }
        assert_eq!(bits.devs.count_ones(), 2);
        assert_eq!(bitmap(&[]), RootBits::default());
    }

    #[test]
    fn a_path_is_in_the_tree_it_is_under_by_components() {
        let w = Watched {
            trees: vec!["/boot".into(), "/etc/default".into()],
            keys: Vec::new(),
            prefixes: vec![("/srv/bootbind".into(), 1)],
        };
        assert_eq!(w.containing(b"/boot"), Some(1));
        assert_eq!(w.containing(b"/boot/grub/x"), Some(1));
        assert_eq!(w.containing(b"/etc/default/grub.d/x.cfg"), Some(2));
        assert_eq!(w.containing(b"/srv/bootbind/x"), Some(1));
        assert_eq!(w.containing(b"/bootx/y"), None);
        assert_eq!(w.containing(b"/etc/defaultx"), None);
        assert_eq!(w.containing(b"/tmp/x"), None);
    }

    #[test]
    fn mount_points_under_a_root() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 8:2 / /boot rw - ext4 /dev/sda2 rw\n\
                    31 30 8:3 / /boot/efi rw - vfat /dev/sda3 rw\n\
                    32 22 0:5 / /boot\\040x rw - tmpfs t rw\n";
        let under: Vec<PathBuf> = mount_points(info)
            .filter(|m| m.starts_with("/boot"))
            .collect();
        assert_eq!(under, [PathBuf::from("/boot"), PathBuf::from("/boot/efi")]);
        assert_eq!(unescape("/boot\\040x"), "/boot x");
    }

    /// A reload keeps the numbers of trees still watched and numbers new ones after every
    /// tree watched before.
    #[test]
    fn renumbered_after_the_running_trees() {
        let k = |ino| InodeKey { dev: 1, ino };
        let old = Watched {
            trees: vec!["/boot".into(), "/etc".into()],
            keys: vec![(k(1), 1), (k(2), 2)],
            prefixes: vec![("/boot".into(), 1), ("/etc".into(), 2)],
        };
        let new = Watched {
            trees: vec!["/boot".into(), "/usr/lib".into()],
            keys: vec![(k(1), 1), (k(3), 2)],
            prefixes: vec![("/usr/lib".into(), 2), ("/boot".into(), 1)],
        };
        let r = renumber(&old, new);
        assert_eq!(
            r.trees,
            [PathBuf::from("/boot"), "/etc".into(), "/usr/lib".into()]
        );
        assert_eq!(r.keys, [(k(1), 1), (k(3), 3)]);
        assert_eq!(r.prefixes, [("/usr/lib".into(), 3), ("/boot".into(), 1)]);
        assert_eq!(r.tree(3), Some(std::path::Path::new("/usr/lib")));
        assert_eq!(r.tree(0), None);
    }

    #[test]
    fn keys_in_kernel_encoding() {
        let k = key(&fs::metadata("/").unwrap());
        let dev = fs::metadata("/").unwrap().dev();
        assert_eq!(k.dev >> 20, libc::major(dev) as u64);
        assert_eq!(k.dev & 0xfffff, libc::minor(dev) as u64);
        let bits = bitmap(&[(k, 1)]);
        assert_eq!(bits.inodes.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
    }
}

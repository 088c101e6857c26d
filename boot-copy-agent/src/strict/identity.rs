//! Which copy tool an exec runs, beyond its name.
//!
//! 1. By name: the executable's basename is `cp`, `mv`, `install` or `rsync`.
//! 2. Multi-call binaries: the executable is `busybox` or `coreutils`; the applet is argv\[0\]'s
//!    basename (`/bin/cp -> busybox`), or argv\[1\] when argv\[0\] names the binary itself
//!    (`busybox cp ...`), or coreutils' `--coreutils-prog=cp`.
//! 3. By file: at start the agent records the (device, inode), size and a content hash of the
//!    system's cp and mv; an executable with the same inode (a hard link) or the same size and
//!    content (a renamed copy) is that tool. The size is compared first, so only executables of
//!    exactly cp's or mv's size are read; hashes are cached per (device, inode, size, mtime).
//! 4. The dynamic loader (`ld.so`), recorded the same way (see `loader`): [`Identity::is_loader`].

use std::collections::HashMap;
use std::hash::Hasher;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The tools the strict rule knows.
pub const TOOLS: [&str; 4] = ["cp", "mv", "install", "rsync"];
pub const MULTICALL: [&str; 2] = ["busybox", "coreutils"];
/// Where the reference binaries are looked for (all that exist are recorded).
const REFERENCES: [(&str, &str); 4] = [
    ("cp", "/usr/bin/cp"),
    ("mv", "/usr/bin/mv"),
    ("cp", "/bin/cp"),
    ("mv", "/bin/mv"),
];

/// The tool name of a loader reference.
const LOADER: &str = "ld.so";

/// The reference binaries: the system's cp and mv, and its loaders.
fn reference_paths() -> Vec<(&'static str, std::path::PathBuf)> {
    REFERENCES
        .iter()
        .map(|&(tool, p)| (tool, p.into()))
        .chain(
            super::loader::system_loaders()
                .into_iter()
                .map(|p| (LOADER, p)),
        )
        .collect()
}

/// The sizes of the system's cp, mv and loaders (what the kernel's size prefilter watches).
pub fn reference_sizes() -> Vec<u64> {
    let mut sizes: Vec<u64> = reference_paths()
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok().map(|m| m.size()))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// How the tool was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Name,
    /// A busybox/coreutils applet.
    Applet,
    /// A hard link or copy of the system's binary under another name.
    File,
}

/// A recognised copy tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    pub how: How,
    /// Index in argv of the first argument after the tool's name.
    pub first_arg: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reference {
    tool: &'static str,
    dev: u64,
    ino: u64,
    size: u64,
    hash: u64,
}

type FileKey = (u64, u64, u64, i64, i64);

/// The reference identities and a cache of hashed executables.
#[derive(Debug, Default)]
pub struct Identity {
    refs: Vec<Reference>,
    cache: HashMap<FileKey, Option<u64>>,
}

fn tool_named(name: &str) -> Option<&'static str> {
    TOOLS.iter().copied().find(|t| *t == name)
}

fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// A content hash (SipHash of the bytes): equality of binaries, not a defence against a binary
/// altered on purpose (an altered binary is a different program).
fn hash_file(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&bytes);
    Some(h.finish())
}

impl Identity {
    /// Records the system's cp, mv and loaders.
    pub fn system() -> Identity {
        let mut refs: Vec<Reference> = Vec::new();
        for (tool, path) in reference_paths() {
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            if refs.iter().any(|r| r.dev == md.dev() && r.ino == md.ino()) {
                continue;
            }
            if let Some(hash) = hash_file(&path) {
                refs.push(Reference {
                    tool,
                    dev: md.dev(),
                    ino: md.ino(),
                    size: md.size(),
                    hash,
                });
            }
        }
        Identity {
            refs,
            cache: HashMap::new(),
        }
    }

    /// The copy tool `executable` (absolute, symlinks resolved) runs with `args`, if any. The
    /// path is the kernel's bytes, not text: a name that is not UTF-8 must still find the file.
    pub fn identify(&mut self, executable: impl AsRef<Path>, args: &[String]) -> Option<Tool> {
        let executable = executable.as_ref();
        let name = executable
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(t) = tool_named(name) {
            return Some(Tool {
                name: t,
                how: How::Name,
                first_arg: 1,
            });
        }
        if MULTICALL.contains(&name) {
            return applet(args);
        }
        self.by_file(executable)
            .filter(|&t| t != LOADER)
            .map(|t| Tool {
                name: t,
                how: How::File,
                first_arg: 1,
            })
    }

    /// Whether `executable` is one of the system's loaders (by inode, or size and content).
    pub fn is_loader(&mut self, executable: &Path) -> bool {
        self.by_file(executable) == Some(LOADER)
    }

    fn by_file(&mut self, executable: &Path) -> Option<&'static str> {
        if self.refs.is_empty() {
            return None;
        }
        let md = std::fs::metadata(executable).ok()?;
        if let Some(r) = self
            .refs
            .iter()
            .find(|r| r.dev == md.dev() && r.ino == md.ino())
        {
            return Some(r.tool);
        }
        if !self.refs.iter().any(|r| r.size == md.size()) {
            return None;
        }
        let key = (md.dev(), md.ino(), md.size(), md.mtime(), md.mtime_nsec());
        if self.cache.len() > 4096 {
            self.cache.clear();
        }
        let hash = *self
            .cache
            .entry(key)
            .or_insert_with(|| hash_file(executable));
        let hash = hash?;
        self.refs
            .iter()
            .find(|r| r.size == md.size() && r.hash == hash)
            .map(|r| r.tool)
    }
}

/// The applet a busybox/coreutils exec runs.
fn applet(args: &[String]) -> Option<Tool> {
    let arg0 = basename(args.first()?);
    if let Some(t) = tool_named(arg0) {
        return Some(Tool {
            name: t,
            how: How::Applet,
            first_arg: 1,
        });
    }
    if MULTICALL.contains(&arg0) {
        let next = args.get(1)?;
        let name = next.strip_prefix("--coreutils-prog=").unwrap_or(next);
        return tool_named(name).map(|t| Tool {
            name: t,
            how: How::Applet,
            first_arg: 2,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn names_and_applets() {
        let mut id = Identity::default();
        let t = |id: &mut Identity, exe, a| {
            id.identify(exe, &args(a))
                .map(|t| (t.name, t.how, t.first_arg))
        };
        assert_eq!(
            t(&mut id, "/usr/bin/cp", "cp x y"),
            Some(("cp", How::Name, 1))
        );
        assert_eq!(
            t(&mut id, "/usr/bin/busybox", "cp x y"),
            Some(("cp", How::Applet, 1))
        );
        assert_eq!(
            t(&mut id, "/usr/bin/busybox", "/tmp/mv x y"),
            Some(("mv", How::Applet, 1))
        );
        assert_eq!(
            t(&mut id, "/usr/bin/busybox", "busybox cp x y"),
            Some(("cp", How::Applet, 2))
        );
        assert_eq!(
            t(
                &mut id,
                "/usr/bin/coreutils",
                "coreutils --coreutils-prog=cp x y"
            ),
            Some(("cp", How::Applet, 2))
        );
        assert_eq!(t(&mut id, "/usr/bin/busybox", "busybox ls"), None);
        assert_eq!(t(&mut id, "/usr/bin/true", "true"), None);
    }

    #[test]
    fn renamed_copy_is_recognised_by_content() {
        let mut id = Identity::system();
        if id.refs.is_empty() {
            return; // no /usr/bin/cp on this machine
        }
        let dir = std::env::temp_dir().join(format!("strict-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("xyz");
        std::fs::copy("/usr/bin/cp", &copy).unwrap();
        let copy = copy.to_str().unwrap();
        let tool = id.identify(copy, &args("xyz a b")).unwrap();
        assert_eq!((tool.name, tool.how), ("cp", How::File));
        // A name that is not UTF-8 (the path is opened as the kernel's bytes).
        use std::os::unix::ffi::OsStrExt;
        let odd = dir.join(std::ffi::OsStr::from_bytes(b"c\np\xff"));
        std::fs::copy("/usr/bin/cp", &odd).unwrap();
        let tool = id.identify(&odd, &args("x a b")).unwrap();
        assert_eq!((tool.name, tool.how), ("cp", How::File));
        // Same size, other content: not cp.
        let mut bytes = std::fs::read(copy).unwrap();
        bytes[100] ^= 0xff;
        let other = dir.join("other");
        std::fs::write(&other, bytes).unwrap();
        assert_eq!(id.identify(other.to_str().unwrap(), &args("other")), None);
        assert_eq!(id.identify("/usr/bin/true", &args("true")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

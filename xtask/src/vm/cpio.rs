//! A minimal writer of the "newc" cpio format the kernel unpacks as initramfs. Written here
//! rather than with cpio(1) so that device nodes need no mknod and every file is owned by root.
use anyhow::Context as _;
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

pub struct Writer<W: Write> {
    out: W,
    ino: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer { out, ino: 1 }
    }

    /// Adds the tree under `root` (the directory itself excluded), parents before children.
    pub fn add_tree(&mut self, root: &Path) -> anyhow::Result<()> {
        self.add_dir_contents(root, "")
    }

    fn add_dir_contents(&mut self, dir: &Path, prefix: &str) -> anyhow::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = fs::symlink_metadata(&path)?;
            let perm = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path)?;
                let target = target.to_string_lossy();
                self.entry(&name, S_IFLNK | 0o777, 0, target.as_bytes())?;
            } else if meta.is_dir() {
                self.entry(&name, S_IFDIR | perm, 0, &[])?;
                self.add_dir_contents(&path, &format!("{name}/"))?;
            } else {
                let data =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                self.entry(&name, S_IFREG | (meta.mode() & 0o7777), 0, &data)?;
            }
        }
        Ok(())
    }

    /// One entry with full `mode` (type and permissions) and contents.
    pub fn add_file(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, mode, 0, data)
    }

    /// A character device node `name` (e.g. `dev/console`, 5:1).
    pub fn add_char_device(&mut self, name: &str, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | 0o600, (major << 8) | minor, &[])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// One entry; `rdev` is `major << 8 | minor`.
    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) -> io::Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev >> 8,
            rdev & 0xff,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, len: usize) -> io::Result<()> {
        let n = (4 - len % 4) % 4;
        self.out.write_all(&[0u8; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_trailed() {
        let mut w = Writer::new(Vec::new());
        w.entry("a", S_IFREG | 0o644, 0, b"xyz").unwrap();
        w.add_char_device("dev/console", 5, 1).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        // header (110) + "a\0" (2) = 112, aligned; then "xyz" + 1 pad.
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..116], b"xyz\0");
        assert!(text[116..].starts_with("070701"));
    }
}

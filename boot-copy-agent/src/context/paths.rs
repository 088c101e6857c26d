//! Byte-path helpers: executables are named by their basename, and script paths passed to execve
//! may be relative to the working directory.

/// The last component of a path (`process.name` is the executable's basename, not `comm`).
pub fn basename(path: &[u8]) -> &[u8] {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// `path` made absolute against `cwd` and normalized lexically (`.`, `..`, repeated slashes), as
/// the kernel would have walked it. Symlinks are not resolved.
pub fn absolute(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined = if path.first() == Some(&b'/') {
        [path].concat()
    } else {
        [cwd, b"/", path].concat()
    };
    for part in joined.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(joined.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_of_paths() {
        assert_eq!(basename(b"/usr/bin/cp"), b"cp");
        assert_eq!(basename(b"cp"), b"cp");
        assert_eq!(
            basename(b"/usr/sbin/update-grub-gfxpayload"),
            b"update-grub-gfxpayload"
        );
    }

    #[test]
    fn absolute_normalizes_against_cwd() {
        assert_eq!(absolute(b"/tmp/x", b"./run.sh"), b"/tmp/x/run.sh");
        assert_eq!(absolute(b"/tmp/x", b"../y//z.sh"), b"/tmp/y/z.sh");
        assert_eq!(
            absolute(b"/tmp", b"/var/lib/dpkg/info/a.postinst"),
            b"/var/lib/dpkg/info/a.postinst"
        );
        assert_eq!(absolute(b"/", b".."), b"/");
    }
}

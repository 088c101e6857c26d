//! The dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /usr/bin/cp f /boot/x`): the
//! program it runs and that program's argv.
//!
//! The loaders are recognised by what the file is: the program interpreters (`PT_INTERP`) the
//! system's binaries name, and the usual loader paths that exist, recorded by inode, size and
//! content (see `identity`), so a symlink, a hard link or a renamed copy is the loader too.
//!
//! Options before the program, as glibc's `ld.so` and musl's `ld-musl` take them: `--argv0 S`,
//! `--library-path P`, `--preload L`, `--audit L`, `--inhibit-rpath L`, `--glibc-hwcaps-prepend L`,
//! `--glibc-hwcaps-mask L` take an argument (musl also accepts `--opt=VALUE`); `--list`,
//! `--verify`, `--help`, `--version`, `--list-tunables` and `--list-diagnostics` run nothing;
//! `--` ends the options (musl); any other option is skipped.
use std::path::{Path, PathBuf};

/// Loader paths looked for besides the `PT_INTERP` of the system's binaries.
pub const KNOWN: [&str; 6] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
    "/lib/ld-linux-armhf.so.3",
];

/// Binaries whose program interpreter is the system's loader.
const INTERP_OF: [&str; 2] = ["/usr/bin/cp", "/bin/sh"];

/// Where the loader looks for a program named without a slash (after `--library-path`).
const SEARCH: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// The system's loaders: what the system's binaries name as interpreter, and the known paths.
pub fn system_loaders() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = INTERP_OF
        .iter()
        .filter_map(|b| interpreter(Path::new(b)))
        .chain(KNOWN.iter().map(PathBuf::from))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The `PT_INTERP` of a 64-bit little-endian ELF file.
pub fn interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::ffi::OsStringExt;
    let mut f = std::fs::File::open(path).ok()?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh).ok()?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(&eh, 32), u16_at(&eh, 54), u16_at(&eh, 56));
    if phentsize < 56 {
        return None;
    }
    for i in 0..u64::from(phnum) {
        let mut ph = [0u8; 56];
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))
            .ok()?;
        f.read_exact(&mut ph).ok()?;
        if u32::from_le_bytes(ph[..4].try_into().unwrap()) == 3 {
            let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
            if size == 0 || size > 4096 {
                return None;
            }
            let mut name = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(offset)).ok()?;
            f.read_exact(&mut name).ok()?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            name.truncate(end);
            return Some(PathBuf::from(std::ffi::OsString::from_vec(name)));
        }
    }
    None
}

/// What a loader exec runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The program's path as the loader finds it (absolute when it could be resolved).
    pub path: PathBuf,
    /// Its argv: `--argv0`'s value or the program as given, then its arguments.
    pub argv: Vec<String>,
}

/// Options taking an argument.
const WITH_ARG: [&str; 7] = [
    "argv0",
    "library-path",
    "preload",
    "audit",
    "inhibit-rpath",
    "glibc-hwcaps-prepend",
    "glibc-hwcaps-mask",
];
/// Options after which the loader runs no program.
const NO_RUN: [&str; 6] = [
    "list",
    "verify",
    "help",
    "version",
    "list-tunables",
    "list-diagnostics",
];

/// The program a loader exec with `args` (argv\[0\] first) runs in `cwd`, if any.
pub fn program(args: &[String], cwd: &str) -> Option<Program> {
    let mut argv0 = None;
    let mut library_path = None;
    let mut i = 1;
    while let Some(a) = args.get(i) {
        i += 1;
        let Some(opt) = a.strip_prefix("--") else {
            if a.starts_with('-') && a.len() > 1 {
                continue; // musl skips any option
            }
            i -= 1;
            break;
        };
        if opt.is_empty() {
            break;
        }
        let (name, joined) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (opt, None),
        };
        if NO_RUN.contains(&name) {
            return None;
        }
        if WITH_ARG.contains(&name) {
            let value = match joined {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i - 1)?.clone()
                }
            };
            match name {
                "argv0" => argv0 = Some(value),
                "library-path" => library_path = Some(value),
                _ => {}
            }
        }
    }
    let given = args.get(i)?;
    let mut argv = vec![argv0.unwrap_or_else(|| given.clone())];
    argv.extend(args[i + 1..].iter().cloned());
    Some(Program {
        path: locate(given, library_path.as_deref(), cwd),
        argv,
    })
}

/// The file a loader opens for `given`: relative to `cwd` with a slash, else searched like a
/// library (the `--library-path` directories, then the system's); `given` itself if not found.
fn locate(given: &str, library_path: Option<&str>, cwd: &str) -> PathBuf {
    if given.contains('/') {
        return Path::new(cwd).join(given);
    }
    library_path
        .into_iter()
        .flat_map(|p| p.split(':'))
        .chain(SEARCH)
        .map(|dir| Path::new(cwd).join(dir).join(given))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Option<(String, Vec<String>)> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        program(&args, "/tmp").map(|p| (p.path.display().to_string(), p.argv))
    }

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_before_the_program() {
        assert_eq!(
            run("ld.so /usr/bin/cp f /boot/x"),
            Some(("/usr/bin/cp".into(), v("/usr/bin/cp f /boot/x")))
        );
        assert_eq!(
            run("ld.so --argv0 cp /usr/bin/cp f /boot/x"),
            Some(("/usr/bin/cp".into(), v("cp f /boot/x")))
        );
        assert_eq!(
            run("ld.so --library-path /x --preload /l.so --inhibit-cache ./cp -t /boot f"),
            Some(("/tmp/./cp".into(), v("./cp -t /boot f")))
        );
        assert_eq!(
            run("ld-musl --argv0=mv -- /bin/mv a /boot"),
            Some(("/bin/mv".into(), v("mv a /boot")))
        );
        assert_eq!(run("ld.so --list /usr/bin/cp"), None);
        assert_eq!(run("ld.so --verify /usr/bin/cp"), None);
        assert_eq!(run("ld.so"), None);
        assert_eq!(run("ld.so --argv0"), None);
        // A name without a slash is searched like a library.
        assert_eq!(
            run("ld.so --library-path /usr/bin cp a b").unwrap().0,
            if Path::new("/usr/bin/cp").is_file() {
                "/usr/bin/cp"
            } else {
                "cp"
            }
        );
    }

    #[test]
    fn the_system_loader_is_the_interpreter_of_cp() {
        let Some(interp) = interpreter(Path::new("/usr/bin/cp")) else {
            return; // a static cp: no loader to find
        };
        let loaders = system_loaders();
        assert!(
            loaders.contains(&std::fs::canonicalize(&interp).unwrap()),
            "{loaders:?}"
        );
        assert_eq!(interpreter(&interp), None, "a loader has no interpreter");
    }
}

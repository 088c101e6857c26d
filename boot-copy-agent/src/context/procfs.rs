//! Processes read from /proc: the parent-table seed at start and the fallback for parents the
//! kernel table does not know.
use crate::decode::Image;
use boot_copy_common::image_flags;
use std::{
    fs, io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::PathBuf,
};

/// Kernel clock ticks per second as /proc reports start times (USER_HZ).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// A boot-clock start time in ns, expressed in /proc's clock ticks. Entity ids use ticks so that
/// a process seen by the kernel and the same process read from /proc get the same id.
pub fn ns_to_ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / ticks_per_second())
}

/// All pids currently in /proc.
pub fn pids() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// Parent pid and start time (ns since boot, tick resolution) from /proc/PID/stat.
pub fn stat(pid: u32) -> io::Result<(u32, u64)> {
    let text = fs::read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

fn parse_stat(text: &[u8]) -> Option<(u32, u64)> {
    // After the name: state(3) ppid(4) ... starttime(22) → indexes 1 and 19 here.
    let ppid = stat_field(text, 1)? as u32;
    let start_ticks = stat_field(text, 19)?;
    Some((ppid, start_ticks * (1_000_000_000 / ticks_per_second())))
}

/// Numeric field `i` of a stat line, counted from the state (field 3) as 0.
fn stat_field(text: &[u8], i: usize) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: skip to the last ')'.
    let rest = &text[text.iter().rposition(|&b| b == b')')? + 1..];
    let field = rest
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(i)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The session (its leader's pid) of process `pid`.
pub fn session(pid: u32) -> Option<u32> {
    let text = fs::read(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&text, 3).map(|sid| sid as u32) // session is field 6
}

/// The pid of process `pid` in its own (innermost) pid namespace.
pub fn namespace_pid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The current image of a running process, as the kernel table would hold it.
pub fn image(pid: u32) -> io::Result<Image> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let (_, start_boottime_ns) = stat(pid)?;
    let exe = fs::read_link(base.join("exe"))?;
    let cmdline = fs::read(base.join("cmdline"))?;
    let cwd = fs::read_link(base.join("cwd")).unwrap_or_default();
    let args = crate::decode::split_args(&cmdline);
    // /proc/PID belongs to the process's effective user and group (root when it is not
    // dumpable, as a setuid program is).
    let owner = fs::metadata(&base)?;
    Ok(Image {
        tgid: pid,
        start_boottime_ns,
        flags: image_flags::FROM_PROC,
        args_count: args.len() as u32,
        euid: owner.uid(),
        egid: owner.gid(),
        exe: exe.as_os_str().as_bytes().to_vec(),
        args,
        cwd: cwd.as_os_str().as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let text =
            b"123 (a) b (c)) S 77 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 100";
        let (ppid, start) = parse_stat(text).unwrap();
        assert_eq!(ppid, 77);
        assert_eq!(start, 4242 * (1_000_000_000 / ticks_per_second()));
    }

    #[test]
    fn reads_own_image() {
        let me = std::process::id();
        let image = image(me).unwrap();
        assert_eq!(
            image.exe,
            std::env::current_exe().unwrap().as_os_str().as_bytes()
        );
        assert_eq!(image.args.len() as u32, image.args_count);
        let (ppid, _) = stat(me).unwrap();
        assert_eq!(ppid, std::os::unix::process::parent_id());
        assert_eq!(
            session(me),
            Some(nix::unistd::getsid(None).unwrap().as_raw() as u32)
        );
        assert_eq!(
            namespace_pid(me),
            Some(me),
            "the tests run in the host's pid namespace"
        );
        assert!(pids().unwrap().contains(&me));
    }
}

//! Whether the `/boot` a process sees is the host's boot file system
//! (`boot_copy.boot.host_filesystem`): the directory at `/boot` in its root, compared by device
//! and inode with the host's `/boot` (see [`BootFs::of_host`]). A container's own `/boot` is
//! another directory; one that bind-mounts the host's is the same.
//!
//! The process is looked at through `/proc/PID/root` while it lives, else its parent if that is
//! in the same mount namespace; a namespace seen to hold the host's `/boot` is remembered for
//! processes gone before either could be read (a container's `cp` ends in a millisecond). Only
//! that answer is kept: the kernel reuses a dead namespace's inode number for a new one, and a
//! remembered "not the host's" could then silence the strict rule for a namespace that is.
use std::{collections::HashSet, fs, os::unix::fs::MetadataExt};

/// Mount namespaces remembered at most.
const NAMESPACES: usize = 4096;

pub struct BootFs {
    /// Device and inode of the host's `/boot`.
    host: Option<(u64, u64)>,
    /// The agent's mount namespace.
    host_ns: Option<u64>,
    /// Mount namespaces seen holding the host's `/boot`.
    by_ns: HashSet<u32>,
}

impl BootFs {
    /// The host's `/boot` as the agent sees it: the packaged service runs in the host's mount
    /// namespace, and the agent's image mounts the host's `/boot` at its own.
    pub fn of_host() -> Self {
        let me = std::process::id();
        Self {
            host: boot_of(me),
            host_ns: mount_namespace(me),
            by_ns: HashSet::new(),
        }
    }

    /// Whether process `pid` (parent `ppid`, mount namespace `mnt_ns` at its exec) sees the
    /// host's `/boot`; `None` when that cannot be told.
    pub fn is_host(&mut self, pid: u32, ppid: u32, mnt_ns: u32) -> Option<bool> {
        let host = self.host?;
        if mnt_ns == 0 {
            return None;
        }
        let seen = [pid, ppid]
            .into_iter()
            .filter(|&p| mount_namespace(p) == Some(mnt_ns.into()))
            .find_map(boot_of)
            .map(|boot| boot == host);
        match seen {
            Some(true) => {
                if self.by_ns.len() >= NAMESPACES {
                    self.by_ns.clear();
                }
                self.by_ns.insert(mnt_ns);
                Some(true)
            }
            Some(false) => {
                self.by_ns.remove(&mnt_ns);
                Some(false)
            }
            None if self.host_ns == Some(mnt_ns.into()) => Some(true),
            None => self.by_ns.contains(&mnt_ns).then_some(true),
        }
    }
}

fn boot_of(pid: u32) -> Option<(u64, u64)> {
    let meta = fs::metadata(format!("/proc/{pid}/root/boot")).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn mount_namespace(pid: u32) -> Option<u64> {
    Some(fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_sees_the_hosts_boot() {
        let me = std::process::id();
        let mut boot = BootFs::of_host();
        let ns = mount_namespace(me).unwrap() as u32;
        assert_eq!(boot.is_host(me, 0, ns), Some(true));
        // Gone, in a namespace never seen: unknown; in one seen before: what was seen.
        assert_eq!(boot.is_host(u32::MAX, u32::MAX, 7), None);
        assert_eq!(boot.is_host(u32::MAX, u32::MAX, ns), Some(true));
        assert_eq!(boot.is_host(me, 0, 0), None);
    }
}

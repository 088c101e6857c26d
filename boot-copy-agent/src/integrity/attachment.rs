//! Notices when the kernel programs stop being attached. Our tracepoint links are raw
//! tracepoint links: the kernel has no detach operation for them (`bpftool link detach`
//! fails with EOPNOTSUPP), and they stay attached until the last file descriptor for the link
//! is closed. Only this process holds one, so another root process can detach a program only
//! by closing our descriptor (ptrace: a debugger injecting close(2)), or by replacing it
//! (dup2). Each tick the agent re-reads `/proc/self/fdinfo` of every link it attached and
//! reports a link that is gone or changed.
use std::{fs, io, path::Path};

/// One attached program, as `/proc/self/fdinfo/FD` shows its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub fd: i32,
    pub link_id: u32,
    pub prog_id: u32,
    /// The tracepoint (`sched_process_exec`, ...).
    pub tracepoint: String,
}

/// The links being watched.
#[derive(Debug, Default)]
pub struct Attachments {
    links: Vec<Link>,
}

impl Attachments {
    /// Every BPF link this process holds (call right after attaching).
    pub fn snapshot() -> io::Result<Self> {
        let mut links = Vec::new();
        for entry in fs::read_dir("/proc/self/fd")? {
            let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(link) = read_link(fd) {
                links.push(link);
            }
        }
        links.sort_by_key(|l| l.fd);
        Ok(Self { links })
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Links whose descriptor was closed or now refers to something else; they are reported
    /// once and no longer watched.
    pub fn detached(&mut self) -> Vec<Link> {
        let (kept, gone) = std::mem::take(&mut self.links)
            .into_iter()
            .partition(|l| read_link(l.fd).as_ref() == Some(l));
        self.links = kept;
        gone
    }
}

/// The link behind `fd`, if it is one.
fn read_link(fd: i32) -> Option<Link> {
    let target = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    if target != Path::new("anon_inode:bpf_link") {
        return None;
    }
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(Link {
        fd,
        link_id: field("link_id")?.parse().ok()?,
        prog_id: field("prog_id")?.parse().ok()?,
        tracepoint: field("tp_name").unwrap_or("?").to_owned(),
    })
}

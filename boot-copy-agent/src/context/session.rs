//! Elastic Defend's session model for one process: its process group's and session's leaders
//! and its entry leader (`process.group_leader`, `session_leader`, `entry_leader`), from the pids
//! the kernel recorded at the exec (`boot_copy_common::Session`), the kernel's process table
//! (which keeps a leader's image after it exits, see `image_flags::LEADER_EXE`) and, for a
//! leader the table does not hold, /proc.
//!
//! The entry leader is how the session was entered, found as Defend describes it: walking up
//! from the process's session leader through the sessions of its ancestors, the first session
//! leader whose parent is init (`init`: a service), sshd (`sshd`, with the client's address from
//! its `SSH_CONNECTION`), a login program (`terminal`), or that is the first process of a
//! container's pid namespace (`container`). A walk that finds none ends at the last session
//! leader it could read, `unknown`. Walks read /proc (ancestors are alive while their
//! descendants run) and are cached per session.
use super::{
    exec::{Process, from_image},
    paths, procfs,
};
use crate::decode::Image;
use std::{collections::HashMap, fs, net::IpAddr};

/// The kernel's process table, as the agent reads it.
pub trait Table: Send {
    /// The entry of process `pid`, if the table holds one.
    fn get(&self, pid: u32) -> Option<Image>;
}

/// How the session was entered (`process.entry_leader.entry_meta.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Init,
    Sshd,
    Terminal,
    Container,
    Unknown,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Sshd => "sshd",
            Self::Terminal => "terminal",
            Self::Container => "container",
            Self::Unknown => "unknown",
        }
    }
}

/// A process's entry leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub leader: Process,
    pub kind: EntryType,
    /// The ssh client's address (`entry_meta.source.ip`).
    pub source_ip: Option<IpAddr>,
}

/// The leaders of one exec's process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaders {
    pub group: Option<Process>,
    pub session: Option<Process>,
    pub entry: Option<Entry>,
}

/// A group's or session's leader as the kernel recorded it at a member's exec: its pid, and
/// while it lives its start time and exec count (0, 0 once it has exited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leader {
    pub pid: u32,
    pub start: u64,
    pub exec_id: u64,
}

impl Leader {
    /// A leader known by its pid only (its description is then never reused).
    pub fn pid(pid: u32) -> Self {
        Self {
            pid,
            ..Self::default()
        }
    }

    pub fn of_group(s: &boot_copy_common::Session) -> Self {
        Self {
            pid: s.pgid,
            start: s.group_leader_start,
            exec_id: s.group_leader_exec_id,
        }
    }

    pub fn of_session(s: &boot_copy_common::Session) -> Self {
        Self {
            pid: s.sid,
            start: s.session_leader_start,
            exec_id: s.session_leader_exec_id,
        }
    }
}

/// Sessions whose entry leader is cached at most (a host rarely has more sessions).
const ENTRY_CACHE: usize = 4096;
/// Leaders whose description is kept at most.
const LEADER_CACHE: usize = 4096;
/// Sessions walked up at most.
const WALK_DEPTH: usize = 16;
/// Programs that start a terminal login's session.
const LOGIN: [&[u8]; 4] = [b"login", b"agetty", b"getty", b"mingetty"];
/// sshd's per-connection process (`sshd-session` since OpenSSH 9.8).
const SSHD: [&[u8]; 2] = [b"sshd", b"sshd-session"];

/// Finds leaders: the kernel table when the agent runs the sensor, /proc otherwise.
#[derive(Default)]
pub struct Sessions {
    table: Option<Box<dyn Table>>,
    /// Entry leaders by session (leader pid and start).
    entries: HashMap<(u32, u64), Option<Entry>>,
    /// Leaders described from the table or /proc, by pid, with the start time and exec count
    /// they had: the same while those are (a leader's image changes only at its exec), so an
    /// exec in a known group costs no table read.
    described: HashMap<u32, ((u64, u64), Process)>,
}

impl Sessions {
    pub fn new(table: Box<dyn Table>) -> Self {
        Self {
            table: Some(table),
            entries: HashMap::new(),
            described: HashMap::new(),
        }
    }

    /// The leaders of `process` (with parent `parent`), whose group and session are led by
    /// `group` and `session`.
    pub fn leaders(
        &mut self,
        process: &Process,
        parent: &Process,
        group: Leader,
        session: Leader,
    ) -> Leaders {
        if session.pid == 0 {
            return Leaders::default(); // the kernel did not record them
        }
        let group = self.member_of(group, process, parent);
        let session = self.member_of(session, process, parent);
        let entry = session.as_ref().and_then(|s| self.entry(s));
        Leaders {
            group,
            session,
            entry,
        }
    }

    /// The process that leads `process`'s group or session: the process itself, its parent,
    /// or another that started before it.
    fn member_of(
        &mut self,
        leader: Leader,
        process: &Process,
        parent: &Process,
    ) -> Option<Process> {
        let pid = leader.pid;
        if pid == process.pid {
            return Some(process.clone());
        }
        if pid == parent.pid && parent.executable.is_some() {
            return Some(parent.clone());
        }
        let started_before =
            |p: &Process| p.start_ns.zip(process.start_ns).is_none_or(|(l, m)| l <= m);
        let live = (leader.start, leader.exec_id);
        if let Some((seen, known)) = self.described.get(&pid)
            && live.0 != 0
            && *seen == live
        {
            return Some(known.clone()).filter(started_before);
        }
        let kernel = self
            .table
            .as_ref()
            .and_then(|t| t.get(pid))
            .map(|i| from_image(&i));
        let found = kernel
            .filter(|p| p.executable.is_some() && started_before(p))
            .or_else(|| procfs::image(pid).ok().map(|i| from_image(&i)))
            .filter(started_before);
        // Kept only as the description of the live leader the kernel recorded.
        if let Some(p) = &found
            && live.0 != 0
            && same_start(p.start_ns, live.0)
        {
            if self.described.len() >= LEADER_CACHE {
                self.described.clear();
            }
            self.described.insert(pid, (live, p.clone()));
        }
        found
    }

    fn entry(&mut self, session: &Process) -> Option<Entry> {
        let key = (session.pid, session.start_ns.unwrap_or(0));
        if let Some(cached) = self.entries.get(&key) {
            return cached.clone();
        }
        let found = walk_to_entry(session.clone());
        if self.entries.len() >= ENTRY_CACHE {
            self.entries.clear();
        }
        self.entries.insert(key, found.clone());
        found
    }
}

/// Whether a description's start time is the recorded one: exact from the kernel's table, to
/// the clock tick where it came from /proc (an entry seeded at the agent's start, or a leader
/// read there).
fn same_start(described: Option<u64>, recorded: u64) -> bool {
    let tick = 1_000_000_000 / procfs::ticks_per_second();
    described.is_some_and(|s| s == recorded || s == recorded / tick * tick)
}

/// Walks up sessions from `leader` to the first that is an entry (see the module's text).
fn walk_to_entry(mut leader: Process) -> Option<Entry> {
    for _ in 0..WALK_DEPTH {
        let Some(link) = Link::read(leader.pid) else {
            return Some(Entry {
                leader,
                kind: EntryType::Unknown,
                source_ip: None,
            });
        };
        if let Some(kind) = link.entry_type() {
            let source_ip = (kind == EntryType::Sshd)
                .then(|| ssh_client(leader.pid))
                .flatten();
            return Some(Entry {
                leader,
                kind,
                source_ip,
            });
        }
        let next = procfs::image(link.parent_sid)
            .ok()
            .filter(|_| link.parent_sid != leader.pid);
        match next {
            Some(image) => leader = from_image(&image),
            None => break,
        }
    }
    Some(Entry {
        leader,
        kind: EntryType::Unknown,
        source_ip: None,
    })
}

/// What decides whether a session leader is an entry: its parent and pid namespace.
struct Link {
    ppid: u32,
    parent_name: Vec<u8>,
    /// The session of the leader's parent, where the walk goes on.
    parent_sid: u32,
    /// The leader is pid 1 of a pid namespace below the host's.
    namespace_init: bool,
}

impl Link {
    fn read(pid: u32) -> Option<Link> {
        let (ppid, _) = procfs::stat(pid).ok()?;
        let parent_name = fs::read_link(format!("/proc/{ppid}/exe"))
            .ok()
            .map(|p| paths::basename(p.as_os_str().as_encoded_bytes()).to_vec())
            .unwrap_or_default();
        let parent_sid = procfs::session(ppid).unwrap_or(0);
        Some(Link {
            ppid,
            parent_name,
            parent_sid,
            namespace_init: procfs::namespace_pid(pid) == Some(1) && pid != 1,
        })
    }

    fn entry_type(&self) -> Option<EntryType> {
        if self.namespace_init {
            Some(EntryType::Container)
        } else if SSHD.contains(&self.parent_name.as_slice()) {
            Some(EntryType::Sshd)
        } else if LOGIN.contains(&self.parent_name.as_slice()) {
            Some(EntryType::Terminal)
        } else if self.ppid <= 1 {
            Some(EntryType::Init)
        } else {
            None
        }
    }
}

/// The client address from `SSH_CONNECTION` (`client port server port`) in `pid`'s environment.
fn ssh_client(pid: u32) -> Option<IpAddr> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"SSH_CONNECTION="))
        .and_then(|v| std::str::from_utf8(v).ok()?.split(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    fn process(pid: u32, start: u64, exe: &str) -> Process {
        Process {
            pid,
            start_ns: Some(start),
            executable: Some(exe.as_bytes().to_vec()),
            ..Process::default()
        }
    }

    struct OneEntry(Image);

    impl Table for OneEntry {
        fn get(&self, pid: u32) -> Option<Image> {
            (pid == self.0.tgid).then(|| self.0.clone())
        }
    }

    /// A table whose entry can change (its process execs), counting its reads.
    struct Counted {
        entry: Arc<Mutex<Image>>,
        reads: Arc<AtomicUsize>,
    }

    impl Table for Counted {
        fn get(&self, pid: u32) -> Option<Image> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let entry = self.entry.lock().unwrap();
            (pid == entry.tgid).then(|| entry.clone())
        }
    }

    /// A leader the kernel recorded alive is read from the table again only once it has exec'd
    /// (or exited: nothing then tells that its entry is the same).
    #[test]
    fn a_live_leader_is_read_from_the_table_once_per_exec_of_its_own() {
        let gone = u32::MAX - 7; // no process has it: only the table describes it
        let entry = Arc::new(Mutex::new(image(gone, 5, "/usr/bin/bash")));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut sessions = Sessions::new(Box::new(Counted {
            entry: entry.clone(),
            reads: reads.clone(),
        }));
        let (me, parent) = (
            process(100, 1 << 40, "/usr/bin/cp"),
            process(99, 40, "/bin/sh"),
        );
        let mut group = |leader| {
            let l = sessions.leaders(&me, &parent, leader, Leader::pid(99));
            l.group.and_then(|g| g.executable).unwrap()
        };
        let live = Leader {
            pid: gone,
            start: 5,
            exec_id: 1,
        };
        for _ in 0..3 {
            assert_eq!(group(live), b"/usr/bin/bash");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        *entry.lock().unwrap() = image(gone, 5, "/usr/bin/python3");
        let exec_d = Leader { exec_id: 2, ..live };
        assert_eq!(group(exec_d), b"/usr/bin/python3");
        assert_eq!(group(exec_d), b"/usr/bin/python3");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // Another process with that pid, or a leader that exited: read each time.
        *entry.lock().unwrap() = image(gone, 7, "/usr/bin/zsh");
        assert_eq!(group(Leader { start: 7, ..live }), b"/usr/bin/zsh");
        assert_eq!(group(Leader::pid(gone)), b"/usr/bin/zsh");
        assert_eq!(group(Leader::pid(gone)), b"/usr/bin/zsh");
        assert_eq!(reads.load(Ordering::SeqCst), 5);
        // An entry seeded from /proc at the agent's start has its start to the clock tick.
        let tick = 1_000_000_000 / procfs::ticks_per_second();
        *entry.lock().unwrap() = image(gone, 3 * tick, "/usr/bin/fish");
        let seeded = Leader {
            start: 3 * tick + 5,
            ..live
        };
        assert_eq!(group(seeded), b"/usr/bin/fish");
        assert_eq!(group(seeded), b"/usr/bin/fish");
        assert_eq!(reads.load(Ordering::SeqCst), 6);
    }

    fn image(pid: u32, start: u64, exe: &str) -> Image {
        Image {
            tgid: pid,
            start_boottime_ns: start,
            flags: boot_copy_common::image_flags::LEADER_EXE,
            args_count: 1,
            euid: 1000,
            egid: 1000,
            exe: exe.as_bytes().to_vec(),
            args: vec![b"-bash".to_vec()],
            cwd: Vec::new(),
        }
    }

    #[test]
    fn leaders_are_the_process_its_parent_or_a_table_entry() {
        // A pid no process has: only the table can describe it (a leader that exited).
        let gone = u32::MAX - 7;
        let mut sessions = Sessions::new(Box::new(OneEntry(image(gone, 5, "/usr/bin/bash"))));
        let me = process(100, 50, "/usr/bin/cp");
        let parent = process(99, 40, "/usr/bin/dash");
        let l = sessions.leaders(&me, &parent, Leader::pid(100), Leader::pid(99));
        assert_eq!(l.group, Some(me.clone()));
        assert_eq!(l.session, Some(parent.clone()));
        let l = sessions.leaders(&me, &parent, Leader::pid(gone), Leader::pid(gone));
        let leader = l.session.expect("the exited leader, from the table");
        assert_eq!(leader.executable.as_deref(), Some(&b"/usr/bin/bash"[..]));
        assert_eq!(leader.user, Some((1000, 1000)));
        assert_eq!(l.entry.expect("an entry").kind, EntryType::Unknown);
    }

    #[test]
    fn a_table_entry_younger_than_the_member_is_not_its_leader() {
        let gone = u32::MAX - 7;
        let mut sessions = Sessions::new(Box::new(OneEntry(image(gone, 500, "/usr/bin/bash"))));
        let me = process(100, 50, "/usr/bin/cp");
        let parent = process(99, 40, "/usr/bin/dash");
        let l = sessions.leaders(&me, &parent, Leader::pid(gone), Leader::pid(gone));
        assert_eq!(l.session, None);
        assert_eq!(l.entry, None);
    }

    #[test]
    fn unrecorded_sessions_give_no_leaders() {
        let mut sessions = Sessions::default();
        let me = process(100, 50, "/usr/bin/cp");
        assert_eq!(
            sessions.leaders(&me, &me, Leader::pid(0), Leader::pid(0)),
            Leaders::default()
        );
    }

    #[test]
    fn a_live_session_leader_walks_to_an_entry() {
        use std::os::unix::process::CommandExt;
        // A session of its own: the test's may be none (session 0 under a kernel-started runner).
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: setsid is async-signal-safe.
        unsafe { cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into)) };
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let found = (0..100).find_map(|_| {
            let image = procfs::image(pid)
                .ok()
                .filter(|i| i.exe.ends_with(b"/sleep"));
            image.or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        });
        let leader = from_image(&found.expect("the child's exec"));
        let l = Sessions::default().leaders(
            &leader,
            &Process::default(),
            Leader::pid(pid),
            Leader::pid(pid),
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(l.session.as_ref(), Some(&leader));
        let entry = l
            .entry
            .expect("a session leader that is alive is walked from");
        assert!(entry.leader.executable.is_some(), "{entry:?}");
    }

    #[test]
    fn entry_types_from_the_parent() {
        let link = |ppid, name: &str, init| Link {
            ppid,
            parent_name: name.as_bytes().to_vec(),
            parent_sid: 0,
            namespace_init: init,
        };
        assert_eq!(
            link(1, "systemd", false).entry_type(),
            Some(EntryType::Init)
        );
        assert_eq!(
            link(800, "sshd-session", false).entry_type(),
            Some(EntryType::Sshd)
        );
        assert_eq!(link(800, "sshd", false).entry_type(), Some(EntryType::Sshd));
        assert_eq!(
            link(700, "login", false).entry_type(),
            Some(EntryType::Terminal)
        );
        assert_eq!(
            link(900, "conmon", true).entry_type(),
            Some(EntryType::Container)
        );
        assert_eq!(link(900, "bash", false).entry_type(), None);
    }
}

//! An exec joined with its parent: the executable resolved as Elastic Defend reports it, and the
//! parent described from the kernel table, from /proc, or marked unknown.
use super::{
    container::{self, Container},
    paths, procfs,
    session::{Leader, Leaders, Sessions},
};
use crate::decode::{Exec, Image};
use boot_copy_common::{Session, exec_flags, image_flags};

/// Where the parent's description came from (reported as `boot_copy.parent.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentSource {
    /// The kernel's process table, written at the parent's exec or fork.
    Kernel,
    /// The table entry the agent seeded from /proc at start.
    ProcSeed,
    /// Read from /proc when the event was handled (the table had no entry).
    Proc,
    /// Nothing known beyond the pid.
    Unknown,
}

impl ParentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::ProcSeed => "proc_seed",
            Self::Proc => "proc",
            Self::Unknown => "unknown",
        }
    }
}

/// One process as ECS describes it; `None` or empty where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Start time on the boot clock, in ns.
    pub start_ns: Option<u64>,
    pub executable: Option<Vec<u8>>,
    pub args: Vec<Vec<u8>>,
    pub args_count: u32,
    pub cwd: Option<Vec<u8>>,
    pub args_truncated: bool,
    pub path_truncated: bool,
    /// Effective user and group, where known.
    pub user: Option<(u32, u32)>,
}

impl Process {
    /// `process.name`: the executable's basename.
    pub fn name(&self) -> Option<&[u8]> {
        self.executable.as_deref().map(paths::basename)
    }
}

#[derive(Debug, Clone)]
pub struct ExecContext {
    pub exec: Exec,
    pub process: Process,
    pub parent: Process,
    pub parent_source: ParentSource,
    /// The process's container (`container.*`), from its cgroup; `None` on the host.
    pub container: Option<Container>,
    /// Its group, session and entry leaders (see [`ExecContext::join_session`]).
    pub leaders: Leaders,
    /// Whether the `/boot` it sees is the host's boot file system (`None`: unknown).
    pub host_boot: Option<bool>,
}

impl ExecContext {
    /// Sets the container from the cgroup path the process ran in (a `/proc/PID/cgroup` line's
    /// path, or what the kernel recorded at the exec): the one entry point for container context.
    /// The exec record does not carry the cgroup yet, so exec events have no `container.*` until
    /// the sensor records it.
    pub fn set_cgroup(&mut self, cgroup_path: &str) {
        self.container = container::from_path(cgroup_path);
    }

    /// Finds the process's group, session and entry leaders.
    pub fn join_session(&mut self, sessions: &mut Sessions) {
        let s = self.exec.session;
        let (group, session) = (Leader::of_group(&s), Leader::of_session(&s));
        self.leaders = sessions.leaders(&self.process, &self.parent, group, session);
    }

    /// The controlling terminal's (major, minor), if the process has one.
    pub fn tty(&self) -> Option<(u32, u32)> {
        let s = &self.exec.session;
        (recorded(s) && s.tty_major != 0).then_some((s.tty_major, s.tty_minor))
    }

    /// `process.interactive`: whether the process has a controlling terminal, where recorded.
    pub fn interactive(&self) -> Option<bool> {
        recorded(&self.exec.session).then(|| self.tty().is_some())
    }

    /// The parent's controlling terminal's (major, minor), if it has one.
    pub fn parent_tty(&self) -> Option<(u32, u32)> {
        let s = &self.exec.session;
        (recorded(s) && s.parent_tty_major != 0).then_some((s.parent_tty_major, s.parent_tty_minor))
    }

    /// `process.parent.interactive`, where recorded.
    pub fn parent_interactive(&self) -> Option<bool> {
        recorded(&self.exec.session).then(|| self.parent_tty().is_some())
    }

    /// The process's supplementary groups as recorded (at most `SUPPLEMENTAL_GROUPS_CAP`), and
    /// whether it has more.
    pub fn supplemental_groups(&self) -> Option<(&[u32], bool)> {
        let s = &self.exec.session;
        let n = s.ngroups as usize;
        recorded(s).then(|| (&s.groups[..n.min(s.groups.len())], n > s.groups.len()))
    }
}

/// Resolves an exec and its parent.
pub fn resolve(mut exec: Exec) -> ExecContext {
    let process = child(&mut exec);
    let (parent, parent_source) = match &exec.parent {
        Some(image) if image.has(image_flags::FROM_PROC) => {
            (from_image(image), ParentSource::ProcSeed)
        }
        Some(image) if image.has(image_flags::ARGS_READ_FAILED) => {
            (with_proc_args(from_image(image)), ParentSource::Kernel)
        }
        Some(image) => (from_image(image), ParentSource::Kernel),
        None => from_proc(exec.ppid, exec.start_boottime_ns),
    };
    let mut parent = parent;
    if recorded(&exec.session) {
        // The parent's credentials now, as the kernel read them at the exec.
        parent.user = Some((exec.session.parent_euid, exec.session.parent_egid));
    }
    ExecContext {
        exec,
        process,
        parent,
        parent_source,
        container: None,
        leaders: Leaders::default(),
        host_boot: None,
    }
}

/// Whether the kernel recorded the session (a process always has one; 0 is none recorded).
fn recorded(session: &Session) -> bool {
    session.sid != 0
}

/// The exec's process; its arguments move out of `exec` (they can be megabytes, and only the
/// process describes them from here on).
fn child(exec: &mut Exec) -> Process {
    // For a `#!` script the kernel runs the interpreter, but Defend reports the script's path.
    let executable = if exec.has(exec_flags::SCRIPT) {
        paths::absolute(exec.cwd.as_deref().unwrap_or(b"/"), &exec.filename)
    } else {
        exec.exe.clone()
    };
    Process {
        pid: exec.tgid,
        start_ns: known_start(exec.start_boottime_ns),
        executable: Some(executable),
        args: std::mem::take(&mut exec.args),
        args_count: exec.args_count,
        cwd: exec.cwd.clone(),
        args_truncated: exec.has(exec_flags::ARGS_TRUNCATED | exec_flags::ARGS_READ_FAILED),
        path_truncated: exec.has(
            exec_flags::EXE_TRUNCATED | exec_flags::CWD_TRUNCATED | exec_flags::FILENAME_TRUNCATED,
        ),
        user: Some((exec.euid, exec.egid)),
    }
}

pub(super) fn from_image(image: &Image) -> Process {
    let executable = if image.has(image_flags::EXE_IS_FILENAME) {
        paths::absolute(&image.cwd, &image.exe)
    } else {
        image.exe.clone()
    };
    Process {
        pid: image.tgid,
        start_ns: known_start(image.start_boottime_ns),
        executable: (!executable.is_empty()).then_some(executable),
        args: image.args.clone(),
        // 0 when the kernel could not read argc: the arguments captured are then all there is.
        args_count: image.args_count.max(image.args.len() as u32),
        cwd: (!image.cwd.is_empty()).then(|| image.cwd.clone()),
        args_truncated: image.has(image_flags::ARGS_TRUNCATED | image_flags::ARGS_READ_FAILED),
        path_truncated: image.has(image_flags::EXE_TRUNCATED | image_flags::CWD_TRUNCATED),
        user: Some((image.euid, image.egid)),
    }
}

/// The kernel reads a parent's arguments at its fork and that read can fail (a page swapped out):
/// they are then read from /proc, if the same process is still there.
fn with_proc_args(mut parent: Process) -> Process {
    let Ok(image) = procfs::image(parent.pid) else {
        return parent;
    };
    let same = parent
        .start_ns
        .is_none_or(|ns| procfs::ns_to_ticks(ns) == procfs::ns_to_ticks(image.start_boottime_ns));
    if same {
        parent.args_count = image.args.len() as u32;
        parent.args = image.args;
        parent.args_truncated = false;
    }
    parent
}

/// A start time of 0 is unknown: the kernel's BTF lacks `task_struct.start_boottime`.
fn known_start(ns: u64) -> Option<u64> {
    (ns != 0).then_some(ns)
}

/// The parent read from /proc now, unless it is gone or its pid was reused by a process that
/// started after the child (which cannot be the child's parent).
fn from_proc(ppid: u32, child_start_ns: u64) -> (Process, ParentSource) {
    match procfs::image(ppid) {
        Ok(image) if image.start_boottime_ns <= child_start_ns => {
            (from_image(&image), ParentSource::Proc)
        }
        _ => (
            Process {
                pid: ppid,
                ..Process::default()
            },
            ParentSource::Unknown,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(flags: u32) -> Exec {
        Exec {
            flags,
            ktime_boot_ns: 10,
            start_boottime_ns: u64::MAX,
            pid: 5,
            tgid: 5,
            ppid: std::process::id(),
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            args_count: 2,
            args_size: 10,
            comm: b"run.sh".to_vec(),
            filename: b"./run.sh".to_vec(),
            exe: b"/usr/bin/dash".to_vec(),
            interp: Some(b"/bin/sh".to_vec()),
            cwd: Some(b"/tmp/w".to_vec()),
            args: vec![b"/bin/sh".to_vec(), b"./run.sh".to_vec()],
            env: None,
            parent: None,
            session: Default::default(),
        }
    }

    #[test]
    fn script_executable_is_the_script_made_absolute() {
        let ctx = resolve(exec(exec_flags::SCRIPT));
        assert_eq!(
            ctx.process.executable.as_deref(),
            Some(&b"/tmp/w/run.sh"[..])
        );
        assert_eq!(ctx.process.name(), Some(&b"run.sh"[..]));
    }

    #[test]
    fn binary_executable_is_the_resolved_file() {
        let ctx = resolve(exec(0));
        assert_eq!(ctx.process.name(), Some(&b"dash"[..]));
    }

    #[test]
    fn parent_falls_back_to_proc_then_unknown() {
        let ctx = resolve(exec(0));
        assert_eq!(ctx.parent_source, ParentSource::Proc);
        assert_eq!(ctx.parent.pid, std::process::id());
        assert!(ctx.parent.executable.is_some());

        let mut young = exec(0);
        young.start_boottime_ns = 0; // the process at ppid started after this child: pid reuse
        let ctx = resolve(young);
        assert_eq!(ctx.parent_source, ParentSource::Unknown);
        assert_eq!(ctx.parent.executable, None);
    }

    #[test]
    fn kernel_parent_script_path_joined_with_its_cwd() {
        let mut e = exec(exec_flags::PARENT_FOUND);
        e.parent = Some(Image {
            tgid: 9,
            start_boottime_ns: 1,
            flags: image_flags::EXE_IS_FILENAME,
            args_count: 1,
            euid: 0,
            egid: 0,
            exe: b"info/grub-pc.postinst".to_vec(),
            args: vec![b"/bin/sh".to_vec()],
            cwd: b"/var/lib/dpkg".to_vec(),
        });
        let ctx = resolve(e);
        assert_eq!(ctx.parent_source, ParentSource::Kernel);
        assert_eq!(
            ctx.parent.executable.as_deref(),
            Some(&b"/var/lib/dpkg/info/grub-pc.postinst"[..])
        );
    }
}

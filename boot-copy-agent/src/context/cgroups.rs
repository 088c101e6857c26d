//! A process's container from the cgroups the kernel recorded at its exec (`Session::cgroup_id`,
//! its cgroup in the unified hierarchy, and `Session::memory_cgroup_id`, in the memory
//! controller's: each a directory's inode number), so that a process already gone when its
//! record is handled (a `cp` lasts a millisecond) is still placed in its container.
//!
//! The agent keeps the ids of each hierarchy's directories it has seen; an id it does not know
//! makes it read that hierarchy again (at most once a second: a storm of execs in new cgroups
//! costs one walk a second). The unified hierarchy's path decides where it names a container,
//! and on a host with that hierarchy alone also where it names none. On a cgroup v1 or hybrid
//! host the memory hierarchy's path decides next: a runtime's cgroupfs driver places a container
//! in every v1 hierarchy mounted, and its systemd driver in the unified one. With neither known
//! (an id not found, no memory hierarchy mounted at start), the process's `/proc/PID/cgroup`
//! decides while it lives, and its parent's once it is gone. No `/proc` read is made for a known
//! cgroup.
//!
//! A memory cgroup of the host's is not taken on its word: a privileged container can move
//! itself there and leave its other controllers in the container's cgroups. Every line of the
//! process's `/proc/PID/cgroup` (its parent's once it is gone) decides instead, once per
//! (unified cgroup, memory cgroup, mount namespace): the host's processes share a few such keys,
//! and a container's have their own mount namespace. A verdict is kept only when it was read
//! from a live process.
use super::container::{self, Container};
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How often an unknown id may make the agent walk a hierarchy again.
const REWALK_AFTER: Duration = Duration::from_secs(1);
/// Directories followed at most (a Kubernetes node has a few thousand cgroups).
const WALK_LIMIT: usize = 100_000;
/// Cross-checked verdicts kept at most (then forgotten all at once).
const CHECKED_LIMIT: usize = 4096;

/// The hierarchies the kernel records a process's cgroup in.
pub struct Cgroups {
    unified: Option<Hierarchy>,
    /// Whether the unified hierarchy is the only one (no v1 hierarchy can place a container).
    unified_only: bool,
    memory: Option<Hierarchy>,
    /// When the hierarchies were last looked for (a v1 one may be mounted after the agent
    /// starts: it is seen within `REWALK_AFTER`).
    looked: Option<Instant>,
    /// A host memory cgroup's verdict from `/proc`, by (unified id, memory id, mount
    /// namespace).
    checked: HashMap<(u64, u64, u32), Option<Container>>,
}

impl Cgroups {
    /// The hierarchies as this agent's mount namespace shows them (none: ids are not resolved,
    /// `/proc` alone decides).
    pub fn mounted() -> Self {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut cgroups = Self {
            unified: mount_of(&mounts, Line::Unified)
                .map(|root| Hierarchy::at(root, Line::Unified)),
            unified_only: false,
            memory: None,
            looked: None,
            checked: HashMap::new(),
        };
        cgroups.look_again();
        cgroups
    }

    /// Looks again whether a v1 hierarchy exists, and for the memory one if none was mounted,
    /// at most once every `REWALK_AFTER`.
    fn look_again(&mut self) {
        if self.looked.is_some_and(|at| at.elapsed() < REWALK_AFTER) {
            return;
        }
        self.looked = Some(Instant::now());
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        self.unified_only = unified_only(&own);
        if self.memory.is_none() && !self.unified_only {
            let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            self.memory =
                mount_of(&mounts, Line::Memory).map(|root| Hierarchy::at(root, Line::Memory));
        }
    }

    /// The container of process `pid` (parent `ppid`), whose cgroups were `unified_id` and
    /// `memory_id` and mount namespace `mnt_ns` at its exec.
    pub fn container(
        &mut self,
        pid: u32,
        ppid: u32,
        (unified_id, memory_id, mnt_ns): (u64, u64, u32),
    ) -> Option<Container> {
        let live = [pid, ppid];
        let unified = self
            .unified
            .as_mut()
            .and_then(|h| h.known(unified_id, live));
        match unified {
            Some(Some(found)) => return Some(found.clone()),
            Some(None) => {
                self.look_again();
                if self.unified_only {
                    return None;
                }
            }
            None => {}
        }
        if let Some(known) = self.memory.as_mut().and_then(|h| h.known(memory_id, live)) {
            if known.is_some() {
                return known.clone();
            }
            return self.cross_check(pid, ppid, (unified_id, memory_id, mnt_ns));
        }
        of_live(pid, ppid).flatten()
    }
}

impl Cgroups {
    /// The container of a process in a host memory cgroup, from every line of its
    /// `/proc/PID/cgroup` (its parent's once it is gone), once per key; nothing is kept when
    /// both are gone (a container's first copy must not make its key the host's).
    fn cross_check(&mut self, pid: u32, ppid: u32, key: (u64, u64, u32)) -> Option<Container> {
        if let Some(found) = self.checked.get(&key) {
            return found.clone();
        }
        let found = of_live(pid, ppid)?;
        if self.checked.len() >= CHECKED_LIMIT {
            self.checked.clear();
        }
        self.checked.insert(key, found.clone());
        found
    }
}

/// The container every line of process `pid`'s `/proc/PID/cgroup` names, or, once it is gone,
/// its parent's (a container's process is the child of one in the same container, its shell,
/// or of the runtime's, on the host); `None` when both are gone.
fn of_live(pid: u32, ppid: u32) -> Option<Option<Container>> {
    container::of_pid(pid)
        .or_else(|_| container::of_pid(ppid))
        .ok()
}

/// Which line of `/proc/PID/cgroup` holds a hierarchy's path for a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// `0::PATH`.
    Unified,
    /// `N:CONTROLLERS:PATH` with `memory` among the controllers.
    Memory,
}

impl Line {
    fn path_in(self, text: &str) -> Option<&str> {
        text.lines().find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            let ours = match self {
                Line::Unified => l.starts_with("0::"),
                Line::Memory => controllers.split(',').any(|c| c == "memory"),
            };
            ours.then_some(path)
        })
    }
}

/// One hierarchy's cgroup ids, with the container each one's path names (`None`: a host
/// cgroup).
struct Hierarchy {
    root: PathBuf,
    line: Line,
    known: HashMap<u64, Option<Container>>,
    walked: Option<Instant>,
}

impl Hierarchy {
    fn at(root: PathBuf, line: Line) -> Self {
        Self {
            root,
            line,
            known: HashMap::new(),
            walked: None,
        }
    }

    /// The container `id`'s path names, if `id` is known: known before, else the cgroup of one
    /// of `live` in this hierarchy if its directory is `id`, else from a new walk.
    fn known(&mut self, id: u64, live: [u32; 2]) -> Option<&Option<Container>> {
        if id == 0 {
            return None;
        }
        if !self.known.contains_key(&id) {
            match live.into_iter().find_map(|pid| self.path_of(pid, id)) {
                Some(path) => {
                    self.known.insert(id, container::from_path(&path));
                }
                None if self.may_walk() => self.walk(),
                None => {}
            }
        }
        self.known.get(&id)
    }

    /// Process `pid`'s cgroup in this hierarchy, if it is `id`.
    fn path_of(&self, pid: u32, id: u64) -> Option<String> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = self.line.path_in(&text)?;
        let dir = self.root.join(path.trim_start_matches('/'));
        (fs::metadata(dir).ok()?.ino() == id).then(|| path.to_owned())
    }

    fn may_walk(&self) -> bool {
        self.walked.is_none_or(|at| at.elapsed() >= REWALK_AFTER)
    }

    fn walk(&mut self) {
        self.walked = Some(Instant::now());
        self.known.clear();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            if self.known.len() >= WALK_LIMIT {
                tracing::warn!(limit = WALK_LIMIT, root = %self.root.display(), "cgroup hierarchy walk cut short");
                break;
            }
            let Ok(meta) = fs::metadata(&dir) else {
                continue; // removed while walked
            };
            let path = relative(&self.root, &dir);
            self.known.insert(meta.ino(), container::from_path(&path));
            if let Ok(entries) = fs::read_dir(&dir) {
                let dirs = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()));
                stack.extend(dirs.map(|e| e.path()));
            }
        }
    }
}

/// `dir` as a cgroup path: `/` and what lies below `root`.
fn relative(root: &Path, dir: &Path) -> String {
    let below = dir.strip_prefix(root).unwrap_or(Path::new(""));
    format!("/{}", below.display())
}

/// Whether a `/proc/PID/cgroup` text shows the unified hierarchy alone (its `0::` line).
fn unified_only(text: &str) -> bool {
    let mut lines = text.lines();
    lines.next().is_some_and(|l| l.starts_with("0::")) && lines.next().is_none()
}

/// Where a hierarchy is mounted, from `/proc/self/mounts`' text: the unified (cgroup2) one at
/// `/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` on a hybrid one; the v1 hierarchy
/// with the memory controller at `/sys/fs/cgroup/memory`.
fn mount_of(mounts: &str, line: Line) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut fields = l.split(' ');
        let (_, point, kind, options) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let ours = match line {
            Line::Unified => kind == "cgroup2",
            Line::Memory => kind == "cgroup" && options.split(',').any(|o| o == "memory"),
        };
        ours.then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private tree in the shape of a hierarchy: ids are the directories' inodes.
    fn tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("cgroups-{name}-{}", std::process::id()));
        fs::create_dir_all(root.join("user.slice")).unwrap();
        root
    }

    fn id(dir: &Path) -> u64 {
        fs::metadata(dir).unwrap().ino()
    }

    const SCOPE: &str =
        "docker-4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970.scope";
    const GONE: [u32; 2] = [u32::MAX; 2];
    const HOST_NS: u32 = 4_026_531_841;

    #[test]
    fn ids_are_resolved_by_walking_the_hierarchy_again() {
        let root = tree("walk");
        let mut h = Hierarchy::at(root.clone(), Line::Unified);
        assert_eq!(h.known(id(&root.join("user.slice")), GONE), Some(&None));
        // A container started after the walk: its id is found by the next one.
        let scope = root.join("system.slice").join(SCOPE);
        fs::create_dir_all(&scope).unwrap();
        h.walked = Some(Instant::now() - REWALK_AFTER);
        let found = h.known(id(&scope), GONE).cloned().flatten();
        let found = found.expect("the docker scope");
        assert_eq!(found.runtime, Some(container::Runtime::Docker));
        assert!(found.id.starts_with("4f797c53"));
        // An unknown id does not walk again within the second; the root is no container.
        assert_eq!(h.known(u64::MAX, GONE), None);
        assert_eq!(h.known(id(&root), GONE), Some(&None));
        fs::remove_dir_all(&root).unwrap();
    }

    /// Docker's cgroupfs layout on a hybrid host: the unified hierarchy shows the runtime's
    /// cgroup, the memory hierarchy the container's, and a gone process is placed by the latter;
    /// a host cgroup in both is decided without `/proc` (the pids are no process's).
    #[test]
    fn the_memory_hierarchy_places_containers_the_unified_one_does_not() {
        let (unified, memory) = (tree("unified"), tree("memory"));
        let docker =
            memory.join("docker/4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970");
        fs::create_dir_all(&docker).unwrap();
        let mut cgroups = Cgroups {
            unified: Some(Hierarchy::at(unified.clone(), Line::Unified)),
            unified_only: false,
            memory: Some(Hierarchy::at(memory.clone(), Line::Memory)),
            looked: Some(Instant::now()),
            checked: HashMap::new(),
        };
        let service = id(&unified.join("user.slice"));
        let found = cgroups.container(u32::MAX, u32::MAX, (service, id(&docker), HOST_NS));
        assert_eq!(
            found.expect("docker's").runtime,
            Some(container::Runtime::Docker)
        );
        let host = id(&memory.join("user.slice"));
        // A host memory cgroup is checked against /proc: with the process and its parent gone,
        // the host, and nothing kept; read from a live process (this one), kept for its key.
        let key = (service, host, HOST_NS);
        assert_eq!(cgroups.container(u32::MAX, u32::MAX, key), None);
        assert!(cgroups.checked.is_empty());
        let me = std::process::id();
        let mine = container::of_pid(me).unwrap();
        assert_eq!(cgroups.container(me, me, key), mine);
        assert_eq!(cgroups.checked.get(&key), Some(&mine));
        // Where the unified hierarchy names the container, the memory one is not asked.
        let scope = unified.join("system.slice").join(SCOPE);
        fs::create_dir_all(&scope).unwrap();
        cgroups.unified.as_mut().unwrap().walked = None;
        assert!(
            cgroups
                .container(u32::MAX, u32::MAX, (id(&scope), host, HOST_NS))
                .is_some()
        );
        fs::remove_dir_all(&unified).unwrap();
        fs::remove_dir_all(&memory).unwrap();
    }

    /// On a hybrid host a v1 hierarchy may place a container the unified one does not show.
    #[test]
    fn the_unified_hierarchy_alone_decides_only_where_it_is_alone() {
        assert!(unified_only("0::/user.slice/session-3.scope\n"));
        assert!(!unified_only(
            "1:name=systemd:/user.slice\n0::/user.slice\n"
        ));
        assert!(!unified_only("4:memory:/docker/4f797c53\n0::/\n"));
        assert!(!unified_only(""));
    }

    #[test]
    fn hierarchies_and_their_lines_are_found() {
        let mounts = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        let at = |line| mount_of(mounts, line).map(|p| p.display().to_string());
        assert_eq!(at(Line::Unified).as_deref(), Some("/sys/fs/cgroup/unified"));
        assert_eq!(at(Line::Memory).as_deref(), Some("/sys/fs/cgroup/memory"));
        assert_eq!(
            mount_of("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", Line::Memory),
            None
        );
        let text = "5:memory:/docker/abc\n3:cpu,cpuacct:/x\n0::/system.slice/docker.service\n";
        assert_eq!(Line::Memory.path_in(text), Some("/docker/abc"));
        assert_eq!(
            Line::Unified.path_in(text),
            Some("/system.slice/docker.service")
        );
    }

    /// This process's own cgroups, from its /proc entry without a walk, in each hierarchy this
    /// machine mounts.
    #[test]
    fn the_hierarchies_of_this_machine_are_found() {
        let cgroups = Cgroups::mounted();
        let unified = cgroups.unified.expect("a cgroup2 mount");
        let text = fs::read_to_string("/proc/self/cgroup").unwrap();
        let me = std::process::id();
        for mut h in [Some(unified), cgroups.memory].into_iter().flatten() {
            assert_eq!(h.known(id(&h.root.clone()), GONE), Some(&None));
            let mine = h.line.path_in(&text).unwrap().to_owned();
            let dir = h.root.join(mine.trim_start_matches('/'));
            let mut fresh = Hierarchy::at(h.root.clone(), h.line);
            fresh.walked = Some(Instant::now());
            assert!(fresh.known(id(&dir), [me, me]).is_some(), "{mine}");
        }
    }
}

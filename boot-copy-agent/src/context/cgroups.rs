//! A process's container from the cgroup the kernel recorded at its exec (`Session::cgroup_id`,
//! the unified hierarchy's cgroup: its directory's inode number), so that a process already gone
//! when its record is handled (a `cp` lasts a millisecond) is still placed in its container.
//!
//! The agent keeps the ids of the unified hierarchy's directories it has seen; an id it does not
//! know makes it read the tree again (at most once a second: a storm of execs in new cgroups
//! costs one walk a second). Where the unified hierarchy does not place containers (a cgroup v1
//! or hybrid host whose runtime uses the cgroupfs driver), the process's `/proc/PID/cgroup`
//! decides while it lives, and its parent's once it is gone.
use super::container::{self, Container};
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How often an unknown id may make the agent walk the hierarchy again.
const REWALK_AFTER: Duration = Duration::from_secs(1);
/// Directories followed at most (a Kubernetes node has a few thousand cgroups).
const WALK_LIMIT: usize = 100_000;

/// Cgroup ids to paths, in the unified hierarchy mounted at `root`.
pub struct Cgroups {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    walked: Option<Instant>,
}

impl Cgroups {
    /// The unified hierarchy as this agent's mount namespace shows it (none: ids are not
    /// resolved, `/proc` alone decides).
    pub fn unified() -> Self {
        Self::at(unified_mount())
    }

    fn at(root: Option<PathBuf>) -> Self {
        Self {
            root,
            paths: HashMap::new(),
            walked: None,
        }
    }

    /// The container of process `pid` (parent `ppid`), whose cgroup was `cgroup_id` at its exec.
    pub fn container(&mut self, pid: u32, ppid: u32, cgroup_id: u64) -> Option<Container> {
        let recorded = self
            .path(cgroup_id, [pid, ppid])
            .and_then(container::from_path);
        // Gone, its parent decides: a container's process is the child of one in the same
        // container (its shell) or of the runtime's, on the host.
        recorded.or_else(|| match container::of_pid(pid) {
            Ok(found) => found,
            Err(_) => container::of_pid(ppid).ok().flatten(),
        })
    }

    /// The path of `id` under the hierarchy's root (`/system.slice/...`): known, else the
    /// unified cgroup of one of `live` if its directory is `id`, else from a new walk.
    fn path(&mut self, id: u64, live: [u32; 2]) -> Option<&str> {
        if id == 0 {
            return None;
        }
        if !self.paths.contains_key(&id) {
            match live.into_iter().find_map(|pid| self.unified_of(pid, id)) {
                Some(path) => {
                    self.paths.insert(id, path);
                }
                None if self.may_walk() => self.walk(),
                None => {}
            }
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// Process `pid`'s cgroup in the unified hierarchy (its `0::` line), if it is `id`.
    fn unified_of(&self, pid: u32, id: u64) -> Option<String> {
        let root = self.root.as_ref()?;
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = root.join(path.trim_start_matches('/'));
        (fs::metadata(dir).ok()?.ino() == id).then(|| path.to_owned())
    }

    fn may_walk(&self) -> bool {
        self.root.is_some() && self.walked.is_none_or(|at| at.elapsed() >= REWALK_AFTER)
    }

    fn walk(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        self.walked = Some(Instant::now());
        self.paths.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            if self.paths.len() >= WALK_LIMIT {
                tracing::warn!(limit = WALK_LIMIT, "cgroup hierarchy walk cut short");
                break;
            }
            let Ok(meta) = fs::metadata(&dir) else {
                continue; // removed while walked
            };
            self.paths.insert(meta.ino(), relative(&root, &dir));
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

/// Where the unified (cgroup2) hierarchy is mounted: `/sys/fs/cgroup` on a v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one.
fn unified_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private tree in the shape of a unified hierarchy: ids are the directories' inodes.
    #[test]
    fn ids_are_resolved_by_walking_the_hierarchy_again() {
        let root = std::env::temp_dir().join(format!("cgroups-{}", std::process::id()));
        let scope = "system.slice/docker-4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970.scope";
        fs::create_dir_all(root.join("user.slice")).unwrap();
        let mut cgroups = Cgroups::at(Some(root.clone()));
        let user = fs::metadata(root.join("user.slice")).unwrap().ino();
        let gone = [u32::MAX; 2];
        assert_eq!(cgroups.path(user, gone), Some("/user.slice"));
        // A container started after the walk: its id is found by the next one.
        fs::create_dir_all(root.join(scope)).unwrap();
        let id = fs::metadata(root.join(scope)).unwrap().ino();
        cgroups.walked = Some(Instant::now() - REWALK_AFTER);
        let found = cgroups
            .container(u32::MAX, u32::MAX, id)
            .expect("the docker scope");
        assert_eq!(found.runtime, Some(container::Runtime::Docker));
        assert!(found.id.starts_with("4f797c53"));
        // An unknown id does not walk again within the second; the host's root is no container.
        assert_eq!(cgroups.path(u64::MAX, gone), None);
        let root_id = fs::metadata(&root).unwrap().ino();
        assert_eq!(cgroups.container(u32::MAX, u32::MAX, root_id), None);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_unified_hierarchy_of_this_machine_is_found() {
        let root = unified_mount().expect("a cgroup2 mount");
        let mut cgroups = Cgroups::at(Some(root.clone()));
        let id = fs::metadata(&root).unwrap().ino();
        assert_eq!(cgroups.path(id, [u32::MAX; 2]), Some("/"));
        // This process's own cgroup, from its /proc entry without a walk.
        let me = std::process::id();
        let text = fs::read_to_string("/proc/self/cgroup").unwrap();
        let mine = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let dir = root.join(mine.trim_start_matches('/'));
        let id = fs::metadata(dir).unwrap().ino();
        let mut fresh = Cgroups::at(Some(root));
        fresh.walked = Some(Instant::now());
        assert_eq!(fresh.path(id, [me, me]), Some(mine));
    }
}

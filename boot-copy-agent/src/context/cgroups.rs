//! A process's container from the cgroup the kernel recorded at its exec (`Session::cgroup_id`,
//! the unified hierarchy's cgroup: its directory's inode number), so that a process already gone
//! when its record is handled (a `cp` lasts a millisecond) is still placed in its container.
//!
//! The agent keeps the ids of the unified hierarchy's directories it has seen; an id it does not
//! know makes it read the tree again (at most once a second: a storm of execs in new cgroups
//! costs one walk a second). Where the unified hierarchy does not place containers (a cgroup v1
//! host whose runtime uses the cgroupfs driver), the process's `/proc/PID/cgroup` decides while
//! it lives.
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

    /// The container of process `pid`, whose cgroup was `cgroup_id` at its exec.
    pub fn container(&mut self, pid: u32, cgroup_id: u64) -> Option<Container> {
        let recorded = self.path(cgroup_id).and_then(container::from_path);
        recorded.or_else(|| container::of_pid(pid).ok().flatten())
    }

    /// The path of `id` under the hierarchy's root (`/system.slice/...`).
    fn path(&mut self, id: u64) -> Option<&str> {
        if id == 0 {
            return None;
        }
        if !self.paths.contains_key(&id) && self.may_walk() {
            self.walk();
        }
        self.paths.get(&id).map(String::as_str)
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
        assert_eq!(cgroups.path(user), Some("/user.slice"));
        // A container started after the walk: its id is found by the next one.
        fs::create_dir_all(root.join(scope)).unwrap();
        let id = fs::metadata(root.join(scope)).unwrap().ino();
        cgroups.walked = Some(Instant::now() - REWALK_AFTER);
        let found = cgroups.container(u32::MAX, id).expect("the docker scope");
        assert_eq!(found.runtime, Some(container::Runtime::Docker));
        assert!(found.id.starts_with("4f797c53"));
        // An unknown id does not walk again within the second; the host's root is no container.
        assert_eq!(cgroups.path(u64::MAX), None);
        let root_id = fs::metadata(&root).unwrap().ino();
        assert_eq!(cgroups.container(u32::MAX, root_id), None);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_unified_hierarchy_of_this_machine_is_found() {
        let root = unified_mount().expect("a cgroup2 mount");
        let mut cgroups = Cgroups::at(Some(root.clone()));
        let id = fs::metadata(&root).unwrap().ino();
        assert_eq!(cgroups.path(id), Some("/"));
    }
}

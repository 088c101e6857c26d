//! Containers named from the cgroup a copy ran in, on the real kernel: cgroups made here in the
//! layouts runtimes make, a copy run in each, and its alert's `container.*`.
//! - the unified (v2) hierarchy, Docker's systemd layout and a Kubernetes pod's: the id the
//!   kernel recorded at the exec names the cgroup, even once the copy is gone;
//! - a cgroup v1 hierarchy, Docker's cgroupfs layout on a hybrid host: in the memory
//!   controller's hierarchy where the machine mounts one, named from the id the kernel recorded
//!   even once the copy is gone; elsewhere in a named hierarchy of the test's own, read from the
//!   process;
//! - the host's own cgroups, whatever their names: no container;
//! - a container that moved itself into a host memory cgroup: still named.
//!
//! Where the machine has no unified hierarchy mounted (the kernel matrix's guests), the test
//! mounts one of its own, in the agent's mount namespace.
use std::{fs, path::PathBuf};

use crate::support::boot_agent::{agent_in, published_alert_for};
use boot_copy_harness::{BootKind, BootNamespace, unique};

const ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
const POD: &str = "8dbf1a4e-5b4c-4a4e-9a5e-0e3c2b1d7f60";

/// Where the unified hierarchy is mounted, as `/proc/self/mounts` says.
fn unified() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// Where the v1 hierarchy with the memory controller is mounted, if one is.
fn memory_v1() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let memory = f
            .get(3)
            .is_some_and(|o| o.split(',').any(|o| o == "memory"));
        (f.get(2) == Some(&"cgroup") && memory).then(|| PathBuf::from(f[1]))
    })
}

/// A cgroup directory made for the test, removed (with the ones above it made too) when dropped.
/// `root` is a hierarchy's mount point in the namespace `ns`, reached from here through the
/// namespace holder's root.
struct Cgroup {
    made: Vec<PathBuf>,
    /// The directory as the namespace's processes name it.
    dir: PathBuf,
}

impl Cgroup {
    fn make(ns: &BootNamespace, root: &std::path::Path, path: &str) -> Cgroup {
        let outside = PathBuf::from(format!("/proc/{}/root", ns.pid()));
        let mut made = Vec::new();
        let mut dir = outside.join(root.strip_prefix("/").unwrap());
        for part in path.split('/') {
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                made.push(dir.clone());
            }
        }
        Cgroup {
            made,
            dir: root.join(path),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// A v1 hierarchy without controllers, named for the test (`tag`), mounted in the namespace (a
/// kernel mounts any number of them); its mount point.
fn named_v1(ns: &BootNamespace, tag: &str) -> PathBuf {
    let v1 = std::env::temp_dir().join(format!("cgroup1-{tag}"));
    ns.sh(&format!(
        "mkdir -p {d} && mount -t cgroup -o none,name=bc{tag} bc{tag} {d}",
        d = v1.display()
    ))
    .unwrap();
    v1
}

/// Runs `cp` into /boot from a shell moved into `cgroup` first; returns the copy's target.
/// With `wait`, the copy reads a pipe that stays open a second (it is alive when the agent looks).
fn copy_in(ns: &BootNamespace, cgroup: &Cgroup, wait: bool) -> String {
    let target = format!("/boot/cg-{}", unique());
    let copy = if wait {
        format!("sleep 1 | cp /dev/stdin {target}")
    } else {
        format!("cp /etc/hostname {target}")
    };
    let procs = cgroup.dir.join("cgroup.procs");
    ns.isolated(&format!("echo $$ > {} && {copy}; true", procs.display()))
        .unwrap();
    target
}

#[test]
fn containers_are_named_from_the_cgroups_of_their_copies() {
    // The namespace holds a unified hierarchy of its own where the machine has none mounted.
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let root = match unified() {
        Some(root) => root,
        None => {
            let root = std::env::temp_dir().join(format!("cgroup2-{}", unique()));
            ns.sh(&format!(
                "mkdir -p {r} && mount -t cgroup2 none {r}",
                r = root.display()
            ))
            .unwrap();
            root
        }
    };
    let mut agent = agent_in(&ns, "cgroups", "");
    let tag = unique().replace('-', "");
    let docker = Cgroup::make(
        &ns,
        &root,
        &format!("bc-test-{tag}.slice/docker-{ID}.scope"),
    );
    let pod_path = format!(
        "bc-test-{tag}-kubepods.slice/kubepods-pod{}.slice/cri-containerd-{ID}.scope",
        POD.replace('-', "_")
    );
    let pod = Cgroup::make(&ns, &root, &pod_path);
    // Named like an id, under a parent no runtime uses: the host's own.
    let lookalike = Cgroup::make(
        &ns,
        &root,
        &format!("bc-test-{tag}-process_api/{}", &ID[..32]),
    );

    // Docker's cgroupfs layout in the memory controller's v1 hierarchy, where one is mounted,
    // made with the others: the agent learns every directory by walking.
    let memory = memory_v1();
    let docker_memory = memory
        .as_ref()
        .map(|m| Cgroup::make(&ns, m, &format!("bc-test-{tag}/docker/{ID}")));

    let a = published_alert_for(&mut agent, &copy_in(&ns, &docker, false));
    assert_eq!(a["container"]["id"], ID, "{a}");
    assert_eq!(a["container"]["runtime"], "docker");
    let a = published_alert_for(&mut agent, &copy_in(&ns, &pod, false));
    assert_eq!(a["container"]["id"], ID, "{a}");
    assert_eq!(a["container"]["runtime"], "containerd");
    assert_eq!(a["orchestrator"]["resource"]["id"], POD, "{a}");
    assert_eq!(a["boot_copy"]["pod"]["uid"], POD);
    let a = published_alert_for(&mut agent, &copy_in(&ns, &lookalike, false));
    assert!(a.get("container").is_none(), "{a}");

    // Docker's cgroupfs layout in a v1 hierarchy: the memory controller's, as Docker makes it
    // (the copy gone when its record is handled, it is placed by the id the kernel recorded);
    // or, where none is mounted, one without controllers, named for the test, mounted in the
    // namespace (a kernel mounts any number of named v1 hierarchies), read from the live copy.
    let a = match &docker_memory {
        Some(docker_v1) => published_alert_for(&mut agent, &copy_in(&ns, docker_v1, false)),
        None => {
            let v1 = named_v1(&ns, &tag);
            let docker_v1 = Cgroup::make(&ns, &v1, &format!("docker/{ID}"));
            // A v1 hierarchy mounted after the agent started is seen within a second.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let a = published_alert_for(&mut agent, &copy_in(&ns, &docker_v1, true));
            drop(docker_v1);
            let _ = fs::remove_dir(&v1);
            a
        }
    };
    assert_eq!(a["container"]["id"], ID, "{a}");
    assert_eq!(a["container"]["runtime"], "docker");
    let problems = crate::support::ecs_schema::Schema::load().violations(&a);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A privileged container's way out on a hybrid host: it moves itself into a memory cgroup of
/// the host's and leaves its other controllers in Docker's cgroupfs layout. Its copy, in a mount
/// namespace of its own, is still named from every line of its `/proc/PID/cgroup` (here a
/// named v1 hierarchy of the test's own holds `docker/ID`; the memory cgroup is the test's, the
/// host's), not placed on the host by its memory cgroup.
#[test]
fn a_host_memory_cgroup_does_not_hide_a_container() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "cgroups-memory", "");
    let v1 = named_v1(&ns, &unique().replace('-', ""));
    let docker_v1 = Cgroup::make(&ns, &v1, &format!("docker/{ID}"));
    let a = published_alert_for(&mut agent, &copy_in(&ns, &docker_v1, true));
    assert_eq!(a["container"]["id"], ID, "{a}");
    assert_eq!(a["container"]["runtime"], "docker");
    drop(docker_v1);
    let _ = fs::remove_dir(&v1);
}

//! The container a process runs in, from its cgroup path(s), read the way Falco's container
//! engines (libsinsp `runc.cpp` and `container_engine/*`) and Tetragon read them: runc-based
//! runtimes put a container in a cgroup named for its 64-hex id, `<prefix><id>` under cgroupfs
//! and `<prefix><id>.scope` under systemd; LXC and systemd-nspawn name theirs after the
//! container's name.
//!
//! Only layouts a runtime makes count: a bare 64-hex directory only under `docker`, `default`
//! (containerd's namespace) or a Kubernetes pod, a prefixed one only with a runtime's prefix. A
//! host cgroup whose name merely looks like an id (`/process_api/066d…`, 32 hex digits under a
//! parent no runtime uses) is not a container, nor are the runtimes' own helpers that live beside
//! their containers (`libpod-conmon-…`, `crio-conmon-…`, `lxc.monitor.…`) or a libvirt VM
//! (`machine-qemu…`). A path holding several containers (Docker in an LXC container) names the
//! innermost one.
use std::{fs, io};

/// The runtime, where the cgroup layout names it (`container.runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
    CriO,
    Podman,
    SystemdNspawn,
    Lxc,
    LibvirtLxc,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Podman => "podman",
            Self::SystemdNspawn => "systemd-nspawn",
            Self::Lxc => "lxc",
            Self::LibvirtLxc => "libvirt-lxc",
        }
    }
}

/// A process's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The runtime's id: 64 hex digits for runc-based runtimes, the name for LXC and machines.
    pub id: String,
    /// The container's name, for runtimes that identify containers by name (LXC, machines).
    pub name: Option<String>,
    /// `None` where the layout is shared by several runtimes (Kubernetes' cgroupfs driver).
    pub runtime: Option<Runtime>,
    /// The Kubernetes pod's UID (dashed, as `kubectl get pod -o jsonpath='{.metadata.uid}'`).
    pub pod_uid: Option<String>,
}

/// The container of process `pid`, from `/proc/PID/cgroup`; `Ok(None)` for a host process.
pub fn of_pid(pid: u32) -> io::Result<Option<Container>> {
    Ok(from_proc_cgroup(&fs::read_to_string(format!(
        "/proc/{pid}/cgroup"
    ))?))
}

/// The container named by the lines of a `/proc/PID/cgroup` file (cgroup v1, v2 or both). The
/// unified hierarchy's line (`0::`) is read first, then systemd's v1 hierarchy, then the
/// controllers in file order: on a hybrid host each runtime places the container in at least one
/// of them, and where they differ the first is the one runtimes manage.
pub fn from_proc_cgroup(text: &str) -> Option<Container> {
    let paths: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(':')?;
            rest.split_once(':')
        })
        .collect();
    let rank = |controllers: &str| match controllers {
        "" => 0,
        "name=systemd" => 1,
        _ => 2,
    };
    let mut ordered = paths;
    ordered.sort_by_key(|(controllers, _)| rank(controllers));
    ordered.into_iter().find_map(|(_, path)| from_path(path))
}

/// The container named by one cgroup path (`/system.slice/docker-<id>.scope`).
pub fn from_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let pod_uid = pod_uid(&parts);
    let found = (0..parts.len())
        .rev()
        .find_map(|i| component(&parts[..i], parts[i], pod_uid.is_some()))?;
    let (id, name, runtime) = found;
    // A pod's UID belongs to its containers only, not to an LXC container nested in one.
    let in_pod = matches!(
        runtime,
        None | Some(Runtime::Docker | Runtime::Containerd | Runtime::CriO)
    );
    Some(Container {
        id,
        name,
        runtime,
        pod_uid: pod_uid.filter(|_| in_pod),
    })
}

type Found = (String, Option<String>, Option<Runtime>);

/// Runc-based runtimes' prefixes for the container's own cgroup (`<prefix><id>[.scope]`).
/// Podman's cgroupfs manager uses `libpod-<id>` too, under `/libpod_parent`.
const PREFIXES: [(&str, Runtime); 5] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

/// The container cgroup `part` names, if any, given the components above it.
fn component(above: &[&str], part: &str, in_pod: bool) -> Option<Found> {
    let unscoped = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = unscoped.strip_prefix(prefix) {
            return is_runc_id(id).then(|| (id.to_owned(), None, Some(runtime)));
        }
    }
    let parent = above.last().copied().unwrap_or("");
    if is_runc_id(part) {
        return match parent {
            "docker" => Some((part.to_owned(), None, Some(Runtime::Docker))),
            "default" => Some((part.to_owned(), None, Some(Runtime::Containerd))),
            _ if in_pod && parent.starts_with("pod") => Some((part.to_owned(), None, None)),
            _ => None,
        };
    }
    named(parent, part)
}

/// LXC and machined containers, identified by name.
fn named(parent: &str, part: &str) -> Option<Found> {
    let lxc = part
        .strip_prefix("lxc.payload.")
        .or(matches!(parent, "lxc" | "lxc.payload").then_some(part))
        .filter(|name| !name.is_empty());
    if let Some(name) = lxc {
        return Some((name.to_owned(), Some(name.to_owned()), Some(Runtime::Lxc)));
    }
    if parent != "machine.slice" {
        return None;
    }
    let machine = unescape(part.strip_prefix("machine-")?.strip_suffix(".scope")?);
    if machine.starts_with("qemu-") || machine.is_empty() {
        return None; // a libvirt virtual machine's QEMU process, not a container
    }
    let runtime = if machine.starts_with("lxc-") {
        Runtime::LibvirtLxc
    } else {
        Runtime::SystemdNspawn
    };
    Some((machine.clone(), Some(machine), Some(runtime)))
}

/// The pod UID of a path inside Kubernetes' `kubepods` hierarchy: `pod<uid>` (cgroupfs driver)
/// or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd driver).
fn pod_uid(parts: &[&str]) -> Option<String> {
    let top = parts.iter().position(|p| p.starts_with("kubepods"))?;
    parts[top..].iter().find_map(|part| {
        let uid = match part.strip_suffix(".slice") {
            Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
            None => part.strip_prefix("pod")?.to_owned(),
        };
        is_uid(&uid).then_some(uid)
    })
}

/// 64 lowercase hex digits: the ids runc-based runtimes give containers.
fn is_runc_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A UUID as Kubernetes writes pod UIDs: 8-4-4-4-12 hex digits.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Undoes systemd's unit-name escaping (`\x2d` for `-` in a machine's name).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], bytes.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
    const POD: &str = "8dbf1a4e-5b4c-4a4e-9a5e-0e3c2b1d7f60";
    const POD_: &str = "8dbf1a4e_5b4c_4a4e_9a5e_0e3c2b1d7f60";

    fn container(runtime: Option<Runtime>, pod: bool) -> Option<Container> {
        Some(Container {
            id: ID.into(),
            name: None,
            runtime,
            pod_uid: pod.then(|| POD.into()),
        })
    }

    /// A v1 file with every controller at `path`, as on a hybrid host (plus the unified line).
    fn v1(path: &str, unified: &str) -> String {
        let controllers = [
            "name=systemd",
            "pids",
            "blkio",
            "freezer",
            "devices",
            "memory",
            "cpuset",
            "cpu,cpuacct",
        ];
        let mut lines: Vec<String> = controllers
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}:{c}:{path}", controllers.len() - i))
            .collect();
        lines.push(format!("0::{unified}"));
        lines.join("\n") + "\n"
    }

    fn v2(path: &str) -> String {
        format!("0::{path}\n")
    }

    #[test]
    fn docker_cgroupfs_and_systemd_drivers() {
        let docker = container(Some(Runtime::Docker), false);
        // cgroupfs driver on a v1/hybrid host (Debian, Docker's default there).
        assert_eq!(from_proc_cgroup(&v1(&format!("/docker/{ID}"), "/")), docker);
        // systemd driver, v1 (CentOS 7) and v2 (Debian 12, Fedora).
        let scope = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(from_proc_cgroup(&v1(&scope, &scope)), docker);
        assert_eq!(from_proc_cgroup(&v2(&scope)), docker);
        // cgroupfs driver on v2.
        assert_eq!(from_proc_cgroup(&v2(&format!("/docker/{ID}"))), docker);
    }

    #[test]
    fn kubernetes_pods_with_each_runtime_and_driver() {
        // systemd driver, v2: containerd, CRI-O, cri-dockerd.
        let slice = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice"
        );
        for (prefix, runtime) in [
            ("cri-containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("docker-", Runtime::Docker),
        ] {
            let path = format!("{slice}/{prefix}{ID}.scope");
            assert_eq!(from_proc_cgroup(&v2(&path)), container(Some(runtime), true));
            assert_eq!(
                from_proc_cgroup(&v1(&path, "/")),
                container(Some(runtime), true)
            );
        }
        // A guaranteed pod (no QoS level) under the systemd driver.
        let guaranteed =
            format!("/kubepods.slice/kubepods-pod{POD_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(
            from_path(&guaranteed),
            container(Some(Runtime::Containerd), true)
        );
        // cgroupfs driver, v1 and v2: the layout does not name the runtime.
        for path in [
            format!("/kubepods/besteffort/pod{POD}/{ID}"),
            format!("/kubepods/burstable/pod{POD}/{ID}"),
            format!("/kubepods/pod{POD}/{ID}"),
        ] {
            assert_eq!(from_proc_cgroup(&v1(&path, "/")), container(None, true));
            assert_eq!(from_proc_cgroup(&v2(&path)), container(None, true));
        }
        // CRI-O under the cgroupfs driver.
        let crio = format!("/kubepods/besteffort/pod{POD}/crio-{ID}");
        assert_eq!(from_path(&crio), container(Some(Runtime::CriO), true));
    }

    #[test]
    fn podman_root_rootless_and_cgroupfs() {
        let podman = container(Some(Runtime::Podman), false);
        for path in [
            format!("/machine.slice/libpod-{ID}.scope"),
            // `--systemd=always` containers and cgroup namespaces get a child cgroup.
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            format!("/libpod_parent/libpod-{ID}"),
        ] {
            assert_eq!(from_proc_cgroup(&v2(&path)), podman, "{path}");
        }
        assert_eq!(
            from_proc_cgroup(&v1(&format!("/libpod_parent/libpod-{ID}"), "/")),
            podman
        );
    }

    /// `podman --runtime runc run` on this hybrid Debian 12 host (cgroupfs manager), as read.
    #[test]
    fn podman_on_this_hybrid_host() {
        let id = "8665e2c348ad6823c6e166ee7f634070d9f9d231e266154f730fa69faa876a44";
        let path = format!("/libpod_parent/libpod-{id}");
        let controllers = [
            "name=systemd",
            "pids",
            "blkio",
            "freezer",
            "devices",
            "memory",
            "cpuset",
            "cpuacct",
            "cpu",
        ];
        let mut text: String = controllers
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}:{c}:{path}\n", 9 - i))
            .collect();
        text.push_str(&format!("0::{path}\n"));
        let found = from_proc_cgroup(&text).unwrap();
        assert_eq!(
            (found.id.as_str(), found.runtime),
            (id, Some(Runtime::Podman))
        );
    }

    #[test]
    fn containerd_without_kubernetes() {
        let containerd = container(Some(Runtime::Containerd), false);
        assert_eq!(from_path(&format!("/default/{ID}")), containerd);
        assert_eq!(
            from_path(&format!("/system.slice/nerdctl-{ID}.scope")),
            containerd
        );
    }

    #[test]
    fn machines_and_lxc_by_name() {
        let named = |name: &str, runtime| {
            Some(Container {
                id: name.into(),
                name: Some(name.into()),
                runtime: Some(runtime),
                pod_uid: None,
            })
        };
        let nspawn = "/machine.slice/machine-build\\x2dbox.scope";
        assert_eq!(
            from_proc_cgroup(&v2(nspawn)),
            named("build-box", Runtime::SystemdNspawn)
        );
        assert_eq!(
            from_path("/machine.slice/machine-build\\x2dbox.scope/system.slice/cron.service"),
            named("build-box", Runtime::SystemdNspawn)
        );
        assert_eq!(
            from_path("/machine.slice/machine-lxc\\x2d4242\\x2dweb.scope"),
            named("lxc-4242-web", Runtime::LibvirtLxc)
        );
        // LXC 1.x/2.x (v1), 3.x, 4.x+ and LXD (v1 and v2).
        for path in [
            "/lxc/web1",
            "/lxc.payload/web1",
            "/lxc.payload.web1",
            "/lxc.payload.web1/system.slice/ssh.service",
        ] {
            assert_eq!(
                from_proc_cgroup(&v2(path)),
                named("web1", Runtime::Lxc),
                "{path}"
            );
            assert_eq!(
                from_proc_cgroup(&v1(path, "/")),
                named("web1", Runtime::Lxc)
            );
        }
    }

    #[test]
    fn the_innermost_container_of_nested_ones() {
        let path = format!("/lxc.payload.web1/docker/{ID}");
        assert_eq!(from_path(&path), container(Some(Runtime::Docker), false));
    }

    #[test]
    fn host_processes_have_none() {
        for text in [
            // This machine: a host cgroup named like an id (32 hex digits) under a plain parent.
            "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n\
             4:memory:/process_api/066d82d2816111511c193b382c94c866\n3:cpuset:/\n\
             2:cpuacct:/\n1:cpu:/\n0::/\n"
                .to_string(),
            v2("/"),
            v2("/init.scope"),
            v2("/system.slice/sshd.service"),
            v2("/system.slice/docker.service"),
            v2("/system.slice/containerd.service"),
            v2("/user.slice/user-1000.slice/session-3.scope"),
            v2("/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service"),
            // A 64-hex name under a parent no runtime uses.
            v2(&format!("/process_api/{ID}")),
            v2(&format!("/system.slice/{ID}")),
            // Ids of the wrong length or case.
            v2(&format!("/docker/{}", &ID[..32])),
            v2(&format!("/docker/{}", ID.to_uppercase())),
            v2(&format!("/system.slice/docker-{}.scope", &ID[..63])),
            // The runtimes' helpers beside their containers.
            v2(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            v2("/libpod_parent/conmon"),
            v2(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/crio-conmon-{ID}.scope"
            )),
            v2("/lxc.monitor.web1"),
            v2("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope"),
            v2("/machine.slice"),
            // The pod's slice itself holds no process of a container.
            v2(&format!("/kubepods/besteffort/pod{POD}")),
            String::new(),
            "garbage without colons\n".into(),
        ] {
            assert_eq!(from_proc_cgroup(&text), None, "{text}");
        }
    }

    #[test]
    fn the_unified_line_comes_first_on_hybrid_hosts() {
        let other = ID.replace('4', "5");
        let text = format!("1:name=systemd:/docker/{other}\n0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            from_proc_cgroup(&text),
            container(Some(Runtime::Docker), false)
        );
    }

    #[test]
    fn pod_uid_needs_the_kubepods_hierarchy() {
        let path = format!("/system.slice/pod{POD}/docker-{ID}.scope");
        assert_eq!(from_path(&path), container(Some(Runtime::Docker), false));
        assert_eq!(unescape("a\\x2db\\x2"), "a-b\\x2");
    }
}

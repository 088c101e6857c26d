//! End-to-end, under podman (Debian's, installed by `cargo xtask setup`): the agent from its own
//! image (`cargo xtask image`), run as `deploy/podman/boot-copy-agent.sh` runs it, alerts on a
//! host copy with the same fields and verdicts as the agent run directly; and a real container's
//! identity read from its cgroup. Copies into /boot happen in a private mount namespace with a
//! tmpfs over /boot. Needs root; fails, naming the reason, where podman cannot run.
use boot_copy_agent::{
    context::{clock::BootEpoch, container, exec::resolve, host::Host},
    decode::Exec,
    describe::Describer,
};
use serde_json::Value;
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::Instant,
};

use crate::support::{boot_agent::agent_in, ecs_schema};
use boot_copy_harness::{
    Agent, BootKind, BootNamespace, PUBLISHED, STRICT, WAIT, has_arg, tempdir, unique,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs podman, failing the test with podman's own words when it cannot.
fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman does not run ({e}): `cargo xtask setup` installs it"));
    check(&format!("podman {}", args.join(" ")), &out);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `podman run` options this host needs. Debian's crun refuses a hybrid cgroup host whose v2
/// hierarchy holds a controller ("cgroups in hybrid mode not supported"): runc does not. podman
/// gives containers RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by default, which fails where the
/// caller's hard limits are lower and CAP_SYS_RESOURCE is missing (this machine): the container
/// gets the caller's, and for RLIMIT_NPROC at most the 32768 podman 4.3 sets for itself at start
/// (its /proc/PID/limits), which its container's limits cannot exceed.
fn host_options() -> Vec<String> {
    let limit = |resource, name: &str, cap: libc::rlim_t| {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to an rlimit.
        assert_eq!(unsafe { libc::getrlimit(resource, &mut l) }, 0);
        let (soft, hard) = (l.rlim_cur.min(cap), l.rlim_max.min(cap));
        format!("--ulimit={name}={soft}:{hard}")
    };
    vec![
        "--runtime=runc".into(),
        limit(libc::RLIMIT_NOFILE, "nofile", 1 << 20),
        limit(libc::RLIMIT_NPROC, "nproc", 32768),
    ]
}

/// The image `cargo xtask image` builds from this tree (built once per test run).
fn agent_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building the agent's image: cargo xtask image");
        let out = Command::new(cargo)
            .args(["xtask", "image"])
            .current_dir(workspace())
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        check("cargo xtask image", &out);
        let name = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            name,
            format!("localhost/boot-copy-agent:{}", env!("CARGO_PKG_VERSION"))
        );
        name
    })
}

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

/// An image removed when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", &self.0]).output();
    }
}

/// An image holding only busybox (from busybox-static), made from a root file system of our own:
/// `/bin/cp` and `/bin/sh` are hard links to it (so a copy's `process.name` is `cp`), and it has a
/// `/boot` of its own.
fn busybox_image() -> Image {
    let name = format!("localhost/boot-copy-test-busybox:{}", unique());
    let rootfs = tempdir("busybox-rootfs").unwrap();
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("boot")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, installed by cargo xtask setup)");
    for applet in ["cp", "sh", "sleep"] {
        fs::hard_link(rootfs.join("bin/busybox"), rootfs.join("bin").join(applet)).unwrap();
    }
    let tar = rootfs.with_extension("tar");
    let out = Command::new("tar")
        .args(["--create", "--owner=0", "--group=0", "--file"])
        .arg(&tar)
        .arg("--directory")
        .arg(&rootfs)
        .arg(".")
        .output()
        .unwrap();
    check("tar", &out);
    podman(&["import", tar.to_str().unwrap(), &name]);
    let _ = fs::remove_dir_all(&rootfs);
    let _ = fs::remove_file(&tar);
    Image(name)
}

/// A podman container's processes are in that container, by the id podman gives it; this test's
/// own process (on the host, in a cgroup named like an id: `/process_api/<32 hex>` on this
/// machine) is in none.
#[test]
fn a_podman_container_is_identified_by_its_cgroup() {
    let image = busybox_image();
    let name = format!("boot-copy-test-{}", unique());
    let mut run = vec!["run", "--detach", "--rm", "--name", &name];
    let options = host_options();
    run.extend(options.iter().map(String::as_str));
    run.extend([image.0.as_str(), "/bin/busybox", "sleep", "300"]);
    let id = podman(&run);
    let _guard = Container(id.clone());
    let inspected = podman(&["inspect", "--format", "{{.Id}} {{.State.Pid}}", &id]);
    let (full_id, pid) = inspected.split_once(' ').unwrap();
    assert_eq!(full_id, id);
    let pid: u32 = pid.parse().unwrap();
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let found = container::of_pid(pid)
        .unwrap()
        .unwrap_or_else(|| panic!("no container found in {cgroup}"));
    assert_eq!(found.id, id, "{cgroup}");
    assert_eq!(found.runtime, Some(container::Runtime::Podman), "{cgroup}");
    assert_eq!(found.pod_uid, None);

    let mine = fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(
        container::of_pid(std::process::id()).unwrap(),
        None,
        "{mine}"
    );
}

fn exec() -> Exec {
    Exec {
        flags: 0,
        ktime_boot_ns: 5_000_000_000,
        start_boottime_ns: 4_000_000_000,
        pid: 7,
        tgid: 7,
        ppid: 0,
        uid: 0,
        euid: 0,
        gid: 0,
        egid: 0,
        args_count: 3,
        args_size: 20,
        comm: b"cp".to_vec(),
        filename: b"/bin/cp".to_vec(),
        exe: b"/usr/bin/cp".to_vec(),
        interp: None,
        cwd: Some(b"/".to_vec()),
        args: vec![b"cp".to_vec(), b"x".to_vec(), b"/boot/x".to_vec()],
        env: None,
        parent: None,
        session: Default::default(),
    }
}

/// The container fields an event carries (`container.*`, `orchestrator.*`) are ECS 9.4.0
/// fields of the right types, and the check would name one that is not.
#[test]
fn container_fields_pass_the_ecs_check() {
    let mut describer = Describer::new(Host::read(), BootEpoch::now().unwrap());
    let schema = ecs_schema::Schema::load();
    let id = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
    for cgroup in [
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8dbf1a4e_5b4c_4a4e_9a5e_0e3c2b1d7f60.slice/crio-{id}.scope"
        ),
        "/machine.slice/machine-build\\x2dbox.scope".to_string(),
        format!("/libpod_parent/libpod-{id}"),
    ] {
        let mut ctx = resolve(exec());
        ctx.set_cgroup(&cgroup);
        let mut event = describer.exec_json(&ctx);
        assert!(event["container"]["id"].is_string(), "{cgroup}: {event}");
        let problems = schema.violations(&event);
        assert!(problems.is_empty(), "{cgroup}: {problems:#?}");
        event["container"]["runtime_name"] = "podman".into();
        assert_eq!(
            schema.violations(&event),
            ["container.runtime_name: not an ECS 9.4.0 field"]
        );
    }
}

/// The agent from its image under podman, as deploy/podman/boot-copy-agent.sh runs it.
struct ImageAgent {
    child: Child,
    name: String,
    dir: PathBuf,
}

impl ImageAgent {
    /// Started in `ns`: the host's /boot it mounts is the namespace's.
    fn start(image: &str, ns: &BootNamespace) -> ImageAgent {
        let dir = tempdir("image-agent").unwrap();
        let name = format!("boot-copy-agent-test-{}", unique());
        let mut options = host_options();
        options.push(format!("--name={name}"));
        let child = ns
            .command(workspace().join("deploy/podman/boot-copy-agent.sh"))
            .env("BOOT_COPY_IMAGE", image)
            .env("BOOT_COPY_LOG_DIR", dir.join("log"))
            .env("BOOT_COPY_PODMAN", options.join(" "))
            .stdout(Stdio::null())
            .spawn()
            .expect("deploy/podman/boot-copy-agent.sh runs");
        let mut agent = ImageAgent { child, name, dir };
        agent
            .wait_for(|r| r["event"]["action"] == "agent-started")
            .expect("the image's agent wrote its start record");
        agent
    }

    fn records(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.join("log/alerts.ndjson")).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
            .collect()
    }

    fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + *WAIT * 3;
        loop {
            if let Some(r) = self.records().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the image's agent exited: {status} (its stderr is above)");
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM through podman's signal proxy; the exit status and the records.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        (status, self.records())
    }
}

impl Drop for ImageAgent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An alert without what differs between two agents watching the same exec: the record's number
/// and identity (each agent's own), and times converted from the boot clock by each agent's own
/// reading of the wall clock.
fn comparable(alert: &Value) -> (Value, Vec<(&'static str, i128, i128)>) {
    let mut a = alert.clone();
    a["boot_copy"].as_object_mut().unwrap().remove("seq");
    // A leader's working directory outside the image's file system (the test's own shell's) is
    // not one the image's agent can name.
    for leader in ["entry_leader", "session_leader", "group_leader"] {
        if let Some(l) = a["process"][leader].as_object_mut() {
            l.remove("working_directory");
        }
    }
    let event = a["event"].as_object_mut().unwrap();
    for own in ["id", "sequence", "created"] {
        assert!(event.remove(own).is_some(), "an alert without event.{own}");
    }
    // Each agent reads the wall clock against the boot clock itself, at its own start (10 ms: the
    // two readings minutes apart on a clock being slewed). A leader may be described from one
    // agent's kernel table and from the other's entry seeded from /proc, in clock ticks (10 ms
    // more).
    let mut times = Vec::new();
    let (own, seeded) = (10_000_000, 20_000_000);
    let times_at = [
        ("/@timestamp", own),
        ("/process/start", own),
        ("/process/parent/start", own),
        ("/process/group_leader/start", seeded),
        ("/process/session_leader/start", seeded),
        ("/process/entry_leader/start", seeded),
    ];
    for (pointer, tolerance) in times_at {
        if let Some(t) = a.pointer_mut(pointer) {
            let text = t.as_str().unwrap();
            let wall = humantime::parse_rfc3339(text).unwrap();
            let ns = wall
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            times.push((pointer, ns as i128, tolerance));
            *t = Value::Null;
        }
    }
    (a, times)
}

/// The JSON pointers where `a` and `b` differ, with both values.
fn differences(at: &str, a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            let null = Value::Null;
            keys.into_iter()
                .flat_map(|k| {
                    let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                    differences(&format!("{at}/{k}"), va, vb)
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{at}: {a} / {b}")],
    }
}

/// Waits for one alert per rule in `rules` for the copy whose argument is `arg`, in both agents;
/// then both alerts of each rule must agree, and name `container` (a host copy: none).
fn same_alerts(
    ns: &BootNamespace,
    (direct, image): (&mut Agent, &mut ImageAgent),
    arg: &str,
    rules: &[&str],
    container: Option<&str>,
) {
    let ours = |r: &Value| r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], arg);
    for rule in rules {
        let of_rule = |r: &Value| ours(r) && r["rule"]["id"] == *rule;
        let d = direct
            .wait_for(*WAIT, of_rule)
            .expect("direct agent's alert");
        let i = image.wait_for(of_rule).expect("image agent's alert");
        let (d_fields, d_times) = comparable(&d);
        let (i_fields, i_times) = comparable(&i);
        let differ = differences("", &i_fields, &d_fields);
        assert!(differ.is_empty(), "rule {rule}, copy {arg}: {differ:#?}");
        for ((at, a, tolerance), (_, b, _)) in d_times.iter().zip(&i_times) {
            assert!((a - b).abs() < *tolerance, "{at} differs: {a} / {b} ns");
        }
        assert_eq!(d_times.len(), i_times.len());
        assert_eq!(i["container"]["id"].as_str(), container, "{i}");
        let problems = ecs_schema::Schema::load().violations(&i);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    // The same verdicts: no rule alerted in one agent and not in the other.
    sync(ns, direct, image);
    let rules_of = |records: Vec<Value>| {
        let mut ids: Vec<String> = records
            .iter()
            .filter(|r| ours(r))
            .map(|r| r["rule"]["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut expected: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    expected.sort();
    assert_eq!(rules_of(direct.records()), expected, "direct agent, {arg}");
    assert_eq!(rules_of(image.records()), expected, "image agent, {arg}");
}

/// Runs a copy that alerts and waits for both agents' alerts: every exec before it has then been
/// handled by both, so an alert absent then is a verdict.
fn sync(ns: &BootNamespace, direct: &mut Agent, image: &mut ImageAgent) {
    let marker = format!("/boot/sentinel-{}", unique());
    ns.isolated(&format!("cp /etc/hostname {marker}")).unwrap();
    let seen = |r: &Value| r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], &marker);
    direct
        .wait_for(*WAIT, seen)
        .expect("direct agent's sentinel alert");
    image.wait_for(seen).expect("image agent's sentinel alert");
}

/// The agent from its image, with the host's pid namespace, BTF, BPF file system, /boot and the
/// packaged unit's capabilities, watches the host as the agent run directly does: the published
/// rule's alert for `cp f /boot/x`, the strict rule's for a relative copy and the published
/// rule's for a container's copy into its own /boot, with the same fields (host, agent and
/// entity ids, user names, parent, leaders, container, strict analysis) and verdicts; it
/// keeps the packaged unit's capabilities after its drop, and stops cleanly on SIGTERM.
#[test]
fn the_image_watches_the_host_as_the_agent_run_directly_does() {
    let image = agent_image();
    // Both watch the namespace's /boot as their host's.
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut direct = agent_in(&ns, "direct", "");
    let mut contained = ImageAgent::start(image, &ns);

    let start = contained
        .wait_for(|r| r["event"]["action"] == "agent-started")
        .unwrap();
    let direct_start = direct
        .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")
        .unwrap();
    for field in ["capabilities", "prefilter", "sensor"] {
        assert_eq!(
            start["boot_copy"][field], direct_start["boot_copy"][field],
            "agent-started boot_copy.{field}"
        );
    }
    // The same rules: the package's files in the image (loaded in file name order), the same
    // rules built into the agent.
    let rules = |r: &Value| -> Vec<(Value, Value)> {
        let list = r["boot_copy"]["rules"].as_array().unwrap();
        let mut ids: Vec<(Value, Value)> = list
            .iter()
            .map(|r| (r["id"].clone(), r["version"].clone()))
            .collect();
        ids.sort_by_key(|(id, _)| id.to_string());
        ids
    };
    assert_eq!(rules(&start), rules(&direct_start));
    assert_eq!(start["host"], direct_start["host"]);
    assert_eq!(start["agent"], direct_start["agent"]);

    // Each copy reads a pipe that stays open a second: it is alive when the agents look at its
    // /boot (`boot_copy.boot.host_filesystem`), however late either handles it.
    let published = format!("/boot/image-{}", unique());
    ns.isolated(&format!("sleep 1 | cp /dev/stdin {published}"))
        .unwrap();
    let agents = (&mut direct, &mut contained);
    same_alerts(&ns, agents, &published, &[PUBLISHED], None);

    let relative = format!("image-{}", unique());
    ns.isolated(&format!("cd /boot && sleep 1 | cp /dev/stdin {relative}"))
        .unwrap();
    same_alerts(
        &ns,
        (&mut direct, &mut contained),
        &relative,
        &[STRICT],
        None,
    );

    // A container's copy into its own /boot: the published rule's alert, with its container.
    let busybox = busybox_image();
    let own = format!("/boot/image-own-{}", unique());
    let id = run_in_container(&ns, &busybox, &[], &format!("/bin/cp /bin/busybox {own}"));
    same_alerts(
        &ns,
        (&mut direct, &mut contained),
        &own,
        &[PUBLISHED],
        Some(&id),
    );

    let (status, records) = contained.stop();
    assert!(status.success(), "the image's agent exited with {status}");
    assert_eq!(
        records.last().map(|r| r["event"]["action"].clone()),
        Some("agent-stopped".into())
    );
}

/// `podman run` of `image` from `ns` (so `-v /boot:/boot` binds the namespace's /boot, the agent's
/// host /boot): its shell runs `script` and stays 3 s, so that the copy's parent is alive
/// in the container's mount namespace when the agent looks. Returns the container's id. (Busybox
/// sh runs an applet named without a path in its own process, no exec: scripts name `/bin/cp`.)
fn run_in_container(ns: &BootNamespace, image: &Image, volumes: &[&str], script: &str) -> String {
    let cidfile = tempdir("cid").unwrap().join("cid");
    let mut cmd = ns.command("podman");
    cmd.args(["run", "--rm"])
        .arg(format!("--cidfile={}", cidfile.display()));
    cmd.args(host_options()).args(volumes);
    cmd.args([&image.0, "/bin/sh", "-c", &format!("{script} && sleep 3")]);
    check("podman run", &cmd.output().unwrap());
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_string();
    let _ = fs::remove_dir_all(cidfile.parent().unwrap());
    id
}

/// The alerts of `agent` whose copy names `target`.
fn alerts_naming(agent: &Agent, target: &str) -> Vec<Value> {
    agent
        .records()
        .into_iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter(|r| has_arg(&r["process"]["args"], target) || r["file"]["path"] == target)
        .collect()
}

/// A copy inside a container into its own /boot: the published rule's alert (Elastic's verdict),
/// with the container's id as podman gives it, `host_filesystem: false` and the container's init
/// as the entry leader (`container`); the strict rule and Boot File Write stay silent (not the
/// host's boot file system). A container that bind-mounts the host's /boot:
/// `host_filesystem: true`; one that mounts it elsewhere and copies through a symlink of its own:
/// the strict rule, resolved in the container's root. A host copy: no `container.*`.
#[test]
fn a_container_copy_is_attributed_and_judged_by_the_boot_it_writes() {
    let image = busybox_image();
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "containers", "");
    let own = format!("/boot/own-{}", unique());
    let own_id = run_in_container(&ns, &image, &[], &format!("/bin/cp /bin/busybox {own}"));
    let bound = format!("/boot/bound-{}", unique());
    let bound_id = run_in_container(
        &ns,
        &image,
        &["--volume=/boot:/boot"],
        &format!("/bin/cp /bin/busybox {bound}"),
    );
    // The host's /boot mounted elsewhere, reached through a symlink of the container's own: the
    // strict rule resolves it in the container's root (the copy reads a pipe open 3 s, so it is
    // there to be looked at, however busy the machine).
    let linked = format!("linked-{}", unique());
    let linked_id = run_in_container(
        &ns,
        &image,
        &["--volume=/boot:/hostboot"],
        &format!("ln -s /hostboot /bl && sleep 3 | /bin/cp /dev/stdin /bl/{linked}"),
    );
    // A host process is in the agent's mount namespace (one of a scenario's own, gone before the
    // agent looks, cannot be told).
    let host = format!("/boot/host-{}", unique());
    ns.sh(&format!("cp /etc/hostname {host}")).unwrap();
    agent.sync().unwrap();

    let own_alerts = alerts_naming(&agent, &own);
    let rules: Vec<&Value> = own_alerts.iter().map(|a| &a["rule"]["id"]).collect();
    assert_eq!(rules, [PUBLISHED], "{own_alerts:#?}");
    let a = &own_alerts[0];
    assert_eq!(a["container"]["id"], own_id.as_str(), "{a}");
    assert_eq!(a["container"]["runtime"], "podman");
    assert_eq!(a["process"]["name"], "cp");
    assert_eq!(a["boot_copy"]["boot"]["host_filesystem"], false, "{a}");
    // The container's shell is pid 1 of its pid namespace and leads its session.
    let entry = &a["process"]["entry_leader"];
    assert_eq!(entry["entry_meta"]["type"], "container", "{a}");
    assert_eq!(entry["pid"], a["process"]["parent"]["pid"]);
    let problems = ecs_schema::Schema::load().violations(a);
    assert!(problems.is_empty(), "{problems:#?}");

    let bound_alerts = alerts_naming(&agent, &bound);
    assert_eq!(
        bound_alerts.len(),
        1,
        "one act, one alert: {bound_alerts:#?}"
    );
    let b = &bound_alerts[0];
    assert_eq!(b["rule"]["id"], PUBLISHED);
    assert_eq!(b["container"]["id"], bound_id.as_str());
    assert_eq!(b["boot_copy"]["boot"]["host_filesystem"], true, "{b}");

    let linked_alerts = alerts_naming(&agent, &format!("/bl/{linked}"));
    let rules: Vec<&Value> = linked_alerts.iter().map(|a| &a["rule"]["id"]).collect();
    assert_eq!(rules, [STRICT], "{linked_alerts:#?}");
    let l = &linked_alerts[0];
    assert_eq!(l["container"]["id"], linked_id.as_str());
    assert_eq!(l["boot_copy"]["boot"]["host_filesystem"], true, "{l}");
    let evasion = &l["boot_copy"]["strict"]["evasion"];
    assert!(
        evasion
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "symlink_to_boot"),
        "{l}"
    );

    let host_alerts = alerts_naming(&agent, &host);
    assert_eq!(host_alerts.len(), 1, "{host_alerts:#?}");
    let h = &host_alerts[0];
    assert!(h.get("container").is_none(), "{h}");
    assert_eq!(h["boot_copy"]["boot"]["host_filesystem"], true, "{h}");
    let ns_of = |a: &Value| {
        a["boot_copy"]["process"]["mount_namespace"]
            .as_u64()
            .unwrap()
    };
    assert_ne!(
        ns_of(a),
        ns_of(h),
        "the container's mount namespace is its own"
    );
}

//! End-to-end: writes into /boot by any program, seen by the kernel's file program and alerted
//! once (Boot File Write, or the exec rule a copy tool already raised). /boot is a tmpfs, an
//! ext4 loop file system, or a directory of the root file system, in a private mount namespace
//! that the agent runs in too ([`BootNamespace`]). Needs root.
use serde_json::Value;
use std::{fs, path::Path, time::Duration};

use crate::AGENT;
use boot_copy_harness::{Agent, BootKind, BootNamespace, FILE_WRITE, Launch, WAIT, tempdir};

/// What a writer must have raised: its one alert's writer name and action, when the alert is
/// Boot File Write's (`None`: a copy tool, whose exec alert is the act's one alert).
struct Writer {
    /// The file's name in /boot (unique per writer).
    file: &'static str,
    script: String,
    expect: Option<(String, &'static str)>,
}

/// The real name of an executable (`process.name` is the resolved executable's basename).
fn real_name(path: &str) -> String {
    let real = fs::canonicalize(path).unwrap();
    real.file_name().unwrap().to_string_lossy().into_owned()
}

/// Writers of programs the kernel matrix's guest has too (coreutils, dash and busybox).
fn portable_writers(src: &Path, scratch: &Path) -> Vec<Writer> {
    let src = src.display();
    let s = scratch.display();
    vec![
        named(
            "w-dd",
            format!("dd if={src} of=/boot/w-dd status=none"),
            "dd",
            "creation",
        ),
        named(
            "w-sh",
            format!("sh -c 'cat {src} > /boot/w-sh'"),
            &real_name("/bin/sh"),
            "creation",
        ),
        named(
            "w-tee",
            "echo x | tee /boot/w-tee > /dev/null".into(),
            "tee",
            "creation",
        ),
        named("w-dir", "mkdir /boot/w-dir".into(), "mkdir", "creation"),
        // Paths that climb into /boot with `..`, relative and absolute.
        named(
            "w-climb",
            "cd /tmp && mkdir ../boot/w-climb".into(),
            "mkdir",
            "creation",
        ),
        named(
            "w-climb-abs",
            "ln -s x /tmp/../boot/w-climb-abs".into(),
            "ln",
            "creation",
        ),
        named(
            "w-ln",
            "ln /boot/pre-ln /boot/w-ln".into(),
            "ln",
            "creation",
        ),
        named(
            "pre-trunc",
            "truncate -s 0 /boot/pre-trunc".into(),
            "truncate",
            "modification",
        ),
        named(
            "pre-chmod",
            "chmod 600 /boot/pre-chmod".into(),
            "chmod",
            "attributes_modification",
        ),
        copy("pre-mv", format!("mv /boot/pre-mv {s}/moved")),
        copy("w-cp", format!("cp {src} /boot/w-cp")),
        // A renamed busybox run as cp (busybox's own shell has `exec -a`): named by its file.
        named(
            "w-bb",
            format!(
                "cp /usr/bin/busybox {s}/bb && busybox sh -c 'exec -a cp {s}/bb {src} /boot/w-bb'"
            ),
            "bb",
            "creation",
        ),
    ]
}

/// Path-named operations through a symlink to /boot (`{scratch}/plink`), each on its own file
/// (made before the agent starts, see `agent_in`), and through a bind mount of /boot made just
/// before (`{scratch}/plate`, which the agent's mount-table check has not seen yet): the kernel's
/// path hooks resolve both. `mv` is a copy tool: the strict rule's alert (the target resolved into
/// /boot) is the act's one alert.
fn symlinked_writers(_src: &Path, scratch: &Path) -> Vec<Writer> {
    let l = format!("{}/plink", scratch.display());
    let busybox = real_name("/usr/bin/busybox");
    // The guest's coreutils are partly busybox's applets.
    let real = |tool: &str| real_name(&format!("/bin/{tool}"));
    vec![
        named(
            "sl-dir",
            format!("mkdir {l}/sl-dir"),
            &real("mkdir"),
            "creation",
        ),
        named(
            "sl-sym",
            format!("ln -s x {l}/sl-sym"),
            &real("ln"),
            "creation",
        ),
        named("sl-rm", format!("rm {l}/sl-rm"), &real("rm"), "deletion"),
        named(
            "sl-chmod",
            format!("chmod 600 {l}/sl-chmod"),
            &real("chmod"),
            "attributes_modification",
        ),
        named(
            "sl-chown",
            format!("busybox chown 0:0 {l}/sl-chown"),
            &busybox,
            "attributes_modification",
        ),
        named(
            "sl-touch",
            format!("touch -h {l}/sl-touch"),
            &real("touch"),
            "attributes_modification",
        ),
        copy("sl-moved", format!("mv {l}/sl-mv {l}/sl-moved")),
    ]
}

/// Files the symlinked and io_uring writers change, made before the agent starts.
const SYMLINKED_FILES: &str = "sl-rm sl-chmod sl-chown sl-mv sl-touch ur-mv ur-rm ur-write";

/// Operations in /boot queued through io_uring (which a rootkit uses to pass syscall monitors):
/// an open that creates, an open for writing of a file that is there (a worker's on 5.10,
/// issued inline by `io_uring_enter` on later kernels, the path being cached), a mkdir, a rename
/// and an unlink. With the path hooks each that
/// succeeded alerts once, `boot_copy.file.io_uring: true`, naming this test process; one the
/// kernel lacks (mkdirat before 5.15, renameat and unlinkat before 5.11) fails in its completion
/// and raises nothing. Without the hooks none is seen.
fn run_io_uring(ns: &BootNamespace, agent: &mut Agent) {
    use crate::support::uring::{self, Op};
    let op = |opcode, path: &str, new_path: Option<&str>, flags, mode| Op {
        opcode,
        path: path.into(),
        new_path: new_path.map(Into::into),
        flags,
        mode,
    };
    let creat = (libc::O_CREAT | libc::O_WRONLY) as u32;
    let ops = [
        (
            "ur-open",
            "creation",
            op(uring::OP_OPENAT, "/boot/ur-open", None, creat, 0o644),
        ),
        (
            "ur-write",
            "modification",
            op(
                uring::OP_OPENAT,
                "/boot/ur-write",
                None,
                libc::O_WRONLY as u32,
                0,
            ),
        ),
        (
            "ur-dir",
            "creation",
            op(uring::OP_MKDIRAT, "/boot/ur-dir", None, 0, 0o755),
        ),
        (
            "ur-moved",
            "rename",
            op(
                uring::OP_RENAMEAT,
                "/boot/ur-mv",
                Some("/boot/ur-moved"),
                0,
                0,
            ),
        ),
        (
            "ur-rm",
            "deletion",
            op(uring::OP_UNLINKAT, "/boot/ur-rm", None, 0, 0),
        ),
    ];
    let (expected, ops): (Vec<_>, Vec<_>) = ops.into_iter().map(|(f, a, o)| ((f, a), o)).unzip();
    let results = uring::run_in_namespace_of(ns.pid(), ops).unwrap();
    assert!(
        results[0] >= 0 && results[1] >= 0,
        "io_uring openat failed: {results:?}"
    );
    sync(ns, agent, "ur-sync");
    let hooks = path_hooks(agent);
    let me = std::env::current_exe().unwrap();
    let me = me.file_name().unwrap().to_string_lossy();
    for ((file, action), res) in expected.into_iter().zip(results) {
        let alerts = alerts_naming(agent, file);
        if !hooks || res < 0 {
            assert!(alerts.is_empty(), "{file} ({res}): {alerts:#?}");
            continue;
        }
        assert_eq!(alerts.len(), 1, "{file}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a["rule"]["id"], FILE_WRITE, "{file}");
        assert_eq!(a["event"]["action"], action, "{file}");
        assert_eq!(a["boot_copy"]["file"]["io_uring"], true, "{file}");
        assert_eq!(a["process"]["name"], me.as_ref(), "{file}");
    }
}

/// Whether the agent's start record says the path hooks are attached; they are exactly where
/// the kernel has kprobes (the guests' Debian kernels; not this project's CI host).
fn path_hooks(agent: &Agent) -> bool {
    let started = agent
        .records()
        .into_iter()
        .find(|r| r["event"]["action"] == "agent-started")
        .unwrap();
    let hooks = started["boot_copy"]["sensor"]["path_hooks"]
        .as_bool()
        .unwrap();
    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    assert_eq!(
        hooks, kprobes,
        "path hooks attached: {hooks}; kprobes: {kprobes}"
    );
    hooks
}

/// Runs the symlinked writers, and a `mkdir` through a bind mount made moments before. With the
/// path hooks attached (as the start record says) each alerts once as any writer does; without
/// them (a kernel without kprobes, such as this project's CI host) none is seen, which the
/// README states as a limit.
fn run_symlinked(ns: &BootNamespace, agent: &mut Agent, scratch: &Path) {
    let s = scratch.display();
    ns.sh(&format!(
        "ln -s /boot {s}/plink && mkdir {s}/plate && mount --bind /boot {s}/plate && \
         mkdir {s}/plate/sl-bind"
    ))
    .unwrap();
    if path_hooks(agent) {
        run_writers(ns, agent, scratch, symlinked_writers, "symlinked");
        let bind = format!("{s}/plate/sl-bind");
        let alerts = agent
            .records()
            .into_iter()
            .filter(|r| r["rule"]["id"] == FILE_WRITE && r["file"]["path"] == bind.as_str())
            .count();
        assert_eq!(alerts, 1, "mkdir {bind}");
        return;
    }
    let writers = symlinked_writers(&scratch.join("src"), scratch);
    for w in &writers {
        ns.sh(&w.script).unwrap();
    }
    sync(ns, agent, "sl-sync");
    for w in &writers {
        if w.expect.is_some() {
            let alerts = alerts_naming(agent, w.file);
            assert!(alerts.is_empty(), "{}: {alerts:#?}", w.script);
        }
    }
}

/// Every writer: the portable ones, and python3's (a library copy, and cp run from a memfd).
fn writers(src: &Path, scratch: &Path) -> Vec<Writer> {
    let mut writers = portable_writers(src, scratch);
    let src = src.display();
    writers.extend([
        named(
            "w-py",
            format!("/usr/bin/python3 -c 'import shutil; shutil.copy(\"{src}\", \"/boot/w-py\")'"),
            &real_name("/usr/bin/python3"),
            "creation",
        ),
        named(
            "w-memfd",
            format!(
                "/usr/bin/python3 -c 'import os; fd = os.memfd_create(\"cp\"); \
                 os.write(fd, open(\"/usr/bin/cp\", \"rb\").read()); \
                 os.execv(f\"/proc/self/fd/{{fd}}\", [\"cp\", \"{src}\", \"/boot/w-memfd\"])'"
            ),
            "memfd:cp",
            "creation",
        ),
    ]);
    writers
}

/// A writer whose one alert is Boot File Write's, naming the process and the action.
fn named(file: &'static str, script: String, name: &str, action: &'static str) -> Writer {
    Writer {
        file,
        script,
        expect: Some((name.to_owned(), action)),
    }
}

/// A copy tool: its exec alert is the act's one alert.
fn copy(file: &'static str, script: String) -> Writer {
    Writer {
        file,
        script,
        expect: None,
    }
}

/// Alerts that name `/boot/NAME` (as the file, a rename's source, or an argument).
fn alerts_naming(agent: &Agent, name: &str) -> Vec<Value> {
    let path = format!("/boot/{name}");
    agent
        .records()
        .into_iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter(|r| {
            let has = |list: &Value| {
                list.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == path.as_str()))
            };
            r["file"]["path"] == path.as_str()
                || r["file"]["Ext"]["original"]["path"] == path.as_str()
                || has(&r["process"]["args"])
                || has(&r["boot_copy"]["strict"]["boot_paths"])
        })
        .collect()
}

/// Writes a marker with dd and waits for its alert: every record before it has been handled.
fn sync(ns: &BootNamespace, agent: &mut Agent, name: &str) {
    ns.sh(&format!("dd if=/dev/null of=/boot/{name} status=none"))
        .unwrap();
    let path = format!("/boot/{name}");
    agent
        .wait_for(*WAIT, |r| r["file"]["path"] == path.as_str())
        .unwrap();
}

/// Starts an agent in the namespace, files to modify already in its /boot.
fn agent_in(ns: &BootNamespace, tag: &str) -> Agent {
    ns.sh(&format!(
        "for f in pre-ln pre-trunc pre-chmod pre-mv {SYMLINKED_FILES}; do echo x > /boot/$f; done"
    ))
    .unwrap();
    Launch::fresh(AGENT, tag, "")
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap()
}

fn each_writer_alerts_once(kind: BootKind) {
    let ns = BootNamespace::new(kind).unwrap();
    let scratch = tempdir("fe-writers").unwrap();
    let mut agent = agent_in(&ns, "fe-writers");
    run_writers(&ns, &mut agent, &scratch, writers, &format!("{kind:?}"));
    let _ = fs::remove_dir_all(&scratch);
}

/// Runs the writers `list` gives (a source file in `scratch`), then checks each alerted once.
fn run_writers(
    ns: &BootNamespace,
    agent: &mut Agent,
    scratch: &Path,
    list: fn(&Path, &Path) -> Vec<Writer>,
    what: &str,
) {
    let src = scratch.join("src");
    fs::write(&src, "payload").unwrap();
    let writers = list(&src, scratch);
    for w in &writers {
        ns.sh(&w.script).unwrap();
    }
    sync(ns, agent, "w-sync");
    for w in &writers {
        let alerts = alerts_naming(agent, w.file);
        assert_eq!(alerts.len(), 1, "{what} {}: {alerts:#?}", w.script);
        let a = &alerts[0];
        let Some((name, action)) = &w.expect else {
            assert_eq!(a["event"]["category"][0], "process", "{}", w.script);
            continue;
        };
        assert_eq!(a["rule"]["id"], FILE_WRITE, "{}", w.script);
        assert_eq!(a["event"]["category"][0], "file");
        assert_eq!(a["event"]["action"], *action, "{}", w.script);
        assert_eq!(a["process"]["name"], name.as_str(), "{}", w.script);
        assert_eq!(a["file"]["name"], w.file);
        assert!(a["process"]["parent"]["pid"].as_u64().is_some(), "{a:#}");
    }
}

#[test]
fn each_writer_alerts_once_on_tmpfs() {
    each_writer_alerts_once(BootKind::Tmpfs);
}

#[test]
fn each_writer_alerts_once_on_ext4() {
    each_writer_alerts_once(BootKind::Ext4);
}

#[test]
fn each_writer_alerts_once_on_a_root_directory() {
    each_writer_alerts_once(BootKind::RootDirectory);
}

/// Through a bind mount of /boot and a symlink to it: caught, each path as written resolved;
/// in /tmp and in a directory named /bootx: nothing.
#[test]
fn bind_mounts_and_symlinks_caught_lookalikes_not() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let scratch = tempdir("fe-alias").unwrap();
    let mut agent = agent_in(&ns, "fe-alias");
    run_aliases(&ns, &mut agent, &scratch);
    let _ = fs::remove_dir_all(&scratch);
}

/// Writes through a bind mount and a symlink (in `scratch`), in /tmp, in /bootx and through a
/// `..` that stays outside /boot, and checks that only the first two alerted.
fn run_aliases(ns: &BootNamespace, agent: &mut Agent, scratch: &Path) {
    let s = scratch.display();
    ns.sh(&format!(
        "mkdir {s}/bind && mount --bind /boot {s}/bind && \
         dd if=/dev/null of={s}/bind/via-bind status=none && \
         ln -s /boot {s}/link && dd if=/dev/null of={s}/link/via-link status=none && \
         dd if=/dev/null of={s}/tmp-file status=none && \
         mkdir -p /bootx && mount -t tmpfs x /bootx && dd if=/dev/null of=/bootx/y status=none && \
         mkdir {s}/sub && cd {s}/sub && mkdir ../climb-out"
    ))
    .unwrap();
    sync(ns, agent, "alias-sync");
    let alerts: Vec<Value> = agent
        .records()
        .into_iter()
        .filter(|r| r["rule"]["id"] == FILE_WRITE)
        .collect();
    let paths: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["file"]["path"].as_str())
        .collect();
    let via_bind = format!("{s}/bind/via-bind");
    assert!(paths.contains(&via_bind.as_str()), "{paths:?}");
    assert!(paths.contains(&"/boot/via-link"), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("tmp-file") || p.starts_with("/bootx") || p.contains("climb-out")),
        "{paths:?}"
    );
}

/// A bind mount of /boot made after the agent started: path-named operations through it (an
/// absolute `mkdir`, which no dentry walk decides) alert once the agent has followed the mount
/// table, at its next once-a-second check.
#[test]
fn a_bind_mount_made_after_start_is_followed() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let scratch = tempdir("fe-late").unwrap();
    let s = scratch.display();
    let mut agent = agent_in(&ns, "fe-late");
    sync(&ns, &mut agent, "late-sync");
    ns.sh(&format!("mkdir {s}/late && mount --bind /boot {s}/late"))
        .unwrap();
    let alerted = (0..20).any(|n| {
        let dir = format!("{s}/late/late-{n}");
        ns.sh(&format!("mkdir {dir}")).unwrap();
        agent
            .wait_for(Duration::from_secs(1), |r| {
                r["rule"]["id"] == FILE_WRITE && r["file"]["path"] == dir.as_str()
            })
            .is_ok()
    });
    assert!(alerted, "no mkdir through the late bind mount alerted");
    let _ = fs::remove_dir_all(&scratch);
}

/// Path-named operations through a symlink to /boot and a fresh bind mount of it (see
/// `run_symlinked`).
#[test]
fn path_named_operations_through_symlinks_and_bind_mounts() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let scratch = tempdir("fe-symlinked").unwrap();
    let mut agent = agent_in(&ns, "fe-symlinked");
    run_symlinked(&ns, &mut agent, &scratch);
    let _ = fs::remove_dir_all(&scratch);
}

/// io_uring's operations in /boot (see `run_io_uring`).
#[test]
fn io_uring_operations_alert_with_the_path_hooks() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "fe-uring");
    run_io_uring(&ns, &mut agent);
}

/// The kernel matrix's file scenario, on one agent (tmpfs /boot): every writer the guest has
/// alerts once, with the right action and writer; writes through a bind mount and a symlink
/// are caught, path-named ones too (the guests' kernels have the path hooks), and lookalikes
/// are not.
#[test]
fn file_acts_on_one_agent() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let scratch = tempdir("fe-acts").unwrap();
    let mut agent = agent_in(&ns, "fe-acts");
    run_writers(&ns, &mut agent, &scratch, portable_writers, "acts");
    run_aliases(&ns, &mut agent, &scratch);
    run_symlinked(&ns, &mut agent, &scratch);
    run_io_uring(&ns, &mut agent);
    let _ = fs::remove_dir_all(&scratch);
}

/// The kernel matrix's root-directory scenario: /boot a directory of the root file system (the
/// walk up from a file climbs that file system's directories, which are not roots, to /boot),
/// every writer the guest has alerts once, through a symlink to it too.
#[test]
fn portable_writers_alert_once_on_a_root_directory() {
    let ns = BootNamespace::new(BootKind::RootDirectory).unwrap();
    let scratch = tempdir("fe-rootdir").unwrap();
    let mut agent = agent_in(&ns, "fe-rootdir");
    run_writers(
        &ns,
        &mut agent,
        &scratch,
        portable_writers,
        "root directory",
    );
    run_symlinked(&ns, &mut agent, &scratch);
    let _ = fs::remove_dir_all(&scratch);
}

/// A plain `cp f /boot/x` from a shell: exactly one alert in all (the exec rule's), though the
/// kernel saw the write too.
#[test]
fn plain_cp_one_alert_in_all() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "fe-cp");
    ns.sh("cp /etc/hostname /boot/plain-cp").unwrap();
    sync(&ns, &mut agent, "cp-sync");
    std::thread::sleep(Duration::from_millis(200));
    let alerts = alerts_naming(&agent, "plain-cp");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["event"]["category"][0], "process");
}

/// A storm of writes into /boot while the agent is stopped (SIGSTOP) overflows its ring: every
/// write raised its alert or is in the kernel's count of dropped file records.
#[test]
fn writes_lost_while_stopped_equal_the_kernel_drop_count() {
    // A file record is about 30 KiB: the 1 MiB ring holds some 30 of them.
    const STORM: usize = 120;
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let config = "[sensor]\nring_buffer_bytes = 1048576\n[alert_budget]\nmax_alerts = 1000000\n";
    let mut agent = Launch::fresh(AGENT, "fe-storm", config)
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap();
    sync(&ns, &mut agent, "storm-before");
    agent.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    while !fs::read_to_string(format!("/proc/{}/stat", agent.pid()))
        .unwrap()
        .contains(") T ")
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    ns.sh(&format!(
        "i=0; while [ $i -lt {STORM} ]; do dd if=/dev/null of=/boot/storm-$i status=none; \
         i=$((i+1)); done"
    ))
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    // The ring may still be full when the first markers are written (the agent drains it after
    // it resumes): those are dropped too. Markers until one alerts; the count below takes the
    // ones that did not alert (dropped, or alerted late) into account exactly.
    let mut markers = 0;
    loop {
        markers += 1;
        assert!(markers <= 20, "no marker alerted after the storm");
        let marker = format!("/boot/storm-after-{markers}");
        ns.sh(&format!("dd if=/dev/null of={marker} status=none"))
            .unwrap();
        let alerted = agent.wait_for(Duration::from_secs(2), |r| {
            r["file"]["path"] == marker.as_str()
        });
        if alerted.is_ok() {
            break;
        }
    }
    let (status, _, records) = agent.stop().unwrap();
    assert!(status.success(), "{status}");
    let mut alerted: Vec<&str> = records
        .iter()
        .filter(|r| r["rule"]["id"] == FILE_WRITE)
        .filter_map(|r| r["file"]["path"].as_str())
        .filter(|p| {
            p.starts_with("/boot/storm-") && !p.contains("-before") && !p.contains("-after")
        })
        .collect();
    let alerts = alerted.len();
    alerted.sort_unstable();
    alerted.dedup();
    assert_eq!(alerted.len(), alerts, "a write alerted twice");
    let stopped = records
        .iter()
        .find(|r| r["event"]["action"] == "agent-stopped")
        .expect("stop record");
    let drops = stopped["boot_copy"]["counters"]["file_ringbuf_drops"]
        .as_u64()
        .unwrap() as usize;
    let markers_alerted = records
        .iter()
        .filter(|r| r["rule"]["id"] == FILE_WRITE)
        .filter(|r| {
            r["file"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/boot/storm-after-"))
        })
        .count();
    eprintln!(
        "storm of {STORM} writes: {alerts} alerts, {drops} file records dropped; \
         {markers_alerted} of {markers} markers alerted"
    );
    assert!(alerts > 0 && drops > 0, "the storm overflowed the ring");
    assert_eq!(
        alerts + drops,
        STORM + markers - markers_alerted,
        "every write alerted or counted"
    );
}

/// `events` prints file events as ECS (Defend's `file.Ext.original.*` for renames), the writer
/// described as an exec event describes its process; here the agent runs on the host and the
/// writes land in a tmpfs mounted over /boot in a private namespace: a file system mounted on
/// the watched directory is in the watched tree.
#[test]
fn events_prints_file_events_as_ecs() {
    let mut events = boot_copy_harness::Events::start(AGENT, false).unwrap();
    boot_copy_harness::in_boot_namespace("mkdir /boot/ev-dir && mv /boot/ev-dir /boot/ev-renamed")
        .unwrap();
    let e = events
        .wait_for(*WAIT, |e| e["file"]["path"] == "/boot/ev-renamed")
        .unwrap();
    assert_eq!(e["event"]["category"], serde_json::json!(["file"]));
    assert_eq!(e["event"]["action"], "rename");
    assert_eq!(e["event"]["type"], serde_json::json!(["change"]));
    assert_eq!(e["event"]["kind"], "event");
    assert_eq!(e["file"]["name"], "ev-renamed");
    assert_eq!(e["file"]["Ext"]["original"]["path"], "/boot/ev-dir");
    assert_eq!(e["process"]["name"], "mv");
    assert_eq!(e["process"]["args"][2], "/boot/ev-renamed");
    // The kernel matched the host's /boot by device and inode.
    assert_eq!(e["boot_copy"]["boot"]["host_filesystem"], true, "{e}");
    assert_eq!(e["process"]["user"]["id"], "0");
    assert_eq!(e["host"]["os"]["type"], "linux");
    assert_eq!(e["boot_copy"]["file"]["tree"], "/boot");
    let created = events
        .wait_for(*WAIT, |e| e["file"]["path"] == "/boot/ev-dir")
        .unwrap();
    assert_eq!(created["event"]["action"], "creation");
    assert_eq!(created["process"]["name"], "mkdir");
    let problems: Vec<String> = crate::support::ecs_schema::Schema::load()
        .violations(&e)
        .into_iter()
        .filter(|p| !p.starts_with("file.Ext"))
        .collect();
    assert!(problems.is_empty(), "not ECS 9.4.0: {problems:#?}");
}

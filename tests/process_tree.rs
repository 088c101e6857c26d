//! Process-tree edge cases end-to-end: `boot-copy-agent run` on the real kernel with the bundled
//! published rule and a catch-all rule (any exec with a `/boot/` argument, so that execs the
//! published rule cannot see by name still produce a document to check). Each case copies into
//! a tmpfs over /boot in a private mount namespace and checks `process.*` and
//! `process.parent.*` of its alert: pid reuse, orphans adopted by a subreaper or by a pid
//! namespace's init, exec of a deleted file, of a memfd, through /proc/self/fd/N and execveat
//! (AT_EMPTY_PATH), and execve from a thread that is not the leader. Needs root and python3.
use serde_json::Value;
use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::AGENT;
use boot_copy_harness::{Agent, PUBLISHED, exec_in_boot_namespace, tempdir, unique};

/// The system's python (not a shim earlier in PATH).
const PYTHON: &str = "/usr/bin/python3";
const CATCH_ALL: &str = "7e7e7e7e-0000-4000-8000-000000000002";

/// The published rule plus a rule on every exec with an argument under /boot/.
fn rules_dir(work: &Path) -> PathBuf {
    let dir = work.join("rules");
    fs::create_dir(&dir).unwrap();
    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/boot-file-copy.toml");
    fs::copy(bundled, dir.join("boot-file-copy.toml")).unwrap();
    fs::write(
        dir.join("any-boot-arg.toml"),
        boot_copy_harness::eql_rule(
            CATCH_ALL,
            "Any /boot argument",
            "Any exec with an argument under /boot/.",
            r#"process where event.type == "start" and process.args like~ "/boot/*""#,
        ),
    )
    .unwrap();
    dir
}

fn start_agent(work: &Path) -> Agent {
    let rules = rules_dir(work);
    Agent::start(
        AGENT,
        "tree",
        &format!(
            "[rules]\npath = \"{}\"\n[alert_budget]\nmax_alerts = 100000\n",
            rules.display()
        ),
    )
    .unwrap()
}

/// The one alert of `rule` whose args contain `arg`.
fn alert(agent: &Agent, rule: &str, arg: &str) -> Value {
    let alerts = agent.alerts_of(rule, arg);
    assert_eq!(alerts.len(), 1, "{rule} alerts for {arg}: {alerts:#?}");
    alerts.into_iter().next().unwrap()
}

/// Runs `script` with /bin/sh in the boot namespace; returns the pid of that shell (a final
/// `exec` keeps it).
fn sh_in_boot_namespace(script: &str) -> u32 {
    let mut child = exec_in_boot_namespace("/bin/sh", ["-c", script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{script}");
    pid
}

fn resolved(path: &str) -> String {
    fs::canonicalize(path).unwrap().display().to_string()
}

/// `process.parent` names the test process itself.
fn assert_parent_is_this_test(a: &Value) {
    let parent = &a["process"]["parent"];
    assert_eq!(parent["pid"], std::process::id(), "{parent}");
    assert_eq!(
        parent["executable"],
        std::env::current_exe().unwrap().display().to_string()
    );
}

#[test]
fn recycled_pid_never_inherits_the_old_process_data() {
    let work = tempdir("reuse-work").unwrap();
    let mut agent = start_agent(&work);
    let tag = unique();
    let old_image = work.join(format!("oldparent-{tag}"));
    fs::copy(resolved("/bin/sh"), &old_image).unwrap();
    // The old process: an image of its own, with a child, then gone.
    let old_target = format!("/boot/reuse-old-{tag}");
    let mut old = exec_in_boot_namespace(
        &old_image,
        ["-c", &format!("cp /etc/hostname {old_target}; true")],
    )
    .spawn()
    .unwrap();
    let x = old.id();
    assert!(old.wait().unwrap().success());
    // A forked (not exec'd) subshell on the same pid: the pid counter is set just below it right
    // before the fork. Other processes on the machine may take the pid first: retry.
    let mut new_target = None;
    for attempt in 0..50 {
        let target = format!("/boot/reuse-new-{tag}-{attempt}");
        let script = format!(
            "echo {} > /proc/sys/kernel/ns_last_pid; (cp /etc/hostname {target}; true); true",
            x - 1
        );
        sh_in_boot_namespace(&script);
        agent.sync().unwrap();
        let a = alert(&agent, CATCH_ALL, &target);
        if a["process"]["parent"]["pid"] == x {
            new_target = Some(target);
            break;
        }
    }
    let new_target = new_target.expect("pid reused within 50 attempts");
    let old = alert(&agent, PUBLISHED, &old_target);
    let new = alert(&agent, PUBLISHED, &new_target);
    let (op, np) = (&old["process"]["parent"], &new["process"]["parent"]);
    assert_eq!(op["pid"], x);
    assert_eq!(op["executable"], old_image.display().to_string());
    // The new process on pid x is the subshell: the shell's image, forked.
    assert_eq!(np["pid"], x);
    assert_eq!(np["executable"], resolved("/bin/sh"));
    assert_eq!(np["name"], "dash");
    assert!(
        np["args"][2].as_str().unwrap().contains(&new_target),
        "{np}"
    );
    assert_ne!(np["entity_id"], op["entity_id"]);
    assert!(np["start"].as_str() > op["start"].as_str());
    assert_eq!(new["boot_copy"]["parent"]["source"], "kernel");
    fs::remove_dir_all(&work).unwrap();
}

/// A script that orphans a process which then execs cp with its current parent's pid (read from
/// /proc, global pids) in the target name `/boot/orphan-TAG-PPID`.
fn orphaning_script(tag: &str) -> String {
    format!(
        "( sh -c 'sleep 0.3; read -r s < /proc/self/stat; set -- $s; exec cp /etc/hostname /boot/orphan-{tag}-$4' & ); sleep 1; true"
    )
}

/// The orphan's alert and the parent pid it saw before its exec.
fn orphan_alert(agent: &Agent, tag: &str) -> (Value, u64) {
    let prefix = format!("/boot/orphan-{tag}-");
    let alerts: Vec<Value> = agent
        .records()
        .into_iter()
        .filter(|r| r["rule"]["id"] == PUBLISHED)
        .filter(|r| {
            r["process"]["args"][2]
                .as_str()
                .is_some_and(|a| a.starts_with(&prefix))
        })
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let seen: u64 = alerts[0]["process"]["args"][2].as_str().unwrap()[prefix.len()..]
        .parse()
        .unwrap();
    (alerts[0].clone(), seen)
}

#[test]
fn orphan_adopted_by_a_subreaper_has_the_subreaper_as_parent() {
    let work = tempdir("subreaper-work").unwrap();
    let mut agent = start_agent(&work);
    let tag = unique();
    let script = orphaning_script(&tag);
    let mut cmd = exec_in_boot_namespace("/bin/sh", ["-c", &script]);
    // SAFETY: prctl is async-signal-safe; the setting survives the execs that follow.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut reaper = cmd.spawn().unwrap();
    assert!(reaper.wait().unwrap().success());
    agent.sync().unwrap();
    let (a, seen) = orphan_alert(&agent, &tag);
    let parent = &a["process"]["parent"];
    assert_eq!(seen, u64::from(reaper.id()), "the orphan was adopted");
    assert_eq!(parent["pid"], reaper.id());
    assert_eq!(parent["executable"], resolved("/bin/sh"));
    assert_eq!(parent["args"][2], script);
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn orphan_adopted_by_a_pid_namespace_init_has_that_init_as_parent() {
    let work = tempdir("nsinit-work").unwrap();
    let mut agent = start_agent(&work);
    let tag = unique();
    let script = orphaning_script(&tag);
    // unshare forks the namespace's init (pid 1 inside), which runs the script.
    let status = Command::new("unshare")
        .args([
            "-m",
            "-p",
            "-f",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
        ])
        .arg(format!("mount -t tmpfs boot-copy-test /boot && {script}"))
        .status()
        .unwrap();
    assert!(status.success());
    agent.sync().unwrap();
    let (a, seen) = orphan_alert(&agent, &tag);
    let parent = &a["process"]["parent"];
    assert_eq!(parent["pid"], seen, "pids are the host's");
    assert_eq!(parent["executable"], resolved("/bin/sh"));
    assert!(
        parent["args"][2].as_str().unwrap().ends_with(&script),
        "{parent}"
    );
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn exec_through_file_descriptors_names_the_file() {
    let work = tempdir("fd-work").unwrap();
    let mut agent = start_agent(&work);
    let tag = unique();
    let cp = resolved("/usr/bin/cp");
    let copy = work.join("cp");
    fs::copy(&cp, &copy).unwrap();
    let copy = copy.display().to_string();

    // /proc/self/fd/N of a file that is still there.
    let via_proc = format!("/boot/via-proc-{tag}");
    let pid_proc = sh_in_boot_namespace(&format!(
        "exec 3< {cp}; exec /proc/self/fd/3 /etc/hostname {via_proc}"
    ));
    // A deleted file: the path it had (Defend's dentry walk; d_path would add " (deleted)").
    let deleted = format!("/boot/deleted-{tag}");
    let pid_deleted = sh_in_boot_namespace(&format!(
        "exec 3< {copy}; rm {copy}; exec /proc/self/fd/3 /etc/hostname {deleted}"
    ));
    // execveat(fd, "", AT_EMPTY_PATH).
    let via_execveat = format!("/boot/execveat-{tag}");
    let py = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         fd = os.open('{cp}', os.O_RDONLY)\n\
         argv = (ctypes.c_char_p * 4)(b'cp', b'/etc/hostname', b'{via_execveat}', None)\n\
         envp = (ctypes.c_char_p * 1)(None)\n\
         libc.syscall(322, fd, b'', argv, envp, 0x1000)\n\
         raise SystemExit(os.strerror(ctypes.get_errno()))\n"
    );
    let mut child = exec_in_boot_namespace(PYTHON, ["-c", &py]).spawn().unwrap();
    let pid_execveat = child.id();
    assert!(child.wait().unwrap().success());
    agent.sync().unwrap();

    for (target, pid, exe, argv0) in [
        (&via_proc, pid_proc, &cp, "/proc/self/fd/3"),
        (&deleted, pid_deleted, &copy, "/proc/self/fd/3"),
        (&via_execveat, pid_execveat, &cp, "cp"),
    ] {
        let a = alert(&agent, PUBLISHED, target);
        let p = &a["process"];
        assert_eq!(p["pid"], pid, "{target}");
        assert_eq!(p["executable"], exe.as_str(), "{target}");
        assert_eq!(p["name"], "cp", "{target}");
        assert_eq!(
            p["args"],
            serde_json::json!([argv0, "/etc/hostname", target])
        );
        assert_parent_is_this_test(&a);
    }
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn exec_of_a_memfd_is_named_after_the_memfd() {
    let work = tempdir("memfd-work").unwrap();
    let mut agent = start_agent(&work);
    let target = format!("/boot/memfd-{}", unique());
    let py = format!(
        "import os\n\
         fd = os.memfd_create('cp', 0)\n\
         os.write(fd, open('/usr/bin/cp', 'rb').read())\n\
         os.execve(fd, ['cp', '/etc/hostname', '{target}'], {{}})\n"
    );
    let mut child = exec_in_boot_namespace(PYTHON, ["-c", &py]).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    agent.sync().unwrap();
    // The dentry walk gives the memfd's name under its internal mount: `/memfd:cp`. The published
    // rule needs process.name "cp", so only the catch-all rule fires.
    let a = alert(&agent, CATCH_ALL, &target);
    let p = &a["process"];
    assert_eq!(p["pid"], pid);
    assert_eq!(p["executable"], "/memfd:cp");
    assert_eq!(p["name"], "memfd:cp");
    assert_eq!(
        p["args"],
        serde_json::json!(["cp", "/etc/hostname", target])
    );
    assert_parent_is_this_test(&a);
    assert!(agent.alerts_of(PUBLISHED, &target).is_empty());
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn exec_from_a_thread_is_the_process_that_ran_it() {
    let work = tempdir("thread-work").unwrap();
    let mut agent = start_agent(&work);
    let target = format!("/boot/thread-{}", unique());
    // The target is also python's own argument, so its exec alerts too (same process).
    let py = "import os, sys, threading\n\
              t = threading.Thread(target=lambda: os.execv('/usr/bin/cp', ['cp', '/etc/hostname', sys.argv[1]]))\n\
              t.start()\n\
              t.join()\n";
    let mut child = exec_in_boot_namespace(PYTHON, ["-c", py, &target])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    agent.sync().unwrap();
    let alerts = agent.alerts_of(CATCH_ALL, &target);
    let python = alerts
        .iter()
        .find(|a| a["process"]["args"][0] == PYTHON)
        .unwrap_or_else(|| panic!("python's exec: {alerts:#?}"));
    let cp = alert(&agent, PUBLISHED, &target);
    let p = &cp["process"];
    // After the exec the thread group has one thread, with the leader's pid and start time.
    assert_eq!(p["pid"], pid);
    assert_eq!(p["executable"], resolved("/usr/bin/cp"));
    assert_eq!(
        p["args"],
        serde_json::json!(["cp", "/etc/hostname", target])
    );
    assert_eq!(p["entity_id"], python["process"]["entity_id"]);
    assert_eq!(p["start"], python["process"]["start"]);
    assert_parent_is_this_test(&cp);
    fs::remove_dir_all(&work).unwrap();
}

//! Privilege and tamper evidence, end to end on the real kernel: the capabilities the running
//! agent keeps, refusal of files others could change, the HMAC chain and its verifier, and the
//! report of a detached program. Copies into /boot happen in a private mount namespace with a
//! tmpfs over /boot. Needs root.
use serde_json::Value;
use std::{
    fs,
    os::unix::fs::{PermissionsExt, chown},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::AGENT;
use boot_copy_harness::{
    Agent, Launch, PUBLISHED, WAIT, has_arg, in_boot_namespace, refused_run, tempdir, unique,
    use_rules_dir,
};
/// CAP_BPF (39) and CAP_SYS_PTRACE (19).
const KEPT_CAPS: u64 = 1 << 39 | 1 << 19;
const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a 32-byte key, root's, 0600.
fn write_key(path: &Path) {
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    fs::write(path, key).unwrap();
    chmod(path, 0o600);
}

/// A config writing the log and the state into `dir/log`, with `extra` appended. Other tests'
/// copies into /boot alert here too: the budget must not withhold this test's alerts.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "[sinks.alert_log]\npath = \"{dir}/log/alerts.ndjson\"\n\n[health]\nstate_dir = \"{dir}/log\"\nheartbeat_seconds = 1\n\n[alert_budget]\nmax_alerts = 1000000\n\n{extra}",
            dir = dir.display()
        ),
    )
    .unwrap();
    config
}

/// `run` with `config`, writing into `dir` (which may hold an earlier run's records); its stdout
/// goes to `dir/stdout.ndjson`.
fn start(dir: &Path, config: &Path) -> Agent {
    Launch::existing(AGENT, dir, config)
        .stdout_to(dir.join("stdout.ndjson"))
        .start()
        .unwrap()
}

/// Copies into the namespace's /boot and waits for the published rule's alert.
fn alert_on_copy(agent: &mut Agent) -> Value {
    let target = format!("/boot/integrity-{}", unique());
    in_boot_namespace(&format!("cp /etc/hostname {target}")).unwrap();
    agent
        .wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert"
                && r["rule"]["id"] == PUBLISHED
                && has_arg(&r["process"]["args"], &target)
        })
        .unwrap_or_else(|e| panic!("no alert for {target}: {e}"))
}

/// Stops the agent, which must exit with success.
fn stop(agent: Agent) {
    let (status, _, _) = agent.stop().unwrap();
    assert!(status.success(), "agent stopped with {status}");
}

/// `Cap*:` and `NoNewPrivs:` lines of /proc/PID/task/TID/status, as numbers.
fn privileges(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let value = value.trim();
            let n = if name == "NoNewPrivs" {
                value.parse().ok()?
            } else {
                u64::from_str_radix(value, 16).ok()?
            };
            Some((name.to_owned(), n))
        })
        .collect()
}

#[test]
fn running_agent_keeps_only_bpf_and_ptrace_and_still_detects_and_reloads() {
    let dir = tempdir("caps").unwrap();
    let config = write_config(&dir, "");
    // A log left world-readable (and group-writable) by someone else is tightened at start.
    fs::create_dir(dir.join("log")).unwrap();
    let log = dir.join("log/alerts.ndjson");
    fs::write(&log, "").unwrap();
    chmod(&log, 0o666);
    let mut agent = start(&dir, &config);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&log), 0o640);
    let expected: Vec<(String, u64)> = [
        ("CapInh", 0),
        ("CapPrm", KEPT_CAPS),
        ("CapEff", KEPT_CAPS),
        ("CapBnd", KEPT_CAPS),
        ("CapAmb", 0),
        ("NoNewPrivs", 1),
    ]
    .map(|(n, v)| (n.to_owned(), v))
    .into();
    // Capabilities are per thread: every thread (main loop, sinks) must have dropped them.
    let tasks: Vec<_> = fs::read_dir(format!("/proc/{}/task", agent.pid() as i32))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert!(tasks.len() >= 3, "main thread and sink threads: {tasks:?}");
    for task in &tasks {
        let status = fs::read_to_string(task.join("status")).unwrap();
        assert_eq!(privileges(&status), expected, "{}", task.display());
    }
    let start = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")
        .unwrap();
    assert_eq!(
        start["boot_copy"]["capabilities"],
        serde_json::json!(["CAP_BPF", "CAP_SYS_PTRACE"])
    );

    // Detection after the drop.
    let alert = alert_on_copy(&mut agent);
    assert_eq!(alert["process"]["parent"]["name"], "dash");
    // SIGHUP after the drop: rules come from a (root-owned) directory now, and apply.
    let rules = dir.join("rules");
    fs::create_dir(&rules).unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/boot-file-copy.toml"),
        rules.join("boot-file-copy.toml"),
    )
    .unwrap();
    use_rules_dir(&config, &rules).unwrap();
    // What logrotate's `create 0644 root root` leaves: a new file that SIGHUP must reopen and
    // tighten, without the capabilities the agent dropped.
    fs::rename(&log, dir.join("log/alerts.ndjson.1")).unwrap();
    fs::write(&log, "").unwrap();
    chmod(&log, 0o644);
    agent.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    let reloaded = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "rules-reloaded")
        .expect("rules-reloaded after the drop, in the reopened log");
    assert_eq!(mode(&log), 0o640);
    assert_eq!(
        reloaded["message"],
        "boot-copy reloaded rules: Boot File Copy v2; watching process.name in (\"cp\", \"mv\")"
    );
    // The kernel's watch list followed, written through the descriptor kept open.
    assert_eq!(watched_names(agent.pid() as i32), ["cp", "mv"]);
    alert_on_copy(&mut agent);
    stop(agent);
    let status_file = dir.join("log/status.json");
    let status: Value = serde_json::from_str(&fs::read_to_string(&status_file).unwrap()).unwrap();
    assert_eq!(status["stopped"], true);
    // Nothing the agent writes is world-readable.
    assert_eq!(mode(&status_file), 0o640);
    fs::remove_dir_all(&dir).unwrap();
}

/// `run` with `config`: must fail before opening the log, naming `culprit` and `why`.
fn assert_refused(dir: &Path, config: &Path, culprit: &Path, why: &str) {
    let err = refused_run(AGENT, config).unwrap();
    let named = format!("{} is {why}", culprit.display());
    assert!(err.contains(&named), "expected `{named}` in: {err}");
    assert!(
        !dir.join("log/alerts.ndjson").exists(),
        "refused only after opening the sinks"
    );
    // `check` reports the same problem.
    let out = Command::new(AGENT)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains(&named),
        "check: {text}"
    );
}

#[test]
fn config_rules_and_key_that_others_can_change_or_read_are_refused() {
    let dir = tempdir("strictmodes").unwrap();
    let etc = dir.join("etc");
    let rules = etc.join("rules");
    fs::create_dir_all(&rules).unwrap();
    let rule = rules.join("boot-file-copy.toml");
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/boot-file-copy.toml"),
        &rule,
    )
    .unwrap();
    chmod(&rule, 0o644);
    let key = dir.join("chain.key");
    write_key(&key);
    let config = write_config(
        &dir,
        &format!(
            "[rules]\npath = \"{}\"\n\n[integrity]\nkey_file = \"{}\"\n",
            rules.display(),
            key.display()
        ),
    );
    let group_writable = |mode| format!("writable by group or others (mode {mode:o})");
    // Refused with `loose` mode (named `why`), then owned by someone else; restored after each.
    let refused = |path: &Path, loose: u32, why: &str, mode: u32| {
        chmod(path, loose);
        assert_refused(&dir, &config, path, why);
        chmod(path, mode);
        chown(path, Some(NOBODY), None).unwrap();
        assert_refused(&dir, &config, path, &format!("owned by uid {NOBODY}"));
        chown(path, Some(0), None).unwrap();
    };

    refused(&config, 0o664, &group_writable(0o664), 0o644);
    refused(&rule, 0o646, &group_writable(0o646), 0o644);
    chmod(&rules, 0o775);
    assert_refused(&dir, &config, &rules, &group_writable(0o775));
    chmod(&rules, 0o755);
    // Any directory on the way: whoever can rename `etc` can swap the rules.
    chmod(&etc, 0o777);
    assert_refused(&dir, &config, &etc, &group_writable(0o777));
    chmod(&etc, 0o755);

    refused(
        &key,
        0o640,
        "accessible to group or others (mode 640)",
        0o400,
    );
    fs::write(&key, "short").unwrap();
    assert_refused(&dir, &config, &key, "too short");

    // The directory holding them all.
    write_key(&key);
    chmod(&dir, 0o777);
    assert_refused(&dir, &config, &dir, &group_writable(0o777));
    chmod(&dir, 0o755);
    // And with everything in order the agent runs.
    stop(start(&dir, &config));
    fs::remove_dir_all(&dir).unwrap();
}

/// `verify --key KEY FILES...`: (success, stdout + stderr).
fn verify(key: &Path, files: &[&Path]) -> (bool, String) {
    let out = Command::new(AGENT)
        .arg("verify")
        .arg("--key")
        .arg(key)
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Verifies `lines` written to a file of their own; the verifier must fail naming `expected`.
fn assert_tampering_found(dir: &Path, key: &Path, name: &str, lines: &[String], expected: &str) {
    let file = dir.join(name);
    fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, text) = verify(key, &[&file]);
    assert!(!ok, "{name}: tampering not found: {text}");
    let expected = format!("{}:{expected}", file.display());
    assert!(
        text.contains(&expected),
        "{name}: expected `{expected}` in {text}"
    );
}

fn seq(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["boot_copy"]["seq"]
        .as_u64()
        .unwrap()
}

#[test]
fn hmac_chain_verifies_a_real_log_and_names_each_kind_of_tampering() {
    let dir = tempdir("chain").unwrap();
    let key = dir.join("chain.key");
    write_key(&key);
    let config = write_config(
        &dir,
        &format!("[integrity]\nkey_file = \"{}\"\n", key.display()),
    );
    // Two runs: alerts, heartbeats, a reload, a clean stop and a start linked to it.
    let mut agent = start(&dir, &config);
    alert_on_copy(&mut agent);
    agent.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "rules-reloaded")
        .expect("rules-reloaded after SIGHUP");
    alert_on_copy(&mut agent);
    agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "heartbeat")
        .expect("a heartbeat (heartbeat_seconds = 1)");
    let stdout_first_run = fs::read_to_string(dir.join("stdout.ndjson")).unwrap();
    stop(agent);
    let mut agent = start(&dir, &config);
    alert_on_copy(&mut agent);
    stop(agent);

    let log = dir.join("log/alerts.ndjson");
    // Created by the agent: neither the directory nor the log is open to others.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode(&dir.join("log")), mode(&log)), (0o750, 0o640));
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (ok, out) = verify(&key, &[&log]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("OK: {} records from 2 runs", lines.len())),
        "{out}"
    );
    // Every record is chained, and the stdout sink carries the very same lines.
    for l in &lines {
        let r: Value = serde_json::from_str(l).unwrap();
        assert_eq!(
            r["boot_copy"]["chain"]["hmac"].as_str().map(str::len),
            Some(64),
            "{l}"
        );
    }
    // Complete lines only: the stdout sink may have been writing one.
    let complete = stdout_first_run
        .rfind('\n')
        .map_or("", |end| &stdout_first_run[..end]);
    let first_run: Vec<&str> = complete.lines().collect();
    assert!(first_run.len() >= 5);
    assert_eq!(first_run[..], lines[..first_run.len()]);
    // The second run's first record names the first run's last record.
    let restart = lines
        .iter()
        .position(|l| seq(l) == 1 && l != &lines[0])
        .unwrap();
    let start: Value = serde_json::from_str(&lines[restart]).unwrap();
    let last: Value = serde_json::from_str(&lines[restart - 1]).unwrap();
    assert_eq!(last["event"]["action"], "agent-stopped");
    assert_eq!(
        start["boot_copy"]["chain"]["previous"]["seq"],
        last["boot_copy"]["seq"]
    );
    assert_eq!(
        start["boot_copy"]["chain"]["previous"]["hmac"],
        last["boot_copy"]["chain"]["hmac"]
    );

    // Rotated files given in order verify as one chain.
    let older = dir.join("alerts.ndjson.1");
    let newer = dir.join("alerts.ndjson.0");
    fs::write(&older, lines[..3].join("\n") + "\n").unwrap();
    fs::write(&newer, lines[3..].join("\n") + "\n").unwrap();
    let (ok, out) = verify(&key, &[&older, &newer]);
    assert!(ok, "{out}");
    let (ok, out) = verify(&key, &[&newer, &older]);
    assert!(!ok, "files out of order: {out}");

    // Line numbers below are 1-based; line 3 is an ordinary record of the first run.
    let mut removed = lines.clone();
    removed.remove(2);
    assert_tampering_found(
        &dir,
        &key,
        "removed",
        &removed,
        "3: record removed before this line (seq 3 is missing)",
    );
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    assert_tampering_found(
        &dir,
        &key,
        "swapped",
        &swapped,
        "3: records reordered: seq 4 is where seq 3 belongs",
    );
    let alert = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"alert\""))
        .unwrap();
    let mut edited = lines.clone();
    edited[alert] = edited[alert].replacen("/etc/hostname", "/etc/hostnamf", 1);
    assert_ne!(edited[alert], lines[alert]);
    assert_tampering_found(
        &dir,
        &key,
        "edited",
        &edited,
        &format!("{}: record edited", alert + 1),
    );
    let mut inserted = lines.clone();
    let mut forged: Value = serde_json::from_str(&lines[alert]).unwrap();
    forged["boot_copy"]["seq"] = (seq(&lines[alert]) + 1).into();
    forged["process"]["args"][2] = "/boot/forged".into();
    inserted.insert(alert + 1, forged.to_string());
    assert_tampering_found(
        &dir,
        &key,
        "inserted",
        &inserted,
        &format!("{}: record inserted", alert + 2),
    );
    // The end of the first run cut off: the restart names a record that is gone.
    let mut cut = lines.clone();
    cut.remove(restart - 1);
    assert_tampering_found(
        &dir,
        &key,
        "cut",
        &cut,
        &format!("{restart}: agent restart not linked to the previous run"),
    );
    // The wrong key verifies nothing.
    let other = dir.join("other.key");
    fs::write(&other, [1u8; 32]).unwrap();
    let (ok, out) = verify(&other, &[&log]);
    assert!(!ok && out.contains(":1: record edited"), "{out}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Closes `fd` inside process `pid` the way a debugger would: stop its main thread in a system
/// call, point it at close(fd), single-step, restore. x86_64.
fn close_fd_in(pid: i32, fd: i32) {
    use libc::{PTRACE_ATTACH, PTRACE_DETACH, PTRACE_GETREGS, PTRACE_PEEKTEXT, PTRACE_SETREGS};
    use libc::{PTRACE_SINGLESTEP, ptrace, user_regs_struct, waitpid};
    let deadline = Instant::now() + *WAIT;
    loop {
        // SAFETY: plain ptrace(2) calls on a process this test started; registers are restored.
        unsafe {
            assert_eq!(ptrace(PTRACE_ATTACH, pid, 0, 0), 0, "ptrace attach");
            let mut status = 0;
            assert_eq!(waitpid(pid, &mut status, libc::__WALL), pid);
            let mut saved: user_regs_struct = std::mem::zeroed();
            assert_eq!(ptrace(PTRACE_GETREGS, pid, 0, &mut saved), 0);
            let before = ptrace(PTRACE_PEEKTEXT, pid, saved.rip - 2, 0);
            // Stopped just after a `syscall` instruction (0f 05): reuse it.
            if before & 0xffff == 0x050f {
                let mut regs = saved;
                regs.rip = saved.rip - 2;
                regs.rax = libc::SYS_close as u64;
                regs.orig_rax = u64::MAX;
                regs.rdi = fd as u64;
                assert_eq!(ptrace(PTRACE_SETREGS, pid, 0, &regs), 0);
                assert_eq!(ptrace(PTRACE_SINGLESTEP, pid, 0, 0), 0);
                assert_eq!(waitpid(pid, &mut status, libc::__WALL), pid);
                assert_eq!(ptrace(PTRACE_GETREGS, pid, 0, &mut regs), 0);
                assert_eq!(ptrace(PTRACE_SETREGS, pid, 0, &saved), 0);
                assert_eq!(ptrace(PTRACE_DETACH, pid, 0, 0), 0);
                assert_eq!(regs.rax, 0, "close({fd}) in {pid}");
                return;
            }
            assert_eq!(ptrace(PTRACE_DETACH, pid, 0, 0), 0);
        }
        assert!(Instant::now() < deadline, "never caught in a system call");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The agent's BPF link descriptors: (fd, link id, tracepoint).
fn links_of(pid: i32) -> Vec<(i32, u64, String)> {
    let mut links = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let path = entry.unwrap().path();
        if fs::read_link(&path).is_ok_and(|t| t == Path::new("anon_inode:bpf_link")) {
            let fd: i32 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap()
                    .trim()
                    .to_owned()
            };
            links.push((fd, field("link_id:").parse().unwrap(), field("tp_name:")));
        }
    }
    links
}

#[test]
fn detaching_a_program_is_reported() {
    let dir = tempdir("detach").unwrap();
    let config = write_config(&dir, "");
    let mut agent = start(&dir, &config);
    let links = links_of(agent.pid() as i32);
    let tracepoints: Vec<&str> = links.iter().map(|l| l.2.as_str()).collect();
    // The file program's link too, on kernels that load it (6.12 on).
    let file = usize::from(tracepoints.contains(&"sys_exit"));
    assert_eq!(
        tracepoints.len(),
        2 + file,
        "exec, fork (and file) links: {tracepoints:?}"
    );
    assert!(
        tracepoints.contains(&"sched_process_exec") && tracepoints.contains(&"sched_process_fork")
    );
    let (fd, link_id, _) = links
        .iter()
        .find(|l| l.2 == "sched_process_exec")
        .unwrap()
        .clone();
    // The kernel cannot detach a raw tracepoint link from outside (this is why watching our
    // descriptors suffices): bpftool's detach is refused.
    let out = Command::new("bpftool")
        .args(["link", "detach", "id", &link_id.to_string()])
        .output()
        .expect("bpftool runs");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("Operation not supported"),
        "bpftool detached a raw tracepoint link: {out:?}"
    );
    // What another root process can do: close the agent's descriptor for the link.
    close_fd_in(agent.pid() as i32, fd);
    let record = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "programs-detached")
        .expect("programs-detached record");
    assert_eq!(
        record["boot_copy"]["detached"][0]["tracepoint"],
        "sched_process_exec"
    );
    assert_eq!(record["boot_copy"]["detached"][0]["link_id"], link_id);
    assert_eq!(
        record["boot_copy"]["attached"].as_array().unwrap().len(),
        1 + file
    );
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains(&format!("sched_process_exec (link {link_id}")),
        "{record}"
    );
    // Blind, the agent stops (so that a restart attaches again), failing, with its counters.
    let status = agent.child.wait().unwrap();
    assert!(!status.success(), "a blinded agent exits with failure");
    let records = agent.records();
    let stop = records.last().unwrap();
    assert_eq!(stop["event"]["action"], "agent-stopped");
    assert_eq!(stop["boot_copy"]["counters"]["programs_detached"], 1);
    // The kernel no longer has the link.
    let show = Command::new("bpftool")
        .args(["link", "show", "id", &link_id.to_string()])
        .output()
        .unwrap();
    assert!(!show.status.success(), "link {link_id} still exists");
    fs::remove_dir_all(&dir).unwrap();
}

/// The id of the agent's map named `name` (another agent's maps have the same names).
fn map_id_of(pid: i32, name: &str) -> u64 {
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let info = fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let Some(id) = info.lines().find_map(|l| l.strip_prefix("map_id:")) else {
            continue;
        };
        let id = id.trim();
        let out = Command::new("bpftool")
            .args(["-j", "map", "show", "id", id])
            .output()
            .unwrap();
        let show: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if show["name"] == name {
            return id.parse().unwrap();
        }
    }
    panic!("the agent holds no map named {name}");
}

#[test]
fn changed_prefilter_maps_are_reported_and_restored() {
    let dir = tempdir("maps").unwrap();
    let config = write_config(&dir, "");
    let mut agent = start(&dir, &config);
    let start = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")
        .unwrap();
    assert_eq!(
        start["boot_copy"]["guarded_maps"],
        serde_json::json!(["WATCHED", "WATCHED_SIZES", "CONFIG"])
    );
    assert_eq!(
        watched_names(agent.pid() as i32),
        ["busybox", "coreutils", "cp", "install", "mv", "rsync"]
    );
    let watched = map_id_of(agent.pid() as i32, "WATCHED").to_string();
    // `cp` as the kernel's key: the name, zero-padded to 64 bytes.
    let mut key = vec!["hex".to_owned(), "63".to_owned(), "70".to_owned()];
    key.extend(std::iter::repeat_n("00".to_owned(), 62));
    let bpftool = |args: &[&str]| {
        let out = Command::new("bpftool").args(args).output().unwrap();
        assert!(out.status.success(), "bpftool {args:?}: {out:?}");
    };
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    bpftool(&[&["map", "delete", "id", &watched, "key"], &key[..]].concat());
    let record = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "maps-tampered")
        .expect("maps-tampered record");
    assert_eq!(
        record["boot_copy"]["tampered"],
        serde_json::json!([{ "map": "WATCHED", "removed": ["cp"], "added": [], "restored": true }])
    );
    assert_eq!(record["event"]["kind"], "state");
    // Restored: the key is back, and a copy alerts again.
    bpftool(&[&["map", "lookup", "id", &watched, "key"], &key[..]].concat());
    alert_on_copy(&mut agent);
    let heartbeat = agent
        .wait_for(*WAIT, |r| {
            r["event"]["action"] == "heartbeat" && r["boot_copy"]["counters"]["maps_tampered"] == 1
        })
        .expect("heartbeat counting the change");
    assert!(heartbeat["boot_copy"]["seq"].as_u64() > record["boot_copy"]["seq"].as_u64());

    // Zeroed, CONFIG's bitmaps would turn every name away before WATCHED is consulted.
    let config_map = map_id_of(agent.pid() as i32, "CONFIG").to_string();
    let zero = ["0"; 56];
    let update = [
        "map",
        "update",
        "id",
        &config_map,
        "key",
        "0",
        "0",
        "0",
        "0",
        "value",
    ];
    bpftool(&[&update[..], &zero[..]].concat());
    let record = agent
        .wait_for(*WAIT, |r| {
            r["event"]["action"] == "maps-tampered"
                && r["boot_copy"]["tampered"][0]["map"] == "CONFIG"
        })
        .expect("maps-tampered record for CONFIG");
    let tampered = &record["boot_copy"]["tampered"][0];
    assert_eq!(tampered["restored"], true);
    assert_eq!(
        tampered["added"][0],
        "flags 0 name bits [0, 0, 0, 0] size bits [0, 0]"
    );
    alert_on_copy(&mut agent);
    stop(agent);
    fs::remove_dir_all(&dir).unwrap();
}

/// The names in the agent's WATCHED map, sorted.
fn watched_names(pid: i32) -> Vec<String> {
    let id = map_id_of(pid, "WATCHED").to_string();
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "id", &id])
        .output()
        .unwrap();
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let bytes: Vec<u8> = e["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
                .take_while(|&b| b != 0)
                .collect();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    names.sort();
    names
}

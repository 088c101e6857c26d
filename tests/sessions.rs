//! Elastic Defend's session model on real sessions: a copy's group, session and entry leaders,
//! its terminal, and its parent's credentials, as the alert of the published rule gives them.
//! - `setsid sh -c 'cp …; true'`: the shell leads the session and the group; no terminal; the
//!   copy's supplementary groups as `setpriv` set them.
//! - `script` (a pseudo-terminal): `interactive: true`, the pty's major and minor.
//! - a leader that exited before the copy ran: still described (from the kernel's table).
//! - a leader that execs between two copies: each alert names its program of that moment.
//! - a real `ssh` login to an sshd on loopback: the entry leader is the login's shell, type
//!   `sshd`, source 127.0.0.1.
use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::boot_agent::{agent_in, published_alert_for};
use boot_copy_harness::{BootKind, BootNamespace, WAIT, tempdir, unique};
use serde_json::Value;

fn dash() -> String {
    fs::canonicalize("/bin/sh").unwrap().display().to_string()
}

#[test]
fn setsid_and_terminal_sessions_are_described_as_defend_does() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "sessions", "");
    let work = tempdir("sessions").unwrap();
    let src = work.join("src");
    fs::write(&src, "x").unwrap();
    let src = src.display();

    // A shell that leads its own session, without a terminal.
    let detached = format!("/boot/setsid-{}", unique());
    let pidfile = work.join("leader");
    ns.isolated(&format!(
        "setsid --wait sh -c 'echo $$ > {}; setpriv --groups 4,24 cp {src} {detached}; true' \
         < /dev/null",
        pidfile.display()
    ))
    .unwrap();
    let a = published_alert_for(&mut agent, &detached);
    let leader: u64 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p = &a["process"];
    assert_eq!(p["parent"]["pid"], leader, "{a}");
    for which in ["session_leader", "group_leader"] {
        let l = &p[which];
        assert_eq!(l["pid"], leader, "{which}: {a}");
        assert_eq!(l["executable"], dash().as_str(), "{which}");
        assert_eq!(
            l["name"],
            Path::new(&dash()).file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(l["same_as_process"], false);
        assert_eq!(l["entity_id"], p["parent"]["entity_id"], "{which}");
        assert_eq!(l["user"]["id"], "0");
        assert_eq!(l["interactive"], false);
    }
    assert_eq!(p["interactive"], false);
    assert!(p.get("tty").is_none(), "{a}");
    assert_eq!(p["parent"]["interactive"], false);
    let groups: Vec<&Value> = p["supplemental_groups"]
        .as_array()
        .unwrap_or_else(|| panic!("supplementary groups: {a}"))
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(groups, ["4", "24"], "as setpriv set them");
    assert_eq!(p["parent"]["user"]["id"], "0");
    assert_eq!(p["parent"]["group"]["id"], "0");
    assert!(p["entry_leader"]["entry_meta"]["type"].is_string(), "{a}");

    // A pseudo-terminal: script(1) makes the shell the session leader with the pty as its
    // controlling terminal.
    let interactive = format!("/boot/pty-{}", unique());
    ns.isolated(&format!(
        "script -qec 'cp {src} {interactive}; true' /dev/null < /dev/null > /dev/null"
    ))
    .unwrap();
    let a = published_alert_for(&mut agent, &interactive);
    let p = &a["process"];
    assert_eq!(p["interactive"], true, "{a}");
    assert_eq!(p["parent"]["interactive"], true, "the shell in the pty");
    assert_eq!(p["parent"]["tty"], p["tty"]);
    assert_eq!(p["tty"]["char_device"]["major"], 136, "a Unix98 pty: {a}");
    assert!(p["tty"]["char_device"]["minor"].is_u64());
    let s = &p["session_leader"];
    assert_eq!(s["pid"], p["parent"]["pid"], "{a}");
    assert_eq!(s["interactive"], true);
    assert_eq!(s["tty"], p["tty"]);
    let problems = crate::support::ecs_schema::Schema::load().violations(&a);
    assert!(problems.is_empty(), "{problems:#?}");
    fs::remove_dir_all(&work).unwrap();
}

/// The session's leader exits; a job it left in the background copies a second later: the alert
/// still names and describes the leader, from the entry the kernel made when it forked.
#[test]
fn a_leader_that_exited_is_still_described() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "exited-leader", "");
    let work = tempdir("exited-leader").unwrap();
    let pidfile = work.join("leader");
    let target = format!("/boot/orphan-{}", unique());
    ns.isolated(&format!(
        "setsid --wait sh -c 'echo $$ > {p}; (sleep 1; cp /etc/hostname {target}; true) & exit 0' \
         < /dev/null > /dev/null",
        p = pidfile.display()
    ))
    .unwrap();
    let leader: u32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let a = published_alert_for(&mut agent, &target);
    let s = &a["process"]["session_leader"];
    assert_eq!(s["pid"], leader, "{a}");
    assert_eq!(s["executable"], dash().as_str(), "{a}");
    assert_eq!(s["args"][0], "sh");
    assert!(s["entity_id"].is_string() && s["start"].is_string(), "{a}");
    assert_ne!(
        a["process"]["parent"]["pid"], leader,
        "the copy's parent is the job"
    );
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "the leader exited before the copy"
    );
    fs::remove_dir_all(&work).unwrap();
}

/// The session's leader execs another program between two copies its subshells run: each
/// alert names the leader's image of its moment (the agent keeps a live leader's description
/// only while the kernel records the same exec of it).
#[test]
fn a_leader_that_execs_is_described_anew() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "exec-leader", "");
    let (before, after) = (
        format!("/boot/lead-a-{}", unique()),
        format!("/boot/lead-b-{}", unique()),
    );
    // The program it execs: a copy of the shell under another name.
    let work = tempdir("exec-leader").unwrap();
    let other = work.join("other-shell");
    fs::copy(dash(), &other).unwrap();
    let other = other.display().to_string();
    let copy = |target: &str| format!("(cp /etc/hostname {target}; true)");
    ns.isolated(&format!(
        "setsid --wait sh -c '{}; {}; exec {other} -c \"{}; {}; true\"' < /dev/null > /dev/null",
        copy(&format!("{before}-1")),
        copy(&before),
        copy(&format!("{after}-1")),
        copy(&after),
    ))
    .unwrap();
    for (target, exe) in [(before, dash()), (after, other)] {
        let a = published_alert_for(&mut agent, &target);
        for which in ["session_leader", "group_leader"] {
            let l = &a["process"][which];
            assert_eq!(l["executable"], exe.as_str(), "{which}: {a}");
            assert_ne!(l["pid"], a["process"]["parent"]["pid"], "{a}");
        }
    }
    fs::remove_dir_all(&work).unwrap();
}

/// sshd on a loopback port, with a key of its own; killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Sshd {
    fn start(ns: &BootNamespace) -> Sshd {
        let dir = tempdir("sshd").unwrap();
        let keygen = |file: &str| {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(file))
                .output()
                .expect("ssh-keygen (openssh-client, installed by cargo xtask setup)");
            assert!(out.status.success(), "{out:?}");
        };
        keygen("host");
        keygen("client");
        fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let port = 20000 + (std::process::id() % 20000) as u16;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {d}/pid\n\
             KbdInteractiveAuthentication no\nPasswordAuthentication no\n",
            d = dir.display()
        );
        fs::write(dir.join("config"), config).unwrap();
        // sshd wants its privilege separation directory.
        fs::create_dir_all("/run/sshd").unwrap();
        let child = ns
            .command("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("config"))
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (openssh-server, installed by cargo xtask setup)");
        let deadline = Instant::now() + *WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, dir }
    }

    /// Runs `command` through a real ssh login as root.
    fn run(&self, command: &str) {
        let out = Command::new("ssh")
            .arg("-i")
            .arg(self.dir.join("client"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-p",
                &self.port.to_string(),
                "root@127.0.0.1",
            ])
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_ssh_login_is_the_entry_leader() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "ssh", "");
    let sshd = Sshd::start(&ns);
    let target = format!("/boot/ssh-{}", unique());
    // The shell stays a second, as itself (not exec'd into its last command): the agent reads
    // the login's address from its environment.
    sshd.run(&format!("cp /etc/hostname {target}; sleep 1; true"));
    let a = published_alert_for(&mut agent, &target);
    let p = &a["process"];
    let e = &p["entry_leader"];
    assert_eq!(e["entry_meta"]["type"], "sshd", "{a}");
    assert_eq!(e["entry_meta"]["source"]["ip"], "127.0.0.1", "{a}");
    // The login's shell: root's, run by sshd, leads the session the copy runs in.
    assert_eq!(e["pid"], p["parent"]["pid"], "{a}");
    assert_eq!(e["pid"], p["session_leader"]["pid"]);
    let shell = fs::metadata(e["executable"].as_str().unwrap()).unwrap();
    assert!(shell.mode() & 0o111 != 0);
    assert_eq!(e["user"]["id"], "0");
    assert_eq!(
        p["interactive"], false,
        "ssh with a command has no terminal"
    );
    let problems = crate::support::ecs_schema::Schema::load().violations(&a);
    assert!(problems.is_empty(), "{problems:#?}");
}

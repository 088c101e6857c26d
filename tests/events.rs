//! End-to-end: `boot-copy-agent events` on the real kernel. Each test execs real programs and
//! asserts the fields of the ECS event the agent printed for them. Needs root.
//! Copies go to temporary directories; nothing here touches /boot.
use serde_json::Value;
use std::{
    fs,
    io::Write,
    os::unix::{ffi::OsStrExt, fs::symlink},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::AGENT;
use boot_copy_harness::{Events, WAIT, tempdir};

fn run(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn resolved(path: &str) -> String {
    fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn args(e: &Value) -> Vec<String> {
    e["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn make_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn binary_with_args(agent: &mut Events) {
    let dir = tempdir("bin").unwrap();
    fs::write(dir.join("a"), "x").unwrap();
    let pid = run(Command::new("cp")
        .arg("-p")
        .arg(dir.join("a"))
        .arg(dir.join("b"))
        .current_dir(&dir));
    let e = agent.exec_of(pid).unwrap();
    let me = std::process::id();
    assert_eq!(e["event"]["category"][0], "process");
    assert_eq!(e["event"]["type"][0], "start");
    assert_eq!(e["event"]["kind"], "event");
    assert_eq!(e["host"]["os"]["type"], "linux");
    assert_eq!(e["process"]["executable"], resolved("/bin/cp"));
    assert_eq!(e["process"]["name"], "cp");
    let a = format!("{}", dir.join("a").display());
    let b = format!("{}", dir.join("b").display());
    assert_eq!(args(&e), ["cp", "-p", a.as_str(), b.as_str()]);
    assert_eq!(e["process"]["args_count"], 4);
    assert_eq!(e["process"]["command_line"], format!("cp -p {a} {b}"));
    assert_eq!(
        e["process"]["working_directory"],
        dir.to_string_lossy().as_ref()
    );
    assert_eq!(e["process"]["user"]["id"], "0");
    let problems = crate::support::ecs_schema::Schema::load().violations(&e);
    assert!(problems.is_empty(), "not ECS 9.4.0: {problems:#?}");
    assert!(
        e["process"]["entity_id"]
            .as_str()
            .unwrap()
            .contains(&format!("-{pid}-"))
    );
    assert_eq!(e["process"]["parent"]["pid"], me);
    assert_eq!(
        e["process"]["parent"]["executable"],
        std::env::current_exe().unwrap().to_string_lossy().as_ref()
    );
    assert_eq!(e["boot_copy"]["process"]["args_truncated"], false);
    let start = e["process"]["start"].as_str().unwrap();
    let ts = e["@timestamp"].as_str().unwrap();
    assert!(start <= ts, "start {start} after @timestamp {ts}");
    let age = humantime::parse_rfc3339(ts)
        .unwrap()
        .elapsed()
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(60),
        "@timestamp {ts} is {age:?} old"
    );
}

fn symlinked_binary_reports_resolved_executable_and_invoked_argv0(agent: &mut Events) {
    let dir = tempdir("link").unwrap();
    let link = dir.join("mv");
    symlink(resolved("/bin/cp"), &link).unwrap();
    let pid = run(Command::new(&link).arg("--version"));
    let e = agent.exec_of(pid).unwrap();
    assert_eq!(e["process"]["executable"], resolved("/bin/cp"));
    assert_eq!(e["process"]["name"], "cp");
    assert_eq!(args(&e)[0], link.to_string_lossy().as_ref());
}

fn script_is_the_executable_with_spliced_args(agent: &mut Events) {
    let dir = tempdir("script").unwrap();
    let script = dir.join("grub-pc.postinst");
    make_executable(&script, "#!/bin/sh -e\nexit 0\n");
    let pid = run(Command::new(&script).arg("configure"));
    let e = agent.exec_of(pid).unwrap();
    let path = script.to_string_lossy();
    assert_eq!(e["process"]["executable"], path.as_ref());
    assert_eq!(e["process"]["name"], "grub-pc.postinst");
    assert_eq!(args(&e), ["/bin/sh", "-e", path.as_ref(), "configure"]);
    assert_eq!(e["boot_copy"]["process"]["interpreter"], "/bin/sh");
    assert_eq!(
        e["boot_copy"]["process"]["interpreter_executable"],
        resolved("/bin/sh")
    );
}

fn long_name_is_not_cut_like_comm(agent: &mut Events) {
    let dir = tempdir("long").unwrap();
    let prog = dir.join("update-grub-gfxpayload");
    fs::copy(resolved("/bin/true"), &prog).unwrap();
    let pid = run(&mut Command::new(&prog));
    let e = agent.exec_of(pid).unwrap();
    assert_eq!(e["process"]["name"], "update-grub-gfxpayload");
    assert_eq!(e["boot_copy"]["process"]["comm"], "update-grub-gfx");
}

fn relative_exec_is_made_absolute_with_cwd(agent: &mut Events) {
    let dir = tempdir("rel").unwrap();
    fs::copy(resolved("/bin/true"), dir.join("prog")).unwrap();
    let pid = run(Command::new("./prog").current_dir(&dir));
    let e = agent.exec_of(pid).unwrap();
    assert_eq!(
        e["process"]["executable"],
        dir.join("prog").to_string_lossy().as_ref()
    );
    assert_eq!(
        e["process"]["working_directory"],
        dir.to_string_lossy().as_ref()
    );
    assert_eq!(args(&e), ["./prog"]);
}

/// The event of the cp run in `dir`.
fn cp_event_in(agent: &mut Events, dir: &Path) -> Value {
    agent
        .wait_for(*WAIT, |e| {
            e["process"]["name"] == "cp"
                && e["process"]["working_directory"] == dir.to_string_lossy().as_ref()
        })
        .expect("cp event")
}

fn forked_subshell_parent_carries_the_shell_image(agent: &mut Events) {
    let dir = tempdir("sub").unwrap();
    fs::write(dir.join("a"), "x").unwrap();
    // The parenthesised subshell forks; cp is not its last command, so it forks and execs.
    let script = "(cp a b; true); exit 0";
    let sh = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(&dir));
    let e = cp_event_in(agent, &dir);
    let parent = &e["process"]["parent"];
    assert_ne!(
        parent["pid"], sh,
        "the subshell, not the shell, is the parent"
    );
    assert_eq!(parent["executable"], resolved("/bin/sh"));
    assert_eq!(parent["args"][2], script);
    assert_eq!(e["boot_copy"]["parent"]["source"], "kernel");
}

/// A shell that forked (so has a table entry) and then exec'd another program: the program's
/// children see it as it is now, never the entry from before the exec.
fn parent_that_execd_after_forking_is_described_anew(agent: &mut Events) {
    let dir = tempdir("reexec").unwrap();
    fs::write(dir.join("a"), "x").unwrap();
    let inner = "cp a b; true";
    let outer = format!("/bin/true; exec /bin/sh -c '{inner}'");
    let sh = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(&outer)
        .current_dir(&dir));
    let e = cp_event_in(agent, &dir);
    let parent = &e["process"]["parent"];
    assert_eq!(parent["pid"], sh);
    assert_eq!(
        parent["args"],
        serde_json::json!(["/bin/sh", "-c", inner]),
        "the parent's argv after its exec"
    );
    assert_eq!(e["boot_copy"]["parent"]["source"], "kernel");
}

/// A script's subshell is described as the script (its path as the executable), as Defend
/// describes a forked process by its parent's image: the kernel copies the script's entry.
fn script_subshell_parent_is_the_script(agent: &mut Events) {
    let dir = tempdir("scriptsub").unwrap();
    fs::write(dir.join("a"), "x").unwrap();
    let script = dir.join("postinst");
    make_executable(&script, "#!/bin/sh\n(cp a b; true)\nexit 0\n");
    let sh = run(Command::new(&script).current_dir(&dir));
    let e = cp_event_in(agent, &dir);
    let parent = &e["process"]["parent"];
    assert_ne!(parent["pid"], sh, "the subshell is the parent");
    assert_eq!(parent["executable"], script.to_string_lossy().as_ref());
    assert_eq!(parent["name"], "postinst");
    assert_eq!(
        parent["args"],
        serde_json::json!(["/bin/sh", script.to_string_lossy()])
    );
    assert_eq!(e["boot_copy"]["parent"]["source"], "kernel");
}

/// A shell that forked a subshell before the agent started, the subshell waiting to exec `cp`:
/// the shell's image must come from the agent's seeding of the process table from /proc (the
/// kernel makes entries at forks, and this one came before the programs).
struct EarlyParent {
    sh: Child,
}

impl EarlyParent {
    fn spawn() -> EarlyParent {
        let dir = tempdir("before").unwrap();
        fs::write(dir.join("a"), "x").unwrap();
        let sh = Command::new("/bin/sh")
            .arg("-c")
            .arg("(read go; exec cp a b); exit 0")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        EarlyParent { sh }
    }

    fn check(mut self, agent: &mut Events) {
        self.sh.stdin.take().unwrap().write_all(b"go\n").unwrap();
        self.sh.wait().unwrap();
        let sh = self.sh.id();
        let e = agent
            .wait_for(*WAIT, |e| {
                e["process"]["parent"]["pid"] == sh && e["process"]["name"] == "cp"
            })
            .expect("cp event");
        assert_eq!(e["process"]["parent"]["executable"], resolved("/bin/sh"));
        assert_eq!(
            e["process"]["parent"]["args"][2],
            "(read go; exec cp a b); exit 0"
        );
        assert_eq!(e["boot_copy"]["parent"]["source"], "proc_seed");
    }
}

#[test]
fn parent_started_before_the_agent() {
    let early = EarlyParent::spawn();
    early.check(&mut Events::start(AGENT, false).unwrap());
}

fn parent_exited_before_the_event_was_read(agent: &mut Events) {
    let dir = tempdir("gone").unwrap();
    fs::write(dir.join("a"), "x").unwrap();
    agent.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    let sh = run(Command::new("/bin/sh")
        .arg("-c")
        .arg("cp a b; exit 0")
        .current_dir(&dir));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !Path::new(&format!("/proc/{sh}")).exists(),
        "shell has exited"
    );
    agent.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    let e = agent
        .wait_for(*WAIT, |e| e["process"]["parent"]["pid"] == sh)
        .expect("cp event");
    assert_eq!(e["process"]["parent"]["executable"], resolved("/bin/sh"));
    assert_eq!(e["process"]["parent"]["args"][2], "cp a b; exit 0");
    assert_eq!(e["boot_copy"]["parent"]["source"], "kernel");
}

fn cp_with_4000_sources_keeps_every_argument(agent: &mut Events) {
    let dir = tempdir("many").unwrap();
    let dst = dir.join("dst");
    fs::create_dir(&dst).unwrap();
    let mut cmd = Command::new("cp");
    cmd.current_dir(&dir);
    // The sources need not exist: the exec event is the same (cp fails after it).
    for i in 0..4000 {
        cmd.arg(format!("source-file-with-a-longish-name-{i:05}"));
    }
    cmd.arg(&dst);
    let pid = run(&mut cmd);
    let e = agent.exec_of(pid).unwrap();
    let a = args(&e);
    assert_eq!(a.len(), 4002);
    assert_eq!(e["process"]["args_count"], 4002);
    assert_eq!(a[4000], "source-file-with-a-longish-name-03999");
    assert_eq!(a[4001], dst.to_string_lossy().as_ref());
    assert_eq!(e["boot_copy"]["process"]["args_truncated"], false);
}

fn unwatched_128k_argument_is_truncated_and_flagged(agent: &mut Events) {
    let big = "A".repeat(128 * 1024 - 1);
    let pid = run(Command::new("/bin/true").arg(&big).arg("after"));
    let e = agent.exec_of(pid).unwrap();
    assert_eq!(e["boot_copy"]["process"]["args_truncated"], true);
    assert_eq!(e["process"]["args_count"], 3);
    assert_eq!(e["boot_copy"]["process"]["args_bytes"], 10 + 128 * 1024 + 6);
    let a = args(&e);
    assert!(a.len() >= 2 && a[1].len() >= 20 * 1024 && a[1].len() < big.len());
}

fn hostile_bytes_stay_valid_json_and_flagged(agent: &mut Events) {
    let raw = std::ffi::OsStr::from_bytes(b"bad\xff\xfe name");
    let pid = run(Command::new("cp")
        .arg("--version")
        .arg(raw)
        .arg("two\nlines \"quoted\" {\"json\":1}"));
    let e = agent.exec_of(pid).unwrap();
    let a = args(&e);
    assert_eq!(a[2], "bad\u{fffd}\u{fffd} name");
    assert_eq!(a[3], "two\nlines \"quoted\" {\"json\":1}");
    assert_eq!(e["boot_copy"]["process"]["text_altered"][0], "args");
}

fn stopped_consumer_drops_are_counted_and_reported(agent: &mut Events) {
    // Only a loss record from this storm counts.
    agent.seen.clear();
    agent.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Watched execs carry up to 512 KiB of arguments: 50 records of 300 KiB are over three
    // times the default 4 MiB ring, in few enough execs to stay quick under emulation.
    let padding = "P".repeat(100 * 1024);
    for _ in 0..50 {
        run(Command::new("cp")
            .arg("--version")
            .args([&padding, &padding, &padding]));
    }
    agent.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    let loss = agent
        .wait_for(*WAIT, |e| e["event"]["action"] == "events-lost")
        .expect("a loss record");
    let drops = loss["boot_copy"]["loss"]["ringbuf_drops"].as_u64().unwrap();
    assert!(drops > 0, "{loss}");
    assert!(
        loss["boot_copy"]["counters"]["ringbuf_drops"]
            .as_u64()
            .unwrap()
            >= drops
    );
    // The agent keeps going.
    let pid = run(Command::new("cp").arg("--version").arg("after-the-storm"));
    agent.exec_of(pid).unwrap();
}

/// Each scenario as its own test, with its own agent (`events --all`).
macro_rules! own_agent_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name(&mut super::Events::start(crate::AGENT, true).unwrap());
            }
        )*
        /// Every scenario in turn against one agent: the kernel matrix runs this, since under
        /// emulation loading the programs costs seconds per agent.
        pub const ALL: &[(&str, fn(&mut super::Events))] = &[$((stringify!($name), super::$name)),*];
    };
}

mod one_agent_each {
    own_agent_tests!(
        binary_with_args,
        symlinked_binary_reports_resolved_executable_and_invoked_argv0,
        script_is_the_executable_with_spliced_args,
        long_name_is_not_cut_like_comm,
        relative_exec_is_made_absolute_with_cwd,
        forked_subshell_parent_carries_the_shell_image,
        script_subshell_parent_is_the_script,
        parent_that_execd_after_forking_is_described_anew,
        parent_exited_before_the_event_was_read,
        cp_with_4000_sources_keeps_every_argument,
        unwatched_128k_argument_is_truncated_and_flagged,
        hostile_bytes_stay_valid_json_and_flagged,
        // Last: it clears what the agent has seen.
        stopped_consumer_drops_are_counted_and_reported,
    );
}

#[test]
fn every_scenario_on_one_agent() {
    let early = EarlyParent::spawn();
    let mut agent = Events::start(AGENT, true).unwrap();
    early.check(&mut agent);
    for (name, scenario) in one_agent_each::ALL {
        let start = Instant::now();
        scenario(&mut agent);
        eprintln!("scenario {name} passed in {:.1?}", start.elapsed());
    }
}

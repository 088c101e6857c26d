//! Hostile exec input end-to-end: `boot-copy-agent run` on the real kernel, each hostile `cp`
//! copying into a tmpfs over /boot in a private mount namespace. Every such exec must give exactly
//! one alert, on one line of valid JSON, whose fields say what ran: thousands of arguments, a
//! 128 KiB argument, bytes that are not UTF-8, newlines, quotes, JSON fragments, ANSI escapes
//! and U+202E (right-to-left override) in arguments, file names and the executable's path, and
//! paths longer than the kernel side captures. Needs root.
use serde_json::Value;
use std::{
    ffi::{OsStr, OsString},
    fs,
    os::unix::ffi::{OsStrExt, OsStringExt},
    path::{Path, PathBuf},
};

use crate::AGENT;
use boot_copy_harness::{
    Agent, BootKind, BootNamespace, Launch, PUBLISHED, STRICT, tempdir, unique,
};

/// Text meant to break a log line, a JSON parser or a terminal: newline, quotes, a JSON
/// fragment, ANSI escapes (clear screen, red) and U+202E.
const HOSTILE: &str =
    "n\nl \"q\" 'sq' {\"k\":[1,\"v\"]}\n\u{1b}[2J\u{1b}[31mred\u{1b}[0m \u{202e}gpj.exe";

/// A hostile exec and what its alert must say.
struct Case {
    label: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    rule: &'static str,
    pid: u32,
}

impl Case {
    fn new(label: &'static str, program: &Path, args: Vec<OsString>, cwd: &Path) -> Case {
        Case {
            label,
            program: program.to_owned(),
            args,
            cwd: cwd.to_owned(),
            rule: PUBLISHED,
            pid: 0,
        }
    }

    /// Execs the program in `ns`; it keeps the pid of the spawned child.
    fn run(&mut self, ns: &BootNamespace) {
        let mut child = ns
            .isolated_command(&self.program, &self.args)
            .current_dir(&self.cwd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.pid = child.id();
        child.wait().unwrap();
    }

    /// `process.args` as the agent must report them: argv as invoked, made valid UTF-8.
    fn expected_args(&self) -> Vec<String> {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(text)
            .collect()
    }

    /// Problems with the alerts found for this case (empty when right).
    fn check(&self, agent: &Agent, schema: &crate::support::ecs_schema::Schema) -> Vec<String> {
        let alerts = agent.alerts_for_pid(self.pid);
        let [alert] = alerts.as_slice() else {
            return vec![format!("{} alerts, not one", alerts.len())];
        };
        let mut problems = schema.violations(alert);
        let p = &alert["process"];
        let args = self.expected_args();
        let mut expect = |what: &str, got: &Value, want: Value| {
            if *got != want {
                problems.push(format!("{what}: got {got}, want {want}"));
            }
        };
        expect("rule.id", &alert["rule"]["id"], self.rule.into());
        expect("process.args", &p["args"], args.clone().into());
        expect("process.args_count", &p["args_count"], args.len().into());
        expect(
            "process.command_line",
            &p["command_line"],
            args.join(" ").into(),
        );
        let exe = fs::canonicalize(&self.program).unwrap();
        expect(
            "process.executable",
            &p["executable"],
            text(exe.as_os_str()).into(),
        );
        expect(
            "process.name",
            &p["name"],
            text(exe.file_name().unwrap()).into(),
        );
        expect(
            "process.working_directory",
            &p["working_directory"],
            text(self.cwd.as_os_str()).into(),
        );
        expect(
            "process.parent.pid",
            &p["parent"]["pid"],
            std::process::id().into(),
        );
        expect(
            "process.parent.executable",
            &p["parent"]["executable"],
            text(std::env::current_exe().unwrap().as_os_str()).into(),
        );
        let ours = &alert["boot_copy"]["process"];
        expect("args_truncated", &ours["args_truncated"], false.into());
        expect("path_truncated", &ours["path_truncated"], false.into());
        let argv_bytes: usize = std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| a.len() + 1)
            .sum();
        expect("args_bytes", &ours["args_bytes"], argv_bytes.into());
        let mut altered = Vec::new();
        if exe.to_str().is_none() {
            altered.extend(["executable", "name"]);
        }
        let argv0 = self.program.as_os_str();
        if self.args.iter().any(|a| a.to_str().is_none()) || argv0.to_str().is_none() {
            altered.push("args");
        }
        if !altered.is_empty() {
            expect("text_altered", &ours["text_altered"], altered.into());
        }
        problems
    }
}

/// Bytes as the agent must report them: valid UTF-8, invalid sequences replaced by U+FFFD.
fn text(s: &OsStr) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[test]
fn hostile_execs_alert_once_each_as_valid_json_with_their_fields() {
    // The agent's /boot is the namespace's, as the host's is the packaged agent's.
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = Launch::fresh(AGENT, "hostile", "[alert_budget]\nmax_alerts = 1000\n")
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap();
    let tag = unique();
    let work = tempdir("hostile-work").unwrap();
    let cp = PathBuf::from("/usr/bin/cp");
    let src = work.join("src");
    fs::write(&src, "hostile\n").unwrap();
    let boot = |name: &[u8]| os(&[b"/boot/", name, b"-", tag.as_bytes()].concat());
    let mut cases = Vec::new();

    // 4096 arguments: cp, 4094 relative sources, the target directory.
    let mut many = Vec::new();
    for i in 0..4094 {
        let name = format!("many-{i:04}");
        fs::write(work.join(&name), "x").unwrap();
        many.push(OsString::from(name));
    }
    many.push(OsString::from("/boot/"));
    cases.push(Case::new("4096 arguments", &cp, many, &work));

    // One argument of 128 KiB, the most the kernel takes (MAX_ARG_STRLEN with its NUL).
    let suffix = format!(
        "--suffix={}",
        "S".repeat(128 * 1024 - 1 - "--suffix=".len())
    );
    cases.push(Case::new(
        "128 KiB argument",
        &cp,
        vec![suffix.into(), src.clone().into(), boot(b"big")],
        &work,
    ));

    // File names that are not UTF-8, and hostile text in file names and in an option.
    let bad = work.join(os(b"src-\xff\xfe\xc3("));
    fs::write(&bad, "x").unwrap();
    cases.push(Case::new(
        "non-UTF-8 file names",
        &cp,
        vec![bad.into(), boot(b"bad-\xff\xfe\xc3(")],
        &work,
    ));
    let hostile_src = work.join(HOSTILE);
    fs::write(&hostile_src, "x").unwrap();
    cases.push(Case::new(
        "hostile file names",
        &cp,
        vec![hostile_src.into(), boot(HOSTILE.as_bytes())],
        &work,
    ));
    cases.push(Case::new(
        "hostile argument",
        &cp,
        vec![
            format!("--suffix={HOSTILE}").into(),
            src.clone().into(),
            boot(b"opt"),
        ],
        &work,
    ));

    // The executable's own path: a directory with hostile text (cp keeps its name, so the
    // published rule fires), and a copy of cp renamed with a newline (the strict rule fires:
    // same content as the system's cp).
    let dir = work.join(format!("bin-{HOSTILE}"));
    fs::create_dir(&dir).unwrap();
    fs::copy(&cp, dir.join("cp")).unwrap();
    cases.push(Case::new(
        "hostile directory of the executable",
        &dir.join("cp"),
        vec![src.clone().into(), boot(b"dir")],
        &work,
    ));
    let renamed = work.join(os(b"c\np\x1b[0m\xff"));
    fs::copy(&cp, &renamed).unwrap();
    let mut case = Case::new(
        "executable named with a newline",
        &renamed,
        vec![src.clone().into(), boot(b"renamed")],
        &work,
    );
    case.rule = STRICT;
    cases.push(case);

    for case in &mut cases {
        case.run(&ns);
    }
    agent.sync().unwrap();
    let schema = crate::support::ecs_schema::Schema::load();
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c.check(&agent, &schema)
                .into_iter()
                .map(move |p| format!("{}: {p}", c.label))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fs::remove_dir_all(&work).unwrap();
}

/// Runs `./cp f /boot/NAME` from `levels` nested directories named `component`, built and
/// entered one relative step at a time on a tmpfs over `work` (no absolute path that long
/// could be passed to a system call; `cd -P` changes directory by the relative name). Returns the pid of the cp and its real path.
fn cp_from_deep_tree(work: &Path, component: &str, levels: usize, target: &str) -> (u32, String) {
    let script = format!(
        "mount -t tmpfs boot-copy-test /boot && mount -t tmpfs deep {w} && cd {w} && \
         i=0; while [ $i -lt {levels} ]; do mkdir {component} && cd -P {component} || exit 1; i=$((i+1)); done; \
         cp /usr/bin/cp ./cp && echo x > f && exec ./cp f {target}",
        w = work.display()
    );
    let mut child = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{script}");
    let dir = format!(
        "{}{}",
        work.display(),
        format!("/{component}").repeat(levels)
    );
    (pid, format!("{dir}/cp"))
}

#[test]
fn paths_beyond_the_capture_limits_alert_with_the_deepest_part_flagged() {
    let mut agent = Agent::start(AGENT, "deep", "").unwrap();
    let work = tempdir("deep-work").unwrap();
    let tag = unique();
    // Longer than PATH_MAX (4096 bytes), and deeper than the 64 directory levels walked.
    let long = cp_from_deep_tree(&work, &"L".repeat(200), 24, &format!("/boot/long-{tag}"));
    let deep = cp_from_deep_tree(&work, "d", 80, &format!("/boot/deep-{tag}"));
    agent.sync().unwrap();
    for ((pid, real), target) in [
        (long, format!("/boot/long-{tag}")),
        (deep, format!("/boot/deep-{tag}")),
    ] {
        let alerts = agent.alerts_for_pid(pid);
        assert_eq!(alerts.len(), 1, "{real}: {alerts:#?}");
        let a = &alerts[0];
        let p = &a["process"];
        assert_eq!(a["rule"]["id"], PUBLISHED);
        assert_eq!(p["name"], "cp");
        assert_eq!(p["args"], serde_json::json!(["./cp", "f", target]));
        assert_eq!(a["boot_copy"]["process"]["path_truncated"], true);
        // The deepest part of each path is kept, and it is a true suffix of the real path.
        let exe = p["executable"].as_str().unwrap();
        let cwd = p["working_directory"].as_str().unwrap();
        let real_cwd = real.strip_suffix("/cp").unwrap();
        assert!(real.ends_with(exe) && exe.len() < real.len(), "{exe}");
        assert!(exe.ends_with("/cp") && exe.len() < 4096, "{exe}");
        assert!(
            real_cwd.ends_with(cwd) && cwd.len() < real_cwd.len(),
            "{cwd}"
        );
    }
    let (_, _, records) = agent.stop().unwrap();
    let stopped = records.last().unwrap();
    assert_eq!(stopped["event"]["action"], "agent-stopped");
    assert!(stopped["boot_copy"]["counters"]["path_truncations"].as_u64() >= Some(2));
    fs::remove_dir_all(&work).unwrap();
}

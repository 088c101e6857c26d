//! Elastic's Linux rule library through `run`: the agent loads every vendored rule file of
//! detection-rules (`boot-copy-rules/tests/data/detection-rules`, every exec then crosses the
//! kernel filter), and for rules chosen to span the engine's constructs — `regex`, `regex~`, a
//! string function with a field as its second argument, a `like` pattern with literal
//! backslashes, `length`, `?field`, `:` wildcards, `in`, `args_count` bounds, the session and
//! group leaders' names, `process.env_vars` (`sensor.capture_env_vars`) — a real command
//! that should fire the rule alerts once under that rule, and a near miss does not. Needs root.
use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::AGENT;
use boot_copy_harness::{Agent, tempdir, unique};

const LIBRARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../boot-copy-rules/tests/data/detection-rules"
);

/// One rule's pair of commands: `fires` must give exactly one alert of `rule` whose
/// `process.args` hold `marker`; `misses` (holding its own marker) none.
struct Case {
    rule: &'static str,
    what: &'static str,
    fires: Run,
    misses: Run,
}

/// A shell script to run and the argument that marks the process it must (or must not) alert on.
struct Run {
    script: String,
    marker: String,
}

/// `/bin/true` copied into `dir` under `name`: `process.name` is the executable's basename, so
/// the copy is, to the rules, the tool it is named for — without running it.
fn renamed(dir: &Path, name: &str) -> String {
    let sub = dir.join(unique());
    fs::create_dir(&sub).unwrap();
    let path = sub.join(name);
    fs::copy("/bin/true", &path).unwrap();
    path.display().to_string()
}

/// A run of `tool` (a renamed `true`) with `args` and a fresh marker as the last argument.
fn tool_run(tool: &str, args: &str) -> Run {
    let marker = format!("marker-{}", unique());
    Run {
        script: format!("{tool} {args} {marker}"),
        marker,
    }
}

/// The rules fired by a renamed `true`: rule, construct, tool name, arguments that fire it and
/// arguments of the near miss.
const TOOL_CASES: [(&str, &str, &str, &str, &str); 7] = [
    (
        "8c8df61f-ed2a-4832-87b8-ee30812606e0",
        "regex over the command line",
        "fwd",
        "-L 127.0.0.1:8080:10.1.2.3:80",
        "-L 127.0.0.1:8080",
    ),
    (
        "a1329140-8de3-4445-9f87-908fb6d824f4",
        "regex~ folding Z to z",
        "shred",
        "-fZ file",
        "-n 1 file",
    ),
    (
        "1d0027d4-6717-4a37-bad8-531d8e9fe53f",
        "like with literal backslashes, length, ?field",
        "runner",
        r"'\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41'",
        "x41x41x41x41x41x41x41x41x41x41x41x41x41x41",
    ),
    (
        "5b18eef4-842c-4b47-970f-f08d24004bde",
        "args_count >= 10",
        "which",
        "a b c d e f g h",
        "a b c d e f g",
    ),
    (
        "2724808c-ba5d-48b2-86d2-0002103df753",
        "in, case-sensitive",
        "dmesg",
        "-C",
        "-c-not",
    ),
    (
        "f4b857b3-faef-430d-b420-90be48647f00",
        "?args_count and an exclusion on args",
        "openssl",
        "passwd -1 secret",
        "passwd -help secret",
    ),
    (
        "84d1f8db-207f-45ab-a578-921d91c23eb2",
        "several args of one process",
        "stty",
        "raw -echo",
        "raw echo",
    ),
];

fn cases(dir: &Path) -> Vec<Case> {
    let python = |body: &str| {
        let marker = format!("marker-{}", unique());
        Run {
            script: format!(
                "/usr/bin/python3 -c \"import subprocess; subprocess.run(['/bin/sh', '-c', 'true', '{marker}']) {body}\""
            ),
            marker,
        }
    };
    let mut cases: Vec<Case> = TOOL_CASES
        .iter()
        .map(|&(rule, what, tool, fires, misses)| Case {
            rule,
            what,
            fires: tool_run(&renamed(dir, tool), fires),
            misses: tool_run(&renamed(dir, tool), misses),
        })
        .collect();
    cases.push(Case {
        rule: "d76b02ef-fc95-4001-9297-01cb7412232f",
        what: "the parent's name and args by : wildcard",
        fires: python("# pty.spawn"),
        misses: python("# no pty"),
    });
    cases.push(Case {
        rule: "769a2e72-11bd-437b-9503-e51e7790d273",
        what: "startsWith(process.executable, process.command_line)",
        fires: setuid_run(dir, "65534"),
        misses: setuid_run(dir, "0"),
    });
    // The environment, captured for the variables `CAPTURED` names; the history one behind
    // 100 KiB of other variables, more than an unwatched exec's argv gets.
    let padding = format!("PAD={}", "p".repeat(100 << 10));
    cases.push(Case {
        rule: "a68da7d6-7eab-45bd-97c5-93b469c0706e",
        what: "process.env_vars like~, the variable behind 100 KiB of padding",
        fires: env_run(&format!("{padding} HISTFILE=/dev/null"), "/bin/true"),
        misses: env_run(&format!("{padding} HISTFILE=/tmp/history"), "/bin/true"),
    });
    // Run from a memfd by execveat (Python's `os.execve` on a descriptor): the environment
    // comes with the exec whatever names the executable.
    cases.push(Case {
        rule: "a68da7d6-7eab-45bd-97c5-93b469c0706e",
        what: "process.env_vars of an execveat of a memfd",
        fires: memfd_run("HISTFILE", "/dev/null"),
        misses: memfd_run("HISTFILE", "/tmp/history"),
    });
    let curl = renamed(dir, "curl");
    cases.push(Case {
        rule: "734239fe-eda8-48c0-bca8-9e3dafd81a88",
        what: "process.env_vars in an `or`, the name case-sensitive",
        fires: env_run("HTTPS_PROXY=socks5h://127.0.0.1:9", &curl),
        misses: env_run("https_proxy=socks5h://127.0.0.1:9", &curl),
    });
    cases.push(Case {
        rule: "d6241c90-99f2-44db-b50f-299b6ebd7ee9",
        what: "session and group leaders' names",
        fires: maintainer_script_run(None),
        misses: maintainer_script_run(Some(&renamed_shell(dir, "dpkg"))),
    });
    cases
}

/// The variables `process.env_vars` reports in this test (Defend's most: five).
const CAPTURED: &str = r#"["HISTFILE", "HISTSIZE", "HISTFILESIZE", "HISTCONTROL", "HTTPS_PROXY"]"#;

/// `program` run by `env` with `vars` added to its environment and a fresh marker argument.
fn env_run(vars: &str, program: &str) -> Run {
    let marker = format!("marker-{}", unique());
    Run {
        script: format!("env {vars} {program} {marker}"),
        marker,
    }
}

/// `/bin/true` copied into a memfd and run by `execveat(fd, "", …, AT_EMPTY_PATH)` with only
/// `name=value` in its environment and a fresh marker argument.
fn memfd_run(name: &str, value: &str) -> Run {
    let marker = format!("marker-{}", unique());
    Run {
        script: format!(
            "/usr/bin/python3 -c \"import os; fd = os.memfd_create('t'); \
             os.write(fd, open('/bin/true', 'rb').read()); \
             os.execve(fd, ['t', '{marker}'], {{'{name}': '{value}'}})\""
        ),
        marker,
    }
}

/// A copy of the system's shell in `dir` under `name` (a parent named like a tool).
fn renamed_shell(dir: &Path, name: &str) -> String {
    let sub = dir.join(unique());
    fs::create_dir(&sub).unwrap();
    let path = sub.join(name);
    fs::copy(fs::canonicalize("/bin/sh").unwrap(), &path).unwrap();
    path.display().to_string()
}

/// A package maintainer script run from `/var/lib/dpkg/info` (a tmpfs over it, in a private
/// mount namespace: dpkg's own scripts are never touched), by a shell or by `parent`.
fn maintainer_script_run(parent: Option<&str>) -> Run {
    let marker = format!("marker-{}", unique());
    let script = format!("/var/lib/dpkg/info/bc-{marker}.postinst");
    let run = match parent {
        Some(shell) => format!("{shell} -c '{script} {marker}; true'"),
        None => format!("{script} {marker}; true"),
    };
    // A session of its own: its leader (the shell) is known, whatever runs the tests.
    Run {
        script: format!(
            "setsid --wait unshare -m --propagation private sh -c \"mount -t tmpfs bc /var/lib/dpkg/info && \
             printf '#!/bin/sh\\n' > {script} && chmod 755 {script} && {run}\""
        ),
        marker,
    }
}

/// A set-user-ID-root copy of `true` run as `uid` from `sh -c` with its path as the whole
/// command line (the executable starts with the command line); the marker is that path.
fn setuid_run(dir: &Path, uid: &str) -> Run {
    let path = renamed(dir, "helper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(
        Path::new(&path).parent().unwrap(),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    Run {
        script: format!(
            "setpriv --reuid={uid} --regid={uid} --clear-groups -- sh -c '{path}; true'"
        ),
        marker: path,
    }
}

fn run(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(status.success(), "{script}: {status}");
}

#[test]
fn rules_of_the_library_fire_on_real_execs_and_not_on_near_misses() {
    let dir = tempdir("library").unwrap();
    let extra = format!(
        "[rules]\npath = \"{LIBRARY}\"\n[alert_budget]\nmax_alerts = 1000000\n\
         [sensor]\ncapture_env_vars = {CAPTURED}\n"
    );
    let mut agent = Agent::start(AGENT, "library", &extra).unwrap();
    let cases = cases(&dir);
    for case in &cases {
        let file = fs::read_dir(LIBRARY)
            .unwrap()
            .filter_map(|e| fs::read_to_string(e.unwrap().path()).ok())
            .any(|text| text.contains(&format!("rule_id = \"{}\"", case.rule)));
        assert!(file, "{} is not in the vendored library", case.rule);
        run(&case.fires.script);
        run(&case.misses.script);
    }
    // An environment beyond what a record holds (600 KiB of it before the variable): the exec
    // still alerts on its argv, and says its environment was captured in part.
    let (fwd, fwd_args) = (TOOL_CASES[0].2, TOOL_CASES[0].3);
    // Made by the shell: one argument holds at most 128 KiB.
    let padding: Vec<String> = (0..5).map(|i| format!("PAD{i}=$p")).collect();
    let big = env_run(
        &format!("{} HISTFILE=/dev/null", padding.join(" ")),
        &format!("{} {fwd_args}", renamed(&dir, fwd)),
    );
    run(&format!(
        "p=$(head -c {} /dev/zero | tr '\\0' p); {}",
        120 << 10,
        big.script
    ));
    agent.sync().unwrap();
    let fired = agent.alerts_of(TOOL_CASES[0].0, &big.marker);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(
        fired[0]["boot_copy"]["process"]["env_incomplete"], true,
        "{:#}",
        fired[0]["boot_copy"]
    );
    for case in &cases {
        let fired = agent.alerts_of(case.rule, &case.fires.marker);
        assert_eq!(fired.len(), 1, "{} ({}): {fired:#?}", case.rule, case.what);
        let missed = agent.alerts_of(case.rule, &case.misses.marker);
        assert!(
            missed.is_empty(),
            "{} ({}): {missed:#?}",
            case.rule,
            case.what
        );
    }
    let (status, ..) = agent.stop().unwrap();
    assert!(status.success());
    fs::remove_dir_all(&dir).unwrap();
}

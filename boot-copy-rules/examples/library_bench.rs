//! The cost of evaluating Elastic's Linux process-rule library (`tests/data/detection-rules`)
//! against a stream of ordinary exec events that match none of its rules, as every exec crosses
//! the agent: every rule's query in turn (no index) versus [`RuleSet::evaluate`] (the index on
//! constant preconditions). Prints ns/event for both.
//!
//! `cargo run --release -p boot-copy-rules --example library_bench`
use boot_copy_rules::{Document, Exceptions, RuleSet, load_ruleset};
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

/// Everyday execs of a build machine and a desktop session: (parent, executable, args).
const EXECS: &[(&str, &str, &[&str])] = &[
    ("bash", "/usr/bin/ls", &["ls", "-la", "/home/user/src"]),
    ("bash", "/usr/bin/cat", &["cat", "README.md"]),
    ("bash", "/usr/bin/grep", &["grep", "-rn", "TODO", "src"]),
    (
        "make",
        "/usr/bin/cc",
        &["cc", "-O2", "-c", "main.c", "-o", "main.o"],
    ),
    (
        "cc",
        "/usr/lib/gcc/x86_64-linux-gnu/13/cc1",
        &["cc1", "-quiet", "main.c"],
    ),
    ("cc", "/usr/bin/ld", &["ld", "-o", "app", "main.o"]),
    (
        "cargo",
        "/root/.cargo/bin/rustc",
        &["rustc", "--crate-name", "app", "src/main.rs"],
    ),
    ("bash", "/usr/bin/git", &["git", "status", "--short"]),
    (
        "git",
        "/usr/lib/git-core/git-remote-https",
        &["git-remote-https", "origin"],
    ),
    (
        "bash",
        "/usr/bin/sed",
        &["sed", "-n", "1,20p", "Cargo.toml"],
    ),
    ("bash", "/usr/bin/awk", &["awk", "{print $1}", "data.txt"]),
    (
        "systemd",
        "/usr/lib/systemd/systemd-tmpfiles",
        &["systemd-tmpfiles", "--clean"],
    ),
    ("sshd", "/usr/bin/bash", &["bash"]),
    ("bash", "/usr/bin/vim", &["vim", "notes.txt"]),
    (
        "bash",
        "/usr/bin/python3",
        &["python3", "manage.py", "test"],
    ),
    (
        "cron",
        "/usr/bin/run-parts",
        &["run-parts", "/etc/cron.hourly"],
    ),
    ("bash", "/usr/bin/date", &["date", "-u"]),
    ("bash", "/usr/bin/sort", &["sort", "-u", "names.txt"]),
    ("bash", "/usr/bin/head", &["head", "-n", "5", "log.txt"]),
    ("bash", "/usr/bin/find", &["find", ".", "-name", "*.rs"]),
];

fn exec_event(i: usize, parent: &str, exe: &str, args: &[&str]) -> Document {
    let name = exe.rsplit('/').next().unwrap();
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--seq={i}"));
    Document::from_json(&json!({
        "@timestamp": "2026-12-01T22:00:00.000Z",
        "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event",
                  "dataset": "endpoint.events.process", "module": "endpoint"},
        "host": {"os": {"type": "linux", "name": "Linux", "platform": "ubuntu"}, "name": "build1"},
        "process": {
            "pid": 4000 + i, "name": name, "executable": exe,
            "args": args, "args_count": args.len(), "command_line": args.join(" "),
            "working_directory": "/home/user/src",
            "user": {"id": "1000", "name": "user"}, "group": {"id": "1000"},
            "parent": {"pid": 3000 + i, "name": parent, "executable": format!("/usr/bin/{parent}"),
                       "args": [parent], "command_line": parent, "user": {"id": "1000"}},
        },
        "user": {"id": "1000", "name": "user"},
    }))
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/detection-rules");
    let set: RuleSet = load_ruleset(Some(&dir), &Exceptions::default())
        .unwrap_or_else(|p| panic!("{} problems loading {}", p.len(), dir.display()));
    let events: Vec<Document> = (0..2000)
        .map(|i| {
            let (parent, exe, args) = EXECS[i % EXECS.len()];
            exec_event(i, parent, exe, args)
        })
        .collect();
    for e in &events {
        let hits: Vec<&str> = set.evaluate(e).map(|r| r.name.as_str()).collect();
        assert!(hits.is_empty(), "the stream must match no rule: {hits:?}");
    }
    let rounds = 50;
    let scan = time(rounds, &events, |doc| {
        set.rules().iter().filter(|r| r.query.matches(doc)).count()
    });
    let indexed = time(rounds, &events, |doc| set.evaluate(doc).count());
    println!(
        "{} rules ({} with an index key other than event.category), {} non-matching exec events x {rounds}:",
        set.rules().len(),
        set.keyed_rules(),
        events.len()
    );
    println!("  every rule in turn: {scan:8.0} ns/event");
    println!(
        "  indexed RuleSet:    {indexed:8.0} ns/event ({:.1}x)",
        scan / indexed
    );
}

fn time(rounds: usize, events: &[Document], f: impl Fn(&Document) -> usize) -> f64 {
    let started = Instant::now();
    for _ in 0..rounds {
        for e in events {
            black_box(f(black_box(e)));
        }
    }
    started.elapsed().as_nanos() as f64 / (rounds * events.len()) as f64
}

//! Elastic's Linux `process where` rule library (`tests/data/detection-rules/`, see its README):
//! every file loads through the API the agent's `check` uses, and the rules read only the fields
//! [`Rule::fields`] names.
use boot_copy_rules::{Exceptions, load_ruleset};
use std::path::{Path, PathBuf};

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/detection-rules")
}

/// Every vendored file loads: what `check --rules DIR` does, exit 0.
#[test]
fn every_vendored_rule_loads() {
    let dir = library();
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(files, 167, "the README names 167 vendored rule files");
    let set = match load_ruleset(Some(&dir), &Exceptions::default()) {
        Ok(set) => set,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("{} problems:\n{}", list.len(), list.join("\n"));
        }
    };
    assert_eq!(set.rules().len(), files);
}

/// `Rule::fields` names what each query reads, e.g. both fields of a field-argument function.
#[test]
fn rules_name_the_fields_they_read() {
    let set = load_ruleset(Some(&library()), &Exceptions::default()).unwrap();
    let rule = set
        .rules()
        .iter()
        .find(|r| {
            r.source
                .ends_with("privilege_escalation_potential_suid_lpe_via_process_args.toml")
        })
        .unwrap();
    let fields = rule.fields();
    for f in [
        "event.category",
        "process.executable",
        "process.command_line",
        "process.name",
        "process.user.id",
    ] {
        assert!(fields.contains(f), "{f} not in {fields:?}");
    }
    for rule in set.rules() {
        assert!(rule.fields().contains("event.category"), "{}", rule.name);
    }
}

/// The index never changes a verdict: the indexed rule set and every rule's query agree on
/// events built from the library's own process names, parents and arguments.
#[test]
fn the_index_agrees_with_evaluating_every_rule() {
    use boot_copy_rules::Document;
    let set = load_ruleset(Some(&library()), &Exceptions::default()).unwrap();
    let names = [
        "bash", "cpio", "curl", "python3", "TEE", "sh", "nc", "shred", "php8.1", "ls",
    ];
    let args = [
        "-c",
        "newc",
        "-H",
        "/etc/shadow",
        "-u",
        ".hidden",
        "--remove",
        "-S",
    ];
    let mut matched = 0;
    let mut events = 0;
    for (i, name) in names.iter().enumerate() {
        for parent in names {
            for arg in args {
                let doc = Document::from_json(&serde_json::json!({
                    "event": {"category": ["process"], "type": ["start"], "action": "exec"},
                    "host": {"os": {"type": "linux"}},
                    "process": {"name": name, "args": [name, arg, "x"], "args_count": 3,
                                "executable": format!("/usr/bin/{name}"),
                                "command_line": format!("{name} {arg} x"),
                                "parent": {"name": parent, "executable": format!("/tmp/{parent}")},
                                "pid": i},
                }));
                let indexed: Vec<usize> = set.matching(&doc).map(|(i, _)| i).collect();
                let scanned: Vec<usize> = (0..set.rules().len())
                    .filter(|&i| set.rules()[i].query.matches(&doc))
                    .collect();
                assert_eq!(indexed, scanned, "{doc:?}");
                matched += indexed.len();
                events += 1;
            }
        }
    }
    assert!(
        matched > 20,
        "only {matched} matches in {events} events: the test proves little"
    );
}

/// Past 512 rules the candidate set moves to the heap; the verdicts stay those of a scan.
#[test]
fn large_rule_sets_index_the_same() {
    use boot_copy_rules::{Document, RuleSet};
    let one = load_ruleset(Some(&library()), &Exceptions::default()).unwrap();
    let rules: Vec<_> = (0..4).flat_map(|_| one.rules().iter().cloned()).collect();
    let set = RuleSet::from_rules(rules);
    assert!(set.rules().len() > 512);
    let doc = Document::from_json(&serde_json::json!({
        "event": {"category": ["process"], "type": ["start"], "action": "exec"},
        "host": {"os": {"type": "linux"}},
        "process": {"name": "shred", "args": ["shred", "-u", "/tmp/x"], "args_count": 3,
                    "executable": "/usr/bin/shred", "command_line": "shred -u /tmp/x",
                    "parent": {"name": "bash", "executable": "/usr/bin/bash"}},
    }));
    let indexed: Vec<usize> = set.matching(&doc).map(|(i, _)| i).collect();
    let scanned: Vec<usize> = (0..set.rules().len())
        .filter(|&i| set.rules()[i].query.matches(&doc))
        .collect();
    assert_eq!(indexed, scanned);
    assert_eq!(indexed.len() % 4, 0);
    assert!(!indexed.is_empty(), "shred -u matches the shred rule");
}

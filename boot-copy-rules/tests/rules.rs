//! The rule engine against the published Boot File Copy rule (version 2), a newer-style rule
//! file, recorded Defend-shaped events and the error messages users see.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use boot_copy_rules::{
    BUNDLED_BOOT_FILE_COPY, Document, Exceptions, Prefilter, RuleSet, bundled, check, load_rules,
    load_ruleset,
};
use serde_json::{Value, json};

/// Counts allocations made on a thread while it has counting switched on.
mod alloc_counter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Counting;
    pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
    thread_local!(pub static ON: Cell<bool> = const { Cell::new(false) });

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if ON.with(Cell::get) {
                ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            }
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// Allocations made by `f` on this thread.
    pub fn count(f: impl FnOnce()) -> usize {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        ON.with(|on| on.set(true));
        f();
        ON.with(|on| on.set(false));
        ALLOCATIONS.load(Ordering::Relaxed) - before
    }
}

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

/// A Linux exec event filled the way Elastic Defend fills it: `process.name` is the basename of
/// the (resolved) executable, `args[0]` is argv[0] as invoked, `command_line` is the args joined
/// by spaces, and the parent is described by its image at the child's exec.
#[derive(Clone)]
struct Exec {
    executable: &'static str,
    args: Vec<&'static str>,
    cwd: &'static str,
    parent_executable: Option<&'static str>,
    parent_name: Option<&'static str>,
    parent_args: Option<Vec<&'static str>>,
}

fn exec(executable: &'static str, args: &[&'static str]) -> Exec {
    Exec {
        executable,
        args: args.to_vec(),
        cwd: "/root",
        parent_executable: Some("/usr/bin/bash"),
        parent_name: Some("bash"),
        parent_args: Some(vec!["-bash"]),
    }
}

impl Exec {
    fn parent(
        mut self,
        executable: Option<&'static str>,
        name: Option<&'static str>,
        args: Option<&[&'static str]>,
    ) -> Self {
        self.parent_executable = executable;
        self.parent_name = name;
        self.parent_args = args.map(<[_]>::to_vec);
        self
    }

    fn cwd(mut self, cwd: &'static str) -> Self {
        self.cwd = cwd;
        self
    }

    fn json(&self) -> Value {
        let basename = |p: &str| p.rsplit('/').next().unwrap().to_owned();
        let mut parent = json!({"pid": 1000, "entity_id": "parent"});
        if let Some(e) = self.parent_executable {
            parent["executable"] = json!(e);
        }
        if let Some(n) = self.parent_name {
            parent["name"] = json!(n);
        }
        if let Some(a) = &self.parent_args {
            parent["args"] = json!(a);
            parent["args_count"] = json!(a.len());
            parent["command_line"] = json!(a.join(" "));
        }
        json!({
            "@timestamp": "2025-02-01T10:00:00.000Z",
            "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
            "host": {"name": "h", "os": {"type": "linux"}},
            "user": {"name": "root", "id": "0"},
            "process": {
                "pid": 1001,
                "entity_id": "child",
                "executable": self.executable,
                "name": basename(self.executable),
                "args": self.args,
                "args_count": self.args.len(),
                "command_line": self.args.join(" "),
                "working_directory": self.cwd,
                "parent": parent,
            },
        })
    }

    fn doc(&self) -> Document {
        Document::from_json(&self.json())
    }
}

fn v2() -> RuleSet {
    RuleSet::from_rules(bundled())
}

fn alerts(rules: &RuleSet, e: &Exec) -> bool {
    rules.evaluate(&e.doc()).next().is_some()
}

/// Every row of docs/SEMANTICS.md's "What version 2 decides on edge cases".
#[test]
fn version_2_edge_cases() {
    let cp = "/usr/bin/cp";
    let mv = "/usr/bin/mv";
    let sh = |cmd: &'static str| vec!["sh", "-c", cmd];
    let rows: Vec<(&str, Exec, bool)> = vec![
        // `cp x /boot/y`, `mv x /BOOT/y`, `cp -t /boot/ x` (separate arg): yes
        ("cp x /boot/y", exec(cp, &["cp", "x", "/boot/y"]), true),
        ("mv x /BOOT/y", exec(mv, &["mv", "x", "/BOOT/y"]), true),
        (
            "cp -t /boot/ x",
            exec(cp, &["cp", "-t", "/boot/", "x"]),
            true,
        ),
        (
            "cp invoked by full path",
            exec(cp, &["/bin/cp", "x", "/boot/y"]),
            true,
        ),
        // no trailing slash, `//boot/x`, `/./boot/x`, `boot/x`, cwd /boot + ./x: no
        ("cp x /boot", exec(cp, &["cp", "x", "/boot"]), false),
        ("cp x //boot/x", exec(cp, &["cp", "x", "//boot/x"]), false),
        ("cp x /./boot/x", exec(cp, &["cp", "x", "/./boot/x"]), false),
        (
            "cp x boot/x",
            exec(cp, &["cp", "x", "boot/x"]).cwd("/"),
            false,
        ),
        (
            "cwd /boot, cp y ./x",
            exec(cp, &["cp", "y", "./x"]).cwd("/boot"),
            false,
        ),
        // joined option forms: no
        (
            "--target-directory=/boot/",
            exec(cp, &["cp", "--target-directory=/boot/", "x"]),
            false,
        ),
        ("-t/boot/ joined", exec(cp, &["cp", "-t/boot/", "x"]), false),
        // `CP x /boot/y`, busybox or coreutils multi-call applets: no
        (
            "CP x /boot/y",
            exec("/usr/local/bin/CP", &["CP", "x", "/boot/y"]),
            false,
        ),
        (
            "busybox cp",
            exec("/usr/bin/busybox", &["cp", "x", "/boot/y"]),
            false,
        ),
        (
            "coreutils multi-call cp",
            exec("/usr/bin/coreutils", &["cp", "x", "/boot/y"]),
            false,
        ),
        // parent executable unknown: no
        (
            "parent executable unknown",
            exec(cp, &["cp", "x", "/boot/y"]).parent(None, Some("bash"), Some(&["bash"])),
            false,
        ),
        // parent name or args unknown: yes
        (
            "parent name unknown",
            exec(cp, &["cp", "x", "/boot/y"]).parent(Some("/usr/bin/bash"), None, Some(&["bash"])),
            true,
        ),
        (
            "parent args unknown",
            exec(cp, &["cp", "x", "/boot/y"]).parent(Some("/usr/bin/bash"), Some("bash"), None),
            true,
        ),
        (
            "parent name and args unknown",
            exec(cp, &["cp", "x", "/boot/y"]).parent(Some("/usr/bin/bash"), None, None),
            true,
        ),
        // parent is sudo: no; `sudo sh -c 'cp x /boot/y'`: yes (parent is sh)
        (
            "parent is sudo",
            exec(cp, &["cp", "x", "/boot/y"]).parent(
                Some("/usr/bin/sudo"),
                Some("sudo"),
                Some(&["sudo", "cp", "x", "/boot/y"]),
            ),
            false,
        ),
        (
            "sudo sh -c 'cp x /boot/y'",
            exec(cp, &["cp", "x", "/boot/y"]).parent(
                Some("/usr/bin/dash"),
                Some("dash"),
                Some(&sh("cp x /boot/y")),
            ),
            true,
        ),
        // parent is a `#!` script under /var/lib/dpkg/info/: no (excluded by executable)
        (
            "dpkg maintainer script parent",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/var/lib/dpkg/info/linux-image-6.1.0-28-amd64.postinst"),
                Some("linux-image-6.1.0-28-amd64.postinst"),
                Some(&[
                    "/bin/sh",
                    "/var/lib/dpkg/info/linux-image-6.1.0-28-amd64.postinst",
                    "configure",
                ]),
            ),
            false,
        ),
        // parent args exactly `/usr/bin/mkinitcpio` as one element: no; with ` -P` in the element: yes
        (
            "parent args element /usr/bin/mkinitcpio",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/usr/bin/mkinitcpio"),
                Some("mkinitcpio"),
                Some(&["/bin/bash", "/usr/bin/mkinitcpio", "-P"]),
            ),
            false,
        ),
        (
            "parent args element \"/usr/bin/mkinitcpio -P\"",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/usr/bin/bash"),
                Some("bash"),
                Some(&["/usr/bin/mkinitcpio -P"]),
            ),
            true,
        ),
        // parent args `/var/tmp/rpm-tmpX`: yes (`.` is literal)
        (
            "parent args /var/tmp/rpm-tmpX",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/var/tmp/rpm-tmpX"),
                Some("rpm-tmpX"),
                Some(&["/bin/sh", "/var/tmp/rpm-tmpX", "1"]),
            ),
            true,
        ),
        (
            "parent args /var/tmp/rpm-tmp.1234",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/var/tmp/rpm-tmp.1234"),
                Some("rpm-tmp.1234"),
                Some(&["/bin/sh", "/var/tmp/rpm-tmp.1234", "1"]),
            ),
            false,
        ),
        // The exclusion list holds full basenames, not the kernel's 15-byte comm.
        (
            "parent update-grub-gfxpayload",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/usr/sbin/update-grub-gfxpayload"),
                Some("update-grub-gfxpayload"),
                Some(&["/bin/sh", "/usr/sbin/update-grub-gfxpayload"]),
            ),
            false,
        ),
        (
            "parent name truncated like comm",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/usr/sbin/update-grub-gfxpayload"),
                Some("update-grub-gfx"),
                None,
            ),
            true,
        ),
        (
            "kernel-install plugin parent (case-insensitive)",
            exec(cp, &["cp", "a", "/boot/b"]).parent(
                Some("/usr/lib/kernel/install.d/50-DRACUT.install"),
                Some("50-DRACUT.install"),
                None,
            ),
            false,
        ),
    ];
    let rules = v2();
    let mut failures = Vec::new();
    for (name, e, want) in &rows {
        if alerts(&rules, e) != *want {
            failures.push(format!("{name}: expected alert={want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn version_2_event_envelope() {
    let rules = v2();
    let base = exec("/usr/bin/cp", &["cp", "x", "/boot/y"]).json();
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, bool)> = vec![
        ("as recorded", |_| {}, true),
        (
            "not linux",
            |e| e["host"]["os"]["type"] = json!("macos"),
            false,
        ),
        (
            "os type case differs",
            |e| e["host"]["os"]["type"] = json!("Linux"),
            false,
        ),
        (
            "event.type end",
            |e| e["event"]["type"] = json!(["end"]),
            false,
        ),
        (
            "event.type start among others",
            |e| e["event"]["type"] = json!(["change", "start"]),
            true,
        ),
        (
            "event.action fork",
            |e| e["event"]["action"] = json!("fork"),
            false,
        ),
        (
            "event.action exec_event",
            |e| e["event"]["action"] = json!("exec_event"),
            true,
        ),
        (
            "event.action case differs",
            |e| e["event"]["action"] = json!("Exec"),
            false,
        ),
        (
            "not a process event",
            |e| e["event"]["category"] = json!(["file"]),
            false,
        ),
        (
            "no event.category",
            |e| drop(e["event"].as_object_mut().unwrap().remove("category")),
            false,
        ),
        ("args empty", |e| e["process"]["args"] = json!([]), false),
        (
            "parent executable null",
            |e| e["process"]["parent"]["executable"] = Value::Null,
            false,
        ),
        (
            "parent executable empty string",
            |e| e["process"]["parent"]["executable"] = json!(""),
            true,
        ),
        (
            "long argument matched in full",
            |e| e["process"]["args"][2] = json!(format!("/boot/{}", "a".repeat(3000))),
            true,
        ),
    ];
    for (name, edit, want) in cases {
        let mut e = base.clone();
        edit(&mut e);
        assert_eq!(
            rules.evaluate(&Document::from_json(&e)).count() == 1,
            want,
            "{name}"
        );
    }
}

#[test]
fn exceptions_suppress_matching_events_only() {
    let rule_id = bundled()[0].id.clone();
    let config = format!(
        r#"
[[exceptions."{rule_id}"]]
name = "our kernel installer"
entries = [
  {{ field = "process.parent.executable", operator = "is", value = "/opt/kinst/bin/install" }},
  {{ field = "process.args", operator = "matches", value = "/boot/vmlinuz-*" }},
]
"#
    );
    #[derive(serde::Deserialize)]
    struct Cfg {
        exceptions: Exceptions,
    }
    let cfg: Cfg = toml::from_str(&config).unwrap();
    let rules = RuleSet::new(bundled(), &cfg.exceptions).unwrap();
    let installer = |args: &[&'static str]| {
        exec("/usr/bin/cp", args).parent(
            Some("/opt/kinst/bin/install"),
            Some("install"),
            Some(&["/opt/kinst/bin/install"]),
        )
    };
    assert!(!alerts(
        &rules,
        &installer(&["cp", "k", "/boot/vmlinuz-6.1"])
    ));
    // Not every entry holds: alerted.
    assert!(alerts(
        &rules,
        &installer(&["cp", "k", "/boot/grub/grub.cfg"])
    ));
    // `matches` is case-sensitive.
    assert!(alerts(
        &rules,
        &installer(&["cp", "k", "/BOOT/vmlinuz-6.1"])
    ));
    assert!(alerts(
        &rules,
        &exec("/usr/bin/cp", &["cp", "k", "/boot/vmlinuz-6.1"])
    ));
}

#[test]
fn newer_style_rule_loads_and_evaluates() {
    let rules = load_rules(&data("newer_style.toml")).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(
        rule.version, 6,
        "version comes from [metadata] when [rule] has none"
    );
    assert_eq!(rule.severity_score(), 47);
    let fields = rule.query.fields();
    for f in [
        "process.command_line",
        "process.working_directory",
        "process.parent.command_line",
        "process.group_leader.name",
    ] {
        assert!(fields.contains(f), "{f}");
    }
    let rules = RuleSet::from_rules(rules);
    assert_eq!(
        rules.prefilter(&[]),
        Prefilter::Names(BTreeSet::from(["cp".to_owned(), "mv".to_owned()]))
    );
    let cp = "/usr/bin/cp";
    let mut leader = exec(cp, &["cp", "a", "/boot/b"]).json();
    leader["process"]["group_leader"] = json!({"name": "ansible-playbook"});
    let mut leader_bash = leader.clone();
    leader_bash["process"]["parent"]["name"] = json!("bash");
    leader["process"]["parent"]["name"] = json!("python3");
    let rows: Vec<(&str, Value, bool)> = vec![
        ("plain copy", exec(cp, &["cp", "a", "/boot/b"]).json(), true),
        (
            "== on array: mkinitcpio element",
            exec(cp, &["cp", "a", "/boot/b"])
                .parent(
                    Some("/usr/bin/mkinitcpio"),
                    Some("mkinitcpio"),
                    Some(&["/bin/bash", "/usr/bin/mkinitcpio"]),
                )
                .json(),
            false,
        ),
        (
            "== on array is exact",
            exec(cp, &["cp", "a", "/boot/b"])
                .parent(
                    Some("/usr/bin/bash"),
                    Some("bash"),
                    Some(&["/usr/bin/mkinitcpio -P"]),
                )
                .json(),
            true,
        ),
        (
            "command_line == exact",
            exec(
                cp,
                &[
                    "cp",
                    "/usr/share/grub/unicode.pf2",
                    "/boot/grub/fonts/unicode.pf2",
                ],
            )
            .json(),
            false,
        ),
        (
            "command_line == is case-sensitive",
            exec(
                cp,
                &[
                    "cp",
                    "/usr/share/grub/unicode.pf2",
                    "/boot/grub/fonts/UNICODE.pf2",
                ],
            )
            .json(),
            true,
        ),
        (
            "working_directory in",
            exec(cp, &["cp", "a", "/boot/b"]).cwd("/srv/imaging").json(),
            false,
        ),
        (
            "working_directory elsewhere",
            exec(cp, &["cp", "a", "/boot/b"])
                .cwd("/srv/imaging2")
                .json(),
            true,
        ),
        (
            "optional parent command_line, raw-string pattern",
            exec(cp, &["cp", "a", "/boot/b"])
                .parent(
                    Some("/usr/sbin/vendor-fw-update"),
                    Some("vendor-fw-update"),
                    Some(&["/bin/sh", "/usr/sbin/vendor-fw-update"]),
                )
                .json(),
            false,
        ),
        (
            "nested group: mv of dpkg-tmp under dpkg",
            exec("/usr/bin/mv", &["mv", "/boot/x.dpkg-tmp", "/boot/x"])
                .parent(Some("/usr/bin/dpkg"), Some("dpkg"), None)
                .json(),
            false,
        ),
        (
            "nested group: mv of dpkg-tmp, parent args --configure",
            exec("/usr/bin/mv", &["mv", "/boot/x.dpkg-tmp", "/boot/x"])
                .parent(
                    Some("/usr/bin/perl"),
                    Some("perl"),
                    Some(&["/usr/bin/perl", "--configure"]),
                )
                .json(),
            false,
        ),
        (
            "nested group: cp of dpkg-tmp under dpkg",
            exec(cp, &["cp", "/boot/x.dpkg-tmp", "/boot/x"])
                .parent(Some("/usr/bin/dpkg"), Some("dpkg"), None)
                .json(),
            true,
        ),
        ("optional group_leader, parent not bash", leader, false),
        ("optional group_leader, parent bash", leader_bash, true),
    ];
    for (name, event, want) in rows {
        assert_eq!(
            rules.evaluate(&Document::from_json(&event)).count() == 1,
            want,
            "{name}"
        );
    }
}

/// The recorded Defend events match the rule where their expected alerts
/// (`tests/data/defend_boot_copy.alerts.ndjson`, checked by the agent's replay) say.
#[test]
fn recorded_defend_events_match_where_expected() {
    let text = std::fs::read_to_string(data("defend_boot_copy.ndjson")).unwrap();
    let rules = v2();
    let entity = |e: &Value| {
        e.pointer("/process/entity_id")
            .or_else(|| e.get("process.entity_id"))
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 15);
    let matched: Vec<String> = events
        .iter()
        .filter(|e| rules.evaluate(&Document::from_json(e)).count() == 1)
        .map(entity)
        .collect();
    assert_eq!(
        matched,
        [
            "ent-001", "ent-002", "ent-003", "ent-009", "ent-011", "ent-012"
        ]
    );
    let expected: Vec<String> = std::fs::read_to_string(data("defend_boot_copy.alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| entity(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(matched, expected);
}

/// docs/SEMANTICS.md: a backslash in a `like`/`:` pattern is an ordinary character, after the
/// EQL string's own escapes (`"*\\x*"` is the pattern `*\x*`).
#[test]
fn backslash_in_a_pattern_is_an_ordinary_character() {
    let file = r#"
[rule]
rule_id = "b"
name = "Backslash"
description = "d"
severity = "low"
risk_score = 1
type = "eql"
language = "eql"
query = '''
process where process.command_line : "*\\x*"
'''
"#;
    let rule = boot_copy_rules::parse_rule(file, Path::new("b.toml")).unwrap();
    let rules = RuleSet::from_rules(vec![rule]);
    let verdict = |line: &str| {
        let event = json!({"event": {"category": ["process"]}, "process": {"command_line": line}});
        rules.evaluate(&Document::from_json(&event)).count() == 1
    };
    assert!(!verdict("axb"));
    assert!(verdict("a\\xb"));
    assert!(verdict("A\\XB"), "`:` folds ASCII case");
    assert!(!verdict("a\\\\b"));
}

#[test]
fn rejected_constructs_are_named_with_line_and_column() {
    let rows = [
        (
            "sequence by process.entity_id [process where true] [process where true]",
            "1:1: `sequence` queries are not supported",
        ),
        (
            "process where true | head 1",
            "1:20: pipes `| head` are not supported",
        ),
        ("any where true", "1:1: `any where` is not supported"),
        (
            "network where destination.port == 22",
            "1:1: event category `network` is not supported",
        ),
        (
            "process where\n  process.name == \"cp\" and\n  cidrMatch(source.ip, \"10.0.0.0/8\")",
            "3:3: function `cidrMatch` is not supported",
        ),
        (
            "process where process.name regex~ \"c.~x\"",
            "1:35: invalid `regex~` pattern: Lucene's complement operator `~`",
        ),
        (
            "process where nosuch(process.name)",
            "1:15: unknown function `nosuch`",
        ),
        (
            "process where process.args[0] == \"cp\"",
            "1:27: array indexing (`process.args[...]`) is not supported",
        ),
        (
            "process where process.pid + 1 == 2",
            "1:27: arithmetic (`+`) is not supported",
        ),
        (
            "process where process.name == 'cp'",
            "1:31: use double quotes",
        ),
    ];
    for (src, want) in rows {
        let e = boot_copy_rules::compile(src).unwrap_err().to_string();
        assert!(e.starts_with(want), "{src}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn rules_directory_reports_every_problem_with_file_and_position() {
    let dir = std::env::temp_dir().join(format!("boot-copy-rules-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a_good.toml"), BUNDLED_BOOT_FILE_COPY).unwrap();
    std::fs::write(
        dir.join("b_kuery.toml"),
        "[rule]\nrule_id = \"k\"\nname = \"K\"\ndescription = \"d\"\nseverity = \"low\"\nrisk_score = 1\ntype = \"query\"\nlanguage = \"kuery\"\nquery = \"process.name: cp\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("c_seq.toml"),
        "[rule]\nrule_id = \"s\"\nname = \"S\"\ndescription = \"d\"\nseverity = \"low\"\nrisk_score = 1\ntype = \"eql\"\nlanguage = \"eql\"\nquery = '''\nprocess where\n  process.name == \"cp\" | tail 3\n'''\n",
    )
    .unwrap();
    std::fs::write(dir.join("d_broken.toml"), "[rule\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let errors = load_rules(&dir).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(
        text[0].contains("b_kuery.toml: refused: only EQL rules"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("c_seq.toml:11:24: query: pipes `| tail` are not supported"),
        "{}",
        text[1]
    );
    assert!(text[2].contains("d_broken.toml:1:"), "{}", text[2]);

    let problems = check(Some(&dir), &Exceptions::default());
    assert_eq!(problems.len(), 3);

    std::fs::remove_file(dir.join("b_kuery.toml")).unwrap();
    std::fs::remove_file(dir.join("c_seq.toml")).unwrap();
    std::fs::remove_file(dir.join("d_broken.toml")).unwrap();
    std::fs::copy(data("newer_style.toml"), dir.join("e_newer.toml")).unwrap();
    let rules = load_ruleset(Some(&dir), &Exceptions::default()).unwrap();
    let sources: Vec<PathBuf> = rules.rules().iter().map(|r| r.source.clone()).collect();
    assert_eq!(sources, [dir.join("a_good.toml"), dir.join("e_newer.toml")]);
    assert_eq!(
        rules.prefilter(&[]).to_string(),
        "process.name in (\"cp\", \"mv\")"
    );

    // The same rule twice is a problem.
    std::fs::write(dir.join("f_dup.toml"), BUNDLED_BOOT_FILE_COPY).unwrap();
    let problems = check(Some(&dir), &Exceptions::default());
    assert!(
        problems[0].message.contains("already defined by"),
        "{problems:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluation_allocates_nothing() {
    let rule_id = bundled()[0].id.clone();
    let config = format!(
        r#"
[[exceptions."{rule_id}"]]
entries = [
  {{ field = "process.parent.executable", operator = "matches", value = "/opt/*" }},
  {{ field = "process.args", operator = "is_not_one_of", values = ["a", "b"] }},
]
"#
    );
    #[derive(serde::Deserialize)]
    struct Cfg {
        exceptions: Exceptions,
    }
    let cfg: Cfg = toml::from_str(&config).unwrap();
    let mut all = bundled();
    all.extend(load_rules(&data("newer_style.toml")).unwrap());
    let rules = RuleSet::new(all, &cfg.exceptions).unwrap();
    let text = std::fs::read_to_string(data("defend_boot_copy.ndjson")).unwrap();
    let docs: Vec<Document> = text
        .lines()
        .map(|l| Document::from_json(&serde_json::from_str(l).unwrap()))
        .collect();
    let mut alerts = 0;
    let allocations = alloc_counter::count(|| {
        for doc in &docs {
            alerts += rules.evaluate(doc).count();
        }
    });
    assert!(alerts > 0);
    // The counter itself works.
    assert!(alloc_counter::count(|| drop(std::hint::black_box(vec![1u8; 8]))) > 0);
    assert_eq!(allocations, 0, "evaluating {} events allocated", docs.len());
}

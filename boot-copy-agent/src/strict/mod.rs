//! The strict companion rule's view of an exec: which copy tool it runs (by name, as a
//! busybox/coreutils applet, or by file identity), which paths it writes (options parsed,
//! operands resolved against the working directory and normalized), whether any lies in
//! `/boot` (lexically, through a symlink, or on `/boot`'s filesystem), and the evasive forms used.
//!
//! The result is added to the exec's event as `boot_copy.strict.*` fields, which the bundled rule
//! `rules/boot-file-copy-strict.toml` reads:
//!
//! | field | meaning |
//! |---|---|
//! | `boot_copy.strict.tool` | `cp`, `mv`, `install` or `rsync` |
//! | `boot_copy.strict.identified_by` | `name`, `applet` (busybox/coreutils) or `file` (same inode or content as the system's cp/mv) |
//! | `boot_copy.strict.targets` | destinations, absolute and normalized (for `mv`, sources too: moving a file away modifies its directory) |
//! | `boot_copy.strict.boot_paths` | those of them that lie in `/boot` (canonical when reached through a symlink or another mount) |
//! | `boot_copy.strict.into_boot` | whether `boot_paths` is non-empty |
//! | `boot_copy.strict.evasion` | forms that hide the write from the published rule (absent when none) |
//! | `boot_copy.strict.program` | for a copy tool run by the dynamic loader (`loader`): the program it runs |
//! | `boot_copy.strict.args_missing` | when argv did not reach the agent whole (`args_incomplete`): bytes and arguments captured, the true counts, and why |
//!
//! Only execs of a recognised copy tool (directly, or as the program of a loader exec) get these
//! fields. An exec whose argv is incomplete may write into `/boot` from the part that is missing
//! (GNU getopt permutes, so `-t /boot` can be anywhere): `into_boot` is then true.

pub mod identity;
pub mod loader;
pub mod mounts;
pub mod options;
pub mod paths;

use std::{borrow::Cow, path::Path};

use boot_copy_common::exec_flags;
use serde::Serialize;
use serde_json::Value;

use crate::decode::Exec;
use boot_copy_rules::{AnalysisGate, Prefilter, Rule, Value as DocValue};

/// The rule id of the bundled strict rule.
pub const RULE_ID: &str = "995bf1fa-2bb9-4ac5-b686-73a539902f99";

/// What the analysis found for one exec of a copy tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub tool: &'static str,
    pub how: identity::How,
    pub targets: Vec<String>,
    pub boot_paths: Vec<String>,
    pub evasion: Vec<&'static str>,
    /// The program, when a loader runs the tool.
    pub program: Option<String>,
    /// What is missing of argv, when it is incomplete.
    pub args_missing: Option<ArgsMissing>,
    /// A target reached the host's `/boot` by device and inode (a symlink, another mount): that
    /// decides `boot_copy.boot.host_filesystem`, whatever the process's own `/boot` is.
    pub reaches_host_boot: bool,
}

/// What of an exec's argv the agent has, of what it ran with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgsMissing {
    pub captured_args: u32,
    pub captured_bytes: u64,
    /// Why: `spill_full` (the kernel's spill map had no room), `chunk_missing` (a spilled chunk
    /// was gone when read), `read_failed` (reading the process's memory faulted), `capture_limit`
    /// (the exec was not watched, so captured to the limit for other execs).
    pub cause: &'static str,
    pub missing_bytes: u64,
    pub total_args: u32,
    pub total_bytes: u64,
}

impl ArgsMissing {
    /// What is missing of `exec`'s argv (`None`: nothing).
    pub fn of(exec: &Exec) -> Option<ArgsMissing> {
        let cut = exec_flags::ARGS_TRUNCATED | exec_flags::ARGS_READ_FAILED;
        if !exec.has(cut) {
            return None;
        }
        let cause = if exec.has(exec_flags::SPILL_FULL) {
            "spill_full"
        } else if exec.has(exec_flags::CHUNK_MISSING) {
            "chunk_missing"
        } else if exec.has(exec_flags::ARGS_READ_FAILED) {
            "read_failed"
        } else {
            "capture_limit"
        };
        let bytes: u64 = exec.args.iter().map(|a| a.len() as u64 + 1).sum();
        let captured = bytes - u64::from(exec.has(exec_flags::LAST_ARG_CUT));
        let total = u64::from(exec.args_size).max(captured);
        Some(ArgsMissing {
            captured_args: exec.args.len() as u32,
            captured_bytes: captured,
            cause,
            missing_bytes: total - captured,
            total_args: exec.args_count,
            total_bytes: total,
        })
    }
}

impl Analysis {
    /// The `boot_copy.strict` object.
    pub fn fields(&self) -> Value {
        serde_json::to_value(self.fields_view()).expect("strict fields serialize")
    }

    /// The `boot_copy.strict` fields, borrowed.
    pub fn fields_view(&self) -> StrictFields<'_> {
        StrictFields {
            boot_paths: &self.boot_paths,
            evasion: &self.evasion,
            identified_by: match self.how {
                identity::How::Name => "name",
                identity::How::Applet => "applet",
                identity::How::File => "file",
            },
            into_boot: !self.boot_paths.is_empty() || self.args_missing.is_some(),
            targets: &self.targets,
            tool: self.tool,
            program: self.program.as_deref(),
            args_missing: self.args_missing.as_ref(),
        }
    }
}

/// `boot_copy.strict.*` (fields in JSON key order; optional ones absent when empty).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StrictFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_missing: Option<&'a ArgsMissing>,
    pub boot_paths: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub evasion: &'a [&'static str],
    pub identified_by: &'static str,
    pub into_boot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<&'a str>,
    pub targets: &'a [String],
    pub tool: &'static str,
}

impl StrictFields<'_> {
    /// Hands the fields, by dotted name, to `put` (which makes a value only if it wants it).
    pub fn fill(&self, put: &mut dyn FnMut(&'static str, &mut dyn FnMut() -> DocValue)) {
        let texts = |v: &[String]| DocValue::from(v.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(m) = self.args_missing {
            let int = |n: u64| DocValue::Int(n as i64);
            put("boot_copy.strict.args_missing.captured_args", &mut || {
                int(m.captured_args.into())
            });
            put("boot_copy.strict.args_missing.captured_bytes", &mut || {
                int(m.captured_bytes)
            });
            put("boot_copy.strict.args_missing.cause", &mut || {
                m.cause.into()
            });
            put("boot_copy.strict.args_missing.missing_bytes", &mut || {
                int(m.missing_bytes)
            });
            put("boot_copy.strict.args_missing.total_args", &mut || {
                int(m.total_args.into())
            });
            put("boot_copy.strict.args_missing.total_bytes", &mut || {
                int(m.total_bytes)
            });
        }
        put("boot_copy.strict.boot_paths", &mut || {
            texts(self.boot_paths)
        });
        if !self.evasion.is_empty() {
            put("boot_copy.strict.evasion", &mut || {
                self.evasion.to_vec().into()
            });
        }
        put("boot_copy.strict.identified_by", &mut || {
            self.identified_by.into()
        });
        put("boot_copy.strict.into_boot", &mut || self.into_boot.into());
        if let Some(program) = self.program {
            put("boot_copy.strict.program", &mut || program.into());
        }
        put("boot_copy.strict.targets", &mut || texts(self.targets));
        put("boot_copy.strict.tool", &mut || self.tool.into());
    }
}

/// The analyser: the system's cp/mv identities and `/boot`'s device, taken at start.
#[derive(Debug, Default)]
pub struct Analyzer {
    identity: identity::Identity,
    boot: mounts::Boot,
    /// The agent's mount namespace: a process of another has its paths resolved in its root.
    mount_namespace: Option<u64>,
}

fn push(v: &mut Vec<&'static str>, tag: &'static str) {
    if !v.contains(&tag) {
        v.push(tag);
    }
}

impl Analyzer {
    pub fn system() -> Analyzer {
        use std::os::unix::fs::MetadataExt;
        Analyzer {
            identity: identity::Identity::system(),
            boot: mounts::Boot::system(),
            mount_namespace: std::fs::metadata("/proc/self/ns/mnt").ok().map(|m| m.ino()),
        }
    }

    /// The analysis of an exec of `executable` (the resolved binary) with `args`, in `cwd`;
    /// `None` when it is not a copy tool, nor the loader running one.
    pub fn analyse(
        &mut self,
        executable: impl AsRef<Path>,
        args: &[String],
        cwd: &str,
    ) -> Option<Analysis> {
        self.analyse_in(executable, args, cwd, None)
    }

    /// [`Analyzer::analyse`], with targets resolved in process `root`'s own root if given.
    fn analyse_in(
        &mut self,
        executable: impl AsRef<Path>,
        args: &[String],
        cwd: &str,
        root: Option<u32>,
    ) -> Option<Analysis> {
        let (tool, argv, program) = self.tool_run(executable.as_ref(), args, cwd)?;
        let mut evasion = Vec::new();
        if program.is_some() {
            push(&mut evasion, "loader");
        }
        match tool.how {
            identity::How::Applet => push(&mut evasion, "multicall_applet"),
            identity::How::File => push(&mut evasion, "renamed_binary"),
            identity::How::Name if !matches!(tool.name, "cp" | "mv") => {
                push(&mut evasion, "other_copy_tool")
            }
            identity::How::Name => {}
        }
        let operands = argv.get(tool.first_arg..).unwrap_or(&[]);
        let parsed = options::parse(tool.name, operands);
        let posix = options::parse_posix(tool.name, operands).destination;
        let posix = posix.filter(|(p, _)| parsed.destination.as_ref().is_none_or(|(d, _)| d != p));
        let mut written: Vec<(String, options::Form)> = parsed.destination.into_iter().collect();
        written.extend(posix.map(|(p, _)| (p, options::Form::PosixOrder)));
        if tool.name == "mv" {
            written.extend(
                parsed
                    .sources
                    .into_iter()
                    .map(|s| (s, options::Form::Operand)),
            );
        }
        let mut targets = Vec::new();
        let mut boot_paths = Vec::new();
        let mut reaches_host_boot = false;
        for (raw, form) in written {
            let n = paths::normalize(cwd, &raw);
            let in_boot = if paths::under_boot(&n.path) {
                Some(n.path.clone())
            } else {
                match root {
                    Some(pid) => self.boot.locate_in(pid, &n.path),
                    None => self.boot.locate(&n.path),
                }
                .map(|(canon, tag)| {
                    push(&mut evasion, tag);
                    reaches_host_boot = true;
                    canon
                })
            };
            if let Some(p) = in_boot {
                for f in &n.forms {
                    push(&mut evasion, f);
                }
                match form.evasion() {
                    Some(tag) => push(&mut evasion, tag),
                    None if n.forms.is_empty()
                        && n.path == "/boot"
                        && !paths::published_sees(&raw) =>
                    {
                        push(&mut evasion, "no_trailing_slash")
                    }
                    None => {}
                }
                boot_paths.push(p);
            }
            targets.push(n.path);
        }
        if boot_paths.is_empty() {
            evasion.clear();
        }
        Some(Analysis {
            tool: tool.name,
            how: tool.how,
            targets,
            boot_paths,
            evasion,
            program: program.map(|p| p.display().to_string()),
            args_missing: None,
            reaches_host_boot,
        })
    }

    /// The copy tool an exec runs and the argv it runs with: the exec's own, or, when the
    /// executable is the dynamic loader, its program's (a loader running a loader is followed).
    fn tool_run<'a>(
        &mut self,
        executable: &Path,
        args: &'a [String],
        cwd: &str,
    ) -> Option<(
        identity::Tool,
        Cow<'a, [String]>,
        Option<std::path::PathBuf>,
    )> {
        if let Some(tool) = self.identity.identify(executable, args) {
            return Some((tool, Cow::Borrowed(args), None));
        }
        let mut run = loader::program(args, cwd).filter(|_| self.identity.is_loader(executable))?;
        for _ in 0..2 {
            if let Some(tool) = self.identity.identify(&run.path, &run.argv) {
                return Some((tool, Cow::Owned(run.argv), Some(run.path)));
            }
            if !self.identity.is_loader(&run.path) {
                return None;
            }
            run = loader::program(&run.argv, cwd)?;
        }
        None
    }

    /// [`Analyzer::analyse`] of a decoded exec.
    pub fn analyse_exec(&mut self, exec: &Exec) -> Option<Analysis> {
        use std::os::unix::ffi::OsStrExt;
        // The executable is opened (to identify renamed copies): its path stays bytes.
        let exe = std::path::Path::new(std::ffi::OsStr::from_bytes(&exec.exe));
        let args: Vec<String> = exec
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cwd = exec
            .cwd
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or("/".into());
        let ns = exec.session.mnt_ns;
        let other_namespace = ns != 0 && Some(u64::from(ns)) != self.mount_namespace;
        let root = other_namespace.then_some(exec.tgid);
        let mut analysis = self.analyse_in(exe, &args, &cwd, root)?;
        analysis.args_missing = ArgsMissing::of(exec);
        if analysis.args_missing.is_some() {
            // The missing part may name a target in /boot: the analysis cannot rule it out.
            if analysis.boot_paths.is_empty() && analysis.program.is_some() {
                push(&mut analysis.evasion, "loader");
            }
            push(&mut analysis.evasion, "args_incomplete");
        }
        Some(analysis)
    }
}

/// The executable names a strict-gated rule needs the kernel to report: the copy tools and the
/// multi-call binaries.
pub const NAMES: [&str; 6] = ["cp", "mv", "install", "rsync", "busybox", "coreutils"];

/// The strict analysis as the rule engine sees it: rules with the top-level conjunct
/// `boot_copy.strict.into_boot == true` match only execs it recognised, which need [`NAMES`]
/// (renamed copies are caught by executable size, see [`watched_sizes`]). Pass it to
/// [`RuleSet::prefilter`](boot_copy_rules::RuleSet::prefilter).
pub fn gate() -> AnalysisGate {
    AnalysisGate::new("boot_copy.strict.into_boot", NAMES)
}

/// Whether a rule can only match execs the analysis recognised.
pub fn gated(rule: &Rule) -> bool {
    gate().gates(rule)
}

/// The executable file sizes the kernel must also report when a strict-gated rule is loaded:
/// those of the system's cp and mv, so that a renamed or hard-linked copy (which has their size)
/// reaches the analysis, which confirms it by content. Empty when no such rule is loaded.
pub fn watched_sizes(rules: &[Rule]) -> Vec<u64> {
    if rules.iter().any(gated) {
        identity::reference_sizes()
    } else {
        Vec::new()
    }
}

/// Which execs the detection path must describe and evaluate. The kernel reports every exec when
/// a strict-gated rule is loaded (a renamed binary has no name known in advance); this gate drops,
/// before any further work, those that neither another rule's names nor the analysis admit.
#[derive(Debug)]
pub struct Gate {
    /// What the rules other than the strict-gated ones need.
    others: Prefilter,
    /// The analyser, when a strict-gated rule is loaded.
    pub analyzer: Option<Analyzer>,
}

impl Gate {
    pub fn new(rules: &[Rule]) -> Gate {
        let others: Vec<Rule> = rules.iter().filter(|r| !gated(r)).cloned().collect();
        let any = others.len() != rules.len();
        Gate {
            others: Prefilter::from_rules(&others, &[]),
            analyzer: any.then(Analyzer::system),
        }
    }

    /// The analysis of `exec` (when a strict rule is loaded) and whether the exec must be
    /// evaluated at all.
    pub fn admit(&mut self, exec: &Exec) -> (Option<Analysis>, bool) {
        let analysis = self.analyzer.as_mut().and_then(|a| a.analyse_exec(exec));
        if analysis.is_some() {
            return (analysis, true);
        }
        let named = if exec.has(exec_flags::SCRIPT) {
            &exec.filename
        } else {
            &exec.exe
        };
        let name = String::from_utf8_lossy(crate::context::paths::basename(named));
        (None, self.others.admits(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(exe: &str, line: &str, cwd: &str) -> Option<(Vec<String>, bool, Vec<&'static str>)> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        Analyzer::default()
            .analyse(exe, &args, cwd)
            .map(|r| (r.targets, !r.boot_paths.is_empty(), r.evasion))
    }

    #[test]
    fn evasions() {
        let cp = "/usr/bin/cp";
        let ev = |exe, line, cwd| a(exe, line, cwd).unwrap().2;
        assert_eq!(ev(cp, "cp x .", "/boot"), ["relative_path", "dot_segment"]);
        assert_eq!(ev(cp, "cp x /boot", "/"), ["no_trailing_slash"]);
        assert_eq!(ev(cp, "cp x //boot/x", "/"), ["double_slash"]);
        assert_eq!(ev(cp, "cp x /./boot/x", "/"), ["dot_segment"]);
        assert_eq!(ev(cp, "cp x /tmp/../boot/x", "/"), ["dotdot"]);
        assert_eq!(ev(cp, "cp -t/boot x", "/"), ["joined_target_option"]);
        assert_eq!(
            ev(cp, "cp --target-directory=/boot x", "/"),
            ["long_target_option"]
        );
        assert_eq!(
            ev("/usr/bin/busybox", "busybox cp x /boot/y", "/"),
            ["multicall_applet"]
        );
        assert_eq!(ev(cp, "cp x /boot/y", "/"), Vec::<&str>::new());
        assert_eq!(ev(cp, "cp x -t /tmp /boot", "/"), ["posix_operands"]);
        assert_eq!(ev(cp, "cp x /tmp/y", "/"), Vec::<&str>::new());
        assert_eq!(
            ev("/usr/bin/mv", "mv boot/vmlinuz /tmp", "/"),
            ["relative_path"]
        );
        assert_eq!(
            a(cp, "cp x /tmp/y", "/").unwrap(),
            (vec!["/tmp/y".to_owned()], false, vec![])
        );
        assert_eq!(a("/usr/bin/ls", "ls /boot", "/"), None);
    }

    #[test]
    fn prefilter_and_sizes_of_the_strict_rule() {
        let published = boot_copy_rules::bundled();
        assert!(watched_sizes(&published).is_empty());
        let mut both = published;
        both.push(boot_copy_rules::bundled_strict());
        assert!(gated(&both[1]) && !gated(&both[0]));
        assert_eq!(
            Prefilter::from_rules(&both, &[gate()]).to_string(),
            "process.name in (\"busybox\", \"coreutils\", \"cp\", \"install\", \"mv\", \"rsync\")"
        );
        let cp = std::fs::metadata("/usr/bin/cp").map(|m| m.len()).ok();
        assert_eq!(
            watched_sizes(&both).contains(&cp.unwrap_or(0)),
            cp.is_some()
        );
    }

    #[test]
    fn strict_rule_fires_only_where_the_published_rule_does_not() {
        let rules = boot_copy_rules::RuleSet::from_rules(vec![
            boot_copy_rules::bundled().remove(0),
            boot_copy_rules::bundled_strict(),
        ]);
        let verdict = |exe: &str, line: &str, cwd: &str, parent: &str| -> Vec<String> {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            let mut event = json!({
                "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
                "host": {"os": {"type": "linux"}},
                "process": {"name": exe.rsplit('/').next().unwrap(), "executable": exe, "args": args,
                    "parent": {"name": parent, "executable": format!("/usr/sbin/{parent}")}},
            });
            if let Some(a) = Analyzer::default().analyse(exe, &args, cwd) {
                event["boot_copy"] = json!({"strict": a.fields()});
            }
            let doc = boot_copy_rules::Document::from_json(&event);
            rules.evaluate(&doc).map(|r| r.name.clone()).collect()
        };
        let strict = vec!["Boot File Copy (strict)".to_owned()];
        let published = vec!["Boot File Copy".to_owned()];
        assert_eq!(
            verdict("/usr/bin/cp", "cp x /boot/y", "/", "bash"),
            published
        );
        assert_eq!(verdict("/usr/bin/cp", "cp x /boot", "/", "bash"), strict);
        assert_eq!(verdict("/usr/bin/cp", "cp x .", "/boot", "bash"), strict);
        assert_eq!(
            verdict("/usr/bin/busybox", "cp x /boot/y", "/", "bash"),
            strict
        );
        assert_eq!(
            verdict("/usr/bin/cp", "cp x /tmp/y", "/", "bash"),
            Vec::<String>::new()
        );
        assert_eq!(
            verdict("/usr/bin/cp", "cp x .", "/boot", "update-initramfs"),
            Vec::<String>::new()
        );
        assert_eq!(
            verdict("/usr/bin/cp", "cp x /boot/y", "/", "dracut"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_loader_running_a_copy_tool_is_that_tool() {
        let Some(ld) = loader::interpreter(std::path::Path::new("/usr/bin/cp")) else {
            return; // a static cp: no loader on this machine
        };
        let ld = ld.display().to_string();
        let mut an = Analyzer::system();
        let mut run = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            an.analyse(&ld, &args, "/")
        };
        let r = run("ld.so --argv0 ls /usr/bin/cp x /boot/y").unwrap();
        assert_eq!((r.tool, r.how), ("cp", identity::How::Name));
        assert_eq!(r.evasion, ["loader"]);
        assert_eq!(r.program.as_deref(), Some("/usr/bin/cp"));
        assert_eq!(r.boot_paths, ["/boot/y"]);
        let r = run("ld.so /usr/bin/mv /boot/vmlinuz /tmp/").unwrap();
        assert_eq!((r.tool, r.evasion), ("mv", vec!["loader"]));
        assert!(run("ld.so /usr/bin/true x /boot/y").is_none());
        assert!(run("ld.so --list /usr/bin/cp").is_none());
        // The loader is recognised by what it is: not by its name.
        let r = an.analyse(
            "/usr/bin/true",
            &[
                "true".into(),
                "/usr/bin/cp".into(),
                "x".into(),
                "/boot/y".into(),
            ],
            "/",
        );
        assert!(r.is_none());
    }

    #[test]
    fn an_incomplete_argv_may_write_into_boot() {
        let mut exec = crate::decode::Exec {
            flags: exec_flags::WATCHED | exec_flags::ARGS_TRUNCATED | exec_flags::SPILL_FULL,
            ktime_boot_ns: 0,
            start_boottime_ns: 0,
            pid: 7,
            tgid: 7,
            ppid: 1,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            args_count: 5,
            args_size: 100,
            comm: b"cp".to_vec(),
            filename: b"/usr/bin/cp".to_vec(),
            exe: b"/usr/bin/cp".to_vec(),
            interp: None,
            cwd: Some(b"/".to_vec()),
            args: vec![b"cp".to_vec(), b"--suffix=x".to_vec(), b"/tm".to_vec()],
            env: None,
            parent: None,
            session: Default::default(),
        };
        exec.flags |= exec_flags::LAST_ARG_CUT;
        let r = Analyzer::default().analyse_exec(&exec).unwrap();
        assert_eq!(r.evasion, ["args_incomplete"]);
        assert!(r.fields_view().into_boot);
        let m = r.args_missing.unwrap();
        // "cp\0--suffix=x\0/tm": 17 bytes, the last argument cut.
        assert_eq!(
            (m.captured_bytes, m.missing_bytes, m.total_bytes),
            (17, 83, 100)
        );
        assert_eq!(
            (m.captured_args, m.total_args, m.cause),
            (3, 5, "spill_full")
        );
        exec.flags = exec_flags::WATCHED;
        let whole = Analyzer::default().analyse_exec(&exec).unwrap();
        assert!(whole.args_missing.is_none() && !whole.fields_view().into_boot);
    }

    #[test]
    fn fields_of_an_analysis() {
        let r = Analyzer::default()
            .analyse(
                "/usr/bin/cp",
                &["cp".into(), "x".into(), "/boot".into()],
                "/",
            )
            .unwrap();
        assert_eq!(
            r.fields(),
            json!({"tool": "cp", "identified_by": "name", "targets": ["/boot"],
                   "boot_paths": ["/boot"], "into_boot": true, "evasion": ["no_trailing_slash"]})
        );
    }
}

//! Detection: one exec record → exec → context → ECS event → rules and exceptions → budget →
//! alerts; a file record likewise, through its writer's context (`file_op`). One act raises one
//! alert: the file events of a process that raised an exec alert raise none. `rules` is the rule set as loaded, with its kernel prefilter; `budget` limits alerts
//! per rule and window.
//!
//! The rules evaluate a document built straight from the typed event, holding only the fields
//! they read: no JSON value is built for an exec that raises no alert. An exec's alerts are
//! passed on while the exec is alive: their `process` fields (its argv, megabytes at times) are
//! serialized from it when the alert is written, not copied into a JSON value.
pub mod budget;
pub mod rules;

use crate::{
    alert::{self, Alert, Alerts},
    context::{
        exec::{self, ExecContext},
        lookups::Lookups,
        session::{Sessions, Table},
    },
    decode::{self, FileOp, Record},
    describe::{Describer, exec::Wanted, file::FileContext},
    sink::Severity,
    strict::{self, Analysis, Gate},
};
use boot_copy_rules::{Document, FieldSet};
use budget::{Budget, BudgetConfig, Suppressed};
use rules::LoadedRules;
use serde_json::Value;
use std::{
    borrow::Cow,
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long a process that raised an exec alert is remembered, so that its writes (which
/// follow within moments) raise no second alert.
const ALERTED_FOR: Duration = Duration::from_secs(60);
/// A process's file events on one path within this time are one act (a copy that creates the
/// file, then sets its mode and times).
const SAME_FILE_FOR: Duration = Duration::from_secs(2);

/// What the detection path counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DetectCounts {
    /// Exec records that reached userspace (names that passed the kernel prefilter).
    pub candidates: u64,
    pub decode_errors: u64,
    pub alerts: u64,
    /// Alerts withheld by the per-rule budget.
    pub suppressed: u64,
    /// File records that reached userspace (writes into watched trees).
    pub file_candidates: u64,
    /// File-rule alerts not raised because their writer had raised an exec alert (one act).
    pub same_act: u64,
    /// File records whose path has a `..` and, made absolute, is in no watched tree.
    pub file_climbs_outside: u64,
}

/// What detection found, in the order it found it; an exec's alert borrows the exec.
#[derive(Debug)]
pub enum Finding<'a> {
    Alert {
        alert: Alert<'a>,
        severity: Severity,
    },
    /// A budget window closed having withheld alerts.
    Suppressed(Suppressed),
}

/// One matching rule's outcome under the budget.
enum Step {
    /// A window closed having withheld alerts.
    Summary(Suppressed),
    /// The rule's index in the set alerts.
    Alert(usize),
}

pub struct Detector {
    describer: Describer,
    rules: LoadedRules,
    alerts: Alerts,
    /// The fields the rules read: all an event's document needs.
    wanted: Wanted,
    /// The strict rule's analysis, and which execs need any work at all.
    gate: Gate,
    budget: Budget,
    /// Processes (pid, start) whose exec matched a rule (alerted, or withheld by the budget),
    /// and when.
    alerted: HashMap<(u32, u64), Instant>,
    /// The last file event of each process (pid, start) on each path, and when.
    touched: HashMap<(u32, u64, Vec<u8>), Instant>,
    /// Leaders, containers, boot file systems.
    lookups: Lookups,
    /// Whether a rule not gated by the strict analysis reads `HOST_BOOT_FIELD`.
    boot_read_ungated: bool,
    pub counts: DetectCounts,
}

impl Detector {
    pub fn new(mut describer: Describer, rules: LoadedRules, budget: BudgetConfig) -> Self {
        describer.set_env(rules.env.clone());
        Self {
            describer,
            gate: Gate::new(rules.set.rules()),
            alerts: Alerts::new(&rules.set),
            wanted: Wanted::new(wanted(&rules)),
            boot_read_ungated: boot_read_ungated(&rules),
            rules,
            budget: Budget::new(budget),
            alerted: HashMap::new(),
            touched: HashMap::new(),
            lookups: Lookups::default(),
            counts: DetectCounts::default(),
        }
    }

    /// Describes leaders that exited from the kernel's process table.
    pub fn set_table(&mut self, table: Box<dyn Table>) {
        self.lookups = Lookups::new(Sessions::new(table));
    }

    /// Replaces the rules (SIGHUP reload). Budget windows carry over.
    pub fn set_rules(&mut self, rules: LoadedRules) {
        self.gate = Gate::new(rules.set.rules());
        self.alerts = Alerts::new(&rules.set);
        self.wanted = Wanted::new(wanted(&rules));
        self.boot_read_ungated = boot_read_ungated(&rules);
        self.describer.set_env(rules.env.clone());
        self.rules = rules;
    }

    /// The trees the kernel now watches, as file events are to name them.
    pub fn set_trees(&mut self, trees: crate::sensor::roots::Watched) {
        self.describer.set_trees(trees);
    }

    pub fn rules(&self) -> &LoadedRules {
        &self.rules
    }

    pub fn describer(&mut self) -> &mut Describer {
        &mut self.describer
    }

    /// Handles one ring-buffer record, passing any alert (and any suppression summary of a
    /// window that just closed) to `found`.
    /// The record is freed once decoded (a reassembled argv can be megabytes).
    pub fn handle(
        &mut self,
        record: Cow<'_, [u8]>,
        now: Instant,
        found: &mut impl FnMut(Finding<'_>),
    ) {
        let decoded = decode::decode_record(&record);
        drop(record);
        let exec = match decoded {
            Ok(Record::Exec(exec)) => exec,
            Ok(Record::File(op)) => return self.file_op(op, now, found),
            Err(e) => {
                self.counts.decode_errors += 1;
                tracing::warn!(error = %e, "undecodable ring-buffer record");
                return;
            }
        };
        let (strict, admitted) = self.gate.admit(&exec);
        if !admitted {
            return;
        }
        self.counts.candidates += 1;
        let mut ctx = exec::resolve(exec);
        self.lookups.join_but_boot(&mut ctx);
        // Whether its /boot is the host's costs two /proc reads: looked up now only when a
        // rule may read it, else only for an exec that alerts (its alert carries the field).
        let boot_now = strict.is_some() || self.boot_read_ungated;
        if boot_now {
            self.lookups.join_boot(&mut ctx);
            if strict.as_ref().is_some_and(|a| a.reaches_host_boot) {
                ctx.host_boot = Some(true);
            }
        }
        self.exec(&ctx, strict.as_ref(), !boot_now, now, found);
    }

    /// Evaluates one file operation's event (rare: only writes into watched trees reach here,
    /// so the document is made from the event's JSON).
    fn file_op(&mut self, op: FileOp, now: Instant, found: &mut impl FnMut(Finding<'_>)) {
        self.counts.file_candidates += 1;
        let Some(op) = self.describer.placed(op) else {
            self.counts.file_climbs_outside += 1;
            return;
        };
        let mut ctx = FileContext::resolve(op);
        // A file event's `boot_copy.boot` comes from the kernel's tree (`file_json`), not from
        // the two /proc reads of the writer's /boot.
        self.lookups.join_but_boot(&mut ctx.writer);
        self.describer.learn_all_names(&ctx.writer);
        let w = &ctx.writer.exec;
        let writer = (w.tgid, w.start_boottime_ns);
        let exec_alerted = self
            .alerted
            .get(&writer)
            .is_some_and(|&at| now.duration_since(at) < ALERTED_FOR);
        let same_act = exec_alerted || touched_again(&mut self.touched, writer, &ctx.path, now);
        let Value::Object(event) = self.describer.file_json(&ctx) else {
            unreachable!("a file event is a JSON object")
        };
        let doc = Document::from_map(&event);
        let mut alerts = Vec::new();
        for (i, rule) in self.rules.set.matching(&doc) {
            if same_act {
                self.counts.same_act += 1;
                continue;
            }
            let (admitted, closed) = self.budget.admit(&rule.id, now);
            if let Some(s) = closed {
                found(Finding::Suppressed(s));
            }
            if admitted {
                self.counts.alerts += 1;
                alerts.push((i, rule));
            } else {
                self.counts.suppressed += 1;
            }
        }
        for (i, rule) in alerts {
            found(Finding::Alert {
                alert: self.alerts.build_own(i, rule, event.clone()),
                severity: alert::severity(rule),
            });
        }
    }

    /// Evaluates one exec's event; `boot_deferred`: whether its `/boot` is the host's is
    /// looked up only if it alerts (no rule the exec can meet reads it).
    fn exec(
        &mut self,
        ctx: &ExecContext,
        strict: Option<&Analysis>,
        boot_deferred: bool,
        now: Instant,
        found: &mut impl FnMut(Finding<'_>),
    ) {
        self.describer.learn_all_names(ctx);
        let mut event = self.describer.exec(ctx, strict);
        let doc = event.document(Some(&self.wanted));
        let (steps, matched) = steps(&self.rules, &mut self.budget, &mut self.counts, &doc, now);
        // The rules' copy of the argv is freed before the alerts' lines are made.
        drop(doc);
        // A match the budget withheld is the act's alert too: its writes raise none.
        if matched {
            remember_alerted(&mut self.alerted, ctx, now);
        }
        let alerting = steps.iter().filter(|s| matches!(s, Step::Alert(_))).count();
        if alerting > 0 && boot_deferred {
            event.set_host_boot(self.lookups.host_boot(ctx));
        }
        // The event as JSON but its `process`, made only if it alerts; the last alert takes it
        // over. `process` goes into every alert's line as the typed event holds it.
        let process = std::mem::take(&mut event.process);
        let mut json = (alerting > 0).then(|| match serde_json::to_value(&event) {
            Ok(Value::Object(mut map)) => {
                map.remove("process");
                map
            }
            _ => unreachable!("an exec event serializes to a JSON object"),
        });
        let mut built = 0;
        for step in steps {
            match step {
                Step::Summary(s) => found(Finding::Suppressed(s)),
                Step::Alert(i) => {
                    let rule = &self.rules.set.rules()[i];
                    built += 1;
                    let event = if built == alerting {
                        json.take()
                    } else {
                        json.clone()
                    }
                    .expect("the event's JSON is made when it alerts");
                    found(Finding::Alert {
                        alert: self.alerts.build_exec(i, rule, event, &process),
                        severity: alert::severity(rule),
                    });
                }
            }
        }
    }

    /// Budget windows that have closed by `now` (or all, at shutdown) having withheld alerts.
    pub fn close_windows(&mut self, now: Instant, all: bool) -> Vec<Suppressed> {
        if all {
            self.budget.close_all(now)
        } else {
            self.budget.close_due(now)
        }
    }
}

/// The rules matching an exec's document under the budget, in rule order (a window's summary
/// goes before that rule's alert), and whether any matched.
fn steps(
    rules: &LoadedRules,
    budget: &mut Budget,
    counts: &mut DetectCounts,
    doc: &Document,
    now: Instant,
) -> (Vec<Step>, bool) {
    let mut steps = Vec::new();
    let mut matched = false;
    for (i, rule) in rules.set.matching(doc) {
        matched = true;
        let (admitted, closed) = budget.admit(&rule.id, now);
        if let Some(s) = closed {
            steps.push(Step::Summary(s));
        }
        if admitted {
            counts.alerts += 1;
            steps.push(Step::Alert(i));
        } else {
            counts.suppressed += 1;
        }
    }
    (steps, matched)
}

/// Whether the writer had a file event on this path moments ago (`SAME_FILE_FOR`); remembers
/// this one.
fn touched_again(
    touched: &mut HashMap<(u32, u64, Vec<u8>), Instant>,
    (pid, start): (u32, u64),
    path: &[u8],
    now: Instant,
) -> bool {
    if touched.len() >= 4096 {
        touched.retain(|_, &mut at| now.duration_since(at) < SAME_FILE_FOR);
    }
    let last = touched.insert((pid, start, path.to_vec()), now);
    last.is_some_and(|at| now.duration_since(at) < SAME_FILE_FOR)
}

/// Remembers a process whose exec matched a rule (see `ALERTED_FOR`).
fn remember_alerted(alerted: &mut HashMap<(u32, u64), Instant>, ctx: &ExecContext, now: Instant) {
    if alerted.len() >= 4096 {
        alerted.retain(|_, &mut at| now.duration_since(at) < ALERTED_FOR);
    }
    alerted.insert((ctx.exec.tgid, ctx.exec.start_boottime_ns), now);
}

/// The field saying whether a process's `/boot` is the host's.
const HOST_BOOT_FIELD: &str = "boot_copy.boot.host_filesystem";

/// Whether a rule that may match an exec the strict analysis did not recognise reads
/// `HOST_BOOT_FIELD`.
fn boot_read_ungated(rules: &LoadedRules) -> bool {
    let set = &rules.set;
    (0..set.rules().len())
        .any(|i| !strict::gated(&set.rules()[i]) && set.rule_fields(i).contains(HOST_BOOT_FIELD))
}

fn wanted(rules: &LoadedRules) -> FieldSet {
    rules.set.fields().into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{
        clock::BootEpoch,
        exec::{ParentSource, Process},
        host::Host,
    };
    use crate::decode::{Exec, Image};
    use crate::rules::replay;
    use boot_copy_common::exec_flags;
    use boot_copy_rules::{Document, RuleSet};

    fn exec(flags: u32, exe: &[u8], args: &[&[u8]], cwd: &[u8]) -> Exec {
        Exec {
            flags,
            ktime_boot_ns: 5_000_000_123,
            start_boottime_ns: 4_000_000_000,
            pid: 70,
            tgid: 70,
            ppid: 1,
            uid: 1000,
            euid: 0,
            gid: 1000,
            egid: 0,
            args_count: args.len() as u32,
            args_size: 40,
            comm: b"cp".to_vec(),
            filename: exe.to_vec(),
            exe: exe.to_vec(),
            interp: None,
            cwd: Some(cwd.to_vec()),
            args: args.iter().map(|a| a.to_vec()).collect(),
            env: None,
            parent: None,
            session: Default::default(),
        }
    }

    fn kernel_parent(args: &[&[u8]]) -> Option<Image> {
        Some(Image {
            tgid: 60,
            start_boottime_ns: 3_000_000_000,
            flags: 0,
            args_count: args.len() as u32,
            euid: 0,
            egid: 0,
            exe: b"/usr/bin/d\xffash".to_vec(),
            args: args.iter().map(|a| a.to_vec()).collect(),
            cwd: b"/root".to_vec(),
        })
    }

    /// Execs covering every optional part of an event: strict fields and evasions, a script,
    /// text that is not UTF-8, a parent from the kernel table or unknown, no arguments.
    /// Execs resolved as the detector takes them: the strict analysis first (resolving moves
    /// the arguments into the process).
    fn contexts() -> Vec<(Option<crate::strict::Analysis>, ExecContext)> {
        let mut v = Vec::new();
        let mut analyzer = crate::strict::Analyzer::default();
        let mut resolve = |e: Exec| (analyzer.analyse_exec(&e), exec::resolve(e));
        let mut plain = exec(
            exec_flags::PARENT_FOUND,
            b"/usr/bin/cp",
            &[b"cp", b"/etc/hostname", b"/boot/x"],
            b"/root",
        );
        plain.parent = kernel_parent(&[b"/bin/sh", b"-c", b"cp \"quoted\" \xff"]);
        v.push(resolve(plain));
        let mut evasive = exec(0, b"/usr/bin/cp", &[b"cp", b"a\xfe", b"."], b"/boot");
        evasive.parent = kernel_parent(&[]);
        let (analysis, mut ctx) = resolve(evasive);
        ctx.parent_source = ParentSource::Unknown;
        ctx.parent = Process {
            pid: 1,
            ..Default::default()
        };
        v.push((analysis, ctx));
        let mut script = exec(
            exec_flags::SCRIPT | exec_flags::ARGS_TRUNCATED,
            b"/usr/bin/dash",
            &[b"/bin/sh", b"./cp"],
            b"/tmp/w\xff",
        );
        script.filename = b"./cp".to_vec();
        script.interp = Some(b"/bin/sh".to_vec());
        script.parent = kernel_parent(&[b"bash"]);
        v.push(resolve(script));
        let mut bare = exec(exec_flags::PARENT_FOUND, b"/usr/bin/mv", &[], b"/");
        bare.cwd = None;
        bare.parent = kernel_parent(&[b"sh"]);
        v.push(resolve(bare));
        v
    }

    /// The daemon's alert for an exec is what `replay` makes of the exec's event (as `events`
    /// prints it), plus the agent's own fields; the document of only the fields the rules read
    /// gets the verdicts of the whole event; both bundled rules fire on some exec.
    #[test]
    fn run_alert_is_replay_alert_of_the_same_event() {
        let host = Host {
            name: "h1".into(),
            id: Some("0123456789abcdef".into()),
            architecture: "x86_64".into(),
            kernel: "6.18".into(),
            os_name: Some("Debian GNU/Linux".into()),
            os_platform: Some("debian".into()),
            ..Host::default()
        };
        let mut referenced = boot_copy_rules::bundled().remove(0);
        // A rule with several references keeps them all under `boot_copy.rule`.
        referenced.references = vec!["https://a.example/".into(), "https://b.example/".into()];
        referenced.id = "several-references".into();
        let rules = vec![
            boot_copy_rules::bundled().remove(0),
            boot_copy_rules::bundled_strict(),
            referenced,
        ];
        let set = RuleSet::from_rules(rules.clone());
        let loaded = LoadedRules::new(RuleSet::from_rules(rules), Default::default()).unwrap();
        let wanted = Wanted::new(wanted(&loaded));
        let mut detector = Detector::new(
            Describer::new(host, BootEpoch::now().unwrap()),
            loaded,
            BudgetConfig::default(),
        );
        let mut fired = Vec::new();
        for (n, (strict, ctx)) in contexts().iter().enumerate() {
            // Each alert's line, written from the typed `process`, is byte for byte that of the
            // alert as one JSON document.
            let mut alerts: Vec<serde_json::Map<String, Value>> = Vec::new();
            detector.exec(ctx, strict.as_ref(), false, Instant::now(), &mut |f| {
                if let Finding::Alert { alert, .. } = f {
                    let line = alert.line();
                    assert_eq!(line, alert.into_whole().line(), "exec {n}");
                    alerts.push(serde_json::from_str(&line).unwrap());
                }
            });
            let d = detector.describer();
            let event = d.exec(ctx, strict.as_ref());
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(serde_json::to_string(&event).unwrap(), json.to_string());
            let whole = Document::from_json(&json);
            assert_eq!(event.document(None), whole, "exec {n}");
            let verdicts =
                |doc: &Document| set.evaluate(doc).map(|r| r.id.clone()).collect::<Vec<_>>();
            let only_read = event.document(Some(&wanted));
            assert!(only_read.len() < whole.len());
            assert_eq!(verdicts(&only_read), verdicts(&whole), "exec {n}");
            fired.extend(verdicts(&whole));

            let mut replayed = Vec::new();
            let line = format!("{json}\n");
            replay::replay_with_diagnostics(line.as_bytes(), &set, &mut replayed, Vec::new())
                .unwrap();
            let replayed: Vec<Value> = String::from_utf8(replayed)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(alerts.len(), verdicts(&whole).len(), "exec {n}");
            assert_eq!(alerts.len(), replayed.len(), "exec {n}");
            for (mut ours, theirs) in alerts.into_iter().zip(replayed) {
                let rule = theirs["rule"]["id"].clone();
                // The agent's own fields: those of the event it saw.
                assert_eq!(ours.remove("ecs"), json.get("ecs").cloned(), "exec {n}");
                assert_eq!(ours.remove("agent"), json.get("agent").cloned(), "exec {n}");
                let own = ours["boot_copy"].as_object_mut().unwrap();
                for (key, value) in json["boot_copy"].as_object().unwrap() {
                    assert_eq!(own.remove(key).as_ref(), Some(value), "exec {n}: {key}");
                }
                if own.is_empty() {
                    ours.remove("boot_copy");
                }
                assert_eq!(Value::Object(ours), theirs, "exec {n}, rule {rule}");
                if rule == "several-references" {
                    assert_eq!(
                        theirs["boot_copy"]["rule"]["references"][1],
                        "https://b.example/"
                    );
                }
            }
        }
        // Every rule fired on some exec: the alerts compared above were not all absent.
        fired.sort();
        fired.dedup();
        assert_eq!(fired.len(), 3, "{fired:?}");
    }
}

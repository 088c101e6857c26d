//! The detection path of one exec: ring-buffer record → exec → process context → ECS event →
//! rules and exceptions → budget → alert lines.
//!
//! The event is evaluated as a document built straight from it, and an alert is serialized
//! straight from the event and its rule's fields (serialized once per rule): no JSON value is
//! built per exec.
use crate::{
    budget::{Budget, BudgetConfig, Suppressed},
    decode,
    ecs::{Describer, Ecs, ExecEvent, Ids, OursParent, OursProcess, ProcessFields},
    health::{Origin, Sequencer},
    process::{clock::rfc3339, context},
    rules::{FieldSet, Rule, RuleSet, alert},
    sink::Severity,
};
use serde::Serialize;
use serde_json::{Value, json, value::RawValue};
use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

/// The alert buffer's capacity kept between alerts (alerts of megabyte argv are rare).
const BUF_KEPT: usize = 256 * 1024;

/// What the detection path counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DetectCounts {
    /// Exec records that reached userspace (names that passed the kernel prefilter).
    pub candidates: u64,
    pub decode_errors: u64,
    pub alerts: u64,
    /// Alerts withheld by the per-rule budget.
    pub suppressed: u64,
}

/// A record for the sinks (numbered already), with its syslog severity.
#[derive(Debug, Clone)]
pub struct Emit {
    pub line: Arc<str>,
    pub severity: Severity,
    pub alert: bool,
}

pub struct Detector {
    describer: Describer,
    rules: RuleSet,
    /// `templates[i]` holds the alert fields of `rules.rules()[i]`.
    templates: Vec<AlertTemplate>,
    /// The fields the rules read: all an event's document needs.
    wanted: FieldSet,
    /// The strict rule's analysis, and which execs need any work at all.
    gate: crate::strict::Gate,
    budget: Budget,
    /// The alert being serialized, reused.
    buf: Vec<u8>,
    pub counts: DetectCounts,
}

impl Detector {
    pub fn new(describer: Describer, rules: RuleSet, budget: BudgetConfig) -> Self {
        Self {
            describer,
            gate: crate::strict::Gate::new(rules.rules()),
            templates: rules.rules().iter().map(AlertTemplate::new).collect(),
            wanted: wanted(&rules),
            rules,
            budget: Budget::new(budget),
            buf: Vec::new(),
            counts: DetectCounts::default(),
        }
    }

    /// Replaces the rules (SIGHUP reload). Budget windows carry over.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.gate = crate::strict::Gate::new(rules.rules());
        self.templates = rules.rules().iter().map(AlertTemplate::new).collect();
        self.wanted = wanted(&rules);
        self.rules = rules;
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn describer(&mut self) -> &mut Describer {
        &mut self.describer
    }

    /// Handles one ring-buffer record, pushing any alert (and any suppression summary of a
    /// window that just closed) onto `out`, numbered by `seq` in that order.
    pub fn handle(
        &mut self,
        record: &[u8],
        now: Instant,
        seq: &mut Sequencer,
        out: &mut Vec<Emit>,
    ) {
        let exec = match decode::decode(record) {
            Ok(exec) => exec,
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
        let ctx = context::resolve(exec);
        self.describer.learn_names(&ctx);
        let mut event = self.describer.describe(&ctx, strict.as_ref());
        let doc = event.document(Some(&self.wanted));
        for (i, rule) in self.rules.matching(&doc) {
            let (admitted, closed) = self.budget.admit(&rule.id, now);
            if let Some(s) = closed {
                out.push(suppressed_record(&self.describer.origin(), &s, now, seq));
            }
            if admitted {
                self.counts.alerts += 1;
                event.boot_copy.seq = Some(seq.take());
                self.buf.clear();
                alert(&self.templates[i], rule, &event)
                    .serialize(&mut serde_json::Serializer::new(&mut self.buf))
                    .expect("an alert serializes");
                out.push(Emit {
                    line: std::str::from_utf8(&self.buf)
                        .expect("serde_json writes UTF-8")
                        .into(),
                    severity: severity(rule),
                    alert: true,
                });
                if self.buf.capacity() > BUF_KEPT {
                    self.buf = Vec::new(); // the alert of a megabyte argv: not kept
                }
            } else {
                self.counts.suppressed += 1;
            }
        }
    }

    /// Suppression summaries of windows that have closed by `now` (or of all, at shutdown).
    pub fn close_windows(
        &mut self,
        now: Instant,
        all: bool,
        seq: &mut Sequencer,
        out: &mut Vec<Emit>,
    ) {
        let closed = if all {
            self.budget.close_all(now)
        } else {
            self.budget.close_due(now)
        };
        let origin = self.describer.origin();
        out.extend(
            closed
                .iter()
                .map(|s| suppressed_record(&origin, s, now, seq)),
        );
    }
}

fn wanted(rules: &RuleSet) -> FieldSet {
    rules.fields().into_iter().map(str::to_owned).collect()
}

/// The fields an alert takes from its rule (see [`alert::rule_fields`]), serialized once.
struct AlertTemplate {
    severity: Value,
    risk_score: Value,
    rule: Box<RawValue>,
    threat: Option<Box<RawValue>>,
    /// `boot_copy.rule`: every reference of a rule that has several.
    ours: Option<Box<RawValue>>,
}

impl AlertTemplate {
    fn new(rule: &Rule) -> Self {
        let fields = alert::rule_fields(rule);
        let raw = |key: &str| {
            fields.get(key).map(|v| {
                RawValue::from_string(v.to_string()).expect("serialized JSON is valid JSON")
            })
        };
        Self {
            severity: fields["event"]["severity"].clone(),
            risk_score: fields["event"]["risk_score"].clone(),
            rule: raw("rule").expect("every rule has rule fields"),
            threat: raw("threat"),
            ours: fields.get(crate::ecs::NAMESPACE).map(|v| {
                RawValue::from_string(v["rule"].to_string()).expect("serialized JSON is valid JSON")
            }),
        }
    }
}

/// An alert, as [`alert::build`] makes it from the event's JSON plus the agent's own fields
/// (`ecs`, `agent` and the event's `boot_copy`). Fields in JSON key order.
#[derive(Serialize)]
struct Alert<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: &'a str,
    agent: &'a RawValue,
    boot_copy: AlertOurs<'a>,
    ecs: Ecs,
    event: AlertEvent<'a>,
    group: &'a Ids<'a>,
    host: &'a RawValue,
    message: String,
    process: &'a ProcessFields<'a>,
    rule: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    threat: Option<&'a RawValue>,
    user: &'a Ids<'a>,
}

/// The event's `boot_copy` with the rule's own (its references), fields in JSON key order.
#[derive(Serialize)]
struct AlertOurs<'a> {
    parent: &'a OursParent,
    process: &'a OursProcess<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<&'a crate::strict::StrictFields<'a>>,
}

/// The event's `event.*` with the rule's kind and scoring.
#[derive(Serialize)]
struct AlertEvent<'a> {
    action: &'static str,
    category: [&'static str; 1],
    kind: &'static str,
    risk_score: &'a Value,
    severity: &'a Value,
    #[serde(rename = "type")]
    type_: [&'static str; 1],
}

fn alert<'a>(template: &'a AlertTemplate, rule: &Rule, event: &'a ExecEvent<'a>) -> Alert<'a> {
    let p = &event.process;
    let parent = p.parent.as_deref();
    let parts = alert::MessageParts {
        user_name: event.user.name,
        user_id: Some(&event.user.id),
        command: p
            .command_line
            .as_deref()
            .or(p.executable.as_deref())
            .or(p.name.as_deref()),
        pid: Some(p.pid.to_string()),
        parent_name: parent.and_then(|p| p.name.as_deref()),
        parent_executable: parent.and_then(|p| p.executable.as_deref()),
        parent_pid: parent.map(|p| p.pid.to_string()),
    };
    Alert {
        timestamp: &event.timestamp,
        agent: event.agent,
        boot_copy: AlertOurs {
            parent: &event.boot_copy.parent,
            process: &event.boot_copy.process,
            rule: template.ours.as_deref(),
            seq: event.boot_copy.seq,
            strict: event.boot_copy.strict.as_ref(),
        },
        ecs: event.ecs,
        event: AlertEvent {
            action: event.event.action,
            category: event.event.category,
            kind: "alert",
            risk_score: &template.risk_score,
            severity: &template.severity,
            type_: event.event.type_,
        },
        group: &event.group,
        host: event.host,
        message: alert::message(rule, &parts),
        process: p,
        rule: &template.rule,
        threat: template.threat.as_deref(),
        user: &event.user,
    }
}

fn severity(rule: &Rule) -> Severity {
    match rule.severity.as_str() {
        "low" => Severity::Notice,
        "critical" => Severity::Err,
        _ => Severity::Warning,
    }
}

fn suppressed_record(origin: &Origin, s: &Suppressed, now: Instant, seq: &mut Sequencer) -> Emit {
    let wall = |t: Instant| SystemTime::now() - now.saturating_duration_since(t);
    let mut doc = origin.record(
        "metric",
        "alerts-suppressed",
        SystemTime::now(),
        format!(
            "boot-copy suppressed {} alerts of rule {} (alert budget exhausted in this window)",
            s.count, s.rule_id
        ),
        json!({ "suppressed": { "rule_id": s.rule_id, "count": s.count } }),
    );
    doc["rule"] = json!({ "id": s.rule_id });
    doc["event"]["start"] = rfc3339(wall(s.window_start)).into();
    doc["event"]["end"] = rfc3339(wall(s.window_end)).into();
    seq.stamp(&mut doc);
    Emit {
        line: doc.to_string().into(),
        severity: Severity::Warning,
        alert: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Exec, Image};
    use crate::process::{clock::BootEpoch, context::ParentSource, host::Host};
    use crate::rules::Document;
    use boot_copy_common::exec_flags;

    /// The alert as the generic path builds it from the event's JSON (`replay` does the same
    /// with `alert::build`), numbered like the daemon numbers records.
    fn generic_alert(rule: &Rule, event: &Value, seq: u64) -> Value {
        let mut doc = alert::build(rule, event.as_object().unwrap());
        for key in ["ecs", "agent"] {
            if let Some(v) = event.get(key) {
                doc.insert(key.to_owned(), v.clone());
            }
        }
        let ours = doc
            .entry(crate::ecs::NAMESPACE)
            .or_insert_with(|| json!({}));
        if let (Some(ours), Some(Value::Object(event_ours))) =
            (ours.as_object_mut(), event.get(crate::ecs::NAMESPACE))
        {
            ours.extend(event_ours.clone());
        }
        let mut doc = Value::Object(doc);
        let mut s = Sequencer::default();
        for _ in 1..seq {
            s.take();
        }
        s.stamp(&mut doc);
        doc
    }

    #[test]
    fn alert_of_the_bundled_rule() {
        let rule = crate::rules::bundled().remove(0);
        let event = json!({
            "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
            "user": {"id": "0", "name": "root"},
            "process": {"pid": 10, "command_line": "cp a /boot/x", "parent": {"pid": 9, "name": "bash", "executable": "/usr/bin/bash"}},
        });
        let a = generic_alert(&rule, &event, 1);
        assert_eq!(a["event"]["kind"], "alert");
        assert_eq!(a["event"]["category"], json!(["process"]));
        assert_eq!(a["event"]["severity"], 21);
        assert_eq!(a["rule"]["id"], "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
        assert_eq!(
            a["message"],
            "Boot File Copy: root ran `cp a /boot/x` (pid 10) under bash (/usr/bin/bash, pid 9)"
        );
        assert_eq!(severity(&rule), Severity::Notice);
    }

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
            parent: None,
        }
    }

    fn kernel_parent(args: &[&[u8]]) -> Option<Image> {
        Some(Image {
            tgid: 60,
            start_boottime_ns: 3_000_000_000,
            flags: 0,
            args_count: args.len() as u32,
            exe: b"/usr/bin/d\xffash".to_vec(),
            args: args.iter().map(|a| a.to_vec()).collect(),
            cwd: b"/root".to_vec(),
        })
    }

    /// Execs covering every optional part of an event: strict fields and evasions, a script,
    /// text that is not UTF-8, a parent from the kernel table or unknown, no arguments.
    fn contexts() -> Vec<context::ExecContext> {
        let mut v = Vec::new();
        let mut plain = exec(
            exec_flags::PARENT_FOUND,
            b"/usr/bin/cp",
            &[b"cp", b"/etc/hostname", b"/boot/x"],
            b"/root",
        );
        plain.parent = kernel_parent(&[b"/bin/sh", b"-c", b"cp \"quoted\" \xff"]);
        v.push(context::resolve(plain));
        let mut evasive = exec(0, b"/usr/bin/cp", &[b"cp", b"a\xfe", b"."], b"/boot");
        evasive.parent = kernel_parent(&[]);
        let mut ctx = context::resolve(evasive);
        ctx.parent_source = ParentSource::Unknown;
        ctx.parent = crate::process::context::Process {
            pid: 1,
            ..Default::default()
        };
        v.push(ctx);
        let mut script = exec(
            exec_flags::SCRIPT | exec_flags::ARGS_TRUNCATED,
            b"/usr/bin/dash",
            &[b"/bin/sh", b"./cp"],
            b"/tmp/w\xff",
        );
        script.filename = b"./cp".to_vec();
        script.interp = Some(b"/bin/sh".to_vec());
        script.parent = kernel_parent(&[b"bash"]);
        v.push(context::resolve(script));
        let mut bare = exec(exec_flags::PARENT_FOUND, b"/usr/bin/mv", &[], b"/");
        bare.cwd = None;
        bare.parent = kernel_parent(&[b"sh"]);
        v.push(context::resolve(bare));
        v
    }

    /// The typed path (document built from the event, alert serialized from it) gives the same
    /// document and the same alert bytes as the generic JSON path, for both bundled rules; a
    /// document of only the fields the rules read gets the same verdicts.
    #[test]
    fn typed_path_equals_the_json_path() {
        let host = Host {
            name: "h1".into(),
            id: Some("0123456789abcdef".into()),
            architecture: "x86_64".into(),
            kernel: "6.18".into(),
            os_name: Some("Debian GNU/Linux".into()),
            os_platform: Some("debian".into()),
            ..Host::default()
        };
        let mut describer = Describer::new(host, BootEpoch::now().unwrap());
        let rules = [
            crate::rules::bundled().remove(0),
            crate::rules::bundled_strict(),
        ];
        let set = RuleSet::from_rules(rules.to_vec());
        // A rule with several references keeps them all under `boot_copy.rule`.
        let mut referenced = rules[0].clone();
        referenced.references = vec!["https://a.example/".into(), "https://b.example/".into()];
        let mut fired = Vec::new();
        let mut analyzer = crate::strict::Analyzer::default();
        for (n, ctx) in contexts().iter().enumerate() {
            let strict = analyzer.analyse_exec(&ctx.exec);
            describer.learn_names(ctx);
            let mut event = describer.describe(ctx, strict.as_ref());
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(serde_json::to_string(&event).unwrap(), json.to_string());
            let whole = Document::from_json(&json);
            assert_eq!(event.document(None), whole, "exec {n}");
            let verdicts =
                |doc: &Document| set.evaluate(doc).map(|r| r.id.clone()).collect::<Vec<_>>();
            let only_read = event.document(Some(&wanted(&set)));
            assert!(only_read.len() < whole.len());
            assert_eq!(verdicts(&only_read), verdicts(&whole), "exec {n}");
            fired.extend(verdicts(&whole));
            for rule in rules.iter().chain([&referenced]) {
                let template = AlertTemplate::new(rule);
                event.boot_copy.seq = Some(7);
                let typed = serde_json::to_string(&alert(&template, rule, &event)).unwrap();
                event.boot_copy.seq = None;
                let generic = generic_alert(rule, &serde_json::to_value(&event).unwrap(), 7);
                assert_eq!(typed, generic.to_string(), "exec {n}, rule {}", rule.name);
                if std::ptr::eq(rule, &referenced) {
                    let a: Value = serde_json::from_str(&typed).unwrap();
                    assert_eq!(
                        a["boot_copy"]["rule"]["references"][1],
                        "https://b.example/"
                    );
                }
            }
        }
        // Both rules fired on some exec: the verdicts compared above were not all empty.
        fired.sort();
        fired.dedup();
        assert_eq!(fired.len(), 2, "{fired:?}");
    }
}

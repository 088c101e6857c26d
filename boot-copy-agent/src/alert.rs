//! Alert documents (ECS 9.4): the source event's process, host, user and group fields unchanged,
//! plus the rule's identity, scoring and ATT&CK mapping. One builder, [`Alerts`], serves the
//! daemon and `replay`: the daemon's alerts are replay's plus the agent's own fields.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value, json};
use std::borrow::Cow;

use crate::describe::{NAMESPACE, exec::ProcessFields};
use crate::sink::Severity;
use boot_copy_rules::{Rule, RuleSet};

/// `rule.ruleset` of every alert: the rules this agent loads.
pub const RULESET: &str = "boot-copy";

/// Top-level source-event fields an alert carries over unchanged (nested or dotted spelling).
const CARRIED: &[&str] = &[
    "@timestamp",
    "process",
    "host",
    "user",
    "group",
    "file",
    "container",
    "orchestrator",
];

/// The fields an alert gets from its rule, as nested ECS objects:
/// `event.{kind, severity, risk_score}`, `rule.*` and `threat.*` (arrays, one element per
/// tactic/technique/sub-technique, in the rule's order, without duplicates). A rule with several
/// references has the first in `rule.reference` and all in `boot_copy.rule.references`.
pub fn rule_fields(rule: &Rule) -> Map<String, Value> {
    let mut rule_obj = Map::new();
    rule_obj.insert("id".into(), json!(rule.id));
    // Elastic gives a rule a uuid per installation; a file-based rule's stable id is its rule_id.
    rule_obj.insert("uuid".into(), json!(rule.id));
    rule_obj.insert("ruleset".into(), json!(RULESET));
    rule_obj.insert("name".into(), json!(rule.name));
    rule_obj.insert("version".into(), json!(rule.version.to_string()));
    rule_obj.insert("description".into(), json!(rule.description.trim()));
    rule_obj.insert("author".into(), json!(rule.author));
    if let Some(license) = &rule.license {
        rule_obj.insert("license".into(), json!(license));
    }
    // ECS `rule.reference` holds one value: the first reference; all of them go under the
    // project's own namespace when there are several.
    let mut custom = None;
    if let Some(first) = rule.references.first() {
        rule_obj.insert("reference".into(), json!(first));
        if rule.references.len() > 1 {
            custom = Some(json!({"rule": {"references": rule.references}}));
        }
    }

    let mut out = Map::new();
    out.insert(
        "event".into(),
        json!({
            "kind": "alert",
            "severity": rule.severity_score(),
            "risk_score": rule.risk_score,
        }),
    );
    out.insert("rule".into(), Value::Object(rule_obj));
    if let Some(threat) = threat_fields(rule) {
        out.insert("threat".into(), threat);
    }
    if let Some(custom) = custom {
        out.insert("boot_copy".into(), custom);
    }
    out
}

fn push_unique(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_owned());
    }
}

fn threat_fields(rule: &Rule) -> Option<Value> {
    if rule.threat.is_empty() {
        return None;
    }
    let (mut frameworks, mut ta_id, mut ta_name, mut ta_ref) = (vec![], vec![], vec![], vec![]);
    let (mut te_id, mut te_name, mut te_ref) = (vec![], vec![], vec![]);
    let (mut st_id, mut st_name, mut st_ref) = (vec![], vec![], vec![]);
    for t in &rule.threat {
        push_unique(&mut frameworks, &t.framework);
        push_unique(&mut ta_id, &t.tactic.id);
        push_unique(&mut ta_name, &t.tactic.name);
        push_unique(&mut ta_ref, &t.tactic.reference);
        for te in &t.techniques {
            push_unique(&mut te_id, &te.id);
            push_unique(&mut te_name, &te.name);
            push_unique(&mut te_ref, &te.reference);
            for st in &te.subtechniques {
                push_unique(&mut st_id, &st.id);
                push_unique(&mut st_name, &st.name);
                push_unique(&mut st_ref, &st.reference);
            }
        }
    }
    let mut threat = Map::new();
    threat.insert(
        "framework".into(),
        if frameworks.len() == 1 {
            json!(frameworks[0])
        } else {
            json!(frameworks)
        },
    );
    threat.insert(
        "tactic".into(),
        json!({"id": ta_id, "name": ta_name, "reference": ta_ref}),
    );
    if !te_id.is_empty() {
        let mut technique = Map::new();
        technique.insert("id".into(), json!(te_id));
        technique.insert("name".into(), json!(te_name));
        technique.insert("reference".into(), json!(te_ref));
        if !st_id.is_empty() {
            technique.insert(
                "subtechnique".into(),
                json!({"id": st_id, "name": st_name, "reference": st_ref}),
            );
        }
        threat.insert("technique".into(), Value::Object(technique));
    }
    Some(Value::Object(threat))
}

/// The alerts of a rule set, each rule's fields made once.
pub struct Alerts {
    /// `fields[i]`: [`rule_fields`] of the set's rule `i`.
    fields: Vec<Map<String, Value>>,
}

impl Alerts {
    pub fn new(rules: &RuleSet) -> Self {
        Self {
            fields: rules.rules().iter().map(rule_fields).collect(),
        }
    }

    /// The alert of `rule`, the set's rule `i`, raised by the JSON `event`: the event's
    /// `@timestamp`, `process.*`, `host.*`, `user.*`, `group.*` and `event.*` fields unchanged
    /// (nested or dotted), except that `event.kind` and the scoring become the rule's; then the
    /// rule's fields, the rule's name as `message` and a one-line `event.reason`. What `replay`
    /// writes.
    pub fn build(&self, i: usize, rule: &Rule, event: &Map<String, Value>) -> Map<String, Value> {
        let reason = reason(rule, &json_reason_parts(event));
        let carried = event
            .iter()
            .filter(|(key, _)| is_carried(key))
            .map(|(key, value)| (key.clone(), value.clone()));
        assemble(carried, &self.fields[i], rule, reason)
    }

    /// [`build`](Self::build) for an event this agent saw, whose fields move into the alert:
    /// with its `ecs` and `agent`, and the event's own `boot_copy` fields beside the rule's.
    /// What the daemon writes for a file event.
    pub fn build_own(&self, i: usize, rule: &Rule, event: Map<String, Value>) -> Alert<'static> {
        let reason = reason(rule, &json_reason_parts(&event));
        Alert {
            doc: Value::Object(self.own(i, rule, event, reason)),
            process: None,
        }
    }

    /// [`build_own`](Self::build_own) for an exec's event, given as its JSON fields but
    /// `process` and, apart, its typed `process` (which holds the exec's argv): the alert is
    /// the same, but its line is written straight from `process`.
    pub fn build_exec<'a>(
        &self,
        i: usize,
        rule: &Rule,
        event: Map<String, Value>,
        process: &'a ProcessFields<'a>,
    ) -> Alert<'a> {
        let reason = reason(rule, &exec_reason_parts(&event, process));
        Alert {
            doc: Value::Object(self.own(i, rule, event, reason)),
            process: Some(process),
        }
    }

    /// The alert of an event this agent saw, its `ecs`, `agent` and `boot_copy` included.
    fn own(
        &self,
        i: usize,
        rule: &Rule,
        mut event: Map<String, Value>,
        reason: String,
    ) -> Map<String, Value> {
        let own: Vec<(String, Value)> = ["ecs", "agent", NAMESPACE]
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), event.remove(key)?)))
            .collect();
        let carried = event.into_iter().filter(|(key, _)| is_carried(key));
        let mut alert = assemble(carried, &self.fields[i], rule, reason);
        for (key, value) in own {
            match (alert.get_mut(&key), value) {
                (Some(Value::Object(ours)), Value::Object(theirs)) => ours.extend(theirs),
                (_, value) => {
                    alert.insert(key, value);
                }
            }
        }
        alert
    }
}

/// An alert on its way to the sinks. An exec's alert keeps the event's `process` fields as
/// the typed event holds them, borrowing the exec's text: its line is serialized straight from
/// them, so a megabyte argv is never also a JSON document (which took as much again as the
/// line, in thousands of allocations).
#[derive(Debug)]
pub struct Alert<'a> {
    /// A JSON object: every field, but `process` when that is apart.
    doc: Value,
    process: Option<&'a ProcessFields<'a>>,
}

impl Alert<'_> {
    /// The alert's fields (but a `process` kept apart), for the writer to number and seal.
    pub fn doc_mut(&mut self) -> &mut Value {
        &mut self.doc
    }

    /// The alert as one JSON object, `process` included: what the HMAC chain seals, as it
    /// hashes the whole record.
    pub fn into_whole(self) -> Alert<'static> {
        let mut doc = self.doc;
        if let (Some(p), Value::Object(fields)) = (self.process, &mut doc) {
            let p = serde_json::to_value(p).expect("process fields serialize");
            fields.insert("process".into(), p);
        }
        Alert { doc, process: None }
    }

    /// The alert's JSON line: byte for byte the serialization of [`into_whole`](Self::into_whole).
    pub fn line(&self) -> String {
        let line = match (&self.doc, self.process) {
            (Value::Object(fields), Some(process)) => {
                serde_json::to_string(&Spliced { fields, process })
            }
            (doc, _) => serde_json::to_string(doc),
        };
        line.expect("an alert serializes")
    }
}

/// An alert's fields with `process` serialized from the typed event, where its key sorts:
/// serde_json's maps are sorted by key, and the typed fields are declared in key order, so the
/// bytes are those of the whole alert as one JSON object.
struct Spliced<'a> {
    fields: &'a Map<String, Value>,
    process: &'a ProcessFields<'a>,
}

impl Serialize for Spliced<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const KEY: &str = "process";
        let mut map = s.serialize_map(Some(self.fields.len() + 1))?;
        let mut process = Some(self.process);
        for (key, value) in self.fields {
            if key.as_str() > KEY
                && let Some(p) = process.take()
            {
                map.serialize_entry(KEY, p)?;
            }
            map.serialize_entry(key, value)?;
        }
        if let Some(p) = process {
            map.serialize_entry(KEY, p)?;
        }
        map.end()
    }
}

/// The syslog severity of a rule's alerts.
pub fn severity(rule: &Rule) -> Severity {
    match rule.severity.as_str() {
        "low" => Severity::Notice,
        "critical" => Severity::Err,
        _ => Severity::Warning,
    }
}

/// Whether an event field goes into its alerts (see [`Alerts::build`]).
fn is_carried(key: &str) -> bool {
    let top = key.split('.').next().unwrap_or(key);
    CARRIED.contains(&top) || top == "event"
}

/// The alert of the `carried` event fields, the rule's `fields`, its name as `message` (stable
/// per rule: Kibana's External Alerts rule names its alerts by it) and the `reason` summary.
fn assemble(
    carried: impl Iterator<Item = (String, Value)>,
    fields: &Map<String, Value>,
    rule: &Rule,
    reason: String,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in carried {
        if key == "event" || key.starts_with("event.") {
            carry_event_fields(&mut out, key, value);
        } else {
            out.insert(key, value);
        }
    }
    for (key, value) in fields {
        match (out.get_mut(key), value) {
            (Some(Value::Object(mine)), Value::Object(theirs)) => {
                mine.extend(theirs.iter().map(|(k, v)| (k.clone(), v.clone())))
            }
            (_, value) => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    // The rule's fields always hold `event` (kind and scoring).
    if let Some(Value::Object(event)) = out.get_mut("event") {
        event.insert("reason".into(), Value::String(reason));
    }
    out.insert("message".into(), Value::String(rule.name.clone()));
    out
}

/// `event.*` fields the alert sets itself (its kind, scoring and reason replace the source's).
const RULE_EVENT_FIELDS: &[&str] = &["kind", "severity", "risk_score", "reason"];

fn carry_event_fields(out: &mut Map<String, Value>, key: String, value: Value) {
    match (key.as_str(), value) {
        ("event", Value::Object(mut fields)) => {
            fields.retain(|k, _| !RULE_EVENT_FIELDS.contains(&k.as_str()));
            out.insert(key, Value::Object(fields));
        }
        (dotted, v)
            if !RULE_EVENT_FIELDS
                .iter()
                .any(|f| dotted == format!("event.{f}")) =>
        {
            out.insert(key, v);
        }
        _ => {}
    }
}

/// The longest command line `event.reason` quotes, in bytes.
const REASON_COMMAND: usize = 200;

/// What an alert's `event.reason` says.
#[derive(Debug, Default)]
struct ReasonParts<'a> {
    user_name: Option<&'a str>,
    user_id: Option<&'a str>,
    /// The command line, else the executable, else the process name.
    command: Option<Cow<'a, str>>,
    pid: Option<String>,
    parent_name: Option<&'a str>,
    parent_executable: Option<&'a str>,
    parent_pid: Option<String>,
}

/// Who ran what, under which parent: "Boot File Copy: root ran `cp a /boot/x` (pid 10) under
/// bash (/usr/bin/bash, pid 9)". Parts the event lacks are left out.
fn reason(rule: &Rule, p: &ReasonParts) -> String {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let mut m = format!("{}:", rule.name);
    if let Some(user) = p.user_name {
        let _ = write!(m, " {user}");
    } else if let Some(id) = p.user_id {
        let _ = write!(m, " uid {id}");
    }
    if let Some(command) = &p.command {
        let _ = write!(m, " ran `{}`", shorten(command, REASON_COMMAND));
    }
    if let Some(pid) = &p.pid {
        let _ = write!(m, " (pid {pid})");
    }
    let parent_exe = p.parent_executable;
    let parent_name = p
        .parent_name
        .or_else(|| parent_exe.map(|x| x.rsplit('/').next().unwrap_or(x)));
    if let Some(name) = parent_name {
        let _ = write!(m, " under {name}");
        match (parent_exe, &p.parent_pid) {
            (Some(exe), Some(pid)) => _ = write!(m, " ({exe}, pid {pid})"),
            (Some(exe), None) => _ = write!(m, " ({exe})"),
            (None, Some(pid)) => _ = write!(m, " (pid {pid})"),
            (None, None) => {}
        }
    }
    m
}

/// The reason parts of a JSON event.
fn json_reason_parts(e: &Map<String, Value>) -> ReasonParts<'_> {
    let text = |path: &str| lookup(e, path).and_then(Value::as_str);
    let number = |path: &str| {
        lookup(e, path)
            .filter(|v| v.is_number())
            .map(Value::to_string)
    };
    ReasonParts {
        user_name: text("user.name"),
        user_id: text("user.id"),
        command: ["process.command_line", "process.executable", "process.name"]
            .iter()
            .find_map(|p| text(p))
            .map(Cow::Borrowed),
        pid: number("process.pid"),
        parent_name: text("process.parent.name"),
        parent_executable: text("process.parent.executable"),
        parent_pid: number("process.parent.pid"),
    }
}

/// The reason parts of an exec's event: the user from its JSON fields, the rest from its typed
/// `process`, as [`json_reason_parts`] finds them in the whole event.
fn exec_reason_parts<'a>(e: &'a Map<String, Value>, p: &'a ProcessFields<'_>) -> ReasonParts<'a> {
    let parent = p.parent.as_deref();
    ReasonParts {
        command: (p.argv.as_ref().map(|a| a.command_line_head(REASON_COMMAND)))
            .or(p.executable.as_deref().map(Cow::Borrowed))
            .or(p.name.as_deref().map(Cow::Borrowed)),
        pid: Some(p.pid.to_string()),
        parent_name: parent.and_then(|q| q.name.as_deref()),
        parent_executable: parent.and_then(|q| q.executable.as_deref()),
        parent_pid: parent.map(|q| q.pid.to_string()),
        ..json_reason_parts(e)
    }
}

/// At most `max` bytes of `s` (on a character boundary), marked when cut.
fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let cut = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &s[..cut]).into()
}

/// A field of `obj` by dotted path, whether the event spells it nested, dotted or mixed.
fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    path.match_indices('.')
        .find_map(|(i, _)| match obj.get(&path[..i]) {
            Some(Value::Object(inner)) => lookup(inner, &path[i + 1..]),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_of_the_bundled_rule_with_the_agents_own_fields() {
        let rule = boot_copy_rules::bundled().remove(0);
        let alerts = Alerts::new(&RuleSet::from_rules(vec![rule.clone()]));
        let event = json!({
            "ecs": {"version": "9.4.0"},
            "agent": {"type": "boot-copy"},
            "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
            "user": {"id": "0", "name": "root"},
            "process": {"pid": 10, "command_line": "cp a /boot/x", "parent": {"pid": 9, "name": "bash", "executable": "/usr/bin/bash"}},
            "boot_copy": {"process": {"comm": "cp"}},
        });
        let a = alerts
            .build_own(0, &rule, event.as_object().unwrap().clone())
            .doc;
        assert_eq!(a["event"]["kind"], "alert");
        assert_eq!(a["event"]["category"], json!(["process"]));
        assert_eq!(a["event"]["severity"], 21);
        assert_eq!(a["rule"]["id"], "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
        assert_eq!(a["message"], "Boot File Copy");
        assert_eq!(
            a["event"]["reason"],
            "Boot File Copy: root ran `cp a /boot/x` (pid 10) under bash (/usr/bin/bash, pid 9)"
        );
        assert_eq!((&a["ecs"], &a["agent"]), (&event["ecs"], &event["agent"]));
        assert_eq!(a["boot_copy"], event["boot_copy"]);
        let replayed = alerts.build(0, &rule, event.as_object().unwrap());
        assert!(
            ["ecs", "agent", "boot_copy"]
                .iter()
                .all(|k| !replayed.contains_key(*k))
        );
        assert_eq!(severity(&rule), Severity::Notice);
    }

    #[test]
    fn bundled_rule_fields() {
        let rule = &boot_copy_rules::bundled()[0];
        let f = Value::Object(rule_fields(rule));
        assert_eq!(
            f["event"],
            json!({"kind": "alert", "severity": 21, "risk_score": 21})
        );
        assert_eq!(f["rule"]["id"], "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
        assert_eq!(f["rule"]["version"], "2");
        assert_eq!(f["rule"]["author"], json!(["Elastic"]));
        assert_eq!(f["rule"]["license"], "Elastic License v2");
        assert!(f["rule"].get("reference").is_none());
        assert_eq!(f["threat"]["framework"], "MITRE ATT&CK");
        assert_eq!(
            f["threat"]["tactic"]["id"],
            json!(["TA0003", "TA0002", "TA0005"])
        );
        assert_eq!(
            f["threat"]["tactic"]["name"],
            json!(["Persistence", "Execution", "Defense Evasion"])
        );
        assert_eq!(
            f["threat"]["technique"]["id"],
            json!(["T1542", "T1543", "T1574", "T1059"])
        );
        assert_eq!(
            f["threat"]["technique"]["subtechnique"]["id"],
            json!(["T1059.004"])
        );
        assert_eq!(
            f["threat"]["technique"]["subtechnique"]["reference"],
            json!(["https://attack.mitre.org/techniques/T1059/004/"])
        );
    }

    #[test]
    fn references() {
        let mut rule = boot_copy_rules::bundled().remove(0);
        rule.references = vec!["https://a.example/".into()];
        let f = Value::Object(rule_fields(&rule));
        assert_eq!(f["rule"]["reference"], "https://a.example/");
        assert!(f.get("boot_copy").is_none());
        rule.references.push("https://b.example/".into());
        let f = Value::Object(rule_fields(&rule));
        assert_eq!(f["rule"]["reference"], "https://a.example/");
        assert_eq!(
            f["boot_copy"]["rule"]["references"],
            json!(["https://a.example/", "https://b.example/"])
        );
    }

    #[test]
    fn carries_source_fields_unchanged() {
        let rule = &boot_copy_rules::bundled()[0];
        let alerts = Alerts::new(&RuleSet::from_rules(vec![rule.clone()]));
        let event = json!({
            "@timestamp": "2025-01-01T00:00:00Z",
            "process": {"name": "cp", "args": ["cp", "a", "/boot/b"], "command_line": "cp a /boot/b"},
            "host.name": "h",
            "user": {"name": "root"},
            "event": {"kind": "event"},
            "file": {"path": "x"},
            "network": {"type": "ipv4"},
        });
        let a = Value::Object(alerts.build(0, rule, event.as_object().unwrap()));
        assert_eq!(a["process"], event["process"]);
        assert_eq!(a["host.name"], "h");
        assert_eq!(a["user"], event["user"]);
        assert_eq!(a["@timestamp"], event["@timestamp"]);
        // A file event's alert names the file; fields no alert carries are left out.
        assert_eq!(a["file"], event["file"]);
        assert!(a.get("network").is_none());
        assert_eq!(a["event"]["kind"], "alert");
        assert_eq!(a["message"], "Boot File Copy");
        assert_eq!(
            a["event"]["reason"],
            "Boot File Copy: root ran `cp a /boot/b`"
        );
    }

    #[test]
    fn keeps_event_category_and_describes_the_parent() {
        let rule = &boot_copy_rules::bundled()[0];
        let alerts = Alerts::new(&RuleSet::from_rules(vec![rule.clone()]));
        let event = json!({
            "event": {"kind": "event", "category": ["process"], "severity": 3},
            "event.action": "exec",
            "event.kind": "event",
            "user.id": "0",
            "process": {"pid": 10, "command_line": "cp a /boot/x", "parent.pid": 9, "parent": {"executable": "/usr/bin/bash"}},
        });
        let a = Value::Object(alerts.build(0, rule, event.as_object().unwrap()));
        assert_eq!(
            a["event"],
            json!({"category": ["process"], "kind": "alert", "severity": 21, "risk_score": 21,
                   "reason": "Boot File Copy: uid 0 ran `cp a /boot/x` (pid 10) under bash (/usr/bin/bash, pid 9)"})
        );
        assert_eq!(a["event.action"], "exec");
        assert!(a.get("event.kind").is_none());
        assert_eq!(a["message"], "Boot File Copy");
        assert_eq!(shorten("aé", 2), "a…");
    }
}

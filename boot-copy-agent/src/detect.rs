//! The detection path of one exec: ring-buffer record → exec → process context → ECS event →
//! rules and exceptions → budget → alert documents.
use crate::{
    budget::{Budget, BudgetConfig, Suppressed},
    decode,
    ecs::Describer,
    health::Origin,
    process::{clock::rfc3339, context},
    rules::{Document, Rule, RuleSet, alert},
    sink::Severity,
};
use serde_json::{Value, json};
use std::time::{Instant, SystemTime};

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

/// A document for the sinks, with its syslog severity.
#[derive(Debug, Clone)]
pub struct Emit {
    pub doc: Value,
    pub severity: Severity,
    pub alert: bool,
}

pub struct Detector {
    describer: Describer,
    rules: RuleSet,
    /// The strict rule's analysis, and which execs need any work at all.
    gate: crate::strict::Gate,
    budget: Budget,
    pub counts: DetectCounts,
}

impl Detector {
    pub fn new(describer: Describer, rules: RuleSet, budget: BudgetConfig) -> Self {
        Self {
            describer,
            gate: crate::strict::Gate::new(rules.rules()),
            rules,
            budget: Budget::new(budget),
            counts: DetectCounts::default(),
        }
    }

    /// Replaces the rules (SIGHUP reload). Budget windows carry over.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.gate = crate::strict::Gate::new(rules.rules());
        self.rules = rules;
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn describer(&mut self) -> &mut Describer {
        &mut self.describer
    }

    /// Handles one ring-buffer record, pushing any alert (and any suppression summary of a
    /// window that just closed) onto `out`.
    pub fn handle(&mut self, record: &[u8], now: Instant, out: &mut Vec<Emit>) {
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
        let mut event = self.describer.exec_event(&ctx);
        if let Some(a) = strict {
            event[crate::ecs::NAMESPACE]["strict"] = a.fields();
        }
        let doc = Document::from_json(&event);
        for rule in self.rules.evaluate(&doc) {
            let (admitted, closed) = self.budget.admit(&rule.id, now);
            if let Some(s) = closed {
                out.push(suppressed_record(&self.describer.origin(), &s, now));
            }
            if admitted {
                self.counts.alerts += 1;
                out.push(Emit {
                    doc: alert_doc(rule, &event),
                    severity: severity(rule),
                    alert: true,
                });
            } else {
                self.counts.suppressed += 1;
            }
        }
    }

    /// Suppression summaries of windows that have closed by `now` (or of all, at shutdown).
    pub fn close_windows(&mut self, now: Instant, all: bool, out: &mut Vec<Emit>) {
        let closed = if all {
            self.budget.close_all(now)
        } else {
            self.budget.close_due(now)
        };
        let origin = self.describer.origin();
        out.extend(closed.iter().map(|s| suppressed_record(&origin, s, now)));
    }
}

/// The exec's event as an alert of `rule`: the rule's alert document plus this agent's own
/// fields (`ecs`, `agent`, and the `boot_copy` namespace of the event).
pub fn alert_doc(rule: &Rule, event: &Value) -> Value {
    let empty = serde_json::Map::new();
    let mut doc = alert::build(rule, event.as_object().unwrap_or(&empty));
    for key in ["ecs", "agent", crate::ecs::NAMESPACE] {
        if let Some(v) = event.get(key) {
            doc.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(doc)
}

fn severity(rule: &Rule) -> Severity {
    match rule.severity.as_str() {
        "low" => Severity::Notice,
        "critical" => Severity::Err,
        _ => Severity::Warning,
    }
}

fn suppressed_record(origin: &Origin, s: &Suppressed, now: Instant) -> Emit {
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
    Emit {
        doc,
        severity: Severity::Warning,
        alert: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_of_the_bundled_rule() {
        let rule = crate::rules::bundled().remove(0);
        let event = json!({
            "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
            "user": {"id": "0", "name": "root"},
            "process": {"pid": 10, "command_line": "cp a /boot/x", "parent": {"pid": 9, "name": "bash", "executable": "/usr/bin/bash"}},
        });
        let a = alert_doc(&rule, &event);
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
}

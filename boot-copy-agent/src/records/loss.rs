//! Loss and suppression records: what the kernel, decoding or a sink dropped, and what the alert
//! budget withheld.
use super::{Counters, Origin, counters::Listed, counters::listed_json};
use crate::context::clock::rfc3339;
use crate::detect::budget::Suppressed;
use serde_json::{Value, json};
use std::time::{Instant, SystemTime};

/// Something was lost between `from` and `to`: `losses` names each stage's new drops.
pub fn loss(
    origin: &Origin,
    losses: &Listed,
    from: SystemTime,
    to: SystemTime,
    totals: &Counters,
) -> Value {
    let described: Vec<String> = losses
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(stage, n)| format!("{n} {stage}"))
        .collect();
    let mut r = origin.record(
        "metric",
        "events-lost",
        to,
        format!("boot-copy lost data: {}", described.join(", ")),
        json!({ "loss": listed_json(losses), "counters": totals.json() }),
    );
    r["event"]["start"] = rfc3339(from).into();
    r["event"]["end"] = rfc3339(to).into();
    r
}

/// Turns growing loss counters into loss records: each record covers the span since the last
/// one and names what was lost in it.
#[derive(Debug)]
pub struct LossTracker {
    reported: Vec<u64>,
    since: SystemTime,
}

impl LossTracker {
    /// Starts from the current counters (earlier losses are not this run's).
    pub fn new(current: &Counters) -> Self {
        Self {
            reported: current.losses().iter().map(|(_, n)| *n).collect(),
            since: SystemTime::now(),
        }
    }

    /// A loss record if any loss counter grew since the last call.
    pub fn check(&mut self, origin: &Origin, counters: &Counters) -> Option<Value> {
        let now = SystemTime::now();
        let losses = counters.losses();
        let new: Listed = losses
            .iter()
            .zip(&self.reported)
            .map(|((name, n), before)| (name.clone(), n.saturating_sub(*before)))
            .collect();
        self.reported = losses.iter().map(|(_, n)| *n).collect();
        let since = std::mem::replace(&mut self.since, now);
        new.iter()
            .any(|(_, n)| *n > 0)
            .then(|| loss(origin, &new, since, now, counters))
    }
}

/// A budget window of `s.rule_id` closed at `now` having withheld `s.count` alerts.
pub fn suppressed(origin: &Origin, s: &Suppressed, now: Instant) -> Value {
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
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot_copy_common::counter;

    #[test]
    fn loss_record_names_stages_and_span() {
        let origin = Origin {
            agent: json!({"type": "boot-copy"}),
            host: json!({"name": "h"}),
        };
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(2);
        let mut totals = Counters::default();
        totals.kernel[counter::RINGBUF_DROPS as usize] = 9;
        let r = loss(
            &origin,
            &vec![
                ("ringbuf_drops".to_owned(), 5),
                ("syslog_dropped".to_owned(), 0),
            ],
            t0,
            t1,
            &totals,
        );
        assert_eq!(r["event"]["kind"], "metric");
        assert_eq!(r["boot_copy"]["loss"]["ringbuf_drops"], 5);
        assert_eq!(r["boot_copy"]["counters"]["ringbuf_drops"], 9);
        assert_eq!(r["event"]["start"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(r["message"], "boot-copy lost data: 5 ringbuf_drops");
    }
}

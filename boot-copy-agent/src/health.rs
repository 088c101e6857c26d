//! Records about the agent itself, written to the same streams as alerts so that a SIEM sees
//! losses, suppression and silence: start, stop, heartbeat, loss and suppression records.
use crate::ecs::{ECS_VERSION, NAMESPACE};
use crate::process::clock::rfc3339;
use serde_json::{Map, Value, json};
use std::time::SystemTime;

/// Named counters, in a stable order, as they appear in records and metrics.
pub type Counters = Vec<(String, u64)>;

/// Fields every record of the agent carries.
pub struct Origin {
    pub agent: Value,
    pub host: Value,
}

impl Origin {
    /// A record of `kind`/`action` at `at` with `message`; `ours` goes under the namespace.
    pub fn record(
        &self,
        kind: &str,
        action: &str,
        at: SystemTime,
        message: String,
        ours: Value,
    ) -> Value {
        json!({
            "@timestamp": rfc3339(at),
            "ecs": { "version": ECS_VERSION },
            "agent": self.agent,
            "host": self.host,
            "event": { "kind": kind, "action": action, "module": "boot_copy", "dataset": "boot_copy.health" },
            "message": message,
            NAMESPACE: ours,
        })
    }
}

pub fn counters_json(counters: &Counters) -> Value {
    Value::Object(
        counters
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect::<Map<String, Value>>(),
    )
}

/// Something was lost between `from` and `to`: `losses` names each stage's new drops.
pub fn loss(
    origin: &Origin,
    losses: &Counters,
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
        json!({ "loss": counters_json(losses), "counters": counters_json(totals) }),
    );
    r["event"]["start"] = rfc3339(from).into();
    r["event"]["end"] = rfc3339(to).into();
    r
}

/// Numbers every record the agent writes, so a SIEM can notice a gap or a reorder.
#[derive(Debug, Default)]
pub struct Sequencer(u64);

impl Sequencer {
    /// Sets `boot_copy.seq` on `doc` to the next number.
    pub fn stamp(&mut self, doc: &mut Value) {
        let seq = self.take();
        if let Some(obj) = doc.as_object_mut() {
            let ours = obj.entry(NAMESPACE).or_insert_with(|| json!({}));
            ours["seq"] = seq.into();
        }
    }

    /// The next number, for a record serialized without a `Value`.
    pub fn take(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    pub fn last(&self) -> u64 {
        self.0
    }
}

/// Turns growing loss counters into loss records: each record covers the span since the last
/// one and names what was lost in it.
#[derive(Debug)]
pub struct LossTracker {
    reported: Vec<u64>,
    since: SystemTime,
}

impl LossTracker {
    /// Starts from the current values of the loss counters (earlier losses are not this run's).
    pub fn new(current: &Counters) -> Self {
        Self {
            reported: current.iter().map(|(_, n)| *n).collect(),
            since: SystemTime::now(),
        }
    }

    /// A loss record if any of `losses` grew since the last call. `losses` must list the same
    /// counters in the same order every time.
    pub fn check(
        &mut self,
        origin: &Origin,
        losses: &Counters,
        totals: &Counters,
    ) -> Option<Value> {
        let now = SystemTime::now();
        let new: Counters = losses
            .iter()
            .zip(&self.reported)
            .map(|((name, n), before)| (name.clone(), n.saturating_sub(*before)))
            .collect();
        self.reported = losses.iter().map(|(_, n)| *n).collect();
        let since = std::mem::replace(&mut self.since, now);
        new.iter()
            .any(|(_, n)| *n > 0)
            .then(|| loss(origin, &new, since, now, totals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_record_names_stages_and_span() {
        let origin = Origin {
            agent: json!({"type": "boot-copy"}),
            host: json!({"name": "h"}),
        };
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(2);
        let c = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<Counters>()
        };
        let r = loss(
            &origin,
            &c(&[("ringbuf_drops", 5), ("syslog_dropped", 0)]),
            t0,
            t1,
            &c(&[("ringbuf_drops", 9)]),
        );
        assert_eq!(r["event"]["kind"], "metric");
        assert_eq!(r["boot_copy"]["loss"]["ringbuf_drops"], 5);
        assert_eq!(r["boot_copy"]["counters"]["ringbuf_drops"], 9);
        assert_eq!(r["event"]["start"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(r["message"], "boot-copy lost data: 5 ringbuf_drops");
    }
}

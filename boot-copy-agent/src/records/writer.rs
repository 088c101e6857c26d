//! Every record on its way out: numbered (`boot_copy.seq`), sealed into the HMAC chain when one
//! is kept, serialized once and offered to each sink.
use crate::alert::Alert;
use crate::context::clock::rfc3339;
use crate::describe::NAMESPACE;
use crate::integrity::chain::Chain;
use crate::sink::{MsgId, Record, Severity, SinkStats, Sinks};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// Numbers every record the agent writes, so a SIEM can notice a gap or a reorder, and gives
/// it its identity: `boot_copy.seq` and `event.sequence` (the same number), `event.id` (this
/// run's random id and the number: unique across runs, so a re-shipped record can be
/// deduplicated) and `event.created` (the wall clock when the record was made).
#[derive(Debug)]
pub struct Sequencer {
    last: u64,
    run: String,
}

impl Default for Sequencer {
    fn default() -> Self {
        Self {
            last: 0,
            run: run_id(),
        }
    }
}

impl Sequencer {
    /// Sets the next number and this record's identity on `doc`.
    pub fn stamp(&mut self, doc: &mut Value) {
        self.last += 1;
        let Some(obj) = doc.as_object_mut() else {
            return;
        };
        let ours = obj.entry(NAMESPACE).or_insert_with(|| json!({}));
        ours["seq"] = self.last.into();
        if let Value::Object(event) = obj.entry("event").or_insert_with(|| json!({})) {
            event.insert("id".into(), format!("{}-{}", self.run, self.last).into());
            event.insert("created".into(), rfc3339(SystemTime::now()).into());
            event.insert("sequence".into(), self.last.into());
        }
    }

    pub fn last(&self) -> u64 {
        self.last
    }
}

/// 128 random bits in hex, from getrandom(2); the clock and pid if that fails (never expected:
/// the kernel's pool is ready long before a service starts).
fn run_id() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer outlives the call and its length is passed.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&(now.as_nanos() as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The daemon's way to the sinks.
pub struct Writer {
    seq: Sequencer,
    /// The HMAC chain, when `integrity.key_file` is set.
    chain: Option<Chain>,
    sinks: Sinks,
}

impl Writer {
    pub fn new(sinks: Sinks, chain: Option<Chain>) -> Self {
        Self {
            seq: Sequencer::default(),
            chain,
            sinks,
        }
    }

    /// An alert; an exec's is serialized straight from its exec's fields (see [`Alert`]).
    pub fn alert(&mut self, alert: Alert<'_>, severity: Severity) {
        let mut alert = match self.chain {
            // The chain hashes the whole record as one document.
            Some(_) => alert.into_whole(),
            None => alert,
        };
        self.seal(alert.doc_mut());
        // A sink still writing the previous alert of a megabyte argv frees it first.
        self.sinks.wait_large();
        let line = alert.line();
        drop(alert);
        self.send(line, severity, MsgId::Alert);
    }

    /// One of the agent's own records.
    pub fn health(&mut self, mut record: Value, severity: Severity) {
        self.seal(&mut record);
        let line = record.to_string();
        drop(record);
        self.send(line, severity, MsgId::Health);
    }

    /// Numbers the record, and seals it into the chain when one is kept.
    fn seal(&mut self, doc: &mut Value) {
        self.seq.stamp(doc);
        if let Some(chain) = &mut self.chain {
            chain.seal(doc);
        }
    }

    /// Offers the line to the sinks. Its document is freed by then: a megabyte alert is not
    /// held twice.
    fn send(&self, line: String, severity: Severity, msgid: MsgId) {
        self.sinks.send(&Record::new(line, severity, msgid));
    }

    /// The number of the last record written.
    pub fn last_seq(&self) -> u64 {
        self.seq.last()
    }

    /// The HMAC of the last record, when records are chained.
    pub fn chain_hex(&self) -> Option<String> {
        self.chain.as_ref().and_then(Chain::last_hex)
    }

    pub fn chained(&self) -> bool {
        self.chain.is_some()
    }

    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    /// Flushes and closes the sinks within `deadline` (see [`Sinks::shutdown`]).
    pub async fn shutdown(self, deadline: Duration) -> Vec<SinkStats> {
        self.sinks.shutdown(deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_gets_its_number_id_and_creation_time() {
        let mut seq = Sequencer::default();
        let mut a = json!({"event": {"kind": "alert"}});
        let mut b = json!({"message": "no event object yet"});
        seq.stamp(&mut a);
        seq.stamp(&mut b);
        assert_eq!(
            (&a["boot_copy"]["seq"], &a["event"]["sequence"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(
            (&b["boot_copy"]["seq"], &b["event"]["sequence"]),
            (&json!(2), &json!(2))
        );
        assert_eq!(a["event"]["kind"], "alert");
        let (ia, ib) = (
            a["event"]["id"].as_str().unwrap(),
            b["event"]["id"].as_str().unwrap(),
        );
        assert_ne!(ia, ib);
        assert!(ia.ends_with("-1") && ia.len() == 34, "{ia}");
        // Another run numbers from 1 again, with other ids.
        let mut other = Sequencer::default();
        let mut c = json!({});
        other.stamp(&mut c);
        assert_ne!(c["event"]["id"], a["event"]["id"]);
        let created = humantime::parse_rfc3339(a["event"]["created"].as_str().unwrap()).unwrap();
        assert!(SystemTime::now().duration_since(created).unwrap() < Duration::from_secs(5));
    }
}

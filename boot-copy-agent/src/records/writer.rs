//! Every record on its way out: numbered (`boot_copy.seq`), sealed into the HMAC chain when one
//! is kept, serialized once and offered to each sink.
use crate::describe::NAMESPACE;
use crate::integrity::chain::Chain;
use crate::sink::{MsgId, Record, Severity, SinkStats, Sinks};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Numbers every record the agent writes, so a SIEM can notice a gap or a reorder.
#[derive(Debug, Default)]
pub struct Sequencer(u64);

impl Sequencer {
    /// Sets `boot_copy.seq` on `doc` to the next number.
    pub fn stamp(&mut self, doc: &mut Value) {
        self.0 += 1;
        if let Some(obj) = doc.as_object_mut() {
            let ours = obj.entry(NAMESPACE).or_insert_with(|| json!({}));
            ours["seq"] = self.0.into();
        }
    }

    pub fn last(&self) -> u64 {
        self.0
    }
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

    pub fn alert(&mut self, alert: Map<String, Value>, severity: Severity) {
        self.write(Value::Object(alert), severity, MsgId::Alert);
    }

    /// One of the agent's own records.
    pub fn health(&mut self, record: Value, severity: Severity) {
        self.write(record, severity, MsgId::Health);
    }

    fn write(&mut self, mut doc: Value, severity: Severity, msgid: MsgId) {
        self.seq.stamp(&mut doc);
        if let Some(chain) = &mut self.chain {
            chain.seal(&mut doc);
        }
        self.sinks
            .send(&Record::new(doc.to_string(), severity, msgid));
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

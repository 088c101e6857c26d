//! The agent's own records, written to the same streams as alerts so that a SIEM sees the agent
//! start and stop, its heartbeat, what it lost or suppressed, and tampering with it: `lifecycle`
//! (start, stop, heartbeat, reloads, an unclean previous run), `loss` (loss and suppression),
//! `guard` (detached programs, changed maps), all from one set of [`Counters`]. The [`Writer`]
//! numbers every record, alerts included, seals it into the HMAC chain and hands it to the
//! sinks; `status` is the status file the next start and `boot-copy-agent status` read.
pub mod counters;
pub mod guard;
pub mod lifecycle;
pub mod loss;
pub mod status;
mod writer;

pub use counters::{Counters, DaemonCounters, KernelCounters};
pub use writer::{Sequencer, Writer};

use crate::context::{clock::rfc3339, host::Host};
use crate::describe::{ECS_VERSION, NAMESPACE, agent_json, host_json};
use serde_json::{Value, json};
use std::time::SystemTime;

/// Fields every record of the agent carries.
pub struct Origin {
    pub agent: Value,
    pub host: Value,
}

impl Origin {
    pub fn new(host: &Host) -> Self {
        Self {
            agent: agent_json(host),
            host: host_json(host),
        }
    }

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

//! An agent watching a test's boot namespace, and waiting for its alerts.
use crate::AGENT;
use boot_copy_harness::{Agent, BootNamespace, Launch, PUBLISHED, WAIT};
use serde_json::Value;

/// `boot-copy-agent run` with `extra` configuration in `ns`: its /boot is the namespace's, as
/// the host's is the packaged agent's.
pub fn agent_in(ns: &BootNamespace, tag: &str, extra: &str) -> Agent {
    Launch::fresh(AGENT, tag, extra)
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap()
}

/// The published rule's alert for the copy to `target`, waited for.
pub fn published_alert_for(agent: &mut Agent, target: &str) -> Value {
    agent
        .wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert"
                && r["rule"]["id"] == PUBLISHED
                && r["process"]["args"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == target))
        })
        .unwrap_or_else(|e| panic!("no alert for {target}: {e}"))
}

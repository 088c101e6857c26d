//! Tampering made visible: kernel programs detached, prefilter maps changed.
use super::Origin;
use crate::integrity::{attachment::Link, maps::Tampering};
use serde_json::{Value, json};
use std::time::SystemTime;

pub fn link_json(link: &Link) -> Value {
    json!({ "tracepoint": link.tracepoint, "link_id": link.link_id, "prog_id": link.prog_id })
}

/// `gone` were detached by another process; `attached` still are.
pub fn detached(origin: &Origin, gone: &[Link], attached: &[Link]) -> Value {
    let names: Vec<String> = gone
        .iter()
        .map(|l| {
            format!(
                "{} (link {}, program {})",
                l.tracepoint, l.link_id, l.prog_id
            )
        })
        .collect();
    origin.record(
        "state",
        "programs-detached",
        SystemTime::now(),
        format!(
            "boot-copy's kernel programs were detached by another process: {}; the agent stops now so that its restart attaches them again",
            names.join(", ")
        ),
        json!({
            "detached": gone.iter().map(link_json).collect::<Vec<_>>(),
            "attached": attached.iter().map(link_json).collect::<Vec<_>>(),
        }),
    )
}

/// Maps another process changed, and whether writing them back worked.
pub fn tampered(origin: &Origin, found: &[Tampering]) -> Value {
    let described: Vec<String> = found
        .iter()
        .map(|t| {
            let mut parts = Vec::new();
            if !t.removed.is_empty() {
                parts.push(format!("removed {}", t.removed.join(", ")));
            }
            if !t.added.is_empty() {
                parts.push(format!("added {}", t.added.join(", ")));
            }
            let outcome = if t.restored {
                "restored"
            } else {
                "NOT restored"
            };
            format!("{} ({}; {outcome})", t.map, parts.join("; "))
        })
        .collect();
    let details: Vec<Value> = found
        .iter()
        .map(|t| json!({ "map": t.map, "removed": t.removed, "added": t.added, "restored": t.restored }))
        .collect();
    origin.record(
        "state",
        "maps-tampered",
        SystemTime::now(),
        format!(
            "boot-copy's kernel maps were changed by another process: {}",
            described.join(", ")
        ),
        json!({ "tampered": details }),
    )
}

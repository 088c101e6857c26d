//! The run's own story: started, heartbeat, rules reloaded (or not), stopped, and, at the next
//! start, a previous run that did not stop cleanly.
use super::{Counters, Origin, guard::link_json, status::Status};
use crate::context::clock::rfc3339;
use crate::detect::rules::LoadedRules;
use crate::integrity::attachment::Link;
use boot_copy_common::counter;
use serde_json::{Value, json};
use std::time::SystemTime;

/// What the start record says about the run.
pub struct Start<'a> {
    pub rules: &'a LoadedRules,
    /// Processes seeded into the kernel's table from /proc.
    pub seeded: usize,
    /// The capabilities kept after the drop.
    pub capabilities: &'a [String],
    pub programs: &'a [Link],
    pub chained: bool,
    pub guarded_maps: Vec<&'static str>,
    /// Kernel fields the relocation BTF lacks.
    pub degraded: &'a [&'static str],
    /// Whether the kernel's path hooks resolve path-named file operations.
    pub path_hooks: bool,
}

pub fn started(origin: &Origin, s: &Start) -> Value {
    let rules: Vec<Value> = s
        .rules
        .set
        .rules()
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name, "version": r.version, "source": r.source.display().to_string() }))
        .collect();
    let degraded_note = if s.degraded.is_empty() {
        String::new()
    } else {
        format!(
            "; the kernel BTF lacks {}, whose values are left empty",
            s.degraded.join(", ")
        )
    };
    origin.record(
        "state",
        "agent-started",
        SystemTime::now(),
        format!(
            "boot-copy {} started: rules {}; watching {}{degraded_note}",
            env!("CARGO_PKG_VERSION"),
            s.rules.names(),
            s.rules.prefilter
        ),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
            "prefilter": s.rules.prefilter.to_string(),
            "seeded_processes": s.seeded,
            "capabilities": s.capabilities,
            "programs": s.programs.iter().map(link_json).collect::<Vec<_>>(),
            "chained": s.chained,
            "guarded_maps": s.guarded_maps,
            "sensor": { "degraded_fields": s.degraded, "path_hooks": s.path_hooks },
        }),
    )
}

pub fn heartbeat(origin: &Origin, c: &Counters) -> Value {
    let message = format!(
        "boot-copy heartbeat: {} execs seen, {} candidates, {} alerts, {} suppressed, {} kernel drops",
        c.kernel(counter::EXECS_SEEN),
        c.detect.candidates,
        c.detect.alerts,
        c.detect.suppressed,
        c.kernel(counter::RINGBUF_DROPS),
    );
    origin.record(
        "metric",
        "heartbeat",
        SystemTime::now(),
        message,
        json!({ "counters": c.json() }),
    )
}

/// SIGHUP loaded `rules`.
pub fn reloaded(origin: &Origin, rules: &LoadedRules) -> Value {
    let message = format!(
        "boot-copy reloaded rules: {}; watching {}",
        rules.names(),
        rules.prefilter
    );
    origin.record(
        "state",
        "rules-reloaded",
        SystemTime::now(),
        message,
        json!({}),
    )
}

/// SIGHUP found the configuration or rules invalid; the running ones stay.
pub fn reload_failed(origin: &Origin, error: &anyhow::Error) -> Value {
    let message = format!("boot-copy kept its running rules; reload failed: {error:#}");
    origin.record(
        "state",
        "reload-failed",
        SystemTime::now(),
        message,
        json!({}),
    )
}

pub fn stopped(origin: &Origin, c: &Counters) -> Value {
    origin.record(
        "state",
        "agent-stopped",
        SystemTime::now(),
        "boot-copy stopped".to_owned(),
        json!({ "counters": c.json() }),
    )
}

/// The previous run (`prev`, from the status file) died: nothing was watched from its last
/// status write until now.
pub fn unclean(origin: &Origin, prev: &Status) -> Value {
    let mut r = origin.record(
        "state",
        "previous-run-unclean",
        SystemTime::now(),
        format!(
            "boot-copy's previous run (pid {}) did not stop cleanly: nothing was watched from {} until this start",
            prev.pid, prev.updated
        ),
        json!({ "previous": { "pid": prev.pid, "last_seq": prev.seq, "last_alive": prev.updated, "counters": prev.counters } }),
    );
    r["event"]["start"] = prev.updated.clone().into();
    r["event"]["end"] = rfc3339(SystemTime::now()).into();
    r
}

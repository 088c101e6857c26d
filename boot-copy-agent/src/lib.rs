//! boot-copy agent: a kernel exec sensor and Elastic's Boot File Copy rule, evaluated natively.
//!
//! Modules in the order an exec flows through them: `sensor` (load, attach, ring buffer) →
//! `decode` (ring-buffer records into exec events) → `context` (the exec joined with its parent,
//! the host, the clock) → `describe` (events as ECS documents) → `detect` (rules, exceptions and
//! the alert budget; the rule engine is the crate `boot-copy-rules`, the strict rule's analysis
//! `strict`) → `alert`
//! (alert documents) → `records` (the agent's own records, numbering, the HMAC chain, counters,
//! the status file) → `sink` (alert log, syslog, stdout) and `metrics`. Beside them: `commands`
//! (what the CLI runs; `rules` holds replay and the rule listing for its offline commands), `config` (the TOML configuration), `memory` (the heap handed back after megabyte records), `privilege` (drops capabilities after
//! attaching), `integrity` (the chain, its verifier and the watches on the programs' links and
//! the prefilter maps) and `service` (systemd notifications).
pub mod sensor;

pub mod decode;

pub mod context;

pub mod describe;

pub mod detect;
pub mod strict;

pub mod alert;

pub mod records;

pub mod metrics;
pub mod sink;

pub mod commands;
pub mod config;
pub mod integrity;
pub mod memory;
pub mod privilege;
pub mod rules;
pub mod service;

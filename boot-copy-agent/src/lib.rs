//! boot-copy agent: a kernel exec sensor and Elastic's Boot File Copy rule, evaluated natively.
//!
//! Modules follow the data path: `sensor` (load, attach, ring buffer) → `decode` (records into
//! exec events) → `process` (host, clock, parent context) → `ecs` (events as ECS documents) →
//! `rules` (the rule engine is the crate `boot-copy-rules`; here, the alerts for matched
//! rules, replay and the rule listing) → `budget` (alerts per rule and window) →
//! `health` (the agent's own records) → `commands` (what the CLI runs). `config` is the TOML
//! configuration; `privilege` drops capabilities after attaching; `integrity` holds the HMAC
//! chain, its verifier and the watches on the programs' links and the prefilter maps.
pub mod budget;
pub mod commands;
pub mod config;
pub mod decode;
pub mod detect;
pub mod ecs;
pub mod health;
pub mod integrity;
pub mod metrics;
pub mod privilege;
pub mod process;
pub mod rules;
pub mod sensor;
pub mod service;
pub mod sink;
pub mod status;
pub mod strict;

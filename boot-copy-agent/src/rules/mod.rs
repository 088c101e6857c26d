//! What the agent adds to the rule engine (crate `boot-copy-rules`) for its offline commands:
//! recorded events replayed through the rules ([`replay`], with the same alert builder as the
//! daemon) and the listing of `boot-copy-agent rules` ([`list`]).

pub mod list;
pub mod replay;

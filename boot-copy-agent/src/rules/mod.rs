//! What the agent adds to the rule engine (crate `boot-copy-rules`): alert documents for the
//! rules an event matched ([`alert`]), recorded events replayed through the rules ([`replay`])
//! and the listing of `boot-copy-agent rules` ([`list`]).

pub mod alert;
pub mod list;
pub mod replay;

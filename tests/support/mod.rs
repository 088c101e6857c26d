//! Checks the test modules share.
pub mod boot_agent;
pub mod ecs_schema;
pub mod uring;

//! Checks the test modules share.
pub mod ecs_schema;

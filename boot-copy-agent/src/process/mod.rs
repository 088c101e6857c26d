//! Process context: who ran what, under which parent, on which host, and when.
pub mod clock;
pub mod context;
pub mod host;
pub mod paths;
pub mod procfs;

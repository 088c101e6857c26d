//! Process context: who ran what, under which parent, on which host, and when. `exec` joins an
//! exec with its parent; `host`, `clock`, `procfs` and `paths` are what it and `describe` read.
pub mod clock;
pub mod exec;
pub mod host;
pub mod paths;
pub mod procfs;

//! Process context: who ran what, under which parent, on which host, and when. `exec` joins an
//! exec with its parent; `host`, `clock`, `procfs` and `paths` are what it and `describe` read;
//! `container` names a process's container from its cgroup; `session` finds its leaders.
pub mod clock;
pub mod container;
pub mod exec;
pub mod host;
pub mod paths;
pub mod procfs;
pub mod session;

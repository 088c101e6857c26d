//! Process context: who ran what, under which parent, on which host, and when. `exec` joins an
//! exec with its parent; `host`, `clock`, `procfs` and `paths` are what it and `describe` read;
//! `container` names a process's container from its cgroup; `env` picks the captured variables
//! of its environment; `session` finds its leaders, `cgroups` its container from the cgroup the
//! kernel recorded, `boot` whether its /boot is the host's; `lookups` holds these three across
//! events.
pub mod boot;
pub mod cgroups;
pub mod clock;
pub mod container;
pub mod env;
pub mod exec;
pub mod host;
pub mod lookups;
pub mod paths;
pub mod procfs;
pub mod session;

//! What the agent looks up about a process beyond its record: its leaders, its container and
//! whether its `/boot` is the host's. Kept across events (caches), so held by whoever handles
//! them.
use super::{boot::BootFs, cgroups::Cgroups, exec::ExecContext, session::Sessions};

pub struct Lookups {
    pub sessions: Sessions,
    cgroups: Cgroups,
    boot: BootFs,
}

impl Lookups {
    pub fn new(sessions: Sessions) -> Self {
        Self {
            sessions,
            cgroups: Cgroups::unified(),
            boot: BootFs::of_host(),
        }
    }

    /// Fills what `ctx`'s record does not say.
    pub fn join(&mut self, ctx: &mut ExecContext) {
        ctx.join_session(&mut self.sessions);
        let (e, s) = (&ctx.exec, &ctx.exec.session);
        ctx.container = self.cgroups.container(e.tgid, e.ppid, s.cgroup_id);
        ctx.host_boot = self.boot.is_host(e.tgid, e.ppid, s.mnt_ns);
    }
}

impl Default for Lookups {
    fn default() -> Self {
        Self::new(Sessions::default())
    }
}

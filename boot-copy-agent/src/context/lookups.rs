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
            cgroups: Cgroups::mounted(),
            boot: BootFs::of_host(),
        }
    }

    /// Fills what `ctx`'s record does not say.
    pub fn join(&mut self, ctx: &mut ExecContext) {
        self.join_but_boot(ctx);
        self.join_boot(ctx);
    }

    /// Fills all but whether its `/boot` is the host's, which costs two `/proc` reads and is
    /// read by few rules ([`Lookups::join_boot`] adds it when wanted).
    pub fn join_but_boot(&mut self, ctx: &mut ExecContext) {
        ctx.join_session(&mut self.sessions);
        let (e, s) = (&ctx.exec, &ctx.exec.session);
        ctx.container =
            self.cgroups
                .container(e.tgid, e.ppid, (s.cgroup_id, s.memory_cgroup_id, s.mnt_ns));
    }

    /// Adds whether the `/boot` it sees is the host's.
    pub fn join_boot(&mut self, ctx: &mut ExecContext) {
        ctx.host_boot = self.host_boot(ctx);
    }

    /// Whether the `/boot` the process of `ctx` sees is the host's (`None`: unknown).
    pub fn host_boot(&mut self, ctx: &ExecContext) -> Option<bool> {
        let e = &ctx.exec;
        self.boot.is_host(e.tgid, e.ppid, e.session.mnt_ns)
    }
}

impl Default for Lookups {
    fn default() -> Self {
        Self::new(Sessions::default())
    }
}

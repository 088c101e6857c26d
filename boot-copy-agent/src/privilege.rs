//! Least privilege after start-up. Loading and attaching the programs needs CAP_BPF and
//! CAP_PERFMON; once they are attached and their maps and ring buffer are open, the agent keeps
//! only what the rest of the run uses:
//!
//! - CAP_BPF: the bpf(2) calls on maps already open (counters, the prefilter maps on reload).
//!   Older kernels (5.10 and 6.1 among them) refuse every bpf(2) command without it when
//!   unprivileged BPF is disabled, as Debian does by default (`kernel.unprivileged_bpf_disabled
//!   = 2`);
//! - CAP_SYS_PTRACE: /proc/PID/exe and cwd of other users' processes, and of root processes
//!   holding capabilities the agent no longer has, for parents the kernel table does not know
//!   and for the strict rule's target resolution.
//!
//! Everything else goes, from the effective, permitted, inheritable, ambient and (when the
//! agent may change it, i.e. holds CAP_SETPCAP) bounding sets, and no_new_privs is set. The
//! log files are root's in a root-owned directory, so reopening them needs no capability.
//! Capabilities are per thread: this runs before any other thread starts.
use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities the running agent keeps.
pub const KEPT: [Capability; 2] = [Capability::CAP_BPF, Capability::CAP_SYS_PTRACE];

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("dropping capabilities ({what}): {source}")]
    Caps {
        what: &'static str,
        source: caps::errors::CapsError,
    },
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(nix::errno::Errno),
    #[error(
        "capabilities are per thread and {threads} threads run: dropping them must happen before any other thread starts"
    )]
    Threads { threads: usize },
}

/// Drops every capability but [`KEPT`] (those the process holds); returns the kept set.
pub fn drop_capabilities() -> Result<CapsHashSet, PrivilegeError> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        return Err(PrivilegeError::Threads { threads });
    }
    let err = |what| move |source| PrivilegeError::Caps { what, source };
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("reading"))?;
    let keep: CapsHashSet = KEPT.into_iter().filter(|c| permitted.contains(c)).collect();
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    // Under systemd (no CAP_SETPCAP) the unit's CapabilityBoundingSet= already bounds it.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(err("reading"))?;
        for cap in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(err("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("permitted"))?;
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)?;
    Ok(keep)
}

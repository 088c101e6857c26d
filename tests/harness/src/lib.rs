//! Starting `boot-copy-agent` the way the end-to-end tests, the kernel matrix, `cargo xtask
//! bench` and `cargo xtask stress` all do: a `run` writing every file into a directory of its own
//! with its records read back from the alert log ([`Agent`]), an `events` stream
//! ([`Events`]), copies into /boot made in a private mount namespace with a tmpfs over /boot
//! ([`in_boot_namespace`]), and rule files of a test's own ([`eql_rule`]). The agent binary is a
//! parameter: the tests pass `env!("CARGO_BIN_EXE_boot-copy-agent")`, xtask its release build.
mod events;
mod namespace;
mod rule;
mod run;
mod scratch;

pub use events::Events;
pub use namespace::{BootKind, BootNamespace, exec_in_boot_namespace, in_boot_namespace};
pub use rule::eql_rule;
pub use run::{Agent, Launch, Stopped, has_arg, refused_run, use_rules_dir};
pub use scratch::{tempdir, unique};

use std::{sync::LazyLock, time::Duration};

/// The published rule, Boot File Copy.
pub const PUBLISHED: &str = "5bda8597-69a6-4b9e-87a2-69a7c963ea83";
/// The strict companion rule.
pub const STRICT: &str = "995bf1fa-2bb9-4ac5-b686-73a539902f99";
/// The bundled file rule, Boot File Write.
pub const FILE_WRITE: &str = "0b1f3f0e-7c8a-4d52-9b0e-5e6a1c2d3f41";

/// How much slower than native this runs: the kernel matrix's guests set
/// `BOOT_COPY_TEST_SLOWDOWN` (under QEMU's emulation the verifier alone takes seconds).
pub fn slowdown() -> u32 {
    std::env::var("BOOT_COPY_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The one wait scale: how long the agent may take to start, to report an exec or to stop.
/// Longer jobs wait a multiple of it.
pub static WAIT: LazyLock<Duration> = LazyLock::new(|| Duration::from_secs(20) * slowdown());

/// What went wrong starting or watching the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The agent exited while it was expected to run.
    #[error("the agent exited: {0}")]
    Exited(std::process::ExitStatus),
    /// Nothing awaited happened in time.
    #[error("{0} within {1:?}")]
    Timeout(String, Duration),
    /// A shell scenario failed.
    #[error("scenario failed ({status}): {script}")]
    Scenario {
        script: String,
        status: std::process::ExitStatus,
    },
    /// A signal could not be sent.
    #[error("signalling the agent: {0}")]
    Signal(#[from] nix::Error),
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Results of the harness.
pub type Result<T> = std::result::Result<T, Error>;

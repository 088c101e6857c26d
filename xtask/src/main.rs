//! Project tasks. `cargo xtask setup|run|test` — see the README.
mod bench;
mod ecs;
mod fuzz;
mod image;
mod package;
mod service;
mod setup;
mod stress;
mod test;
mod vm;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use std::{path::PathBuf, process::Command};

#[derive(Parser)]
#[command(name = "xtask", about = "boot-copy project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing needs (idempotent; quick when present).
    Setup,
    /// Set up, build the agent in release mode and run it as root (default: `run`).
    Run {
        /// Arguments for boot-copy-agent.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up and run the whole test suite (needs root: tests load the kernel programs).
    Test,
    /// Benchmarks: `exec` (throughput with and without the agent and auditd, kernel cost per
    /// exec), `storm` (trigger storm: alerts, drops, latency), `alerts` (latency and CPU per
    /// alert at 20/s), `replay` (rule evaluation throughput), `footprint` (READY time, memory,
    /// seeding); all when none is named. Results in target/bench/.
    Bench { names: Vec<String> },
    /// Fault scenarios longer than the test suite's: repeated ring-buffer overflows with the
    /// syslog receiver down, every exec accounted for, the heap bounded (see xtask/src/stress.rs).
    Stress {
        #[arg(long, default_value_t = 5)]
        cycles: usize,
    },
    /// Fuzz the rule engine's inputs (cargo-fuzz, nightly) for SECONDS per target.
    Fuzz {
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
    /// Regenerate tests/data/ecs_fields.tsv from the official ECS schema.
    EcsExtract {
        /// ecs_flat.yml (default: ../shared/ecs/ecs_flat.yml beside the workspace).
        schema: Option<PathBuf>,
    },
    /// Build the Debian package into target/debian/ and check it with lintian.
    Package,
    /// Build the OCI image localhost/boot-copy-agent:VERSION with podman (no registry; see
    /// deploy/).
    Image,
    /// Boot Debian with systemd as PID 1 under QEMU, install the package, test the service.
    ServiceTest,
    /// Run the scenario set on Debian kernels under QEMU and on the host (see xtask/src/vm.rs).
    VmTest {
        /// 5.10, 6.1, 6.12, host, or a bzImage path (default: 5.10 6.1 6.12 host).
        kernels: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Run { args } => {
            setup::run()?;
            run_agent(args)
        }
        Task::Test => test::run(),
        Task::Bench { names } => {
            setup::run()?;
            bench::run(&names)
        }
        Task::Stress { cycles } => {
            setup::run()?;
            stress::run(cycles)
        }
        Task::Fuzz { seconds } => {
            setup::run()?;
            fuzz::long(seconds)
        }
        Task::EcsExtract { schema } => ecs::run(schema.as_deref()),
        Task::VmTest { kernels } => vm::run(&kernels),
        Task::Package => package::run().map(|_| ()),
        Task::Image => {
            setup::run()?;
            image::run().map(|_| ())
        }
        Task::ServiceTest => service::run(),
    }
}

fn run_agent(mut args: Vec<String>) -> anyhow::Result<()> {
    setup::require_root("running the agent")?;
    cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    if args.is_empty() {
        args.push("run".into());
    }
    let agent = release_agent();
    use std::os::unix::process::CommandExt as _;
    let err = Command::new(&agent).args(&args).exec();
    Err(err).with_context(|| format!("executing {}", agent.display()))
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The agent's release build (`cargo build --release --package boot-copy-agent`).
pub fn release_agent() -> PathBuf {
    workspace_root().join("target/release/boot-copy-agent")
}

/// Runs `cargo ARGS` in the workspace, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args).current_dir(workspace_root()))
}

/// Runs a command, failing with its command line on a non-zero exit.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

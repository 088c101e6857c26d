//! `boot-copy-agent`: the command-line front of the agent.
use anyhow::Context as _;
use boot_copy_agent::{commands, config};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "boot-copy-agent",
    version,
    about = "Boot File Copy detector: an eBPF exec sensor running Elastic's rule natively"
)]
struct Cli {
    /// Configuration file (built-in defaults when the default file is absent).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch every exec, apply the rules, write alerts and health records to the sinks (root).
    Run,
    /// Print one ECS process event per exec as NDJSON (the execs `run` watches, unless --all), and one file event per write into the watched trees (/boot and those the rules name) (root).
    Events {
        /// Every exec on the host, not only those the rules can match.
        #[arg(long)]
        all: bool,
    },
    /// Evaluate recorded ECS process events (NDJSON, `-` for stdin); print the alerts.
    Replay {
        #[arg(value_name = "FILE|-")]
        input: PathBuf,
        /// A rule file or directory instead of the configured rules.
        #[arg(long, value_name = "DIR|FILE")]
        rules: Option<PathBuf>,
    },
    /// Validate the configuration, rules and exceptions; list every problem.
    Check {
        #[arg(long, value_name = "DIR|FILE")]
        rules: Option<PathBuf>,
    },
    /// List the loaded rules, the kernel prefilter derived from them and the trees the file program watches for them.
    Rules {
        #[arg(long, value_name = "DIR|FILE")]
        rules: Option<PathBuf>,
    },
    /// Show the running agent's counters.
    Status,
    /// Make the running agent reload its rules (SIGHUP) and wait until it reports the result:
    /// non-zero if it refused them (the unit's ExecReload).
    Reload {
        /// How long to wait for the agent's report.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
    },
    /// Check the HMAC chain of alert logs (rotated files oldest first, e.g. alerts.ndjson.2
    /// alerts.ndjson.1 alerts.ndjson); name the first line removed, reordered, edited or
    /// inserted.
    Verify {
        /// The chain key (`integrity.key_file`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(value_name = "LOG", required = true)]
        logs: Vec<PathBuf>,
    },
}

/// sysexits(3)'s EX_CONFIG: `run` refused its configuration (the unit does not restart on it).
const EX_CONFIG: u8 = 78;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BOOT_COPY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boot-copy-agent: {e:#}");
            if e.downcast_ref::<commands::run::Misconfigured>().is_some() {
                std::process::ExitCode::from(EX_CONFIG)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit = cli.config.is_some();
    let config_path = cli
        .config
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let with_rules = |rules| commands::offline::config_with_rules(&config_path, explicit, rules);
    match cli.command {
        Command::Run => runtime()?.block_on(commands::run::run(commands::run::Options {
            config: config_path.clone(),
            explicit,
        })),
        Command::Events { all } => {
            let config = with_rules(None)?;
            runtime()?.block_on(commands::events::run(commands::events::Options {
                all,
                rules: commands::load_watched_rules(&config)?,
                btf: config.sensor.btf,
            }))
        }
        Command::Replay { input, rules } => commands::offline::replay(&input, &with_rules(rules)?),
        Command::Check { rules } => commands::offline::check(&with_rules(rules)?),
        Command::Rules { rules } => commands::offline::list_rules(&with_rules(rules)?),
        Command::Status => commands::offline::status(&with_rules(None)?),
        Command::Reload { timeout } => {
            commands::reload::reload(&with_rules(None)?, std::time::Duration::from_secs(timeout))
        }
        Command::Verify { key, logs } => commands::offline::verify(&key, &logs),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

//! Subcommands that need no kernel: `replay`, `check`, `rules`, `status`.
use crate::{
    commands::run::load_rules,
    config::Config,
    rules::{check, replay},
    status::{StatusFile, running},
};
use anyhow::{Context as _, bail};
use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

/// The configuration, with `rules` (from the command line) replacing the configured rules.
pub fn config_with_rules(
    config: &Path,
    explicit: bool,
    rules: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut config = Config::load(config, explicit)?;
    if rules.is_some() {
        config.rules.path = rules;
    }
    Ok(config)
}

/// `replay FILE|-`: alerts for recorded events, on stdout. Fails if any line was skipped.
pub fn replay(input: &Path, config: &Config) -> anyhow::Result<()> {
    let rules = load_rules(config)?;
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
        Box::new(BufReader::new(file))
    };
    let stats = replay::replay(reader, &rules, std::io::stdout().lock())?;
    eprintln!(
        "replay: {} lines, {} events, {} alerts, {} skipped",
        stats.lines, stats.events, stats.alerts, stats.skipped
    );
    if stats.skipped > 0 {
        bail!("{} input lines were skipped (see above)", stats.skipped);
    }
    Ok(())
}

/// `check`: every problem with the config, rules and exceptions.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let problems = check::check_with(
        config.rules.path.as_deref(),
        config.rules.strict,
        &config.exceptions,
    );
    if problems.is_empty() {
        println!("configuration, rules and exceptions are valid");
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    bail!("{} problems found", problems.len())
}

/// `rules`: the loaded rules and the prefilter derived from them.
pub fn list_rules(config: &Config) -> anyhow::Result<()> {
    let rules = load_rules(config)?;
    check::list(&rules, std::io::stdout().lock())?;
    Ok(())
}

/// `status`: the running agent's counters, from its status file.
pub fn status(config: &Config) -> anyhow::Result<()> {
    let file = StatusFile::new(&config.health.state_dir)?;
    let Some(status) = file.read()? else {
        bail!(
            "no status in {}: the agent has not run with this configuration",
            config.health.state_dir.display()
        );
    };
    let state = if status.stopped {
        "stopped cleanly"
    } else if running(&status) {
        "running"
    } else {
        "not running (did not stop cleanly)"
    };
    println!(
        "boot-copy-agent {} (pid {}): {state}",
        status.version, status.pid
    );
    println!(
        "started {}, updated {}, last record #{}",
        status.started, status.updated, status.seq
    );
    if let Some(counters) = status.counters.as_object() {
        for (name, value) in counters {
            println!("  {name:<24} {value}");
        }
    }
    if state == "running" {
        Ok(())
    } else {
        bail!("the agent is not running")
    }
}

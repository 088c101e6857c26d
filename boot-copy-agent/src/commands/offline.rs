//! Subcommands that need no kernel: `replay`, `check`, `rules`, `status`.
use crate::{
    commands::load_rules,
    config::{Config, require_root_owned_rules},
    context::env::EnvNames,
    integrity::{
        chain::Key,
        verify::{Line, verify as verify_chain},
    },
    records::status::{StatusFile, running},
    rules::{list, replay},
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
    let mut problems: Vec<String> = boot_copy_rules::check_with(
        config.rules.path.as_deref(),
        config.rules.bundled(),
        &config.exceptions,
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    // What `run` refuses besides invalid rules: files others could change, an exposed key.
    if let Some(Err(e)) = config.rules.path.as_deref().map(require_root_owned_rules) {
        problems.push(e.to_string());
    }
    if let Some(Err(e)) = config.integrity.key_file.as_deref().map(Key::load) {
        problems.push(format!("{e:#}"));
    }
    if problems.is_empty() {
        println!("configuration, rules and exceptions are valid");
        let env = EnvNames::new(&config.sensor.capture_env_vars);
        for line in list::blind_spots(&load_rules(config)?, &env) {
            println!("warning: {line}");
        }
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    bail!("{} problems found", problems.len())
}

/// `rules`: the loaded rules, the prefilter derived from them and the watched trees.
pub fn list_rules(config: &Config) -> anyhow::Result<()> {
    let rules = load_rules(config)?;
    let env = EnvNames::new(&config.sensor.capture_env_vars);
    list::list(&rules, &env, std::io::stdout().lock())?;
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

/// `verify --key FILE LOG...`: the HMAC chain across `logs`, in order.
pub fn verify(key: &Path, logs: &[PathBuf]) -> anyhow::Result<()> {
    // Not Key::load: a verifier may hold a copy of the key on another host, under another user.
    let bytes = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let key = Key::from_bytes(bytes).map_err(|len| {
        anyhow::anyhow!("{} holds {len} bytes, too short for a key", key.display())
    })?;
    let mut lines = Vec::new();
    for log in logs {
        let file = File::open(log).with_context(|| format!("opening {}", log.display()))?;
        for (i, text) in BufReader::new(file).lines().enumerate() {
            let text = text.with_context(|| format!("reading {}", log.display()))?;
            lines.push(Line {
                file: log.clone(),
                number: i + 1,
                text,
            });
        }
    }
    match verify_chain(&key, &lines) {
        Ok(summary) => {
            let anchor = summary.anchored_at.map_or(String::new(), |seq| {
                format!(
                    " (the input begins mid-run: its first record, seq {seq}, is taken as given)"
                )
            });
            println!(
                "OK: {} records from {} runs of the agent, chain intact{anchor}",
                summary.records, summary.runs
            );
            Ok(())
        }
        Err(failure) => bail!("{}", failure.describe(&lines)),
    }
}

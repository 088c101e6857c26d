//! Subcommands of `boot-copy-agent`.
pub mod events;
pub mod offline;
pub mod reload;
pub mod run;

use crate::{
    config::{Config, require_root_owned_rules},
    context::env::EnvNames,
    context::procfs,
    decode::image_to_raw,
    detect::rules::LoadedRules,
    rules::list,
    sensor::Sensor,
};
use boot_copy_rules::{RuleSet, load_ruleset_with};

/// Loads rules and exceptions as the config says, listing every problem on failure.
pub fn load_rules(config: &Config) -> anyhow::Result<RuleSet> {
    load_ruleset_with(
        config.rules.path.as_deref(),
        config.rules.bundled(),
        &config.exceptions,
    )
    .map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rules or exceptions:\n  {}", list.join("\n  "))
    })
}

/// The rules of the commands that watch the kernel (`run`, `events`), refusing rule files
/// non-root users could change, with the kernel prefilter they imply.
pub fn load_watched_rules(config: &Config) -> anyhow::Result<LoadedRules> {
    if let Some(path) = &config.rules.path {
        require_root_owned_rules(path)?;
    }
    let rules = load_rules(config)?;
    let env = EnvNames::new(&config.sensor.capture_env_vars);
    for line in list::blind_spots(&rules, &env) {
        tracing::warn!("{line}");
    }
    Ok(LoadedRules::new(rules, env)?)
}

/// Seeds the kernel's process table with processes that ran before the agent. Entries the kernel
/// wrote meanwhile (an exec or fork since attach) are kept.
pub fn seed_process_table(sensor: &mut Sensor) -> usize {
    let mut seeded = 0;
    for pid in procfs::pids().unwrap_or_default() {
        // Kernel threads have no executable, and processes may exit meanwhile: skip those.
        let Ok(image) = procfs::image(pid) else {
            continue;
        };
        match sensor.seed(pid, &image_to_raw(&image)) {
            Ok(true) => seeded += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(pid, error = %e, "seeding the process table"),
        }
    }
    seeded
}

//! The rule set as the agent loads it, with what the kernel must report for it: computed once per
//! load (start, SIGHUP; `commands::load_rules` reads the configured rules) and handed to the
//! sensor, the map guard, detection and the records.
use crate::{
    context::env::EnvNames,
    sensor::{prefilter::KernelFilter, roots},
    strict,
};
use boot_copy_rules::{Prefilter, RuleSet};
use std::path::PathBuf;

pub struct LoadedRules {
    pub set: RuleSet,
    /// The names the rules can match, or every exec.
    pub prefilter: Prefilter,
    /// The prefilter in the kernel maps' terms, with the strict rule's cp/mv sizes.
    pub kernel: KernelFilter,
    /// The directories the file program is to watch: /boot and those the file rules name.
    pub watched_dirs: Vec<PathBuf>,
    /// The environment variables `process.env_vars` reports (`sensor.capture_env_vars`).
    pub env: EnvNames,
}

impl LoadedRules {
    /// `set` with the kernel prefilter it implies, reading the environment when `env` names
    /// variables.
    pub fn new(set: RuleSet, env: EnvNames) -> Result<Self, crate::sensor::SensorError> {
        let prefilter = set.prefilter(&[strict::gate()]);
        let (names, all_execs) = match &prefilter {
            Prefilter::All => (Vec::new(), true),
            Prefilter::Names(names) => (names.iter().cloned().collect(), false),
        };
        // Renamed copies of cp and mv, for the strict rule (none without it).
        let sizes = strict::watched_sizes(set.rules());
        let kernel = KernelFilter::new(&names, sizes, all_execs)?;
        let kernel = if env.is_empty() {
            kernel
        } else {
            kernel.with_env_capture()
        };
        let named: Vec<PathBuf> = set.file_dirs().0.into_iter().collect();
        Ok(Self {
            watched_dirs: roots::dirs(&named),
            set,
            prefilter,
            kernel,
            env,
        })
    }

    /// "Boot File Copy v2, …", as the start and reload records name the rules.
    pub fn names(&self) -> String {
        self.set
            .rules()
            .iter()
            .map(|r| format!("{} v{}", r.name, r.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

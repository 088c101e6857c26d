//! The rule set as the agent loads it, with what the kernel must report for it: computed once per
//! load (start, SIGHUP) and handed to the sensor, the map guard, detection and the records.
use crate::{
    config::{Config, require_root_owned_rules},
    sensor::prefilter::KernelFilter,
    strict,
};
use boot_copy_rules::{Prefilter, RuleSet, load_ruleset_with};

pub struct LoadedRules {
    pub set: RuleSet,
    /// The names the rules can match, or every exec.
    pub prefilter: Prefilter,
    /// The prefilter in the kernel maps' terms, with the strict rule's cp/mv sizes.
    pub kernel: KernelFilter,
}

/// Loads rules and exceptions as the config says, listing every problem on failure.
pub fn load_rules(config: &Config) -> anyhow::Result<RuleSet> {
    load_ruleset_with(
        config.rules.path.as_deref(),
        config.rules.strict,
        &config.exceptions,
    )
    .map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rules or exceptions:\n  {}", list.join("\n  "))
    })
}

impl LoadedRules {
    /// The rules as the config says, refusing rule files non-root users could change, with the
    /// kernel prefilter they imply.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        if let Some(path) = &config.rules.path {
            require_root_owned_rules(path)?;
        }
        Self::new(load_rules(config)?)
    }

    /// `set` with the kernel prefilter it implies.
    pub fn new(set: RuleSet) -> anyhow::Result<Self> {
        let prefilter = set.prefilter(&[strict::gate()]);
        let (names, all_execs) = match &prefilter {
            Prefilter::All => (Vec::new(), true),
            Prefilter::Names(names) => (names.iter().cloned().collect(), false),
        };
        // Renamed copies of cp and mv, for the strict rule (none without it).
        let sizes = strict::watched_sizes(set.rules());
        let kernel = KernelFilter::new(&names, sizes, all_execs)?;
        Ok(Self {
            set,
            prefilter,
            kernel,
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

//! Arbitrary text as the agent's configuration file: parsing must give a configuration or an
//! error whose message names the file, never panic; the exception lists of a configuration that
//! parses are compiled against the bundled rules, and their problems are messages too.
#![no_main]

use boot_copy_agent::config::Config;
use boot_copy_rules::load_ruleset_with;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let path = Path::new("fuzz.toml");
    let config = match Config::parse(text, path) {
        Ok(config) => config,
        Err(e) => {
            assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
            return;
        }
    };
    // The bundled rules only: `rules.path` would make the target read arbitrary files.
    if let Err(problems) = load_ruleset_with(None, config.rules.bundled(), &config.exceptions) {
        assert!(problems.iter().all(|p| !p.to_string().is_empty()));
    }
    let _ = config.alert_budget.budget();
});

//! SIGHUP: reopen the alert log; reload rules and exceptions with the kernel prefilter they
//! imply, keeping the running set if the new one is invalid.
use super::daemon::Daemon;
use crate::{commands::load_watched_rules, config::Config, records::lifecycle, sink::Severity};
use anyhow::Context as _;

impl Daemon {
    pub(super) fn reload(&mut self) {
        self.writer.sinks().reopen();
        let loaded = Config::load(&self.config_path, self.explicit)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                let rules = load_watched_rules(&config)?;
                // The kernel's prefilter follows the rules, through the maps' open descriptors.
                self.guards
                    .apply(&rules.kernel)
                    .context("updating the kernel prefilter")?;
                Ok(rules)
            });
        let (record, severity) = match loaded {
            Ok(rules) => {
                let record = lifecycle::reloaded(&self.origin, &rules);
                self.detector.set_rules(rules);
                (record, Severity::Info)
            }
            Err(e) => {
                tracing::warn!(error = %e, "reload failed; keeping the running rules");
                (
                    lifecycle::reload_failed(&self.origin, &e),
                    Severity::Warning,
                )
            }
        };
        self.writer.health(record, severity);
    }
}

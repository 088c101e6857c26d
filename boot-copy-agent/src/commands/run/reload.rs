//! SIGHUP: reopen the alert log; reload rules and exceptions with the kernel prefilter and the
//! watched trees they imply, keeping the running set if the new one is invalid.
use super::daemon::Daemon;
use crate::{
    commands::load_watched_rules, config::Config, records::lifecycle, service, sink::Severity,
};
use anyhow::Context as _;

impl Daemon {
    pub(super) fn reload(&mut self) {
        service::notify("RELOADING=1");
        self.writer.sinks().reopen();
        let loaded = Config::load(&self.config_path, self.explicit)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                let rules = load_watched_rules(&config)?;
                // The kernel's prefilter follows the rules, through the maps' open descriptors.
                self.guards
                    .apply(&rules.kernel)
                    .context("updating the kernel prefilter")?;
                let trees = self
                    .sensor
                    .watch(&rules.watched_dirs)
                    .context("updating the watched trees")?;
                self.detector.set_trees(trees.clone());
                Ok(rules)
            });
        let (record, severity, error) = match loaded {
            Ok(rules) => {
                let record = lifecycle::reloaded(&self.origin, &rules);
                self.detector.set_rules(rules);
                (record, Severity::Info, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "reload failed; keeping the running rules");
                let why = format!("boot-copy kept its running rules; reload failed: {e:#}");
                (
                    lifecycle::reload_failed(&self.origin, &e),
                    Severity::Warning,
                    Some(why),
                )
            }
        };
        self.writer.health(record, severity);
        // `boot-copy-agent reload` (the unit's ExecReload) waits for this in the status file.
        self.reload.count += 1;
        self.reload.error = error;
        let written = self
            .sensor
            .counters()
            .map_err(anyhow::Error::from)
            .and_then(|k| self.write_status(k, false));
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing the status file after a reload");
        }
        service::notify("READY=1");
    }
}

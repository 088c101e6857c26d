//! `boot-copy-agent run`: the daemon. Watches every exec, applies the loaded rules and writes
//! alerts and the agent's own records to the sinks. This module starts it (in the order the
//! privileges allow); `daemon` is its loop, `guards` the watch on its programs and maps, `reload`
//! what SIGHUP does.
mod daemon;
mod guards;
mod reload;

use crate::{
    commands::{load_watched_rules, seed_process_table},
    config::Config,
    context::{clock::BootEpoch, host::Host},
    describe::Describer,
    detect::Detector,
    integrity::chain::{Chain, Key},
    metrics, privilege,
    records::{
        Counters, Origin, Writer,
        lifecycle::{self, Start},
        loss::LossTracker,
        status::{Status, StatusFile},
    },
    sensor::{Sensor, SensorConfig},
    service,
    sink::{Severity, SinkError, Sinks},
};
use anyhow::Context as _;
use daemon::{Daemon, Signals};
use guards::Guards;
use serde_json::{Value, json};
use std::{path::PathBuf, time::SystemTime};

pub struct Options {
    pub config: PathBuf,
    /// The config path was given on the command line (so it must exist).
    pub explicit: bool,
}

/// The configuration, rules, exceptions, key or a sink's settings are wrong: restarting cannot
/// help, so the agent exits with EX_CONFIG (78), on which the unit does not restart.
#[derive(Debug)]
pub struct Misconfigured;

impl std::fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refusing the configuration")
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::memory::return_large_allocations();
    let mut signals = Signals::register().context("registering signal handlers")?;
    let config = Config::load(&opts.config, opts.explicit).context(Misconfigured)?;
    let rules = load_watched_rules(&config).context(Misconfigured)?;
    let key = config
        .integrity
        .key_file
        .as_deref()
        .map(Key::load)
        .transpose()
        .context(Misconfigured)?;
    let status = StatusFile::new(&config.health.state_dir)?;
    let prior = status.read().unwrap_or(None);
    let previous = status.unclean_previous()?;
    let sinks = Sinks::open(&config.sinks).map_err(|e| match e {
        SinkError::Config { .. } | SinkError::Address { .. } => {
            anyhow::Error::from(e).context(Misconfigured)
        }
        e => anyhow::Error::from(e).context("opening the sinks"),
    })?;
    let mut sensor = Sensor::start(&SensorConfig {
        filter: rules.kernel.clone(),
        ring_bytes: config.sensor.ring_buffer_bytes,
        table_entries: config.sensor.process_table_entries,
        btf: config.sensor.btf.clone(),
        watched_dirs: rules.watched_dirs.clone(),
    })?;
    let seeded = seed_process_table(&mut sensor);
    let mut reader = sensor.take_reader()?;
    let guards = Guards::snapshot()?;
    let page = metrics::Page::default();
    if let Some(addr) = config.metrics.listen {
        metrics::serve(addr, page.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    // Everything that needs privilege is done: the programs are attached, maps and ring open.
    let kept = privilege::drop_capabilities()?;
    let sinks = sinks.start().context("starting the sinks")?;
    let mut describer = Describer::new(Host::read(), BootEpoch::at_start()?);
    describer.set_trees(sensor.watched().clone());
    let origin = Origin::new(describer.host());
    let chain = key.map(|key| Chain::new(key, prior.as_ref().and_then(chain_link)));
    let mut daemon = Daemon {
        loss: LossTracker::new(&Counters::default()),
        origin,
        detector: Detector::new(describer, rules, config.alert_budget.budget()),
        writer: Writer::new(sinks, chain),
        sensor,
        guards,
        status,
        started: SystemTime::now(),
        config_path: opts.config,
        explicit: opts.explicit,
        metrics: page,
        reload: daemon::ReloadState::default(),
        mounts: crate::sensor::roots::MountTable::open()?,
    };
    let table = daemon.sensor.table_reader()?;
    daemon.detector.set_table(Box::new(table));
    // Losses are reported from here on: what the counters hold now is not news.
    daemon.loss = LossTracker::new(&daemon.counters(daemon.sensor.counters()?));
    if let Some(prev) = previous {
        let record = lifecycle::unclean(&daemon.origin, &prev);
        daemon.writer.health(record, Severity::Warning);
    }
    let mut capabilities: Vec<String> = kept.iter().map(ToString::to_string).collect();
    capabilities.sort();
    let start = lifecycle::started(
        &daemon.origin,
        &Start {
            rules: daemon.detector.rules(),
            seeded,
            capabilities: &capabilities,
            programs: daemon.guards.links(),
            chained: daemon.writer.chained(),
            guarded_maps: daemon.guards.maps(),
            degraded: daemon.sensor.degraded_fields(),
            path_hooks: daemon.sensor.path_hooks(),
        },
    );
    let severity = if daemon.sensor.degraded_fields().is_empty() {
        Severity::Info
    } else {
        Severity::Warning
    };
    daemon.writer.health(start, severity);
    daemon.write_status(daemon.sensor.counters()?, false)?;
    service::notify("READY=1");
    crate::memory::release_freed();
    daemon.main_loop(&mut reader, &config, &mut signals).await?;
    daemon.shutdown(&mut reader).await
}

/// The previous run's last chained record, as the next chain start names it.
fn chain_link(prior: &Status) -> Option<Value> {
    let hmac = prior.chain_hmac.as_ref()?;
    Some(json!({ "seq": prior.seq, "hmac": hmac, "clean": prior.stopped }))
}

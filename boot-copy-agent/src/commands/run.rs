//! `boot-copy-agent run`: the daemon. Watches every exec, applies the loaded rules and writes
//! alerts and the agent's own health records (start, stop, heartbeat, loss, suppression) to the
//! sinks. SIGHUP reloads rules and exceptions and reopens the alert log; SIGTERM drains and exits.
use crate::{
    commands::seed_process_table,
    config::Config,
    detect::{Detector, Emit},
    ecs::Describer,
    health::{Counters, LossTracker, Origin, Sequencer, counters_json},
    metrics,
    process::{clock::BootEpoch, host::Host},
    rules::{Prefilter, RuleSet, check::load_ruleset_with},
    sensor::{RingReader, Sensor, SensorConfig},
    service,
    sink::{Record, Severity, Sinks},
    status::{Status, StatusFile},
};
use anyhow::{Context as _, bail};
use boot_copy_common::counter;
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};
use tokio::signal::unix::{SignalKind, signal};

/// How often the ring is drained when the kernel batches records without waking the reader
/// (when it reports every exec); otherwise every record wakes the reader and no timer is needed.
const POLL: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_secs(1);
const SHUTDOWN: Duration = Duration::from_millis(1500);

/// The kernel's counters, indexed by `boot_copy_common::counter`.
type KernelCounters = [u64; counter::COUNT as usize];

pub struct Options {
    pub config: PathBuf,
    /// The config path was given on the command line (so it must exist).
    pub explicit: bool,
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

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let config = Config::load(&opts.config, opts.explicit)?;
    let rules = load_rules(&config)?;
    let status = StatusFile::new(&config.health.state_dir)?;
    let previous = status.unclean_previous()?;
    let sinks = Sinks::start(&config.sinks).context("opening the sinks")?;
    let prefilter = rules.prefilter();
    let mut sensor = Sensor::start(&sensor_config(&config, &rules))?;
    let seeded = seed_process_table(&mut sensor);
    let mut reader = sensor.take_reader()?;
    let describer = Describer::new(Host::read(), BootEpoch::now()?);
    let mut daemon = Daemon {
        origin: describer.origin(),
        detector: Detector::new(describer, rules, config.alert_budget.budget()),
        sinks,
        sensor,
        seq: Sequencer::default(),
        loss: None,
        status,
        started: SystemTime::now(),
        config_path: opts.config,
        explicit: opts.explicit,
        metrics: metrics::Page::default(),
    };
    if let Some(addr) = config.metrics.listen {
        metrics::serve(addr, daemon.metrics.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    daemon.loss = Some(LossTracker::new(&daemon.losses(&daemon.sensor.counters()?)));
    if let Some(prev) = previous {
        daemon.emit_health(unclean_record(&daemon.origin, &prev), Severity::Warning);
    }
    let start = start_record(&daemon, &prefilter, seeded);
    daemon.emit_health(start, Severity::Info);
    daemon.write_status(&daemon.sensor.counters()?, false)?;
    service::notify("READY=1");
    let poll = matches!(prefilter, Prefilter::All).then_some(POLL);
    daemon.main_loop(&mut reader, &config, poll).await?;
    daemon.shutdown(&mut reader).await
}

fn sensor_config(config: &Config, rules: &RuleSet) -> SensorConfig {
    let (watched, all_execs) = match rules.prefilter() {
        Prefilter::All => (Vec::new(), true),
        Prefilter::Names(names) => (names.into_iter().collect(), false),
    };
    SensorConfig {
        watched,
        // Renamed copies of cp and mv, for the strict rule (empty without it).
        watched_sizes: crate::strict::watched_sizes(rules.rules()),
        all_execs,
        ring_bytes: config.sensor.ring_buffer_bytes,
        table_entries: config.sensor.process_table_entries,
    }
}

struct Daemon {
    origin: Origin,
    detector: Detector,
    sinks: Sinks,
    sensor: Sensor,
    seq: Sequencer,
    loss: Option<LossTracker>,
    status: StatusFile,
    started: SystemTime,
    config_path: PathBuf,
    explicit: bool,
    metrics: metrics::Page,
}

impl Daemon {
    /// Runs until SIGTERM or SIGINT. `poll`: drain the ring at least this often (else on
    /// wake-ups, and once a second).
    async fn main_loop(
        &mut self,
        reader: &mut RingReader,
        config: &Config,
        poll: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut tick = tokio::time::interval(TICK);
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(config.health.heartbeat_seconds));
        heartbeat.tick().await; // the first tick is immediate; the start record covers it
        let watchdog = service::watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                ready = reader.wait(poll) => {
                    ready.context("waiting on the ring buffer")?;
                    self.drain(reader);
                }
                _ = tick.tick() => {
                    self.drain(reader);
                    self.tick()?;
                }
                _ = heartbeat.tick() => {
                    let record = self.heartbeat_record()?;
                    self.emit_health(record, Severity::Info);
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => service::notify("WATCHDOG=1"),
                _ = hangup.recv() => self.reload(),
                _ = term.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
            }
        }
    }

    fn drain(&mut self, reader: &mut RingReader) {
        let mut out = Vec::new();
        let now = Instant::now();
        reader.drain(|record| self.detector.handle(record, now, &mut self.seq, &mut out));
        for emit in out {
            self.emit(emit);
        }
    }

    /// Once a second: closed budget windows, losses, the status file.
    fn tick(&mut self) -> anyhow::Result<()> {
        let mut out = Vec::new();
        self.detector
            .close_windows(Instant::now(), false, &mut self.seq, &mut out);
        for emit in out {
            self.emit(emit);
        }
        // Read once a tick: one syscall per counter.
        let kernel = self.sensor.counters()?;
        self.report_losses(&kernel);
        self.write_status(&kernel, false)
    }

    /// A loss record if anything was lost since the last one.
    fn report_losses(&mut self, kernel: &KernelCounters) {
        let losses = self.losses(kernel);
        let totals = self.counters(kernel);
        let record = self
            .loss
            .as_mut()
            .and_then(|l| l.check(&self.origin, &losses, &totals));
        if let Some(record) = record {
            self.emit_health(record, Severity::Warning);
        }
    }

    /// Sends a record the detector numbered.
    fn emit(&mut self, emit: Emit) {
        let record = if emit.alert {
            Record::alert(emit.line, emit.severity)
        } else {
            Record::health(emit.line, emit.severity)
        };
        self.sinks.send(&record);
    }

    fn emit_health(&mut self, mut doc: Value, severity: Severity) {
        self.seq.stamp(&mut doc);
        self.emit(Emit {
            line: doc.to_string().into(),
            severity,
            alert: false,
        });
    }

    /// SIGHUP: reopen the alert log; reload rules and exceptions, keeping the running set if
    /// the new one is invalid.
    fn reload(&mut self) {
        self.sinks.reopen();
        let loaded = Config::load(&self.config_path, self.explicit)
            .map_err(anyhow::Error::from)
            .and_then(|config| load_rules(&config));
        let (action, message, severity) = match loaded {
            Ok(rules) => {
                let changed = rules.prefilter() != self.detector.rules().prefilter();
                let names = rule_names(&rules);
                self.detector.set_rules(rules);
                if changed {
                    tracing::warn!(
                        "the reloaded rules need a different kernel prefilter; restart the agent to apply it"
                    );
                }
                (
                    "rules-reloaded",
                    format!("boot-copy reloaded rules: {names}"),
                    Severity::Info,
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "reload failed; keeping the running rules");
                (
                    "reload-failed",
                    format!("boot-copy kept its running rules; reload failed: {e:#}"),
                    Severity::Warning,
                )
            }
        };
        let record = self
            .origin
            .record("state", action, SystemTime::now(), message, json!({}));
        self.emit_health(record, severity);
    }

    /// What was lost, per stage, in a fixed order.
    fn losses(&self, kernel: &KernelCounters) -> Counters {
        let mut l = vec![
            (
                "ringbuf_drops".to_owned(),
                kernel[counter::RINGBUF_DROPS as usize],
            ),
            (
                "decode_errors".to_owned(),
                self.detector.counts.decode_errors,
            ),
        ];
        for s in self.sinks.stats() {
            l.push((format!("{}_dropped", s.sink), s.dropped));
            l.push((format!("{}_failed", s.sink), s.failed));
        }
        l
    }

    /// Every counter: kernel, detection, sinks.
    fn counters(&self, kernel: &KernelCounters) -> Counters {
        let mut c: Counters = counter::NAMES
            .iter()
            .zip(kernel)
            .map(|(n, v)| (n.to_string(), *v))
            .collect();
        let d = self.detector.counts;
        c.extend([
            ("candidates".to_owned(), d.candidates),
            ("decode_errors".to_owned(), d.decode_errors),
            ("alerts".to_owned(), d.alerts),
            ("suppressed".to_owned(), d.suppressed),
        ]);
        for s in self.sinks.stats() {
            c.push((format!("{}_written", s.sink), s.written));
            c.push((format!("{}_dropped", s.sink), s.dropped));
            c.push((format!("{}_failed", s.sink), s.failed));
        }
        c
    }

    fn heartbeat_record(&self) -> anyhow::Result<Value> {
        let c = self.counters(&self.sensor.counters()?);
        let get = |name: &str| c.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
        let message = format!(
            "boot-copy heartbeat: {} execs seen, {} candidates, {} alerts, {} suppressed, {} kernel drops",
            get("execs_seen"),
            get("candidates"),
            get("alerts"),
            get("suppressed"),
            get("ringbuf_drops")
        );
        Ok(self.origin.record(
            "metric",
            "heartbeat",
            SystemTime::now(),
            message,
            json!({ "counters": counters_json(&c) }),
        ))
    }

    /// The status file and the metrics page, from the same counters.
    fn write_status(&self, kernel: &KernelCounters, stopped: bool) -> anyhow::Result<()> {
        let counters = self.counters(kernel);
        self.metrics.update(&counters);
        let status = Status::new(self.started, self.seq.last(), &counters, stopped);
        self.status.write(&status)
    }

    /// SIGTERM: drain the ring, close budget windows, say goodbye, flush the sinks.
    async fn shutdown(mut self, reader: &mut RingReader) -> anyhow::Result<()> {
        self.drain(reader);
        let mut out = Vec::new();
        self.detector
            .close_windows(Instant::now(), true, &mut self.seq, &mut out);
        for emit in out {
            self.emit(emit);
        }
        let kernel = self.sensor.counters()?;
        self.report_losses(&kernel);
        let counters = self.counters(&kernel);
        let stop = self.origin.record(
            "state",
            "agent-stopped",
            SystemTime::now(),
            "boot-copy stopped".to_owned(),
            json!({ "counters": counters_json(&counters) }),
        );
        self.emit_health(stop, Severity::Info);
        self.write_status(&kernel, true)?;
        let stats = self.sinks.shutdown(SHUTDOWN).await;
        let lost: u64 = stats.iter().map(|s| s.dropped).sum();
        if lost > 0 {
            bail!("{lost} records could not be written before the shutdown deadline");
        }
        Ok(())
    }
}

fn rule_names(rules: &RuleSet) -> String {
    rules
        .rules()
        .iter()
        .map(|r| format!("{} v{}", r.name, r.version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn start_record(d: &Daemon, prefilter: &Prefilter, seeded: usize) -> Value {
    let rules: Vec<Value> = d
        .detector
        .rules()
        .rules()
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name, "version": r.version, "source": r.source.display().to_string() }))
        .collect();
    d.origin.record(
        "state",
        "agent-started",
        SystemTime::now(),
        format!(
            "boot-copy {} started: rules {}; watching {}",
            env!("CARGO_PKG_VERSION"),
            rule_names(d.detector.rules()),
            prefilter
        ),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
            "prefilter": prefilter.to_string(),
            "seeded_processes": seeded,
        }),
    )
}

fn unclean_record(origin: &Origin, prev: &Status) -> Value {
    let mut r = origin.record(
        "state",
        "previous-run-unclean",
        SystemTime::now(),
        format!(
            "boot-copy's previous run (pid {}) did not stop cleanly: nothing was watched from {} until this start",
            prev.pid, prev.updated
        ),
        json!({ "previous": { "pid": prev.pid, "last_seq": prev.seq, "last_alive": prev.updated, "counters": prev.counters } }),
    );
    r["event"]["start"] = prev.updated.clone().into();
    r["event"]["end"] = crate::process::clock::rfc3339(SystemTime::now()).into();
    r
}

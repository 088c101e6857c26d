//! `boot-copy-agent run`: the daemon. Watches every exec, applies the loaded rules and writes
//! alerts and the agent's own health records (start, stop, heartbeat, loss, suppression) to the
//! sinks. SIGHUP reloads rules and exceptions and reopens the alert log; SIGTERM drains and exits.
use crate::{
    commands::seed_process_table,
    config::{Config, require_root_owned_rules},
    detect::{Detector, Emit},
    ecs::Describer,
    health::{Counters, LossTracker, Origin, Sequencer, counters_json},
    integrity::{
        attachment::{Attachments, Link},
        chain::{Chain, Key},
        maps::{MapGuard, Tampering},
    },
    metrics, privilege,
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
use tokio::signal::unix::{Signal, SignalKind, signal};

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

/// The daemon's rules: [`load_rules`], refusing rule files non-root users could change.
pub fn load_daemon_rules(config: &Config) -> anyhow::Result<RuleSet> {
    if let Some(path) = &config.rules.path {
        require_root_owned_rules(path)?;
    }
    load_rules(config)
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

/// The signals the daemon handles, registered before anything is written: a signal that comes
/// as soon as the start record is visible must not hit the default action (termination).
struct Signals {
    term: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    return_large_allocations();
    let mut signals = Signals::register().context("registering signal handlers")?;
    let config = Config::load(&opts.config, opts.explicit)?;
    let rules = load_daemon_rules(&config)?;
    let key = config
        .integrity
        .key_file
        .as_deref()
        .map(Key::load)
        .transpose()?;
    let status = StatusFile::new(&config.health.state_dir)?;
    let prior = status.read().unwrap_or(None);
    let previous = status.unclean_previous()?;
    let sinks = Sinks::open(&config.sinks).context("opening the sinks")?;
    let prefilter = rules.prefilter();
    let mut sensor = Sensor::start(&sensor_config(&config, &rules))?;
    let seeded = seed_process_table(&mut sensor);
    let mut reader = sensor.take_reader()?;
    let attachments = Attachments::snapshot().context("listing the attached programs")?;
    let maps = MapGuard::snapshot().context("reading the sensor's maps")?;
    let page = metrics::Page::default();
    if let Some(addr) = config.metrics.listen {
        metrics::serve(addr, page.clone())
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    // Everything that needs privilege is done: the programs are attached, maps and ring open.
    let kept = privilege::drop_capabilities()?;
    let sinks = sinks.start().context("starting the sinks")?;
    let describer = Describer::new(Host::read(), BootEpoch::now()?);
    let mut daemon = Daemon {
        origin: describer.origin(),
        detector: Detector::new(describer, rules, config.alert_budget.budget()),
        sinks,
        sensor,
        seq: Sequencer::default(),
        chain: key.map(|key| Chain::new(key, prior.as_ref().and_then(chain_link))),
        attachments,
        detached: 0,
        maps,
        tampered: 0,
        loss: None,
        status,
        started: SystemTime::now(),
        config_path: opts.config,
        explicit: opts.explicit,
        metrics: page,
    };
    daemon.loss = Some(LossTracker::new(&daemon.losses(&daemon.sensor.counters()?)));
    if let Some(prev) = previous {
        daemon.emit_health(unclean_record(&daemon.origin, &prev), Severity::Warning);
    }
    let mut capabilities: Vec<String> = kept.iter().map(ToString::to_string).collect();
    capabilities.sort();
    let start = start_record(&daemon, &prefilter, seeded, &capabilities);
    let severity = if daemon.sensor.degraded_fields().is_empty() {
        Severity::Info
    } else {
        Severity::Warning
    };
    daemon.emit_health(start, severity);
    daemon.write_status(&daemon.sensor.counters()?, false)?;
    service::notify("READY=1");
    release_startup_memory();
    let poll = matches!(prefilter, Prefilter::All).then_some(POLL);
    daemon
        .main_loop(&mut reader, &config, &mut signals, poll)
        .await?;
    daemon.shutdown(&mut reader).await
}

/// Sends a numbered record to the sinks, sealed into the hash chain when one is kept.
fn send(chain: &mut Option<Chain>, sinks: &Sinks, emit: Emit) {
    let line = match chain {
        // Only with a chain: the record is parsed back to be sealed.
        Some(chain) => match serde_json::from_str::<Value>(&emit.line) {
            Ok(mut doc) => {
                chain.seal(&mut doc);
                doc.to_string().into()
            }
            // Cannot happen (serde_json wrote it); sent unsealed, the verifier names it.
            Err(e) => {
                tracing::error!("record not sealed, not JSON ({e}): {}", emit.line);
                emit.line
            }
        },
        None => emit.line,
    };
    let record = if emit.alert {
        Record::alert(line, emit.severity)
    } else {
        Record::health(line, emit.severity)
    };
    sinks.send(&record);
}

/// The previous run's last chained record, as the next chain start names it.
fn chain_link(prior: &Status) -> Option<Value> {
    let hmac = prior.chain_hmac.as_ref()?;
    Some(json!({ "seq": prior.seq, "hmac": hmac, "clean": prior.stopped }))
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
        btf: config.sensor.btf.clone(),
    }
}

struct Daemon {
    origin: Origin,
    detector: Detector,
    sinks: Sinks,
    sensor: Sensor,
    seq: Sequencer,
    /// The HMAC chain, when `integrity.key_file` is set.
    chain: Option<Chain>,
    /// The attached programs' links, checked every tick.
    attachments: Attachments,
    /// Programs found detached so far.
    detached: u64,
    /// The prefilter maps, checked (and restored) every tick.
    maps: MapGuard,
    /// Map changes found so far.
    tampered: u64,
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
        signals: &mut Signals,
        poll: Option<Duration>,
    ) -> anyhow::Result<()> {
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
                    if self.detached > 0 {
                        return Ok(()); // blind: stop, so that a restart attaches again
                    }
                }
                _ = heartbeat.tick() => {
                    let record = self.heartbeat_record()?;
                    self.emit_health(record, Severity::Info);
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => service::notify("WATCHDOG=1"),
                _ = signals.hangup.recv() => self.reload(),
                _ = signals.term.recv() => return Ok(()),
                _ = signals.interrupt.recv() => return Ok(()),
            }
        }
    }

    /// Each record's alerts go to the sinks before the next record is read, so that a full ring
    /// does not hold all its alerts in memory at once.
    fn drain(&mut self, reader: &mut RingReader) {
        let now = Instant::now();
        let Daemon {
            detector,
            seq,
            chain,
            sinks,
            ..
        } = self;
        let mut out = Vec::new();
        reader.drain(|record| {
            detector.handle(record, now, seq, &mut out);
            for emit in out.drain(..) {
                send(chain, sinks, emit);
            }
        });
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
        self.report_detached();
        self.report_tampering();
        self.write_status(&kernel, false)
    }

    /// A prefilter map changed by someone else: reported, and already written back.
    fn report_tampering(&mut self) {
        let found = self.maps.check();
        if found.is_empty() {
            return;
        }
        self.tampered += found.len() as u64;
        let record = tampered_record(&self.origin, &found);
        tracing::error!("{}", record["message"]);
        self.emit_health(record, Severity::Err);
    }

    /// A link closed or replaced by someone else: that program no longer runs. The main loop
    /// then stops the agent, and the service manager's restart attaches the programs again.
    fn report_detached(&mut self) {
        let gone = self.attachments.detached();
        if gone.is_empty() {
            return;
        }
        self.detached += gone.len() as u64;
        let record = detached_record(&self.origin, &gone, self.attachments.links());
        tracing::error!("{}", record["message"]);
        self.emit_health(record, Severity::Err);
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

    /// Sends a record the detector (or [`emit_health`](Self::emit_health)) numbered.
    fn emit(&mut self, emit: Emit) {
        send(&mut self.chain, &self.sinks, emit);
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
            .and_then(|config| {
                let rules = load_daemon_rules(&config)?;
                // The kernel's prefilter follows the rules, through the maps' open descriptors.
                self.maps
                    .apply(&sensor_config(&config, &rules))
                    .context("updating the kernel prefilter")?;
                Ok(rules)
            });
        let (action, message, severity) = match loaded {
            Ok(rules) => {
                let prefilter = rules.prefilter();
                let names = rule_names(&rules);
                self.detector.set_rules(rules);
                (
                    "rules-reloaded",
                    format!("boot-copy reloaded rules: {names}; watching {prefilter}"),
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
            // Watched execs whose argv did not reach the agent whole.
            (
                "args_incomplete".to_owned(),
                kernel[counter::ARGS_INCOMPLETE as usize],
            ),
            (
                "args_chunks_missing".to_owned(),
                self.sensor.chunks_missing(),
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
            ("programs_detached".to_owned(), self.detached),
            ("maps_tampered".to_owned(), self.tampered),
            (
                "args_chunks_missing".to_owned(),
                self.sensor.chunks_missing(),
            ),
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
        let mut status = Status::new(self.started, self.seq.last(), &counters, stopped);
        status.chain_hmac = self.chain.as_ref().and_then(Chain::last_hex);
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
        if self.detached > 0 {
            // Another process closed descriptors the sensor owns: dropping it would close
            // them again (or whatever reuses their numbers). The process is exiting anyway.
            std::mem::forget(self.sensor);
            bail!(
                "{} of the kernel programs were detached by another process; exiting so that the service manager restarts the agent and attaches them again",
                self.detached
            );
        }
        if lost > 0 {
            // Counted in every heartbeat and loss record so far; what was still queued at the
            // deadline (a receiver that is down) can only be said here. Not a failed stop.
            tracing::warn!(
                lost,
                "records dropped by the sinks, those queued at the shutdown deadline included"
            );
        }
        Ok(())
    }
}

/// Loading parsed the kernel's BTF (megabytes) and seeding read /proc: freed by now, but kept
/// by the allocator. Hands it back, so the resident set is the steady state's.
/// A watched exec's argv can be megabytes (its alert twice that): allocations of 128 KiB and
/// more are mapped on their own and unmapped when freed, instead of glibc's default, which raises
/// that threshold after each such free and then keeps the memory in the heap.
fn return_large_allocations() {
    // SAFETY: mallopt only sets the allocator's parameters; a fixed threshold also fixes the trim
    // threshold.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
}

fn release_startup_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

fn rule_names(rules: &RuleSet) -> String {
    rules
        .rules()
        .iter()
        .map(|r| format!("{} v{}", r.name, r.version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn start_record(
    d: &Daemon,
    prefilter: &Prefilter,
    seeded: usize,
    capabilities: &[String],
) -> Value {
    let rules: Vec<Value> = d
        .detector
        .rules()
        .rules()
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name, "version": r.version, "source": r.source.display().to_string() }))
        .collect();
    let degraded = d.sensor.degraded_fields();
    let degraded_note = if degraded.is_empty() {
        String::new()
    } else {
        format!(
            "; the kernel BTF lacks {}, whose values are left empty",
            degraded.join(", ")
        )
    };
    d.origin.record(
        "state",
        "agent-started",
        SystemTime::now(),
        format!(
            "boot-copy {} started: rules {}; watching {}{degraded_note}",
            env!("CARGO_PKG_VERSION"),
            rule_names(d.detector.rules()),
            prefilter
        ),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
            "prefilter": prefilter.to_string(),
            "seeded_processes": seeded,
            "capabilities": capabilities,
            "programs": d.attachments.links().iter().map(link_json).collect::<Vec<_>>(),
            "chained": d.chain.is_some(),
            "guarded_maps": d.maps.guarded(),
            "sensor": { "degraded_fields": degraded },
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

fn link_json(link: &Link) -> Value {
    json!({ "tracepoint": link.tracepoint, "link_id": link.link_id, "prog_id": link.prog_id })
}

fn detached_record(origin: &Origin, gone: &[Link], attached: &[Link]) -> Value {
    let names: Vec<String> = gone
        .iter()
        .map(|l| {
            format!(
                "{} (link {}, program {})",
                l.tracepoint, l.link_id, l.prog_id
            )
        })
        .collect();
    origin.record(
        "state",
        "programs-detached",
        SystemTime::now(),
        format!(
            "boot-copy's kernel programs were detached by another process: {}; the agent stops now so that its restart attaches them again",
            names.join(", ")
        ),
        json!({
            "detached": gone.iter().map(link_json).collect::<Vec<_>>(),
            "attached": attached.iter().map(link_json).collect::<Vec<_>>(),
        }),
    )
}

fn tampered_record(origin: &Origin, found: &[Tampering]) -> Value {
    let described: Vec<String> = found
        .iter()
        .map(|t| {
            let mut parts = Vec::new();
            if !t.removed.is_empty() {
                parts.push(format!("removed {}", t.removed.join(", ")));
            }
            if !t.added.is_empty() {
                parts.push(format!("added {}", t.added.join(", ")));
            }
            let outcome = if t.restored {
                "restored"
            } else {
                "NOT restored"
            };
            format!("{} ({}; {outcome})", t.map, parts.join("; "))
        })
        .collect();
    let details: Vec<Value> = found
        .iter()
        .map(|t| json!({ "map": t.map, "removed": t.removed, "added": t.added, "restored": t.restored }))
        .collect();
    origin.record(
        "state",
        "maps-tampered",
        SystemTime::now(),
        format!(
            "boot-copy's kernel maps were changed by another process: {}",
            described.join(", ")
        ),
        json!({ "tampered": details }),
    )
}

//! `boot-copy-agent events [--all]`: one ECS process event per exec, and one ECS file event per
//! write into a watched tree, as NDJSON on stdout.
use crate::{
    context::{clock::BootEpoch, exec, host::Host, lookups::Lookups, session::Sessions},
    decode::{self, Record},
    describe::{Describer, file::FileContext},
    detect::{DetectCounts, rules::LoadedRules},
    records::{Counters, Origin, Sequencer, loss::LossTracker},
    sensor::{RingReader, Sensor, SensorConfig},
};
use anyhow::Context as _;
use std::{
    io::{BufWriter, Write},
    time::Duration,
};
use tokio::signal::unix::{SignalKind, signal};

/// How often the ring is drained when no wake-up came (unwatched execs are sent without one).
const POLL: Duration = Duration::from_millis(100);
/// How often kernel counters are read to report losses (and the wall clock followed).
const TICK: Duration = Duration::from_secs(1);

pub struct Options {
    /// Every exec, not only those the rules can match.
    pub all: bool,
    /// The loaded rules: what the kernel reports without `all`.
    pub rules: LoadedRules,
    /// `sensor.btf`.
    pub btf: std::path::PathBuf,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let filter = opts.rules.kernel;
    let filter = if opts.all || filter.names.is_empty() {
        filter.with_all_execs()
    } else {
        filter
    };
    let mut sensor = Sensor::start(&SensorConfig {
        filter,
        btf: opts.btf,
        watched_dirs: opts.rules.watched_dirs,
        ..SensorConfig::default()
    })?;
    for field in sensor.degraded_fields() {
        tracing::warn!(
            field,
            "the kernel BTF lacks this field; its values are left empty"
        );
    }
    let seeded = super::seed_process_table(&mut sensor);
    tracing::info!(seeded, "process table seeded from /proc");
    let mut reader = sensor.take_reader()?;
    let mut describer = Describer::new(Host::read(), BootEpoch::at_start()?);
    describer.set_trees(sensor.watched().clone());
    describer.set_env(opts.rules.env);
    let mut out = Output {
        origin: Origin::new(describer.host()),
        describer,
        stdout: BufWriter::new(std::io::stdout().lock()),
        seq: Sequencer::default(),
        decode_errors: 0,
        lookups: Lookups::new(Sessions::new(Box::new(sensor.table_reader()?))),
    };
    let mut loss = LossTracker::new(&out.counters(&sensor)?);
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            ready = reader.wait(Some(POLL)) => {
                ready.context("waiting on the ring buffer")?;
                out.drain(&mut reader)?;
            }
            _ = tick.tick() => {
                out.drain(&mut reader)?;
                if let Ok(epoch) = BootEpoch::now() {
                    out.describer.follow_clock(epoch);
                }
                out.report_losses(&mut loss, &sensor)?;
            }
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    out.drain(&mut reader)?;
    out.report_losses(&mut loss, &sensor)
}

/// A record resolved (its parent looked up) as soon as it is read, while the parent lives.
enum Line {
    Exec(exec::ExecContext),
    File(FileContext),
}

struct Output<W: Write> {
    describer: Describer,
    origin: Origin,
    stdout: W,
    seq: Sequencer,
    decode_errors: u64,
    /// Leaders (from the kernel's process table), containers, boot file systems.
    lookups: Lookups,
}

impl<W: Write> Output<W> {
    fn drain(&mut self, reader: &mut RingReader) -> anyhow::Result<()> {
        let mut lines = Vec::new();
        reader.drain(|record| match decode::decode_record(&record) {
            Ok(Record::Exec(e)) => {
                let mut ctx = exec::resolve(e);
                self.lookups.join(&mut ctx);
                lines.push(Line::Exec(ctx));
            }
            Ok(Record::File(op)) => {
                // A `..` path the kernel sent that is in no watched tree: not a file event.
                let Some(op) = self.describer.placed(op) else {
                    return;
                };
                let mut ctx = FileContext::resolve(op);
                // A file event's `boot_copy.boot` comes from the kernel's tree, not /proc.
                self.lookups.join_but_boot(&mut ctx.writer);
                lines.push(Line::File(ctx));
            }
            Err(e) => {
                self.decode_errors += 1;
                tracing::warn!(error = %e, "undecodable ring-buffer record");
            }
        });
        for line in &lines {
            let event = match line {
                Line::Exec(ctx) => self.describer.exec_json(ctx),
                Line::File(ctx) => self.describer.file_json(ctx),
            };
            self.write_line(event)?;
        }
        self.stdout.flush()?;
        Ok(())
    }

    /// The kernel's counters and decoding's losses.
    fn counters(&self, sensor: &Sensor) -> anyhow::Result<Counters> {
        Ok(Counters {
            kernel: sensor.counters()?,
            detect: DetectCounts {
                decode_errors: self.decode_errors,
                ..DetectCounts::default()
            },
            daemon: None,
        })
    }

    fn report_losses(&mut self, loss: &mut LossTracker, sensor: &Sensor) -> anyhow::Result<()> {
        if let Some(record) = loss.check(&self.origin, &self.counters(sensor)?) {
            self.write_line(record)?;
            self.stdout.flush()?;
        }
        Ok(())
    }

    fn write_line(&mut self, mut value: serde_json::Value) -> anyhow::Result<()> {
        self.seq.stamp(&mut value);
        serde_json::to_writer(&mut self.stdout, &value)?;
        self.stdout.write_all(b"\n")?;
        Ok(())
    }
}

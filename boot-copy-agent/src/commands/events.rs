//! `boot-copy-agent events [--all]`: one ECS process event per exec, as NDJSON on stdout.
use crate::{
    decode,
    ecs::Describer,
    health::{self, Counters, LossTracker},
    process::{clock::BootEpoch, context, host::Host},
    sensor::{RingReader, Sensor, SensorConfig},
};
use anyhow::Context as _;
use boot_copy_common::counter;
use std::{
    io::{BufWriter, Write},
    time::Duration,
};
use tokio::signal::unix::{SignalKind, signal};

/// How often the ring is drained when no wake-up came (unwatched execs are sent without one).
const POLL: Duration = Duration::from_millis(100);
/// How often kernel counters are read to report losses.
const LOSS_CHECK: Duration = Duration::from_secs(1);

pub struct Options {
    /// Every exec, not only watched names.
    pub all: bool,
    /// Watched process names (from the loaded rules' prefilter).
    pub watched: Vec<String>,
    /// `sensor.btf`.
    pub btf: std::path::PathBuf,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let cfg = SensorConfig {
        watched: opts.watched,
        all_execs: opts.all,
        btf: opts.btf,
        ..SensorConfig::default()
    };
    let mut sensor = Sensor::start(&cfg)?;
    for field in sensor.degraded_fields() {
        tracing::warn!(
            field,
            "the kernel BTF lacks this field; its values are left empty"
        );
    }
    let seeded = super::seed_process_table(&mut sensor);
    tracing::info!(seeded, "process table seeded from /proc");
    let mut reader = sensor.take_reader()?;
    let mut out = Output {
        describer: Describer::new(Host::read(), BootEpoch::now()?),
        stdout: BufWriter::new(std::io::stdout().lock()),
        seq: health::Sequencer::default(),
        decode_errors: 0,
    };
    let mut loss = LossTracker::new(&losses(&sensor, &out)?.0);
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(LOSS_CHECK);
    loop {
        tokio::select! {
            ready = reader.wait(Some(POLL)) => {
                ready.context("waiting on the ring buffer")?;
                out.drain(&mut reader)?;
            }
            _ = tick.tick() => {
                out.drain(&mut reader)?;
                let (l, totals) = losses(&sensor, &out)?;
                if let Some(record) = loss.check(&out.describer.origin(), &l, &totals) {
                    out.write_line(&record)?;
                }
            }
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    out.drain(&mut reader)?;
    let (l, totals) = losses(&sensor, &out)?;
    if let Some(record) = loss.check(&out.describer.origin(), &l, &totals) {
        out.write_line(&record)?;
    }
    Ok(())
}

struct Output<W: Write> {
    describer: Describer,
    stdout: W,
    seq: health::Sequencer,
    decode_errors: u64,
}

impl<W: Write> Output<W> {
    fn drain(&mut self, reader: &mut RingReader) -> anyhow::Result<()> {
        let mut lines = Vec::new();
        reader.drain(|record| match decode::decode(record) {
            Ok(exec) => lines.push(context::resolve(exec)),
            Err(e) => {
                self.decode_errors += 1;
                tracing::warn!(error = %e, "undecodable ring-buffer record");
            }
        });
        for ctx in &lines {
            let mut event = self.describer.exec_event(ctx);
            self.seq.stamp(&mut event);
            serde_json::to_writer(&mut self.stdout, &event)?;
            self.stdout.write_all(b"\n")?;
        }
        self.stdout.flush()?;
        Ok(())
    }

    fn write_line(&mut self, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut value = value.clone();
        self.seq.stamp(&mut value);
        serde_json::to_writer(&mut self.stdout, &value)?;
        self.stdout.write_all(b"\n")?;
        self.stdout.flush()?;
        Ok(())
    }
}

/// Kernel and decode losses, as named counters (always the same names, in the same order).
fn losses<W: Write>(sensor: &Sensor, out: &Output<W>) -> anyhow::Result<(Counters, Counters)> {
    let kernel = sensor.counters()?;
    let losses = vec![
        (
            "ringbuf_drops".to_owned(),
            kernel[counter::RINGBUF_DROPS as usize],
        ),
        ("decode_errors".to_owned(), out.decode_errors),
    ];
    let totals = counter::NAMES
        .iter()
        .zip(kernel)
        .map(|(name, v)| (name.to_string(), v))
        .collect();
    Ok((losses, totals))
}

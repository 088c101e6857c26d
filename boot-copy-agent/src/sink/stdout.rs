//! Records on stdout, one per line, for journald or a container runtime. journald splits a
//! line longer than its `LineMax` (48 KiB) into several entries, so a longer record has its
//! argument text trimmed to fit, as valid JSON.
use super::{DEFAULT_QUEUE_CAPACITY, Record, Shared, Worker, one_line, trim};
use serde::Deserialize;
use std::io::Write;

/// `[sinks.stdout]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StdoutConfig {
    /// Default true: alerts on the terminal, and in the journal under systemd.
    pub enabled: bool,
    /// Default 4096 records.
    pub queue_capacity: usize,
    /// Longest line, newline included (0: no limit); default 49152, journald's `LineMax`.
    pub max_record_bytes: usize,
}

/// journald's default `LineMax`.
pub const DEFAULT_MAX_LINE_BYTES: usize = 48 * 1024;

impl Default for StdoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_record_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

pub(super) struct Stdout {
    buf: Vec<u8>,
    /// Longest record without its newline.
    max: usize,
}

impl Stdout {
    pub(super) fn new(cfg: &StdoutConfig) -> Self {
        let max = match cfg.max_record_bytes {
            0 => usize::MAX,
            n => n - 1,
        };
        Self {
            buf: Vec::new(),
            max,
        }
    }
}

impl Worker for Stdout {
    fn write(&mut self, record: &Record, shared: &Shared) {
        self.buf.clear();
        let line = one_line(&record.line);
        match trim::fit(&line, self.max) {
            Some(trimmed) => self.buf.extend_from_slice(trimmed.as_bytes()),
            None => self.buf.extend_from_slice(line.as_bytes()),
        }
        self.buf.push(b'\n');
        // One write_all of the whole line, then flush: a reader never sees half a record.
        let mut out = std::io::stdout().lock();
        match out.write_all(&self.buf).and_then(|()| out.flush()) {
            Ok(()) => shared.ok(),
            Err(e) => shared.fail(&format_args!("writing to stdout: {e}")),
        }
        super::release_large(&mut self.buf);
    }
}

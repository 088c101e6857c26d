//! Records on stdout, one per line, for journald or a container runtime.
use super::{DEFAULT_QUEUE_CAPACITY, Record, Shared, Worker, one_line};
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
}

impl Default for StdoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

pub(super) struct Stdout {
    buf: Vec<u8>,
}

impl Stdout {
    pub(super) fn new() -> Self {
        Self { buf: Vec::new() }
    }
}

impl Worker for Stdout {
    fn write(&mut self, record: &Record, shared: &Shared) {
        self.buf.clear();
        self.buf
            .extend_from_slice(one_line(&record.line).as_bytes());
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

//! Follows the agent's alert log as it grows and times each exec alert: from the kernel's exec
//! timestamp (`@timestamp`) to the moment the complete line is read here. The alerts of file
//! events (the same copies' writes into /boot, when their exec's record was lost) are not
//! counted: each benchmark counts its execs' alerts.
use anyhow::Context as _;
use serde_json::Value;
use std::{
    fs::File,
    io::{BufRead as _, BufReader, Seek as _, SeekFrom},
    path::Path,
    time::SystemTime,
};

pub struct Tail {
    reader: BufReader<File>,
    /// A line read before its end was written.
    partial: String,
    /// Exec alert lines containing the marker seen so far, with their latency in ms.
    pub latencies_ms: Vec<f64>,
    marker: String,
}

impl Tail {
    /// Follows `path` from its current end; counts exec alerts whose line contains `marker`.
    pub fn from_end(path: &Path, marker: &str) -> anyhow::Result<Self> {
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            reader: BufReader::new(file),
            partial: String::new(),
            latencies_ms: Vec::new(),
            marker: marker.to_owned(),
        })
    }

    /// Reads every complete line written so far; false when there was nothing new.
    pub fn poll(&mut self) -> anyhow::Result<bool> {
        let mut progressed = false;
        loop {
            let n = self.reader.read_line(&mut self.partial)?;
            if n == 0 || !self.partial.ends_with('\n') {
                return Ok(progressed);
            }
            progressed = true;
            let arrived = SystemTime::now();
            let line = std::mem::take(&mut self.partial);
            if line.contains(&self.marker) {
                self.record(&line, arrived)?;
            }
        }
    }

    fn record(&mut self, line: &str, arrived: SystemTime) -> anyhow::Result<()> {
        let record: Value = serde_json::from_str(line).context("an alert-log line")?;
        if record["event"]["kind"] != "alert" || record["event"]["category"][0] != "process" {
            return Ok(());
        }
        let stamped = humantime::parse_rfc3339(record["@timestamp"].as_str().unwrap_or_default())
            .context("alert @timestamp")?;
        let latency = arrived.duration_since(stamped).unwrap_or_default();
        self.latencies_ms.push(latency.as_secs_f64() * 1e3);
        Ok(())
    }

    pub fn alerts(&self) -> usize {
        self.latencies_ms.len()
    }
}

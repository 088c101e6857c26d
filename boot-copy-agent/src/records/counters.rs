//! Every counter of a run, read once a tick and listed one way for the heartbeat, the loss and
//! stop records, the status file and the metrics page.
use crate::detect::DetectCounts;
use crate::sink::SinkStats;
use boot_copy_common::counter;
use serde_json::{Map, Value};

/// The kernel's counters, indexed by `boot_copy_common::counter`.
pub type KernelCounters = [u64; counter::COUNT as usize];

/// Counters by name, in the order records and metrics list them.
pub type Listed = Vec<(String, u64)>;

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub kernel: KernelCounters,
    pub detect: DetectCounts,
    /// What only the daemon counts; `events` reports the kernel's counters alone.
    pub daemon: Option<DaemonCounters>,
}

#[derive(Debug, Clone, Default)]
pub struct DaemonCounters {
    /// Programs found detached by another process.
    pub programs_detached: u64,
    /// Prefilter map changes by another process.
    pub maps_tampered: u64,
    /// Spilled argv chunks missing when the agent read them (each made an argv incomplete).
    pub args_chunks_missing: u64,
    pub sinks: Vec<SinkStats>,
}

impl Counters {
    /// One kernel counter (`boot_copy_common::counter::*`).
    pub fn kernel(&self, index: u32) -> u64 {
        self.kernel[index as usize]
    }

    /// Every counter: the kernel's, then detection's, the guards' and each sink's.
    pub fn list(&self) -> Listed {
        let mut c = self.scalars();
        for s in self.daemon.iter().flat_map(|d| &d.sinks) {
            c.push((format!("{}_written", s.sink), s.written));
            c.push((format!("{}_dropped", s.sink), s.dropped));
            c.push((format!("{}_failed", s.sink), s.failed));
        }
        c
    }

    /// The counters that are not per sink: the kernel's, then detection's and the guards'.
    pub fn scalars(&self) -> Listed {
        let mut c: Listed = counter::NAMES
            .iter()
            .zip(self.kernel)
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        if let Some(daemon) = &self.daemon {
            let d = self.detect;
            c.extend([
                ("candidates".to_owned(), d.candidates),
                ("decode_errors".to_owned(), d.decode_errors),
                ("alerts".to_owned(), d.alerts),
                ("suppressed".to_owned(), d.suppressed),
                ("file_candidates".to_owned(), d.file_candidates),
                ("same_act".to_owned(), d.same_act),
                ("file_climbs_outside".to_owned(), d.file_climbs_outside),
                ("programs_detached".to_owned(), daemon.programs_detached),
                ("maps_tampered".to_owned(), daemon.maps_tampered),
                ("args_chunks_missing".to_owned(), daemon.args_chunks_missing),
            ]);
        }
        c
    }

    /// What was lost, per stage, always the same stages in the same order.
    pub fn losses(&self) -> Listed {
        let mut l = vec![
            (
                "ringbuf_drops".to_owned(),
                self.kernel(counter::RINGBUF_DROPS),
            ),
            ("decode_errors".to_owned(), self.detect.decode_errors),
            // Watched execs whose argv did not reach the agent whole.
            (
                "args_incomplete".to_owned(),
                self.kernel(counter::ARGS_INCOMPLETE),
            ),
            (
                "args_chunks_missing".to_owned(),
                self.daemon.as_ref().map_or(0, |d| d.args_chunks_missing),
            ),
        ];
        for s in self.daemon.iter().flat_map(|d| &d.sinks) {
            l.push((format!("{}_dropped", s.sink), s.dropped));
            l.push((format!("{}_failed", s.sink), s.failed));
        }
        l
    }

    /// [`list`](Self::list) as a JSON object, as records carry it.
    pub fn json(&self) -> Value {
        listed_json(&self.list())
    }
}

pub fn listed_json(listed: &Listed) -> Value {
    Value::Object(
        listed
            .iter()
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_counters_follow_the_kernel_ones_and_losses_name_each_stage() {
        let mut c = Counters::default();
        c.kernel[counter::RINGBUF_DROPS as usize] = 4;
        c.detect.decode_errors = 1;
        assert_eq!(c.list().len(), counter::NAMES.len());
        c.daemon = Some(DaemonCounters {
            maps_tampered: 2,
            sinks: vec![SinkStats {
                sink: "syslog",
                written: 7,
                dropped: 3,
                failed: 0,
                queued: 0,
                healthy: true,
            }],
            ..DaemonCounters::default()
        });
        let list = c.list();
        assert_eq!(list[..counter::NAMES.len()].len(), counter::NAMES.len());
        assert_eq!(c.json()["maps_tampered"], 2);
        assert_eq!(c.json()["syslog_written"], 7);
        assert_eq!(
            c.losses(),
            [
                ("ringbuf_drops".to_owned(), 4),
                ("decode_errors".to_owned(), 1),
                ("args_incomplete".to_owned(), 0),
                ("args_chunks_missing".to_owned(), 0),
                ("syslog_dropped".to_owned(), 3),
                ("syslog_failed".to_owned(), 0),
            ]
        );
    }
}

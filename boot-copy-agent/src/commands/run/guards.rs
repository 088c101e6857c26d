//! The watch on what another root process could change without touching the agent: the
//! programs' links (a detached program stops the agent, so that a restart attaches it again) and
//! the prefilter maps (written back at once). Checked every tick; each change is a record.
use crate::{
    integrity::{
        attachment::{Attachments, Link},
        maps::MapGuard,
    },
    records::{Origin, guard},
    sensor::{SensorError, prefilter::KernelFilter},
};
use anyhow::Context as _;
use serde_json::Value;

pub(super) struct Guards {
    attachments: Attachments,
    maps: MapGuard,
    /// Programs found detached so far.
    detached: u64,
    /// Map changes found so far.
    tampered: u64,
}

impl Guards {
    /// Remembers the links and the maps' contents (while bpf(2) is still allowed).
    pub(super) fn snapshot() -> anyhow::Result<Self> {
        Ok(Self {
            attachments: Attachments::snapshot().context("listing the attached programs")?,
            maps: MapGuard::snapshot().context("reading the sensor's maps")?,
            detached: 0,
            tampered: 0,
        })
    }

    pub(super) fn links(&self) -> &[Link] {
        self.attachments.links()
    }

    pub(super) fn maps(&self) -> Vec<&'static str> {
        self.maps.guarded()
    }

    pub(super) fn detached(&self) -> u64 {
        self.detached
    }

    pub(super) fn tampered(&self) -> u64 {
        self.tampered
    }

    /// A reload's prefilter, guarded from now on.
    pub(super) fn apply(&mut self, filter: &KernelFilter) -> Result<(), SensorError> {
        self.maps.apply(filter)
    }

    /// Records of links gone and maps changed since the last check (the maps already written
    /// back), each also logged as an error.
    pub(super) fn check(&mut self, origin: &Origin) -> Vec<Value> {
        let mut records = Vec::new();
        let gone = self.attachments.detached();
        if !gone.is_empty() {
            self.detached += gone.len() as u64;
            records.push(guard::detached(origin, &gone, self.attachments.links()));
        }
        let found = self.maps.check();
        if !found.is_empty() {
            self.tampered += found.len() as u64;
            records.push(guard::tampered(origin, &found));
        }
        for record in &records {
            tracing::error!("{}", record["message"]);
        }
        records
    }
}

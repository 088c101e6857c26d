//! Reassembling a watched exec's argv: the kernel sends the first part in the exec record and
//! the rest as chunks in the `ARGV_SPILL` map (see `boot_copy_common::SPILL_CHUNK`). Each chunk
//! is read back and deleted when its record is drained, and the record is handed on whole, as if
//! the kernel had sent it in one piece.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{HashMap, MapData};
use boot_copy_common::{ARGS_OFFSET, ExecHeader, SPILL_CHUNK, SpillKey, exec_flags};

/// The spill map, and a count of chunks the kernel stored that were not there when read.
pub struct Spill {
    map: HashMap<MapData, SpillKey, [u8; SPILL_CHUNK]>,
    missing: Arc<AtomicU64>,
}

impl Spill {
    pub(super) fn new(map: HashMap<MapData, SpillKey, [u8; SPILL_CHUNK]>) -> Self {
        Self {
            map,
            missing: Arc::default(),
        }
    }

    /// The counter of missing chunks, for the sensor's own counters.
    pub(super) fn missing_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.missing)
    }

    /// The whole record of `record` when its argv was spilled (`None`: it is whole already).
    /// The header's `args_len` then counts every byte present; a chunk that could not be read
    /// ends argv there and sets `CHUNK_MISSING` and `ARGS_TRUNCATED`.
    pub fn assemble(&mut self, record: &[u8]) -> Option<Vec<u8>> {
        if record.len() < ARGS_OFFSET {
            return None;
        }
        // SAFETY: length checked; the header is plain old data read unaligned.
        let mut h: ExecHeader = unsafe { core::ptr::read_unaligned(record.as_ptr().cast()) };
        if h.flags & exec_flags::SPILLED == 0 {
            return None;
        }
        let inline = ARGS_OFFSET + (h.args_len as usize).min(record.len() - ARGS_OFFSET);
        let spilled = h.spill_len as usize;
        let mut whole = Vec::with_capacity(inline + spilled);
        whole.extend_from_slice(&record[..inline]);
        let mut key = SpillKey {
            ktime_boot_ns: h.ktime_boot_ns,
            tgid: h.tgid,
            index: 0,
        };
        let mut left = spilled;
        while left > 0 {
            let Ok(chunk) = self.map.get(&key, 0) else {
                self.missing.fetch_add(1, Ordering::Relaxed);
                h.flags |= exec_flags::CHUNK_MISSING | exec_flags::ARGS_TRUNCATED;
                tracing::warn!(
                    tgid = h.tgid,
                    chunk = key.index,
                    "an argv chunk of a watched exec is missing from the spill map; its argv is incomplete"
                );
                break;
            };
            let n = left.min(SPILL_CHUNK);
            whole.extend_from_slice(&chunk[..n]);
            let _ = self.map.remove(&key);
            left -= n;
            key.index += 1;
        }
        // The chunks after a missing one are deleted too: nothing else will ask for them.
        while left > 0 {
            key.index += 1;
            let _ = self.map.remove(&key);
            left = left.saturating_sub(SPILL_CHUNK);
        }
        h.flags &= !exec_flags::SPILLED;
        h.args_len = (whole.len() - ARGS_OFFSET) as u32;
        // SAFETY: `whole` starts with a full header.
        unsafe { core::ptr::write_unaligned(whole.as_mut_ptr().cast(), h) };
        Some(whole)
    }
}

/// `ARGV_SPILL` entries for a ring buffer of `ring_bytes`.
pub fn entries(ring_bytes: u32) -> u32 {
    let (num, den) = boot_copy_common::SPILL_PER_RING_BYTE;
    (u64::from(ring_bytes) * u64::from(num) / u64::from(den) / SPILL_CHUNK as u64) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_ring_holds_the_largest_argv() {
        let chunks = super::entries(4 << 20) as usize;
        assert_eq!(chunks, 96);
        assert!(boot_copy_common::ARGS_CAP_WATCHED + chunks * super::SPILL_CHUNK > 6 << 20);
        assert_eq!(super::entries(1 << 20), 24);
    }
}

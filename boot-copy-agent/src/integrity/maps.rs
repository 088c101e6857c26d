//! Guards the maps that decide what the kernel reports: WATCHED (executable names),
//! WATCHED_SIZES (file sizes of cp and mv, for renamed copies) and CONFIG (report every exec,
//! and the bitmaps in front of the other two).
//! Another root process can change them with stock tools (`bpftool map delete id N key ...`
//! removes `cp` from what the kernel reports, without touching the programs). The agent
//! remembers their contents once filled, compares every tick, reports a change and writes the
//! remembered contents back through its own descriptors.
use crate::sensor::{SensorError, prefilter::KernelFilter};
use aya::{
    Pod,
    maps::{Array, HashMap, Map, MapData, MapError},
};
use boot_copy_common::{NAME_KEY_CAP, Prefilter};
use std::{
    collections::BTreeMap,
    fs,
    os::fd::{BorrowedFd, RawFd},
    path::Path,
};

/// A change found (and undone) in one map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tampering {
    pub map: &'static str,
    /// Entries that were missing or held another value, as the agent names them.
    pub removed: Vec<String>,
    /// Entries that were not the agent's.
    pub added: Vec<String>,
    /// Whether writing the remembered contents back succeeded.
    pub restored: bool,
}

/// The guarded maps, through descriptors of their own.
pub struct MapGuard {
    names: Option<Guarded<[u8; NAME_KEY_CAP]>>,
    sizes: Option<Guarded<u64>>,
    config: Option<(Array<MapData, Prefilter>, Prefilter)>,
}

impl MapGuard {
    /// Finds the maps among this process's descriptors and remembers their contents (call
    /// once they are filled, and while bpf(2) is still allowed).
    pub fn snapshot() -> Result<Self, MapError> {
        let mut guard = MapGuard {
            names: None,
            sizes: None,
            config: None,
        };
        for (name, data) in own_maps() {
            match name.as_str() {
                "WATCHED" => {
                    guard.names = Some(Guarded::new(HashMap::try_from(Map::HashMap(data))?)?)
                }
                "WATCHED_SIZES" => {
                    guard.sizes = Some(Guarded::new(HashMap::try_from(Map::HashMap(data))?)?)
                }
                "CONFIG" => {
                    let array = Array::try_from(Map::Array(data))?;
                    let value = array.get(&0, 0)?;
                    guard.config = Some((array, value));
                }
                _ => {}
            }
        }
        Ok(guard)
    }

    /// Maps found: the ones guarded.
    pub fn guarded(&self) -> Vec<&'static str> {
        [
            self.names.as_ref().map(|_| "WATCHED"),
            self.sizes.as_ref().map(|_| "WATCHED_SIZES"),
            self.config.as_ref().map(|_| "CONFIG"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Makes the kernel report what `filter` says (a reload's rules), through the descriptors
    /// already open: no privilege beyond CAP_BPF is needed. The new contents are the ones
    /// guarded from now on.
    pub fn apply(&mut self, filter: &KernelFilter) -> Result<(), SensorError> {
        let map_error = |map| move |source| SensorError::Map { map, source };
        if let Some(names) = &mut self.names {
            names.expected = filter.names.iter().map(|&k| (k, 1)).collect();
            names.sync().map_err(map_error("WATCHED"))?;
        }
        if let Some(sizes) = &mut self.sizes {
            sizes.expected = filter.sizes.iter().map(|&s| (s, 1)).collect();
            sizes.sync().map_err(map_error("WATCHED_SIZES"))?;
        }
        if let Some((array, value)) = &mut self.config {
            *value = filter.config;
            array.set(0, *value, 0).map_err(map_error("CONFIG"))?;
        }
        Ok(())
    }

    /// Changes since the snapshot (or the last [`apply`](Self::apply)), each written back.
    pub fn check(&mut self) -> Vec<Tampering> {
        let mut found = Vec::new();
        if let Some(names) = &mut self.names {
            found.extend(names.repair("WATCHED", |k| {
                let end = k.iter().position(|&b| b == 0).unwrap_or(k.len());
                String::from_utf8_lossy(&k[..end]).into_owned()
            }));
        }
        if let Some(sizes) = &mut self.sizes {
            found.extend(sizes.repair("WATCHED_SIZES", ToString::to_string));
        }
        if let Some((array, value)) = &mut self.config {
            match array.get(&0, 0) {
                Ok(now) if now == *value => {}
                now => found.push(Tampering {
                    map: "CONFIG",
                    removed: vec![describe(value)],
                    added: vec![now.map_or_else(|e| e.to_string(), |n| describe(&n))],
                    restored: array.set(0, *value, 0).is_ok(),
                }),
            }
        }
        found
    }
}

/// `CONFIG[0]` as a tampering record names it.
fn describe(p: &Prefilter) -> String {
    format!(
        "flags {} name bits {:x?} size bits {:x?}",
        p.flags, p.names, p.sizes
    )
}

/// A hash map of `K` to 1 and the entries it should hold.
struct Guarded<K: Pod + Ord> {
    map: HashMap<MapData, K, u8>,
    expected: BTreeMap<K, u8>,
}

impl<K: Pod + Ord> Guarded<K> {
    fn new(map: HashMap<MapData, K, u8>) -> Result<Self, MapError> {
        let expected = map.iter().collect::<Result<_, _>>()?;
        Ok(Self { map, expected })
    }

    fn repair(&mut self, map: &'static str, name: impl Fn(&K) -> String) -> Option<Tampering> {
        let (removed, added) = match self.differences() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(map, error = %e, "reading a guarded map");
                return None;
            }
        };
        if removed.is_empty() && added.is_empty() {
            return None;
        }
        Some(Tampering {
            map,
            removed: removed.iter().map(&name).collect(),
            added: added.iter().map(&name).collect(),
            restored: self.write(&removed, &added).is_ok(),
        })
    }

    /// Writes the expected contents.
    fn sync(&mut self) -> Result<(), MapError> {
        let (removed, added) = self.differences()?;
        self.write(&removed, &added)
    }

    /// Expected entries missing or different, and entries not expected.
    fn differences(&self) -> Result<(Vec<K>, Vec<K>), MapError> {
        let now: BTreeMap<K, u8> = self.map.iter().collect::<Result<_, _>>()?;
        let removed = self
            .expected
            .iter()
            .filter(|(k, v)| now.get(k) != Some(v))
            .map(|(k, _)| *k)
            .collect();
        let added = now
            .into_keys()
            .filter(|k| !self.expected.contains_key(k))
            .collect();
        Ok((removed, added))
    }

    fn write(&mut self, missing: &[K], extra: &[K]) -> Result<(), MapError> {
        for k in missing {
            self.map.insert(k, self.expected[k], 0)?;
        }
        for k in extra {
            self.map.remove(k)?;
        }
        Ok(())
    }
}

/// Every BPF map this process holds a descriptor for, by name, through a duplicate descriptor.
fn own_maps() -> Vec<(String, MapData)> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            if target != Path::new("anon_inode:bpf-map") {
                return None;
            }
            // SAFETY: the descriptor is open (just listed) and only duplicated here.
            let owned = unsafe { BorrowedFd::borrow_raw(fd) }
                .try_clone_to_owned()
                .ok()?;
            let data = MapData::from_fd(owned).ok()?;
            let name = data.info().ok()?.name_as_str()?.to_owned();
            Some((name, data))
        })
        .collect()
}

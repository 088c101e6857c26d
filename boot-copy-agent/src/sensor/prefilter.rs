//! The kernel prefilter maps: watched executable names (`WATCHED`), watched executable sizes
//! (`WATCHED_SIZES`) and the all-execs flag (`CONFIG`). Filled at start and replaced on a rules
//! reload, while the programs run.
use super::{SensorError, map_mut};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData},
};
use boot_copy_common::{NAME_KEY_CAP, config_flags};
use std::{collections::HashSet, hash::Hash};

/// What the kernel submits to userspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefilter {
    pub names: Vec<[u8; NAME_KEY_CAP]>,
    pub sizes: Vec<u64>,
    pub all_execs: bool,
}

/// Makes the maps hold exactly `p`. New keys go in before old ones go out, so while it runs
/// the kernel submits the union of both sets (extra candidates, never a missed one); the
/// all-execs flag changes last.
pub(super) fn apply(ebpf: &mut Ebpf, p: &Prefilter) -> Result<(), SensorError> {
    replace_keys(ebpf, "WATCHED", &p.names)?;
    replace_keys(ebpf, "WATCHED_SIZES", &p.sizes)?;
    let mut config: Array<_, u64> =
        Array::try_from(map_mut(ebpf, "CONFIG")?).map_err(|source| SensorError::Map {
            map: "CONFIG",
            source,
        })?;
    let flags = if p.all_execs {
        config_flags::ALL_EXECS
    } else {
        0
    };
    config.set(0, flags, 0).map_err(|source| SensorError::Map {
        map: "CONFIG",
        source,
    })
}

fn replace_keys<K>(ebpf: &mut Ebpf, map: &'static str, keys: &[K]) -> Result<(), SensorError>
where
    K: aya::Pod + Eq + Hash,
{
    let err = |source| SensorError::Map { map, source };
    let mut m: HashMap<&mut MapData, K, u8> =
        HashMap::try_from(map_mut(ebpf, map)?).map_err(err)?;
    for key in keys {
        m.insert(key, 1, 0).map_err(err)?;
    }
    let wanted: HashSet<&K> = keys.iter().collect();
    let stale: Vec<K> = m
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?
        .into_iter()
        .filter(|k| !wanted.contains(k))
        .collect();
    for key in &stale {
        m.remove(key).map_err(err)?;
    }
    Ok(())
}

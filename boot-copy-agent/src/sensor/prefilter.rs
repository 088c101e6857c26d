//! Fills the kernel prefilter maps at start: watched executable names (`WATCHED`), watched
//! executable sizes (`WATCHED_SIZES`) and the all-execs flag (`CONFIG`). A rules reload
//! changes them later through `integrity::maps::MapGuard`.
use super::{SensorError, map_mut};
use aya::{
    Ebpf,
    maps::{Array, HashMap},
};
use boot_copy_common::{NAME_KEY_CAP, config_flags};

pub(super) fn fill(
    ebpf: &mut Ebpf,
    names: &[[u8; NAME_KEY_CAP]],
    sizes: &[u64],
    all_execs: bool,
) -> Result<(), SensorError> {
    insert_keys(ebpf, "WATCHED", names)?;
    insert_keys(ebpf, "WATCHED_SIZES", sizes)?;
    let mut config: Array<_, u64> =
        Array::try_from(map_mut(ebpf, "CONFIG")?).map_err(|source| SensorError::Map {
            map: "CONFIG",
            source,
        })?;
    let flags = if all_execs {
        config_flags::ALL_EXECS
    } else {
        0
    };
    config.set(0, flags, 0).map_err(|source| SensorError::Map {
        map: "CONFIG",
        source,
    })
}

fn insert_keys<K: aya::Pod>(
    ebpf: &mut Ebpf,
    map: &'static str,
    keys: &[K],
) -> Result<(), SensorError> {
    let err = |source| SensorError::Map { map, source };
    let mut m: HashMap<_, K, u8> = HashMap::try_from(map_mut(ebpf, map)?).map_err(err)?;
    for key in keys {
        m.insert(key, 1, 0).map_err(err)?;
    }
    Ok(())
}

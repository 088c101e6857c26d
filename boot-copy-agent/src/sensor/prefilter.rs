//! Fills the kernel prefilter maps at start: watched executable names (`WATCHED`), watched
//! executable sizes (`WATCHED_SIZES`) and `CONFIG` (the all-execs flag and the bitmaps in front
//! of the two). A rules reload changes them later through `integrity::maps::MapGuard`.
use super::{SensorError, map_mut};
use aya::{
    Ebpf,
    maps::{Array, HashMap},
};
use boot_copy_common::{NAME_KEY_CAP, Prefilter, config_flags, name_words};

pub(super) fn fill(
    ebpf: &mut Ebpf,
    names: &[[u8; NAME_KEY_CAP]],
    sizes: &[u64],
    all_execs: bool,
) -> Result<(), SensorError> {
    insert_keys(ebpf, "WATCHED", names)?;
    insert_keys(ebpf, "WATCHED_SIZES", sizes)?;
    let err = |source| SensorError::Map {
        map: "CONFIG",
        source,
    };
    let mut config: Array<_, Prefilter> = Array::try_from(map_mut(ebpf, "CONFIG")?).map_err(err)?;
    config
        .set(0, value(names, sizes, all_execs), 0)
        .map_err(err)
}

/// `CONFIG[0]` for these names and sizes.
pub fn value(names: &[[u8; NAME_KEY_CAP]], sizes: &[u64], all_execs: bool) -> Prefilter {
    let words: Vec<_> = names.iter().map(name_words).collect();
    let flags = if all_execs {
        config_flags::ALL_EXECS
    } else {
        0
    };
    Prefilter::new(&words, sizes, flags)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::watched_keys;

    #[test]
    fn watched_names_and_sizes_pass_the_bitmaps() {
        let keys = watched_keys(&["cp".into(), "mv".into(), "install".into()]).unwrap();
        let sizes = [141_824, 137_728];
        let p = value(&keys, &sizes, false);
        assert_eq!(p.flags, 0);
        for key in &keys {
            assert!(p.may_watch_name(&name_words(key)));
        }
        for size in sizes {
            assert!(p.may_watch_size(size));
        }
        // Three names set at most three of 256 bits: most names are decided by the bitmap.
        let others = [
            "true", "sh", "bash", "cc", "ld", "make", "git", "sleep", "cat", "ls",
        ];
        let others = watched_keys(&others.map(String::from)).unwrap();
        let passed = others
            .iter()
            .filter(|k| p.may_watch_name(&name_words(k)))
            .count();
        assert!(
            passed <= 1,
            "{passed} of 10 unwatched names pass the bitmap"
        );
        assert_eq!(value(&keys, &sizes, true).flags, config_flags::ALL_EXECS);
        assert_eq!(value(&[], &[], false), Prefilter::default());
    }
}

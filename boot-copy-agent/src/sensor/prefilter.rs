//! What the kernel reports, in its maps' terms: watched executable names (`WATCHED`), watched
//! executable sizes (`WATCHED_SIZES`) and `CONFIG` (the all-execs flag and the bitmaps in front
//! of the two). A [`KernelFilter`] is computed once per loaded rule set; [`fill`] writes it at
//! start, `integrity::maps::MapGuard` on a rules reload and after tampering.
use super::{SensorError, map_mut, watched_keys};
use aya::{
    Ebpf,
    maps::{Array, HashMap},
};
use boot_copy_common::{NAME_KEY_CAP, Prefilter, config_flags, name_words};

/// The contents of the prefilter maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFilter {
    /// `WATCHED`: zero-padded executable basenames, reported with up to 512 KiB of arguments.
    pub names: Vec<[u8; NAME_KEY_CAP]>,
    /// `WATCHED_SIZES`: executable file sizes reported like watched names (the agent confirms
    /// what they are).
    pub sizes: Vec<u64>,
    /// `CONFIG[0]`.
    pub config: Prefilter,
}

impl KernelFilter {
    /// The maps' contents for these names and sizes; `all_execs`: report every exec too (up to
    /// 32 KiB of arguments for unwatched names). Refuses names the kernel could never match.
    pub fn new(names: &[String], sizes: Vec<u64>, all_execs: bool) -> Result<Self, SensorError> {
        let names = watched_keys(names)?;
        let config = value(&names, &sizes, all_execs);
        Ok(Self {
            names,
            sizes,
            config,
        })
    }

    /// This filter, reporting every exec besides.
    pub fn with_all_execs(mut self) -> Self {
        self.config.flags |= config_flags::ALL_EXECS;
        self
    }

    /// This filter, reading each sent exec's environment after its argv.
    pub fn with_env_capture(mut self) -> Self {
        self.config.flags |= config_flags::CAPTURE_ENV;
        self
    }

    pub fn all_execs(&self) -> bool {
        self.config.flags & config_flags::ALL_EXECS != 0
    }
}

pub(super) fn fill(ebpf: &mut Ebpf, filter: &KernelFilter) -> Result<(), SensorError> {
    insert_keys(ebpf, "WATCHED", &filter.names)?;
    insert_keys(ebpf, "WATCHED_SIZES", &filter.sizes)?;
    let err = |source| SensorError::Map {
        map: "CONFIG",
        source,
    };
    let mut config: Array<_, Prefilter> = Array::try_from(map_mut(ebpf, "CONFIG")?).map_err(err)?;
    config.set(0, filter.config, 0).map_err(err)
}

/// `CONFIG[0]` for these names and sizes.
fn value(names: &[[u8; NAME_KEY_CAP]], sizes: &[u64], all_execs: bool) -> Prefilter {
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
        let all = KernelFilter::new(&[], Vec::new(), true).unwrap();
        assert!(all.all_execs() && all.config.flags == config_flags::ALL_EXECS);
        let watched = KernelFilter::new(&["cp".into()], sizes.to_vec(), false).unwrap();
        assert!(!watched.all_execs());
        let both = watched.clone().with_all_execs();
        assert!(both.all_execs() && both.names == watched.names && both.sizes == watched.sizes);
        assert_eq!(
            KernelFilter::default(),
            KernelFilter::new(&[], Vec::new(), false).unwrap()
        );
    }
}

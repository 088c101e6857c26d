//! The kernel sensor: loads the eBPF object (`boot-copy-ebpf`, embedded at build time) relocated
//! against `sensor.btf`, learns from a test run of its layout probe which kernel fields that BTF
//! lacks, sizes and fills its maps, attaches the exec and fork programs, and hands out the
//! ring-buffer reader. Records are `boot_copy_common::ExecRecord`s truncated after their argument
//! bytes; the reader puts a watched exec's spilled argv back in (`spill`) and forwards the
//! programs' aya-log diagnostics (`diagnostics`).
mod diagnostics;
mod error;
pub mod hooks;
pub mod prefilter;
pub mod requirements;
mod ring;
pub mod roots;
mod spill;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::{
    Btf, Ebpf, EbpfLoader, Endianness,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, ProgramError, SocketFilter, TestRun, TestRunOptions},
};
use boot_copy_common::{NAME_KEY_CAP, PROC_TABLE_ENTRIES, ProcImage, counter, kernel_fields};

pub use error::SensorError;
use hooks::HOOKS;
pub use requirements::ensure_tracefs;
pub use ring::RingReader;

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/boot-copy"));

/// The programs: function name in the object (what `bpftool prog` shows) and the BTF
/// tracepoint each attaches to.
const PROGRAMS: [(&str, &str); 2] = [
    ("boot_copy_exec", "sched_process_exec"),
    ("boot_copy_fork", "sched_process_fork"),
];

/// The file program (`boot-copy-ebpf/src/file.rs`) and its tracepoint.
const FILE_PROGRAM: (&str, &str) = ("boot_copy_file", "sys_exit");

/// The oldest kernel the file program is loaded on: the kernel matrix's oldest, where it is
/// verified and its scenarios pass. The agent's floor (5.8) is older; there it runs without file
/// events (and says so at start) rather than try a load no test has run.
pub const FILE_EVENTS_MIN_KERNEL: (u32, u32) = (5, 10);

/// The program that reports which kernel fields the relocation BTF lacks (test-run once).
const LAYOUT_PROBE: &str = "boot_copy_layout";

/// The running kernel's BTF: what the programs attach with, and the default for relocation.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// `bpf_map_update_elem` flag: fail if the key exists.
const BPF_NOEXIST: u64 = 1;

#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// What the kernel reports: watched names and sizes (their whole argv, see `spill`), or
    /// every exec.
    pub filter: prefilter::KernelFilter,
    /// Ring-buffer size: a power of two of at least 1 MiB.
    pub ring_bytes: u32,
    /// Process-table capacity (LRU beyond it).
    pub table_entries: u32,
    /// BTF the CO-RE relocations are computed against (`sensor.btf`). The programs attach as
    /// BTF tracepoints, which always needs the running kernel's own BTF as well.
    pub btf: PathBuf,
    /// Directories whose trees the file programs watch (with the mounts under them).
    pub watched_dirs: Vec<PathBuf>,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            filter: prefilter::KernelFilter::default(),
            ring_bytes: 4 << 20,
            table_entries: PROC_TABLE_ENTRIES,
            btf: PathBuf::from(KERNEL_BTF),
            watched_dirs: vec![PathBuf::from(roots::BOOT)],
        }
    }
}

/// A loaded and attached sensor. Dropping it detaches the programs and frees the maps.
pub struct Sensor {
    table: HashMap<MapData, u32, ProcImage>,
    /// A descriptor of `PROC_TABLE`, for readers of their own (`Sensor::table_reader`).
    table_fd: Option<std::os::fd::OwnedFd>,
    counters: PerCpuArray<MapData, u64>,
    reader: Option<RingReader>,
    /// Spilled argv chunks the agent did not find (see `spill`).
    chunks_missing: Arc<AtomicU64>,
    degraded: Vec<&'static str>,
    /// Whether the file program is attached.
    file_events: bool,
    /// Whether the path hooks are attached (see `hooks`).
    path_hooks: bool,
    /// What the file program watches.
    watched: roots::Watched,
    // Owns the programs and their links; last so the maps above are released first.
    ebpf: Ebpf,
}

/// Kernel statistics of one attached program. Run counts and times only accumulate while BPF
/// statistics are enabled (`kernel.bpf_stats_enabled`, or `aya::sys::enable_stats`).
#[derive(Debug, Clone)]
pub struct ProgramStats {
    pub name: &'static str,
    pub id: u32,
    pub run_count: u64,
    pub run_time_ns: u64,
    /// Instructions the verifier processed at load (5.16+).
    pub verified_insns: Option<u32>,
}

impl Sensor {
    /// Checks requirements, mounts tracefs if needed, loads, sizes maps, fills the prefilter
    /// maps, attaches both programs.
    pub fn start(cfg: &SensorConfig) -> Result<Sensor, SensorError> {
        if cfg.ring_bytes < (1 << 20) || !cfg.ring_bytes.is_power_of_two() {
            return Err(SensorError::InvalidRingSize {
                bytes: cfg.ring_bytes,
            });
        }
        if cfg.table_entries == 0 {
            return Err(SensorError::InvalidTableSize);
        }
        requirements::check()?;
        // BTF tracepoints do not need tracefs; mount it for the tools that do, but go on without.
        if let Err(e) = ensure_tracefs() {
            tracing::warn!("{e}");
        }
        requirements::raise_memlock();

        let btf = Btf::from_sys_fs().map_err(|_| SensorError::NoBtf)?;
        let custom;
        let relocation_btf = if cfg.btf == Path::new(KERNEL_BTF) {
            &btf
        } else {
            custom = parse_btf(&cfg.btf)?;
            &custom
        };
        let mut ebpf = EbpfLoader::new()
            .btf(Some(relocation_btf))
            .map_max_entries("EVENTS", cfg.ring_bytes)
            .map_max_entries("SCRATCH", requirements::possible_cpu_slots()?)
            .map_max_entries("FILE_SCRATCH", requirements::possible_cpu_slots()?)
            .map_max_entries("PROC_TABLE", cfg.table_entries)
            .map_max_entries("ARGV_SPILL", spill::entries(cfg.ring_bytes))
            .load(EBPF_OBJECT)?;
        let log = diagnostics::KernelLog::take(&mut ebpf);
        let degraded = check_layout(&mut ebpf, &cfg.btf)?;

        prefilter::fill(&mut ebpf, &cfg.filter)?;

        let watched = roots::watched(&cfg.watched_dirs)?;
        roots::fill(&mut ebpf, &watched)?;

        for (name, tracepoint) in PROGRAMS {
            attach(&mut ebpf, &btf, name, tracepoint)?;
        }
        let file_events = requirements::kernel_at_least(FILE_EVENTS_MIN_KERNEL);
        let mut path_hooks = false;
        if file_events {
            attach(&mut ebpf, &btf, FILE_PROGRAM.0, FILE_PROGRAM.1)?;
            let off = match hooks::unavailable(&btf) {
                None => hooks::attach(&mut ebpf)?,
                why => why,
            };
            path_hooks = off.is_none();
            if let Some(why) = off {
                tracing::warn!(
                    "path-named file operations (mkdir, unlink, rename, chmod, ...) are decided \
                     from the paths as passed, not resolved by the kernel: {why}; one through a \
                     symlink to a watched tree, and io_uring's, are missed"
                );
            }
        } else {
            tracing::warn!(
                "file events are off: the file program needs Linux {}.{} or newer",
                FILE_EVENTS_MIN_KERNEL.0,
                FILE_EVENTS_MIN_KERNEL.1
            );
        }

        let table_map = take_map(&mut ebpf, "PROC_TABLE")?;
        let table_fd = map_fd(&table_map);
        let table = HashMap::try_from(table_map).map_err(|source| SensorError::Map {
            map: "PROC_TABLE",
            source,
        })?;
        let counters =
            PerCpuArray::try_from(take_map(&mut ebpf, "COUNTERS")?).map_err(|source| {
                SensorError::Map {
                    map: "COUNTERS",
                    source,
                }
            })?;
        let ring = RingBuf::try_from(take_map(&mut ebpf, "EVENTS")?).map_err(|source| {
            SensorError::Map {
                map: "EVENTS",
                source,
            }
        })?;
        let spill = spill::Spill::new(
            HashMap::try_from(take_map(&mut ebpf, "ARGV_SPILL")?).map_err(|source| {
                SensorError::Map {
                    map: "ARGV_SPILL",
                    source,
                }
            })?,
        );
        let chunks_missing = spill.missing_counter();
        Ok(Sensor {
            table,
            table_fd,
            counters,
            reader: Some(RingReader::new(ring, spill, log)),
            chunks_missing,
            degraded,
            file_events,
            path_hooks,
            watched,
            ebpf,
        })
    }

    /// Optional kernel fields the relocation BTF lacks (`kernel_fields::OPTIONAL` names): the
    /// values they feed are empty in every record, and each record sent counts in
    /// `degraded_records`.
    pub fn degraded_fields(&self) -> &[&'static str] {
        &self.degraded
    }

    /// The trees the file program watches.
    pub fn watched(&self) -> &roots::Watched {
        &self.watched
    }

    /// Makes the file program watch the trees of `dirs` instead (a reload; see
    /// `roots::renumber`).
    pub fn watch(&mut self, dirs: &[PathBuf]) -> Result<&roots::Watched, SensorError> {
        let new = roots::renumber(&self.watched, roots::watched(dirs)?);
        roots::replace(&mut self.ebpf, &self.watched, &new)?;
        self.watched = new;
        Ok(&self.watched)
    }

    /// Whether writes into the watched trees are reported (see `FILE_EVENTS_MIN_KERNEL`).
    pub fn file_events(&self) -> bool {
        self.file_events
    }

    /// Whether path-named file operations are resolved by the kernel's path hooks (see
    /// `hooks`).
    pub fn path_hooks(&self) -> bool {
        self.path_hooks
    }

    /// Inserts a /proc-derived image only if the kernel has no entry (BPF_NOEXIST). Ok(false) if
    /// one existed.
    pub fn seed(&mut self, tgid: u32, image: &ProcImage) -> Result<bool, SensorError> {
        match self.table.insert(tgid, image, BPF_NOEXIST) {
            Ok(()) => Ok(true),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {
                Ok(false)
            }
            Err(source) => Err(SensorError::Map {
                map: "PROC_TABLE",
                source,
            }),
        }
    }

    /// A handle of its own on the kernel's process table, for the detector (leaders that
    /// exited are described from it).
    pub fn table_reader(&self) -> Result<TableReader, SensorError> {
        let map_error = |source| SensorError::Map {
            map: "PROC_TABLE",
            source,
        };
        let fd = self
            .table_fd
            .as_ref()
            .and_then(|fd| fd.try_clone().ok())
            .ok_or(SensorError::MissingMap { map: "PROC_TABLE" })?;
        let data = MapData::from_fd(fd).map_err(map_error)?;
        let map = HashMap::try_from(aya::maps::Map::LruHashMap(data)).map_err(map_error)?;
        Ok(TableReader(map))
    }

    /// Per-counter totals summed over CPUs, indexed by `boot_copy_common::counter`.
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize], SensorError> {
        let mut totals = [0u64; counter::COUNT as usize];
        for (i, total) in totals.iter_mut().enumerate() {
            let values = self
                .counters
                .get(&(i as u32), 0)
                .map_err(|source| SensorError::Map {
                    map: "COUNTERS",
                    source,
                })?;
            *total = values.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(totals)
    }

    /// Spilled argv chunks that were not in the spill map when the agent read them: each made
    /// its exec's argv incomplete.
    pub fn chunks_missing(&self) -> u64 {
        self.chunks_missing.load(Ordering::Relaxed)
    }

    /// Statistics of the programs.
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, SensorError> {
        let file = self.file_events.then_some(FILE_PROGRAM.0);
        let hooks = HOOKS
            .iter()
            .filter(|_| self.path_hooks)
            .map(|&(name, _)| name);
        PROGRAMS
            .iter()
            .map(|&(name, _)| name)
            .chain(file)
            .chain(hooks)
            .map(|name| {
                let program_error = |source| SensorError::Program {
                    program: name.to_owned(),
                    source,
                };
                let info = self
                    .ebpf
                    .program(name)
                    .ok_or_else(|| program_error(ProgramError::NotLoaded))?
                    .info()
                    .map_err(program_error)?;
                Ok(ProgramStats {
                    name,
                    id: info.id(),
                    run_count: info.run_count(),
                    run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                    verified_insns: info.verified_instruction_count(),
                })
            })
            .collect()
    }

    /// Take the ring-buffer reader (to move into a tokio task).
    pub fn take_reader(&mut self) -> Result<RingReader, SensorError> {
        self.reader.take().ok_or(SensorError::ReaderTaken)
    }
}

/// Zero-padded keys of the watched names; rejects names the kernel could never match.
pub fn watched_keys(names: &[String]) -> Result<Vec<[u8; NAME_KEY_CAP]>, SensorError> {
    names
        .iter()
        .map(|name| {
            let invalid = |reason| SensorError::InvalidWatchedName {
                name: name.clone(),
                reason,
            };
            let bytes = name.as_bytes();
            if bytes.is_empty() {
                return Err(invalid("it is empty"));
            }
            if bytes.len() > NAME_KEY_CAP - 1 {
                return Err(invalid("it is too long"));
            }
            if bytes.contains(&b'/') || bytes.contains(&0) {
                return Err(invalid("it contains '/' or NUL"));
            }
            let mut key = [0u8; NAME_KEY_CAP];
            key[..bytes.len()].copy_from_slice(bytes);
            Ok(key)
        })
        .collect()
}

fn parse_btf(path: &Path) -> Result<Btf, SensorError> {
    let invalid = |reason: String| SensorError::BtfFile {
        path: path.to_owned(),
        reason,
    };
    // Checked first so that a missing file says so plainly.
    std::fs::metadata(path).map_err(|e| invalid(e.to_string()))?;
    Btf::parse_file(path, Endianness::default()).map_err(|e| invalid(e.to_string()))
}

/// Test-runs the layout probe (relocated like the other programs) and reads back the fields the
/// relocation BTF lacks. Refuses a BTF without a required field; returns the optional ones.
fn check_layout(ebpf: &mut Ebpf, btf_path: &Path) -> Result<Vec<&'static str>, SensorError> {
    let program_error = |source| SensorError::Program {
        program: LAYOUT_PROBE.to_owned(),
        source,
    };
    let probe: &mut SocketFilter = ebpf
        .program_mut(LAYOUT_PROBE)
        .ok_or_else(|| program_error(ProgramError::NotLoaded))?
        .try_into()
        .map_err(program_error)?;
    probe.load().map_err(program_error)?;
    // A socket filter runs on a packet: the smallest the kernel accepts is an Ethernet header.
    let packet = [0u8; 14];
    probe
        .test_run(TestRunOptions {
            data_in: Some(&packet),
            ..TestRunOptions::default()
        })
        .map_err(program_error)?;
    probe.unload().map_err(program_error)?;
    let layout: Array<_, u64> = Array::try_from(
        ebpf.map("LAYOUT")
            .ok_or(SensorError::MissingMap { map: "LAYOUT" })?,
    )
    .map_err(|source| SensorError::Map {
        map: "LAYOUT",
        source,
    })?;
    let missing = layout.get(&0, 0).map_err(|source| SensorError::Map {
        map: "LAYOUT",
        source,
    })?;
    let required: Vec<&str> = kernel_fields::REQUIRED
        .iter()
        .filter(|(bit, _)| missing & (1 << bit) != 0)
        .map(|&(_, name)| name)
        .collect();
    if !required.is_empty() {
        return Err(SensorError::RequiredFieldsMissing {
            path: btf_path.to_owned(),
            fields: required.join(", "),
        });
    }
    Ok(degraded_names(missing))
}

/// Names of the optional fields whose bits are set in `missing`.
fn degraded_names(missing: u64) -> Vec<&'static str> {
    kernel_fields::OPTIONAL
        .iter()
        .filter(|(bit, _, _)| missing & (1 << bit) != 0)
        .map(|&(_, name, _)| name)
        .collect()
}

fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    map: &'static str,
) -> Result<&'a mut aya::maps::Map, SensorError> {
    ebpf.map_mut(map).ok_or(SensorError::MissingMap { map })
}

/// A descriptor of its own for an LRU hash map (`None` for another kind): a reader made from it
/// needs no privilege (opening a map by its id would need `CAP_SYS_ADMIN`).
fn map_fd(map: &aya::maps::Map) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    match map {
        aya::maps::Map::LruHashMap(data) => data.fd().as_fd().try_clone_to_owned().ok(),
        _ => None,
    }
}

/// Reads the kernel's process table.
pub struct TableReader(HashMap<MapData, u32, ProcImage>);

impl crate::context::session::Table for TableReader {
    fn get(&self, pid: u32) -> Option<crate::decode::Image> {
        let raw = self.0.get(&pid, 0).ok()?;
        Some(crate::decode::image_from(&raw))
    }
}

fn take_map(ebpf: &mut Ebpf, map: &'static str) -> Result<aya::maps::Map, SensorError> {
    ebpf.take_map(map).ok_or(SensorError::MissingMap { map })
}

fn attach(ebpf: &mut Ebpf, btf: &Btf, name: &str, tracepoint: &str) -> Result<(), SensorError> {
    let program_error = |source| SensorError::Program {
        program: name.to_owned(),
        source,
    };
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| program_error(ProgramError::NotLoaded))?
        .try_into()
        .map_err(program_error)?;
    program
        .load(tracepoint, btf)
        .map_err(|e| verifier_error(name, e))?;
    program.attach().map_err(program_error)?;
    Ok(())
}

/// A load error, with the verifier's log when it rejected the program.
fn verifier_error(name: &str, e: ProgramError) -> SensorError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => SensorError::VerifierRejected {
            program: name.to_owned(),
            error: io_error,
            log: verifier_log.to_string(),
        },
        other => SensorError::Program {
            program: name.to_owned(),
            source: other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_names() {
        let keys = watched_keys(&["cp".into(), "mv".into()]).unwrap();
        assert_eq!(&keys[0][..3], b"cp\0");
        assert!(keys[1][2..].iter().all(|&b| b == 0));
        let long = "x".repeat(NAME_KEY_CAP);
        let err = watched_keys(&[long]).unwrap_err();
        assert!(matches!(err, SensorError::InvalidWatchedName { .. }));
        assert!(err.to_string().contains("1 to 63 bytes"), "{err}");
        assert!(watched_keys(&["x".repeat(NAME_KEY_CAP - 1)]).is_ok());
        assert!(watched_keys(&[String::new()]).is_err());
        assert!(watched_keys(&["a/b".into()]).is_err());
    }

    #[test]
    fn field_bits() {
        assert!(degraded_names(0).is_empty());
        assert_eq!(
            degraded_names(kernel_fields::START_BOOTTIME | 1 << 40),
            ["task_struct.start_boottime"]
        );
        // Every field has its own bit, optional ones below 32 and required ones above.
        let mut bits: Vec<u32> = kernel_fields::OPTIONAL.iter().map(|f| f.0).collect();
        assert!(bits.iter().all(|&b| b < 32));
        assert!(
            kernel_fields::REQUIRED
                .iter()
                .all(|f| (32..64).contains(&f.0))
        );
        bits.extend(kernel_fields::REQUIRED.iter().map(|f| f.0));
        let n = bits.len();
        bits.sort_unstable();
        bits.dedup();
        assert_eq!(bits.len(), n);
    }

    #[test]
    fn one_line_messages() {
        for e in [
            SensorError::NoBtf,
            SensorError::NotPrivileged { cap_eff: 0 },
            SensorError::KernelTooOld {
                release: "5.4.0".into(),
            },
            SensorError::TracefsUnavailable {
                source: std::io::Error::from_raw_os_error(1),
            },
        ] {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert!(
            SensorError::NoBtf
                .to_string()
                .contains("CONFIG_DEBUG_INFO_BTF")
        );
        let tracefs = SensorError::TracefsUnavailable {
            source: std::io::Error::from_raw_os_error(1),
        };
        assert!(
            tracefs
                .to_string()
                .contains("mount -t tracefs nodev /sys/kernel/tracing")
        );
    }
}

//! Why the sensor could not start or operate. Messages are one line (except the verifier log)
//! and name the fix.
use std::{io, path::PathBuf};

use boot_copy_common::NAME_KEY_CAP;

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error(
        "insufficient privileges to load eBPF (effective capabilities {cap_eff:#x}): run as root \
         or grant CAP_BPF and CAP_PERFMON (systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON)"
    )]
    NotPrivileged { cap_eff: u64 },

    #[error(
        "kernel has no BTF (CONFIG_DEBUG_INFO_BTF): /sys/kernel/btf/vmlinux is missing; boot a \
         kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,

    #[error(
        "cannot use {path} as the BTF for CO-RE relocation (sensor.btf): {reason}; point \
         sensor.btf at the kernel's BTF (/sys/kernel/btf/vmlinux) or a BTF file made for this \
         kernel"
    )]
    BtfFile { path: PathBuf, reason: String },

    #[error(
        "the BTF {path} lacks kernel fields the sensor cannot work without: {fields}; it does not \
         describe a kernel the sensor supports (5.8 or newer)"
    )]
    RequiredFieldsMissing { path: PathBuf, fields: String },

    #[error(
        "tracefs is not mounted and could not be mounted ({source}): run `mount -t tracefs nodev \
         /sys/kernel/tracing`"
    )]
    TracefsUnavailable { source: io::Error },

    #[error(
        "kernel {release} is too old: the BPF ring buffer and BTF tracepoints need Linux 5.8 or \
         newer; upgrade the kernel"
    )]
    KernelTooOld { release: String },

    #[error("the kernel verifier rejected program {program} ({error}); verifier log:\n{log}")]
    VerifierRejected {
        program: String,
        error: io::Error,
        log: String,
    },

    #[error(
        "invalid watched name {name:?}: {reason} (a watched name is an executable's basename of \
         1 to {max} bytes)",
        max = NAME_KEY_CAP - 1
    )]
    InvalidWatchedName { name: String, reason: &'static str },

    #[error(
        "invalid ring buffer size {bytes}: it must be a power of two of at least 1048576 bytes; \
         fix sensor.ring_buffer_bytes"
    )]
    InvalidRingSize { bytes: u32 },

    #[error("invalid process table size 0: fix sensor.process_table_entries")]
    InvalidTableSize,

    #[error("reading {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },

    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),

    #[error("eBPF program {program}: {source}")]
    Program {
        program: String,
        source: aya::programs::ProgramError,
    },

    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },

    #[error("eBPF map {map} is missing from the object")]
    MissingMap { map: &'static str },

    #[error("the ring-buffer reader was already taken")]
    ReaderTaken,
}

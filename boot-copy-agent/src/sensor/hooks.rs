//! The path hooks (`boot-copy-ebpf/src/hook.rs`): kprobes on the LSM path hooks, which see a
//! path-named file operation (`mkdir`, `unlink`, `rename`, `chmod`, ...) with its path resolved by
//! the kernel, symlinks and `..` included. They are attached where the kernel has kprobes and
//! every hooked function (`CONFIG_SECURITY_PATH`, which Debian's, Ubuntu's and RHEL's kernels
//! set); elsewhere the file program decides those operations from the paths as passed, and the
//! agent says so at start.
use std::path::Path;

use aya::{
    Btf, Ebpf,
    maps::Array,
    programs::{KProbe, ProgramError},
};
use aya_obj::btf::BtfKind;

use super::{SensorError, verifier_error};

/// Each hook program and the kernel functions it is attached to.
pub const HOOKS: [(&str, &[&str]); 7] = [
    (
        "boot_copy_path_create",
        &[
            "security_path_mknod",
            "security_path_mkdir",
            "security_path_symlink",
        ],
    ),
    (
        "boot_copy_path_delete",
        &["security_path_unlink", "security_path_rmdir"],
    ),
    ("boot_copy_path_link", &["security_path_link"]),
    ("boot_copy_path_rename", &["security_path_rename"]),
    ("boot_copy_path_truncate", &["security_path_truncate"]),
    (
        "boot_copy_path_attributes",
        &["security_path_chmod", "security_path_chown", "vfs_utimes"],
    ),
    ("boot_copy_file_open", &["security_file_open"]),
];

/// The kprobe PMU: its absence means a kernel without kprobes.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

/// Why the hooks cannot be attached on this kernel, if they cannot.
pub fn unavailable(btf: &Btf) -> Option<String> {
    if !Path::new(KPROBE_PMU).exists() {
        return Some("the kernel has no kprobes".to_owned());
    }
    let missing: Vec<&str> = HOOKS
        .iter()
        .flat_map(|(_, functions)| functions.iter().copied())
        .filter(|f| btf.id_by_type_name_kind(f, BtfKind::Func).is_err())
        .collect();
    (!missing.is_empty()).then(|| format!("the kernel lacks {}", missing.join(", ")))
}

/// Loads and attaches every hook program, then tells the file program they are on. A kernel
/// that refuses the attachment (`perf_event_open`: Debian's `kernel.perf_event_paranoid=3`
/// wants CAP_SYS_ADMIN, which the packaged unit does not grant) leaves them off: `Ok(Some(why))`,
/// with every hook unloaded again. A program the verifier rejects is an error.
pub fn attach(ebpf: &mut Ebpf) -> Result<Option<String>, SensorError> {
    for (name, functions) in HOOKS {
        let program_error = |source| SensorError::Program {
            program: name.to_owned(),
            source,
        };
        let program: &mut KProbe = ebpf
            .program_mut(name)
            .ok_or_else(|| program_error(ProgramError::NotLoaded))?
            .try_into()
            .map_err(program_error)?;
        program.load().map_err(|e| verifier_error(name, e))?;
        for function in functions {
            if let Err(e) = program.attach(function, 0) {
                unload_all(ebpf);
                return Ok(Some(format!("attaching {name} to {function}: {e}")));
            }
        }
    }
    let map = ebpf
        .map_mut("PATH_HOOKS")
        .ok_or(SensorError::MissingMap { map: "PATH_HOOKS" })?;
    let map_error = |source| SensorError::Map {
        map: "PATH_HOOKS",
        source,
    };
    let mut on: Array<_, u32> = Array::try_from(map).map_err(map_error)?;
    on.set(0, 1, 0).map_err(map_error)?;
    Ok(None)
}

/// Unloads every hook program loaded (their attachments go with them).
fn unload_all(ebpf: &mut Ebpf) {
    for (name, _) in HOOKS {
        let program: Option<&mut KProbe> = ebpf.program_mut(name).and_then(|p| p.try_into().ok());
        if let Some(program) = program {
            let _ = program.unload();
        }
    }
}

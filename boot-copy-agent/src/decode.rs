//! Ring-buffer records → owned exec and file events. Nothing here knows about ECS.
use boot_copy_common::{
    ARGS_OFFSET, ExecHeader, ExecRecord, FILE_ARGS_CAP, FileHeader, FileRecord, INTERP_CAP,
    PASSED_PATH_CAP, PATH_CAP, ProcImage, RECORD_EXEC, RECORD_FILE, Session, exec_flags,
    file_flags, image_flags,
};
use core::mem::{offset_of, size_of};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than an exec record header")]
    Short(usize),
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("record claims {claimed} argument bytes but carries {present}")]
    ArgsLength { claimed: usize, present: usize },
}

/// A process image from the kernel's process table (the parent at the child's exec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub tgid: u32,
    pub start_boottime_ns: u64,
    pub flags: u32,
    pub args_count: u32,
    /// Effective user and group when the entry was made.
    pub euid: u32,
    pub egid: u32,
    pub exe: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
}

impl Image {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// One exec as the kernel saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub flags: u32,
    pub ktime_boot_ns: u64,
    pub start_boottime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub args_count: u32,
    pub args_size: u32,
    pub comm: Vec<u8>,
    /// Path as passed to execve.
    pub filename: Vec<u8>,
    /// Resolved path of the file the kernel runs (the interpreter for a script).
    pub exe: Vec<u8>,
    /// `#!` interpreter as written in the script, when this is a script.
    pub interp: Option<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub args: Vec<Vec<u8>>,
    /// The environment's entries (`NAME=value`), when captured (`ENV_CAPTURED`).
    pub env: Option<Vec<Vec<u8>>>,
    /// The parent's entry in the kernel process table, if it had one.
    pub parent: Option<Image>,
    /// Process group, session, terminal, parent's credentials, namespace and cgroup.
    pub session: Session,
}

impl Exec {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// One ring-buffer record of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Exec(Exec),
    File(FileOp),
}

/// One file operation in a watched tree, and the process that made it (as an [`Exec`] of its
/// current image: `filename` and `exe` are its executable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    /// `boot_copy_common::file_action`.
    pub action: u32,
    /// `path` or `old_path` was cut at the record's capacity.
    pub path_truncated: bool,
    /// The file's absolute path.
    pub path: Vec<u8>,
    /// A rename's source path.
    pub old_path: Option<Vec<u8>>,
    /// The watched tree the kernel found the file in (`roots::Watched::tree`).
    pub tree: u32,
    /// An io_uring worker began it: sent before its result (`file_flags::IO_URING`).
    pub io_uring: bool,
    pub writer: Exec,
}

/// Decodes one ring-buffer record of either kind.
pub fn decode_record(record: &[u8]) -> Result<Record, DecodeError> {
    match record_kind(record) {
        Some(RECORD_FILE) => decode_file(record).map(Record::File),
        _ => decode(record).map(Record::Exec),
    }
}

fn record_kind(record: &[u8]) -> Option<u32> {
    let bytes = record.get(..4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Decodes a file record.
pub fn decode_file(record: &[u8]) -> Result<FileOp, DecodeError> {
    if record.len() < size_of::<FileRecord>() {
        return Err(DecodeError::Short(record.len()));
    }
    // SAFETY: length checked above; the record is plain old data read unaligned.
    let r: FileRecord = unsafe { core::ptr::read_unaligned(record.as_ptr().cast()) };
    let h: &FileHeader = &r.header;
    if h.kind != RECORD_FILE {
        return Err(DecodeError::Kind(h.kind));
    }
    let path = join(
        &c_string(&r.dir, h.dir_len as usize),
        &c_string(&r.name, h.name_len as usize),
    );
    let old_path = (h.old_dir_len > 0 || h.old_name_len > 0).then(|| {
        join(
            &c_string(&r.old_dir, h.old_dir_len as usize),
            &c_string(&r.old_name, h.old_name_len as usize),
        )
    });
    let exe = c_string(&r.exe, h.exe_len as usize);
    let args_len = (h.args_len as usize).min(FILE_ARGS_CAP);
    let args = split_args(&r.args[..args_len]);
    let mut flags = 0;
    let map = [
        (file_flags::ARGS_TRUNCATED, exec_flags::ARGS_TRUNCATED),
        (file_flags::ARGS_READ_FAILED, exec_flags::ARGS_READ_FAILED),
        (file_flags::EXE_TRUNCATED, exec_flags::EXE_TRUNCATED),
        (file_flags::CWD_TRUNCATED, exec_flags::CWD_TRUNCATED),
        (file_flags::PARENT_FOUND, exec_flags::PARENT_FOUND),
        (file_flags::CWD_MISSING, exec_flags::CWD_MISSING),
        (file_flags::SCRIPT, exec_flags::SCRIPT),
    ];
    for (file, exec) in map {
        if h.flags & file != 0 {
            flags |= exec;
        }
    }
    let writer = Exec {
        flags,
        ktime_boot_ns: h.ktime_boot_ns,
        start_boottime_ns: h.start_boottime_ns,
        pid: h.pid,
        tgid: h.tgid,
        ppid: h.ppid,
        uid: h.uid,
        euid: h.euid,
        gid: h.gid,
        egid: h.egid,
        // The kernel reads argc at exec only; the captured arguments count here.
        args_count: args.len() as u32,
        args_size: h.args_size,
        comm: c_string(&h.comm, h.comm.len()),
        filename: exe.clone(),
        exe,
        interp: None,
        cwd: (h.flags & file_flags::CWD_MISSING == 0).then(|| c_string(&r.cwd, h.cwd_len as usize)),
        args,
        env: None,
        parent: (h.flags & file_flags::PARENT_FOUND != 0).then(|| image_from(&r.parent)),
        session: h.session,
    };
    Ok(FileOp {
        action: h.action,
        path_truncated: h.flags & (file_flags::PATH_TRUNCATED | file_flags::OLD_PATH_TRUNCATED)
            != 0
            || h.name_len as usize >= PASSED_PATH_CAP - 1
            || h.old_name_len as usize >= PASSED_PATH_CAP - 1,
        path,
        old_path,
        tree: h.tree,
        io_uring: h.flags & file_flags::IO_URING != 0,
        writer,
    })
}

/// The path as passed made absolute against the directory it started at, lexically (an empty
/// path: the directory is the file itself).
fn join(dir: &[u8], passed: &[u8]) -> Vec<u8> {
    if passed.is_empty() {
        dir.to_vec()
    } else {
        crate::context::paths::absolute(dir, passed)
    }
}

/// Decodes one ring-buffer record.
pub fn decode(record: &[u8]) -> Result<Exec, DecodeError> {
    if record.len() < ARGS_OFFSET {
        return Err(DecodeError::Short(record.len()));
    }
    // SAFETY: length checked above; the header is plain old data read unaligned.
    let h: ExecHeader = unsafe { core::ptr::read_unaligned(record.as_ptr().cast()) };
    if h.kind != RECORD_EXEC {
        return Err(DecodeError::Kind(h.kind));
    }
    let args_area = &record[ARGS_OFFSET..];
    let args_len = h.args_len as usize;
    if args_len > args_area.len() {
        return Err(DecodeError::ArgsLength {
            claimed: args_len,
            present: args_area.len(),
        });
    }
    let field = |offset: usize, cap: usize, len: u32| -> Vec<u8> {
        c_string(&record[offset..offset + cap], len as usize)
    };
    let filename = field(offset_of!(ExecRecord, filename), PATH_CAP, h.filename_len);
    let exe = field(offset_of!(ExecRecord, exe), PATH_CAP, h.exe_len);
    let interp = (h.flags & exec_flags::SCRIPT != 0)
        .then(|| field(offset_of!(ExecRecord, interp), INTERP_CAP, h.interp_len));
    let cwd = (h.flags & exec_flags::CWD_MISSING == 0)
        .then(|| field(offset_of!(ExecRecord, cwd), PATH_CAP, h.cwd_len));
    // The environment's bytes follow argv's when captured.
    let captured = h.flags & exec_flags::ENV_CAPTURED != 0;
    let args_end = if captured {
        args_len.min(h.args_size as usize)
    } else {
        args_len
    };
    let (args, env) = args_area[..args_len].split_at(args_end);
    // A cut argument has no terminating NUL: the captured byte count is one less than the
    // arguments' lengths with their NULs.
    let cut = args.last().is_some_and(|&b| b != 0);
    let mut flags = h.flags | if cut { exec_flags::LAST_ARG_CUT } else { 0 };
    let env = captured.then(|| {
        if (env.len() as u64) < h.env_size as u64 {
            flags |= exec_flags::ENV_INCOMPLETE;
        }
        captured_env(env)
    });
    let parent = (h.flags & exec_flags::PARENT_FOUND != 0).then(|| {
        let start = offset_of!(ExecRecord, parent);
        // SAFETY: the record is at least ARGS_OFFSET long, which covers `parent`.
        let image: ProcImage =
            unsafe { core::ptr::read_unaligned(record[start..].as_ptr().cast()) };
        image_from(&image)
    });
    Ok(Exec {
        flags,
        ktime_boot_ns: h.ktime_boot_ns,
        start_boottime_ns: h.start_boottime_ns,
        pid: h.pid,
        tgid: h.tgid,
        ppid: h.ppid,
        uid: h.uid,
        euid: h.euid,
        gid: h.gid,
        egid: h.egid,
        args_count: h.args_count,
        args_size: h.args_size,
        comm: c_string(&h.comm, h.comm.len()),
        filename,
        exe,
        interp,
        cwd,
        args: split_args(args),
        env,
        parent,
        session: h.session,
    })
}

/// The environment's entries; a last entry cut by the capture is left out (its value is not the
/// variable's).
fn captured_env(block: &[u8]) -> Vec<Vec<u8>> {
    let whole = block.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
    split_args(&block[..whole])
}

/// Converts a kernel process-table entry (or one seeded from /proc).
pub fn image_from(image: &ProcImage) -> Image {
    let args_len = (image.args_len as usize).min(image.args.len());
    Image {
        tgid: image.tgid,
        start_boottime_ns: image.start_boottime_ns,
        flags: image.flags,
        args_count: image.args_count,
        euid: image.euid,
        egid: image.egid,
        exe: c_string(&image.exe, image.exe_len as usize),
        args: split_args(&image.args[..args_len]),
        cwd: c_string(&image.cwd, image.cwd_len as usize),
    }
}

/// Builds a process-table entry from userspace data (seeding from /proc), truncating to the
/// table's bounds and flagging what was cut.
pub fn image_to_raw(image: &Image) -> ProcImage {
    // SAFETY: ProcImage is plain old data; all-zero is a valid value.
    let mut raw: ProcImage = unsafe { core::mem::zeroed() };
    raw.tgid = image.tgid;
    raw.start_boottime_ns = image.start_boottime_ns;
    raw.flags = image.flags;
    raw.args_count = image.args_count;
    raw.euid = image.euid;
    raw.egid = image.egid;
    let (exe_len, exe_cut) = put_c_string(&mut raw.exe, &image.exe);
    let (cwd_len, cwd_cut) = put_c_string(&mut raw.cwd, &image.cwd);
    raw.exe_len = exe_len;
    raw.cwd_len = cwd_len;
    let mut len = 0;
    let mut args_cut = false;
    for arg in &image.args {
        let need = arg.len() + 1;
        if len + need > raw.args.len() {
            args_cut = true;
            break;
        }
        raw.args[len..len + arg.len()].copy_from_slice(arg);
        len += need;
    }
    raw.args_len = len as u32;
    if exe_cut {
        raw.flags |= image_flags::EXE_TRUNCATED;
    }
    if cwd_cut {
        raw.flags |= image_flags::CWD_TRUNCATED;
    }
    if args_cut {
        raw.flags |= image_flags::ARGS_TRUNCATED;
    }
    raw
}

/// Copies `src` NUL-terminated into `dst`; returns the stored length and whether it was cut.
fn put_c_string(dst: &mut [u8], src: &[u8]) -> (u32, bool) {
    let n = src.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&src[..n]);
    dst[n] = 0;
    (n as u32, n < src.len())
}

/// The bytes of a NUL-terminated string stored in `buf`, at most `len` long.
fn c_string(buf: &[u8], len: usize) -> Vec<u8> {
    let bounded = &buf[..len.min(buf.len())];
    let end = bounded
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bounded.len());
    bounded[..end].to_vec()
}

/// Splits the kernel's NUL-separated argv area. A final argument cut by truncation (no
/// terminating NUL) is kept as it is.
pub fn split_args(area: &[u8]) -> Vec<Vec<u8>> {
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    if area.is_empty() {
        return Vec::new();
    }
    area.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

const _: () = assert!(size_of::<ExecHeader>() < ARGS_OFFSET);

#[cfg(test)]
mod tests {
    use super::*;

    fn file_record(dir: &[u8], name: &[u8], old: Option<(&[u8], &[u8])>) -> Vec<u8> {
        // SAFETY: plain old data; all-zero is valid.
        let mut r: Box<FileRecord> = Box::new(unsafe { core::mem::zeroed() });
        r.header.kind = RECORD_FILE;
        r.header.action = boot_copy_common::file_action::RENAME;
        r.header.tgid = 42;
        r.dir[..dir.len()].copy_from_slice(dir);
        r.header.dir_len = dir.len() as u32;
        r.name[..name.len()].copy_from_slice(name);
        r.header.name_len = name.len() as u32;
        if let Some((od, on)) = old {
            r.old_dir[..od.len()].copy_from_slice(od);
            r.header.old_dir_len = od.len() as u32;
            r.old_name[..on.len()].copy_from_slice(on);
            r.header.old_name_len = on.len() as u32;
        }
        r.exe[..11].copy_from_slice(b"/usr/bin/mv");
        r.header.exe_len = 11;
        r.args[..8].copy_from_slice(b"mv\0a\0b\0\0");
        r.header.args_len = 7;
        // SAFETY: the record's bytes.
        unsafe {
            core::slice::from_raw_parts((&*r as *const FileRecord).cast(), size_of::<FileRecord>())
        }
        .to_vec()
    }

    #[test]
    fn file_records_give_absolute_paths_and_the_writer() {
        let rec = file_record(b"/boot/grub", b"../x/./y", Some((b"/root", b"f")));
        let Ok(Record::File(op)) = decode_record(&rec) else {
            panic!("not a file record")
        };
        assert_eq!(op.path, b"/boot/x/y");
        assert_eq!(op.old_path.as_deref(), Some(&b"/root/f"[..]));
        assert_eq!(op.writer.tgid, 42);
        assert_eq!(op.writer.exe, b"/usr/bin/mv");
        assert_eq!(op.writer.args, [&b"mv"[..], b"a", b"b"]);
        assert!(!op.path_truncated && !op.io_uring);
        // An absolute path as passed ignores the directory; an empty one is the directory.
        let abs = decode_file(&file_record(b"/x", b"/boot/a", None)).unwrap();
        assert_eq!(abs.path, b"/boot/a");
        assert_eq!(abs.old_path, None);
        // The kernel resolves no directory for an absolute path (its length is 0).
        let moved = decode_file(&file_record(b"", b"/boot/b", Some((b"", b"/boot/a")))).unwrap();
        assert_eq!(moved.old_path.as_deref(), Some(&b"/boot/a"[..]));
        let own = decode_file(&file_record(b"/boot/b", b"", None)).unwrap();
        assert_eq!(own.path, b"/boot/b");
        // An io_uring worker's operation, sent from its path hook, says so.
        let mut uring = file_record(b"/boot", b"x", None);
        let flags = offset_of!(FileRecord, header) + offset_of!(FileHeader, flags);
        uring[flags..flags + 4].copy_from_slice(&file_flags::IO_URING.to_ne_bytes());
        assert!(decode_file(&uring).unwrap().io_uring);
        assert!(matches!(
            decode_file(&rec[..100]),
            Err(DecodeError::Short(100))
        ));
    }

    /// A writer running a `#!` script is the script, as its exec event names it; the record's
    /// tree is kept.
    #[test]
    fn a_script_writer_is_named_by_its_script() {
        // SAFETY: plain old data; all-zero is valid.
        let mut r: Box<FileRecord> = Box::new(unsafe { core::mem::zeroed() });
        r.header.kind = RECORD_FILE;
        r.header.flags = file_flags::SCRIPT;
        r.header.tree = 2;
        let exe = b"/usr/sbin/grub-mkconfig";
        r.exe[..exe.len()].copy_from_slice(exe);
        r.header.exe_len = exe.len() as u32;
        // SAFETY: the record's bytes.
        let bytes = unsafe {
            core::slice::from_raw_parts((&*r as *const FileRecord).cast(), size_of::<FileRecord>())
        };
        let op = decode_file(bytes).unwrap();
        assert_eq!(op.tree, 2);
        assert!(op.writer.has(exec_flags::SCRIPT));
        let ctx = crate::context::exec::resolve(op.writer);
        assert_eq!(ctx.process.name(), Some(&b"grub-mkconfig"[..]));
    }

    fn record(args: &[u8], flags: u32) -> Vec<u8> {
        let mut rec = vec![0u8; ARGS_OFFSET + args.len()];
        // SAFETY: zeroed POD header, written unaligned.
        let mut h: ExecHeader = unsafe { core::mem::zeroed() };
        h.kind = RECORD_EXEC;
        h.flags = flags;
        h.pid = 42;
        h.tgid = 42;
        h.args_len = args.len() as u32;
        h.filename_len = 7;
        unsafe { core::ptr::write_unaligned(rec.as_mut_ptr().cast(), h) };
        rec[offset_of!(ExecRecord, filename)..][..7].copy_from_slice(b"/bin/cp");
        rec[ARGS_OFFSET..].copy_from_slice(args);
        rec
    }

    #[test]
    fn decodes_args_and_strings() {
        let exec = decode(&record(b"cp\0a b\0/boot/x\0", 0)).unwrap();
        assert!(!exec.has(exec_flags::LAST_ARG_CUT));
        assert!(
            decode(&record(b"cp\0a b\0/bo", 0))
                .unwrap()
                .has(exec_flags::LAST_ARG_CUT)
        );
        assert_eq!(exec.pid, 42);
        assert_eq!(exec.filename, b"/bin/cp");
        assert_eq!(
            exec.args,
            vec![b"cp".to_vec(), b"a b".to_vec(), b"/boot/x".to_vec()]
        );
        assert_eq!(exec.interp, None);
        assert_eq!(exec.cwd, Some(Vec::new()));
        assert_eq!(exec.parent, None);
    }

    /// A captured environment follows argv: split at argv's true size, a cut last entry left
    /// out and the capture marked incomplete.
    #[test]
    fn a_captured_environment_follows_argv() {
        let block = b"cp\0a\0/boot/x\0HISTFILE=/dev/null\0PATH=/bin\0TERM=xt";
        let mut rec = record(block, exec_flags::ENV_CAPTURED);
        let set_sizes = |rec: &mut Vec<u8>, env_size: u32| {
            // SAFETY: the header at the record's start, read and written unaligned.
            let mut h: ExecHeader = unsafe { core::ptr::read_unaligned(rec.as_ptr().cast()) };
            h.args_size = 13;
            h.env_size = env_size;
            unsafe { core::ptr::write_unaligned(rec.as_mut_ptr().cast(), h) };
        };
        set_sizes(&mut rec, 38);
        let exec = decode(&rec).unwrap();
        assert_eq!(exec.args, [&b"cp"[..], b"a", b"/boot/x"]);
        assert!(!exec.has(exec_flags::LAST_ARG_CUT));
        assert_eq!(
            exec.env.as_deref().unwrap(),
            [&b"HISTFILE=/dev/null"[..], b"PATH=/bin"]
        );
        assert!(exec.has(exec_flags::ENV_INCOMPLETE));
        // All of it captured: nothing cut, nothing missing.
        let mut whole = record(&[&block[..], b"m\0"].concat(), exec_flags::ENV_CAPTURED);
        set_sizes(&mut whole, 38);
        let exec = decode(&whole).unwrap();
        assert_eq!(exec.env.as_ref().unwrap().len(), 3);
        assert!(!exec.has(exec_flags::ENV_INCOMPLETE));
        // Not captured: every byte is argv, and there is no environment.
        let exec = decode(&record(b"cp\0a\0", 0)).unwrap();
        assert_eq!((exec.args.len(), exec.env), (2, None));
    }

    #[test]
    fn keeps_a_cut_final_argument_and_empty_arguments() {
        assert_eq!(
            split_args(b"a\0\0b"),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert!(split_args(b"").is_empty());
    }

    #[test]
    fn rejects_short_and_inconsistent_records() {
        assert_eq!(decode(&[0; 8]), Err(DecodeError::Short(8)));
        let mut rec = record(b"cp\0", 0);
        rec.truncate(ARGS_OFFSET + 1);
        assert!(matches!(decode(&rec), Err(DecodeError::ArgsLength { .. })));
    }

    #[test]
    fn image_round_trip_flags_truncation() {
        let image = Image {
            tgid: 7,
            start_boottime_ns: 9,
            flags: image_flags::FROM_PROC,
            args_count: 2,
            euid: 0,
            egid: 0,
            exe: vec![b'x'; 600],
            args: vec![b"sh".to_vec(), vec![b'a'; 2000]],
            cwd: b"/".to_vec(),
        };
        let back = image_from(&image_to_raw(&image));
        assert_eq!(back.exe.len(), boot_copy_common::IMAGE_EXE_CAP - 1);
        assert_eq!(back.args, vec![b"sh".to_vec()]);
        assert!(back.has(image_flags::EXE_TRUNCATED) && back.has(image_flags::ARGS_TRUNCATED));
        assert!(!back.has(image_flags::CWD_TRUNCATED));
        assert_eq!(back.cwd, b"/");
    }
}

//! The kernel sensor on the real kernel: loads `boot_copy_agent::sensor`, runs real programs and
//! checks the raw exec records (decoded here with the shared layout, independently of the
//! agent's decoder). Needs root; skipped otherwise. Run with `--test-threads=1` (each test loads
//! its own sensor and counts events system-wide).
//! Copies go to temporary directories; nothing here touches /boot.
use std::{
    fs,
    mem::offset_of,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use boot_copy_agent::sensor::{
    RingReader, Sensor, SensorConfig, SensorError, prefilter::KernelFilter,
};
use boot_copy_common::{
    ARGS_OFFSET, ExecHeader, ExecRecord, IMAGE_ARGS_CAP, INTERP_CAP, PATH_CAP, ProcImage,
    RECORD_EXEC, counter, exec_flags, image_flags,
};

use boot_copy_harness::WAIT;

/// These tests load programs into the running kernel: without root they fail, they do not skip.
fn is_root() -> bool {
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "the sensor tests need root (run `cargo xtask test`)");
    root
}

fn start(watched: &[&str], all_execs: bool) -> (Sensor, RingReader) {
    let watched: Vec<String> = watched.iter().map(|s| s.to_string()).collect();
    let cfg = SensorConfig {
        filter: KernelFilter::new(&watched, Vec::new(), all_execs).unwrap(),
        table_entries: 4096,
        ..SensorConfig::default()
    };
    let mut sensor = Sensor::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let reader = sensor.take_reader().unwrap();
    (sensor, reader)
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("boot-copy-sensor-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A raw record, decoded minimally.
struct Rec {
    header: ExecHeader,
    parent: ProcImage,
    filename: Vec<u8>,
    exe: Vec<u8>,
    interp: Vec<u8>,
    cwd: Vec<u8>,
    args: Vec<u8>,
}

fn cstr(field: &[u8], len: u32) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    assert_eq!(end, len as usize, "length field disagrees with the NUL");
    field[..end].to_vec()
}

fn decode(raw: &[u8]) -> Rec {
    assert!(raw.len() >= ARGS_OFFSET, "short record: {}", raw.len());
    // SAFETY: the record holds at least ARGS_OFFSET bytes; both types are plain data.
    let (header, parent) = unsafe {
        (
            raw.as_ptr().cast::<ExecHeader>().read_unaligned(),
            raw.as_ptr()
                .add(offset_of!(ExecRecord, parent))
                .cast::<ProcImage>()
                .read_unaligned(),
        )
    };
    assert_eq!(header.kind, RECORD_EXEC);
    assert_eq!(raw.len(), ARGS_OFFSET + header.args_len as usize);
    let field = |off: usize, cap: usize| &raw[off..off + cap];
    Rec {
        filename: cstr(
            field(offset_of!(ExecRecord, filename), PATH_CAP),
            header.filename_len,
        ),
        exe: cstr(field(offset_of!(ExecRecord, exe), PATH_CAP), header.exe_len),
        interp: cstr(
            field(offset_of!(ExecRecord, interp), INTERP_CAP),
            header.interp_len,
        ),
        cwd: cstr(field(offset_of!(ExecRecord, cwd), PATH_CAP), header.cwd_len),
        args: raw[ARGS_OFFSET..].to_vec(),
        header,
        parent,
    }
}

/// Drains until `want` matches a record (returned) or the wait expires; every drained record is
/// appended to `seen`.
fn wait_for(
    reader: &mut RingReader,
    seen: &mut Vec<Rec>,
    want: impl Fn(&Rec) -> bool,
) -> Option<usize> {
    let deadline = Instant::now() + *WAIT;
    loop {
        reader.drain(|raw| seen.push(decode(&raw)));
        if let Some(i) = seen.iter().position(&want) {
            return Some(i);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion whatever its exit status; returns its pid.
fn run_any(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Runs a command to completion; returns its pid.
fn run(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "{cmd:?}: {status}");
    pid
}

fn argv(args: &[&str]) -> Vec<u8> {
    args.iter().flat_map(|a| a.bytes().chain([0])).collect()
}

fn image_str(bytes: &[u8], len: u32) -> &[u8] {
    &bytes[..len as usize]
}

fn realpath(p: &str) -> Vec<u8> {
    Path::new(p)
        .canonicalize()
        .unwrap()
        .into_os_string()
        .into_encoded_bytes()
}

/// A /proc-style image of this test process, so that its children have a parent entry.
fn seed_self(sensor: &mut Sensor) {
    let mut image: ProcImage = unsafe { std::mem::zeroed() };
    image.tgid = std::process::id();
    image.flags = image_flags::FROM_PROC;
    let exe = b"/test/self";
    image.exe[..exe.len()].copy_from_slice(exe);
    image.exe_len = exe.len() as u32;
    // Ok(false) when the kernel already has one (this process forked or exec'd since attach).
    sensor.seed(image.tgid, &image).unwrap();
}

#[test]
fn watched_exec_has_process_paths_and_args() {
    if !is_root() {
        return;
    }
    let (mut sensor, mut reader) = start(&["cp", "mv"], false);
    seed_self(&mut sensor);
    let dir = TempDir::new("fields");
    let pid = run(Command::new("/bin/cp").arg("--version").current_dir(&dir.0));
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record for cp");
    let r = &seen[i];
    let h = &r.header;
    assert_eq!(h.pid, pid);
    assert_eq!(h.ppid, std::process::id());
    assert_eq!(h.uid, 0);
    assert_eq!(h.euid, 0);
    assert_eq!(&h.comm[..3], b"cp\0");
    assert_eq!(h.args_count, 2);
    assert_eq!(r.filename, b"/bin/cp");
    assert_eq!(r.exe, realpath("/bin/cp"));
    assert!(r.interp.is_empty());
    assert_eq!(r.cwd, dir.0.as_os_str().as_encoded_bytes());
    assert_eq!(r.args, argv(&["/bin/cp", "--version"]));
    assert_eq!(h.args_size, h.args_len);
    assert!(h.ktime_boot_ns >= h.start_boottime_ns && h.start_boottime_ns > 0);
    let f = h.flags;
    assert!(f & exec_flags::WATCHED != 0, "{f:#x}");
    assert!(f & (exec_flags::SCRIPT | exec_flags::ARGS_TRUNCATED | exec_flags::CWD_MISSING) == 0);
    // The parent is this process, seeded from "/proc", or forked from it (FORKED).
    assert!(f & exec_flags::PARENT_FOUND != 0, "{f:#x}");
    assert_eq!(r.parent.tgid, std::process::id());
}

#[test]
fn symlink_script_and_shell_child() {
    if !is_root() {
        return;
    }
    let (_sensor, mut reader) = start(&["cp", "mv"], false);
    let dir = TempDir::new("names");

    // A symlink named otherwise: the name is the executable's (cp), the filename the link's.
    let link = dir.0.join("innocent");
    symlink("/bin/cp", &link).unwrap();
    let pid = run(Command::new(&link).arg("--version"));
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record for link");
    assert_eq!(seen[i].filename, link.as_os_str().as_encoded_bytes());
    assert_eq!(seen[i].exe, realpath("/bin/cp"));

    // A script named like a watched tool: SCRIPT, interpreter, the name from the filename.
    let script = dir.0.join("mv");
    fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid = run(Command::new(&script).arg("a b"));
    let i =
        wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record for script");
    let r = &seen[i];
    assert!(r.header.flags & exec_flags::SCRIPT != 0 && r.header.flags & exec_flags::WATCHED != 0);
    assert_eq!(r.filename, script.as_os_str().as_encoded_bytes());
    assert_eq!(r.interp, b"/bin/sh");
    assert_eq!(r.exe, realpath("/bin/sh"));
    // The kernel rewrites argv for a script: interpreter, script path, then the arguments.
    assert_eq!(r.args, argv(&["/bin/sh", script.to_str().unwrap(), "a b"]));

    // cp started by a shell: the parent context is the shell's exec image.
    let shell_cmd = format!("/bin/cp --version; cd {}; /bin/true", dir.0.display());
    let sh = run(Command::new("/bin/sh").arg("-c").arg(&shell_cmd));
    let i = wait_for(&mut reader, &mut seen, |r| {
        r.header.ppid == sh && r.filename == b"/bin/cp"
    })
    .expect("no record for cp under sh");
    let r = &seen[i];
    assert!(r.header.flags & exec_flags::PARENT_FOUND != 0);
    let p = &r.parent;
    assert_eq!(p.tgid, sh);
    assert_eq!(image_str(&p.exe, p.exe_len), realpath("/bin/sh"));
    assert_eq!(
        image_str(&p.args, p.args_len),
        argv(&["/bin/sh", "-c", &shell_cmd])
    );
    assert_eq!(p.args_count, 3);
    assert_eq!(p.flags & (image_flags::FORKED | image_flags::FROM_PROC), 0);
    assert_eq!(
        p.start_boottime_ns,
        seen.iter()
            .find(|r| r.header.tgid == sh)
            .map_or(p.start_boottime_ns, |r| r.header.start_boottime_ns)
    );

    // Unwatched execs are not submitted.
    std::thread::sleep(Duration::from_millis(200));
    reader.drain(|raw| seen.push(decode(&raw)));
    assert!(
        !seen
            .iter()
            .any(|r| r.filename == b"/bin/true" || r.header.tgid == sh)
    );
}

#[test]
fn four_thousand_arguments_arrive_whole() {
    if !is_root() {
        return;
    }
    let (_sensor, mut reader) = start(&["cp", "mv"], false);
    let dir = TempDir::new("many");
    let src = dir.0.join("src");
    let dst = dir.0.join("dst");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    let mut args = vec!["/bin/cp".to_string()];
    for i in 0..4000 {
        let f = src.join(format!("file-{i:05}"));
        fs::write(&f, b"x").unwrap();
        args.push(f.to_str().unwrap().to_string());
    }
    args.push(dst.to_str().unwrap().to_string());
    let pid = run(Command::new(&args[0]).args(&args[1..]));
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 4000);
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record");
    let r = &seen[i];
    let expected = argv(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(expected.len() > IMAGE_ARGS_CAP * 32);
    assert_eq!(r.header.args_count, 4002);
    assert_eq!(r.header.args_size as usize, expected.len());
    assert_eq!(
        r.header.flags & (exec_flags::ARGS_TRUNCATED | exec_flags::ARGS_READ_FAILED),
        0
    );
    assert!(r.args == expected, "argument bytes differ");
}

#[test]
fn all_execs_wakeups_counters_and_table_lifecycle() {
    if !is_root() {
        return;
    }
    let (mut sensor, mut reader) = start(&["cp"], true);
    let before = sensor.counters().unwrap();

    // An unwatched exec arrives in all-execs mode; `wait` returns within the poll interval.
    let pid = run(&mut Command::new("/bin/true"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + *WAIT;
    while !seen.iter().any(|r: &Rec| r.header.tgid == pid) && Instant::now() < deadline {
        rt.block_on(reader.wait(Some(Duration::from_millis(100))))
            .unwrap();
        reader.drain(|raw| seen.push(decode(&raw)));
    }
    let r = seen
        .iter()
        .find(|r| r.header.tgid == pid)
        .expect("no record for /bin/true");
    assert_eq!(r.header.flags & exec_flags::WATCHED, 0);
    assert_eq!(r.filename, b"/bin/true");

    // A process gets its table entry at its first fork (the seed is then refused): here a shell
    // that runs two commands, whose second child finds the shell described. One that never
    // forks has none (the seed is taken).
    let sh_pid = run(Command::new("/bin/sh").args(["-c", "/bin/true; /bin/echo two; exit 0"]));
    let i = wait_for(&mut reader, &mut seen, |r| {
        r.header.ppid == sh_pid && r.filename == b"/bin/echo"
    })
    .expect("no record for the shell's second child");
    let parent = &seen[i].parent;
    assert_ne!(seen[i].header.flags & exec_flags::PARENT_FOUND, 0);
    assert_eq!(parent.tgid, sh_pid);
    assert_eq!(parent.flags & image_flags::FROM_PROC, 0);
    assert_eq!(
        image_str(&parent.args, parent.args_len),
        argv(&["/bin/sh", "-c", "/bin/true; /bin/echo two; exit 0"])
    );
    assert_eq!(parent.args_count, 3);
    let image: ProcImage = unsafe { std::mem::zeroed() };
    assert!(
        !sensor.seed(sh_pid, &image).unwrap(),
        "a forking shell has an entry"
    );
    let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let spid = sleeper.id();
    wait_for(&mut reader, &mut seen, |r| r.header.tgid == spid).expect("no record for sleep");
    let took = sensor.seed(spid, &image).unwrap();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert!(took, "a process that never forked has no entry");

    let after = sensor.counters().unwrap();
    let delta = |c: u32| after[c as usize] - before[c as usize];
    assert!(delta(counter::EXECS_SEEN) >= 2);
    assert!(delta(counter::EVENTS_SUBMITTED) >= 2);
    assert!(delta(counter::FORKS) >= 3);
    assert_eq!(delta(counter::RINGBUF_DROPS), 0);
}

/// Paths crossing a mount point resolve to absolute paths; a path deeper than the walk's bound
/// is flagged truncated and keeps its deepest components.
#[test]
fn paths_cross_mounts_and_flag_depth() {
    if !is_root() {
        return;
    }
    let (_sensor, mut reader) = start(&["cp"], false);
    let dir = TempDir::new("mounts");
    let mnt = dir.0.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let target = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    struct Unmount(std::ffi::CString);
    impl Drop for Unmount {
        fn drop(&mut self) {
            // SAFETY: valid NUL-terminated string.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _unmount = Unmount(target);

    let cwd = mnt.join("a/b");
    fs::create_dir_all(&cwd).unwrap();
    let cp = mnt.join("a/cp");
    fs::copy("/bin/cp", &cp).unwrap();
    // (Exit status not checked: busybox, in test guests, has no --version.)
    let pid = run_any(Command::new(&cp).arg("--version").current_dir(&cwd));
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record");
    assert_eq!(seen[i].exe, cp.as_os_str().as_encoded_bytes());
    assert_eq!(seen[i].cwd, cwd.as_os_str().as_encoded_bytes());
    assert_eq!(seen[i].header.flags & exec_flags::CWD_TRUNCATED, 0);

    // 70 levels below the mount: more components than the walk follows (64).
    let mut deep = cwd.clone();
    for _ in 0..70 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    let pid = run_any(Command::new(&cp).arg("--version").current_dir(&deep));
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no deep record");
    let r = &seen[i];
    assert!(r.header.flags & exec_flags::CWD_TRUNCATED != 0);
    assert_eq!(r.cwd, "/d".repeat(64).as_bytes());
}

/// Needs nothing from the host but this binary: the smoke test for other kernels (QEMU guests).
#[test]
fn all_execs_sees_any_exec() {
    if !is_root() {
        return;
    }
    let (_sensor, mut reader) = start(&[], true);
    let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
    let args = ["--list", "--format", "terse"];
    let pid = run(Command::new(&exe).args(args).current_dir("/"));
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record");
    let r = &seen[i];
    let exe = exe.as_os_str().as_encoded_bytes();
    assert_eq!(r.header.ppid, std::process::id());
    assert_eq!(r.filename, exe);
    assert_eq!(r.exe, exe);
    assert_eq!(r.cwd, b"/");
    let mut expected = exe.to_vec();
    expected.push(0);
    expected.extend(argv(&args));
    assert_eq!(r.args, expected);
    assert_eq!(r.header.flags & exec_flags::WATCHED, 0);
}

#[test]
fn watched_size_catches_a_renamed_copy() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new("size");
    let renamed = dir.0.join("not-a-watched-name");
    fs::copy(
        realpath("/bin/true")
            .iter()
            .map(|&b| b as char)
            .collect::<String>(),
        &renamed,
    )
    .unwrap();
    let size = fs::metadata(&renamed).unwrap().len();
    let cfg = SensorConfig {
        filter: KernelFilter::new(&["cp".into()], vec![size], false).unwrap(),
        table_entries: 4096,
        ..SensorConfig::default()
    };
    let mut sensor = Sensor::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut reader = sensor.take_reader().unwrap();
    let pid = run(&mut Command::new(&renamed));
    let other = run(Command::new("/bin/sh").arg("-c").arg("exit 0"));
    let mut seen = Vec::new();
    let i = wait_for(&mut reader, &mut seen, |r| r.header.tgid == pid).expect("no record");
    assert_ne!(seen[i].header.flags & exec_flags::WATCHED, 0);
    assert!(
        !seen.iter().any(|r| r.header.tgid == other),
        "an unwatched size arrived"
    );
}

#[test]
fn invalid_watched_name_is_rejected() {
    match KernelFilter::new(&["x".repeat(64)], Vec::new(), false) {
        Err(e @ SensorError::InvalidWatchedName { .. }) => assert!(e.to_string().contains("63")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted a 64-byte name"),
    }
}

//! Running one kernel: a QEMU boot (TCG) whose serial console is the guest's stdout, or the
//! scenario script natively on the host. Either way every line goes to a log file and to a
//! callback, and the run is killed when it exceeds its timeout.
use super::{binaries::Binaries, guest_script};
use anyhow::Context as _;
use std::{
    fs,
    io::{BufRead as _, BufReader, Read, Write as _},
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{RecvTimeoutError, channel},
    thread,
    time::{Duration, Instant},
};

/// What a run printed and how it ended.
pub struct Run {
    pub console: String,
    /// `None` when the run was killed at its timeout.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub timeout: Duration,
}

impl Run {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

/// A guest's memory and kernel command line.
pub struct Machine<'a> {
    pub memory_mb: u32,
    /// Kernel command line, after `console=ttyS0 panic=-1 quiet`.
    pub append: &'a str,
}

/// The kernel matrix's guests: an initramfs-only system.
pub const MATRIX: Machine = Machine {
    memory_mb: 1024,
    append: "oops=panic",
};

/// Boots `image` (an uncompressed PVH vmlinux or a bzImage).
pub fn boot(
    image: &Path,
    initrd: &Path,
    machine: &Machine,
    log: &Path,
    timeout: Duration,
    on_line: impl FnMut(&str),
) -> anyhow::Result<Run> {
    let mut cmd = Command::new("qemu-system-x86_64");
    let memory = machine.memory_mb.to_string();
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", &memory, "-smp", "2"])
        // Serial console on stdout; no monitor, display or network (no iPXE probe at boot).
        .args(["-nographic", "-monitor", "none", "-nic", "none"])
        .args(["-serial", "stdio"])
        // A guest reboot (panic=-1 turns a panic into one) ends QEMU.
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 panic=-1 quiet {}", machine.append));
    run_logged(cmd, log, timeout, on_line)
}

/// The scenario script on the host kernel, natively, with the same static binaries.
pub fn run_host(
    bins: &Binaries,
    scenarios: &[String],
    log: &Path,
    timeout: Duration,
    on_line: impl FnMut(&str),
) -> anyhow::Result<Run> {
    let mut cmd = Command::new("sh");
    cmd.arg(guest_script("scenarios.sh"))
        .env("AGENT", &bins.agent)
        .env("TESTS", &bins.tests)
        .env("SCENARIOS", scenarios.join(" "))
        .current_dir("/");
    run_logged(cmd, log, timeout, on_line)
}

/// Runs `cmd` with stdout and stderr merged into `log` and passed line by line to `on_line`,
/// killing it after `timeout`.
fn run_logged(
    mut cmd: Command,
    log: &Path,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let (tx, rx) = channel();
    let readers = [
        spawn_reader(child.stdout.take().expect("piped"), tx.clone()),
        spawn_reader(child.stderr.take().expect("piped"), tx),
    ];
    let mut console = String::new();
    let deadline = start + timeout;
    let timed_out = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                writeln!(file, "{line}")?;
                on_line(&line);
                console.push_str(&line);
                console.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break false,
            Err(RecvTimeoutError::Timeout) => break true,
        }
    };
    let status = finish(&mut child, timed_out)?;
    if !timed_out {
        for r in readers {
            let _ = r.join();
        }
    }
    Ok(Run {
        console,
        status,
        elapsed: start.elapsed(),
        timeout,
    })
}

fn finish(child: &mut Child, timed_out: bool) -> anyhow::Result<Option<ExitStatus>> {
    if timed_out {
        // The process group this run started (QEMU, or the script and its agents and tests).
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.kill();
        child.wait()?;
        return Ok(None);
    }
    Ok(Some(child.wait()?))
}

/// Sends each line of `input` (serial output may hold CRs and stray bytes) to `tx`.
fn spawn_reader(
    input: impl Read + Send + 'static,
    tx: std::sync::mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(input);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

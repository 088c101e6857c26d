//! One QEMU boot (TCG), its serial console streamed line by line to a log file and a callback,
//! killed at a timeout.
use anyhow::Context as _;
use std::{
    fs,
    io::{BufRead as _, BufReader, Read, Write as _},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc::{RecvTimeoutError, Sender, channel},
    thread,
    time::{Duration, Instant},
};

/// Guest memory: the root file system lives in it (about 200 MB unpacked).
const MEMORY_MB: &str = "2048";

pub struct Run {
    pub console: String,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub timeout: Duration,
}

pub fn boot(
    kernel: &Path,
    initrd: &Path,
    log: &Path,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", MEMORY_MB, "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ])
        .args(["-nic", "none"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 rdinit=/sbin/init panic=-1 quiet systemd.show_status=error",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let (tx, rx) = channel();
    let readers = [
        lines(child.stdout.take().expect("piped"), tx.clone()),
        lines(child.stderr.take().expect("piped"), tx),
    ];
    let deadline = start + timeout;
    let mut console = String::new();
    let timed_out = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
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
    if timed_out {
        // QEMU is this process's own child: kill it by its handle.
        let _ = child.kill();
    }
    child.wait().context("waiting for qemu")?;
    for reader in readers {
        let _ = reader.join();
    }
    Ok(Run {
        console,
        timed_out,
        elapsed: start.elapsed(),
        timeout,
    })
}

/// Sends each line of `input` to `tx` (serial output may hold CRs, escapes and invalid UTF-8).
fn lines(input: impl Read + Send + 'static, tx: Sender<String>) -> thread::JoinHandle<()> {
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

//! The floor under any agent's CPU per isolated alert on this machine: a thread woken at the
//! alert rate that writes one alert-sized line to a file beside the alert log, and does nothing
//! else (no ring buffer, no detection, no JSON). Measured in the same run as the agent.
use std::{fs::OpenOptions, io::Write, path::Path, sync::mpsc, thread, time::Duration};

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Writes `lines` lines of `line_len` bytes to `file`, one per wake-up every `interval`;
/// returns the writer thread's CPU per line, in µs.
pub fn us_per_line(
    file: &Path,
    lines: u64,
    line_len: usize,
    interval: Duration,
) -> anyhow::Result<f64> {
    let mut out = OpenOptions::new().create(true).append(true).open(file)?;
    let mut line = vec![b'x'; line_len.max(1)];
    *line.last_mut().unwrap() = b'\n';
    let (tx, rx) = mpsc::channel::<()>();
    let writer = thread::spawn(move || -> std::io::Result<u64> {
        let start = thread_cpu_ns();
        while rx.recv().is_ok() {
            out.write_all(&line)?;
        }
        Ok(thread_cpu_ns() - start)
    });
    for _ in 0..lines {
        thread::sleep(interval);
        tx.send(())?;
    }
    drop(tx);
    let ns = writer.join().expect("floor writer panicked")?;
    std::fs::remove_file(file)?;
    Ok(ns as f64 / 1e3 / lines as f64)
}

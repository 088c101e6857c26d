//! Processes the benchmarks look at or start: CPU time from /proc, signals by pid, and a crowd
//! of idle processes for the seeding measurement.
use anyhow::{Context as _, bail};
use std::{fs, time::Duration};

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// CPU time of `pid` so far in nanoseconds, summed over its threads (`schedstat`): fine enough
/// for a few milliseconds, which clock ticks are not.
pub fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = fs::read_to_string(task?.path().join("schedstat"))?;
        let run_ns = stat.split_whitespace().next().context("schedstat")?;
        total += run_ns.parse::<u64>()?;
    }
    Ok(total)
}

/// Clock ticks in milliseconds.
pub fn ticks_ms(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 * 1000.0 / hz as f64
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; a stale pid only yields ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// The pid of the first process whose `comm` is `name` (e.g. the `kauditd` kernel thread).
pub fn pid_by_comm(name: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim_end() == name).then_some(pid)
    })
}

/// Idle child processes (forked, each waiting in `pause`), killed and reaped on drop.
pub struct Crowd {
    pids: Vec<libc::pid_t>,
}

impl Crowd {
    /// Forks `n` children that sleep until killed.
    pub fn spawn(n: usize) -> anyhow::Result<Self> {
        let mut crowd = Self {
            pids: Vec::with_capacity(n),
        };
        for _ in 0..n {
            // SAFETY: the child calls only async-signal-safe functions (prctl, pause).
            match unsafe { libc::fork() } {
                -1 => bail!(
                    "fork failed after {} children: {}",
                    crowd.pids.len(),
                    std::io::Error::last_os_error()
                ),
                0 => {
                    // SAFETY: as above. Killed with us if the benchmark dies first.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                    loop {
                        // SAFETY: as above.
                        unsafe { libc::pause() };
                    }
                }
                pid => crowd.pids.push(pid),
            }
        }
        // Let the last children reach pause() before anyone counts them.
        std::thread::sleep(Duration::from_millis(200));
        Ok(crowd)
    }

    pub fn len(&self) -> usize {
        self.pids.len()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid as u32, libc::SIGKILL);
        }
        for &pid in &self.pids {
            // SAFETY: pid is our child; a null status pointer is allowed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
}

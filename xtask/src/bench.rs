//! `cargo xtask bench`: exec overhead of the agent, measured in one run with alternating
//! baseline/agent blocks so that machine noise hits both sides alike.
use crate::{cargo, setup, workspace_root};
use anyhow::{Context as _, bail};
use std::{
    fs,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

const BLOCKS: usize = 5;
const BLOCK: Duration = Duration::from_secs(3);

/// Runs the named benchmarks (`exec`, `replay`), or all of them.
pub fn run(names: &[String]) -> anyhow::Result<()> {
    let all = names.is_empty();
    let wants = |n: &str| all || names.iter().any(|x| x == n);
    if let Some(unknown) = names
        .iter()
        .find(|n| !["exec", "replay"].contains(&n.as_str()))
    {
        bail!("unknown benchmark {unknown}: choose exec or replay");
    }
    if wants("replay") {
        replay()?;
    }
    if wants("exec") {
        exec_overhead()?;
    }
    Ok(())
}

/// Rule evaluation throughput on one core (the `replay_bench` example).
fn replay() -> anyhow::Result<()> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "boot-copy-agent",
            "--example",
            "replay_bench",
        ])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("running the replay benchmark")?;
    if !out.status.success() {
        bail!("replay benchmark failed: {}", out.status);
    }
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    for (k, v) in result.as_object().into_iter().flatten() {
        println!("{k:<44} {:>12.0}", v.as_f64().unwrap_or(0.0));
    }
    write_result("replay", &serde_json::to_string_pretty(&result)?)
}

fn write_result(name: &str, json: &str) -> anyhow::Result<()> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    fs::write(&path, json)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn exec_overhead() -> anyhow::Result<()> {
    setup::require_root("the exec benchmark")?;
    cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    let agent_bin = workspace_root().join("target/release/boot-copy-agent");
    let mut baseline = Vec::new();
    let mut with_agent = Vec::new();
    let mut kernel_ns = Vec::new();
    let mut agent_cpu_per_k = Vec::new();
    let _stats = BpfStats::enable()?;
    for block in 0..BLOCKS {
        baseline.push(exec_rate(BLOCK));
        let agent = Agent::start(&agent_bin)?;
        let before = prog_stats()?;
        let cpu0 = agent.cpu_ticks()?;
        let start = Instant::now();
        let rate = exec_rate(BLOCK);
        let execs = rate * start.elapsed().as_secs_f64();
        let after = prog_stats()?;
        let cpu1 = agent.cpu_ticks()?;
        with_agent.push(rate);
        let (runtime, count) = delta(&before, &after, "exec");
        let per_exec_all = delta_all(&before, &after) as f64 / count.max(1) as f64;
        kernel_ns.push(per_exec_all);
        agent_cpu_per_k.push((cpu1 - cpu0) as f64 * 10.0 / execs * 1000.0);
        eprintln!(
            "block {block}: baseline {:.0}/s, agent {rate:.0}/s, exec prog {:.0} ns/exec, all progs {per_exec_all:.0} ns/exec",
            baseline[block],
            runtime as f64 / count.max(1) as f64
        );
        drop(agent);
    }
    let report = Report {
        baseline: Summary::of(&baseline),
        agent: Summary::of(&with_agent),
        kernel_ns_per_exec: Summary::of(&kernel_ns),
        agent_cpu_ms_per_1000_execs: Summary::of(&agent_cpu_per_k),
    };
    report.print();
    write_result("exec-overhead", &report.json())
}

/// fork+exec of /bin/true on one worker for `dur`; execs per second.
fn exec_rate(dur: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        let _ = Command::new("/bin/true").status();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Agent(Child);

impl Agent {
    fn start(bin: &std::path::Path) -> anyhow::Result<Self> {
        let child = Command::new(bin)
            .arg("events")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the agent")?;
        // Wait until the exec program is attached.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if prog_stats()?.iter().any(|p| p.name.contains("exec")) {
                thread::sleep(Duration::from_millis(300));
                return Ok(Self(child));
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("the agent did not attach within 10 s")
    }

    /// utime + stime of the agent, in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.0.id()))?;
        let rest = &stat[stat.rfind(')').context("stat")? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix_kill(self.0.id());
        let _ = self.0.wait();
    }
}

fn nix_kill(pid: u32) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
}

/// Turns on kernel BPF run-time statistics for the benchmark and off again after (it is a
/// global setting with its own cost).
struct BpfStats;

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").context("enabling BPF stats")?;
        Ok(Self)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}

struct ProgStat {
    name: String,
    run_time_ns: u64,
    run_cnt: u64,
}

/// Our programs' statistics from `bpftool prog show`.
fn prog_stats() -> anyhow::Result<Vec<ProgStat>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool")?;
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(progs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            name.starts_with("boot_copy_").then(|| ProgStat {
                name: name.to_owned(),
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
            })
        })
        .collect())
}

fn delta(before: &[ProgStat], after: &[ProgStat], name: &str) -> (u64, u64) {
    let sum = |v: &[ProgStat]| {
        v.iter()
            .filter(|p| p.name.contains(name))
            .fold((0, 0), |(t, c), p| (t + p.run_time_ns, c + p.run_cnt))
    };
    let (t0, c0) = sum(before);
    let (t1, c1) = sum(after);
    (t1 - t0, c1 - c0)
}

/// Run time of all our programs (exec, fork, exit) over the interval.
fn delta_all(before: &[ProgStat], after: &[ProgStat]) -> u64 {
    let total = |v: &[ProgStat]| v.iter().map(|p| p.run_time_ns).sum::<u64>();
    total(after) - total(before)
}

struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn of(v: &[f64]) -> Self {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        Self {
            median: s[s.len() / 2],
            min: s[0],
            max: s[s.len() - 1],
        }
    }
}

struct Report {
    baseline: Summary,
    agent: Summary,
    kernel_ns_per_exec: Summary,
    agent_cpu_ms_per_1000_execs: Summary,
}

impl Report {
    fn print(&self) {
        let row = |name: &str, s: &Summary| {
            println!(
                "{name:<34} median {:>9.1}  min {:>9.1}  max {:>9.1}",
                s.median, s.min, s.max
            )
        };
        row("execs/s without agent", &self.baseline);
        row("execs/s with agent", &self.agent);
        row(
            "kernel ns per exec (all programs)",
            &self.kernel_ns_per_exec,
        );
        row(
            "agent CPU ms per 1000 execs",
            &self.agent_cpu_ms_per_1000_execs,
        );
        println!(
            "throughput ratio (median agent / median baseline): {:.3}",
            self.ratio()
        );
    }

    fn ratio(&self) -> f64 {
        self.agent.median / self.baseline.median
    }

    fn json(&self) -> String {
        let s = |s: &Summary| serde_json::json!({ "median": s.median, "min": s.min, "max": s.max });
        serde_json::to_string_pretty(&serde_json::json!({
            "benchmark": "exec-overhead",
            "blocks": BLOCKS,
            "block_seconds": BLOCK.as_secs(),
            "workload": "fork+exec of /bin/true, one worker",
            "execs_per_second_baseline": s(&self.baseline),
            "execs_per_second_agent": s(&self.agent),
            "throughput_ratio": self.ratio(),
            "kernel_ns_per_exec": s(&self.kernel_ns_per_exec),
            "agent_cpu_ms_per_1000_execs": s(&self.agent_cpu_ms_per_1000_execs),
        }))
        .expect("serializable")
    }
}

//! `cargo xtask bench [exec|alerts|replay]`: benchmarks whose figures are ratios or latencies
//! measured in one run, so machine noise hits every variant alike. Results go to
//! `target/bench/*.json`; BENCHMARKS.md quotes them.
use crate::{cargo, setup, workspace_root};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::{
    fs,
    io::{BufRead, BufReader, Seek},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

const BLOCKS: usize = 5;
const BLOCK: Duration = Duration::from_secs(3);
const NAMES: [&str; 3] = ["exec", "alerts", "replay"];

/// Runs the named benchmarks, or all of them.
pub fn run(names: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = names.iter().find(|n| !NAMES.contains(&n.as_str())) {
        bail!(
            "unknown benchmark {unknown}: choose from {}",
            NAMES.join(", ")
        );
    }
    let wants = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    if wants("replay") {
        replay()?;
    }
    if wants("exec") || wants("alerts") {
        setup::require_root("the exec and alert benchmarks")?;
        cargo(&["build", "--release", "--package", "boot-copy-agent"])?;
    }
    if wants("exec") {
        exec_overhead()?;
    }
    if wants("alerts") {
        alert_latency()?;
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
        ])
        .args(["--example", "replay_bench"])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("running the replay benchmark")?;
    if !out.status.success() {
        bail!("replay benchmark failed: {}", out.status);
    }
    let result: Value = serde_json::from_slice(&out.stdout)?;
    for (k, v) in result.as_object().into_iter().flatten() {
        println!("{k:<44} {:>12.0}", v.as_f64().unwrap_or(0.0));
    }
    write_result("replay", &result)
}

/// Exec throughput of a fork+exec storm that triggers no rule: without the agent, with the
/// agent as shipped (`run`, strict rule on), and with the strict rule off — alternating blocks.
fn exec_overhead() -> anyhow::Result<()> {
    let variants: [(&str, Option<bool>); 3] = [
        ("baseline", None),
        ("agent", Some(true)),
        ("agent_strict_off", Some(false)),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut kernel_ns = Vec::new();
    let mut cpu_ms_per_k = Vec::new();
    let _stats = BpfStats::enable()?;
    for block in 0..BLOCKS {
        for (i, (name, strict)) in variants.iter().enumerate() {
            let Some(strict) = strict else {
                rates[i].push(exec_rate(BLOCK));
                continue;
            };
            let agent = Agent::start(*strict)?;
            let (stats0, cpu0) = (prog_stats()?, agent.cpu_ns()?);
            let start = Instant::now();
            let rate = exec_rate(BLOCK);
            let execs = rate * start.elapsed().as_secs_f64();
            let (stats1, cpu1) = (prog_stats()?, agent.cpu_ns()?);
            rates[i].push(rate);
            if *strict {
                let (_, exec_runs) = delta(&stats0, &stats1, "exec");
                kernel_ns.push(delta_all(&stats0, &stats1) as f64 / exec_runs.max(1) as f64);
                cpu_ms_per_k.push((cpu1 - cpu0) as f64 / 1e6 / execs * 1000.0);
            }
            eprintln!("block {block}: {name} {rate:.0} execs/s");
        }
        eprintln!("block {block}: baseline {:.0} execs/s", rates[0][block]);
    }
    let s: Vec<Summary> = rates.iter().map(|r| Summary::of(r)).collect();
    let result = json!({
        "workload": "fork+exec of /bin/true, one worker, 3 s blocks alternating",
        "blocks": BLOCKS,
        "execs_per_second": {
            "baseline": s[0].json(), "agent": s[1].json(), "agent_strict_off": s[2].json(),
        },
        "throughput_ratio_agent": s[1].median / s[0].median,
        "throughput_ratio_agent_strict_off": s[2].median / s[0].median,
        "kernel_ns_per_exec_all_programs": Summary::of(&kernel_ns).json(),
        "agent_cpu_ms_per_1000_execs": Summary::of(&cpu_ms_per_k).json(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    write_result("exec-overhead", &result)
}

/// Exec → alert-line latency and the agent's CPU per alert. In one run of one agent: the agent
/// idle (its baseline: timers, status file, foreign execs), then triggering execs at a steady 20
/// per second (latency, CPU), then as fast as a shell loop runs them (CPU, where the idle share
/// is small). The triggers are `cp` into a tmpfs `/boot` in a private mount namespace, tagged
/// with this run's pid so that other agents' and tests' alerts on the same kernel are told
/// apart; they are still counted, as work the agent did.
fn alert_latency() -> anyhow::Result<()> {
    const IDLE: Duration = Duration::from_secs(10);
    let agent = Agent::start(true)?;
    let mut tail = AlertTail::open(&agent.log, format!("/boot/bench-{}-", std::process::id()))?;
    let (cpu0, t0) = (agent.cpu_ns()?, Instant::now());
    thread::sleep(IDLE);
    let idle_foreign = tail.read_available()?.all;
    let idle_seconds = t0.elapsed().as_secs_f64();
    let idle_ns_per_s = (agent.cpu_ns()? - cpu0) as f64 / idle_seconds;
    let steady = storm(&agent, &mut tail, 300, "sleep 0.05", idle_ns_per_s)?;
    let burst = storm(&agent, &mut tail, 1000, ":", idle_ns_per_s)?;
    let result = json!({
        "workload": "cp into a tmpfs /boot, agent `run` with default rules; idle, then 20 per second, then back to back",
        "cpu_measure": "sum of /proc/PID/task/*/schedstat run time (ns) of the agent's threads",
        "idle": {
            "seconds": idle_seconds,
            "cpu_us_per_s": idle_ns_per_s / 1e3,
            "foreign_alerts": idle_foreign,
        },
        "steady_20_per_s": steady,
        "back_to_back": burst,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    write_result("alert-latency", &result)
}

/// `n` tagged triggering execs, `pause` (a shell command) between them; latency of each and the
/// agent's CPU per alert, gross and net of the idle baseline.
fn storm(
    agent: &Agent,
    tail: &mut AlertTail,
    n: usize,
    pause: &str,
    idle_ns_per_s: f64,
) -> anyhow::Result<Value> {
    let script = format!(
        "mount -t tmpfs bench /boot && i=0; while [ $i -lt {n} ]; do cp /etc/hostname {}$i; {pause}; i=$((i+1)); done",
        tail.tag
    );
    let (cpu0, t0) = (agent.cpu_ns()?, Instant::now());
    let mut storm = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
        .spawn()
        .context("starting the trigger loop")?;
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.latencies_ms.len() < n && Instant::now() < deadline {
        let got = tail.read_available()?;
        if got.all == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        seen.all += got.all;
        seen.latencies_ms.extend(got.latencies_ms);
    }
    storm.wait()?;
    let (cpu_ns, secs) = (agent.cpu_ns()? - cpu0, t0.elapsed().as_secs_f64());
    let ours = seen.latencies_ms.len();
    if ours < n {
        bail!("only {ours} of {n} alerts arrived");
    }
    let lat = &mut seen.latencies_ms;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let per_alert = |ns: f64| ns / seen.all as f64 / 1e3;
    Ok(json!({
        "alerts": ours,
        "alerts_all": seen.all,
        "seconds": secs,
        "latency_ms": { "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0) },
        "cpu_us_per_alert_gross": per_alert(cpu_ns as f64),
        "cpu_us_per_alert_net": per_alert(cpu_ns as f64 - idle_ns_per_s * secs),
    }))
}

/// Alerts read from the log: all of them, and the latency of ours.
#[derive(Default)]
struct Seen {
    all: usize,
    latencies_ms: Vec<f64>,
}

/// Follows the alert log from its end.
struct AlertTail {
    reader: BufReader<fs::File>,
    /// What our triggers' command lines contain.
    tag: String,
    partial: String,
}

impl AlertTail {
    fn open(log: &std::path::Path, tag: String) -> anyhow::Result<Self> {
        let mut file = fs::File::open(log)?;
        file.seek(std::io::SeekFrom::End(0))?;
        Ok(Self {
            reader: BufReader::new(file),
            tag,
            partial: String::new(),
        })
    }

    /// The alerts of the complete lines written since the last call.
    fn read_available(&mut self) -> anyhow::Result<Seen> {
        let mut seen = Seen::default();
        while self.reader.read_line(&mut self.partial)? > 0 {
            if !self.partial.ends_with('\n') {
                break;
            }
            let arrived = SystemTime::now();
            let line = std::mem::take(&mut self.partial);
            let record: Value = serde_json::from_str(&line)?;
            if record["event"]["kind"] != "alert" {
                continue;
            }
            seen.all += 1;
            let command = record["process"]["command_line"]
                .as_str()
                .unwrap_or_default();
            if !command.contains(&self.tag) {
                continue;
            }
            let stamped =
                humantime::parse_rfc3339(record["@timestamp"].as_str().unwrap_or_default())
                    .context("alert @timestamp")?;
            let latency = arrived.duration_since(stamped).unwrap_or_default();
            seen.latencies_ms.push(latency.as_secs_f64() * 1e3);
        }
        Ok(seen)
    }
}

fn write_result(name: &str, result: &Value) -> anyhow::Result<()> {
    let dir = workspace_root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    fs::write(&path, serde_json::to_string_pretty(result)?)?;
    eprintln!("wrote {}", path.display());
    Ok(())
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

/// `boot-copy-agent run` (release) with its files in a scratch directory.
struct Agent {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(strict: bool) -> anyhow::Result<Self> {
        let dir = PathBuf::from(format!("/tmp/boot-copy-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let log = dir.join("log/alerts.ndjson");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "[rules]\nstrict = {strict}\n[alert_budget]\nmax_alerts = 100000\n[health]\nstate_dir = \"{d}/log\"\n[sinks.stdout]\nenabled = false\n[sinks.alert_log]\npath = \"{l}\"\n",
                d = dir.display(),
                l = log.display()
            ),
        )?;
        let child = Command::new(workspace_root().join("target/release/boot-copy-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the agent")?;
        let agent = Self { child, dir, log };
        agent.wait_started()?;
        Ok(agent)
    }

    fn wait_started(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if fs::read_to_string(&self.log).is_ok_and(|t| t.contains("agent-started")) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("the agent did not start within 20 s")
    }

    /// CPU time of the agent's threads in ns (their schedstat run times; the agent's threads
    /// live as long as it does, so none is missed by having exited).
    fn cpu_ns(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for task in fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            let stat = fs::read_to_string(task?.path().join("schedstat"))?;
            let run_ns = stat.split_whitespace().next().context("schedstat")?;
            total += run_ns.parse::<u64>()?;
        }
        Ok(total)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
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
    let progs: Value = serde_json::from_slice(&out.stdout)?;
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

/// (run time, runs) of the programs whose name contains `name`, between two snapshots.
fn delta(before: &[ProgStat], after: &[ProgStat], name: &str) -> (u64, u64) {
    let sum = |v: &[ProgStat]| {
        v.iter()
            .filter(|p| p.name.contains(name))
            .fold((0, 0), |(t, c), p| (t + p.run_time_ns, c + p.run_cnt))
    };
    let (t0, c0) = sum(before);
    let (t1, c1) = sum(after);
    (t1.saturating_sub(t0), c1.saturating_sub(c0))
}

/// Run time of all our programs (exec, fork, exit) between two snapshots.
fn delta_all(before: &[ProgStat], after: &[ProgStat]) -> u64 {
    let total = |v: &[ProgStat]| v.iter().map(|p| p.run_time_ns).sum::<u64>();
    total(after).saturating_sub(total(before))
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

    fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

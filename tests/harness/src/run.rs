//! `boot-copy-agent run` writing into a directory of its own, its records read back from the
//! alert log.
use crate::{Error, Result, WAIT, in_boot_namespace, tempdir, unique};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// How to start a `run`: the binary, the directory its files go to, its configuration.
pub struct Launch {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    remove_dir: bool,
    /// Run in the mount namespace of this process (`nsenter -m`).
    namespace_of: Option<u32>,
}

impl Launch {
    /// `bin run` in a fresh directory: `extra` appended to a configuration that points the
    /// alert log (`DIR/log/alerts.ndjson`) and the state directory (`DIR/log`) into it. `extra`
    /// follows the `[sinks.alert_log]` table, so keys before its first table header are the
    /// alert log's. The directory is removed when the [`Agent`] is dropped.
    pub fn fresh(bin: impl AsRef<Path>, tag: &str, extra: &str) -> Result<Launch> {
        let dir = tempdir(tag)?;
        let state_dir = format!("state_dir = \"{}/log\"\n", dir.display());
        let health = match extra.contains("[health]\n") {
            true => extra.replace("[health]\n", &format!("[health]\n{state_dir}")),
            false => format!("{extra}\n[health]\n{state_dir}"),
        };
        let config = dir.join("config.toml");
        let text = format!(
            "[sinks.alert_log]\npath = \"{}/log/alerts.ndjson\"\n\n{health}",
            dir.display()
        );
        fs::write(&config, text).map_err(Error::io(format!("writing {}", config.display())))?;
        Ok(Launch {
            remove_dir: true,
            ..Launch::existing(bin, &dir, &config)
        })
    }

    /// `bin run --config CONFIG` whose alert log is `DIR/log/alerts.ndjson`; the directory
    /// stays (it may hold an earlier run's records, which [`Agent::wait_for`] passes over).
    pub fn existing(bin: impl AsRef<Path>, dir: &Path, config: &Path) -> Launch {
        Launch {
            bin: bin.as_ref().to_owned(),
            dir: dir.to_owned(),
            config: config.to_owned(),
            stdout: None,
            stderr: None,
            env: Vec::new(),
            remove_dir: false,
            namespace_of: None,
        }
    }

    /// The agent's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends the agent's standard output to `file` (else it is discarded).
    pub fn stdout_to(mut self, file: PathBuf) -> Launch {
        self.stdout = Some(file);
        self
    }

    /// Sends the agent's standard error (its `tracing` output) to `file` (else it is inherited).
    pub fn stderr_to(mut self, file: PathBuf) -> Launch {
        self.stderr = Some(file);
        self
    }

    /// Sets an environment variable of the agent.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the agent in the mount namespace of process `pid` (a [`crate::BootNamespace`]).
    pub fn in_namespace_of(mut self, pid: u32) -> Launch {
        self.namespace_of = Some(pid);
        self
    }

    /// Starts the agent without waiting for it.
    pub fn spawn(self) -> Result<Agent> {
        let mut agent = Agent {
            child: self.command()?,
            log: self.dir.join("log/alerts.ndjson"),
            from: 0,
            launch: self,
        };
        agent.from = agent.records().len();
        Ok(agent)
    }

    /// Starts the agent and waits for its start record.
    pub fn start(self) -> Result<Agent> {
        let mut agent = self.spawn()?;
        agent.wait_for(*WAIT, |r| r["event"]["action"] == "agent-started")?;
        Ok(agent)
    }

    fn command(&self) -> Result<Child> {
        let create = |file: &PathBuf| {
            fs::File::create(file).map_err(Error::io(format!("creating {}", file.display())))
        };
        let stdout = match &self.stdout {
            Some(file) => create(file)?.into(),
            None => Stdio::null(),
        };
        let stderr = match &self.stderr {
            Some(file) => create(file)?.into(),
            None => Stdio::inherit(),
        };
        let mut cmd = match self.namespace_of {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.arg("-t")
                    .arg(pid.to_string())
                    .args(["-m", "--"])
                    .arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(Error::io(format!("starting {}", self.bin.display())))
    }
}

/// A running `boot-copy-agent run`; killed (if still running) when dropped.
pub struct Agent {
    pub child: Child,
    /// Its alert log.
    pub log: PathBuf,
    /// Records before this index are an earlier agent's.
    from: usize,
    launch: Launch,
}

/// How a [`Agent::stop`] went: the exit status, how long the agent took to exit, and every
/// record of the log.
pub type Stopped = (ExitStatus, Duration, Vec<Value>);

impl Agent {
    /// Starts `bin run` in a fresh directory with `extra` appended to its configuration (see
    /// [`Launch::fresh`]) and waits for its start record.
    pub fn start(bin: impl AsRef<Path>, tag: &str, extra: &str) -> Result<Agent> {
        Launch::fresh(bin, tag, extra)?.start()
    }

    /// The agent's directory.
    pub fn dir(&self) -> &Path {
        &self.launch.dir
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every record in the alert log; panics on a line that is not one JSON object (the log
    /// holds nothing else). A last line without its newline is still being written, and is left
    /// for the next read.
    pub fn records(&self) -> Vec<Value> {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
            .collect()
    }

    /// The first record of this agent satisfying `pred`, within `timeout`. Fails if the agent
    /// exits first.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.exited()?;
            let records = self.records();
            if let Some(r) = records.into_iter().skip(self.from).find(|r| pred(r)) {
                return Ok(r);
            }
            if let Some(status) = exited {
                return Err(Error::Exited(status));
            }
            if Instant::now() > deadline {
                let what = format!("no such record in {}", self.log.display());
                return Err(Error::Timeout(what, timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Alerts of any rule whose `process.args` contain `arg`.
    pub fn alerts_with_arg(&self, arg: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], arg))
            .collect()
    }

    /// Alerts of rule `rule_id` whose `process.args` contain `arg`.
    pub fn alerts_of(&self, rule_id: &str, arg: &str) -> Vec<Value> {
        self.alerts_with_arg(arg)
            .into_iter()
            .filter(|r| r["rule"]["id"] == rule_id)
            .collect()
    }

    /// Alerts (of any rule) for process `pid`.
    pub fn alerts_for_pid(&self, pid: u32) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"]["kind"] == "alert" && r["process"]["pid"] == pid)
            .collect()
    }

    /// Runs a sentinel copy that must alert and waits for its alert: every exec before it has
    /// then been processed, so an absent alert is a verdict, not a race.
    pub fn sync(&mut self) -> Result<()> {
        let marker = format!("/boot/sentinel-{}", unique());
        in_boot_namespace(&format!("cp /etc/hostname {marker}"))?;
        self.wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert" && has_arg(&r["process"]["args"], &marker)
        })?;
        Ok(())
    }

    /// Sends `sig` to the agent.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        Ok(nix::sys::signal::kill(
            Pid::from_raw(self.pid() as i32),
            sig,
        )?)
    }

    /// The agent's status file (`DIR/log/status.json`, rewritten every second).
    pub fn status_file(&self) -> Result<Value> {
        let path = self.dir().join("log/status.json");
        let text = fs::read(&path).map_err(Error::io(format!("reading {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| Error::Io {
            what: format!("parsing {}", path.display()),
            source: e.into(),
        })
    }

    /// SIGTERM, then waits for the agent to exit (the agent drains first).
    pub fn stop(mut self) -> Result<Stopped> {
        let start = Instant::now();
        self.signal(Signal::SIGTERM)?;
        loop {
            if let Some(status) = self.exited()? {
                return Ok((status, start.elapsed(), self.records()));
            }
            if start.elapsed() > *WAIT {
                return Err(Error::Timeout("the agent ignores SIGTERM".into(), *WAIT));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the agent with `sig` (SIGKILL: an unclean stop), then starts a new `run` with the
    /// same configuration (this handle now owns the new process) and waits for its start record.
    pub fn restart(&mut self, sig: Signal) -> Result<()> {
        self.signal(sig)?;
        self.child
            .wait()
            .map_err(Error::io("waiting for the agent"))?;
        let starts = |a: &Agent| {
            a.records()
                .iter()
                .filter(|r| r["event"]["action"] == "agent-started")
                .count()
        };
        let before = starts(self);
        self.child = self.launch.command()?;
        let deadline = Instant::now() + *WAIT;
        while starts(self) == before {
            if let Some(status) = self.exited()? {
                return Err(Error::Exited(status));
            }
            if Instant::now() > deadline {
                let what = "no start record after the restart".into();
                return Err(Error::Timeout(what, *WAIT));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .map_err(Error::io("waiting for the agent"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.launch.remove_dir {
            let _ = fs::remove_dir_all(&self.launch.dir);
        }
    }
}

/// Whether the JSON array `args` holds `arg`.
pub fn has_arg(args: &Value, arg: &str) -> bool {
    args.as_array().is_some_and(|a| a.iter().any(|x| x == arg))
}

/// `bin run --config CONFIG`, which must fail: its standard error.
pub fn refused_run(bin: impl AsRef<Path>, config: &Path) -> Result<String> {
    let bin = bin.as_ref();
    let out = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .output()
        .map_err(Error::io(format!("running {}", bin.display())))?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted; stderr: {err}");
    Ok(err)
}

/// Makes the configuration file `config` load its rules from the directory `rules`.
pub fn use_rules_dir(config: &Path, rules: &Path) -> Result<()> {
    let what = || format!("rewriting {}", config.display());
    let text = fs::read_to_string(config).map_err(Error::io(what()))?;
    let text = format!("[rules]\npath = \"{}\"\n{text}", rules.display());
    fs::write(config, text).map_err(Error::io(what()))
}

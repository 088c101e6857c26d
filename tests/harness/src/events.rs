//! `boot-copy-agent events`: the exec events it prints, one JSON object a line, read as they
//! arrive.
use crate::{Error, Result, WAIT, has_arg};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

/// A running `boot-copy-agent events` whose stdout lines arrive on a channel; stopped (SIGTERM,
/// then SIGKILL) when dropped.
pub struct Events {
    child: Child,
    lines: Receiver<Value>,
    /// The events read so far.
    pub seen: Vec<Value>,
}

impl Events {
    /// Starts `bin events` (`--all`: every exec, not only those the rules watch) and waits until
    /// its programs are attached.
    pub fn start(bin: impl AsRef<Path>, all: bool) -> Result<Events> {
        let bin = bin.as_ref();
        let mut cmd = Command::new(bin);
        cmd.arg("events");
        if all {
            cmd.arg("--all");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(Error::io(format!("starting {}", bin.display())))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("agent printed invalid JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut events = Events {
            child,
            lines,
            seen: Vec::new(),
        };
        events.wait_ready()?;
        Ok(events)
    }

    /// Execs a marker `cp` until its event shows up: the programs are attached.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + *WAIT;
        let marker = format!("ready-{}", std::process::id());
        while Instant::now() < deadline {
            let _ = Command::new("cp").arg("--version").arg(&marker).output();
            let poll = Duration::from_millis(300);
            match self.wait_for(poll, |e| has_arg(&e["process"]["args"], &marker)) {
                Ok(_) => return Ok(()),
                Err(Error::Timeout(..)) => {}
                Err(e) => return Err(e),
            }
        }
        let what = "the agent did not report a marker exec".into();
        Err(Error::Timeout(what, *WAIT))
    }

    /// The first event (already seen or arriving within `timeout`) satisfying `pred`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Ok(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(v) = self.lines.recv_timeout(left) else {
                return Err(match self.child.try_wait() {
                    Ok(Some(status)) => Error::Exited(status),
                    _ => Error::Timeout("no such event".into(), timeout),
                });
            };
            let hit = pred(&v);
            self.seen.push(v.clone());
            if hit {
                return Ok(v);
            }
        }
    }

    /// The exec event of process `pid`.
    pub fn exec_of(&mut self, pid: u32) -> Result<Value> {
        self.wait_for(*WAIT, |e| {
            e["event"]["action"] == "exec" && e["process"]["pid"] == pid
        })
    }

    /// Sends `sig` to the agent.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        Ok(nix::sys::signal::kill(
            Pid::from_raw(self.child.id() as i32),
            sig,
        )?)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

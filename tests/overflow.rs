//! Kernel ring-buffer overflow end-to-end: `boot-copy-agent run` is stopped (SIGSTOP) while a
//! storm of triggering execs fills its smallest ring buffer, then resumed. Every exec of the storm
//! must be accounted for: it raised its alert or it is in the kernel's drop count, and a loss
//! record covers the span. Copies go to a tmpfs over /boot in a private mount namespace. Needs
//! root.
use serde_json::Value;
use std::{
    fs,
    time::{Duration, SystemTime},
};

use crate::AGENT;
use boot_copy_harness::{Agent, WAIT, in_boot_namespace, tempdir, unique};

/// A rule like the published one on a tool with a name of its own: the kernel prefilter then
/// watches only this test's execs, so execs of other processes on the machine (other tests copy
/// files too) cannot take ring-buffer space or add drops.
fn rule_for(name: &str) -> String {
    boot_copy_harness::eql_rule(
        "0f0f0f0f-0000-4000-8000-000000000001",
        "Overflow test copy",
        "Copies into /boot by the overflow test's own copy tool.",
        &format!(
            r#"process where event.type == "start" and process.name == "{name}" and process.args like~ "/boot/*""#
        ),
    )
}

/// The kernel state letter of `pid` (`T` once stopped).
fn state(pid: u32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.chars().next().unwrap()
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

#[test]
fn execs_lost_while_stopped_equal_the_kernel_drop_count() {
    const STORM: usize = 400;
    let tag = unique();
    let work = tempdir("overflow-work").unwrap();
    let name = format!("ovfcp{}", tag.replace('-', "x"));
    let tool = work.join(&name);
    fs::copy("/usr/bin/cp", &tool).unwrap();
    let rule = work.join("rule.toml");
    fs::write(&rule, rule_for(&name)).unwrap();
    let config = format!(
        "[rules]\npath = \"{}\"\n[sensor]\nring_buffer_bytes = 1048576\n[alert_budget]\nmax_alerts = 1000000\n",
        rule.display()
    );
    let mut agent = Agent::start(AGENT, "overflow", &config).unwrap();
    let tool = tool.display().to_string();
    let sync = |agent: &mut Agent, label: &str| {
        let marker = format!("/boot/{label}-{tag}");
        in_boot_namespace(&format!("{tool} /etc/hostname {marker}")).unwrap();
        agent
            .wait_for(*WAIT, |r| {
                r["event"]["kind"] == "alert"
                    && boot_copy_harness::has_arg(&r["process"]["args"], &marker)
            })
            .unwrap_or_else(|e| panic!("no alert for {marker}: {e}"));
    };
    sync(&mut agent, "before"); // the ring is empty now

    agent.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
    while state(agent.pid()) != 'T' {
        std::thread::sleep(Duration::from_millis(5));
    }
    let storm_start = SystemTime::now();
    in_boot_namespace(&format!(
        "i=0; while [ $i -lt {STORM} ]; do {tool} /etc/hostname /boot/storm-{tag}-$i; i=$((i+1)); done"
    )).unwrap();
    let storm_end = SystemTime::now();
    agent.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
    sync(&mut agent, "after"); // every storm record still in the ring has been handled
    let loss = agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "events-lost")
        .expect("a loss record");

    let (status, _, records) = agent.stop().unwrap();
    assert!(status.success(), "{status}");
    let prefix = format!("/boot/storm-{tag}-");
    let mut alerted: Vec<usize> = records
        .iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter_map(|r| {
            let args = r["process"]["args"].as_array()?;
            args.iter()
                .find_map(|a| a.as_str()?.strip_prefix(prefix.as_str())?.parse().ok())
        })
        .collect();
    alerted.sort_unstable();
    let alerts = alerted.len();
    alerted.dedup();
    assert_eq!(alerted.len(), alerts, "an exec alerted twice");
    let reported: u64 = records
        .iter()
        .filter(|r| r["event"]["action"] == "events-lost")
        .map(|r| r["boot_copy"]["loss"]["ringbuf_drops"].as_u64().unwrap())
        .sum();
    let stopped = records
        .iter()
        .find(|r| r["event"]["action"] == "agent-stopped")
        .expect("stop record");
    let counters = &stopped["boot_copy"]["counters"];
    let kernel = counters["ringbuf_drops"].as_u64().unwrap();
    // The copies' writes into /boot are file records in the same ring (no rule reads them).
    let exec_drops = kernel - counters["file_ringbuf_drops"].as_u64().unwrap();
    eprintln!("storm of {STORM}: {alerts} alerts, {kernel} kernel drops ({exec_drops} execs)");
    assert!(
        alerts > 0 && exec_drops > 0,
        "the storm overflowed the ring"
    );
    assert_eq!(
        exec_drops as usize,
        STORM - alerts,
        "every exec alerted or counted"
    );
    assert_eq!(reported, kernel, "loss records add up to the kernel count");
    assert!(
        time(&loss["event"]["start"]) <= storm_start && time(&loss["event"]["end"]) >= storm_end,
        "the loss record spans the storm: {loss}"
    );
    fs::remove_dir_all(&work).unwrap();
}

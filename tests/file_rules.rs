//! Elastic's own Linux file rules, loaded unchanged (`tests/data/detection-rules-file`), through
//! `run`: the agent watches the directories their `file.path` conditions name, and they fire on
//! real creations there, once each, and not on near misses. The directories are made in a
//! private mount namespace the agent runs in too: a tmpfs over /etc/default, and an overlay over
//! /usr/lib whose upper layer is a tmpfs (for /usr/lib/dracut), so no host file is touched.
//! Needs root.
use serde_json::Value;
use std::path::Path;

use crate::AGENT;
use boot_copy_harness::{Agent, BootKind, BootNamespace, Launch, WAIT, tempdir};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/detection-rules-file"
);
const GRUB: &str = "ce4a32e5-32aa-47e6-80da-ced6d234387d";
const DRACUT: &str = "dc765fb2-0c99-4e57-8c11-dafdf1992b66";
const MODULES: &str = "/usr/lib/dracut/modules.d";

/// The namespace: /boot, /etc/default and an overlaid /usr/lib of its own, with the
/// directories the rules name (and their near misses) in place.
fn namespace(scratch: &Path) -> BootNamespace {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let o = scratch.join("overlay");
    ns.sh(&format!(
        "mount -t tmpfs fr-etc /etc/default && mkdir /etc/default/grub.d /etc/default/grubx.d && \
         mkdir -p {o} && mount -t tmpfs fr-usr {o} && mkdir {o}/upper {o}/work && \
         mount -t overlay fr-usr -o lowerdir=/usr/lib,upperdir={o}/upper,workdir={o}/work /usr/lib && \
         mkdir -p {MODULES}/99x /usr/lib/dracut/modules.dx/99x",
        o = o.display()
    ))
    .unwrap();
    ns
}

/// The `rules` listing in the namespace.
fn listing(ns: &BootNamespace, config: &Path) -> String {
    let out: std::process::Output = ns
        .command(AGENT)
        .args(["rules", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Alerts of the two rules.
fn alerts(agent: &Agent) -> Vec<Value> {
    agent
        .records()
        .into_iter()
        .filter(|r| r["event"]["kind"] == "alert")
        .filter(|r| r["rule"]["id"] == GRUB || r["rule"]["id"] == DRACUT)
        .collect()
}

#[test]
fn grub_and_dracut_rules_fire_on_creations_in_the_trees_they_name() {
    let scratch = tempdir("fr-rules").unwrap();
    let ns = namespace(&scratch);
    let mut agent = Launch::fresh(AGENT, "fr-rules", &format!("[rules]\npath = \"{RULES}\"\n"))
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap();
    let config = agent.dir().join("config.toml");
    let trees = listing(&ns, &config);
    let line = trees
        .lines()
        .find(|l| l.starts_with("file events: "))
        .unwrap();
    assert!(
        line.starts_with("file events: /boot, /etc") && line.contains(MODULES),
        "{trees}"
    );
    ns.sh(&format!(
        "echo 'GRUB_TIMEOUT=0' > /etc/default/grub.d/x.cfg && \
         echo more >> /etc/default/grub.d/x.cfg && \
         echo x > /etc/default/grub.cfg && echo x > /etc/default/grubx.d/x.cfg && \
         dd if=/etc/hostname of={MODULES}/99x/module-setup.sh status=none && \
         dd if=/etc/hostname of=/usr/lib/dracut/modules.dx/99x/module-setup.sh status=none && \
         mkdir -p {s}/etc/default/grub.d && echo x > {s}/etc/default/grub.d/x.cfg",
        s = scratch.display()
    ))
    .unwrap();
    // The log is written in order: once this creation's alert is in, every write above was
    // evaluated.
    let sync = format!("{MODULES}/99x/sync");
    ns.sh(&format!("echo x > {sync}")).unwrap();
    agent
        .wait_for(*WAIT, |r| r["file"]["path"] == sync.as_str())
        .unwrap();
    let alerts = alerts(&agent);
    let fired: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["rule"]["id"].as_str().unwrap(),
                a["file"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    let module_setup = format!("{MODULES}/99x/module-setup.sh");
    assert_eq!(
        fired,
        [
            (GRUB, "/etc/default/grub.d/x.cfg"),
            (DRACUT, module_setup.as_str()),
            (DRACUT, sync.as_str()),
        ],
        "{alerts:#?}"
    );
    let (grub, dracut) = (&alerts[0], &alerts[1]);
    assert_eq!(grub["rule"]["name"], "GRUB Configuration File Creation");
    assert_eq!(grub["event"]["action"], "creation");
    assert_eq!(grub["process"]["name"], real_name("/bin/sh"));
    assert_eq!(grub["file"]["name"], "x.cfg");
    assert_eq!(grub["file"]["extension"], "cfg");
    assert_eq!(dracut["process"]["name"], "dd");
    assert_eq!(dracut["boot_copy"]["file"]["tree"], MODULES);
    let tree = grub["boot_copy"]["file"]["tree"].as_str().unwrap();
    assert!(tree.starts_with("/etc"), "{grub:#}");
    drop(agent);
    drop(ns);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The real name of an executable (`process.name` is the resolved executable's basename).
fn real_name(path: &str) -> String {
    let real = std::fs::canonicalize(path).unwrap();
    real.file_name().unwrap().to_string_lossy().into_owned()
}

/// A SIGHUP that loads the file rules makes the kernel watch the trees they name: the agent
/// started with the bundled rules, which name /boot alone; after the reload a creation under
/// /etc/default/grub.d is alerted under the GRUB rule.
#[test]
fn reload_watches_the_trees_of_the_new_file_rules() {
    let scratch = tempdir("fr-reload").unwrap();
    let ns = namespace(&scratch);
    let mut agent = Launch::fresh(AGENT, "fr-reload", "")
        .unwrap()
        .in_namespace_of(ns.pid())
        .start()
        .unwrap();
    let config = agent.dir().join("config.toml");
    boot_copy_harness::use_rules_dir(&config, Path::new(RULES)).unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    agent
        .wait_for(*WAIT, |r| r["event"]["action"] == "rules-reloaded")
        .unwrap();
    ns.sh("echo x > /etc/default/grub.d/reloaded.cfg").unwrap();
    let a = agent
        .wait_for(*WAIT, |r| {
            r["event"]["kind"] == "alert" && r["file"]["path"] == "/etc/default/grub.d/reloaded.cfg"
        })
        .unwrap();
    assert_eq!(a["rule"]["id"], GRUB, "{a:#}");
    assert!(
        a["boot_copy"]["file"]["tree"]
            .as_str()
            .is_some_and(|t| t.starts_with("/etc")),
        "{a:#}"
    );
    drop(agent);
    drop(ns);
    let _ = std::fs::remove_dir_all(&scratch);
}

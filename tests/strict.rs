//! The strict companion rule "Boot File Copy (strict)" end-to-end: `boot-copy-agent run` with the
//! bundled rules on the real kernel. One scenario per evasion of the published rule: the
//! published rule does not alert, the strict rule does, once, naming the evasion. Every copy into
//! /boot happens inside a private mount namespace with a tmpfs over /boot (`unshare -m`), so the
//! host's /boot is never touched. Needs root (and busybox for the applet cases).
use std::{fs, process::Command};

use crate::support::boot_agent::agent_in;
use boot_copy_harness::{BootKind, BootNamespace, PUBLISHED, STRICT, tempdir, unique};

fn busybox() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        !path.is_empty(),
        "busybox is needed (apt-get install -y busybox)"
    );
    fs::canonicalize(path).unwrap().display().to_string()
}

/// A scenario: a script run in the boot namespace with the unique source file `src` (its alerts
/// are found by that argument), and the evasion the strict alert must name (`None`: no alert of
/// either rule; `Some("published")`: exactly one alert, the published rule's).
struct Case {
    script: String,
    src: String,
    expect: Option<&'static str>,
}

fn source(work: &std::path::Path) -> String {
    let p = work.join(format!("src-{}", unique()));
    fs::write(&p, "boot-copy strict test\n").unwrap();
    p.display().to_string()
}

#[test]
fn each_evasion_alerts_once_under_the_strict_rule() {
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "evasions", "");
    let work = tempdir("evasion-work").unwrap();
    let w = work.display().to_string();
    let bb = busybox();
    fs::copy("/usr/bin/cp", work.join("xyz")).unwrap();
    std::os::unix::fs::symlink(&bb, work.join("cp")).unwrap();
    std::os::unix::fs::symlink("/boot", work.join("bl")).unwrap();
    let dash = fs::canonicalize("/bin/sh").unwrap();
    fs::copy(&dash, work.join("update-initramfs")).unwrap();
    fs::copy(&dash, work.join("grub-mkconfig")).unwrap();
    let mut cases = Vec::new();
    let mut case = |script: &dyn Fn(&str) -> String, expect: Option<&'static str>| {
        let src = source(&work);
        cases.push(Case {
            script: script(&src),
            src,
            expect,
        });
    };
    case(&|s| format!("cd /boot && cp {s} ."), Some("dot_segment"));
    case(&|s| format!("cd /boot && cp {s} ."), Some("relative_path"));
    case(
        &|s| format!("cd / && cp {s} boot/rel"),
        Some("relative_path"),
    );
    case(&|s| format!("cp {s} /boot"), Some("no_trailing_slash"));
    case(&|s| format!("cp {s} //boot/x"), Some("double_slash"));
    case(&|s| format!("cp {s} /./boot/x"), Some("dot_segment"));
    case(&|s| format!("cp {s} /tmp/../boot/x"), Some("dotdot"));
    case(&|s| format!("cp -t/boot {s}"), Some("joined_target_option"));
    case(
        &|s| format!("cp --target-directory=/boot {s}"),
        Some("long_target_option"),
    );
    case(&|s| format!("mv {s} /boot"), Some("no_trailing_slash"));
    case(
        &|s| format!("{bb} cp {s} /boot/y"),
        Some("multicall_applet"),
    );
    case(
        &|s| format!("{w}/cp {s} /boot/y2"),
        Some("multicall_applet"),
    );
    case(&|s| format!("{w}/xyz {s} /boot/b"), Some("renamed_binary"));
    case(&|s| format!("cp {s} {w}/bl/y"), Some("symlink_to_boot"));
    // The published rule's verdict stays: it alerts, the strict rule does not (no double alert).
    case(&|s| format!("cp {s} /boot/plain"), Some("published"));
    case(&|s| format!("cp -t /boot/ {s}"), Some("published"));
    // Nothing into /boot: no alert at all.
    case(&|s| format!("cp {s} /tmp/ && cp {s} {w}/elsewhere"), None);
    // The published rule's exclusions suppress the strict rule for legitimate tooling.
    case(
        &|s| format!("{w}/update-initramfs -c 'cd /boot && cp {s} .; true'"),
        None,
    );
    case(
        &|s| format!("{w}/grub-mkconfig -c 'cp {s} /boot; true'"),
        None,
    );
    for c in &cases {
        ns.isolated(&c.script).unwrap();
    }
    agent.sync().unwrap();
    let schema = crate::support::ecs_schema::Schema::load();
    let mut failures = Vec::new();
    for c in &cases {
        let alerts = agent.alerts_with_arg(&c.src);
        let ok = match c.expect {
            None => alerts.is_empty(),
            Some("published") => alerts.len() == 1 && alerts[0]["rule"]["id"] == PUBLISHED,
            Some(evasion) => {
                alerts.len() == 1
                    && alerts[0]["rule"]["id"] == STRICT
                    && alerts[0]["rule"]["name"] == "Boot File Copy (strict)"
                    && alerts[0]["boot_copy"]["strict"]["into_boot"] == true
                    && alerts[0]["boot_copy"]["strict"]["evasion"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == evasion))
            }
        };
        for a in &alerts {
            let problems = schema.violations(a);
            assert!(problems.is_empty(), "alert is not ECS 9.4.0: {problems:#?}");
        }
        if !ok {
            failures.push(format!(
                "`{}`: expected {:?}, got {}",
                c.script,
                c.expect,
                serde_json::to_string_pretty(
                    &alerts
                        .iter()
                        .map(|a| (a["rule"]["name"].clone(), a["boot_copy"]["strict"].clone()))
                        .collect::<Vec<_>>()
                )
                .unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fs::remove_dir_all(&work).unwrap();
}

#[test]
fn strict_rule_can_be_disabled() {
    // Boot File Write, which sees the copy's write, is off too.
    let ns = BootNamespace::new(BootKind::Tmpfs).unwrap();
    let mut agent = agent_in(&ns, "disabled", "[rules]\nstrict = false\nfile = false\n");
    let work = tempdir("disabled-work").unwrap();
    let src = source(&work);
    ns.isolated(&format!("cp {src} /boot")).unwrap();
    agent.sync().unwrap();
    assert!(agent.alerts_with_arg(&src).is_empty());
    let (status, _, records) = agent.stop().unwrap();
    assert!(status.success());
    assert_eq!(
        records[0]["boot_copy"]["prefilter"],
        "process.name in (\"cp\", \"mv\")"
    );
    fs::remove_dir_all(&work).unwrap();
}

//! The scenarios every kernel must pass: the two of the guest script itself, then tests of the
//! end-to-end binary, named `MODULE/TEST` after their path (`events::every_scenario_on_one_agent`
//! runs as `events/every_scenario_on_one_agent`). A kernel passes only with a PASS row for each
//! (a SKIP, a FAIL or a missing row fails it); a shared test renamed in the binary no longer
//! matches its entry here and fails every kernel, naming it.
use anyhow::{Context as _, bail};
use std::{path::Path, process::Command};

/// Scenarios of `tests/vm/scenarios.sh` itself: the programs load and events flow; with the
/// kernel BTF hidden the agent refuses to start, naming BTF.
const FIXED: [&str; 2] = ["agent-loads", "requirement-missing-btf"];

/// The shared set, each suite against one agent (under TCG loading the programs takes about ten
/// seconds per agent): every events scenario, every alert verdict and exception, every
/// strict-rule evasion, whole command lines and the loader (with the 1 MiB-ring incomplete
/// argv), the ring-buffer overflow, whose drops must match exactly, and the session and cgroup
/// scenarios (the kernel's session, terminal and cgroup fields, a leader kept after it exits,
/// one described anew after it execs),
/// and the file program's: every act by every writer the guest has (with /boot a tmpfs and a
/// directory of the root file system), bind mounts, symlinks and io_uring, and file records lost
/// while the agent is stopped, counted exactly.
const SHARED: [&str; 13] = [
    "events::every_scenario_on_one_agent",
    "daemon::alert_scenarios_on_one_agent",
    "strict::each_evasion_alerts_once_under_the_strict_rule",
    "argv::whole_command_lines_and_the_loader_on_one_agent",
    "argv::an_incomplete_argv_alerts_as_args_incomplete",
    "overflow::execs_lost_while_stopped_equal_the_kernel_drop_count",
    "sessions::setsid_and_terminal_sessions_are_described_as_defend_does",
    "sessions::a_leader_that_exited_is_still_described",
    "sessions::a_leader_that_execs_is_described_anew",
    "cgroups::containers_are_named_from_the_cgroups_of_their_copies",
    "file_events::file_acts_on_one_agent",
    "file_events::portable_writers_alert_once_on_a_root_directory",
    "file_events::writes_lost_while_stopped_equal_the_kernel_drop_count",
];

/// The modules `VMTEST_SET=all` runs every test of, one agent each.
const SUITES: [&str; 7] = [
    "events::",
    "daemon::",
    "strict::",
    "argv::",
    "overflow::",
    "sessions::",
    "cgroups::",
];

/// What every kernel must pass.
pub struct Required {
    /// Scenario names, in the order the guest runs them.
    pub names: Vec<String>,
    /// Required tests the binary does not have (renamed or removed).
    pub missing: Vec<String>,
}

impl Required {
    /// The required scenarios for the test binary `tests`: [`FIXED`] and [`SHARED`] (with
    /// `VMTEST_SET=all`, every test of [`SUITES`] the binary lists), narrowed by `VMTEST_ONLY` (a
    /// shell-style glob on scenario names), which only `cargo xtask vm-test` accepts.
    pub fn of(tests: &Path) -> anyhow::Result<Required> {
        let listed = list(tests)?;
        let all = match std::env::var("VMTEST_SET") {
            Ok(v) if v == "all" => true,
            Ok(v) => bail!("VMTEST_SET={v}: the only set is `all`"),
            Err(_) => false,
        };
        let chosen: Vec<String> = match all {
            true => listed
                .iter()
                .filter(|t| SUITES.iter().any(|s| t.starts_with(s)))
                .cloned()
                .collect(),
            false => SHARED.iter().map(|t| t.to_string()).collect(),
        };
        let missing = chosen
            .iter()
            .filter(|t| !listed.contains(t))
            .map(|t| scenario_name(t))
            .collect();
        let only = std::env::var("VMTEST_ONLY").ok();
        let names = FIXED
            .iter()
            .map(|f| f.to_string())
            .chain(chosen.iter().map(|t| scenario_name(t)))
            .filter(|n| only.as_deref().is_none_or(|g| glob(g, n)))
            .collect();
        Ok(Required { names, missing })
    }
}

/// `events::x` as a scenario: `events/x`.
fn scenario_name(test: &str) -> String {
    test.replace("::", "/")
}

/// The tests `tests --list` names.
fn list(tests: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new(tests)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", tests.display()))?;
    if !out.status.success() {
        bail!("{} --list failed: {}", tests.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect())
}

/// Shell-style `*` and `?` matching.
fn glob(pattern: &str, name: &str) -> bool {
    fn at(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, _) => n.is_empty(),
            (Some(b'*'), _) => at(&p[1..], n) || (!n.is_empty() && at(p, &n[1..])),
            (Some(b'?'), Some(_)) => at(&p[1..], &n[1..]),
            (Some(c), Some(d)) => c == d && at(&p[1..], &n[1..]),
            (Some(_), None) => false,
        }
    }
    at(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob("events/*", "events/every_scenario_on_one_agent"));
        assert!(glob("*btf", "requirement-missing-btf"));
        assert!(glob("agent-load?", "agent-loads"));
        assert!(!glob("events/*", "daemon/alert_scenarios_on_one_agent"));
        assert!(!glob("agent", "agent-loads"));
    }
}

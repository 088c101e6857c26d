//! Reading a run's console: the `VMTEST` lines the scenario script prints, checked against the
//! required scenarios (each needs a PASS row), plus what must fail a kernel whatever the
//! scenarios said (panic or oops, verifier rejection, no DONE line, timeout).
use super::{qemu::Run, scenarios::Required};

pub struct Scenario {
    pub name: String,
    /// PASS, FAIL or SKIP.
    pub status: String,
    pub took: String,
}

pub struct Report {
    pub label: String,
    pub kernel: String,
    pub release: Option<String>,
    pub scenarios: Vec<Scenario>,
    /// How many scenarios this kernel had to pass.
    pub required: usize,
    pub problems: Vec<String>,
    pub elapsed_secs: f64,
}

const VERIFIER: &str = "BPF verifier rejected a program (the agent's error, with the verifier log, is in the console above)";

/// Console text that fails a kernel even when every scenario line says PASS.
const KERNEL_TROUBLE: &[(&str, &str)] = &[
    ("Kernel panic", "kernel panic"),
    ("Oops:", "kernel oops"),
    ("BUG:", "kernel BUG"),
    (
        "general protection fault",
        "kernel general protection fault",
    ),
    // The agent's SensorError::VerifierRejected, and aya's own wording.
    ("verifier rejected", VERIFIER),
    ("Verifier output", VERIFIER),
];

impl Report {
    pub fn parse(label: &str, kernel: &str, run: &Run, required: &Required) -> Report {
        let mut report = Report {
            label: label.into(),
            kernel: kernel.into(),
            release: None,
            scenarios: Vec::new(),
            required: required.names.len(),
            problems: Vec::new(),
            elapsed_secs: run.elapsed.as_secs_f64(),
        };
        let mut done = None;
        for line in run.console.lines() {
            report.read_line(line, &mut done);
        }
        for (needle, problem) in KERNEL_TROUBLE {
            if run.console.contains(needle) && !report.problems.iter().any(|p| p == problem) {
                report.problems.push((*problem).into());
            }
        }
        if run.status.is_none() {
            report
                .problems
                .push(format!("timed out after {:?}", run.timeout));
        }
        match done {
            None => report
                .problems
                .push("no VMTEST-DONE line: the scenario run did not finish".into()),
            Some(d) if !d.contains(" failed=0") => {
                report.problems.push(format!("guest reported {d}"))
            }
            Some(_) => {}
        }
        report.check_required(required);
        report
    }

    /// Every required scenario has exactly one row, and it says PASS; no other rows.
    fn check_required(&mut self, required: &Required) {
        let rows = |status: &str| -> Vec<&str> {
            self.scenarios
                .iter()
                .filter(|s| s.status == status)
                .map(|s| s.name.as_str())
                .collect()
        };
        let missing: Vec<&str> = required
            .names
            .iter()
            .filter(|n| !self.scenarios.iter().any(|s| &s.name == *n))
            .map(String::as_str)
            .collect();
        let unexpected: Vec<&str> = self
            .scenarios
            .iter()
            .filter(|s| !required.names.contains(&s.name))
            .map(|s| s.name.as_str())
            .collect();
        let mut problems = Vec::new();
        for (what, names) in [
            ("failed scenarios", rows("FAIL")),
            ("skipped scenarios", rows("SKIP")),
            ("no result for", missing),
            ("scenarios not required", unexpected),
            (
                "required tests the binary lacks (renamed?)",
                required.missing.iter().map(String::as_str).collect(),
            ),
        ] {
            if !names.is_empty() {
                problems.push(format!("{what}: {}", names.join(", ")));
            }
        }
        if required.names.is_empty() {
            problems.push("no scenario required (VMTEST_ONLY matches none)".into());
        }
        self.problems.extend(problems);
    }

    fn read_line(&mut self, line: &str, done: &mut Option<String>) {
        // Serial output can share a line with kernel messages; the marker may not start it.
        let Some(at) = line.find("VMTEST") else {
            return;
        };
        let line = &line[at..];
        let mut words = line.split_whitespace();
        match words.next() {
            Some("VMTEST-KERNEL") => self.release = words.next().map(str::to_owned),
            Some("VMTEST-DONE") => *done = Some(line.to_owned()),
            Some("VMTEST") => {
                if let (Some(name), Some(status)) = (words.next(), words.next()) {
                    self.scenarios.push(Scenario {
                        name: name.into(),
                        status: status.into(),
                        took: words.next().unwrap_or("").into(),
                    });
                }
            }
            _ => {}
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn passed(&self) -> usize {
        self.scenarios.iter().filter(|s| s.status == "PASS").count()
    }

    /// `LABEL PASSED/REQUIRED`, as the test command's summary shows it.
    pub fn count(&self) -> String {
        format!("{} {}/{}", self.label, self.passed(), self.required)
    }

    /// The whole console (it holds the agent's errors and any verifier log in full), then why
    /// the kernel failed.
    pub fn print_failure(&self, run: &Run) {
        eprintln!(
            "===== vm-test [{}] console ({}) =====",
            self.label, self.kernel
        );
        eprint!("{}", run.console);
        eprintln!("===== end of vm-test [{}] console =====", self.label);
        for p in &self.problems {
            eprintln!("vm-test: [{}] FAILED: {p}", self.label);
        }
    }
}

/// One row per scenario, one column per kernel, then a line per kernel.
pub fn print_matrix(reports: &[Report]) {
    let mut names: Vec<&str> = Vec::new();
    for r in reports {
        for s in &r.scenarios {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    let width = names.iter().map(|n| n.len()).max().unwrap_or(8).max(8);
    println!();
    println!("vm-test kernel matrix");
    let mut header = format!("  {:width$}", "scenario");
    for r in reports {
        header.push_str(&format!("  {:>10}", r.label));
    }
    println!("{header}");
    for name in names {
        let mut row = format!("  {name:width$}");
        for r in reports {
            let cell = r.scenarios.iter().find(|s| s.name == name);
            let cell = cell.map_or("-".to_string(), |s| format!("{} {}", s.status, s.took));
            row.push_str(&format!("  {cell:>10}"));
        }
        println!("{row}");
    }
    for r in reports {
        let verdict = if r.ok() { "ok" } else { "FAILED" };
        println!(
            "  {:>5}: {verdict}, {}/{} required scenarios passed, {:.0} s ({}; running {})",
            r.label,
            r.passed(),
            r.required,
            r.elapsed_secs,
            r.kernel,
            r.release.as_deref().unwrap_or("?"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(console: &str, finished: bool) -> Run {
        use std::os::unix::process::ExitStatusExt as _;
        Run {
            console: console.into(),
            status: finished.then(|| std::process::ExitStatus::from_raw(0)),
            elapsed: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        }
    }

    fn required(names: &[&str]) -> Required {
        Required {
            names: names.iter().map(|n| n.to_string()).collect(),
            missing: Vec::new(),
        }
    }

    fn parse(console: &str, finished: bool) -> Report {
        let req = required(&["agent-loads", "events/binary_with_args"]);
        Report::parse("k", "p", &run(console, finished), &req)
    }

    const GOOD: &str = "VMTEST-KERNEL 6.1.0-56-amd64\nnoise\nVMTEST agent-loads PASS 2s\n\
        VMTEST events/binary_with_args PASS 3s\nVMTEST-DONE passed=2 failed=0 skipped=0\n";

    #[test]
    fn all_pass_is_ok() {
        let r = parse(GOOD, true);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.release.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(r.count(), "k 2/2");
    }

    #[test]
    fn failures_panics_timeouts_and_missing_done_fail() {
        let bad = GOOD.replace("binary_with_args PASS", "binary_with_args FAIL");
        assert!(!parse(&bad, true).ok());
        let panic = format!("{GOOD}[ 3.1] Kernel panic - not syncing: Fatal exception\n");
        assert!(!parse(&panic, true).ok());
        assert!(!parse(GOOD, false).ok());
        let cut = GOOD.replace("VMTEST-DONE", "VMTEST-D0NE");
        assert!(!parse(&cut, true).ok());
        let verifier = format!(
            "{GOOD}boot-copy-agent: the kernel verifier rejected program exec (x); verifier log:\n"
        );
        assert!(!parse(&verifier, true).ok());
    }

    #[test]
    fn a_skip_a_missing_row_or_a_renamed_test_fails() {
        let skipped = GOOD.replace("binary_with_args PASS", "binary_with_args SKIP");
        let r = parse(&skipped, true);
        assert!(!r.ok());
        assert_eq!(r.count(), "k 1/2");
        let dropped = GOOD.replace("VMTEST events/binary_with_args PASS 3s\n", "");
        let r = parse(&dropped, true);
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("no result for: events/binary_with_args")),
            "{:?}",
            r.problems
        );
        let mut req = required(&["agent-loads", "events/binary_with_args"]);
        req.missing.push("events/binary_with_args".into());
        assert!(!Report::parse("k", "p", &run(GOOD, true), &req).ok());
        let extra = required(&["agent-loads"]);
        assert!(!Report::parse("k", "p", &run(GOOD, true), &extra).ok());
    }
}

//! Reading a run's console: the `VMTEST` lines the scenario script prints, plus what must fail a
//! kernel whatever the scenarios said (panic or oops, verifier rejection, no DONE line, timeout).
use super::qemu::Run;

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
    pub fn parse(label: &str, kernel: &str, run: &Run) -> Report {
        let mut report = Report {
            label: label.into(),
            kernel: kernel.into(),
            release: None,
            scenarios: Vec::new(),
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
        let failed: Vec<&str> = report
            .scenarios
            .iter()
            .filter(|s| s.status == "FAIL")
            .map(|s| s.name.as_str())
            .collect();
        if !failed.is_empty() {
            report
                .problems
                .push(format!("failed scenarios: {}", failed.join(", ")));
        }
        if report.scenarios.iter().all(|s| s.status != "PASS") {
            report.problems.push("no scenario passed".into());
        }
        report
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
            "  {:>5}: {verdict}, {}/{} scenarios passed, {:.0} s ({}; running {})",
            r.label,
            r.passed(),
            r.scenarios.len(),
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

    const GOOD: &str = "VMTEST-KERNEL 6.1.0-56-amd64\nnoise\nVMTEST agent-loads PASS 2s\n\
        VMTEST events/binary_with_args PASS 3s\nVMTEST-DONE passed=2 failed=0 skipped=0\n";

    #[test]
    fn all_pass_is_ok() {
        let r = Report::parse("6.1", "pkg", &run(GOOD, true));
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.release.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(r.passed(), 2);
    }

    #[test]
    fn failures_panics_timeouts_and_missing_done_fail() {
        let bad = GOOD.replace("binary_with_args PASS", "binary_with_args FAIL");
        assert!(!Report::parse("k", "p", &run(&bad, true)).ok());
        let panic = format!("{GOOD}[ 3.1] Kernel panic - not syncing: Fatal exception\n");
        assert!(!Report::parse("k", "p", &run(&panic, true)).ok());
        assert!(!Report::parse("k", "p", &run(GOOD, false)).ok());
        let cut = GOOD.replace("VMTEST-DONE", "VMTEST-D0NE");
        assert!(!Report::parse("k", "p", &run(&cut, true)).ok());
        let verifier = format!(
            "{GOOD}boot-copy-agent: the kernel verifier rejected program exec (x); verifier log:\n"
        );
        assert!(!Report::parse("k", "p", &run(&verifier, true)).ok());
    }
}

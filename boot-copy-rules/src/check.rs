//! Loading rules and exceptions as a host's configuration names them, reporting every problem
//! (what a `check` command lists).

use std::fmt;
use std::path::Path;

use crate::exceptions::Exceptions;
use crate::rulefile::{Rule, bundled, bundled_strict, load_rules};
use crate::ruleset::RuleSet;

/// One problem found by [`check`]: where (a file, possibly with a position, or `exceptions`) and
/// what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A rule file (`FILE`, `FILE:LINE` or `FILE:LINE:COL`), or `exceptions`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Loads the rules (`rules_path`, or the bundled published rule when `None`) and pairs them with
/// `exceptions`, reporting every problem.
pub fn load_ruleset(
    rules_path: Option<&Path>,
    exceptions: &Exceptions,
) -> Result<RuleSet, Vec<Problem>> {
    load_ruleset_with(rules_path, false, exceptions)
}

/// [`load_ruleset`], with the bundled strict companion rule added to the bundled rules when
/// `strict` (config `rules.strict`). A `rules_path` is taken as it is: add
/// `rules/boot-file-copy-strict.toml` to it to use the strict rule there.
pub fn load_ruleset_with(
    rules_path: Option<&Path>,
    strict: bool,
    exceptions: &Exceptions,
) -> Result<RuleSet, Vec<Problem>> {
    let rules: Vec<Rule> = match rules_path {
        None if strict => {
            let mut rules = bundled();
            rules.push(bundled_strict());
            rules
        }
        None => bundled(),
        Some(path) => {
            if !path.exists() {
                return Err(vec![Problem {
                    location: path.display().to_string(),
                    message: "no such file or directory".to_owned(),
                }]);
            }
            let rules = load_rules(path).map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| {
                        let text = e.to_string();
                        let location = text.split(": ").next().unwrap_or_default().to_owned();
                        Problem {
                            location,
                            message: e.message,
                        }
                    })
                    .collect::<Vec<_>>()
            })?;
            if rules.is_empty() {
                return Err(vec![Problem {
                    location: path.display().to_string(),
                    message: "no rule files (*.toml) found; the agent would detect nothing"
                        .to_owned(),
                }]);
            }
            rules
        }
    };
    RuleSet::new(rules, exceptions).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| Problem {
                location: "exceptions".to_owned(),
                message: e.to_string(),
            })
            .collect()
    })
}

/// Every problem with the rules and exceptions (empty when all is well).
pub fn check(rules_path: Option<&Path>, exceptions: &Exceptions) -> Vec<Problem> {
    check_with(rules_path, false, exceptions)
}

/// [`check`] with the strict companion rule as [`load_ruleset_with`] adds it.
pub fn check_with(
    rules_path: Option<&Path>,
    strict: bool,
    exceptions: &Exceptions,
) -> Vec<Problem> {
    match load_ruleset_with(rules_path, strict, exceptions) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_listed() {
        let mut ex = Exceptions::default();
        ex.0.insert("nope".into(), vec![]);
        let problems = check(None, &ex);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "exceptions: exceptions for rule nope item 1: no loaded rule has this rule_id"
        );
        let problems = check(
            Some(Path::new("/nonexistent/rules")),
            &Exceptions::default(),
        );
        assert!(problems[0].message.contains("no such file"));
    }
}

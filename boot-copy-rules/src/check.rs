//! Loading rules and exceptions as a host's configuration names them, reporting every problem
//! (what a `check` command lists).

use std::fmt;
use std::path::Path;

use crate::exceptions::Exceptions;
use crate::rulefile::{Rule, bundled, bundled_file, bundled_strict, load_rules};
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
    load_ruleset_with(rules_path, Bundled::default(), exceptions)
}

/// Which bundled companions join the bundled Boot File Copy rule (config `rules.strict` and
/// `rules.file`); none by default here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bundled {
    /// Boot File Copy (strict).
    pub strict: bool,
    /// Boot File Write.
    pub file: bool,
}

/// [`load_ruleset`], with the bundled companion rules `companions` names added to the bundled
/// rules. A `rules_path` is taken as it is: add `rules/boot-file-copy-strict.toml` or
/// `rules/boot-file-write.toml` to it to use those rules there.
pub fn load_ruleset_with(
    rules_path: Option<&Path>,
    companions: Bundled,
    exceptions: &Exceptions,
) -> Result<RuleSet, Vec<Problem>> {
    let rules: Vec<Rule> = match rules_path {
        None => {
            let mut rules = bundled();
            if companions.strict {
                rules.push(bundled_strict());
            }
            if companions.file {
                rules.push(bundled_file());
            }
            rules
        }
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
    check_with(rules_path, Bundled::default(), exceptions)
}

/// [`check`] with the companion rules as [`load_ruleset_with`] adds them.
pub fn check_with(
    rules_path: Option<&Path>,
    companions: Bundled,
    exceptions: &Exceptions,
) -> Vec<Problem> {
    match load_ruleset_with(rules_path, companions, exceptions) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions_join_the_bundled_rule_as_asked() {
        let ids = |b| -> Vec<String> {
            let set = load_ruleset_with(None, b, &Exceptions::default()).unwrap();
            set.rules().iter().map(|r| r.name.clone()).collect()
        };
        assert_eq!(ids(Bundled::default()), ["Boot File Copy"]);
        assert_eq!(
            ids(Bundled {
                strict: true,
                file: true
            }),
            [
                "Boot File Copy",
                "Boot File Copy (strict)",
                "Boot File Write"
            ]
        );
        assert_eq!(
            ids(Bundled {
                strict: false,
                file: true
            }),
            ["Boot File Copy", "Boot File Write"]
        );
    }

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

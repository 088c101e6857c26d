//! Which execs the kernel needs to report, derived from the loaded rules.
//!
//! A rule can only match events whose `process.name` satisfies each of its top-level conjuncts.
//! If a rule's condition has a top-level conjunct `process.name == "x"` or
//! `process.name in ("x", ...)` (the exact, case-sensitive forms), only those names can match it.
//! Case-insensitive forms (`in~`, `:`, `like~`) and wildcards do not give a finite set, so a rule
//! without an exact conjunct needs every exec: the prefilter is then [`Prefilter::All`].
//! A rule gated on the strict analysis needs the names of the copy tools the analysis knows.

use std::collections::BTreeSet;
use std::fmt;

use super::eql::ast::{CmpOp, Expr, Literal};
use super::rulefile::Rule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefilter {
    /// Every exec must be reported.
    All,
    /// Only execs whose `process.name` is one of these can match a rule.
    Names(BTreeSet<String>),
}

impl Prefilter {
    pub fn from_rules(rules: &[Rule]) -> Prefilter {
        let mut names = BTreeSet::new();
        for rule in rules {
            // A rule over the strict analysis (`boot_copy.strict.into_boot == true`) needs the
            // copy tools' names; renamed copies are caught by executable size (see
            // `crate::strict::watched_sizes`).
            if crate::strict::gated(rule) {
                names.extend(crate::strict::NAMES.iter().map(|n| n.to_string()));
                continue;
            }
            match names_of(&rule.query.ast().condition) {
                Some(n) => names.extend(n),
                None => return Prefilter::All,
            }
        }
        Prefilter::Names(names)
    }

    /// Whether an exec with this `process.name` must be reported.
    pub fn admits(&self, name: &str) -> bool {
        match self {
            Prefilter::All => true,
            Prefilter::Names(names) => names.contains(name),
        }
    }
}

/// The names a condition restricts `process.name` to, if it does (the intersection over every
/// restricting conjunct).
pub(crate) fn names_of(condition: &Expr) -> Option<BTreeSet<String>> {
    let mut result: Option<BTreeSet<String>> = None;
    for conjunct in condition.conjuncts() {
        let names: Option<BTreeSet<String>> = match conjunct {
            Expr::Compare {
                op: CmpOp::Eq,
                left,
                right,
                ..
            } => match (&**left, &**right) {
                (
                    Expr::Field { field, .. },
                    Expr::Literal {
                        value: Literal::Str(s),
                        ..
                    },
                )
                | (
                    Expr::Literal {
                        value: Literal::Str(s),
                        ..
                    },
                    Expr::Field { field, .. },
                ) if field.name == "process.name" => Some([s.clone()].into()),
                _ => None,
            },
            Expr::In {
                expr,
                list,
                negated: false,
                insensitive: false,
                ..
            } => match &**expr {
                Expr::Field { field, .. } if field.name == "process.name" => list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal {
                            value: Literal::Str(s),
                            ..
                        } => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            },
            _ => None,
        };
        if let Some(names) = names {
            result = Some(match result {
                None => names,
                Some(prev) => prev.intersection(&names).cloned().collect(),
            });
        }
    }
    result
}

impl fmt::Display for Prefilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefilter::All => f.write_str("all execs"),
            Prefilter::Names(names) => {
                f.write_str("process.name in (")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n:?}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::eql::parser::parse;

    fn names(cond: &str) -> Option<Vec<String>> {
        names_of(&parse(&format!("process where {cond}")).unwrap().condition)
            .map(|s| s.into_iter().collect())
    }

    #[test]
    fn derivation() {
        let v = |s: &[&str]| Some(s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            names("process.name in (\"cp\", \"mv\") and a == 1"),
            v(&["cp", "mv"])
        );
        assert_eq!(
            names("a == 1 and (b == 2 and process.name == \"cp\")"),
            v(&["cp"])
        );
        assert_eq!(names("\"cp\" == process.name"), v(&["cp"]));
        assert_eq!(names("?process.name == \"cp\""), v(&["cp"]));
        assert_eq!(
            names("process.name in (\"cp\", \"mv\") and process.name == \"mv\""),
            v(&["mv"])
        );
        assert_eq!(names("process.name in~ (\"cp\")"), None);
        assert_eq!(names("process.name : \"cp\""), None);
        assert_eq!(names("process.name like \"cp\""), None);
        assert_eq!(names("process.name not in (\"cp\")"), None);
        assert_eq!(names("process.name == \"cp\" or a == 1"), None);
        assert_eq!(names("not process.name == \"cp\""), None);
        assert_eq!(names("process.name in (\"cp\", 1)"), None);
    }

    #[test]
    fn bundled_rule_needs_cp_and_mv() {
        let p = Prefilter::from_rules(&crate::rules::bundled());
        assert_eq!(p.to_string(), "process.name in (\"cp\", \"mv\")");
        assert!(p.admits("cp") && p.admits("mv") && !p.admits("CP") && !p.admits("busybox"));
        assert_eq!(
            Prefilter::from_rules(&[]),
            Prefilter::Names(BTreeSet::new())
        );
        assert_eq!(Prefilter::All.to_string(), "all execs");
    }
}

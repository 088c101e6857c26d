//! Which execs the kernel needs to report, derived from the loaded rules.
//!
//! A rule can only match events whose `process.name` satisfies each of its top-level conjuncts.
//! If a rule's condition has a top-level conjunct `process.name == "x"` or
//! `process.name in ("x", ...)` (the exact, case-sensitive forms), only those names can match it.
//! Case-insensitive forms (`in~`, `:`, `like~`) and wildcards do not give a finite set, so a rule
//! without an exact conjunct needs every exec: the prefilter is then [`Prefilter::All`].
//! A rule gated on a host analysis ([`AnalysisGate`]) needs the names the host gives for it.
//! A `file where` rule needs no exec.

use std::collections::BTreeSet;
use std::fmt;

use crate::eql::ast::{CmpOp, Expr, Literal};
use crate::rulefile::Rule;

/// The execs the kernel must report for a set of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefilter {
    /// Every exec must be reported.
    All,
    /// Only execs whose `process.name` is one of these can match a rule.
    Names(BTreeSet<String>),
}

/// A host analysis that gates rules: a rule with the top-level conjunct `FIELD == true` can only
/// match events the host's analysis marked with `FIELD`, and the host knows which process names
/// that analysis needs to see (it may watch more, e.g. by executable size, on its own side).
///
/// The engine cannot know those names from the rule; the host supplies them when it asks for the
/// [`Prefilter`]. boot-copy's strict companion rule is gated this way on
/// `boot_copy.strict.into_boot`, with the copy tools' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisGate {
    field: String,
    names: BTreeSet<String>,
}

impl AnalysisGate {
    /// The gate on `field == true`, whose analysis needs the execs named `names`.
    pub fn new<S: Into<String>>(field: &str, names: impl IntoIterator<Item = S>) -> AnalysisGate {
        AnalysisGate {
            field: field.to_owned(),
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether one of `rule`'s top-level conjuncts is `FIELD == true`.
    pub fn gates(&self, rule: &Rule) -> bool {
        rule.query.ast().condition.conjuncts().iter().any(|c| {
            matches!(c, Expr::Compare { op: CmpOp::Eq, left, right, .. }
                if matches!(&**left, Expr::Field { field, .. } if field.name == self.field)
                && matches!(&**right, Expr::Literal { value: Literal::Bool(true), .. }))
        })
    }

    /// The process names the analysis needs.
    pub fn names(&self) -> &BTreeSet<String> {
        &self.names
    }
}

impl Prefilter {
    /// What `rules` need, with the rules one of `gates` gates taking that gate's names.
    pub fn from_rules(rules: &[Rule], gates: &[AnalysisGate]) -> Prefilter {
        let mut names = BTreeSet::new();
        // File rules match file events, which the kernel decides by path on its own side.
        for rule in rules.iter().filter(|r| r.category() == "process") {
            if let Some(gate) = gates.iter().find(|g| g.gates(rule)) {
                names.extend(gate.names.iter().cloned());
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
fn names_of(condition: &Expr) -> Option<BTreeSet<String>> {
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
    use crate::eql::parser::parse;

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
        let p = Prefilter::from_rules(&crate::bundled(), &[]);
        assert_eq!(p.to_string(), "process.name in (\"cp\", \"mv\")");
        assert!(p.admits("cp") && p.admits("mv") && !p.admits("CP") && !p.admits("busybox"));
        assert_eq!(
            Prefilter::from_rules(&[], &[]),
            Prefilter::Names(BTreeSet::new())
        );
        assert_eq!(Prefilter::All.to_string(), "all execs");
    }

    #[test]
    fn gated_rules_take_the_names_of_their_gate() {
        let rules = [crate::bundled().remove(0), crate::bundled_strict()];
        let gate = AnalysisGate::new("boot_copy.strict.into_boot", ["cp", "install"]);
        assert!(gate.gates(&rules[1]) && !gate.gates(&rules[0]));
        assert!(!AnalysisGate::new("boot_copy.strict.tool", ["cp"]).gates(&rules[1]));
        assert_eq!(
            Prefilter::from_rules(&rules, &[gate]).to_string(),
            "process.name in (\"cp\", \"install\", \"mv\")"
        );
        // Without its gate, the strict rule names no process: every exec is needed.
        assert_eq!(Prefilter::from_rules(&rules, &[]), Prefilter::All);
    }
}

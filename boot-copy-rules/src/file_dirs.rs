//! Where the files a `file where` rule can match lie: the directories its path conditions name,
//! which the host's kernel side must watch.
//!
//! A rule can only match an event whose path satisfies each of its top-level conjuncts. A
//! conjunct restricting `file.path` (or a rename's source, `file.Ext.original.path`) to
//! literals (`==`, `in`, `in~`) or wildcard patterns (`like`, `like~`, `:`) each starting with
//! an absolute literal part confines the rule's files to the directories those parts end in:
//! the part up to its last `/` (`/etc/default/grub*` → `/etc/default`, `/etc/grub.d/*` →
//! `/etc/grub.d`). So does `boot_copy.file.tree == "DIR"` (boot-copy's name for the watched tree
//! an event's file is in) to `DIR`. An `or` of such conjuncts confines them to both sides'
//! directories. A rule without such a conjunct is not confined. Case-insensitive forms name the
//! directories as written.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::eql::ast::{CmpOp, Expr, Literal, LogicOp, MatchOp};
use crate::rulefile::Rule;

/// The fields whose values are the paths of the file an event is about.
const PATH_FIELDS: [&str; 2] = ["file.path", "file.Ext.original.path"];

/// boot-copy's field naming the watched directory an event's file is in.
const TREE_FIELD: &str = "boot_copy.file.tree";

/// The directories `rule`'s files must lie under, if its condition confines them (the first
/// confining conjunct's); `None` for a rule that is not a `file where` rule or is not confined.
pub fn file_dirs(rule: &Rule) -> Option<BTreeSet<PathBuf>> {
    if rule.category() != "file" {
        return None;
    }
    rule.query
        .ast()
        .condition
        .conjuncts()
        .into_iter()
        .find_map(confined)
}

/// The directories one conjunct confines paths to.
fn confined(e: &Expr) -> Option<BTreeSet<PathBuf>> {
    match e {
        Expr::Logic {
            op: LogicOp::Or,
            left,
            right,
            ..
        } => {
            let mut dirs = confined(left)?;
            dirs.extend(confined(right)?);
            Some(dirs)
        }
        Expr::Compare {
            op: CmpOp::Eq,
            left,
            right,
            ..
        } => match (&**left, &**right) {
            (field, Expr::Literal { value, .. }) | (Expr::Literal { value, .. }, field)
                if is_path(field) =>
            {
                literal_dirs([value], |s| s)
            }
            (Expr::Field { field, .. }, Expr::Literal { value, .. })
            | (Expr::Literal { value, .. }, Expr::Field { field, .. })
                if field.name == TREE_FIELD =>
            {
                match value {
                    Literal::Str(dir) if dir.starts_with('/') => Some([PathBuf::from(dir)].into()),
                    _ => None,
                }
            }
            _ => None,
        },
        Expr::In {
            expr,
            list,
            negated: false,
            ..
        } if is_path(expr) => literal_dirs(literals(list)?, |s| s),
        Expr::Match {
            expr, op, patterns, ..
        } if is_path(expr) && matches!(op, MatchOp::Like | MatchOp::LikeCi | MatchOp::Seq) => {
            literal_dirs(literals(patterns)?, |p| {
                &p[..p.find(['*', '?']).unwrap_or(p.len())]
            })
        }
        _ => None,
    }
}

fn is_path(e: &Expr) -> bool {
    matches!(e, Expr::Field { field, .. } if PATH_FIELDS.contains(&field.name.as_str()))
}

/// The items of a list, if every one is a literal.
fn literals(list: &[Expr]) -> Option<Vec<&Literal>> {
    list.iter()
        .map(|e| match e {
            Expr::Literal { value, .. } => Some(value),
            _ => None,
        })
        .collect()
}

/// The directory each string literal's fixed part (`fixed`) ends in; `None` if one is not a
/// string or its fixed part is not an absolute path.
fn literal_dirs<'a>(
    values: impl IntoIterator<Item = &'a Literal>,
    fixed: impl Fn(&str) -> &str,
) -> Option<BTreeSet<PathBuf>> {
    values
        .into_iter()
        .map(|v| match v {
            Literal::Str(s) => {
                let part = fixed(s);
                let slash = part.rfind('/')?;
                part.starts_with('/')
                    .then(|| PathBuf::from(if slash == 0 { "/" } else { &part[..slash] }))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_rule;

    fn dirs(condition: &str) -> Option<Vec<String>> {
        let text = format!(
            "[rule]\nrule_id = \"x\"\nname = \"x\"\ndescription = \"x\"\nrisk_score = 1\n\
             severity = \"low\"\ntype = \"eql\"\nlanguage = \"eql\"\n\
             query = '''file where {condition}'''\n"
        );
        let rule = parse_rule(&text, "t.toml".as_ref()).unwrap();
        file_dirs(&rule).map(|s| s.into_iter().map(|p| p.display().to_string()).collect())
    }

    fn v(dirs: &[&str]) -> Option<Vec<String>> {
        Some(dirs.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn patterns_give_the_directory_of_their_literal_part() {
        assert_eq!(
            dirs(r#"file.path like~ ("/etc/default/grub*", "/etc/grub.d/*", "/a/b?/c")"#),
            v(&["/a", "/etc/default", "/etc/grub.d"])
        );
        assert_eq!(dirs(r#"file.path : "/usr/lib/x/*""#), v(&["/usr/lib/x"]));
        assert_eq!(dirs(r#"file.path like "/*""#), v(&["/"]));
        assert_eq!(dirs(r#"file.path like "*/grub.cfg""#), None);
        assert_eq!(dirs(r#"file.path regex "/etc/.*""#), None);
    }

    #[test]
    fn literals_give_their_directory() {
        assert_eq!(dirs(r#"file.path == "/etc/x/y""#), v(&["/etc/x"]));
        assert_eq!(dirs(r#""/etc/x/y" == file.path"#), v(&["/etc/x"]));
        assert_eq!(
            dirs(r#"file.path in~ ("/etc/x/y", "/boot/z")"#),
            v(&["/boot", "/etc/x"])
        );
        assert_eq!(dirs(r#"file.path == null"#), None);
        assert_eq!(dirs(r#"file.path in ("/etc/x", "rel/y")"#), None);
        assert_eq!(dirs(r#"file.path not in ("/etc/x")"#), None);
        assert_eq!(dirs(r#"file.path != "/etc/x""#), None);
    }

    #[test]
    fn only_conjuncts_confine() {
        assert_eq!(
            dirs(r#"event.type == "creation" and (a == 1 and file.path like "/e/f/*")"#),
            v(&["/e/f"])
        );
        assert_eq!(
            dirs(r#"file.path like "/a/*" or file.Ext.original.path like "/b/*""#),
            v(&["/a", "/b"])
        );
        assert_eq!(dirs(r#"file.path like "/a/*" or a == 1"#), None);
        assert_eq!(
            dirs(r#"file.path like "/a/*" or boot_copy.file.tree == "/boot""#),
            v(&["/a", "/boot"])
        );
        assert_eq!(dirs(r#"not file.path like "/a/*""#), None);
        assert_eq!(dirs(r#"file.name == "grub.cfg""#), None);
    }
}

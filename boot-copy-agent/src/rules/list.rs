//! `boot-copy-agent rules`: the loaded rules, the kernel prefilter derived from them, and the
//! trees the kernel's file program watches.

use std::{
    io::{self, Write},
    path::PathBuf,
};

use crate::{context::env::EnvNames, sensor::roots};
use boot_copy_rules::RuleSet;

use crate::describe::fields::unfilled;

/// Writes one line per rule (id, version, name, exception items, file), then the fields rules
/// read that the sensor never fills, then the prefilter and the trees the kernel's file program
/// would watch here: `/boot` and those the file rules name.
pub fn list(rules: &RuleSet, env: &EnvNames, mut out: impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<38} {:>7}  {:<30} {:>10}  FILE",
        "RULE ID", "VERSION", "NAME", "EXCEPTIONS"
    )?;
    for (rule, exceptions) in rules.rules().iter().zip(rules.exception_counts()) {
        writeln!(
            out,
            "{:<38} {:>7}  {:<30} {:>10}  {}",
            rule.id,
            rule.version,
            rule.name,
            exceptions,
            rule.source.display()
        )?;
    }
    for line in blind_spots(rules, env) {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "prefilter: {}",
        rules.prefilter(&[crate::strict::gate()])
    )?;
    let (named, unconfined) = rules.file_dirs();
    for rule in unconfined {
        writeln!(
            out,
            "file rule {} ({}) names no directory: it sees only the watched trees",
            rule.id, rule.name
        )?;
    }
    let named: Vec<PathBuf> = named.into_iter().collect();
    let watched = roots::watched(&roots::dirs(&named)).map_err(io::Error::other)?;
    writeln!(out, "file events: {}", trees_line(&watched.trees))
}

/// "/boot and the mounts under it", "/boot, /etc and the mounts under them".
fn trees_line(trees: &[PathBuf]) -> String {
    let names: Vec<String> = trees.iter().map(|t| t.display().to_string()).collect();
    let them = if names.len() == 1 { "it" } else { "them" };
    format!("{} and the mounts under {them}", names.join(", "))
}

/// One line per rule reading fields the sensor never fills: conditions on them never hold and
/// exclusions on them never fire (`check`, `rules`, and `run` at start say so).
pub fn blind_spots(rules: &RuleSet, env: &EnvNames) -> Vec<String> {
    let mut lines = Vec::new();
    for rule in rules.rules() {
        let u = unfilled(rule, !env.is_empty());
        if u.is_empty() {
            continue;
        }
        let mut line = format!(
            "rule {} ({}) reads fields never filled:",
            rule.id, rule.name
        );
        if !u.missing.is_empty() {
            let named: Vec<String> = u
                .missing
                .iter()
                .map(|f| match crate::describe::fields::why(f) {
                    Some(why) => format!("{f} ({why})"),
                    None => f.to_string(),
                })
                .collect();
            line.push_str(&format!(" {}", named.join(", ")));
        }
        if !u.other_sources.is_empty() {
            let sep = if u.missing.is_empty() { "" } else { ";" };
            line.push_str(&format!(
                "{sep} of other data sources: {}",
                u.other_sources.join(", ")
            ));
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot_copy_rules::{Exceptions, load_ruleset, load_ruleset_with};

    fn listing(rules: &RuleSet) -> String {
        let mut out = Vec::new();
        list(rules, &EnvNames::default(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bundled_listing() {
        let text = listing(&load_ruleset(None, &Exceptions::default()).unwrap());
        let line = text.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "5bda8597-69a6-4b9e-87a2-69a7c963ea83",
                "2",
                "Boot",
                "File",
                "Copy",
                "0",
                "bundled:rules/boot-file-copy.toml"
            ]
        );
        assert!(
            text.ends_with(
                "prefilter: process.name in (\"cp\", \"mv\")\n\
                 file events: /boot and the mounts under it\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_strict_rule_needs_the_copy_tools() {
        let text = listing(
            &load_ruleset_with(
                None,
                boot_copy_rules::Bundled {
                    strict: true,
                    file: false,
                },
                &Exceptions::default(),
            )
            .unwrap(),
        );
        assert!(
            text.contains("bundled:rules/boot-file-copy-strict.toml"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "prefilter: process.name in (\"busybox\", \"coreutils\", \"cp\", \"install\", \"mv\", \"rsync\")\n\
                 file events: /boot and the mounts under it\n"
            ),
            "{text}"
        );
    }

    /// A file rule whose paths are not confined is named; one naming /boot's own files adds no
    /// tree.
    #[test]
    fn file_rules_and_their_trees() {
        let rule = |id: &str, condition: &str| {
            let text = format!(
                "[rule]\nrule_id = \"{id}\"\nname = \"n{id}\"\ndescription = \"d\"\n\
                 risk_score = 1\nseverity = \"low\"\ntype = \"eql\"\nlanguage = \"eql\"\n\
                 query = '''file where {condition}'''\n"
            );
            boot_copy_rules::parse_rule(&text, "t.toml".as_ref()).unwrap()
        };
        let rules = RuleSet::from_rules(vec![
            rule("a", r#"file.name == "grub.cfg""#),
            rule("b", r#"file.path like "/boot/grub/*""#),
        ]);
        let text = listing(&rules);
        assert!(
            text.contains("file rule a (na) names no directory: it sees only the watched trees\n"),
            "{text}"
        );
        assert!(
            text.ends_with("file events: /boot and the mounts under it\n"),
            "{text}"
        );
    }

    /// Elastic's Linux rules as vendored for the engine's tests: the ones reading the environment
    /// or auditd fields are named with those fields; the bundled rules read only filled fields.
    #[test]
    fn rules_reading_unfilled_fields_are_named() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../boot-copy-rules/tests/data/detection-rules"
        );
        let rules = load_ruleset(Some(dir.as_ref()), &Exceptions::default()).unwrap();
        let lines = blind_spots(&rules, &EnvNames::default());
        let named = |id: &str| lines.iter().any(|l| l.contains(id));
        let curl = lines
            .iter()
            .find(|l| l.contains("734239fe-eda8-48c0-bca8-9e3dafd81a88"))
            .expect("the curl rule reads the environment");
        assert!(
            curl.ends_with(
                "never filled: process.env_vars (the process's environment is not captured: set sensor.capture_env_vars to the variables the rule reads)"
            ),
            "{curl}"
        );
        // The session leaders are filled: the container rule reading one is not named.
        assert!(!named("5749282b-7524-4c9d-af9a-e2b3e814e5d4"), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("of other data sources: auditd.")),
            "{lines:#?}"
        );
        assert!(!named("5bda8597-69a6-4b9e-87a2-69a7c963ea83"), "{lines:#?}");
        assert!(listing(&rules).contains(curl.as_str()));
        let bundled = load_ruleset_with(
            None,
            boot_copy_rules::Bundled {
                strict: true,
                file: true,
            },
            &Exceptions::default(),
        )
        .unwrap();
        assert!(blind_spots(&bundled, &EnvNames::default()).is_empty());
        // With the environment captured, the curl rule reads only filled fields.
        let env = EnvNames::new(&[
            "HTTP_PROXY".into(),
            "HTTPS_PROXY".into(),
            "ALL_PROXY".into(),
        ]);
        let lines = blind_spots(&rules, &env);
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("734239fe-eda8-48c0-bca8-9e3dafd81a88")),
            "{lines:#?}"
        );
    }
}

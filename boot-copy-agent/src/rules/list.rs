//! `boot-copy-agent rules`: the loaded rules, the kernel prefilter derived from them, and the
//! trees the kernel's file program watches.

use std::io::{self, Write};

use crate::sensor::roots;
use boot_copy_rules::RuleSet;

/// Writes one line per rule (id, version, name, exception items, file), then the prefilter and
/// the watched trees (always `/boot` so far: not derived from the file rules yet).
pub fn list(rules: &RuleSet, mut out: impl Write) -> io::Result<()> {
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
    writeln!(
        out,
        "prefilter: {}",
        rules.prefilter(&[crate::strict::gate()])
    )?;
    writeln!(out, "file events: {} and the mounts under it", roots::BOOT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot_copy_rules::{Exceptions, load_ruleset, load_ruleset_with};

    fn listing(rules: &RuleSet) -> String {
        let mut out = Vec::new();
        list(rules, &mut out).unwrap();
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
}

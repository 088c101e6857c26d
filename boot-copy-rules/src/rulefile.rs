//! Rule files in the TOML format of Elastic's detection-rules repository.
//!
//! Read: `[metadata]` (only `version`, see below), `[rule]` with `rule_id`, `name`,
//! `description`, `version`, `severity`, `risk_score`, `author`, `license`, `references`,
//! `language`, `type`, `query`, and `[[rule.threat]]` with `framework`, `tactic`, `technique` and
//! `technique.subtechnique`. Every other key (`setup`, `note`, `tags`, `index`, `from`, ...) is
//! accepted and ignored, so files from the repository load unchanged.
//!
//! The version: detection-rules keeps versions outside the TOML files (in `version.lock.json`),
//! so a file may carry none. This loader takes `[rule] version`, else `[metadata] version`, else
//! **1**. If both are present they must agree.
//!
//! Only EQL rules (`language = "eql"`, `type = "eql"`) whose query is a single-event
//! `process where` query are accepted; anything else is refused with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::eql::{self, CompiledQuery, EqlError};

/// A MITRE ATT&CK mapping entry (`[[rule.threat]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threat {
    /// `MITRE ATT&CK`.
    pub framework: String,
    /// The tactic.
    pub tactic: Tactic,
    /// The techniques under the tactic (`technique` in the file).
    #[serde(default, rename = "technique", skip_serializing_if = "Vec::is_empty")]
    pub techniques: Vec<Technique>,
}

/// An ATT&CK tactic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tactic {
    /// The ATT&CK id (`TA0003`, `T1542`, `T1059.004`).
    pub id: String,
    /// The ATT&CK name.
    pub name: String,
    /// The ATT&CK page.
    pub reference: String,
}

/// An ATT&CK technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    /// The ATT&CK id (`TA0003`, `T1542`, `T1059.004`).
    pub id: String,
    /// The ATT&CK name.
    pub name: String,
    /// The ATT&CK page.
    pub reference: String,
    /// Its sub-techniques (`subtechnique` in the file).
    #[serde(
        default,
        rename = "subtechnique",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subtechniques: Vec<Subtechnique>,
}

/// An ATT&CK sub-technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtechnique {
    /// The ATT&CK id (`TA0003`, `T1542`, `T1059.004`).
    pub id: String,
    /// The ATT&CK name.
    pub name: String,
    /// The ATT&CK page.
    pub reference: String,
}

/// A loaded, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `rule_id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// The version (see the module docs for where it comes from).
    pub version: u32,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// 0 to 100.
    pub risk_score: u32,
    /// `author`.
    pub author: Vec<String>,
    /// `license`.
    pub license: Option<String>,
    /// `references`.
    pub references: Vec<String>,
    /// The ATT&CK mapping (`[[rule.threat]]`).
    pub threat: Vec<Threat>,
    /// The compiled `query`.
    pub query: CompiledQuery,
    /// The file the rule came from (`bundled:...` for the bundled rule).
    pub source: PathBuf,
}

impl Rule {
    /// The event category the query names (`process`, `file`).
    pub fn category(&self) -> &str {
        &self.query.ast().category
    }

    /// Every field the rule's query reads, `event.category` (implied by `process where`)
    /// included: what a host compares with the fields its sensor fills, to name a rule's blind
    /// spots. A field read only under `not`, or only in one branch of an `or`, is listed too.
    pub fn fields(&self) -> BTreeSet<&str> {
        self.query.fields()
    }

    /// The severity as a number, as Elastic's External Alerts rule maps it (21/47/73/99).
    pub fn severity_score(&self) -> u32 {
        match self.severity.as_str() {
            "low" => 21,
            "medium" => 47,
            "high" => 73,
            _ => 99,
        }
    }
}

/// A problem with a rule file: the file, the position when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// The rule file.
    pub file: PathBuf,
    /// The line in the file, when known.
    pub line: Option<u32>,
    /// The column in that line, when known.
    pub col: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
            (Some(l), None) => write!(f, ":{l}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl RuleError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        RuleError {
            file: file.to_owned(),
            line: None,
            col: None,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    metadata: Option<RawMetadata>,
    rule: Option<RawRule>,
}

#[derive(Deserialize)]
struct RawMetadata {
    version: Option<u32>,
}

#[derive(Deserialize)]
struct RawRule {
    rule_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    version: Option<u32>,
    severity: Option<String>,
    risk_score: Option<u32>,
    #[serde(default)]
    author: Vec<String>,
    license: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    language: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    query: Option<toml::Spanned<String>>,
    #[serde(default)]
    threat: Vec<Threat>,
}

/// The bundled rule file (Boot File Copy, version 2).
pub const BUNDLED_BOOT_FILE_COPY: &str = include_str!("../../rules/boot-file-copy.toml");

/// The bundled published rule: Boot File Copy, version 2.
pub fn bundled() -> Vec<Rule> {
    let path = Path::new("bundled:rules/boot-file-copy.toml");
    match parse_rule(BUNDLED_BOOT_FILE_COPY, path) {
        Ok(rule) => vec![rule],
        Err(errors) => panic!("the bundled rule is invalid (a test pins this): {errors:?}"),
    }
}

/// The bundled strict companion rule file (Boot File Copy (strict), over `boot_copy.strict.*`).
pub const BUNDLED_BOOT_FILE_COPY_STRICT: &str =
    include_str!("../../rules/boot-file-copy-strict.toml");

/// The bundled strict companion rule (matches only events the host's strict analysis marked with
/// `boot_copy.strict.into_boot`; see [`AnalysisGate`](crate::AnalysisGate)).
pub fn bundled_strict() -> Rule {
    let path = Path::new("bundled:rules/boot-file-copy-strict.toml");
    match parse_rule(BUNDLED_BOOT_FILE_COPY_STRICT, path) {
        Ok(rule) => rule,
        Err(errors) => panic!("the bundled strict rule is invalid (a test pins this): {errors:?}"),
    }
}

/// The bundled Boot File Write rule file (over file events).
pub const BUNDLED_BOOT_FILE_WRITE: &str = include_str!("../../rules/boot-file-write.toml");

/// The bundled Boot File Write rule: any write under /boot, by any program.
pub fn bundled_file() -> Rule {
    let path = Path::new("bundled:rules/boot-file-write.toml");
    match parse_rule(BUNDLED_BOOT_FILE_WRITE, path) {
        Ok(rule) => rule,
        Err(errors) => panic!("the bundled file rule is invalid (a test pins this): {errors:?}"),
    }
}

/// Loads one rule file, or every `*.toml` in a directory (in name order). Every problem in every
/// file is reported, not just the first.
pub fn load_rules(path: &Path) -> Result<Vec<Rule>, Vec<RuleError>> {
    let files = if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| vec![RuleError::new(path, format!("cannot read directory: {e}"))])?;
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let p = entry.path();
                    if p.extension().is_some_and(|x| x == "toml") && !p.is_dir() {
                        files.push(p);
                    }
                }
                Err(e) => errors.push(RuleError::new(path, format!("cannot read directory: {e}"))),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(RuleError::new(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse_rule(&text, &file) {
            Ok(rule) => {
                if let Some(first) = seen.get(&rule.id) {
                    errors.push(RuleError::new(
                        &file,
                        format!(
                            "rule_id {} is already defined by {}",
                            rule.id,
                            first.display()
                        ),
                    ));
                } else {
                    seen.insert(rule.id.clone(), file.clone());
                    rules.push(rule);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Parses one rule file's text; `path` is used in messages and kept as the rule's source.
pub fn parse_rule(text: &str, path: &Path) -> Result<Rule, Vec<RuleError>> {
    let at = |offset: usize, message: String| {
        let (line, col) = line_col(text, offset);
        RuleError {
            file: path.to_owned(),
            line: Some(line),
            col: Some(col),
            message,
        }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        vec![match e.span() {
            Some(span) => at(span.start, message),
            None => RuleError::new(path, message),
        }]
    })?;
    let Some(rule) = raw.rule else {
        return Err(vec![RuleError::new(
            path,
            "not a detection rule file: no [rule] table",
        )]);
    };
    let mut errors = Vec::new();
    let mut missing =
        |what: &str| errors.push(RuleError::new(path, format!("[rule] has no `{what}`")));
    let rule_id = rule.rule_id.clone().unwrap_or_else(|| {
        missing("rule_id");
        String::new()
    });
    let name = rule.name.clone().unwrap_or_else(|| {
        missing("name");
        String::new()
    });
    let description = rule.description.clone().unwrap_or_else(|| {
        missing("description");
        String::new()
    });
    let severity = rule.severity.clone().unwrap_or_else(|| {
        missing("severity");
        "low".to_owned()
    });
    let risk_score = rule.risk_score.unwrap_or_else(|| {
        missing("risk_score");
        0
    });
    let language = rule.language.as_deref();
    let kind = rule.kind.as_deref();
    let refused = kind != Some("eql") || language.is_some_and(|l| l != "eql");
    if refused {
        let what = match (kind, language) {
            (Some(k), _) if k != "eql" => format!("its type is `{k}`"),
            (_, Some(l)) if l != "eql" => format!("its language is `{l}`"),
            _ => "it has no `type`".to_owned(),
        };
        errors.push(RuleError::new(
            path,
            format!("refused: only EQL rules (type = \"eql\") are supported, and {what}"),
        ));
    }
    if !matches!(severity.as_str(), "low" | "medium" | "high" | "critical") {
        errors.push(RuleError::new(
            path,
            format!("severity `{severity}` is not one of low, medium, high, critical"),
        ));
    }
    if risk_score > 100 {
        errors.push(RuleError::new(
            path,
            format!("risk_score {risk_score} is not between 0 and 100"),
        ));
    }
    let version = match (rule.version, raw.metadata.and_then(|m| m.version)) {
        (Some(a), Some(b)) if a != b => {
            errors.push(RuleError::new(
                path,
                format!("[rule] version {a} and [metadata] version {b} disagree"),
            ));
            a
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => 1,
    };
    let query = match &rule.query {
        // A refused rule's query is in another language; do not report it twice.
        _ if refused => None,
        None => {
            errors.push(RuleError::new(path, "[rule] has no `query`"));
            None
        }
        Some(spanned) => match eql::compile(spanned.get_ref()) {
            Ok(q) => Some(q),
            Err(e) => {
                errors.push(query_error(text, path, spanned, &e));
                None
            }
        },
    };
    match query {
        Some(query) if errors.is_empty() => Ok(Rule {
            id: rule_id,
            name,
            description,
            version,
            severity,
            risk_score,
            author: rule.author,
            license: rule.license,
            references: rule.references,
            threat: rule.threat,
            query,
            source: path.to_owned(),
        }),
        _ => Err(errors),
    }
}

/// Places a query error in the file when the query's text maps character for character onto the
/// file (literal strings, or basic strings without escapes); otherwise gives the position within
/// the query and the line where the query starts.
fn query_error(
    text: &str,
    path: &Path,
    spanned: &toml::Spanned<String>,
    e: &EqlError,
) -> RuleError {
    let start = spanned.span().start;
    let raw = &text[start..spanned.span().end.min(text.len())];
    let (open, exact) = if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with("\"\"\"") {
        (3, !raw.contains('\\'))
    } else if raw.starts_with('\'') {
        (1, true)
    } else {
        (1, !raw.contains('\\'))
    };
    let mut content = start + open;
    if open == 3 {
        // TOML drops a newline right after the opening delimiter.
        if text[content..].starts_with("\r\n") {
            content += 2;
        } else if text[content..].starts_with('\n') {
            content += 1;
        }
    }
    let (qline, qcol) = line_col(text, content);
    if exact {
        let (line, col) = if e.line == 1 {
            (qline, qcol + e.col - 1)
        } else {
            (qline + e.line - 1, e.col)
        };
        RuleError {
            file: path.to_owned(),
            line: Some(line),
            col: Some(col),
            message: format!("query: {}", e.message),
        }
    } else {
        RuleError {
            file: path.to_owned(),
            line: Some(qline),
            col: None,
            message: format!("query {}:{}: {}", e.line, e.col, e.message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() as u32 + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boot File Write fires on any write under /boot (or in the watched tree through another
    /// path), not on /bootx, not for boot tooling as writer or parent, not for dpkg; and a file
    /// rule needs no exec from the kernel.
    #[test]
    fn boot_file_write_verdicts() {
        use crate::{Document, Prefilter, RuleSet};
        use serde_json::json;
        let rule = bundled_file();
        assert_eq!(rule.category(), "file");
        assert_eq!(
            Prefilter::from_rules(std::slice::from_ref(&rule), &[]),
            Prefilter::Names(Default::default())
        );
        let set = RuleSet::from_rules(vec![rule]);
        let event = |path: &str, tree: Option<&str>, name: &str, parent: &str| {
            Document::from_json(&json!({
                "host": {"os": {"type": "linux"}},
                "event": {"category": ["file"], "action": "creation"},
                "file": {"path": path},
                "boot_copy": {"file": {"tree": tree}},
                "process": {"name": name, "executable": format!("/usr/bin/{name}"),
                            "args": [name], "parent": {"name": parent, "args": [parent]}},
            }))
        };
        let fires = |doc: &Document| set.matching(doc).count() == 1;
        assert!(fires(&event("/boot/x", Some("/boot"), "dd", "bash")));
        assert!(fires(&event("/mnt/b/x", Some("/boot"), "dd", "bash")));
        assert!(!fires(&event("/bootx/y", None, "dd", "bash")));
        assert!(!fires(&event(
            "/boot/x",
            Some("/boot"),
            "dd",
            "update-initramfs"
        )));
        assert!(!fires(&event(
            "/boot/x",
            Some("/boot"),
            "grub-mkconfig",
            "bash"
        )));
        assert!(!fires(&event(
            "/boot/vmlinuz-6.1",
            Some("/boot"),
            "dpkg",
            "apt"
        )));
        // update-initramfs's builder touches the image to come.
        assert!(!fires(&event(
            "/boot/initrd.img-6.1.new",
            Some("/boot"),
            "touch",
            "mkinitramfs"
        )));
        // A tree a file rule named is not /boot.
        assert!(!fires(&event("/etc/default/x", Some("/etc"), "dd", "bash")));
    }

    const MINIMAL: &str = r#"
[rule]
rule_id = "x"
name = "X"
description = "d"
severity = "low"
risk_score = 21
type = "eql"
language = "eql"
query = '''
process where
  process.name == "cp" and frob(process.args)
'''
"#;

    #[test]
    fn bundled_rule_is_boot_file_copy_v2() {
        let rules = bundled();
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(r.id, "5bda8597-69a6-4b9e-87a2-69a7c963ea83");
        assert_eq!(r.name, "Boot File Copy");
        assert_eq!(r.version, 2);
        assert_eq!(r.severity, "low");
        assert_eq!(r.severity_score(), 21);
        assert_eq!(r.risk_score, 21);
        assert_eq!(r.author, vec!["Elastic"]);
        assert_eq!(r.license.as_deref(), Some("Elastic License v2"));
        let tactics: Vec<_> = r.threat.iter().map(|t| t.tactic.id.as_str()).collect();
        assert_eq!(tactics, ["TA0003", "TA0002", "TA0005"]);
        let techniques: Vec<_> = r
            .threat
            .iter()
            .flat_map(|t| &t.techniques)
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(techniques, ["T1542", "T1543", "T1574", "T1059"]);
        assert_eq!(r.threat[1].techniques[0].subtechniques[0].id, "T1059.004");
    }

    #[test]
    fn bundled_query_is_the_published_query() {
        let published = include_str!("../../rules/boot-file-copy.toml");
        let q = bundled().remove(0).query;
        // Same text as Elastic's published version 2 (whitespace aside).
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(norm(published).contains(&norm(q.source())));
        assert!(
            norm(q.source())
                .starts_with("process where host.os.type == \"linux\" and event.type == \"start\"")
        );
    }

    #[test]
    fn query_errors_point_into_the_file() {
        let e = parse_rule(MINIMAL, Path::new("r.toml")).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].col), (Some(12), Some(28)), "{}", e[0]);
        assert!(
            e[0].to_string()
                .starts_with("r.toml:12:28: query: unknown function `frob`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn refusals_name_the_reason() {
        let kuery = MINIMAL
            .replace("type = \"eql\"", "type = \"query\"")
            .replace("language = \"eql\"", "language = \"kuery\"");
        let e = parse_rule(&kuery, Path::new("k.toml")).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.message.contains("only EQL rules") && e.message.contains("`query`")),
            "{e:?}"
        );
        let file = MINIMAL.replace(
            "process where\n  process.name == \"cp\" and frob(process.args)",
            "network where true",
        );
        let e = parse_rule(&file, Path::new("f.toml")).unwrap_err();
        assert!(e[0].message.contains("event category `network`"), "{e:?}");
        let seq = MINIMAL.replace(
            "process where\n  process.name == \"cp\" and frob(process.args)",
            "sequence [process where true] [process where true]",
        );
        let e = parse_rule(&seq, Path::new("s.toml")).unwrap_err();
        assert!(e[0].message.contains("`sequence`"), "{e:?}");
        let bad = "[rule]\nname = 3\n";
        let e = parse_rule(bad, Path::new("b.toml")).unwrap_err();
        assert_eq!(e[0].line, Some(2), "{e:?}");
        let e = parse_rule("[metadata]\n", Path::new("m.toml")).unwrap_err();
        assert!(e[0].message.contains("no [rule]"));
    }

    #[test]
    fn every_missing_field_is_reported() {
        let e = parse_rule("[rule]\ntype = \"eql\"\n", Path::new("e.toml")).unwrap_err();
        let all: Vec<_> = e.iter().map(|e| e.message.as_str()).collect();
        for f in [
            "rule_id",
            "name",
            "description",
            "severity",
            "risk_score",
            "query",
        ] {
            assert!(
                all.iter().any(|m| m.contains(&format!("`{f}`"))),
                "{f}: {all:?}"
            );
        }
    }

    #[test]
    fn version_defaults_and_sources() {
        let ok = MINIMAL.replace(" and frob(process.args)", "");
        assert_eq!(parse_rule(&ok, Path::new("a")).unwrap().version, 1);
        let meta = format!("[metadata]\nversion = 5\n{ok}");
        assert_eq!(parse_rule(&meta, Path::new("a")).unwrap().version, 5);
        let both = meta.replace("[rule]\n", "[rule]\nversion = 6\n");
        assert!(
            parse_rule(&both, Path::new("a")).unwrap_err()[0]
                .message
                .contains("disagree")
        );
    }
}

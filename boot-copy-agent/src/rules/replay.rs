//! `replay`: recorded ECS process events (NDJSON, nested objects or dotted keys) through the
//! rules, one alert per line out.
//!
//! Bad lines — not UTF-8, not JSON, not an object, wrong types for the process fields the rules
//! read, longer than [`MAX_LINE`] — are reported with their line number and skipped; the run
//! continues and [`ReplayStats::skipped`] counts them (the CLI exits non-zero if any were).
//! Blank lines are ignored.

use std::io::{self, BufRead, Write};

use serde_json::{Map, Value};

use crate::alert::Alerts;
use boot_copy_rules::{Document, RuleSet};

/// The longest line accepted (1 MiB).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Lines read (including blank and skipped ones).
    pub lines: u64,
    /// Events evaluated.
    pub events: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Bad lines skipped.
    pub skipped: u64,
}

/// Replays `input` through `rules`, writing alerts to `out` and reporting bad lines on stderr.
pub fn replay(input: impl BufRead, rules: &RuleSet, out: impl Write) -> io::Result<ReplayStats> {
    replay_with_diagnostics(input, rules, out, io::stderr().lock())
}

/// [`replay`] with bad-line reports written to `diag`.
pub fn replay_with_diagnostics(
    mut input: impl BufRead,
    rules: &RuleSet,
    mut out: impl Write,
    mut diag: impl Write,
) -> io::Result<ReplayStats> {
    let mut stats = ReplayStats::default();
    let alerts = Alerts::new(rules);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (read, too_long) = read_line_capped(&mut input, &mut buf, MAX_LINE)?;
        if read == 0 {
            break;
        }
        stats.lines += 1;
        let n = stats.lines;
        if too_long {
            stats.skipped += 1;
            writeln!(diag, "line {n}: skipped: longer than {MAX_LINE} bytes")?;
            continue;
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => s.trim(),
            Err(e) => {
                stats.skipped += 1;
                writeln!(diag, "line {n}: skipped: not UTF-8 ({e})")?;
                continue;
            }
        };
        if line.is_empty() {
            continue;
        }
        let (event, doc) = match decode_line(line) {
            Ok(decoded) => decoded,
            Err(why) => {
                stats.skipped += 1;
                writeln!(diag, "line {n}: skipped: {why}")?;
                continue;
            }
        };
        stats.events += 1;
        for (i, rule) in rules.matching(&doc) {
            let alert = alerts.build(i, rule, &event);
            serde_json::to_writer(&mut out, &alert)?;
            out.write_all(b"\n")?;
            stats.alerts += 1;
        }
    }
    out.flush()?;
    Ok(stats)
}

/// Decodes one line into the JSON object and the document the rules see, checking the types of
/// the process fields rules read. Public so that fuzzing can reach it.
pub fn decode_line(line: &str) -> Result<(Map<String, Value>, Document), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!("not a JSON object but {}", kind(&value)));
    };
    let doc = Document::from_map(&map);
    check_types(&doc)?;
    Ok((map, doc))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// ECS keyword fields of a process event that must hold strings.
const STRING_FIELDS: &[&str] = &[
    "event.category",
    "event.type",
    "event.action",
    "host.os.type",
    "process.name",
    "process.executable",
    "process.args",
    "process.command_line",
    "process.working_directory",
    "process.entity_id",
    "process.parent.name",
    "process.parent.executable",
    "process.parent.args",
    "process.parent.command_line",
    "process.parent.working_directory",
    "process.parent.entity_id",
];

/// ECS long fields of a process event.
const INTEGER_FIELDS: &[&str] = &[
    "process.pid",
    "process.args_count",
    "process.parent.pid",
    "process.parent.args_count",
];

fn check_types(doc: &Document) -> Result<(), String> {
    use boot_copy_rules::Value as V;
    for field in STRING_FIELDS {
        if let Some(v) = doc.get(field)
            && let Some(bad) = v
                .elements()
                .iter()
                .find(|e| !matches!(e, V::Str(_) | V::Null))
        {
            return Err(format!(
                "`{field}` must be a string or strings, found {bad:?}"
            ));
        }
    }
    for field in INTEGER_FIELDS {
        if let Some(v) = doc.get(field)
            && let Some(bad) = v
                .elements()
                .iter()
                .find(|e| !matches!(e, V::Int(_) | V::Null))
        {
            return Err(format!("`{field}` must be an integer, found {bad:?}"));
        }
    }
    Ok(())
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap` bytes: a longer line is
/// consumed to its end and reported as too long. Returns (bytes consumed, too long).
fn read_line_capped(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((consumed, too_long));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let data = if done {
            &chunk[..take - 1]
        } else {
            &chunk[..take]
        };
        if !too_long {
            if buf.len() + data.len() > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(data);
            }
        }
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, too_long));
        }
    }
}

/// The test suite's ECS 9.4.0 field list check (`tests/data/ecs_fields.tsv`).
#[cfg(test)]
#[path = "../../../tests/support/ecs_schema.rs"]
mod ecs_schema;

#[cfg(test)]
mod tests {
    use super::*;
    use boot_copy_rules::bundled;
    use serde_json::json;

    fn run(input: &str) -> (ReplayStats, Vec<Value>, String) {
        let rules = RuleSet::from_rules(bundled());
        let mut out = Vec::new();
        let mut diag = Vec::new();
        let stats = replay_with_diagnostics(input.as_bytes(), &rules, &mut out, &mut diag).unwrap();
        let alerts = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (stats, alerts, String::from_utf8(diag).unwrap())
    }

    fn hit() -> Value {
        json!({
            "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"},
            "host": {"os": {"type": "linux"}},
            "process": {"name": "cp", "executable": "/usr/bin/cp", "args": ["cp", "x", "/boot/y"],
                        "parent": {"name": "bash", "executable": "/usr/bin/bash"}},
        })
    }

    /// A file event as `events` prints it goes through the file rule like an exec event
    /// through the exec rules, and its alert names the file.
    #[test]
    fn file_events_replay_through_file_rules() {
        let rules = RuleSet::from_rules(vec![boot_copy_rules::bundled_file()]);
        let event = json!({
            "event": {"category": ["file"], "type": ["creation"], "action": "creation", "kind": "event"},
            "host": {"os": {"type": "linux"}},
            "file": {"path": "/boot/x", "name": "x"},
            "boot_copy": {"file": {"tree": "/boot"}},
            "process": {"name": "dd", "executable": "/usr/bin/dd", "args": ["dd", "of=/boot/x"],
                        "parent": {"name": "bash", "executable": "/usr/bin/bash"}},
        });
        let mut out = Vec::new();
        let input = format!("{event}\n{}\n", hit());
        let stats =
            replay_with_diagnostics(input.as_bytes(), &rules, &mut out, Vec::new()).unwrap();
        assert_eq!((stats.events, stats.alerts), (2, 1));
        let alert: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(alert["file"]["path"], "/boot/x");
        assert_eq!(alert["rule"]["name"], "Boot File Write");
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let long = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_LINE));
        let input = format!(
            "{}\n\nnot json\n[1]\n{{\"process\": {{\"name\": 5}}}}\n{long}\n{}\n",
            hit(),
            hit()
        );
        let (stats, alerts, diag) = run(&input);
        assert_eq!(
            stats,
            ReplayStats {
                lines: 7,
                events: 2,
                alerts: 2,
                skipped: 4
            }
        );
        assert_eq!(alerts.len(), 2);
        let lines: Vec<&str> = diag.lines().collect();
        assert!(lines[0].starts_with("line 3: skipped: not JSON"), "{diag}");
        assert!(
            lines[1].starts_with("line 4: skipped: not a JSON object but an array"),
            "{diag}"
        );
        assert!(
            lines[2].starts_with("line 5: skipped: `process.name` must be a string"),
            "{diag}"
        );
        assert!(
            lines[3].starts_with("line 6: skipped: longer than"),
            "{diag}"
        );
    }

    #[test]
    fn dotted_keys_and_no_trailing_newline() {
        let dotted = json!({
            "event.category": "process", "event.type": "start", "event.action": "exec",
            "host.os.type": "linux", "process.name": "mv", "process.args": ["mv", "a", "/BOOT/b"],
            "process.parent.executable": "/usr/bin/bash",
        });
        let (stats, alerts, _) = run(&dotted.to_string());
        assert_eq!(stats.alerts, 1);
        assert_eq!(alerts[0]["process.args"], json!(["mv", "a", "/BOOT/b"]));
        assert_eq!(alerts[0]["event"]["kind"], "alert");
    }

    fn data(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data")
            .join(name)
    }

    /// Recorded Defend events: each alert carries its event's process, host, user and group
    /// fields unchanged, is an ECS document, and is as recorded in the expected file.
    #[test]
    fn recorded_defend_events_replay_to_the_expected_alerts() {
        let input = std::fs::read_to_string(data("defend_boot_copy.ndjson")).unwrap();
        let (stats, got, diag) = run(&input);
        assert_eq!(
            stats,
            ReplayStats {
                lines: 15,
                events: 15,
                alerts: 6,
                skipped: 0
            },
            "{diag}"
        );
        let entity = |a: &Value| {
            a.pointer("/process/entity_id")
                .or_else(|| a.get("process.entity_id"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        };
        let sources: Vec<Value> = input
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for alert in &got {
            let src = sources.iter().find(|s| entity(s) == entity(alert)).unwrap();
            for (k, v) in src.as_object().unwrap() {
                let top = k.split('.').next().unwrap();
                if ["process", "host", "user", "group", "@timestamp"].contains(&top) {
                    assert_eq!(&alert[k], v, "{k}");
                } else {
                    assert!(
                        alert.get(k).is_none() || top == "event",
                        "{k} should not be carried"
                    );
                }
            }
        }
        let schema = super::ecs_schema::Schema::load();
        for alert in &got {
            assert_eq!(schema.violations(alert), Vec::<String>::new(), "{alert}");
        }
        let expected: Vec<Value> = std::fs::read_to_string(data("defend_boot_copy.alerts.ndjson"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, expected);
    }
}

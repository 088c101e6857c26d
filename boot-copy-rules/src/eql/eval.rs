//! Evaluation of a compiled condition against a [`Document`], with Elasticsearch's semantics:
//!
//! - A test on a field is true if **any** of its values passes; a missing field (or `null`, or
//!   `[]`) has no values, so every positive test on it is false.
//! - Negation is plain boolean negation (two-valued logic): `f != "x"` and `not f in (...)` are
//!   true when `f` is missing, exactly as Elasticsearch's negated term queries are.
//! - `==`/`in` are exact and case-sensitive; `in~`, `like~`, `:` and the `~` functions fold ASCII
//!   letters only. In `like`, `like~`, `:` and `wildcard()` patterns a backslash is an ordinary
//!   character, as in Elasticsearch (only the string literal's own escapes apply).
//! - Values are matched in full whatever their length (Elasticsearch's keyword mapping ignores
//!   values over 1024 characters, so they never match there; this engine is stricter).
//! - Mixed types follow Elasticsearch's coercion: a number constant against a string value
//!   compares with the number's text (`21` matches `"21"`), a string constant against a number
//!   value compares numerically if the string is a number.

use std::cmp::Ordering;

use super::ast::CmpOp;
use super::compile::{Lit, Node, Operand, PairOp, Test};
use super::wildcard::bytes_eq;
use crate::document::{Document, Value};

impl Node {
    pub(crate) fn eval(&self, doc: &Document) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::All(items) => items.iter().all(|n| n.eval(doc)),
            Node::Any(items) => items.iter().any(|n| n.eval(doc)),
            Node::Not(inner) => !inner.eval(doc),
            Node::Test(field, test) => match doc.get(field) {
                None => false,
                Some(value) => value.elements().iter().any(|v| test.holds(v)),
            },
            Node::Pair(left, right, op) => {
                let (Some(s), Some(p)) = (least_str(doc, left), least_str(doc, right)) else {
                    return false;
                };
                match op {
                    PairOp::StartsWith => s.starts_with(p),
                    PairOp::EndsWith => s.ends_with(p),
                    PairOp::Contains => s.contains(p),
                }
            }
        }
    }
}

/// The field's first doc value as a script sees it: keyword doc values are sorted, so the least
/// string value (UTF-8 byte order, Lucene's).
fn least_str<'a>(doc: &'a Document, field: &str) -> Option<&'a str> {
    doc.get(field)?.elements().iter().filter_map(str_of).min()
}

impl Test {
    #[inline]
    fn holds(&self, v: &Value) -> bool {
        if matches!(v, Value::Null | Value::Array(_)) {
            return false;
        }
        match self {
            Test::Exists => true,
            Test::Eq(op) => equals(v, op, false),
            Test::In(ops) => ops.iter().any(|op| equals(v, op, false)),
            Test::InCi(ops) => ops.iter().any(|op| equals(v, op, true)),
            Test::Range(cmp, op) => compare(v, op).is_some_and(|ord| range_holds(*cmp, ord)),
            Test::Like(patterns) => match v {
                Value::Str(s) => patterns.iter().any(|p| p.is_match(s)),
                _ => false,
            },
            Test::Regex(patterns) => {
                str_of(v).is_some_and(|s| patterns.iter().any(|p| p.is_match(s)))
            }
            Test::StartsWith(p, ci) => str_of(v).is_some_and(|s| {
                s.len() >= p.len() && bytes_eq(&s.as_bytes()[..p.len()], p.as_bytes(), *ci)
            }),
            Test::EndsWith(p, ci) => str_of(v).is_some_and(|s| {
                s.len() >= p.len()
                    && bytes_eq(&s.as_bytes()[s.len() - p.len()..], p.as_bytes(), *ci)
            }),
            Test::Contains(p, ci) => {
                str_of(v).is_some_and(|s| contains(s.as_bytes(), p.as_bytes(), *ci))
            }
            Test::Length(cmp, n) => str_of(v).is_some_and(|s| {
                let len = s.encode_utf16().count() as f64;
                len.partial_cmp(n).is_some_and(|ord| range_holds(*cmp, ord))
            }),
        }
    }
}

fn str_of(v: &Value) -> Option<&str> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn contains(hay: &[u8], needle: &[u8], ci: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    hay.windows(needle.len()).any(|w| bytes_eq(w, needle, ci))
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn equals(v: &Value, op: &Operand, ci: bool) -> bool {
    match v {
        Value::Str(s) => match op.lit {
            Lit::Str if ci => s.eq_ignore_ascii_case(&op.text),
            // A keyword field compares the constant's text.
            _ => **s == *op.text,
        },
        Value::Int(_) | Value::Float(_) => match op.lit {
            Lit::Bool(_) => false,
            _ => op.num.is_some_and(|n| number_of(v) == Some(n)),
        },
        Value::Bool(b) => match op.lit {
            Lit::Bool(x) => *b == x,
            Lit::Str => *op.text == *(if *b { "true" } else { "false" }),
            Lit::Num => false,
        },
        Value::Null | Value::Array(_) => false,
    }
}

fn compare(v: &Value, op: &Operand) -> Option<Ordering> {
    match v {
        // Keyword range queries compare text.
        Value::Str(s) => Some(s.as_str().cmp(&*op.text)),
        Value::Int(_) | Value::Float(_) => number_of(v)?.partial_cmp(&op.num?),
        _ => None,
    }
}

fn range_holds(cmp: CmpOp, ord: Ordering) -> bool {
    match cmp {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Neq => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Lte => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Gte => ord != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use crate::document::Document;
    use crate::eql::compile;
    use serde_json::json;

    /// A process event with the given extra fields.
    fn doc(fields: serde_json::Value) -> Document {
        let mut d = Document::from_json(&fields);
        d.insert("event.category", vec!["process"]);
        d
    }

    fn check(rows: &[(&str, serde_json::Value, bool)]) {
        for (cond, fields, want) in rows {
            let q =
                compile(&format!("process where {cond}")).unwrap_or_else(|e| panic!("{cond}: {e}"));
            assert_eq!(q.matches(&doc(fields.clone())), *want, "{cond} on {fields}");
        }
    }

    #[test]
    fn equality_is_exact_and_case_sensitive() {
        check(&[
            ("a == \"cp\"", json!({"a": "cp"}), true),
            ("a == \"cp\"", json!({"a": "CP"}), false),
            ("a == \"c*\"", json!({"a": "cp"}), false),
            ("a == \"c*\"", json!({"a": "c*"}), true),
            ("a == \"cp\"", json!({"a": "cp "}), false),
            ("a == \"\"", json!({"a": ""}), true),
            ("a == \"\"", json!({}), false),
            ("a in (\"cp\", \"mv\")", json!({"a": "mv"}), true),
            ("a in (\"cp\", \"mv\")", json!({"a": "MV"}), false),
            ("a in~ (\"cp\", \"mv\")", json!({"a": "MV"}), true),
            ("a in~ (\"é\")", json!({"a": "É"}), false),
            ("a not in (\"cp\", \"mv\")", json!({"a": "rm"}), true),
            ("a not in (\"cp\", \"mv\")", json!({"a": "cp"}), false),
            ("a not in (\"cp\", \"mv\")", json!({}), true),
            ("a not in~ (\"cp\")", json!({"a": "CP"}), false),
        ]);
    }

    #[test]
    fn not_equal_and_null() {
        check(&[
            ("a != \"x\"", json!({"a": "y"}), true),
            ("a != \"x\"", json!({"a": "x"}), false),
            ("a != \"x\"", json!({}), true),
            ("a != \"x\"", json!({"a": null}), true),
            ("a != \"x\"", json!({"a": ["x", "y"]}), false),
            ("a != null", json!({"a": ""}), true),
            ("a != null", json!({"a": []}), false),
            ("a != null", json!({"a": [null]}), false),
            ("a != null", json!({"a": null}), false),
            ("a != null", json!({}), false),
            ("a != null", json!({"a": 0}), true),
            ("a != null", json!({"a": false}), true),
            ("a == null", json!({}), true),
            ("a == null", json!({"a": "x"}), false),
            ("null != a", json!({"a": "x"}), true),
            ("?a != null", json!({"a": "x"}), true),
            ("?a == \"x\"", json!({}), false),
            ("not ?a == \"x\"", json!({}), true),
        ]);
    }

    #[test]
    fn missing_fields_use_two_valued_logic() {
        check(&[
            ("a == \"x\"", json!({}), false),
            ("not a == \"x\"", json!({}), true),
            ("not (a like~ \"x*\" or b in (\"y\"))", json!({}), true),
            (
                "not (a like~ \"x*\" or b in (\"y\"))",
                json!({"b": "y"}),
                false,
            ),
            ("a < 5", json!({}), false),
            ("not a < 5", json!({}), true),
            ("startsWith(a, \"x\")", json!({}), false),
            ("not startsWith(a, \"x\")", json!({}), true),
        ]);
    }

    #[test]
    fn wildcards() {
        check(&[
            ("a like \"/boot/*\"", json!({"a": "/boot/x"}), true),
            ("a like \"/boot/*\"", json!({"a": "/BOOT/x"}), false),
            ("a like~ \"/boot/*\"", json!({"a": "/BOOT/x"}), true),
            ("a : \"/boot/*\"", json!({"a": "/BOOT/x"}), true),
            ("a : \"cp\"", json!({"a": "CP"}), true),
            ("a : (\"x\", \"/boot/*\")", json!({"a": "/Boot/y"}), true),
            ("a like~ (\"a\", \"b\")", json!({"a": "c"}), false),
            ("a like \"a?c\"", json!({"a": "abc"}), true),
            ("a like \"a?c\"", json!({"a": "ac"}), false),
            // A backslash in a pattern is an ordinary character (after the string's escapes).
            ("a like \"a\\\\*\"", json!({"a": "a\\b"}), true),
            ("a like \"a\\\\*\"", json!({"a": "a*"}), false),
            ("a like \"\"\"a\\*\"\"\"", json!({"a": "a\\*"}), true),
            ("a like \"\"\"a\\*\"\"\"", json!({"a": "a*"}), false),
            ("a : \"*\\\\x*\"", json!({"a": "a\\xb"}), true),
            ("a : \"*\\\\x*\"", json!({"a": "axb"}), false),
            ("wildcard(a, \"*\\\\x*\")", json!({"a": "axb"}), false),
            ("wildcard(a, \"*\\\\x*\")", json!({"a": "a\\xb"}), true),
            ("a like~ \"é*\"", json!({"a": "É"}), false),
            ("a like~ \"k\"", json!({"a": "\u{212a}"}), false),
            (
                "a like \"/boot/*\"",
                json!({"a": ["cp", "x", "/boot/y"]}),
                true,
            ),
            (
                "a like \"/boot/*\"",
                json!({"a": ["cp", "x", "/boot"]}),
                false,
            ),
            ("a like \"1*\"", json!({"a": 12}), false),
        ]);
    }

    #[test]
    fn arrays_match_any_element() {
        check(&[
            ("a == \"start\"", json!({"a": ["end", "start"]}), true),
            ("a == \"start\"", json!({"a": ["end"]}), false),
            ("a in (\"x\", \"y\")", json!({"a": ["z", "y"]}), true),
            ("a != \"start\"", json!({"a": ["end", "start"]}), false),
            ("a == \"x\" and a == \"y\"", json!({"a": ["x", "y"]}), true),
            ("a like~ \"x\"", json!({"a": ["X", "y"]}), true),
        ]);
    }

    #[test]
    fn numbers_booleans_and_ranges() {
        check(&[
            ("a == 21", json!({"a": 21}), true),
            ("a == 21", json!({"a": 21.0}), true),
            ("a == 21", json!({"a": "21"}), true),
            ("a == \"21\"", json!({"a": 21}), true),
            ("a == 21", json!({"a": "021"}), false),
            ("a > 5", json!({"a": 7}), true),
            ("a > 5", json!({"a": 5}), false),
            ("a >= 5", json!({"a": 5}), true),
            ("5 < a", json!({"a": 7}), true),
            ("a < -1", json!({"a": -2}), true),
            ("a <= 2.5", json!({"a": 2.5}), true),
            ("a < \"b\"", json!({"a": "a"}), true),
            ("a < \"b\"", json!({"a": "c"}), false),
            ("a == true", json!({"a": true}), true),
            ("a == true", json!({"a": false}), false),
            ("a", json!({"a": true}), true),
            ("not a", json!({}), true),
            ("a == false", json!({"a": "false"}), true),
            ("true", json!({}), true),
            ("false or a == 1", json!({"a": 1}), true),
        ]);
    }

    #[test]
    fn functions() {
        check(&[
            ("startsWith(a, \"/bo\")", json!({"a": "/boot"}), true),
            ("startsWith(a, \"/BO\")", json!({"a": "/boot"}), false),
            ("startsWith~(a, \"/BO\")", json!({"a": "/boot"}), true),
            ("endsWith(a, \".sh\")", json!({"a": "x.sh"}), true),
            ("endsWith(a, \".SH\")", json!({"a": "x.sh"}), false),
            ("endsWith~(a, \".SH\")", json!({"a": "x.sh"}), true),
            ("stringContains(a, \"oo\")", json!({"a": "/boot"}), true),
            ("stringContains(a, \"OO\")", json!({"a": "/boot"}), false),
            ("stringContains~(a, \"OO\")", json!({"a": "/boot"}), true),
            ("stringContains(a, \"\")", json!({"a": ""}), true),
            ("startsWith(a, \"x\")", json!({"a": ["y", "xz"]}), true),
            (
                "wildcard(a, \"*.sh\", \"*.py\")",
                json!({"a": "x.py"}),
                true,
            ),
            ("wildcard(a, \"*.sh\")", json!({"a": "x.SH"}), false),
            ("wildcard~(a, \"*.sh\")", json!({"a": "x.SH"}), true),
            ("length(a) == 3", json!({"a": "abc"}), true),
            ("length(a) > 3", json!({"a": "abc"}), false),
            ("length(a) != 3", json!({}), true),
            ("length(a) == 2", json!({"a": "😀"}), true),
            ("startsWith(a, \"x\") == false", json!({"a": "y"}), true),
        ]);
    }

    #[test]
    fn regex_is_lucene_over_the_whole_value() {
        check(&[
            ("a regex \"b\"", json!({"a": "abc"}), false),
            ("a regex \".*b.*\"", json!({"a": "abc"}), true),
            ("a regex \"^a.*\"", json!({"a": "abc"}), false),
            ("a regex (\"x\", \"a.c\")", json!({"a": ["q", "abc"]}), true),
            ("a regex \"abc\"", json!({"a": "ABC"}), false),
            ("a regex~ \"abc\"", json!({"a": "ABC"}), true),
            ("a regex~ \"[a-c]+\"", json!({"a": "ABC"}), false),
            ("a regex \"1.*\"", json!({"a": 12}), false),
            ("not a regex \"x\"", json!({}), true),
        ]);
    }

    #[test]
    fn string_functions_with_a_field_argument() {
        check(&[
            (
                "startsWith(a, b)",
                json!({"a": "/bin/sh", "b": "/bin"}),
                true,
            ),
            (
                "startsWith(a, b)",
                json!({"a": "/bin/sh", "b": "/BIN"}),
                false,
            ),
            ("startsWith(a, b)", json!({"a": "/bin/sh"}), false),
            ("not startsWith(a, b)", json!({"a": "/bin/sh"}), true),
            ("endsWith(a, b)", json!({"a": "/bin/sh", "b": "sh"}), true),
            (
                "stringContains(a, b)",
                json!({"a": "/bin/sh", "b": "in/"}),
                true,
            ),
            ("startsWith(a, b)", json!({"a": "x", "b": ""}), true),
            // A script sees each field's first (least) doc value.
            (
                "startsWith(a, b)",
                json!({"a": ["zz", "ab"], "b": "a"}),
                true,
            ),
            (
                "startsWith(a, b)",
                json!({"a": ["zz", "ab"], "b": "z"}),
                false,
            ),
            (
                "startsWith(a, b)",
                json!({"a": "ab", "b": ["b", "a"]}),
                true,
            ),
        ]);
    }

    #[test]
    fn long_values_are_matched_in_full() {
        let long = format!("/boot/{}", "x".repeat(4000));
        check(&[
            ("a like \"/boot/*\"", json!({"a": long.clone()}), true),
            (
                &format!("a == \"{long}\""),
                json!({"a": long.clone()}),
                true,
            ),
            ("endsWith(a, \"xxx\")", json!({"a": long}), true),
        ]);
    }

    #[test]
    fn typed_fields_accept_their_types_and_unknown_fields_anything() {
        for ok in [
            "process.pid == 1",
            "process.args_count >= 3",
            "process.interactive == true",
            "process.interactive",
            "process.name != null",
            "process.pid != null",
            "process.Ext.anything == 5 and process.Ext.anything like \"x*\"",
            "?process.Ext.token.integrity_level_name == \"high\"",
            "@timestamp > \"2025-01-01\"",
            "source.ip == \"10.0.0.1\"",
        ] {
            compile(&format!("process where {ok}")).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn process_where_filters_on_event_category() {
        let q = compile("process where true").unwrap();
        assert!(q.matches(&Document::from_json(
            &json!({"event": {"category": ["process"]}})
        )));
        assert!(q.matches(&Document::from_json(
            &json!({"event": {"category": ["network", "process"]}})
        )));
        assert!(q.matches(&Document::from_json(
            &json!({"event": {"category": "process"}})
        )));
        assert!(!q.matches(&Document::from_json(
            &json!({"event": {"category": ["Process"]}})
        )));
        assert!(!q.matches(&Document::from_json(
            &json!({"event": {"category": ["file"]}})
        )));
        assert!(!q.matches(&Document::from_json(&json!({}))));
    }

    #[test]
    fn compile_errors_name_the_construct_and_position() {
        let rows = [
            ("network where true", "1:1", "event category `network`"),
            (
                "process where a regex \"x&y\"",
                "1:23",
                "intersection operator `&`",
            ),
            (
                "process where a regex~ \"[z-a]\"",
                "1:24",
                "invalid `regex~` pattern",
            ),
            (
                "process where startsWith~(a, b)",
                "1:15",
                "with a field as its second argument",
            ),
            (
                "process where concat(a, b) == \"x\"",
                "1:15",
                "`concat` is not supported",
            ),
            ("process where frob(a)", "1:15", "unknown function `frob`"),
            ("process where a == b", "1:17", "comparing two fields"),
            ("process where a < null", "1:17", "cannot compare with null"),
            ("process where a in (b)", "1:21", "constants"),
            ("process where a like 5", "1:22", "string patterns"),
            ("process where \"x\"", "1:15", "not a condition"),
            ("process where startsWith(a)", "1:15", "exactly 2 arguments"),
            (
                "process where startsWith(\"a\", a)",
                "1:26",
                "must be a field",
            ),
            ("process where length(a)", "1:15", "returns a number"),
            (
                "process where\n  a == 1 and\n  length(a) > \"x\"",
                "3:13",
                "cannot be compared",
            ),
            (
                "process where a in (null)",
                "1:21",
                "`null` in an `in` list",
            ),
            // Fields of the wrong type (ECS types).
            (
                "process where process.pid like \"1*\"",
                "1:15",
                "`process.pid` is a long field; `like` needs a string field",
            ),
            (
                "process where process.name == 5",
                "1:15",
                "`process.name` is a keyword field; it cannot be compared with 5",
            ),
            (
                "process where process.name in (\"cp\", 5)",
                "1:15",
                "cannot be compared with 5 (`in`)",
            ),
            (
                "process where process.interactive == \"yes\"",
                "1:15",
                "boolean field",
            ),
            ("process where process.name", "1:15", "not a condition"),
            (
                "process where startsWith(process.pid, \"1\")",
                "1:15",
                "`startsWith` needs a string field",
            ),
            (
                "process where process.args_count : \"1\"",
                "1:15",
                "`:` needs a string field",
            ),
            (
                "process where length(process.pid) > 1",
                "1:15",
                "`length` needs a string field",
            ),
        ];
        for (src, pos, needle) in rows {
            let e = compile(src).unwrap_err();
            assert_eq!(format!("{}:{}", e.line, e.col), pos, "{src}: {e}");
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }
}

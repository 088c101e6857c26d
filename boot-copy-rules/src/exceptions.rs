//! Rule exceptions in Elastic's model, read from the agent's configuration.
//!
//! Per rule id, a list of exception items; an item is a conjunction of entries; an event that
//! matches **any** item of its rule raises no alert. In the agent's TOML configuration:
//!
//! ```toml
//! [[exceptions."5bda8597-69a6-4b9e-87a2-69a7c963ea83"]]
//! name = "our kernel installer"
//! entries = [
//!   { field = "process.parent.executable", operator = "is", value = "/opt/kinst/bin/install" },
//!   { field = "process.args", operator = "matches", value = "/boot/vmlinuz-*" },
//! ]
//! ```
//!
//! Operators, with the semantics Kibana gives them (its exception entries become Elasticsearch
//! queries, so the same any-element and missing-field rules apply as for EQL):
//! - `is` / `is_not`: exact, **case-sensitive** equality (`value`); `is_not` is true when the field
//!   is missing.
//! - `is_one_of` / `is_not_one_of`: exact, case-sensitive membership (`values`).
//! - `exists` / `does_not_exist`: the field has a non-null value / it does not.
//! - `matches` / `does_not_match`: whole-value wildcard (`*`, `?`, and `\` escapes the next
//!   character, as in Lucene's `wildcard` query — unlike EQL's `like`), **case-sensitive**
//!   — Kibana sends these as `wildcard` queries without `case_insensitive`, so `/Boot/*` does not
//!   match `/boot/x`. Write both cases out if both can occur.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::eql::{Node, Operand, Test, Wildcard};

/// All exception lists, keyed by rule id (`[[exceptions."RULE_ID"]]` in TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Exceptions(pub BTreeMap<String, Vec<ExceptionItem>>);

/// One exception item: every entry must hold for the item to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionItem {
    /// A label for listings and messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The conditions, all of which must hold.
    pub entries: Vec<Entry>,
}

/// One condition of an exception item: `field operator value(s)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The dotted ECS field name.
    pub field: String,
    /// How the field is tested.
    pub operator: Operator,
    /// The value, for `is`, `is_not`, `matches` and `does_not_match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<EntryValue>,
    /// The values, for `is_one_of` and `is_not_one_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<EntryValue>>,
}

/// An entry's operator, as Kibana's exception builder names it (semantics in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each variant is its `as_str` name
pub enum Operator {
    Is,
    IsNot,
    IsOneOf,
    IsNotOneOf,
    Exists,
    DoesNotExist,
    Matches,
    DoesNotMatch,
}

impl Operator {
    /// The operator's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Is => "is",
            Operator::IsNot => "is_not",
            Operator::IsOneOf => "is_one_of",
            Operator::IsNotOneOf => "is_not_one_of",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "does_not_exist",
            Operator::Matches => "matches",
            Operator::DoesNotMatch => "does_not_match",
        }
    }
}

/// A value in an entry: a TOML string, integer, float or boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)] // the TOML types
pub enum EntryValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl EntryValue {
    fn operand(&self) -> Operand {
        use super::eql::ast::Literal;
        let lit = match self {
            EntryValue::Str(s) => Literal::Str(s.clone()),
            EntryValue::Int(n) => Literal::Int(*n),
            EntryValue::Float(n) => Literal::Float(*n),
            EntryValue::Bool(b) => Literal::Bool(*b),
        };
        Operand::from_literal(&lit).expect("not null")
    }
}

/// A problem in the exceptions configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ExceptionError {
    /// The rule the exception list is for.
    pub rule_id: String,
    /// Index of the item in the rule's list (0-based).
    pub item: usize,
    /// The item's name, if it has one.
    pub item_name: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExceptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exceptions for rule {} item {}",
            self.rule_id,
            self.item + 1
        )?;
        if let Some(name) = &self.item_name {
            write!(f, " ({name:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// An exception item compiled to the rule engine's evaluator.
#[derive(Debug, Clone)]
pub(crate) struct CompiledItem(pub(crate) Node);

/// Compiles the items of one rule, reporting every problem.
pub(crate) fn compile_items(
    rule_id: &str,
    items: &[ExceptionItem],
) -> Result<Vec<CompiledItem>, Vec<ExceptionError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let err = |message: String| ExceptionError {
            rule_id: rule_id.to_owned(),
            item: i,
            item_name: item.name.clone(),
            message,
        };
        if item.entries.is_empty() {
            errors.push(err(
                "has no entries (it would except every event)".to_owned()
            ));
            continue;
        }
        let mut nodes = Vec::new();
        for entry in &item.entries {
            match compile_entry(entry) {
                Ok(n) => nodes.push(n),
                Err(m) => errors.push(err(format!("entry for `{}`: {m}", entry.field))),
            }
        }
        out.push(CompiledItem(Node::All(nodes.into_boxed_slice())));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn compile_entry(e: &Entry) -> Result<Node, String> {
    if e.field.trim().is_empty() {
        return Err("the field name is empty".to_owned());
    }
    let op = e.operator.as_str();
    let field: Box<str> = e.field.as_str().into();
    let single = || -> Result<&EntryValue, String> {
        if e.values.is_some() {
            return Err(format!("`{op}` takes `value`, not `values`"));
        }
        e.value
            .as_ref()
            .ok_or_else(|| format!("`{op}` needs a `value`"))
    };
    let many = || -> Result<&[EntryValue], String> {
        if e.value.is_some() {
            return Err(format!("`{op}` takes `values` (a list), not `value`"));
        }
        match &e.values {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("`{op}` needs a non-empty `values` list")),
        }
    };
    let none = || -> Result<(), String> {
        if e.value.is_some() || e.values.is_some() {
            Err(format!("`{op}` takes no value"))
        } else {
            Ok(())
        }
    };
    let pattern = || -> Result<Wildcard, String> {
        match single()? {
            // Case-sensitive, as Kibana's `matches` is (see the module documentation).
            EntryValue::Str(p) => Ok(Wildcard::lucene(p, false)),
            _ => Err(format!("`{op}` needs a string pattern")),
        }
    };
    let not = |n: Node| Node::Not(Box::new(n));
    Ok(match e.operator {
        Operator::Is => Node::Test(field, Test::Eq(single()?.operand())),
        Operator::IsNot => not(Node::Test(field, Test::Eq(single()?.operand()))),
        Operator::IsOneOf => Node::Test(
            field,
            Test::In(many()?.iter().map(EntryValue::operand).collect()),
        ),
        Operator::IsNotOneOf => not(Node::Test(
            field,
            Test::In(many()?.iter().map(EntryValue::operand).collect()),
        )),
        Operator::Exists => {
            none()?;
            Node::Test(field, Test::Exists)
        }
        Operator::DoesNotExist => {
            none()?;
            not(Node::Test(field, Test::Exists))
        }
        Operator::Matches => Node::Test(field, Test::Like(vec![pattern()?].into())),
        Operator::DoesNotMatch => not(Node::Test(field, Test::Like(vec![pattern()?].into()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use serde_json::json;

    fn item(entries: &str) -> Vec<CompiledItem> {
        let toml = format!("[[exceptions.r]]\nentries = [{entries}]\n");
        #[derive(Deserialize)]
        struct Cfg {
            exceptions: Exceptions,
        }
        let cfg: Cfg = toml::from_str(&toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
        compile_items("r", &cfg.exceptions.0["r"]).unwrap()
    }

    fn hit(items: &[CompiledItem], event: serde_json::Value) -> bool {
        let d = Document::from_json(&event);
        items.iter().any(|i| i.0.eval(&d))
    }

    #[test]
    fn operators() {
        let rows: &[(&str, serde_json::Value, bool)] = &[
            (
                r#"{field="a", operator="is", value="x"}"#,
                json!({"a": "x"}),
                true,
            ),
            (
                r#"{field="a", operator="is", value="x"}"#,
                json!({"a": "X"}),
                false,
            ),
            (
                r#"{field="a", operator="is", value="x"}"#,
                json!({"a": ["y", "x"]}),
                true,
            ),
            (
                r#"{field="a", operator="is", value="x*"}"#,
                json!({"a": "xy"}),
                false,
            ),
            (
                r#"{field="a", operator="is", value=5}"#,
                json!({"a": 5}),
                true,
            ),
            (
                r#"{field="a", operator="is_not", value="x"}"#,
                json!({"a": "y"}),
                true,
            ),
            (
                r#"{field="a", operator="is_not", value="x"}"#,
                json!({}),
                true,
            ),
            (
                r#"{field="a", operator="is_not", value="x"}"#,
                json!({"a": "x"}),
                false,
            ),
            (
                r#"{field="a", operator="is_one_of", values=["x","y"]}"#,
                json!({"a": "y"}),
                true,
            ),
            (
                r#"{field="a", operator="is_one_of", values=["x","y"]}"#,
                json!({"a": "Y"}),
                false,
            ),
            (
                r#"{field="a", operator="is_not_one_of", values=["x","y"]}"#,
                json!({"a": "z"}),
                true,
            ),
            (
                r#"{field="a", operator="is_not_one_of", values=["x","y"]}"#,
                json!({}),
                true,
            ),
            (r#"{field="a", operator="exists"}"#, json!({"a": ""}), true),
            (r#"{field="a", operator="exists"}"#, json!({"a": []}), false),
            (
                r#"{field="a", operator="does_not_exist"}"#,
                json!({"a": null}),
                true,
            ),
            (
                r#"{field="a", operator="matches", value="/opt/*/bin/?"}"#,
                json!({"a": "/opt/k/bin/x"}),
                true,
            ),
            (
                r#"{field="a", operator="matches", value="/opt/*"}"#,
                json!({"a": "/OPT/x"}),
                false,
            ),
            (
                r#"{field="a", operator="matches", value="/opt/\\*"}"#,
                json!({"a": "/opt/x"}),
                false,
            ),
            (
                r#"{field="a", operator="does_not_match", value="/opt/*"}"#,
                json!({}),
                true,
            ),
            (
                r#"{field="a", operator="does_not_match", value="/opt/*"}"#,
                json!({"a": "/opt/x"}),
                false,
            ),
            // Conjunction.
            (
                r#"{field="a", operator="is", value="x"}, {field="b", operator="exists"}"#,
                json!({"a": "x"}),
                false,
            ),
            (
                r#"{field="a", operator="is", value="x"}, {field="b", operator="exists"}"#,
                json!({"a": "x", "b": 1}),
                true,
            ),
        ];
        for (entries, event, want) in rows {
            assert_eq!(
                hit(&item(entries), event.clone()),
                *want,
                "{entries} on {event}"
            );
        }
    }

    #[test]
    fn malformed_entries_are_reported() {
        let items: Vec<ExceptionItem> = vec![
            ExceptionItem {
                name: Some("empty".into()),
                comment: None,
                entries: vec![],
            },
            ExceptionItem {
                name: None,
                comment: None,
                entries: vec![
                    Entry {
                        field: "a".into(),
                        operator: Operator::Is,
                        value: None,
                        values: None,
                    },
                    Entry {
                        field: "b".into(),
                        operator: Operator::IsOneOf,
                        value: Some(EntryValue::Str("x".into())),
                        values: None,
                    },
                    Entry {
                        field: "c".into(),
                        operator: Operator::Exists,
                        value: Some(EntryValue::Str("x".into())),
                        values: None,
                    },
                    Entry {
                        field: "d".into(),
                        operator: Operator::Matches,
                        value: Some(EntryValue::Int(1)),
                        values: None,
                    },
                ],
            },
        ];
        let errors = compile_items("r", &items).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert!(text[0].contains("item 1 (\"empty\"): has no entries"));
        assert!(text[1].contains("`a`: `is` needs a `value`"));
        assert!(text[2].contains("`b`: `is_one_of` takes `values`"));
        assert!(text[3].contains("`c`: `exists` takes no value"));
        assert!(text[4].contains("`d`: `matches` needs a string pattern"));
    }

    #[test]
    fn unknown_operator_is_a_config_error() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Cfg {
            exceptions: Exceptions,
        }
        let e = toml::from_str::<Cfg>(
            "[[exceptions.r]]\nentries = [{field=\"a\", operator=\"contains\", value=\"x\"}]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant `contains`"), "{e}");
    }
}

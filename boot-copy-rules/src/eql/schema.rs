//! Field types, so that a query using a field with a value or operator of the wrong type is
//! refused as Elasticsearch's EQL verifier refuses it (`process.pid like "1*"`,
//! `process.name == 5`).
//!
//! The engine has no index mapping. It knows the ECS 9.4.0 field types (`ecs_types.tsv`); a
//! field ECS does not define (Elastic Defend's `process.Ext.*`, custom fields) is accepted with
//! any operator and value, as if it were mapped to fit — there is nothing to check it against.
//! Optional fields (`?field`) are checked the same way when ECS defines them.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const ECS_TYPES: &str = include_str!("ecs_types.tsv");

/// What a field holds, as far as query checking is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// keyword, wildcard, constant_keyword, text, match_only_text.
    String(&'static str),
    /// long, integer, float, double, scaled_float, ...
    Number(&'static str),
    Boolean,
    Date,
    Ip,
    /// object, nested, flattened, geo_point: not a comparable value.
    Composite(&'static str),
    /// Not an ECS field.
    Unknown,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::String(t) | FieldType::Number(t) | FieldType::Composite(t) => f.write_str(t),
            FieldType::Boolean => f.write_str("boolean"),
            FieldType::Date => f.write_str("date"),
            FieldType::Ip => f.write_str("ip"),
            FieldType::Unknown => f.write_str("unknown"),
        }
    }
}

fn table() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ECS_TYPES
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split_once('\t'))
            .collect()
    })
}

pub(crate) fn field_type(name: &str) -> FieldType {
    match table().get(name) {
        None => FieldType::Unknown,
        Some(&t) => match t {
            "keyword" | "wildcard" | "constant_keyword" | "text" | "match_only_text" => {
                FieldType::String(t)
            }
            "long" | "integer" | "short" | "byte" | "float" | "double" | "half_float"
            | "scaled_float" | "unsigned_long" => FieldType::Number(t),
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "ip" => FieldType::Ip,
            other => FieldType::Composite(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types() {
        assert_eq!(field_type("process.name"), FieldType::String("keyword"));
        assert_eq!(
            field_type("process.command_line"),
            FieldType::String("wildcard")
        );
        assert_eq!(field_type("process.pid"), FieldType::Number("long"));
        assert_eq!(
            field_type("process.parent.args_count"),
            FieldType::Number("long")
        );
        assert_eq!(field_type("process.interactive"), FieldType::Boolean);
        assert_eq!(field_type("@timestamp"), FieldType::Date);
        assert_eq!(field_type("source.ip"), FieldType::Ip);
        assert_eq!(field_type("process.Ext.ancestry"), FieldType::Unknown);
    }
}

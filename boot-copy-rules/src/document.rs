//! The event as the rule evaluator sees it: a flat map from dotted ECS field name to a value.
//!
//! This is how Elasticsearch indexes a document, so it is what a query sees there:
//! - nested objects and dotted keys are the same field (`{"process":{"name":"cp"}}` and
//!   `{"process.name":"cp"}`);
//! - arrays of scalars stay arrays (comparisons are true if any element satisfies them); arrays of
//!   objects contribute each object's fields, so `a: [{b: 1}, {b: 2}]` gives `a.b = [1, 2]`;
//!   nested arrays are flattened;
//! - `null` and `[]` are not indexed: an empty array (or one holding only nulls) is a missing
//!   field, and a `null` value behaves exactly like a missing one (`f != null` is false for both).
//!   `""` is a value and exists.
//!
//! The live daemon builds documents field by field from the exec (with `'static` field names, so
//! no name is allocated) on top of a shared base holding the fields every event of the host has
//! (`host.*`, `agent.*`); `replay` flattens JSON.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A small, fast, non-cryptographic hasher for field names (the FxHash mixing step). Field
/// names come from rules and events; a flood of colliding names in one event only slows that
/// event down.
#[derive(Default, Clone, Copy)]
pub struct FieldHasher(u64);

impl Hasher for FieldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
        self.0 = h;
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits (hashbrown uses the top 7 bits as tags).
        self.0 ^ (self.0 >> 29)
    }
}

type FieldMap = HashMap<Cow<'static, str>, Value, BuildHasherDefault<FieldHasher>>;

/// A set of field names (those the loaded rules read).
pub type FieldSet = std::collections::HashSet<String, BuildHasherDefault<FieldHasher>>;

/// One value of a field. `Array` holds scalars only (never nested arrays, never `Null`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`: behaves as a missing field.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number that is not an integer.
    Float(f64),
    /// A string.
    Str(String),
    /// Several scalars (a JSON array, flattened).
    Array(Vec<Value>),
}

impl Value {
    /// The scalar elements of this value: the array's elements, or the value itself.
    #[inline]
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        }
    }

    /// The string, if this is a single string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Float(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            push_flat(&mut out, item.into());
        }
        Value::Array(out)
    }
}

fn push_flat(out: &mut Vec<Value>, value: Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|v| push_flat(out, v)),
        scalar => out.push(scalar),
    }
}

/// An event: dotted field name → value.
#[derive(Debug, Clone, Default)]
pub struct Document {
    fields: FieldMap,
    /// Fields shared by many documents, none of which this one sets itself.
    base: Option<Arc<Document>>,
}

/// Documents are equal when they hold the same fields, however they are layered.
impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty document on top of `base`, with room for `capacity` fields of its own. The
    /// fields inserted afterwards must not be in `base` (they would shadow it, not merge).
    pub fn with_base(base: Arc<Document>, capacity: usize) -> Self {
        Self {
            fields: FieldMap::with_capacity_and_hasher(capacity, Default::default()),
            base: Some(base),
        }
    }

    /// Flattens a JSON event. A non-object yields an empty document.
    pub fn from_json(json: &serde_json::Value) -> Document {
        match json {
            serde_json::Value::Object(map) => Document::from_map(map),
            _ => Document::new(),
        }
    }

    /// Flattens a JSON object.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Document {
        let mut doc = Document::new();
        doc.flatten_object(&mut String::new(), map);
        doc
    }

    fn flatten_object(
        &mut self,
        prefix: &mut String,
        map: &serde_json::Map<String, serde_json::Value>,
    ) {
        for (key, value) in map {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(key);
            self.flatten_value(prefix, value);
            prefix.truncate(len);
        }
    }

    fn flatten_value(&mut self, name: &mut String, value: &serde_json::Value) {
        use serde_json::Value as J;
        match value {
            J::Object(map) => self.flatten_object(name, map),
            J::Array(items) => {
                let mut scalars = Vec::new();
                for item in items {
                    match item {
                        J::Object(_) => self.flatten_value(name, item),
                        J::Array(_) => {
                            // Nested arrays are flattened into this field.
                            let mut inner = Document::new();
                            inner.flatten_value(&mut String::new(), item);
                            for (sub, v) in inner.fields {
                                let full = if sub.is_empty() {
                                    name.clone()
                                } else {
                                    format!("{name}.{sub}")
                                };
                                self.insert(full, v);
                            }
                        }
                        scalar => push_flat(&mut scalars, scalar_from_json(scalar)),
                    }
                }
                if !scalars.is_empty() {
                    self.insert(name.clone(), Value::Array(scalars));
                }
            }
            scalar => self.insert(name.clone(), scalar_from_json(scalar)),
        }
    }

    /// Sets a field. Values for a field that is already present are merged into an array (as
    /// when a document spells the same field both nested and dotted). An empty array is ignored.
    pub fn insert(&mut self, field: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let mut value = value.into();
        if let Value::Array(items) = value {
            let mut flat = Vec::with_capacity(items.len());
            items.into_iter().for_each(|v| push_flat(&mut flat, v));
            if flat.is_empty() {
                return;
            }
            value = Value::Array(flat);
        }
        let field = field.into();
        debug_assert!(
            self.base.as_ref().is_none_or(|b| b.get(&field).is_none()),
            "{field} is in the base document"
        );
        match self.fields.entry(field) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(mut slot) => {
                let old = std::mem::replace(slot.get_mut(), Value::Null);
                let mut merged = Vec::new();
                push_flat(&mut merged, old);
                push_flat(&mut merged, value);
                *slot.get_mut() = if merged.is_empty() {
                    Value::Null
                } else {
                    Value::Array(merged)
                };
            }
        }
    }

    /// Removes a field of this document's own (not of its base).
    pub fn remove(&mut self, field: &str) -> Option<Value> {
        self.fields.remove(field)
    }

    /// The value of a field (no allocation).
    #[inline]
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .get(field)
            .or_else(|| self.base.as_ref()?.get(field))
    }

    /// Whether the field has at least one non-null value (`field != null`).
    pub fn exists(&self, field: &str) -> bool {
        self.get(field)
            .is_some_and(|v| v.elements().iter().any(|e| !matches!(e, Value::Null)))
    }

    /// All fields, in no particular order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&str, &Value)> + '_> {
        let own = self.fields.iter().map(|(k, v)| (k.as_ref(), v));
        match &self.base {
            Some(base) => Box::new(own.chain(base.iter())),
            None => Box::new(own),
        }
    }

    /// The number of fields (its own and its base's).
    pub fn len(&self) -> usize {
        self.fields.len() + self.base.as_ref().map_or(0, |b| b.len())
    }

    /// Whether it has no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn scalar_from_json(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(s.clone()),
        // Callers handle containers; keep this total.
        J::Array(_) | J::Object(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_dotted_keys_are_the_same_field() {
        let a = Document::from_json(&json!({"process": {"name": "cp", "parent": {"name": "sh"}}}));
        let b =
            Document::from_json(&json!({"process.name": "cp", "process": {"parent.name": "sh"}}));
        assert_eq!(a, b);
        assert_eq!(a.get("process.name"), Some(&Value::Str("cp".into())));
        assert_eq!(a.get("process.parent.name"), Some(&Value::Str("sh".into())));
    }

    #[test]
    fn arrays_stay_arrays_and_empty_is_missing() {
        let d = Document::from_json(&json!({
            "process": {"args": ["cp", "x", "/boot/y"], "env": [], "nulls": [null], "empty": ""},
            "event": {"category": ["process"]},
            "n": null,
        }));
        assert_eq!(d.get("process.args").unwrap().elements().len(), 3);
        assert!(d.get("process.env").is_none());
        assert!(!d.exists("process.env"));
        assert!(!d.exists("process.nulls"));
        assert!(d.exists("process.empty"));
        assert!(!d.exists("n"));
        assert!(!d.exists("nope"));
    }

    #[test]
    fn arrays_of_objects_and_nested_arrays_flatten() {
        let d =
            Document::from_json(&json!({"a": [{"b": 1}, {"b": 2, "c": "x"}], "m": [[1, 2], [3]]}));
        assert_eq!(
            d.get("a.b"),
            Some(&Value::Array(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(d.get("a.c"), Some(&Value::Str("x".into())));
        assert_eq!(d.get("m").unwrap().elements().len(), 3);
    }

    #[test]
    fn numbers() {
        let d = Document::from_json(&json!({"i": 5, "f": 2.5, "big": 18446744073709551615u64}));
        assert_eq!(d.get("i"), Some(&Value::Int(5)));
        assert_eq!(d.get("f"), Some(&Value::Float(2.5)));
        assert!(matches!(d.get("big"), Some(Value::Float(_))));
    }
}

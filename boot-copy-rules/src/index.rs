//! The index [`RuleSet`](crate::RuleSet) builds when rules load, so that an event is evaluated
//! only against the rules whose constant preconditions it can meet.
//!
//! A rule's *key* is one top-level conjunct of its query (every match needs it) that tests a
//! field against constant strings: `f == "x"`, `f in (...)`, `f in~ (...)`, `f like "x*"`,
//! `f : ("a", "*.b")`, `startsWith(f, "x")`, or an `or` every branch of which has a key (the
//! event must then meet one branch's key, on whichever field). Keys on fields every exec event
//! fills alike (`event.type`, `event.action`, `host.os.type`, …) are taken only when a rule has
//! no other. An event is a candidate for a keyed rule if one of the key field's string values
//! equals one of the key's strings, begins with one of its prefixes or ends with one of its
//! suffixes (`like "*.cgi"`), folding ASCII case where the test does; a non-string value makes
//! it a candidate for every rule keyed on that field, since equality coerces numbers and
//! booleans. Rules without a key are always candidates. The key is a necessary condition, so the
//! index never changes a verdict; the candidates are then evaluated in load order. Looking up
//! candidates allocates nothing for up to [`INLINE_RULES`] rules.

use std::collections::HashMap;

use crate::document::{Document, Value};
use crate::eql::{Node, Test};

/// Rule sets up to this size keep their candidate set on the stack.
pub(crate) const INLINE_RULES: usize = 512;
const INLINE_WORDS: usize = INLINE_RULES / 64;

/// Fields that hold the same few values in every exec event: poor keys, from the least poor
/// (`event.action` tells an exec from a module load) to the worst (`event.category`, which every
/// `process where` query tests).
const COMMON_FIELDS: &[&str] = &[
    "event.action",
    "event.type",
    "event.kind",
    "event.module",
    "event.dataset",
    "data_stream.dataset",
    "host.os.platform",
    "host.os.name",
    "host.os.type",
    "event.category",
];

/// The longest value the case-insensitive lookup lowercases on the stack; longer values scan.
const FOLD_BUFFER: usize = 256;

/// One string a key admits.
#[derive(Debug, Clone)]
struct KeyEntry {
    text: Box<str>,
    ci: bool,
    place: Place,
}

/// Where `text` must be in the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Whole,
    Prefix,
    Suffix,
}

#[derive(Debug, Clone, Default)]
struct FieldIndex {
    field: Box<str>,
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Keyed by the ASCII-lowercased text.
    exact_ci: HashMap<Box<str>, Vec<u32>>,
    /// Prefix and suffix entries.
    affixes: Vec<(KeyEntry, u32)>,
    /// Every rule keyed on this field (for values the maps cannot judge).
    rules: Vec<u32>,
}

/// The candidate rules of an event, as a bit set.
pub(crate) enum Candidates {
    Inline([u64; INLINE_WORDS]),
    Heap(Vec<u64>),
}

impl Candidates {
    fn words(&mut self) -> &mut [u64] {
        match self {
            Candidates::Inline(w) => w,
            Candidates::Heap(w) => w,
        }
    }

    fn set(&mut self, rule: u32) {
        self.words()[rule as usize / 64] |= 1 << (rule % 64);
    }

    pub(crate) fn contains(&self, rule: usize) -> bool {
        let words: &[u64] = match self {
            Candidates::Inline(w) => w,
            Candidates::Heap(w) => w,
        };
        words[rule / 64] & (1 << (rule % 64)) != 0
    }
}

/// The index over a rule set's queries.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    rules: usize,
    /// Rules without a key: always candidates.
    always: Vec<u32>,
    /// Rules whose key tests only `event.category`, which every process event meets.
    category_only: usize,
    fields: Vec<FieldIndex>,
}

impl RuleIndex {
    /// Builds the index over the queries' compiled roots, in rule order.
    pub(crate) fn new<'a>(roots: impl Iterator<Item = &'a Node>) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (i, root) in roots.enumerate() {
            let rule = i as u32;
            index.rules = i + 1;
            let Some(key) = best_key(root) else {
                index.always.push(rule);
                continue;
            };
            if key.iter().all(|(f, _)| *f == "event.category") {
                index.category_only += 1;
            }
            for (field, entries) in key {
                index.add(rule, field, entries);
            }
        }
        index
    }

    fn add(&mut self, rule: u32, field: &str, entries: Vec<KeyEntry>) {
        let at = match self.fields.iter().position(|f| *f.field == *field) {
            Some(at) => at,
            None => {
                self.fields.push(FieldIndex {
                    field: field.into(),
                    ..FieldIndex::default()
                });
                self.fields.len() - 1
            }
        };
        let f = &mut self.fields[at];
        f.rules.push(rule);
        for e in entries {
            match (e.place, e.ci) {
                (Place::Whole, false) => f.exact.entry(e.text).or_default().push(rule),
                (Place::Whole, true) => f
                    .exact_ci
                    .entry(e.text.to_ascii_lowercase().into())
                    .or_default()
                    .push(rule),
                _ => f.affixes.push((e, rule)),
            }
        }
    }

    /// Number of rules with a key more selective than `event.category`.
    pub(crate) fn keyed(&self) -> usize {
        self.rules - self.always.len() - self.category_only
    }

    /// The rules `doc` may match.
    pub(crate) fn candidates(&self, doc: &Document) -> Candidates {
        let words = self.rules.div_ceil(64);
        let mut c = if words <= INLINE_WORDS {
            Candidates::Inline([0; INLINE_WORDS])
        } else {
            Candidates::Heap(vec![0; words])
        };
        for &rule in &self.always {
            c.set(rule);
        }
        for f in &self.fields {
            let Some(value) = doc.get(&f.field) else {
                continue;
            };
            for v in value.elements() {
                match v {
                    Value::Str(s) => f.admit(s, &mut c),
                    Value::Null | Value::Array(_) => {}
                    _ => f.rules.iter().for_each(|&r| c.set(r)),
                }
            }
        }
        c
    }
}

impl FieldIndex {
    fn admit(&self, s: &str, c: &mut Candidates) {
        let hits = |rules: Option<&Vec<u32>>, c: &mut Candidates| {
            rules.into_iter().flatten().for_each(|&r| c.set(r));
        };
        hits(self.exact.get(s), c);
        if !self.exact_ci.is_empty() {
            if s.len() <= FOLD_BUFFER {
                let mut buf = [0u8; FOLD_BUFFER];
                let lower = &mut buf[..s.len()];
                lower.copy_from_slice(s.as_bytes());
                lower.make_ascii_lowercase();
                // ASCII lowercasing keeps UTF-8 valid.
                let lower = std::str::from_utf8(lower).expect("lowercased UTF-8");
                hits(self.exact_ci.get(lower), c);
            } else {
                for (text, rules) in &self.exact_ci {
                    if text.eq_ignore_ascii_case(s) {
                        hits(Some(rules), c);
                    }
                }
            }
        }
        for (e, rule) in &self.affixes {
            let p = e.text.as_bytes();
            let b = s.as_bytes();
            let hit = b.len() >= p.len() && {
                let part = match e.place {
                    Place::Suffix => &b[b.len() - p.len()..],
                    _ => &b[..p.len()],
                };
                if e.ci {
                    part.eq_ignore_ascii_case(p)
                } else {
                    part == p
                }
            };
            if hit {
                c.set(*rule);
            }
        }
    }
}

/// A necessary condition: one of the parts holds (a part: a field's value is admitted by one of
/// its entries). A test gives one part; an `or` gives the parts of its branches' keys.
type Key<'a> = Vec<(&'a str, Vec<KeyEntry>)>;

/// The key of a rule: the best of its top-level conjuncts' keys.
fn best_key(root: &Node) -> Option<Key<'_>> {
    let mut conjuncts = Vec::new();
    flatten_all(root, &mut conjuncts);
    conjuncts.into_iter().filter_map(key_of).min_by_key(rank)
}

/// Keys on fields every exec fills alike last (the worst of [`COMMON_FIELDS`] last of all),
/// then prefix-free ones first, then the fewest strings.
fn rank(key: &Key<'_>) -> (usize, bool, usize) {
    let commonness = |f: &str| {
        COMMON_FIELDS
            .iter()
            .position(|c| *c == f)
            .map_or(0, |i| i + 1)
    };
    (
        key.iter().map(|(f, _)| commonness(f)).max().unwrap_or(0),
        key.iter()
            .flat_map(|(_, e)| e)
            .any(|e| e.place != Place::Whole),
        key.iter().map(|(_, e)| e.len()).sum(),
    )
}

fn flatten_all<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    match node {
        Node::All(items) => items.iter().for_each(|n| flatten_all(n, out)),
        other => out.push(other),
    }
}

/// The key a condition gives, if it is a test against constant strings, or an `or` each of
/// whose branches has a key (then one of them must hold).
fn key_of(node: &Node) -> Option<Key<'_>> {
    match node {
        Node::Test(field, test) => Some(vec![(&**field, test_entries(test)?)]),
        Node::Any(branches) => {
            let mut parts = Vec::new();
            for b in branches.iter() {
                parts.extend(best_key(b)?);
            }
            Some(parts)
        }
        _ => None,
    }
}

fn test_entries(test: &Test) -> Option<Vec<KeyEntry>> {
    let string = |op: &crate::eql::Operand, ci: bool| {
        (op.lit == crate::eql::Lit::Str).then(|| KeyEntry {
            text: op.text.clone(),
            ci,
            place: Place::Whole,
        })
    };
    match test {
        Test::Eq(op) => Some(vec![string(op, false)?]),
        Test::In(ops) => ops.iter().map(|op| string(op, false)).collect(),
        Test::InCi(ops) => ops.iter().map(|op| string(op, true)).collect(),
        Test::Like(patterns) => patterns
            .iter()
            .map(|p| {
                let (text, place) = match p.literal_prefix() {
                    Some((text, true)) => (text, Place::Whole),
                    Some((text, false)) => (text, Place::Prefix),
                    None => (p.literal_suffix()?, Place::Suffix),
                };
                Some(KeyEntry {
                    text: text.into(),
                    ci: p.case_insensitive(),
                    place,
                })
            })
            .collect(),
        Test::StartsWith(p, ci) if !p.is_empty() => Some(vec![KeyEntry {
            text: p.clone(),
            ci: *ci,
            place: Place::Prefix,
        }]),
        _ => None,
    }
}

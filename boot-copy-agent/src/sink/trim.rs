//! Fitting a record into a receiver's size limit (rsyslog's `maxMessageSize`, journald's
//! `LineMax`) without cutting it into broken JSON: argument text is shortened, every field is
//! kept, and `boot_copy.trimmed` says what was cut and how long the record was. Only a record
//! over its sink's limit pays for this; the alert log never trims.
use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, SeqAccess, Visitor},
};
use serde_json::{json, value::RawValue};
use std::{borrow::Cow, collections::VecDeque};

/// Fields of argument text, shortened before anything else (largest first).
const ARGUMENT_TEXT: &[&str] = &[
    "process.args",
    "process.command_line",
    "process.title",
    "process.parent.args",
    "process.parent.command_line",
    "process.parent.title",
    "process.entry_leader.args",
    "process.entry_leader.command_line",
    "process.session_leader.args",
    "process.session_leader.command_line",
    "process.group_leader.args",
    "process.group_leader.command_line",
    "event.reason",
    "boot_copy.strict.targets",
    "boot_copy.strict.boot_paths",
];

/// Shortening steps before giving up on a record that cannot fit (a limit below its fixed
/// fields): each at least halves the largest text, so few are ever needed.
const MAX_STEPS: usize = 64;

/// Text this short is not worth shortening further.
const MIN_TEXT: usize = 8;

/// `line` if it fits in `max` bytes, else (`Some`) a shortened copy that does, or comes as close
/// as shortening argument text and other long strings allows. A line that is not a JSON object
/// is left to the caller (`None`).
///
/// The record is never decoded: its objects are opened into slices of its text and every other
/// value stays that text until it is shortened, so a record of megabytes costs the shortened
/// copy and a pointer per field, not a second tree of its strings.
pub fn fit(line: &str, max: usize) -> Option<String> {
    if line.len() <= max {
        return None;
    }
    let mut doc = Node::parse(line).ok()?;
    if !matches!(doc, Node::Object(_)) {
        return None;
    }
    let mut trimmed: Vec<String> = Vec::new();
    for _ in 0..MAX_STEPS {
        annotate(&mut doc, line.len(), &trimmed);
        let len = doc.size();
        if len <= max {
            break;
        }
        let Some(path) = shrink_largest(&mut doc, len - max) else {
            break;
        };
        if !trimmed.contains(&path) {
            trimmed.push(path);
        }
    }
    Some(doc.to_json())
}

/// A JSON value as slices of the record's text: objects opened (in their order), anything else
/// kept as its JSON text, borrowed until shortened.
enum Node<'a> {
    Object(Vec<(String, Node<'a>)>),
    Text(Cow<'a, str>),
}

impl<'a> Node<'a> {
    fn parse(text: &'a str) -> serde_json::Result<Self> {
        if !text.starts_with('{') {
            return Ok(Node::Text(text.into()));
        }
        let Entries(entries) = serde_json::from_str(text)?;
        let fields = entries
            .into_iter()
            .map(|(k, v)| Ok((k, Node::parse(v.get())?)))
            .collect::<serde_json::Result<_>>()?;
        Ok(Node::Object(fields))
    }

    /// Serialized length, counted without building the text.
    fn size(&self) -> usize {
        match self {
            Node::Text(t) => t.len(),
            Node::Object(fields) => {
                let inner: usize = fields.iter().map(|(k, v)| key_size(k) + 1 + v.size()).sum();
                2 + inner + fields.len().saturating_sub(1)
            }
        }
    }

    fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.size());
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Node::Text(t) => out.push_str(t),
            Node::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    fn field(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self {
            Node::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            Node::Text(_) => None,
        }
    }

    fn get(&mut self, path: &str) -> Option<&mut Node<'a>> {
        path.split('.').try_fold(self, |v, k| v.field(k))
    }

    /// A string's or an array's text (what can be shortened).
    fn shortenable(&self) -> Option<&str> {
        match self {
            Node::Text(t) if t.starts_with(['"', '[']) => Some(t),
            _ => None,
        }
    }
}

/// An object's members in their order, values as their text.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// Each element of a JSON array's text, in order, to `f` (no vector of them is built: an argv
/// can have millions).
fn each_element<'a>(array: &'a str, f: impl FnMut(&'a RawValue)) -> serde_json::Result<()> {
    struct Elements<F>(F);
    impl<'de, F: FnMut(&'de RawValue)> Visitor<'de> for Elements<F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            while let Some(e) = seq.next_element()? {
                (self.0)(e);
            }
            Ok(())
        }
    }
    serde_json::Deserializer::from_str(array).deserialize_seq(Elements(f))
}

fn key_size(key: &str) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, key);
    n.0
}

/// `boot_copy.trimmed`: the record's length before trimming and the fields shortened.
fn annotate(doc: &mut Node, original: usize, fields: &[String]) {
    let Node::Object(top) = doc else {
        return;
    };
    if !top.iter().any(|(k, _)| k == "boot_copy") {
        top.push(("boot_copy".into(), Node::Object(Vec::new())));
    }
    let Some(Node::Object(b)) = doc.field("boot_copy") else {
        return;
    };
    let note = json!({ "original_bytes": original, "fields": fields }).to_string();
    match b.iter_mut().find(|(k, _)| k == "trimmed") {
        Some((_, v)) => *v = Node::Text(note.into()),
        None => b.push(("trimmed".into(), Node::Text(note.into()))),
    }
}

/// Shortens the largest argument-text field (or, when none is left worth shortening, the
/// largest string anywhere) by at least `excess` bytes where it can; returns its path.
fn shrink_largest(doc: &mut Node, excess: usize) -> Option<String> {
    let named = ARGUMENT_TEXT
        .iter()
        .filter_map(|p| Some((p.to_string(), doc.get(p)?.shortenable()?.len())))
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > MIN_TEXT);
    let (path, n) = named.or_else(|| largest_string(doc, String::new()))?;
    // At most half of it per step: the next step may find another field larger.
    let target = n.saturating_sub(excess).max(n / 2);
    let leaf = doc.get(&path)?;
    let shorter = shrink(leaf.shortenable()?, target);
    *leaf = Node::Text(shorter.into());
    Some(path)
}

/// The path and size of the largest string (or array) outside `boot_copy.trimmed`.
fn largest_string(v: &Node, path: String) -> Option<(String, usize)> {
    match v {
        Node::Object(fields) => fields
            .iter()
            .filter(|(k, _)| !(path == "boot_copy" && k == "trimmed"))
            .filter_map(|(k, v)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                largest_string(v, p)
            })
            .max_by_key(|(_, n)| *n),
        Node::Text(_) => Some((path, v.shortenable()?.len())).filter(|(_, n)| *n > MIN_TEXT),
    }
}

/// `text` (a JSON string, or an array) brought down to about `target` bytes: an array whose
/// bytes are mostly one string has that string cut, else it loses elements from its middle
/// (first and last kept: a copy's target is usually last); a string keeps its head and tail.
fn shrink(text: &str, target: usize) -> String {
    if text.starts_with('"') {
        return cut_middle(text, target);
    }
    let (mut count, mut largest) = (0usize, None::<(usize, &RawValue)>);
    let scanned = each_element(text, |e| {
        if largest.is_none_or(|(_, l)| e.get().len() > l.get().len()) {
            largest = Some((count, e));
        }
        count += 1;
    });
    let Some((at, big)) = largest.filter(|_| scanned.is_ok()) else {
        return text.to_owned();
    };
    let big = big.get();
    if (big.len() * 2 >= text.len() || count <= 2) && big.starts_with('"') {
        let cut = cut_middle(big, target.saturating_sub(text.len() - big.len()));
        return rebuilt(text, |i, e, out| {
            out.push(if i == at { cut.as_str() } else { e.get() });
        });
    }
    if count <= 2 {
        return text.to_owned();
    }
    without_middle(text, count, target)
}

/// The array `text` keeping as many elements from each end as fit in half of `target` each (one
/// at least).
fn without_middle(text: &str, count: usize, target: usize) -> String {
    let half = target.saturating_sub(2) / 2;
    let (mut head, mut head_bytes) = (0usize, 0usize);
    let mut tail: VecDeque<&RawValue> = VecDeque::new();
    let mut tail_bytes = 0usize;
    let _ = each_element(text, |e| {
        let n = e.get().len() + 1;
        if head == 0 || (head_bytes + n <= half && tail.is_empty()) {
            head += 1;
            head_bytes += n;
            return;
        }
        tail.push_back(e);
        tail_bytes += n;
        while tail.len() > 1 && tail_bytes > half {
            tail_bytes -= tail.pop_front().map_or(0, |e| e.get().len() + 1);
        }
    });
    let keep_tail = tail.len();
    let first_tail = count - keep_tail;
    rebuilt(text, |i, e, out| {
        if i < head || i >= first_tail {
            out.push(e.get());
        }
    })
}

/// The array `text` with what `pick` puts in `out` for each element (index, element).
fn rebuilt<'a>(
    text: &'a str,
    mut pick: impl FnMut(usize, &'a RawValue, &mut Vec<&'a str>),
) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut i = 0;
    let _ = each_element(text, |e| {
        pick(i, e, &mut parts);
        i += 1;
    });
    format!("[{}]", parts.join(","))
}

/// The JSON string `text` cut to about `target` bytes, its head and tail kept around `…`, at
/// boundaries of its characters and escapes (a surrogate pair is one).
fn cut_middle(text: &str, target: usize) -> String {
    let body = &text[1..text.len() - 1];
    let keep = target.saturating_sub(5) / 2;
    if body.len() <= keep * 2 {
        return text.to_owned();
    }
    let b = body.as_bytes();
    let (mut i, mut head, mut tail) = (0, 0, body.len());
    while i < b.len() {
        if i <= keep {
            head = i;
        }
        if i >= b.len() - keep {
            tail = i;
            break;
        }
        i += unit_len(b, i);
    }
    format!("\"{}…{}\"", &body[..head], &body[tail..])
}

/// Length of the character or escape at `i` of a JSON string's body.
fn unit_len(b: &[u8], i: usize) -> usize {
    let n = match b[i] {
        b'\\' if b.get(i + 1) == Some(&b'u') => {
            let high = std::str::from_utf8(&b[i + 2..(i + 6).min(b.len())])
                .ok()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            match high {
                Some(0xD800..=0xDBFF) if b.get(i + 6..i + 8) == Some(b"\\u") => 12,
                _ => 6,
            }
        }
        b'\\' => 2,
        0..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    };
    n.min(b.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn alert(args: Vec<String>) -> String {
        json!({
            "@timestamp": "2026-12-01T00:00:00.000Z",
            "event": { "kind": "alert", "reason": format!("cp {}", args.join(" ")) },
            "process": { "pid": 7, "args": args, "args_count": 3 },
            "rule": { "name": "Boot File Copy" },
            "boot_copy": { "seq": 4 },
        })
        .to_string()
    }

    #[test]
    fn short_records_are_left_alone() {
        assert_eq!(fit(&alert(vec!["cp".into()]), 10_000), None);
    }

    #[test]
    fn long_arguments_are_cut_and_flagged_keeping_every_field() {
        let mut args = vec!["cp".to_owned()];
        args.extend((0..4000).map(|i| format!("--suffix={i:016}")));
        args.push("/boot/x".into());
        let line = alert(args);
        let out = fit(&line, 8192).unwrap();
        assert!(out.len() <= 8192, "{}", out.len());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["process"]["pid"], 7);
        assert_eq!(v["process"]["args_count"], 3);
        assert_eq!(v["rule"]["name"], "Boot File Copy");
        assert_eq!(v["boot_copy"]["seq"], 4);
        let args = v["process"]["args"].as_array().unwrap();
        assert_eq!(
            (&args[0], args.last().unwrap()),
            (&json!("cp"), &json!("/boot/x"))
        );
        let t = &v["boot_copy"]["trimmed"];
        assert_eq!(t["original_bytes"], line.len());
        let fields: Vec<&str> = t["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            fields.contains(&"process.args") && fields.contains(&"event.reason"),
            "{fields:?}"
        );
    }

    #[test]
    fn one_huge_argument_keeps_its_head_and_tail() {
        let big = format!("HEAD{}TAIL", "é".repeat(40_000));
        let out = fit(&alert(vec!["cp".into(), big, "/boot/x".into()]), 4096).unwrap();
        assert!(out.len() <= 4096, "{}", out.len());
        let v: Value = serde_json::from_str(&out).unwrap();
        let a = v["process"]["args"][1].as_str().unwrap();
        assert!(
            a.starts_with("HEAD") && a.ends_with("TAIL") && a.contains('…'),
            "{a}"
        );
    }

    #[test]
    fn other_long_strings_go_when_no_argument_text_is_left() {
        let line = json!({ "rule": { "description": "d".repeat(10_000) }, "x": 1 }).to_string();
        let v: Value = serde_json::from_str(&fit(&line, 1000).unwrap()).unwrap();
        assert_eq!(v["x"], 1);
        assert_eq!(v["boot_copy"]["trimmed"]["fields"][0], "rule.description");
        assert!(v.to_string().len() <= 1000);
    }

    #[test]
    fn a_limit_below_the_fixed_fields_still_gives_valid_json() {
        let out = fit(&alert(vec!["cp".into(); 100]), 10).unwrap();
        serde_json::from_str::<Value>(&out).unwrap();
    }

    #[test]
    fn non_json_is_left_to_the_caller() {
        assert_eq!(fit(&"x".repeat(100), 10), None);
    }

    #[test]
    fn escapes_and_surrogate_pairs_are_never_split() {
        // Every cut position over a string of escapes, multi-byte characters and pairs.
        let text = "a\"\\\u{1}é😀\t".repeat(40);
        let line = json!({ "process": { "command_line": text } }).to_string();
        for max in 30..line.len() {
            let out = fit(&line, max).unwrap();
            let v: Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("limit {max}: {e}: {out}"));
            assert!(v["process"]["command_line"].is_string());
        }
    }

    #[test]
    fn fields_keep_their_order() {
        let line = format!(
            r#"{{"z":1,"process":{{"pid":2,"args":["cp",{},"/boot/x"],"name":"cp"}},"a":3}}"#,
            vec!["\"--suffix=~~~~~~~~~~\""; 500].join(",")
        );
        let out = fit(&line, 400).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(
            out.starts_with(r#"{"z":1,"process":{"pid":2,"args":["cp","#),
            "{out}"
        );
        assert!(
            out.contains(r#""/boot/x"],"name":"cp"},"a":3,"boot_copy""#),
            "{out}"
        );
        assert!(out.len() <= 400, "{}", out.len());
        let args = v["process"]["args"].as_array().unwrap();
        assert!(args.len() < 502, "{}", args.len());
    }

    #[test]
    fn a_million_empty_arguments_are_cut_to_the_limit() {
        let mut args = vec![String::new(); 1_000_000];
        args[0] = "cp".into();
        *args.last_mut().unwrap() = "/boot/x".into();
        let out = fit(&alert(args), 48 * 1024).unwrap();
        assert!(out.len() <= 48 * 1024, "{}", out.len());
        let v: Value = serde_json::from_str(&out).unwrap();
        let args = v["process"]["args"].as_array().unwrap();
        assert_eq!(
            (&args[0], args.last().unwrap()),
            (&json!("cp"), &json!("/boot/x"))
        );
    }
}

//! Fitting a record into a receiver's size limit (rsyslog's `maxMessageSize`, journald's
//! `LineMax`) without cutting it into broken JSON: argument text is shortened, every field is
//! kept, and `boot_copy.trimmed` says what was cut and how long the record was. Only a record
//! over its sink's limit pays for this; the alert log never trims.
use serde_json::{Map, Value, json};

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

/// `line` if it fits in `max` bytes, else (`Some`) a shortened copy that does, or comes as close
/// as shortening argument text and other long strings allows. A line that is not a JSON object
/// is left to the caller (`None`).
pub fn fit(line: &str, max: usize) -> Option<String> {
    if line.len() <= max {
        return None;
    }
    let out = shortened(line, max);
    if line.len() > HEAP_RETURN {
        // The parsed record was many small allocations: hand the heap they leave back.
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        unsafe { libc::malloc_trim(0) };
    }
    out
}

/// Records longer than this hand the heap their trimming used back to the system (a watched
/// exec's alert can be megabytes).
const HEAP_RETURN: usize = 1 << 20;

fn shortened(line: &str, max: usize) -> Option<String> {
    let mut doc: Value = serde_json::from_str(line).ok()?;
    doc.as_object()?;
    let mut trimmed: Vec<String> = Vec::new();
    for _ in 0..MAX_STEPS {
        annotate(&mut doc, line.len(), &trimmed);
        let len = size(&doc);
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
    Some(doc.to_string())
}

/// `boot_copy.trimmed`: the record's length before trimming and the fields shortened.
fn annotate(doc: &mut Value, original: usize, fields: &[String]) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    let boot_copy = obj
        .entry("boot_copy")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(b) = boot_copy.as_object_mut() {
        b.insert(
            "trimmed".into(),
            json!({ "original_bytes": original, "fields": fields }),
        );
    }
}

/// Shortens the largest argument-text field (or, when none is left worth shortening, the
/// largest string anywhere) by at least `excess` bytes where it can; returns its path.
fn shrink_largest(doc: &mut Value, excess: usize) -> Option<String> {
    let named = ARGUMENT_TEXT
        .iter()
        .filter_map(|p| Some((p.to_string(), size(get(doc, p)?))))
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > MIN_TEXT);
    let (path, n) = named.or_else(|| largest_string(doc, String::new()))?;
    // At most half of it per step: the next step may find another field larger.
    let target = n.saturating_sub(excess).max(n / 2);
    shrink(get_mut(doc, &path)?, target);
    Some(path)
}

/// Text this short is not worth shortening further.
const MIN_TEXT: usize = 8;

/// Serialized length, counted without building the text.
fn size(v: &Value) -> usize {
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
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

fn get_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(doc, |v, k| v.get_mut(k))
}

/// The path and size of the largest string (or array of strings) outside `boot_copy.trimmed`.
fn largest_string(v: &Value, path: String) -> Option<(String, usize)> {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !(path == "boot_copy" && *k == "trimmed"))
            .filter_map(|(k, v)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                largest_string(v, p)
            })
            .max_by_key(|(_, n)| *n),
        Value::String(_) | Value::Array(_) => Some((path, size(v))).filter(|(_, n)| *n > MIN_TEXT),
        _ => None,
    }
}

/// Brings `v` (a string, or an array of them) down to about `target` serialized bytes: an
/// array whose bytes are mostly one element has that element cut, else it loses elements from
/// its middle (first and last kept: a copy's target is usually last); a string keeps its head
/// and tail.
fn shrink(v: &mut Value, target: usize) {
    match v {
        Value::String(s) => *s = cut_middle(s, target),
        Value::Array(items) => loop {
            let total = array_size(items);
            let Some((i, big)) = items.iter().map(size).enumerate().max_by_key(|(_, n)| *n) else {
                return;
            };
            if total <= target {
                return;
            }
            if big * 2 >= total || items.len() <= 2 {
                shrink(&mut items[i], target.saturating_sub(total - big));
                if array_size(items) == total {
                    return;
                }
            } else {
                // Drop about as many middle elements as the excess takes, one at least.
                let avg = (total / items.len()).max(1);
                let n = ((total - target) / avg).clamp(1, items.len() - 2);
                let mid = items.len() / 2 - n / 2;
                items.drain(mid..mid + n);
            }
        },
        _ => {}
    }
}

/// Serialized length of an array of `items`.
fn array_size(items: &[Value]) -> usize {
    2 + items.iter().map(size).sum::<usize>() + items.len().saturating_sub(1)
}

/// `s` cut to about `target` bytes, its head and tail kept around `…`, on char boundaries.
fn cut_middle(s: &str, target: usize) -> String {
    let keep = target.saturating_sub(5) / 2;
    if s.len() <= keep * 2 {
        return s.to_owned();
    }
    let head = floor_boundary(s, keep);
    let tail = ceil_boundary(s, s.len() - keep);
    format!("{}…{}", &s[..head], &s[tail..])
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

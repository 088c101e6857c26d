//! `boot-copy-agent verify`: checks the HMAC chain of alert logs and names the first line that
//! was removed, reordered, edited or inserted.
//!
//! Lines are read in the order given (rotated files oldest first). A run's first record
//! (`boot_copy.seq` 1) starts from [`GENESIS`] and must name the previous run's last record
//! (`boot_copy.chain.previous`): after a clean stop exactly the last line before it, after a
//! crash any record of that run (the status file lags by up to a second). When the input
//! begins in the middle of a run (older files rotated away), its first line is the trusted
//! anchor: its own content cannot be checked, every later line is.
use super::chain::{GENESIS, Key, Mac256, take_hmac, unhex};
use crate::describe::NAMESPACE;
use serde_json::Value;
use std::{collections::HashMap, fmt, path::PathBuf};

/// One input line and where it came from.
pub struct Line {
    pub file: PathBuf,
    /// 1-based.
    pub number: usize,
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.number)
    }
}

/// A verified input.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    /// Runs of the agent seen (chain starts, plus a run the input begins in the middle of).
    pub runs: usize,
    /// The input began mid-run at this seq (its first line is trusted, not verified).
    pub anchored_at: Option<u64>,
}

/// The first broken link.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// Index into the input lines.
    pub index: usize,
    pub problem: Problem,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    NotJson,
    Unchained,
    /// Records `from..=to` are missing before the line.
    Removed {
        from: u64,
        to: u64,
    },
    /// The line holds `found` where `expected` belongs; `expected` is at index `at`, if present.
    Reordered {
        found: u64,
        expected: u64,
        at: Option<usize>,
    },
    Edited,
    Inserted,
    /// A run's first record does not name the previous run's last record.
    Unlinked {
        why: String,
    },
}

impl Failure {
    pub fn describe(&self, lines: &[Line]) -> String {
        let at = &lines[self.index];
        let what = match &self.problem {
            Problem::NotJson => "not a JSON record: edited or inserted".to_owned(),
            Problem::Unchained => {
                "no boot_copy.seq or boot_copy.chain.hmac: inserted, or edited".to_owned()
            }
            Problem::Removed { from, to } if from == to => {
                format!("record removed before this line (seq {from} is missing)")
            }
            Problem::Removed { from, to } => format!(
                "{} records removed before this line (seq {from} to {to} are missing)",
                to - from + 1
            ),
            Problem::Reordered {
                found,
                expected,
                at: Some(i),
            } => format!(
                "records reordered: seq {found} is where seq {expected} belongs (seq {expected} is at {})",
                lines[*i]
            ),
            Problem::Reordered {
                found, expected, ..
            } => {
                format!("records reordered: seq {found} is where seq {expected} belongs")
            }
            Problem::Edited => "record edited: its HMAC does not match its content".to_owned(),
            Problem::Inserted => {
                "record inserted: not part of the chain (the next line follows the one before it)"
                    .to_owned()
            }
            Problem::Unlinked { why } => {
                format!("agent restart not linked to the previous run: {why}")
            }
        };
        format!("{at}: {what}")
    }
}

/// A record checked as the successor of another.
#[derive(Clone)]
struct Entry {
    seq: u64,
    mac: Mac256,
    previous: Option<Value>,
}

/// A line's claims, before verification.
struct Parsed {
    seq: u64,
    claimed: Mac256,
    /// The record without its HMAC: what the HMAC covers.
    body: Value,
}

fn parse(line: &Line) -> Result<Parsed, Problem> {
    let mut body: Value = serde_json::from_str(&line.text).map_err(|_| Problem::NotJson)?;
    let claimed = take_hmac(&mut body)
        .and_then(|h| unhex(&h))
        .ok_or(Problem::Unchained)?;
    let seq = body[NAMESPACE]["seq"].as_u64().ok_or(Problem::Unchained)?;
    Ok(Parsed { seq, claimed, body })
}

/// Checks `line` as the record following `prev` (`None`: the first line of the input).
fn successor(key: &Key, prev: Option<&Entry>, line: &Line) -> Result<Entry, Problem> {
    let p = parse(line)?;
    let entry = |p: Parsed| Entry {
        seq: p.seq,
        mac: p.claimed,
        previous: p.body[NAMESPACE]["chain"].get("previous").cloned(),
    };
    let from = match prev {
        _ if p.seq == 1 => GENESIS,
        None => return Ok(entry(p)), // the anchor
        Some(prev) if p.seq == prev.seq + 1 => prev.mac,
        Some(prev) if p.seq > prev.seq + 1 => {
            return Err(Problem::Removed {
                from: prev.seq + 1,
                to: p.seq - 1,
            });
        }
        Some(prev) => {
            return Err(Problem::Reordered {
                found: p.seq,
                expected: prev.seq + 1,
                at: None,
            });
        }
    };
    if key.link(&from, &p.body) != p.claimed {
        return Err(Problem::Edited);
    }
    Ok(entry(p))
}

/// Verifies `lines` in order; the first broken link on failure.
pub fn verify(key: &Key, lines: &[Line]) -> Result<Summary, Failure> {
    let mut prev: Option<Entry> = None;
    // seq → HMAC of the records of the run being read, and of the run before it.
    let mut run: HashMap<u64, Mac256> = HashMap::new();
    let mut runs = 0;
    let mut anchored_at = None;
    for (index, line) in lines.iter().enumerate() {
        let entry = successor(key, prev.as_ref(), line)
            .map_err(|problem| classify(key, lines, index, prev.as_ref(), problem))
            .map_err(|problem| Failure { index, problem })?;
        if entry.seq == 1 {
            if prev.is_some() {
                check_link(&entry, &run, prev.as_ref().map(|p| p.seq)).map_err(|why| Failure {
                    index,
                    problem: Problem::Unlinked { why },
                })?;
            }
            run.clear();
            runs += 1;
        } else if prev.is_none() {
            anchored_at = Some(entry.seq);
            runs += 1;
        }
        run.insert(entry.seq, entry.mac);
        prev = Some(entry);
    }
    Ok(Summary {
        records: lines.len(),
        runs,
        anchored_at,
    })
}

/// Names what happened at a line that does not follow `prev`, looking at the lines after it.
fn classify(
    key: &Key,
    lines: &[Line],
    index: usize,
    prev: Option<&Entry>,
    problem: Problem,
) -> Problem {
    let next = lines.get(index + 1);
    let Some(prev) = prev else {
        return problem; // the first line can only be unreadable
    };
    let expected = prev.seq + 1;
    // A line that is elsewhere in the run: reordered.
    if let Problem::Removed { .. } = problem
        && let Some(at) = lines[index + 1..]
            .iter()
            .map(parse)
            .take_while(|p| !matches!(p, Ok(p) if p.seq == 1))
            .position(|p| matches!(p, Ok(p) if p.seq == expected))
    {
        return Problem::Reordered {
            found: parse(&lines[index]).map_or(0, |p| p.seq),
            expected,
            at: Some(index + 1 + at),
        };
    }
    // The next line follows this one's HMAC as if this one were in place: this one was edited.
    if let (Ok(this), Some(next)) = (parse(&lines[index]), next) {
        let in_place = Entry {
            seq: expected,
            mac: this.claimed,
            previous: None,
        };
        if successor(key, Some(&in_place), next).is_ok_and(|n| n.seq != 1) {
            return Problem::Edited;
        }
    }
    // The next line follows the one before this one: this one was inserted.
    if next.is_some_and(|next| successor(key, Some(prev), next).is_ok_and(|n| n.seq != 1)) {
        return Problem::Inserted;
    }
    problem
}

/// A run's first record must name the previous run's last record.
fn check_link(
    start: &Entry,
    previous_run: &HashMap<u64, Mac256>,
    last: Option<u64>,
) -> Result<(), String> {
    let Some(link) = &start.previous else {
        return Err("it names no previous record".to_owned());
    };
    let (Some(seq), Some(mac)) = (link["seq"].as_u64(), link["hmac"].as_str().and_then(unhex))
    else {
        return Err(format!("unreadable boot_copy.chain.previous {link}"));
    };
    let clean = link["clean"].as_bool().unwrap_or(false);
    let last = last.unwrap_or(0);
    let first = previous_run.keys().min().copied().unwrap_or(1);
    match previous_run.get(&seq) {
        Some(found) if *found != mac => Err(format!(
            "the previous run's record seq {seq} is not the one it names (edited)"
        )),
        Some(_) if clean && seq != last => Err(format!(
            "the previous run stopped cleanly at seq {seq}, but the log goes on to seq {last} (inserted)"
        )),
        Some(_) => Ok(()),
        None if seq < first => Ok(()), // before the input began
        None => Err(format!(
            "the previous run's last record, seq {seq}, is missing: records removed after seq {last}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::Chain;
    use super::*;
    use serde_json::json;

    fn key() -> Key {
        Key::from_bytes(vec![7; 32]).unwrap()
    }

    /// A run of `n` sealed records, as log lines.
    fn run(n: u64, previous: Option<Value>) -> Vec<String> {
        let mut chain = Chain::new(key(), previous);
        (1..=n)
            .map(|seq| {
                let mut doc =
                    json!({"message": format!("record {seq}"), "boot_copy": {"seq": seq}});
                chain.seal(&mut doc);
                doc.to_string()
            })
            .collect()
    }

    fn lines(texts: &[String]) -> Vec<Line> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Line {
                file: "log".into(),
                number: i + 1,
                text: t.clone(),
            })
            .collect()
    }

    fn problem(texts: &[String]) -> (usize, Problem) {
        let f = verify(&key(), &lines(texts)).unwrap_err();
        (f.index, f.problem)
    }

    fn mac_of(line: &str) -> String {
        let v: Value = serde_json::from_str(line).unwrap();
        v["boot_copy"]["chain"]["hmac"].as_str().unwrap().to_owned()
    }

    #[test]
    fn intact_runs_verify_across_a_restart() {
        let first = run(5, None);
        let link = json!({"seq": 5, "hmac": mac_of(&first[4]), "clean": true});
        let all = [first, run(3, Some(link))].concat();
        let s = verify(&key(), &lines(&all)).unwrap();
        assert_eq!((s.records, s.runs, s.anchored_at), (8, 2, None));
        // Rotated away: the input starts mid-run.
        assert_eq!(
            verify(&key(), &lines(&all[2..])).unwrap().anchored_at,
            Some(3)
        );
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let good = run(6, None);
        let mut removed = good.clone();
        removed.remove(2);
        assert_eq!(problem(&removed), (2, Problem::Removed { from: 3, to: 3 }));
        let mut swapped = good.clone();
        swapped.swap(2, 3);
        assert_eq!(
            problem(&swapped),
            (
                2,
                Problem::Reordered {
                    found: 4,
                    expected: 3,
                    at: Some(3)
                }
            )
        );
        let mut edited = good.clone();
        edited[3] = edited[3].replace("record 4", "record 5");
        assert_eq!(problem(&edited), (3, Problem::Edited));
        let mut inserted = good.clone();
        let forged = good[2].replace("record 3", "forged");
        inserted.insert(3, forged);
        assert_eq!(problem(&inserted), (3, Problem::Inserted));
        let mut unchained = good.clone();
        unchained.insert(1, r#"{"message":"hi"}"#.to_owned());
        assert_eq!(problem(&unchained), (1, Problem::Inserted));
    }

    #[test]
    fn a_restart_must_link_to_the_previous_run() {
        let first = run(5, None);
        let link = |seq: u64, clean| json!({"seq": seq, "hmac": mac_of(&first[seq as usize - 1]), "clean": clean});
        // Cut the end of the first run: the second names a record that is gone.
        let cut = [first[..3].to_vec(), run(2, Some(link(5, true)))].concat();
        assert!(matches!(problem(&cut), (3, Problem::Unlinked { .. })));
        // After a crash, records after the status file's last one are legitimate.
        let crashed = [first.clone(), run(2, Some(link(4, false)))].concat();
        verify(&key(), &lines(&crashed)).unwrap();
        let unlinked = [first.clone(), run(2, None)].concat();
        assert!(matches!(problem(&unlinked), (5, Problem::Unlinked { .. })));
    }
}

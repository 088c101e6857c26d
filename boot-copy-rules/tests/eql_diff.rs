//! Differential tests against Elastic's own EQL parser: the `eql` package from PyPI in its
//! Elasticsearch-syntax mode (`tests/eql_diff/normalize.py`, installed into `target/eql-venv`).
//!
//! Parses: every query of the corpus (`tests/eql_diff/corpus.txt`, the bundled rule files,
//! Elastic's vendored Linux rule library and variants generated here) must be accepted by both
//! parsers or rejected by both, and where both accept, their trees, normalized into one JSON
//! shape (documented in normalize.py), must be equal: the same fields, operators, literals and
//! nesting. Both check ECS fields against the same table of ECS field types (the engine's; the
//! package gets it as a schema), so a constant of the wrong type is refused by both.
//!
//! Evaluation: over the vendored rule library, events generated near each rule's decision
//! boundary are judged by `tests/eql_diff/evaluate.py`, an evaluator with Elasticsearch's
//! semantics over the package's parse (the package's own evaluator does not follow
//! Elasticsearch; evaluate.py lists each divergence), and must get the engine's verdicts.
//!
//! Needs python3 with venv (installed by `cargo xtask setup`) and PyPI the first time.
use boot_copy_rules::ast::{Expr, Literal, LogicOp, MatchOp, Query};
use serde_json::{Value, json};
use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

/// What a corpus entry must do, on top of both parsers agreeing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Agree, whichever way.
    Agree,
    /// Both accept, with equal trees.
    Accept,
    /// Both reject.
    Reject,
    /// The eql package accepts; the engine must reject (valid EQL outside the supported subset).
    EngineRejects,
    /// The eql package rejects; the engine must accept (as Elasticsearch does).
    EngineAccepts,
    /// Generated in a class the engine refuses by design: the engine may reject what the eql
    /// package accepts; otherwise the two must agree.
    EngineMayReject,
}

#[derive(Debug)]
struct Entry {
    text: String,
    expect: Expect,
    /// Where the entry comes from, for messages.
    origin: String,
}

/// The workspace.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the rules crate is inside the workspace")
        .to_path_buf()
}

/// This crate's test data.
fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eql_diff")
}

// --- The corpus -------------------------------------------------------------------------------

/// Reads `corpus.txt` (format described at its top).
fn corpus_file() -> Vec<Entry> {
    let path = here().join("corpus.txt");
    let text = fs::read_to_string(&path).expect("tests/eql_diff/corpus.txt");
    let mut entries: Vec<Entry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) && !entries.is_empty() {
            let last = entries.last_mut().unwrap();
            last.text.push('\n');
            last.text.push_str(line);
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (expect, query) = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            Some(("accept", q)) => (Expect::Accept, q),
            Some(("reject", q)) => (Expect::Reject, q),
            Some(("engine-rejects", q)) => (Expect::EngineRejects, q),
            Some(("engine-accepts", q)) => (Expect::EngineAccepts, q),
            Some((tag, _)) => panic!("corpus.txt:{}: unknown tag [{tag}]", n + 1),
            None => (Expect::Agree, line),
        };
        entries.push(Entry {
            text: query.to_owned(),
            expect,
            origin: format!("corpus.txt:{}", n + 1),
        });
    }
    entries
}

/// The query of every rule file the project ships (`rules/*.toml`).
fn bundled_rules() -> Vec<Entry> {
    rule_queries(&root().join("rules"), "rules")
}

/// The queries of Elastic's vendored Linux rule library (`tests/data/detection-rules`).
fn library_rules() -> Vec<Entry> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/detection-rules");
    rule_queries(&dir, "detection-rules")
}

/// The query of every `*.toml` rule file in `dir`, each expected to parse with equal trees.
fn rule_queries(dir: &Path, origin: &str) -> Vec<Entry> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    files
        .iter()
        .map(|file| {
            let doc: toml::Table = fs::read_to_string(file)
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let query = doc["rule"]["query"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no rule.query", file.display()));
            Entry {
                text: query.to_owned(),
                expect: Expect::Accept,
                origin: format!("{origin}/{}", file.file_name().unwrap().to_string_lossy()),
            }
        })
        .collect()
}

/// Variants generated from operator, value and function grids, and mutations of a rule query.
fn generated(rule_query: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut add_expecting = |expect: Expect, origin: &str, text: String| {
        out.push(Entry {
            text,
            expect,
            origin: format!("generated:{origin}"),
        })
    };
    // Classes the engine refuses by design, with clear messages: ordering or wildcard-matching
    // against null, null in an `in` list, `in~` on a number field, a literal where a function
    // wants a field, `length~`, and regex patterns outside the Lucene syntax the engine takes.
    let may_reject = |refused: bool| {
        if refused {
            Expect::EngineMayReject
        } else {
            Expect::Agree
        }
    };

    let fields = [
        "process.name",
        "?process.parent.name",
        "process.args",
        "process.pid",
    ];
    let literals = [
        r#""cp""#,
        r#""""#,
        r#""a\"b\\c\td""#,
        r#""/boot/*""#,
        "1",
        "-7",
        "1.5",
        "2e3",
        "true",
        "false",
        "null",
    ];
    for field in fields {
        for op in ["==", "!=", "<", "<=", ">", ">="] {
            for lit in literals {
                let refused = lit == "null" && !matches!(op, "==" | "!=");
                add_expecting(
                    may_reject(refused),
                    "cmp",
                    format!("process where {field} {op} {lit}"),
                );
            }
            add_expecting(
                Expect::Agree,
                "cmp-reversed",
                format!(r#"process where "x" {op} {field}"#),
            );
        }
    }

    let lists = [
        r#"("cp")"#,
        r#"("cp", "mv")"#,
        r#"("CP", "Mv", "")"#,
        "(1, 2)",
        r#"("cp", 1)"#,
        "(null)",
        "(true, false)",
        "()",
    ];
    for field in fields {
        for op in ["in", "in~", "not in", "not in~"] {
            for list in lists {
                // `in~` is a string operator; the engine refuses it on a number field.
                let refused =
                    list.contains("null") || (op.ends_with('~') && field == "process.pid");
                add_expecting(
                    may_reject(refused),
                    "in",
                    format!("process where {field} {op} {list}"),
                );
            }
        }
    }

    let patterns = [
        r#""/boot/*""#,
        r#""cp""#,
        r#""?p""#,
        r#""\\*""#,
        r#""*""#,
        r#""""#,
        r#"("/boot/*", "*/boot/*")"#,
        r#"("a")"#,
        "1",
        "null",
        "()",
    ];
    for field in fields {
        for op in ["like", "like~", ":"] {
            for pattern in patterns {
                add_expecting(
                    may_reject(pattern == "null"),
                    "like",
                    format!("process where {field} {op} {pattern}"),
                );
            }
            add_expecting(
                Expect::Agree,
                "not-like",
                format!(r#"process where not {field} {op} "x*""#),
            );
        }
    }

    let string_args = [
        r#"(process.name, "c")"#,
        r#"(?process.parent.name, "C", "d")"#,
        r#"(process.args, "")"#,
        "(process.name)",
        "()",
        r#"("c", process.name)"#,
        "(process.name, 1)",
    ];
    for function in ["startsWith", "endsWith", "stringContains", "wildcard"] {
        for ci in ["", "~"] {
            for args in string_args {
                let expect = may_reject(args.starts_with("(\""));
                add_expecting(
                    expect,
                    "function",
                    format!("process where {function}{ci}{args}"),
                );
                add_expecting(
                    expect,
                    "function-not",
                    format!(r#"process where not {function}{ci}{args} and process.name == "cp""#),
                );
            }
        }
    }
    for ci in ["", "~"] {
        for args in ["(process.name)", "(process.args)", "()", r#"("cp")"#] {
            for cmp in ["== 2", "> 0", r#"== "2""#, ""] {
                add_expecting(
                    may_reject(ci == "~" || args.starts_with("(\"")),
                    "length",
                    format!("process where length{ci}{args} {cmp}"),
                );
            }
        }
    }

    // Mutations of the rule query: every token-boundary prefix (mostly invalid), each operator
    // swapped for its relatives, each field made optional, each parenthesis dropped.
    let body = rule_query.trim();
    for (i, c) in body.char_indices() {
        if c.is_whitespace() || c == '(' || c == ')' || c == ',' {
            add_expecting(Expect::Agree, "prefix", body[..i].to_owned());
        }
    }
    add_expecting(Expect::Agree, "prefix", body.to_owned());
    let swaps: &[(&str, &[&str])] = &[
        (
            " in (",
            &[" in~ (", " not in (", " : (", " like (", " like~ ("],
        ),
        (" like~ ", &[" like ", " : ", " in~ ", " == ", " regex~ "]),
        (" == ", &[" != ", " : ", " like ", " <= ", " = "]),
        (" != ", &[" == ", " > "]),
        (" and ", &[" or ", " and not ", " , "]),
        (" or ", &[" and ", " or not "]),
        ("not (", &["(", "not not (", "not ((", "!("]),
    ];
    for (from, tos) in swaps {
        for (at, _) in body.match_indices(from) {
            for to in *tos {
                let refused = to.contains("regex") || (*from == " != " && *to == " > ");
                add_expecting(
                    may_reject(refused),
                    "swap",
                    format!("{}{to}{}", &body[..at], &body[at + from.len()..]),
                );
            }
        }
    }
    let mut at = 0;
    while let Some(found) = body[at..].find("process.") {
        let i = at + found;
        if i == 0 || !body.as_bytes()[i - 1].is_ascii_alphanumeric() {
            add_expecting(
                Expect::Agree,
                "optional",
                format!("{}?{}", &body[..i], &body[i..]),
            );
        }
        at = i + 1;
    }
    for (i, c) in body.char_indices() {
        if c == '(' || c == ')' || c == '"' {
            add_expecting(
                Expect::Agree,
                "drop",
                format!("{}{}", &body[..i], &body[i + 1..]),
            );
        }
    }
    out
}

// --- Elastic's parser (Python) ----------------------------------------------------------------

/// The venv's python with the pinned `eql` installed; builds the venv when missing or stale.
fn eql_python() -> PathBuf {
    let root = root();
    let venv = root.join("target/eql-venv");
    let python = venv.join("bin/python");
    let requirements = here().join("requirements.txt");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = fs::read_to_string(&requirements).expect("tests/eql_diff/requirements.txt");
    fs::create_dir_all(root.join("target")).unwrap();
    // Concurrent test runs build the venv once.
    let lock = fs::File::create(root.join("target/eql-venv.lock")).unwrap();
    lock.lock().expect("locking target/eql-venv.lock");
    if python.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let started = Instant::now();
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("running python3 (install python3 and python3-venv: `cargo xtask setup`)");
        assert!(
            status.success(),
            "python3 -m venv {} failed (python3-venv missing? `cargo xtask setup` installs it)",
            venv.display()
        );
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .expect("running pip in the venv");
    assert!(
        status.success(),
        "pip install -r {} failed (PyPI unreachable?)",
        requirements.display()
    );
    fs::write(&stamp, &wanted).unwrap();
    eprintln!(
        "eql_diff: built {} in {:.1} s",
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    python
}

/// Runs normalize.py over the queries: one `{"ok": tree}` or `{"error": ...}` per query.
fn elastic_parse(queries: &[&str]) -> Vec<Value> {
    let python = eql_python();
    let script = here().join("normalize.py");
    // The ECS field types the engine checks queries against, given to the package as a schema.
    let ecs_types = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/eql/ecs_types.tsv");
    assert!(ecs_types.is_file(), "{} is missing", ecs_types.display());
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--ecs-types")
        .arg(&ecs_types)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running normalize.py");
    let mut input = String::new();
    for q in queries {
        input.push_str(&serde_json::to_string(q).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "normalize.py failed");
    let results: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("normalize.py wrote {l}: {e}")))
        .collect();
    assert_eq!(
        results.len(),
        queries.len(),
        "normalize.py: one line per query"
    );
    results
}

// --- The engine's tree, normalized the same way -----------------------------------------------

/// The engine's verdict on a query (parse and compile: what a rule file load does) and, when it
/// accepts, its parse tree in normalize.py's shape.
fn engine_parse(text: &str) -> Result<Value, String> {
    match boot_copy_rules::compile(text) {
        Ok(compiled) => Ok(norm_query(compiled.ast())),
        Err(e) => Err(e.to_string()),
    }
}

fn norm_query(q: &Query) -> Value {
    json!({"event": q.category, "where": norm(&q.condition)})
}

fn is_literal(v: &Value) -> bool {
    v.get("lit").is_some() || v.get("num").is_some()
}

fn norm(e: &Expr) -> Value {
    match e {
        Expr::Literal { value, .. } => match value {
            Literal::Null => json!({"lit": null}),
            Literal::Bool(b) => json!({"lit": b}),
            Literal::Int(n) => json!({"num": *n as f64}),
            Literal::Float(n) => json!({"num": number(*n)}),
            Literal::Str(s) => json!({"lit": s}),
        },
        Expr::Field { field, .. } => json!({"field": field.name, "optional": field.optional}),
        Expr::Call {
            name,
            insensitive,
            args,
            ..
        } => {
            let args: Vec<Value> = args.iter().map(norm).collect();
            if name == "wildcard" && !args.is_empty() {
                json!({"wildcard": args[0], "patterns": args[1..], "ci": insensitive})
            } else {
                json!({"call": name, "ci": insensitive, "args": args})
            }
        }
        Expr::Not { expr, .. } => not(norm(expr)),
        Expr::Logic {
            op, left, right, ..
        } => {
            let key = if *op == LogicOp::And { "and" } else { "or" };
            let mut terms = Vec::new();
            for side in [left, right] {
                match norm(side) {
                    Value::Object(mut m) if m.len() == 1 && m.contains_key(key) => {
                        if let Some(Value::Array(inner)) = m.remove(key) {
                            terms.extend(inner);
                        }
                    }
                    other => terms.push(other),
                }
            }
            json!({ key: terms })
        }
        Expr::Compare {
            op, left, right, ..
        } => {
            let (mut l, mut r, mut op) = (norm(left), norm(right), *op);
            if is_literal(&l) && !is_literal(&r) {
                std::mem::swap(&mut l, &mut r);
                op = op.mirror();
            }
            json!({"cmp": op.as_str(), "left": l, "right": r})
        }
        Expr::In {
            expr,
            list,
            negated,
            insensitive,
            ..
        } => {
            let set = json!({
                "in": norm(expr),
                "values": list.iter().map(norm).collect::<Vec<_>>(),
                "ci": insensitive,
            });
            if *negated { not(set) } else { set }
        }
        Expr::Match {
            expr, op, patterns, ..
        } => {
            let patterns: Vec<Value> = patterns.iter().map(norm).collect();
            match op {
                MatchOp::Like | MatchOp::LikeCi | MatchOp::Seq => json!({
                    "wildcard": norm(expr),
                    "patterns": patterns,
                    "ci": *op != MatchOp::Like,
                }),
                MatchOp::Regex | MatchOp::RegexCi => {
                    let mut args = vec![norm(expr)];
                    args.extend(patterns);
                    json!({"call": "match", "ci": *op == MatchOp::RegexCi, "args": args})
                }
            }
        }
    }
}

/// A number as normalize.py writes it: JSON has no infinities, so those are strings.
fn number(n: f64) -> Value {
    if n.is_nan() {
        json!("nan")
    } else if n.is_infinite() {
        json!(if n > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(n)
    }
}

/// `not`, with a double negation removed (as normalize.py does).
fn not(inner: Value) -> Value {
    match inner {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("not") => m.remove("not").unwrap(),
        other => json!({ "not": other }),
    }
}

// --- The test ----------------------------------------------------------------------------------

#[test]
fn elastic_eql_parser_agrees_with_the_engine() {
    let started = Instant::now();
    let mut entries = corpus_file();
    let rules = bundled_rules();
    let rule_query = rules[0].text.clone();
    entries.extend(rules);
    entries.extend(library_rules());
    entries.extend(generated(&rule_query));
    // The same text can come from several sources; keep the first (the most specific expectation).
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert(e.text.clone()));

    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    let elastic = elastic_parse(&texts);

    let mut problems = String::new();
    let (mut both_accept, mut both_reject) = (0, 0);
    let (mut engine_only_rejects, mut engine_only_accepts) = (0, 0);
    for (entry, theirs) in entries.iter().zip(&elastic) {
        let ours = engine_parse(&entry.text);
        let theirs_tree = theirs.get("ok");
        let verdict = |accepted: bool| if accepted { "accepts" } else { "rejects" };
        let mut problem = |what: String| {
            let _ = writeln!(
                problems,
                "--- {} ({:?}): {what}\n    query: {}\n    eql:    {}\n    engine: {}",
                entry.origin,
                entry.expect,
                entry.text.replace('\n', "\n            "),
                theirs,
                match &ours {
                    Ok(tree) => format!("{{\"ok\": {tree}}}"),
                    Err(e) => format!("error: {e}"),
                }
            );
        };
        match (entry.expect, theirs_tree, &ours) {
            (Expect::EngineRejects | Expect::EngineMayReject, Some(_), Err(_)) => {
                engine_only_rejects += 1
            }
            (Expect::EngineRejects, t, o) => problem(format!(
                "expected eql to accept and the engine to reject; eql {}, engine {}",
                verdict(t.is_some()),
                verdict(o.is_ok())
            )),
            (Expect::EngineAccepts, None, Ok(_)) => engine_only_accepts += 1,
            (Expect::EngineAccepts, t, o) => problem(format!(
                "expected eql to reject and the engine to accept; eql {}, engine {}",
                verdict(t.is_some()),
                verdict(o.is_ok())
            )),
            (_, Some(t), Ok(o)) => {
                if t != o {
                    problem("both accept, but the trees differ".into());
                } else if entry.expect == Expect::Reject {
                    problem("expected both to reject".into());
                } else {
                    both_accept += 1;
                }
            }
            (_, None, Err(_)) => {
                if entry.expect == Expect::Accept {
                    problem("expected both to accept".into());
                } else {
                    both_reject += 1;
                }
            }
            (_, t, o) => problem(format!(
                "eql {}, engine {}",
                verdict(t.is_some()),
                verdict(o.is_ok())
            )),
        }
    }
    eprintln!(
        "eql_diff: {} queries: {both_accept} accepted by both with equal trees, {both_reject} \
         rejected by both, {engine_only_rejects} refused by the engine alone (outside its \
         subset), {engine_only_accepts} accepted by the engine alone (as Elasticsearch does); \
         {:.1} s",
        entries.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "disagreements with Elastic's EQL parser:\n{problems}"
    );
}

// --- Evaluation over Elastic's Linux rule library ---------------------------------------------

/// Events generated from each vendored rule's own literals near its decision boundary (a walk of
/// the condition that makes it true, then every single-field edit of that event: removed,
/// case-swapped, one character off), judged by `tests/eql_diff/evaluate.py`, an evaluator with
/// Elasticsearch's semantics over the `eql` package's parse (its module docs list where it
/// departs from the package's own evaluator, following Elasticsearch). Each verdict must equal
/// the engine's, both for the rule's query alone and through the indexed [`RuleSet`].
#[test]
fn elasticsearch_semantics_agree_on_the_rule_library() {
    use boot_copy_rules::{Document, Exceptions, load_ruleset};
    let started = Instant::now();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/detection-rules");
    let set = load_ruleset(Some(&dir), &Exceptions::default()).expect("the library loads");
    let mut files: Vec<PathBuf> = set.rules().iter().map(|r| r.source.clone()).collect();
    files.sort();
    let output = Command::new(eql_python())
        .arg(here().join("evaluate.py"))
        .args(&files)
        .stderr(Stdio::inherit())
        .output()
        .expect("running evaluate.py");
    assert!(output.status.success(), "evaluate.py failed");
    let text = String::from_utf8(output.stdout).expect("UTF-8");

    let by_file: std::collections::HashMap<String, usize> = set
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.source.file_name().unwrap().to_string_lossy().into_owned(),
                i,
            )
        })
        .collect();
    let mut problems = Vec::new();
    let (mut events, mut matches) = (0, 0);
    let mut rules_matched = std::collections::BTreeSet::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("evaluate.py writes JSON lines");
        let file = row["rule"].as_str().unwrap();
        let want = row["match"].as_bool().unwrap();
        let i = by_file[file];
        let doc = Document::from_json(&row["event"]);
        let alone = set.rules()[i].query.matches(&doc);
        let indexed = set.matching(&doc).any(|(j, _)| j == i);
        if alone != want || indexed != want {
            problems.push(format!(
                "{file}: Elasticsearch {want}, engine {alone}, rule set {indexed}\n    event: {}",
                row["event"]
            ));
        }
        events += 1;
        if want {
            matches += 1;
            rules_matched.insert(i);
        }
    }
    eprintln!(
        "eql_diff evaluation: {events} events over {} rules, {matches} matching, {} rules with a \
         matching event; {} disagreements; {:.1} s",
        set.rules().len(),
        rules_matched.len(),
        problems.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} disagreements with Elasticsearch's semantics (first 20):\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    assert!(events >= 10_000, "only {events} events");
    assert!(
        rules_matched.len() >= 155,
        "only {} rules got a matching event: the generator misses their boundary",
        rules_matched.len()
    );
}

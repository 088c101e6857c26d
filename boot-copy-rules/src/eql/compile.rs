//! Validation and compilation of a parsed query into the form [`super::eval`] runs.
//!
//! Everything that is not supported is refused here with its position, never ignored. The compiled
//! form owns every constant it needs (wildcards already split, numbers already parsed), so
//! evaluation allocates nothing.

use super::EqlError;
use super::ast::{CmpOp, Expr, Field, Literal, LogicOp, MatchOp, Pos, Query};
use super::regex::Regex;
use super::schema::{FieldType, field_type};
use super::wildcard::Wildcard;

/// A compiled boolean condition.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    /// A test on one field: true if **any** value of the field passes (false if it is missing).
    Test(Box<str>, Test),
    /// A string function of two fields (`startsWith(process.executable, process.command_line)`).
    /// Elasticsearch runs it as a script over doc values, which takes each field's first doc
    /// value: the least, as keyword doc values are sorted. False if either has no string value.
    Pair(Box<str>, Box<str>, PairOp),
}

/// The functions [`Node::Pair`] applies (case-sensitive, as their `~` forms are refused there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairOp {
    StartsWith,
    EndsWith,
    Contains,
}

/// A test applied to each scalar value of a field.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// The field has a non-null value.
    Exists,
    /// Exact, case-sensitive equality.
    Eq(Operand),
    /// Equal to one of (case-sensitive).
    In(Box<[Operand]>),
    /// Equal to one of, folding ASCII case for strings.
    InCi(Box<[Operand]>),
    /// `<`, `<=`, `>`, `>=` (never `==`/`!=`).
    Range(CmpOp, Operand),
    /// Whole-value wildcard match against any of the patterns.
    Like(Box<[Wildcard]>),
    /// Whole-value Lucene regular expression match against any of the patterns.
    Regex(Box<[Regex]>),
    StartsWith(Box<str>, bool),
    EndsWith(Box<str>, bool),
    Contains(Box<str>, bool),
    /// `length(field) <op> n`, counting UTF-16 code units as Elasticsearch (Java) does.
    Length(CmpOp, f64),
}

/// A constant operand, pre-digested for every type of value it may meet.
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub(crate) lit: Lit,
    /// The constant as a keyword field would hold it (`21` for the number 21).
    pub(crate) text: Box<str>,
    /// The constant as a number, if it is one or parses as one.
    pub(crate) num: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str,
    Num,
    Bool(bool),
}

impl Operand {
    pub(crate) fn from_literal(lit: &Literal) -> Option<Operand> {
        Some(match lit {
            Literal::Null => return None,
            Literal::Str(s) => Operand {
                lit: Lit::Str,
                text: s.as_str().into(),
                num: s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            },
            Literal::Int(n) => Operand {
                lit: Lit::Num,
                text: n.to_string().into(),
                num: Some(*n as f64),
            },
            Literal::Float(n) => Operand {
                lit: Lit::Num,
                text: format!("{n:?}").into(),
                num: Some(*n),
            },
            Literal::Bool(b) => Operand {
                lit: Lit::Bool(*b),
                text: b.to_string().into(),
                num: None,
            },
        })
    }

    pub(crate) fn string(s: &str) -> Operand {
        Operand::from_literal(&Literal::Str(s.to_owned())).expect("a string is not null")
    }
}

/// The event categories queries may name: the agent's exec and file events.
pub(crate) const CATEGORIES: [&str; 2] = ["process", "file"];

/// Compiles a parsed query. Only `process where` and `file where` queries are accepted.
pub(crate) fn compile_query(query: &Query) -> Result<Node, EqlError> {
    if !CATEGORIES.contains(&query.category.as_str()) {
        return Err(EqlError::new(
            query.category_pos,
            format!(
                "event category `{}` is not supported; only `process where` and `file where` \
                 queries are",
                query.category
            ),
        ));
    }
    let condition = compile_bool(&query.condition)?;
    // `CATEGORY where` is a term filter on event.category.
    let category = Node::Test(
        "event.category".into(),
        Test::Eq(Operand::string(&query.category)),
    );
    Ok(match condition {
        Node::Const(true) => category,
        Node::All(mut items) => {
            let mut v = Vec::with_capacity(items.len() + 1);
            v.push(category);
            v.extend(std::mem::take(&mut items).into_vec());
            Node::All(v.into_boxed_slice())
        }
        other => Node::All(vec![category, other].into_boxed_slice()),
    })
}

fn compile_bool(expr: &Expr) -> Result<Node, EqlError> {
    match expr {
        Expr::Logic { op, .. } => {
            let mut items = Vec::new();
            flatten(expr, *op, &mut items)?;
            Ok(match op {
                LogicOp::And => Node::All(items.into_boxed_slice()),
                LogicOp::Or => Node::Any(items.into_boxed_slice()),
            })
        }
        Expr::Not { expr, .. } => Ok(match compile_bool(expr)? {
            Node::Not(inner) => *inner,
            Node::Const(b) => Node::Const(!b),
            other => Node::Not(Box::new(other)),
        }),
        Expr::Literal {
            value: Literal::Bool(b),
            ..
        } => Ok(Node::Const(*b)),
        Expr::Literal { value, pos } => Err(EqlError::new(
            *pos,
            format!("the constant {value} is not a condition"),
        )),
        Expr::Field { field, pos } => {
            // A bare field is a boolean field being true.
            match field_type(&field.name) {
                FieldType::Boolean | FieldType::Unknown => {}
                t => {
                    return Err(EqlError::new(
                        *pos,
                        format!(
                            "`{}` is a {t} field, not a condition; compare it with a value",
                            field.name
                        ),
                    ));
                }
            }
            Ok(Node::Test(
                field.name.as_str().into(),
                Test::Eq(Operand::from_literal(&Literal::Bool(true)).expect("bool")),
            ))
        }
        Expr::Compare {
            op,
            left,
            right,
            pos,
        } => compile_compare(*op, left, right, *pos),
        Expr::In {
            expr,
            list,
            negated,
            insensitive,
            pos,
        } => {
            let op = if *insensitive { "in~" } else { "in" };
            let (field, field_pos) = operand_field(expr, op)?;
            if *insensitive {
                check_string_field(field, field_pos, "`in~`")?;
            }
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                match item {
                    Expr::Literal {
                        value: Literal::Null,
                        pos,
                    } => {
                        return Err(EqlError::new(
                            *pos,
                            "`null` in an `in` list is not supported; use `field == null`",
                        ));
                    }
                    Expr::Literal { value, .. } => {
                        check_literal(field, field_pos, value, op)?;
                        items.push(Operand::from_literal(value).expect("not null"));
                    }
                    other => {
                        return Err(EqlError::new(
                            other.pos(),
                            format!("`in` lists must hold constants, not `{other}`"),
                        ));
                    }
                }
            }
            let test = if *insensitive {
                Test::InCi(items.into())
            } else {
                Test::In(items.into())
            };
            let _ = pos;
            let node = Node::Test(field.name.as_str().into(), test);
            Ok(if *negated {
                Node::Not(Box::new(node))
            } else {
                node
            })
        }
        Expr::Match {
            expr,
            op,
            patterns,
            pos,
        } => {
            let (field, field_pos) = operand_field(expr, op.as_str())?;
            check_string_field(field, field_pos, &format!("`{}`", op.as_str()))?;
            let texts = patterns
                .iter()
                .map(|p| match p {
                    Expr::Literal {
                        value: Literal::Str(s),
                        pos,
                    } => Ok((s.as_str(), *pos)),
                    other => Err(EqlError::new(
                        other.pos(),
                        format!("`{}` needs string patterns, not `{other}`", op.as_str()),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let _ = pos;
            let test = match op {
                MatchOp::Like => {
                    Test::Like(texts.iter().map(|t| Wildcard::like(t.0, false)).collect())
                }
                MatchOp::LikeCi | MatchOp::Seq => {
                    Test::Like(texts.iter().map(|t| Wildcard::like(t.0, true)).collect())
                }
                MatchOp::Regex | MatchOp::RegexCi => Test::Regex(
                    texts
                        .iter()
                        .map(|(text, pos)| {
                            Regex::new(text, *op == MatchOp::RegexCi).map_err(|e| {
                                EqlError::new(
                                    *pos,
                                    format!("invalid `{}` pattern: {}", op.as_str(), e.0),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            Ok(Node::Test(field.name.as_str().into(), test))
        }
        Expr::Call {
            name,
            insensitive,
            args,
            pos,
        } => compile_call(name, *insensitive, args, *pos),
    }
}

fn flatten(expr: &Expr, op: LogicOp, out: &mut Vec<Node>) -> Result<(), EqlError> {
    match expr {
        Expr::Logic {
            op: o, left, right, ..
        } if *o == op => {
            flatten(left, op, out)?;
            flatten(right, op, out)
        }
        other => {
            out.push(compile_bool(other)?);
            Ok(())
        }
    }
}

fn operand_field<'a>(expr: &'a Expr, op: &str) -> Result<(&'a Field, Pos), EqlError> {
    match expr {
        Expr::Field { field, pos } => Ok((field, *pos)),
        other => Err(EqlError::new(
            other.pos(),
            format!("the left side of `{op}` must be a field, not `{other}`"),
        )),
    }
}

fn compile_compare(op: CmpOp, left: &Expr, right: &Expr, pos: Pos) -> Result<Node, EqlError> {
    // Put the constant on the right.
    let (op, left, right) = match (left, right) {
        (Expr::Literal { .. }, Expr::Field { .. } | Expr::Call { .. }) => {
            (op.mirror(), right, left)
        }
        _ => (op, left, right),
    };
    let negate = |node: Node, neg: bool| if neg { Node::Not(Box::new(node)) } else { node };
    match (left, right) {
        (
            Expr::Field { field, .. },
            Expr::Literal {
                value: Literal::Null,
                ..
            },
        ) => match op {
            CmpOp::Eq => Ok(negate(
                Node::Test(field.name.as_str().into(), Test::Exists),
                true,
            )),
            CmpOp::Neq => Ok(Node::Test(field.name.as_str().into(), Test::Exists)),
            _ => Err(EqlError::new(
                pos,
                format!(
                    "`{}` cannot compare with null; use `==` or `!=`",
                    op.as_str()
                ),
            )),
        },
        (
            Expr::Field {
                field,
                pos: field_pos,
            },
            Expr::Literal { value, .. },
        ) => {
            check_literal(field, *field_pos, value, op.as_str())?;
            let operand = Operand::from_literal(value).expect("not null");
            let name: Box<str> = field.name.as_str().into();
            match op {
                CmpOp::Eq => Ok(Node::Test(name, Test::Eq(operand))),
                CmpOp::Neq => Ok(negate(Node::Test(name, Test::Eq(operand)), true)),
                _ if operand.lit != Lit::Str && operand.lit != Lit::Num => Err(EqlError::new(
                    pos,
                    format!("`{}` needs a number or a string, not {value}", op.as_str()),
                )),
                _ => Ok(Node::Test(name, Test::Range(op, operand))),
            }
        }
        (
            Expr::Call {
                name,
                insensitive,
                args,
                pos: call_pos,
            },
            Expr::Literal { value, .. },
        ) if name.eq_ignore_ascii_case("length") => {
            if *insensitive {
                return Err(EqlError::new(
                    *call_pos,
                    "`length` has no case-insensitive form",
                ));
            }
            let field = single_field_arg("length", args, *call_pos)?;
            check_string_field(field, *call_pos, "`length`")?;
            let n = match value {
                Literal::Int(n) => *n as f64,
                Literal::Float(n) => *n,
                other => {
                    return Err(EqlError::new(
                        pos,
                        format!(
                            "`length(...)` returns a number; it cannot be compared with {other}"
                        ),
                    ));
                }
            };
            let name: Box<str> = field.name.as_str().into();
            Ok(match op {
                CmpOp::Neq => negate(Node::Test(name, Test::Length(CmpOp::Eq, n)), true),
                op => Node::Test(name, Test::Length(op, n)),
            })
        }
        (
            Expr::Call {
                name,
                insensitive,
                args,
                pos: call_pos,
            },
            Expr::Literal {
                value: Literal::Bool(b),
                ..
            },
        ) if matches!(op, CmpOp::Eq | CmpOp::Neq) => {
            let node = compile_call(name, *insensitive, args, *call_pos)?;
            Ok(negate(node, (op == CmpOp::Eq) != *b))
        }
        (
            Expr::Call {
                name,
                insensitive,
                args,
                pos: call_pos,
            },
            Expr::Literal { .. },
        ) => {
            // Unknown and unsupported functions are named as such; boolean ones need a boolean.
            compile_call(name, *insensitive, args, *call_pos)?;
            Err(EqlError::new(
                pos,
                format!(
                    "`{left}` is a condition; compare it only with `== true`, `== false` or use it directly"
                ),
            ))
        }
        (Expr::Field { .. } | Expr::Call { .. }, Expr::Field { .. } | Expr::Call { .. }) => {
            Err(EqlError::new(
                pos,
                format!(
                    "comparing two fields or function results (`{left} {} {right}`) is not supported",
                    op.as_str()
                ),
            ))
        }
        (Expr::Literal { .. }, Expr::Literal { .. }) => Err(EqlError::new(
            pos,
            format!(
                "comparison of two constants (`{left} {} {right}`) is not supported",
                op.as_str()
            ),
        )),
        _ => Err(EqlError::new(
            pos,
            format!(
                "unsupported comparison `{left} {} {right}`: compare a field with a constant",
                op.as_str()
            ),
        )),
    }
}

fn single_field_arg<'a>(func: &str, args: &'a [Expr], pos: Pos) -> Result<&'a Field, EqlError> {
    match args {
        [Expr::Field { field, .. }] => Ok(field),
        [other] => Err(EqlError::new(
            other.pos(),
            format!("the argument of `{func}` must be a field"),
        )),
        _ => Err(EqlError::new(
            pos,
            format!("`{func}` takes exactly one argument, got {}", args.len()),
        )),
    }
}

/// Functions Elasticsearch's EQL has that this engine does not evaluate.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "add",
    "between",
    "cidrmatch",
    "concat",
    "divide",
    "indexof",
    "modulo",
    "multiply",
    "number",
    "string",
    "substring",
    "subtract",
    "match",
    "arraycontains",
    "arraycount",
    "arraysearch",
    "tolower",
    "toupper",
];

fn compile_call(name: &str, insensitive: bool, args: &[Expr], pos: Pos) -> Result<Node, EqlError> {
    let lower = name.to_ascii_lowercase();
    let shown = if insensitive {
        format!("{name}~")
    } else {
        name.to_owned()
    };
    let string_arg = |i: usize| -> Result<&str, EqlError> {
        match args.get(i) {
            Some(Expr::Literal {
                value: Literal::Str(s),
                ..
            }) => Ok(s),
            Some(other) => Err(EqlError::new(
                other.pos(),
                format!("argument {} of `{shown}` must be a string constant", i + 1),
            )),
            None => Err(EqlError::new(
                pos,
                format!("`{shown}` is missing argument {}", i + 1),
            )),
        }
    };
    let field_arg = || -> Result<&Field, EqlError> {
        match args.first() {
            Some(Expr::Field { field, .. }) => Ok(field),
            Some(other) => Err(EqlError::new(
                other.pos(),
                format!("the first argument of `{shown}` must be a field"),
            )),
            None => Err(EqlError::new(pos, format!("`{shown}` needs arguments"))),
        }
    };
    match lower.as_str() {
        "startswith" | "endswith" | "stringcontains" => {
            if args.len() != 2 {
                return Err(EqlError::new(
                    pos,
                    format!("`{shown}` takes exactly 2 arguments, got {}", args.len()),
                ));
            }
            let field = field_arg()?;
            check_string_field(field, pos, &format!("`{shown}`"))?;
            if let Some(Expr::Field {
                field: other,
                pos: other_pos,
            }) = args.get(1)
            {
                if insensitive {
                    return Err(EqlError::new(
                        pos,
                        format!(
                            "`{shown}` with a field as its second argument is not supported; use `{name}`"
                        ),
                    ));
                }
                check_string_field(other, *other_pos, &format!("`{shown}`"))?;
                let op = match lower.as_str() {
                    "startswith" => PairOp::StartsWith,
                    "endswith" => PairOp::EndsWith,
                    _ => PairOp::Contains,
                };
                return Ok(Node::Pair(
                    field.name.as_str().into(),
                    other.name.as_str().into(),
                    op,
                ));
            }
            let s: Box<str> = string_arg(1)?.into();
            let test = match lower.as_str() {
                "startswith" => Test::StartsWith(s, insensitive),
                "endswith" => Test::EndsWith(s, insensitive),
                _ => Test::Contains(s, insensitive),
            };
            Ok(Node::Test(field.name.as_str().into(), test))
        }
        "wildcard" => {
            if args.len() < 2 {
                return Err(EqlError::new(
                    pos,
                    format!("`{shown}` takes a field and at least one pattern"),
                ));
            }
            let field = field_arg()?;
            check_string_field(field, pos, &format!("`{shown}`"))?;
            let patterns = (1..args.len())
                .map(|i| string_arg(i).map(|p| Wildcard::like(p, insensitive)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Node::Test(
                field.name.as_str().into(),
                Test::Like(patterns.into()),
            ))
        }
        "length" => Err(EqlError::new(
            pos,
            "`length` returns a number; compare it, e.g. `length(field) > 3`",
        )),
        other if KNOWN_UNSUPPORTED.contains(&other) => Err(EqlError::new(
            pos,
            format!("function `{shown}` is not supported"),
        )),
        _ => Err(EqlError::new(pos, format!("unknown function `{shown}`"))),
    }
}

/// Refuses string operators on ECS fields that do not hold strings.
fn check_string_field(field: &Field, pos: Pos, what: &str) -> Result<(), EqlError> {
    match field_type(&field.name) {
        FieldType::String(_) | FieldType::Unknown => Ok(()),
        t => Err(EqlError::new(
            pos,
            format!(
                "`{}` is a {t} field; {what} needs a string field",
                field.name
            ),
        )),
    }
}

/// Refuses comparing an ECS field with a constant of another type (as Elasticsearch's verifier
/// does); fields ECS does not define accept any constant.
fn check_literal(field: &Field, pos: Pos, lit: &Literal, op: &str) -> Result<(), EqlError> {
    let t = field_type(&field.name);
    let ok = matches!(
        (t, lit),
        (FieldType::Unknown, _)
            | (_, Literal::Null)
            | (FieldType::String(_), Literal::Str(_))
            | (FieldType::Number(_), Literal::Int(_) | Literal::Float(_))
            | (FieldType::Boolean, Literal::Bool(_))
            | (
                FieldType::Date,
                Literal::Str(_) | Literal::Int(_) | Literal::Float(_)
            )
            | (FieldType::Ip, Literal::Str(_))
    );
    if ok {
        Ok(())
    } else {
        Err(EqlError::new(
            pos,
            format!(
                "`{}` is a {t} field; it cannot be compared with {lit} (`{op}`)",
                field.name
            ),
        ))
    }
}

//! The parse tree of a single-event EQL query, as written (before validation).

use std::fmt;

/// A 1-based line and column (columns count characters) in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// `<category> where <condition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The event category (`process`).
    pub category: String,
    /// Where the category is written.
    pub category_pos: Pos,
    /// The condition after `where`.
    pub condition: Expr,
}

/// A field reference: dotted name, and whether it was written `?field` (optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The dotted field name (`process.parent.name`).
    pub name: String,
    /// Written `?name`: a field the schema need not know.
    pub optional: bool,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A double-quoted or raw (`"""..."""`, `?"..."`) string, escapes resolved.
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(n) => write!(f, "{n:?}"),
            Literal::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Neq,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }

    /// The operator with its operands swapped (`1 < x` is `x > 1`).
    pub fn mirror(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Lte => CmpOp::Gte,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Gte => CmpOp::Lte,
            other => other,
        }
    }
}

/// The wildcard-style operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `like`: case-sensitive wildcard.
    Like,
    /// `like~`: ASCII-case-insensitive wildcard.
    LikeCi,
    /// `:`: the same as `like~`.
    Seq,
    /// `regex` (recognised so that it can be refused by name).
    Regex,
    /// `regex~`.
    RegexCi,
}

impl MatchOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Like => "like",
            MatchOp::LikeCi => "like~",
            MatchOp::Seq => ":",
            MatchOp::Regex => "regex",
            MatchOp::RegexCi => "regex~",
        }
    }
}

/// A boolean connective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    /// `and`.
    And,
    /// `or`.
    Or,
}

/// An expression, with its position in the query text (for messages).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // variant fields: named for what they hold
pub enum Expr {
    /// A constant.
    Literal { value: Literal, pos: Pos },
    /// A field reference.
    Field { field: Field, pos: Pos },
    /// `name(args)` or `name~(args)`.
    Call {
        name: String,
        insensitive: bool,
        args: Vec<Expr>,
        pos: Pos,
    },
    /// `not expr`.
    Not { expr: Box<Expr>, pos: Pos },
    /// `left and right`, `left or right`.
    Logic {
        op: LogicOp,
        left: Box<Expr>,
        right: Box<Expr>,
        pos: Pos,
    },
    /// `left OP right`.
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        pos: Pos,
    },
    /// `expr [not] in (list)` / `expr [not] in~ (list)`.
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        insensitive: bool,
        pos: Pos,
    },
    /// `expr like|like~|:|regex|regex~ pattern` or `(... patterns)`.
    Match {
        expr: Box<Expr>,
        op: MatchOp,
        patterns: Vec<Expr>,
        pos: Pos,
    },
}

impl Expr {
    /// The expression's position in the query text.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Literal { pos, .. }
            | Expr::Field { pos, .. }
            | Expr::Call { pos, .. }
            | Expr::Not { pos, .. }
            | Expr::Logic { pos, .. }
            | Expr::Compare { pos, .. }
            | Expr::In { pos, .. }
            | Expr::Match { pos, .. } => *pos,
        }
    }

    /// The top-level conjuncts: `a and (b and c)` gives `[a, b, c]`.
    pub fn conjuncts(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
            match e {
                Expr::Logic {
                    op: LogicOp::And,
                    left,
                    right,
                    ..
                } => {
                    walk(left, out);
                    walk(right, out);
                }
                other => out.push(other),
            }
        }
        walk(self, &mut out);
        out
    }
}

/// Renders the tree back as EQL, fully parenthesised (for messages and structural comparison).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
            f.write_str("(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        }
        match self {
            Expr::Literal { value, .. } => write!(f, "{value}"),
            Expr::Field { field, .. } => {
                write!(f, "{}{}", if field.optional { "?" } else { "" }, field.name)
            }
            Expr::Call {
                name,
                insensitive,
                args,
                ..
            } => {
                write!(f, "{name}{}", if *insensitive { "~" } else { "" })?;
                list(f, args)
            }
            Expr::Not { expr, .. } => write!(f, "(not {expr})"),
            Expr::Logic {
                op, left, right, ..
            } => {
                let op = if *op == LogicOp::And { "and" } else { "or" };
                write!(f, "({left} {op} {right})")
            }
            Expr::Compare {
                op, left, right, ..
            } => write!(f, "({left} {} {right})", op.as_str()),
            Expr::In {
                expr,
                list: items,
                negated,
                insensitive,
                ..
            } => {
                write!(
                    f,
                    "({expr} {}{} ",
                    if *negated { "not " } else { "" },
                    if *insensitive { "in~" } else { "in" }
                )?;
                list(f, items)?;
                f.write_str(")")
            }
            Expr::Match {
                expr, op, patterns, ..
            } => {
                write!(f, "({expr} {} ", op.as_str())?;
                list(f, patterns)?;
                f.write_str(")")
            }
        }
    }
}

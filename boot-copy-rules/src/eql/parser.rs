//! Recursive-descent parser for single-event EQL queries, following Elasticsearch's grammar:
//!
//! ```text
//! query      := category "where" expr            (no pipes, sequences, samples or joins)
//! expr       := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | predicate
//! predicate  := value ( cmp value
//!                     | ["not"] ("in" | "in~") "(" expr ("," expr)* ")"
//!                     | ("like" | "like~" | ":" | "regex" | "regex~") (constant | "(" constant ("," constant)* ")") )?
//! value      := constant | "-" number | field | "?" field | name["~"] "(" args ")" | "(" expr ")"
//! field      := ident ("." ident)*               (ident may be backquoted)
//! ```
//! `not` binds tighter than `and`, which binds tighter than `or`.

use super::EqlError;
use super::ast::{CmpOp, Expr, Field, Literal, LogicOp, MatchOp, Pos, Query};
use super::lexer::{Tok, Token, tokenize};

/// Parses a whole query.
pub fn parse(src: &str) -> Result<Query, EqlError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        at: 0,
        logic_terms: 0,
    };
    p.query()
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// `and`/`or` nodes built so far.
    logic_terms: usize,
}

/// Nesting limit, so that hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 100;
/// Limit on `and`/`or` terms: a chain is a left-deep tree that later passes walk recursively,
/// so its length is a nesting depth too. Elastic's largest process rules use about a hundred.
const MAX_LOGIC_TERMS: usize = 1000;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].tok
    }

    fn pos(&self) -> Pos {
        self.tokens[self.at].pos
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.at].clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<Token, EqlError> {
        if self.peek() == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, expected: &str) -> EqlError {
        EqlError::new(
            self.pos(),
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    fn query(&mut self) -> Result<Query, EqlError> {
        let pos = self.pos();
        let category = match self.peek().clone() {
            Tok::Sequence => {
                return Err(EqlError::new(
                    pos,
                    "`sequence` queries are not supported (only single-event queries)",
                ));
            }
            Tok::Sample => {
                return Err(EqlError::new(
                    pos,
                    "`sample` queries are not supported (only single-event queries)",
                ));
            }
            Tok::Join => {
                return Err(EqlError::new(
                    pos,
                    "`join` queries are not supported (only single-event queries)",
                ));
            }
            Tok::Any => {
                return Err(EqlError::new(
                    pos,
                    "`any where` is not supported; only `process where` queries are",
                ));
            }
            Tok::Ident(name) | Tok::Quoted(name) => name,
            Tok::Str(name) => name,
            _ => return Err(self.unexpected("an event category (e.g. `process`)")),
        };
        self.next();
        self.expect(&Tok::Where, "`where`")?;
        let condition = self.expr(0)?;
        match self.peek() {
            Tok::Eof => {}
            Tok::Pipe => {
                let pipe_pos = self.pos();
                self.next();
                let name = match self.peek() {
                    Tok::Ident(n) => format!(" `| {n}`"),
                    _ => String::new(),
                };
                return Err(EqlError::new(
                    pipe_pos,
                    format!("pipes{name} are not supported"),
                ));
            }
            _ => return Err(self.unexpected("`and`, `or` or end of query")),
        }
        Ok(Query {
            category,
            category_pos: pos,
            condition,
        })
    }

    fn count_logic_term(&mut self, pos: Pos) -> Result<(), EqlError> {
        self.logic_terms += 1;
        if self.logic_terms > MAX_LOGIC_TERMS {
            return Err(EqlError::new(
                pos,
                format!("more than {MAX_LOGIC_TERMS} `and`/`or` terms in one query"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, EqlError> {
        if depth > MAX_DEPTH {
            return Err(EqlError::new(self.pos(), "expression nested too deeply"));
        }
        let mut left = self.and(depth)?;
        while *self.peek() == Tok::Or {
            let pos = self.next().pos;
            let right = self.and(depth)?;
            self.count_logic_term(pos)?;
            left = Expr::Logic {
                op: LogicOp::Or,
                left: Box::new(left),
                right: Box::new(right),
                pos,
            };
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, EqlError> {
        let mut left = self.not(depth)?;
        while *self.peek() == Tok::And {
            let pos = self.next().pos;
            let right = self.not(depth)?;
            self.count_logic_term(pos)?;
            left = Expr::Logic {
                op: LogicOp::And,
                left: Box::new(left),
                right: Box::new(right),
                pos,
            };
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Expr, EqlError> {
        if *self.peek() == Tok::Not {
            let pos = self.next().pos;
            if depth > MAX_DEPTH {
                return Err(EqlError::new(pos, "expression nested too deeply"));
            }
            let expr = self.not(depth + 1)?;
            return Ok(Expr::Not {
                expr: Box::new(expr),
                pos,
            });
        }
        self.predicate(depth)
    }

    fn predicate(&mut self, depth: usize) -> Result<Expr, EqlError> {
        let left = self.value(depth)?;
        let pos = self.pos();
        let cmp = match self.peek() {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Neq => Some(CmpOp::Neq),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Lte => Some(CmpOp::Lte),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Gte => Some(CmpOp::Gte),
            _ => None,
        };
        if let Some(op) = cmp {
            self.next();
            let right = self.value(depth)?;
            if let Some(t) = self.comparison_follows() {
                return Err(EqlError::new(
                    self.pos(),
                    format!("comparisons cannot be chained (`{t}`); use `and`"),
                ));
            }
            return Ok(Expr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
                pos,
            });
        }
        match self.peek().clone() {
            Tok::Not
                if matches!(
                    self.tokens.get(self.at + 1).map(|t| &t.tok),
                    Some(Tok::In | Tok::InCi)
                ) =>
            {
                self.next();
                let insensitive = self.next().tok == Tok::InCi;
                let list = self.in_list(depth)?;
                Ok(Expr::In {
                    expr: Box::new(left),
                    list,
                    negated: true,
                    insensitive,
                    pos,
                })
            }
            Tok::In | Tok::InCi => {
                let insensitive = self.next().tok == Tok::InCi;
                let list = self.in_list(depth)?;
                Ok(Expr::In {
                    expr: Box::new(left),
                    list,
                    negated: false,
                    insensitive,
                    pos,
                })
            }
            Tok::Like | Tok::LikeCi | Tok::Colon | Tok::Regex | Tok::RegexCi => {
                let op = match self.next().tok {
                    Tok::Like => MatchOp::Like,
                    Tok::LikeCi => MatchOp::LikeCi,
                    Tok::Colon => MatchOp::Seq,
                    Tok::Regex => MatchOp::Regex,
                    _ => MatchOp::RegexCi,
                };
                let patterns = if *self.peek() == Tok::LParen {
                    self.next();
                    let mut items = vec![self.constant(op)?];
                    while self.eat(&Tok::Comma) {
                        items.push(self.constant(op)?);
                    }
                    self.expect(&Tok::RParen, "`,` or `)`")?;
                    items
                } else {
                    vec![self.constant(op)?]
                };
                Ok(Expr::Match {
                    expr: Box::new(left),
                    op,
                    patterns,
                    pos,
                })
            }
            Tok::Not => Err(EqlError::new(
                pos,
                "`not` here must be followed by `in` or `in~`; write `not field like ...` to negate other operators",
            )),
            Tok::Assign => Err(EqlError::new(pos, "`=` is not an EQL operator; use `==`")),
            _ => Ok(left),
        }
    }

    fn comparison_follows(&self) -> Option<&'static str> {
        match self.peek() {
            Tok::Eq => Some("=="),
            Tok::Neq => Some("!="),
            Tok::Lt => Some("<"),
            Tok::Lte => Some("<="),
            Tok::Gt => Some(">"),
            Tok::Gte => Some(">="),
            _ => None,
        }
    }

    fn in_list(&mut self, depth: usize) -> Result<Vec<Expr>, EqlError> {
        self.expect(&Tok::LParen, "`(` after `in`")?;
        let mut items = vec![self.expr(depth + 1)?];
        while self.eat(&Tok::Comma) {
            items.push(self.expr(depth + 1)?);
        }
        self.expect(&Tok::RParen, "`,` or `)`")?;
        Ok(items)
    }

    /// A constant operand of `like` and friends.
    fn constant(&mut self, op: MatchOp) -> Result<Expr, EqlError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Literal {
                    value: Literal::Str(s),
                    pos,
                })
            }
            Tok::Int(_) | Tok::Float(_) | Tok::Null | Tok::True | Tok::False => {
                let e = self.value(0)?;
                Ok(e)
            }
            _ => Err(self.unexpected(&format!("a constant pattern after `{}`", op.as_str()))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Expr, EqlError> {
        let v = self.primary(depth)?;
        let pos = self.pos();
        let arith = match self.peek() {
            Tok::Plus => Some("+"),
            Tok::Minus => Some("-"),
            Tok::Star => Some("*"),
            Tok::Slash => Some("/"),
            Tok::Percent => Some("%"),
            _ => None,
        };
        if let Some(op) = arith {
            return Err(EqlError::new(
                pos,
                format!("arithmetic (`{op}`) is not supported"),
            ));
        }
        Ok(v)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, EqlError> {
        let pos = self.pos();
        let lit = |value| Ok(Expr::Literal { value, pos });
        match self.peek().clone() {
            Tok::Null => {
                self.next();
                lit(Literal::Null)
            }
            Tok::True => {
                self.next();
                lit(Literal::Bool(true))
            }
            Tok::False => {
                self.next();
                lit(Literal::Bool(false))
            }
            Tok::Int(n) => {
                self.next();
                lit(Literal::Int(n))
            }
            Tok::Float(n) => {
                self.next();
                lit(Literal::Float(n))
            }
            Tok::Str(s) => {
                self.next();
                lit(Literal::Str(s))
            }
            Tok::Minus => {
                self.next();
                match self.peek().clone() {
                    Tok::Int(n) => {
                        self.next();
                        lit(Literal::Int(-n))
                    }
                    Tok::Float(n) => {
                        self.next();
                        lit(Literal::Float(-n))
                    }
                    _ => Err(EqlError::new(
                        pos,
                        "arithmetic (unary `-`) is only supported on number literals",
                    )),
                }
            }
            Tok::Plus => Err(EqlError::new(
                pos,
                "arithmetic (unary `+`) is not supported",
            )),
            Tok::LParen => {
                self.next();
                let e = self.expr(depth + 1)?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::Question => {
                self.next();
                if self.tokens[self.at].spaced {
                    return Err(EqlError::new(
                        pos,
                        "`?` must be written directly before the optional field name",
                    ));
                }
                match self.peek() {
                    Tok::Ident(_) | Tok::Quoted(_) => self.field(pos, true),
                    _ => Err(self.unexpected("a field name after `?`")),
                }
            }
            Tok::TildeIdent(name) => {
                self.next();
                if *self.peek() != Tok::LParen {
                    return Err(EqlError::new(
                        pos,
                        format!("`{name}~` must be a function call: `{name}~(...)`"),
                    ));
                }
                self.call(name, true, pos, depth)
            }
            Tok::Ident(name)
                if self.tokens.get(self.at + 1).map(|t| &t.tok) == Some(&Tok::LParen) =>
            {
                self.next();
                self.call(name, false, pos, depth)
            }
            Tok::Ident(_) | Tok::Quoted(_) => self.field(pos, false),
            Tok::Sequence
            | Tok::Sample
            | Tok::Join
            | Tok::Any
            | Tok::Where
            | Tok::By
            | Tok::Until
            | Tok::With
            | Tok::Of => Err(EqlError::new(
                pos,
                format!("{} is not supported here", self.peek().describe()),
            )),
            _ => Err(self.unexpected("a field, a constant, a function call or `(`")),
        }
    }

    fn call(
        &mut self,
        name: String,
        insensitive: bool,
        pos: Pos,
        depth: usize,
    ) -> Result<Expr, EqlError> {
        self.expect(&Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            args.push(self.expr(depth + 1)?);
            while self.eat(&Tok::Comma) {
                args.push(self.expr(depth + 1)?);
            }
        }
        self.expect(&Tok::RParen, "`,` or `)`")?;
        Ok(Expr::Call {
            name,
            insensitive,
            args,
            pos,
        })
    }

    fn field(&mut self, pos: Pos, optional: bool) -> Result<Expr, EqlError> {
        let mut name = match self.next().tok {
            Tok::Ident(s) | Tok::Quoted(s) => s,
            _ => unreachable!("field() is called on an identifier"),
        };
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.next();
                    match self.next().tok {
                        // As in Elasticsearch's grammar, a keyword is not a field-name segment
                        // unless backquoted.
                        Tok::Ident(s) | Tok::Quoted(s) => {
                            name.push('.');
                            name.push_str(&s);
                        }
                        _ => {
                            return Err(EqlError::new(
                                self.tokens[self.at.saturating_sub(1)].pos,
                                "expected a field name after `.`",
                            ));
                        }
                    }
                }
                Tok::LBracket => {
                    return Err(EqlError::new(
                        self.pos(),
                        format!("array indexing (`{name}[...]`) is not supported"),
                    ));
                }
                _ => break,
            }
        }
        Ok(Expr::Field {
            field: Field { name, optional },
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        parse(src)
            .map(|q| q.condition.to_string())
            .unwrap_or_else(|e| format!("error {e}"))
    }

    #[test]
    fn precedence_and_forms() {
        let rows = [
            (
                "process where a == 1 or b == 2 and c == 3",
                "((a == 1) or ((b == 2) and (c == 3)))",
            ),
            ("process where not a == 1 and b", "((not (a == 1)) and b)"),
            ("process where not (a or b)", "(not (a or b))"),
            (
                "process where a not in (\"x\", 'y')",
                "error 1:30: use double quotes [\"] to define string literals, not single quotes [']",
            ),
            (
                "process where a not in (\"x\", \"y\")",
                "(a not in (\"x\", \"y\"))",
            ),
            ("process where a in~ (\"x\")", "(a in~ (\"x\"))"),
            (
                "process where a like~ (\"x*\", \"y\")",
                "(a like~ (\"x*\", \"y\"))",
            ),
            ("process where a : \"x\"", "(a : (\"x\"))"),
            ("process where ?a.b != null", "(?a.b != null)"),
            ("process where `a b`.c == -1", "(a b.c == -1)"),
            (
                "process where startsWith~(a, \"x\")",
                "startsWith~(a, \"x\")",
            ),
            ("process where length(a) > 2.5", "(length(a) > 2.5)"),
            ("process where ((a))", "a"),
        ];
        for (src, want) in rows {
            assert_eq!(show(src), want, "{src}");
        }
    }

    #[test]
    fn rejected_constructs_name_the_construct_and_position() {
        let rows = [
            (
                "sequence [process where true] [process where true]",
                "1:1",
                "`sequence`",
            ),
            ("sample by a [process where true]", "1:1", "`sample`"),
            ("any where true", "1:1", "`any where`"),
            ("process where true | head 5", "1:20", "pipes `| head`"),
            ("process where\n  a + 1 == 2", "2:5", "arithmetic (`+`)"),
            ("process where a[0] == \"x\"", "1:16", "array indexing"),
            ("process where a == 1 == 2", "1:22", "chained"),
            ("process where a = 1", "1:17", "use `==`"),
            ("process where a not like \"x\"", "1:17", "`not` here"),
            ("process where a like b", "1:22", "constant pattern"),
            ("process where (a == 1", "1:22", "expected `)`"),
            ("process a == 1", "1:9", "expected `where`"),
            ("process where ? a", "1:15", "directly before"),
        ];
        for (src, pos, needle) in rows {
            let e = parse(src).unwrap_err();
            assert_eq!(format!("{}:{}", e.line, e.col), pos, "{src}: {e}");
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("process where {}a{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&src).unwrap_err().message.contains("too deeply"));
        let src = format!("process where {}a", "not ".repeat(5000));
        assert!(parse(&src).unwrap_err().message.contains("too deeply"));
    }
}

#[cfg(test)]
mod long_chains {
    use super::super::compile;

    /// A long flat chain is refused before it can overflow the stack of later passes (found by
    /// hand: 10,000 `or` terms aborted a 2 MiB thread).
    #[test]
    fn long_chains_are_refused_not_a_stack_overflow() {
        let q = format!(
            "process where process.name == \"cp\"{}",
            " or process.name == \"x\"".repeat(10_000)
        );
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || compile(&q).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap();
        let err = result.unwrap_err();
        assert!(err.contains("more than 1000 `and`/`or` terms"), "{err}");
        let ok = format!(
            "process where process.name == \"cp\"{}",
            " or process.name == \"x\"".repeat(900)
        );
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || compile(&ok).unwrap())
            .unwrap()
            .join()
            .unwrap();
    }
}

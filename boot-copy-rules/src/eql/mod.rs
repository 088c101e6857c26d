//! Single-event EQL (`process where <condition>`) with Elasticsearch's semantics.
//!
//! Text → `lexer` → `parser` (an [`ast::Query`]) → [`compile`](compile()) (validation, and a
//! form that evaluates without allocating) → [`CompiledQuery::matches`]. The semantics are
//! documented in `eval` and `docs/SEMANTICS.md`, and pinned by the tests beside them.

pub mod ast;
mod compile;
mod eval;
mod lexer;
pub(crate) mod parser;
mod regex;
mod schema;
mod wildcard;

use std::collections::BTreeSet;

pub use ast::Pos;
pub use wildcard::Wildcard;

use crate::document::Document;
pub(crate) use compile::{Lit, Node, Operand, Test};

impl Node {
    /// Adds the fields this condition reads to `out`: all a document needs for its verdict.
    pub(crate) fn fields_into<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Node::Const(_) => {}
            Node::All(items) | Node::Any(items) => items.iter().for_each(|n| n.fields_into(out)),
            Node::Not(inner) => inner.fields_into(out),
            Node::Test(field, _) => {
                out.insert(field);
            }
            Node::Pair(left, right, _) => {
                out.insert(left);
                out.insert(right);
            }
        }
    }
}

/// A query that cannot be parsed or is not supported, with its position in the query text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct EqlError {
    /// Line in the query text, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// What is wrong.
    pub message: String,
}

impl EqlError {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        EqlError {
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }
}

/// A parsed, validated and compiled query.
#[derive(Debug, Clone)]
pub struct CompiledQuery {
    source: String,
    query: ast::Query,
    root: Node,
}

/// Parses and compiles a single-event `process where` query.
pub fn compile(text: &str) -> Result<CompiledQuery, EqlError> {
    let query = parser::parse(text)?;
    let root = compile::compile_query(&query)?;
    Ok(CompiledQuery {
        source: text.to_owned(),
        query,
        root,
    })
}

impl CompiledQuery {
    /// Whether the event matches. Allocates nothing.
    #[inline]
    pub fn matches(&self, doc: &Document) -> bool {
        self.root.eval(doc)
    }

    /// The compiled condition (for the rule set's index).
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// The query text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parse tree.
    pub fn ast(&self) -> &ast::Query {
        &self.query
    }

    /// Every field the query reads (including the implicit `event.category`).
    pub fn fields(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.root.fields_into(&mut out);
        out
    }
}

//! EQL tokens, as Elasticsearch's EQL grammar defines them.
//!
//! Strings: `"..."` with the escapes `\b \t \n \f \r \" \' \\` and `\u{XXXX}` (2 to 8 hex digits);
//! `"""..."""` raw strings (no escapes, may span lines). Single-quoted and `?"..."` strings were
//! removed from Elasticsearch's EQL and are rejected with its own advice. Comments: `//` to end of
//! line and `/* ... */`. Identifiers: `[A-Za-z_@][A-Za-z0-9_]*` or backquoted (`` `a b` ``, with
//! ``` `` ``` for a literal backquote). Keywords are lower case.

use super::EqlError;
use super::ast::Pos;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// A backquoted identifier.
    Quoted(String),
    /// An identifier immediately followed by `~` (a case-insensitive function name).
    TildeIdent(String),
    Str(String),
    Int(i64),
    Float(f64),
    // keywords
    And,
    Or,
    Not,
    In,
    InCi,
    Like,
    LikeCi,
    Regex,
    RegexCi,
    Where,
    Any,
    Sequence,
    Sample,
    Join,
    Until,
    By,
    With,
    Of,
    Null,
    True,
    False,
    // punctuation
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Colon,
    Assign,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Pipe,
    Question,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Quoted(s) => format!("identifier `{s}`"),
            Tok::TildeIdent(s) => format!("`{s}~`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Float(n) => format!("number {n}"),
            Tok::Eof => "end of query".to_owned(),
            other => format!("`{}`", other.text()),
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::In => "in",
            Tok::InCi => "in~",
            Tok::Like => "like",
            Tok::LikeCi => "like~",
            Tok::Regex => "regex",
            Tok::RegexCi => "regex~",
            Tok::Where => "where",
            Tok::Any => "any",
            Tok::Sequence => "sequence",
            Tok::Sample => "sample",
            Tok::Join => "join",
            Tok::Until => "until",
            Tok::By => "by",
            Tok::With => "with",
            Tok::Of => "of",
            Tok::Null => "null",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Eq => "==",
            Tok::Neq => "!=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Colon => ":",
            Tok::Assign => "=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Pipe => "|",
            Tok::Question => "?",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            _ => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Whether whitespace or a comment precedes the token (so `?field` can be told from `? field`).
    pub spaced: bool,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    src: &'a str,
    line: u32,
    col: u32,
}

/// Splits `src` into tokens, ending with `Tok::Eof`.
pub fn tokenize(src: &str) -> Result<Vec<Token>, EqlError> {
    let mut lx = Lexer {
        chars: src.char_indices().peekable(),
        src,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        let spaced = lx.skip_trivia()?;
        let pos = lx.pos();
        let Some(c) = lx.bump() else {
            out.push(Token {
                tok: Tok::Eof,
                pos,
                spaced,
            });
            return Ok(out);
        };
        let tok = lx.token(c, pos)?;
        out.push(Token { tok, pos, spaced });
    }
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.chars.clone();
        it.next();
        it.next().map(|(_, c)| c)
    }

    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.src.len(), |&(i, _)| i)
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Skips whitespace and comments; returns whether anything was skipped.
    fn skip_trivia(&mut self) -> Result<bool, EqlError> {
        let mut skipped = false;
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek2() == Some('*') => {
                    let pos = self.pos();
                    self.bump();
                    self.bump();
                    let mut depth = 1;
                    while depth > 0 {
                        match self.bump() {
                            None => return Err(EqlError::new(pos, "unterminated comment `/*`")),
                            Some('*') if self.eat('/') => depth -= 1,
                            Some('/') if self.eat('*') => depth += 1,
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(skipped),
            }
            skipped = true;
        }
    }

    fn token(&mut self, c: char, pos: Pos) -> Result<Tok, EqlError> {
        Ok(match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '|' => Tok::Pipe,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            ':' => Tok::Colon,
            '=' if self.eat('=') => Tok::Eq,
            '=' => Tok::Assign,
            '!' if self.eat('=') => Tok::Neq,
            '!' if self.eat(':') => {
                return Err(EqlError::new(
                    pos,
                    "operator `!:` is not supported; use `not field : value`",
                ));
            }
            '<' if self.eat('=') => Tok::Lte,
            '<' => Tok::Lt,
            '>' if self.eat('=') => Tok::Gte,
            '>' => Tok::Gt,
            '?' if self.peek() == Some('"') || self.peek() == Some('\'') => {
                return Err(EqlError::new(
                    pos,
                    "use triple double quotes [\"\"\"] to define unescaped string literals, not [?]",
                ));
            }
            '?' => Tok::Question,
            '\'' => {
                return Err(EqlError::new(
                    pos,
                    "use double quotes [\"] to define string literals, not single quotes [']",
                ));
            }
            '"' => self.string(pos)?,
            '`' => {
                let mut name = String::new();
                loop {
                    match self.bump() {
                        None => {
                            return Err(EqlError::new(pos, "unterminated backquoted identifier"));
                        }
                        Some('`') if self.eat('`') => name.push('`'),
                        Some('`') => break,
                        Some(c) => name.push(c),
                    }
                }
                if name.is_empty() {
                    return Err(EqlError::new(pos, "empty backquoted identifier"));
                }
                Tok::Quoted(name)
            }
            '.' if self.peek().is_some_and(|c| c.is_ascii_digit()) => self.number(pos, c)?,
            '.' => Tok::Dot,
            c if c.is_ascii_digit() => self.number(pos, c)?,
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' => {
                let mut word = String::from(c);
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    word.push(c);
                    self.bump();
                }
                let tilde = self.eat('~');
                match (word.as_str(), tilde) {
                    ("in", true) => Tok::InCi,
                    ("like", true) => Tok::LikeCi,
                    ("regex", true) => Tok::RegexCi,
                    (_, true) => Tok::TildeIdent(word),
                    ("and", _) => Tok::And,
                    ("or", _) => Tok::Or,
                    ("not", _) => Tok::Not,
                    ("in", _) => Tok::In,
                    ("like", _) => Tok::Like,
                    ("regex", _) => Tok::Regex,
                    ("where", _) => Tok::Where,
                    ("any", _) => Tok::Any,
                    ("sequence", _) => Tok::Sequence,
                    ("sample", _) => Tok::Sample,
                    ("join", _) => Tok::Join,
                    ("until", _) => Tok::Until,
                    ("by", _) => Tok::By,
                    ("with", _) => Tok::With,
                    ("of", _) => Tok::Of,
                    ("null", _) => Tok::Null,
                    ("true", _) => Tok::True,
                    ("false", _) => Tok::False,
                    _ => Tok::Ident(word),
                }
            }
            other => {
                return Err(EqlError::new(
                    pos,
                    format!("unexpected character {other:?}"),
                ));
            }
        })
    }

    fn number(&mut self, pos: Pos, first: char) -> Result<Tok, EqlError> {
        let start = self.offset() - first.len_utf8();
        let mut is_float = first == '.';
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.bump();
            } else if c == '.'
                && !is_float
                && self
                    .peek2()
                    .is_none_or(|d| d.is_ascii_digit() || !d.is_ascii_alphabetic())
            {
                is_float = true;
                self.bump();
            } else if c == 'e' || c == 'E' {
                is_float = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(EqlError::new(
                        pos,
                        "malformed number: exponent without digits",
                    ));
                }
            } else {
                break;
            }
        }
        let end = self.offset();
        let text = &self.src[start..end];
        if is_float {
            // As Elasticsearch's parser: a number too large for a double is an error.
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Tok::Float(n)),
                Ok(_) => Err(EqlError::new(pos, format!("number `{text}` is too large"))),
                Err(_) => Err(EqlError::new(pos, format!("malformed number `{text}`"))),
            }
        } else {
            // Like Elasticsearch: an integer too large for a long is read as a double.
            match text.parse::<i64>() {
                Ok(n) => Ok(Tok::Int(n)),
                Err(_) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(Tok::Float)
                    .ok_or_else(|| EqlError::new(pos, format!("number `{text}` is out of range"))),
            }
        }
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, EqlError> {
        if self.peek() == Some('"') && self.peek2() == Some('"') {
            self.bump();
            self.bump();
            // Raw string: everything up to the next `"""`.
            let mut s = String::new();
            loop {
                match self.bump() {
                    None => return Err(EqlError::new(pos, "unterminated string `\"\"\"`")),
                    Some('"') if self.peek() == Some('"') && self.peek2() == Some('"') => {
                        self.bump();
                        self.bump();
                        // Like ANTLR's non-greedy rule: the first `"""` ends the string.
                        return Ok(Tok::Str(s));
                    }
                    Some(c) => s.push(c),
                }
            }
        }
        let mut s = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None | Some('\n') | Some('\r') => {
                    return Err(EqlError::new(
                        pos,
                        "unterminated string (strings cannot span lines; use \"\"\"...\"\"\")",
                    ));
                }
                Some('"') => return Ok(Tok::Str(s)),
                Some('\\') => match self.bump() {
                    Some('b') => s.push('\u{8}'),
                    Some('t') => s.push('\t'),
                    Some('n') => s.push('\n'),
                    Some('f') => s.push('\u{c}'),
                    Some('r') => s.push('\r'),
                    Some('"') => s.push('"'),
                    Some('\'') => s.push('\''),
                    Some('\\') => s.push('\\'),
                    Some('u') => {
                        if !self.eat('{') {
                            return Err(EqlError::new(
                                here,
                                "unicode escape must be written \\u{XXXX}",
                            ));
                        }
                        let mut hex = String::new();
                        while let Some(c) = self.peek().filter(|c| c.is_ascii_hexdigit()) {
                            hex.push(c);
                            self.bump();
                        }
                        if !self.eat('}') || !(2..=8).contains(&hex.len()) {
                            return Err(EqlError::new(
                                here,
                                "unicode escape must be \\u{...} with 2 to 8 hex digits",
                            ));
                        }
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                EqlError::new(
                                    here,
                                    format!("\\u{{{hex}}} is not a valid unicode character"),
                                )
                            })?;
                        s.push(ch);
                    }
                    Some(other) => {
                        return Err(EqlError::new(
                            here,
                            format!("illegal escape sequence `\\{other}`"),
                        ));
                    }
                    None => return Err(EqlError::new(pos, "unterminated string")),
                },
                Some(c) => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\tb\\c\"d""#),
            vec![Tok::Str("a\tb\\c\"d".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""\u{41}\u{1F600}""#),
            vec![Tok::Str("A😀".into()), Tok::Eof]
        );
        assert_eq!(
            toks("\"\"\"a\\*\n\"b\"\"\""),
            vec![Tok::Str("a\\*\n\"b".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""""C:\Windows\*""""#),
            vec![Tok::Str(r"C:\Windows\*".into()), Tok::Eof]
        );
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            toks("a.b like~ \"x\" and not c in~ (1, 2.5) or startsWith~(d, \"e\")"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::LikeCi,
                Tok::Str("x".into()),
                Tok::And,
                Tok::Not,
                Tok::Ident("c".into()),
                Tok::InCi,
                Tok::LParen,
                Tok::Int(1),
                Tok::Comma,
                Tok::Float(2.5),
                Tok::RParen,
                Tok::Or,
                Tok::TildeIdent("startsWith".into()),
                Tok::LParen,
                Tok::Ident("d".into()),
                Tok::Comma,
                Tok::Str("e".into()),
                Tok::RParen,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn big_integers_become_doubles() {
        assert_eq!(
            toks("9223372036854775807"),
            vec![Tok::Int(i64::MAX), Tok::Eof]
        );
        assert_eq!(
            toks("9223372036854775808"),
            vec![Tok::Float(2f64.powi(63)), Tok::Eof]
        );
    }

    #[test]
    fn comments_and_positions() {
        let t = tokenize("// c\n  /* x\n */ a").unwrap();
        assert_eq!(t[0].tok, Tok::Ident("a".into()));
        assert_eq!(t[0].pos, Pos { line: 3, col: 5 });
    }

    #[test]
    fn rejected_forms() {
        for (src, line, col, needle) in [
            ("'a'", 1, 1, "single quotes"),
            ("x == ?\"a\"", 1, 6, "triple double quotes"),
            ("\"a\\qb\"", 1, 3, "illegal escape"),
            ("\n  \"abc", 2, 3, "unterminated string"),
            ("a # b", 1, 3, "unexpected character"),
            ("`` == 1", 1, 1, "empty backquoted identifier"),
        ] {
            let e = tokenize(src).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src}: {e}");
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }
}

//! EQL's `regex` / `regex~` as Elasticsearch runs them: a Lucene `RegExp` (syntax flags `ALL`,
//! the default of the `regexp` query EQL emits) matched against the **whole** value.
//!
//! Lucene's syntax, not Perl's: `^` and `$` are ordinary characters; `.` is any character,
//! newline included; `"..."` is a literal string; `()` is the empty string; `@` is any string;
//! `#` is the empty language; `\d \D \s \S \w \W` are ASCII classes (`\s` is space, tab, newline,
//! carriage return); `\` before any other non-letter is that character, before another letter an
//! error; a reserved character where an atom is expected (`*` in `*a`, a lone `)`) is literal;
//! `[^...]` is any character outside the class. Lucene's intersection `&`, complement `~`
//! and `<...>` intervals/automata are refused with a message (no rule uses them; escape them to
//! match the character). `regex~` is Lucene's `ASCII_CASE_INSENSITIVE`: every single character
//! written in the pattern (also inside a class) matches its other ASCII case, but a range such as
//! `[a-z]` stays as written and `\w`-style classes are not folded either.
//!
//! The pattern compiles into a Thompson NFA run as a state-set simulation: linear in the value's
//! length, no backtracking, no allocation (the state sets live on the stack, which bounds the
//! automaton to [`MAX_STATES`] states).

use std::fmt;

/// The largest automaton a pattern may compile into (`{1,254}` of a class is 254 states).
pub(crate) const MAX_STATES: usize = 2048;
const WORDS: usize = MAX_STATES / 64;

/// A compiled Lucene regular expression.
#[derive(Clone)]
pub(crate) struct Regex {
    source: Box<str>,
    case_insensitive: bool,
    insts: Box<[Inst]>,
    sets: Box<[CharSet]>,
    start: u32,
    /// Characters every match contains (a cheap reject before the automaton runs).
    required: Box<[char]>,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "regex{} {:?}",
            if self.case_insensitive { "~" } else { "" },
            self.source
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Inst {
    /// Consume one character of set `.0`, go to `.1`.
    Char(u32, u32),
    Split(u32, u32),
    Match,
    Fail,
}

/// One class item: inclusive code point ranges, possibly negated (`\W`).
#[derive(Debug, Clone, PartialEq)]
struct Item {
    ranges: Vec<(u32, u32)>,
    negated: bool,
}

/// A character matches if any item matches (none, when the set is negated).
#[derive(Debug, Clone, PartialEq)]
struct CharSet {
    items: Vec<Item>,
    negated: bool,
}

impl CharSet {
    fn matches(&self, c: u32) -> bool {
        let any = self
            .items
            .iter()
            .any(|i| i.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != i.negated);
        any != self.negated
    }

    fn single(ranges: Vec<(u32, u32)>) -> CharSet {
        CharSet {
            items: vec![Item {
                ranges,
                negated: false,
            }],
            negated: false,
        }
    }
}

/// The parse tree.
#[derive(Debug, Clone)]
enum Ast {
    /// `#`: matches nothing.
    Nothing,
    /// The empty string.
    Epsilon,
    Set(CharSet),
    Concat(Box<Ast>, Box<Ast>),
    Union(Box<Ast>, Box<Ast>),
    Optional(Box<Ast>),
    /// `e{min,max}`; `max` `None` is unbounded (`*` is `{0,}`, `+` is `{1,}`).
    Repeat(Box<Ast>, u32, Option<u32>),
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegexError(pub(crate) String);

impl Regex {
    /// Parses and compiles `pattern`; `case_insensitive` is `regex~`.
    pub(crate) fn new(pattern: &str, case_insensitive: bool) -> Result<Regex, RegexError> {
        let mut p = Parser {
            s: pattern.chars().collect(),
            pos: 0,
            ci: case_insensitive,
        };
        let ast = if p.s.is_empty() {
            Ast::Epsilon
        } else {
            let e = p.union()?;
            if p.more() {
                return Err(p.error(format!("end of pattern expected at position {}", p.pos)));
            }
            e
        };
        let required = required_chars(&ast).into_boxed_slice();
        let mut b = Builder::default();
        let accept = b.push(Inst::Match);
        let start = b.emit(&ast, accept)?;
        b.check_size()?;
        Ok(Regex {
            source: pattern.into(),
            case_insensitive,
            insts: b.insts.into(),
            sets: b.sets.into(),
            start,
            required,
        })
    }

    /// Whether the whole of `text` matches. Allocates nothing.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        if !self.required.iter().all(|&c| text.contains(c)) {
            return false;
        }
        let mut cur = [0u64; WORDS];
        let mut next = [0u64; WORDS];
        let mut stack = [0u32; MAX_STATES];
        self.add(&mut cur, &mut stack, self.start);
        for c in text.chars() {
            next.iter_mut().for_each(|w| *w = 0);
            let mut live = false;
            for (w, &word) in cur.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let s = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Inst::Char(set, to) = self.insts[s]
                        && self.sets[set as usize].matches(c as u32)
                    {
                        self.add(&mut next, &mut stack, to);
                        live = true;
                    }
                }
            }
            if !live {
                return false;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        self.insts
            .iter()
            .enumerate()
            .any(|(s, i)| matches!(i, Inst::Match) && cur[s / 64] & (1 << (s % 64)) != 0)
    }

    /// Adds `state` and every state reachable from it without consuming a character.
    fn add(&self, set: &mut [u64; WORDS], stack: &mut [u32; MAX_STATES], state: u32) {
        let mut top = 0;
        stack[top] = state;
        top += 1;
        while top > 0 {
            top -= 1;
            let s = stack[top] as usize;
            if set[s / 64] & (1 << (s % 64)) != 0 {
                continue;
            }
            set[s / 64] |= 1 << (s % 64);
            if let Inst::Split(a, b) = self.insts[s] {
                // Each state is pushed at most once per incoming edge: two per split.
                stack[top] = b;
                stack[top + 1] = a;
                top += 2;
            }
        }
    }
}

/// Characters that occur in every string `ast` matches (a subset: exact for literals, `+` and
/// `{n,}` with n ≥ 1; a union keeps what both sides require).
fn required_chars(ast: &Ast) -> Vec<char> {
    let mut out = match ast {
        Ast::Set(set) => match set.items.as_slice() {
            [
                Item {
                    ranges,
                    negated: false,
                },
            ] if !set.negated && ranges.len() == 1 => {
                let (lo, hi) = ranges[0];
                match char::from_u32(lo) {
                    Some(c) if lo == hi => vec![c],
                    _ => vec![],
                }
            }
            _ => vec![],
        },
        Ast::Concat(a, b) => {
            let mut v = required_chars(a);
            v.extend(required_chars(b));
            v
        }
        Ast::Union(a, b) => {
            let right = required_chars(b);
            required_chars(a)
                .into_iter()
                .filter(|c| right.contains(c))
                .collect()
        }
        Ast::Repeat(e, min, _) if *min > 0 => required_chars(e),
        _ => vec![],
    };
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Default)]
struct Builder {
    insts: Vec<Inst>,
    sets: Vec<CharSet>,
}

impl Builder {
    fn push(&mut self, inst: Inst) -> u32 {
        self.insts.push(inst);
        (self.insts.len() - 1) as u32
    }

    fn check_size(&self) -> Result<(), RegexError> {
        // Splits can at most double the closure stack's pushes; keep both within bounds.
        if self.insts.len() * 2 + 1 > MAX_STATES {
            return Err(RegexError(format!(
                "the pattern is too large: its automaton exceeds {} states",
                MAX_STATES / 2
            )));
        }
        Ok(())
    }

    /// Emits `ast` so that it continues at `next`; returns its entry state.
    fn emit(&mut self, ast: &Ast, next: u32) -> Result<u32, RegexError> {
        self.check_size()?;
        Ok(match ast {
            Ast::Nothing => self.push(Inst::Fail),
            Ast::Epsilon => next,
            Ast::Set(set) => {
                let id = match self.sets.iter().position(|s| s == set) {
                    Some(i) => i,
                    None => {
                        self.sets.push(set.clone());
                        self.sets.len() - 1
                    }
                };
                self.push(Inst::Char(id as u32, next))
            }
            Ast::Concat(a, b) => {
                let b = self.emit(b, next)?;
                self.emit(a, b)?
            }
            Ast::Union(a, b) => {
                let a = self.emit(a, next)?;
                let b = self.emit(b, next)?;
                self.push(Inst::Split(a, b))
            }
            Ast::Optional(e) => {
                let e = self.emit(e, next)?;
                self.push(Inst::Split(e, next))
            }
            Ast::Repeat(e, min, max) => {
                let mut cur = next;
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, next));
                        let body = self.emit(e, split)?;
                        self.insts[split as usize] = Inst::Split(body, next);
                        cur = split;
                    }
                    // Lucene: an empty language when min > max.
                    Some(max) if max < min => return Ok(self.push(Inst::Fail)),
                    Some(max) => {
                        for _ in 0..(max - min) {
                            let body = self.emit(e, cur)?;
                            cur = self.push(Inst::Split(body, cur));
                        }
                    }
                }
                for _ in 0..*min {
                    cur = self.emit(e, cur)?;
                }
                cur
            }
        })
    }
}

/// A recursive-descent parser that follows Lucene's `RegExp` grammar production by production.
struct Parser {
    s: Vec<char>,
    pos: usize,
    ci: bool,
}

impl Parser {
    fn error(&self, message: String) -> RegexError {
        RegexError(message)
    }

    fn more(&self) -> bool {
        self.pos < self.s.len()
    }

    fn peek(&self, chars: &str) -> bool {
        self.more() && chars.contains(self.s[self.pos])
    }

    fn eat(&mut self, c: char) -> bool {
        if self.more() && self.s[self.pos] == c {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Result<char, RegexError> {
        if !self.more() {
            return Err(self.error("unexpected end of pattern".to_owned()));
        }
        self.pos += 1;
        Ok(self.s[self.pos - 1])
    }

    fn refuse(&self, what: &str, c: char) -> RegexError {
        self.error(format!(
            "Lucene's {what} operator `{c}` (position {}) is not supported; write `\\{c}` to match the character",
            self.pos
        ))
    }

    fn union(&mut self) -> Result<Ast, RegexError> {
        let e = self.inter()?;
        if self.eat('|') {
            return Ok(Ast::Union(Box::new(e), Box::new(self.union()?)));
        }
        Ok(e)
    }

    fn inter(&mut self) -> Result<Ast, RegexError> {
        let e = self.concat()?;
        if self.peek("&") {
            return Err(self.refuse("intersection", '&'));
        }
        Ok(e)
    }

    fn concat(&mut self) -> Result<Ast, RegexError> {
        let e = self.repeat()?;
        if self.more() && !self.peek(")|&") {
            return Ok(Ast::Concat(Box::new(e), Box::new(self.concat()?)));
        }
        Ok(e)
    }

    fn repeat(&mut self) -> Result<Ast, RegexError> {
        let mut e = self.compl()?;
        while self.peek("?*+{") {
            if self.eat('?') {
                e = Ast::Optional(Box::new(e));
            } else if self.eat('*') {
                e = Ast::Repeat(Box::new(e), 0, None);
            } else if self.eat('+') {
                e = Ast::Repeat(Box::new(e), 1, None);
            } else if self.eat('{') {
                let n = self.number()?.ok_or_else(|| {
                    self.error(format!("integer expected at position {}", self.pos))
                })?;
                let m = if self.eat(',') {
                    self.number()?
                } else {
                    Some(n)
                };
                if !self.eat('}') {
                    return Err(self.error(format!("expected '}}' at position {}", self.pos)));
                }
                e = Ast::Repeat(Box::new(e), n, m);
            }
        }
        Ok(e)
    }

    fn number(&mut self) -> Result<Option<u32>, RegexError> {
        let start = self.pos;
        while self.peek("0123456789") {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(None);
        }
        let digits: String = self.s[start..self.pos].iter().collect();
        digits
            .parse()
            .map(Some)
            .map_err(|_| self.error(format!("repeat count {digits} is too large")))
    }

    fn compl(&mut self) -> Result<Ast, RegexError> {
        if self.peek("~") {
            return Err(self.refuse("complement", '~'));
        }
        self.char_class()
    }

    fn char_class(&mut self) -> Result<Ast, RegexError> {
        if !self.eat('[') {
            return self.simple();
        }
        let negated = self.eat('^');
        let mut items = vec![self.class_item()?];
        while self.more() && !self.peek("]") {
            items.push(self.class_item()?);
        }
        if !self.eat(']') {
            return Err(self.error(format!("expected ']' at position {}", self.pos)));
        }
        Ok(Ast::Set(CharSet { items, negated }))
    }

    fn class_item(&mut self) -> Result<Item, RegexError> {
        if let Some(pre) = self.predefined()? {
            return Ok(pre);
        }
        let c = self.char_exp()?;
        if self.eat('-') {
            let to = self.char_exp()?;
            if (c as u32) > (to as u32) {
                return Err(self.error(format!("invalid range: from ({c}) cannot be > to ({to})")));
            }
            // Lucene does not fold ranges.
            return Ok(Item {
                ranges: vec![(c as u32, to as u32)],
                negated: false,
            });
        }
        Ok(self.char_item(c))
    }

    /// A single character, with its other ASCII case under `regex~`.
    fn char_item(&self, c: char) -> Item {
        let mut ranges = vec![(c as u32, c as u32)];
        if self.ci && c.is_ascii_alphabetic() {
            let alt = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            ranges.push((alt as u32, alt as u32));
        }
        Item {
            ranges,
            negated: false,
        }
    }

    /// `\d \D \s \S \w \W`, or `\\`; `None` (with a lone `\` consumed) for any other escape.
    fn predefined(&mut self) -> Result<Option<Item>, RegexError> {
        if !self.eat('\\') {
            return Ok(None);
        }
        let digit = vec![(b'0' as u32, b'9' as u32)];
        let space = [b' ', b'\t', b'\n', b'\r']
            .iter()
            .map(|&b| (b as u32, b as u32))
            .collect::<Vec<_>>();
        let word = vec![
            (b'a' as u32, b'z' as u32),
            (b'A' as u32, b'Z' as u32),
            (b'_' as u32, b'_' as u32),
            (b'0' as u32, b'9' as u32),
        ];
        let item = |ranges, negated| Some(Item { ranges, negated });
        if !self.more() {
            return Ok(None);
        }
        let c = self.s[self.pos];
        let out = match c {
            'd' => item(digit, false),
            'D' => item(digit, true),
            's' => item(space, false),
            'S' => item(space, true),
            'w' => item(word, false),
            'W' => item(word, true),
            // Lucene's `\\` is a plain character, never the start of a range.
            '\\' => Some(self.char_item('\\')),
            c if c.is_ascii_alphabetic() => {
                return Err(self.error(format!("invalid character class \\{c}")));
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(out)
    }

    fn simple(&mut self) -> Result<Ast, RegexError> {
        if self.eat('.') {
            return Ok(Ast::Set(any_char()));
        }
        if self.eat('#') {
            return Ok(Ast::Nothing);
        }
        if self.eat('@') {
            return Ok(Ast::Repeat(Box::new(Ast::Set(any_char())), 0, None));
        }
        if self.eat('"') {
            let start = self.pos;
            while self.more() && !self.peek("\"") {
                self.pos += 1;
            }
            if !self.eat('"') {
                return Err(self.error(format!("expected '\"' at position {}", self.pos)));
            }
            let chars: Vec<char> = self.s[start..self.pos - 1].to_vec();
            return Ok(self.string(&chars));
        }
        if self.eat('(') {
            if self.eat(')') {
                return Ok(Ast::Epsilon);
            }
            let e = self.union()?;
            if !self.eat(')') {
                return Err(self.error(format!("expected ')' at position {}", self.pos)));
            }
            return Ok(e);
        }
        if self.peek("<") {
            return Err(self.refuse("interval/automaton", '<'));
        }
        if let Some(pre) = self.predefined()? {
            return Ok(Ast::Set(CharSet {
                items: vec![pre],
                negated: false,
            }));
        }
        let c = self.char_exp()?;
        Ok(Ast::Set(CharSet {
            items: vec![self.char_item(c)],
            negated: false,
        }))
    }

    fn string(&self, chars: &[char]) -> Ast {
        chars.iter().rev().fold(Ast::Epsilon, |rest, &c| {
            let set = Ast::Set(CharSet {
                items: vec![self.char_item(c)],
                negated: false,
            });
            match rest {
                Ast::Epsilon => set,
                rest => Ast::Concat(Box::new(set), Box::new(rest)),
            }
        })
    }

    fn char_exp(&mut self) -> Result<char, RegexError> {
        self.eat('\\');
        self.next()
    }
}

fn any_char() -> CharSet {
    CharSet::single(vec![(0, char::MAX as u32)])
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, ci: bool, text: &str) -> bool {
        Regex::new(p, ci)
            .unwrap_or_else(|e| panic!("{p}: {}", e.0))
            .is_match(text)
    }

    #[test]
    fn whole_value_and_lucene_syntax() {
        let rows: &[(&str, bool, &str, bool)] = &[
            ("abc", false, "abc", true),
            ("abc", false, "xabc", false),
            ("b", false, "abc", false),
            (".*b.*", false, "abc", true),
            ("^abc$", false, "abc", false),
            ("^abc$", false, "^abc$", true),
            (".", false, "\n", true),
            ("a.c", false, "a\u{1F600}c", true),
            ("a|b", false, "b", true),
            ("(ab)+", false, "abab", true),
            ("(ab)+", false, "aba", false),
            ("a{2,3}", false, "aaaa", false),
            ("a{2,3}", false, "aaa", true),
            ("a{2,}", false, "aaaaa", true),
            ("a{2}", false, "a", false),
            ("a{3,1}", false, "a", false),
            ("[a-c]+", false, "abcb", true),
            ("[^a-c]", false, "d", true),
            ("[^a-c]", false, "b", false),
            ("[^-]*", false, "abc", true),
            ("[^-]*", false, "a-c", false),
            (r"\d+", false, "123", true),
            (r"\D", false, "1", false),
            (r"\s", false, "\t", true),
            (r"\S", false, " ", false),
            (r"\w+", false, "a_Z9", true),
            (r"\W", false, "a", false),
            (r"[\w.]+", false, "a.b", true),
            (r"a\.b", false, "a.b", true),
            (r"a\.b", false, "axb", false),
            (r"\\", false, "\\", true),
            ("\"a.b\"", false, "a.b", true),
            ("\"a.b\"", false, "axb", false),
            ("a()b", false, "ab", true),
            ("@", false, "anything", true),
            ("a#", false, "a", false),
            ("", false, "", true),
            ("", false, "a", false),
            ("*a", false, "*a", true),
            (")", false, ")", true),
            ("]", false, "]", true),
            // regex~: single characters fold, ranges and \w-classes do not.
            ("abc", true, "AbC", true),
            ("[abc]", true, "B", true),
            ("[a-c]", true, "B", false),
            ("[^a]", true, "A", false),
            ("[^a-z]", true, "A", true),
            ("\"ab\"", true, "AB", true),
            ("é", true, "É", false),
            ("k", true, "\u{212a}", false),
        ];
        for &(p, ci, text, want) in rows {
            assert_eq!(m(p, ci, text), want, "{p} (ci {ci}) on {text:?}");
        }
    }

    #[test]
    fn required_characters_reject_early_without_changing_verdicts() {
        let r = Regex::new(".*[0-9]+:[0-9]+(a|ab)x.*", false).unwrap();
        assert_eq!(&*r.required, &[':', 'a', 'x']);
        assert!(r.is_match("1:2ax"));
        assert!(!r.is_match("1:2bx"));
        assert!(Regex::new("a|b", false).unwrap().required.is_empty());
        assert!(
            Regex::new("(ab)?c{0,2}", false)
                .unwrap()
                .required
                .is_empty()
        );
        assert!(Regex::new("a", true).unwrap().required.is_empty());
    }

    #[test]
    fn refusals() {
        for p in [
            "a&b", "~a", "<1-5>", "<x>", "[a", "(a", "a{", "a{x}", r"\q", "a|", r"\", "[z-a]",
        ] {
            assert!(Regex::new(p, false).is_err(), "{p}");
        }
        assert!(Regex::new(&format!("[a-z]{{1,{}}}", 5000), false).is_err());
    }

    #[test]
    fn the_library_patterns() {
        let dotted = ".*[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}.*";
        assert!(m(dotted, false, "wget --post-file=x http://10.1.2.3/"));
        assert!(!m(dotted, false, "wget --post-file=x http://10.1.2/"));
        let hidden = r"\.[a-z0-9_\-][a-z0-9_\-\.]{1,254}";
        assert!(m(hidden, true, ".x1"));
        assert!(!m(hidden, true, "/tmp/.x1"));
        assert!(m(hidden, true, ".xy"));
        assert!(!m(hidden, true, ".xY"));
        assert!(!m(hidden, true, ".Xy"));
        let pid = r"/var/run/\w+\.(pid|lock|reboot)";
        assert!(m(pid, true, "/VAR/run/x.PID"));
        assert!(!m(pid, true, "/var/run/x/y.pid"));
        let shred = "-[^-]*[uz][^-]*";
        assert!(m(shred, true, "-fU"));
        assert!(!m(shred, true, "--u"));
    }
}

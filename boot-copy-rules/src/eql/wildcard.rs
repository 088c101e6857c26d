//! Wildcard patterns, as Elasticsearch matches them for EQL's `like`, `like~`, `:` and the
//! `wildcard` function ([`Wildcard::like`]) and for exception entries with `matches`
//! ([`Wildcard::lucene`]).
//!
//! - The pattern is anchored to the whole value.
//! - `*` matches zero or more characters, `?` exactly one character (one Unicode scalar value).
//! - In EQL a backslash is an ordinary character: EQL hands the pattern to Elasticsearch with an
//!   escape character no text contains, so nothing can be escaped (`*\x*` needs a backslash
//!   followed by `x`). A Kibana exception's `matches` is a Lucene `wildcard` query, where `\`
//!   makes the next character literal (`\*`, `\?`, `\\`; a trailing lone `\` is a backslash).
//! - Case-insensitive patterns fold **ASCII letters only**: `K` matches `k`, but `É` does not match
//!   `é` and the Kelvin sign does not match `k`.
//!
//! A pattern is split once into literal segments and wildcards; matching walks the value's bytes
//! without allocating.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Literal text (never empty).
    Lit(Box<str>),
    /// `?`: exactly one character.
    One,
    /// `*`: zero or more characters (consecutive stars are collapsed).
    Many,
}

/// A compiled wildcard pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Wildcard {
    source: Box<str>,
    tokens: Box<[Token]>,
    case_insensitive: bool,
}

impl fmt::Debug for Wildcard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Wildcard({:?}{})",
            self.source,
            if self.case_insensitive { ", ~" } else { "" }
        )
    }
}

impl Wildcard {
    /// An EQL `like` pattern (backslash literal); `case_insensitive` folds ASCII letters only.
    pub fn like(pattern: &str, case_insensitive: bool) -> Self {
        Wildcard::new(pattern, case_insensitive, false)
    }

    /// A Lucene `wildcard` query's pattern (backslash escapes); `case_insensitive` folds ASCII
    /// letters only.
    pub fn lucene(pattern: &str, case_insensitive: bool) -> Self {
        Wildcard::new(pattern, case_insensitive, true)
    }

    fn new(pattern: &str, case_insensitive: bool, escapes: bool) -> Self {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        let flush = |lit: &mut String, tokens: &mut Vec<Token>| {
            if !lit.is_empty() {
                tokens.push(Token::Lit(std::mem::take(lit).into_boxed_str()));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' if escapes => match chars.next() {
                    Some(next) => lit.push(next),
                    None => lit.push('\\'),
                },
                '*' => {
                    flush(&mut lit, &mut tokens);
                    if tokens.last() != Some(&Token::Many) {
                        tokens.push(Token::Many);
                    }
                }
                '?' => {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::One);
                }
                c => lit.push(c),
            }
        }
        flush(&mut lit, &mut tokens);
        Wildcard {
            source: pattern.into(),
            tokens: tokens.into_boxed_slice(),
            case_insensitive,
        }
    }

    /// What every match must begin with: `(text, whole)` where `whole` means the pattern is
    /// exactly that text (no wildcard). `None` if the pattern starts with a wildcard.
    pub(crate) fn literal_prefix(&self) -> Option<(&str, bool)> {
        match &*self.tokens {
            [Token::Lit(s)] => Some((s, true)),
            [Token::Lit(s), ..] => Some((s, false)),
            _ => None,
        }
    }

    /// What every match must end with, for a pattern that ends with literal text.
    pub(crate) fn literal_suffix(&self) -> Option<&str> {
        match self.tokens.last() {
            Some(Token::Lit(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether the pattern folds ASCII case.
    pub(crate) fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// Whether `text` as a whole matches the pattern.
    pub fn is_match(&self, text: &str) -> bool {
        let text = text.as_bytes();
        let tokens = &*self.tokens;
        let ci = self.case_insensitive;
        let (mut ti, mut pi) = (0usize, 0usize);
        // Where to resume after the last `*`: (token after the star, text position it covers up to).
        let mut resume: Option<(usize, usize)> = None;
        loop {
            if pi < tokens.len() {
                match &tokens[pi] {
                    Token::Many => {
                        pi += 1;
                        if pi == tokens.len() {
                            return true;
                        }
                        resume = Some((pi, ti));
                        continue;
                    }
                    Token::One => {
                        if ti < text.len() {
                            ti += utf8_width(text[ti]);
                            pi += 1;
                            continue;
                        }
                    }
                    Token::Lit(lit) => {
                        let lit = lit.as_bytes();
                        if text.len() - ti >= lit.len()
                            && bytes_eq(&text[ti..ti + lit.len()], lit, ci)
                        {
                            ti += lit.len();
                            pi += 1;
                            continue;
                        }
                    }
                }
            } else if ti == text.len() {
                return true;
            }
            // Mismatch: let the last star swallow one more character, if there is one.
            match resume {
                Some((star_pi, star_ti)) if star_ti < text.len() => {
                    let next = star_ti + utf8_width(text[star_ti]);
                    resume = Some((star_pi, next));
                    pi = star_pi;
                    ti = next;
                }
                _ => return false,
            }
        }
    }
}

/// Byte equality, folding ASCII letters when `ci`. Non-ASCII bytes (all UTF-8 bytes of non-ASCII
/// characters are >= 0x80) compare exactly, so only ASCII case is folded.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8], ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Width in bytes of the UTF-8 sequence starting with `lead`.
#[inline]
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, t: &str) -> bool {
        Wildcard::like(p, false).is_match(t)
    }
    fn mi(p: &str, t: &str) -> bool {
        Wildcard::like(p, true).is_match(t)
    }

    #[test]
    fn table() {
        let rows: &[(&str, &str, bool, bool)] = &[
            // pattern, text, case-sensitive result, case-insensitive result
            ("/boot/*", "/boot/x", true, true),
            ("/boot/*", "/boot/", true, true),
            ("/boot/*", "/boot", false, false),
            ("/boot/*", "/BOOT/x", false, true),
            ("/boot/*", "//boot/x", false, false),
            ("/boot/*", "x/boot/y", false, false),
            ("*", "", true, true),
            ("", "", true, true),
            ("", "a", false, false),
            ("?", "", false, false),
            ("?", "é", true, true),
            ("??", "é", false, false),
            ("a?c", "abc", true, true),
            ("a?c", "ac", false, false),
            ("*.sh", "x.sh", true, true),
            ("*.sh", "x.SH", false, true),
            ("/var/tmp/rpm-tmp.*", "/var/tmp/rpm-tmpX", false, false),
            ("/var/tmp/rpm-tmp.*", "/var/tmp/rpm-tmp.1234", true, true),
            // A backslash is an ordinary character: nothing escapes `*` or `?`.
            ("*\\x*", "a\\xb", true, true),
            ("*\\x*", "axb", false, false),
            ("*\\x*", "a\\Xb", false, true),
            ("a\\*b", "a\\b", true, true),
            ("a\\*b", "a\\*b", true, true),
            ("a\\*b", "a*b", false, false),
            ("a\\?b", "a\\xb", true, true),
            ("a\\?b", "a?b", false, false),
            ("a\\\\b", "a\\\\b", true, true),
            ("a\\\\b", "a\\b", false, false),
            ("a\\", "a\\", true, true),
            ("a\\x", "ax", false, false),
            ("*a*a*a", "aaa", true, true),
            ("*a*a*a", "aa", false, false),
            ("*ab*ab", "abxabab", true, true),
            ("a*b?d", "abxbcd", true, true),
            ("É*", "é", false, false),
            ("é", "É", false, false),
            ("k", "\u{212a}", false, false),
            ("STRASSE", "straße", false, false),
            (
                "/usr/bin/mkinitcpio",
                "/usr/bin/mkinitcpio -P",
                false,
                false,
            ),
        ];
        for &(p, t, cs, ci) in rows {
            assert_eq!(m(p, t), cs, "{p:?} like {t:?}");
            assert_eq!(mi(p, t), ci, "{p:?} like~ {t:?}");
        }
    }

    /// Exception entries (`matches`): Lucene's wildcard query, where a backslash escapes.
    #[test]
    fn lucene_escapes() {
        let rows: &[(&str, &str, bool)] = &[
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\*b", "a\\b", false),
            ("a\\?b", "a?b", true),
            ("a\\?b", "axb", false),
            ("a\\\\b", "a\\b", true),
            ("a\\", "a\\", true),
            ("a\\x", "ax", true),
            ("*\\x*", "axb", true),
            ("/boot/*", "/boot/x", true),
        ];
        for &(p, t, want) in rows {
            assert_eq!(Wildcard::lucene(p, false).is_match(t), want, "{p:?} {t:?}");
        }
    }

    #[test]
    fn long_values_are_matched_in_full() {
        let long = format!("/boot/{}", "a".repeat(5000));
        assert!(m("/boot/*", &long));
        assert!(m(&format!("*{}", "a".repeat(2000)), &long));
        assert!(!m("*b", &long));
    }

    /// Independent reference: a regex built from the pattern, with ASCII letters folded through
    /// explicit per-character classes (the regex crate's own `(?i)` folds Unicode).
    fn reference(pattern: &str, ci: bool, escapes: bool) -> regex::Regex {
        let mut re = String::from("(?s)^");
        let mut chars = pattern.chars();
        let lit = |c: char, re: &mut String| {
            if ci && c.is_ascii_alphabetic() {
                re.push('[');
                re.push(c.to_ascii_lowercase());
                re.push(c.to_ascii_uppercase());
                re.push(']');
            } else {
                re.push_str(&regex::escape(&c.to_string()));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' if escapes => lit(chars.next().unwrap_or('\\'), &mut re),
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => lit(c, &mut re),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    fn alphabet() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'a', 'A', 'b', 'B', 'k', 'K', '/', '.', '-', ' ', 'é', 'É', 'ß', '\u{212a}', 'ı', 'İ',
            '\n', '😀',
        ])
    }
    fn pattern_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => alphabet(),
            1 => Just('*'),
            1 => Just('?'),
            1 => Just('\\'),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn agrees_with_regex_reference(
            pattern in prop::collection::vec(pattern_char(), 0..10).prop_map(|v| v.into_iter().collect::<String>()),
            text in prop::collection::vec(alphabet(), 0..14).prop_map(|v| v.into_iter().collect::<String>()),
            ci in any::<bool>(),
            escapes in any::<bool>(),
        ) {
            let expected = reference(&pattern, ci, escapes).is_match(&text);
            prop_assert_eq!(Wildcard::new(&pattern, ci, escapes).is_match(&text), expected,
                "pattern {:?} text {:?} ci {} escapes {}", pattern, text, ci, escapes);
        }

        /// Texts derived from the pattern itself, so that matches are common, not rare.
        #[test]
        fn agrees_on_texts_built_from_the_pattern(
            pattern in prop::collection::vec(pattern_char(), 0..10).prop_map(|v| v.into_iter().collect::<String>()),
            fill in prop::collection::vec(alphabet(), 0..4).prop_map(|v| v.into_iter().collect::<String>()),
            flip in any::<bool>(),
            ci in any::<bool>(),
            escapes in any::<bool>(),
        ) {
            let mut text = String::new();
            let mut chars = pattern.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if escapes => text.push(chars.next().unwrap_or('\\')),
                    '*' => text.push_str(&fill),
                    '?' => text.push(fill.chars().next().unwrap_or('x')),
                    c if flip => text.extend(c.to_uppercase()),
                    c => text.push(c),
                }
            }
            let expected = reference(&pattern, ci, escapes).is_match(&text);
            prop_assert_eq!(Wildcard::new(&pattern, ci, escapes).is_match(&text), expected,
                "pattern {:?} text {:?} ci {} escapes {}", pattern, text, ci, escapes);
        }
    }
}

//! Operands of cp, mv, install and rsync: which arguments are options, which is the destination.
//!
//! GNU getopt rules: short options cluster (`-av`), an option taking an argument takes the rest
//! of its cluster (`-t/boot`) or the next argument (`-t /boot`); long options take `=VALUE` or
//! the next argument and may be abbreviated to any unambiguous prefix (`--target=/boot`); `--`
//! ends the options; options and operands may be interleaved.

/// How the destination was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The last operand.
    Operand,
    /// `-t DIR` (DIR its own argument).
    ShortSeparate,
    /// `-tDIR` (joined, possibly after other short options: `-at/boot`).
    ShortJoined,
    /// `--target-directory DIR` (or an abbreviation).
    LongSeparate,
    /// `--target-directory=DIR` (or an abbreviation).
    LongJoined,
    /// The last operand when options end at the first operand, as with `POSIXLY_CORRECT` in the
    /// environment (`cp f -t /tmp /boot` then copies `f`, `-t` and `/tmp` into `/boot`), where
    /// it differs from the destination GNU's permuting parse finds.
    PosixOrder,
}

impl Form {
    /// The evasion tag of a form the published rule cannot see (the argument text does not start
    /// with the directory).
    pub fn evasion(self) -> Option<&'static str> {
        match self {
            Form::ShortJoined => Some("joined_target_option"),
            Form::LongJoined => Some("long_target_option"),
            Form::PosixOrder => Some("posix_operands"),
            _ => None,
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The destination and how it was named, if the command line has one.
    pub destination: Option<(String, Form)>,
    /// Operands other than the destination (the sources).
    pub sources: Vec<String>,
}

struct Syntax {
    /// Short options that take an argument.
    short_arg: &'static str,
    /// The short option naming the target directory, if any.
    short_target: Option<char>,
    /// Long options that take a required argument (`=V` or the next argument).
    long_arg: &'static [&'static str],
    /// Every long option (for unambiguous-prefix matching).
    long_all: &'static [&'static str],
}

const CP_LONG: &[&str] = &[
    "archive",
    "attributes-only",
    "backup",
    "copy-contents",
    "debug",
    "dereference",
    "force",
    "interactive",
    "link",
    "no-clobber",
    "no-dereference",
    "preserve",
    "no-preserve",
    "parents",
    "recursive",
    "reflink",
    "remove-destination",
    "sparse",
    "strip-trailing-slashes",
    "suffix",
    "symbolic-link",
    "target-directory",
    "no-target-directory",
    "update",
    "verbose",
    "one-file-system",
    "context",
    "keep-directory-symlink",
    "help",
    "version",
    "exchange",
    "no-copy",
];
const INSTALL_LONG: &[&str] = &[
    "backup",
    "compare",
    "debug",
    "directory",
    "group",
    "mode",
    "owner",
    "preserve-timestamps",
    "strip",
    "strip-program",
    "suffix",
    "target-directory",
    "no-target-directory",
    "verbose",
    "preserve-context",
    "context",
    "help",
    "version",
];

fn syntax(tool: &str) -> Syntax {
    match tool {
        "install" => Syntax {
            short_arg: "gmoSt",
            short_target: Some('t'),
            long_arg: &[
                "group",
                "mode",
                "owner",
                "strip-program",
                "suffix",
                "target-directory",
            ],
            long_all: INSTALL_LONG,
        },
        // rsync's -t is --times; the destination is the last operand.
        "rsync" => Syntax {
            short_arg: "efBTM@",
            short_target: None,
            long_arg: &[],
            long_all: &[],
        },
        _ => Syntax {
            short_arg: "St",
            short_target: Some('t'),
            long_arg: &["no-preserve", "sparse", "suffix", "target-directory"],
            long_all: CP_LONG,
        },
    }
}

/// The long option `name` abbreviates, if unambiguous.
fn long_match<'a>(name: &str, all: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = all.iter().find(|o| **o == name) {
        return Some(exact);
    }
    let mut hits = all.iter().filter(|o| o.starts_with(name));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Parses `args` (without argv\[0\]) of `tool` (`cp`, `mv`, `install` or `rsync`).
pub fn parse(tool: &str, args: &[String]) -> Parsed {
    parse_with(tool, args, false)
}

/// [`parse`] as getopt does with `POSIXLY_CORRECT` set (which the agent cannot see): options end
/// at the first operand.
pub fn parse_posix(tool: &str, args: &[String]) -> Parsed {
    parse_with(tool, args, true)
}

fn parse_with(tool: &str, args: &[String], posix: bool) -> Parsed {
    let syn = syntax(tool);
    let mut target: Option<(String, Form)> = None;
    let mut operands = Vec::new();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if options_done || a == "-" || !a.starts_with('-') {
            operands.push(a.clone());
            options_done |= posix;
            continue;
        }
        if a == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            // rsync: every long option with a value is written with `=` in practice.
            let full = long_match(name, syn.long_all).unwrap_or(name);
            let takes = syn.long_arg.contains(&full);
            let (value, form) = match value {
                Some(v) => (Some(v), Form::LongJoined),
                None if takes && i < args.len() => {
                    i += 1;
                    (Some(args[i - 1].clone()), Form::LongSeparate)
                }
                None => (None, Form::LongSeparate),
            };
            if let (true, Some(v)) = (full == "target-directory", value) {
                target = Some((v, form));
            }
            continue;
        }
        // A cluster of short options.
        let chars: Vec<char> = a[1..].chars().collect();
        for (k, &c) in chars.iter().enumerate() {
            if syn.short_arg.contains(c) {
                let rest: String = chars[k + 1..].iter().collect();
                let (value, form) = if !rest.is_empty() {
                    (Some(rest), Form::ShortJoined)
                } else if i < args.len() {
                    i += 1;
                    (Some(args[i - 1].clone()), Form::ShortSeparate)
                } else {
                    (None, Form::ShortSeparate)
                };
                if let (true, Some(v)) = (Some(c) == syn.short_target, value) {
                    target = Some((v, form));
                }
                break;
            }
        }
    }
    match target {
        Some(t) => Parsed {
            destination: Some(t),
            sources: operands,
        },
        None if operands.len() >= 2 => {
            let last = operands.pop().expect("two operands");
            Parsed {
                destination: Some((last, Form::Operand)),
                sources: operands,
            }
        }
        None => Parsed {
            destination: None,
            sources: operands,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tool: &str, line: &str) -> (Option<(String, Form)>, Vec<String>) {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let r = parse(tool, &args);
        (r.destination, r.sources)
    }

    fn d(s: &str, f: Form) -> Option<(String, Form)> {
        Some((s.to_owned(), f))
    }

    #[test]
    fn destinations() {
        use Form::*;
        assert_eq!(p("cp", "x /boot").0, d("/boot", Operand));
        assert_eq!(p("cp", "-a x y /boot/").1, vec!["x", "y"]);
        assert_eq!(p("cp", "-t /boot x").0, d("/boot", ShortSeparate));
        assert_eq!(p("cp", "-t/boot x").0, d("/boot", ShortJoined));
        assert_eq!(p("cp", "-avt/boot x").0, d("/boot", ShortJoined));
        assert_eq!(
            p("cp", "--target-directory=/boot x").0,
            d("/boot", LongJoined)
        );
        assert_eq!(
            p("cp", "--target-directory /boot x").0,
            d("/boot", LongSeparate)
        );
        assert_eq!(p("mv", "--targ=/boot x").0, d("/boot", LongJoined));
        assert_eq!(p("cp", "--suffix /boot x y").0, d("y", Operand));
        assert_eq!(p("cp", "-S /boot x y").0, d("y", Operand));
        assert_eq!(p("cp", "x -- -t/boot").0, d("-t/boot", Operand));
        assert_eq!(p("cp", "x").0, None);
        assert_eq!(p("install", "-m 0644 x /boot").0, d("/boot", Operand));
        assert_eq!(p("install", "-Dt /boot x").0, d("/boot", ShortSeparate));
        assert_eq!(p("rsync", "-avt x /boot").0, d("/boot", Operand));
        assert_eq!(p("rsync", "-e ssh x /boot").1, vec!["x"]);
        let posix = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            parse_posix("cp", &args).destination
        };
        assert_eq!(posix("x -t /tmp /boot"), d("/boot", Operand));
        assert_eq!(posix("-t /tmp x /boot"), d("/tmp", ShortSeparate));
        assert_eq!(p("cp", "x -t /tmp /boot").0, d("/tmp", ShortSeparate));
    }
}

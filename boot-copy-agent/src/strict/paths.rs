//! Path operands as the kernel will walk them: made absolute against the exec's working
//! directory and normalized lexically (`.`, `..`, repeated slashes), plus the textual forms that
//! keep the published rule's `process.args like~ "/boot/*"` from seeing them.

/// A path operand, normalized, with the evasive forms its text used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Absolute, no `.`/`..` components, no repeated or trailing slashes (`/` for the root).
    pub path: String,
    /// Forms found in the raw text: `relative_path`, `double_slash`, `dot_segment`, `dotdot`.
    pub forms: Vec<&'static str>,
}

/// `raw` resolved against `cwd` (itself absolute, as the kernel reports it) and normalized.
pub fn normalize(cwd: &str, raw: &str) -> Normalized {
    let mut forms = Vec::new();
    let relative = !raw.starts_with('/');
    if relative {
        forms.push("relative_path");
    }
    if raw.contains("//") {
        forms.push("double_slash");
    }
    let comps: Vec<&str> = raw.split('/').collect();
    if comps.contains(&".") {
        forms.push("dot_segment");
    }
    if comps.contains(&"..") {
        forms.push("dotdot");
    }
    let joined = if relative {
        format!("{cwd}/{raw}")
    } else {
        raw.to_owned()
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let path = if parts.is_empty() {
        "/".to_owned()
    } else {
        parts.iter().map(|p| format!("/{p}")).collect()
    };
    Normalized { path, forms }
}

/// Whether a normalized absolute path is `/boot` or lies under it (lexically).
pub fn under_boot(path: &str) -> bool {
    path == "/boot" || path.starts_with("/boot/")
}

/// Whether the published rule's `like~ "/boot/*"` matches this raw argument.
pub fn published_sees(raw: &str) -> bool {
    raw.len() >= 6 && raw.as_bytes()[..6].eq_ignore_ascii_case(b"/boot/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(cwd: &str, raw: &str) -> (String, Vec<&'static str>) {
        let r = normalize(cwd, raw);
        (r.path, r.forms)
    }

    #[test]
    fn normalization_and_forms() {
        assert_eq!(
            n("/boot", "."),
            ("/boot".into(), vec!["relative_path", "dot_segment"])
        );
        assert_eq!(n("/", "boot/x"), ("/boot/x".into(), vec!["relative_path"]));
        assert_eq!(n("/tmp", "/boot"), ("/boot".into(), vec![]));
        assert_eq!(
            n("/tmp", "//boot/x"),
            ("/boot/x".into(), vec!["double_slash"])
        );
        assert_eq!(
            n("/tmp", "/./boot/x"),
            ("/boot/x".into(), vec!["dot_segment"])
        );
        assert_eq!(n("/", "/tmp/../boot/x"), ("/boot/x".into(), vec!["dotdot"]));
        assert_eq!(n("/", "/../../boot/"), ("/boot".into(), vec!["dotdot"]));
        assert_eq!(
            n("/a/b", "../../.."),
            ("/".into(), vec!["relative_path", "dotdot"])
        );
        assert!(under_boot("/boot") && under_boot("/boot/x") && !under_boot("/bootx"));
        assert!(published_sees("/BOOT/x") && published_sees("/boot/") && !published_sees("/boot"));
    }
}

//! `process.env_vars`: the configured variables of an exec's environment, as Elastic Defend's
//! `linux.advanced.capture_env_vars` reports them (`NAME=value`; at most five names, names of at
//! most 63 bytes, values of more than 1023 left out). Names are case-sensitive.

/// Most names Defend captures.
pub const MAX_NAMES: usize = 5;
const NAME_MAX: usize = 63;
const VALUE_MAX: usize = 1023;

/// Why `names` cannot be captured, if they cannot.
pub fn check_names(names: &[String]) -> Result<(), String> {
    if names.len() > MAX_NAMES {
        return Err(format!("at most {MAX_NAMES} names (as Elastic Defend)"));
    }
    for name in names {
        if name.is_empty() || name.len() > NAME_MAX {
            return Err(format!("`{name}`: a name has 1 to {NAME_MAX} bytes"));
        }
        if name.bytes().any(|b| b == b'=' || b == 0) {
            return Err(format!("`{name}`: a name has no `=` and no NUL"));
        }
    }
    Ok(())
}

/// The names to capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvNames(Vec<String>);

impl EnvNames {
    /// Names [`check_names`] accepted.
    pub fn new(names: &[String]) -> Self {
        Self(names.to_vec())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The entries of `env` (`NAME=value` each) whose name is configured and whose value is not
    /// too long, in the environment's order. A name set twice gives both entries: a program may
    /// read either, and a rule matches on any element.
    pub fn select<'e>(&self, env: &'e [Vec<u8>]) -> Vec<&'e [u8]> {
        env.iter()
            .map(Vec::as_slice)
            .filter(|entry| {
                let Some(eq) = entry.iter().position(|&b| b == b'=') else {
                    return false;
                };
                let (name, value) = (&entry[..eq], &entry[eq + 1..]);
                value.len() <= VALUE_MAX && self.0.iter().any(|n| n.as_bytes() == name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_checked_as_defend_limits_them() {
        assert!(check_names(&names(&["HISTFILE", "HTTP_PROXY"])).is_ok());
        assert!(check_names(&names(&["A", "B", "C", "D", "E", "F"])).is_err());
        assert!(check_names(&names(&[""])).is_err());
        assert!(check_names(&names(&["A=B"])).is_err());
        assert!(check_names(&names(&[&"N".repeat(64)])).is_err());
        assert!(check_names(&names(&[&"N".repeat(63)])).is_ok());
    }

    #[test]
    fn only_configured_names_with_short_values_are_selected() {
        let wanted = EnvNames::new(&names(&["HISTFILE", "http_proxy"]));
        let long = format!("HISTFILE={}", "x".repeat(1024));
        let env: Vec<Vec<u8>> = [
            "PATH=/bin",
            "HISTFILE=/dev/null",
            "HISTFILEX=1",
            "histfile=/dev/null",
            "HTTP_PROXY=socks5h://x",
            "http_proxy=socks5h://y",
            "HISTFILE",
            long.as_str(),
            "HISTFILE=",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let got: Vec<&[u8]> = wanted.select(&env);
        assert_eq!(
            got,
            [
                &b"HISTFILE=/dev/null"[..],
                b"http_proxy=socks5h://y",
                b"HISTFILE="
            ]
        );
        let exactly = format!("HISTFILE={}", "x".repeat(1023));
        assert_eq!(wanted.select(&[exactly.clone().into_bytes()]).len(), 1);
    }
}

//! The host an event happened on (`host.*`), read once at start.
use std::fs;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub id: Option<String>,
    pub architecture: String,
    pub kernel: String,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub os_family: Option<String>,
    pub os_platform: Option<String>,
    pub os_full: Option<String>,
}

impl Host {
    pub fn read() -> Self {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |key: &str| os_release_value(&os, key);
        Self {
            name: field(|u| u.nodename()),
            id: machine_id(),
            architecture: field(|u| u.machine()),
            kernel: format!("{} {}", field(|u| u.release()), field(|u| u.version())),
            os_name: os_field("NAME"),
            os_version: os_field("VERSION_ID"),
            os_family: os_field("ID_LIKE")
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
                .or_else(|| os_field("ID")),
            os_platform: os_field("ID"),
            os_full: os_field("PRETTY_NAME"),
        }
    }
}

fn machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A value from os-release(5): `KEY=value`, optionally quoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_os_release() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(os_release_value(text, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_value(text, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(
            os_release_value(text, "NAME").as_deref(),
            Some("Debian GNU/Linux")
        );
        assert_eq!(os_release_value(text, "ID_LIKE"), None);
    }

    #[test]
    fn reads_this_host() {
        let host = Host::read();
        assert!(!host.name.is_empty());
        assert!(
            host.kernel.starts_with(
                &nix::sys::utsname::uname()
                    .unwrap()
                    .release()
                    .to_string_lossy()
                    .into_owned()
            )
        );
    }
}

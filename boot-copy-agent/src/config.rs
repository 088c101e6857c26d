//! The agent's configuration: TOML, default `/etc/boot-copy/config.toml`. Every key has a
//! built-in default, so `run` works without a file. Errors name the file, line and key.
use crate::detect::budget::BudgetConfig;
use crate::sink::SinksConfig;
use boot_copy_rules::Exceptions;
use serde::Deserialize;
use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

pub const DEFAULT_PATH: &str = "/etc/boot-copy/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path} is {problem}: refusing it (a file that non-root users can change would let them blind the sensor); fix with `chown root:root {path} && chmod go-w {path}`"
    )]
    Insecure { path: PathBuf, problem: String },
    #[error(
        "{path} is {problem}: refusing it (a key others can read lets them forge records); fix with `chown root:root {path} && chmod 0600 {path}`"
    )]
    KeyExposed { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rules: RulesConfig,
    /// Exception lists per rule id (Elastic's model; see `rules::exceptions`).
    pub exceptions: Exceptions,
    pub sensor: SensorSettings,
    pub alert_budget: BudgetSettings,
    pub health: HealthSettings,
    pub metrics: MetricsSettings,
    pub sinks: SinksConfig,
    pub integrity: IntegritySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// A rule file or a directory of `*.toml` rule files; the bundled rules when absent.
    pub path: Option<PathBuf>,
    /// Bundle the strict companion rule "Boot File Copy (strict)" with the published one
    /// (only when `path` is absent). Default true.
    pub strict: bool,
    /// Bundle the Boot File Write rule, over the kernel's file events (only when `path` is
    /// absent). Default true.
    pub file: bool,
}

impl RulesConfig {
    /// The bundled companion rules this config asks for.
    pub fn bundled(&self) -> boot_copy_rules::Bundled {
        boot_copy_rules::Bundled {
            strict: self.strict,
            file: self.file,
        }
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            path: None,
            strict: true,
            file: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorSettings {
    /// Kernel ring buffer size in bytes (a power of two).
    pub ring_buffer_bytes: u32,
    /// Processes the kernel's parent table holds.
    pub process_table_entries: u32,
    /// BTF the kernel programs are relocated against (CO-RE).
    pub btf: PathBuf,
    /// Environment variables reported in `process.env_vars` as `NAME=value`, as Elastic
    /// Defend's `linux.advanced.capture_env_vars` does (at most five names; none by default).
    pub capture_env_vars: Vec<String>,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 4 << 20,
            process_table_entries: boot_copy_common::PROC_TABLE_ENTRIES,
            btf: PathBuf::from(crate::sensor::KERNEL_BTF),
            capture_env_vars: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    pub max_alerts: u64,
    pub window_seconds: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        let d = BudgetConfig::default();
        Self {
            max_alerts: d.max_alerts,
            window_seconds: d.window.as_secs(),
        }
    }
}

impl BudgetSettings {
    pub fn budget(&self) -> BudgetConfig {
        BudgetConfig {
            max_alerts: self.max_alerts,
            window: Duration::from_secs(self.window_seconds),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Seconds between heartbeat records.
    pub heartbeat_seconds: u64,
    /// Where the agent keeps its status file (read by `boot-copy-agent status`, and used at the
    /// next start to notice an unclean stop). Inside the log directory: the agent writes
    /// nowhere else.
    pub state_dir: PathBuf,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            heartbeat_seconds: 60,
            state_dir: PathBuf::from("/var/log/boot-copy"),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Prometheus text endpoint, loopback only (off when absent).
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegritySettings {
    /// Key of the HMAC chain over every record (off when absent). Must be root's, mode 0600 or
    /// 0400, in a directory only root can write.
    pub key_file: Option<PathBuf>,
}

impl Config {
    /// Parses configuration text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Loads `path`; a missing file at the default location means built-in defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                require_root_owned(path)?;
                Self::parse(&text, path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| ConfigError::Parse {
            path: path.to_owned(),
            message: format!("key `{key}`: {why}"),
        };
        let ring = self.sensor.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < (1 << 20) {
            return Err(bad(
                "sensor.ring_buffer_bytes",
                "must be a power of two of at least 1048576",
            ));
        }
        if let Err(why) = crate::context::env::check_names(&self.sensor.capture_env_vars) {
            return Err(bad("sensor.capture_env_vars", &why));
        }
        if self.sensor.process_table_entries == 0 {
            return Err(bad("sensor.process_table_entries", "must be positive"));
        }
        if self.alert_budget.window_seconds == 0 {
            return Err(bad("alert_budget.window_seconds", "must be positive"));
        }
        if self.health.heartbeat_seconds == 0 {
            return Err(bad("health.heartbeat_seconds", "must be positive"));
        }
        if let Some(addr) = self.metrics.listen
            && !addr.ip().is_loopback()
        {
            return Err(bad(
                "metrics.listen",
                "must be a loopback address (127.0.0.0/8 or ::1)",
            ));
        }
        Ok(())
    }
}

/// Like sshd's StrictModes: a file that decides what the sensor reports must be owned by root
/// and not writable by group or others, nor may any directory above it be (whoever can
/// rename a directory on the way can replace the file).
pub fn require_root_owned(path: &Path) -> Result<(), ConfigError> {
    let absolute = std::path::absolute(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    for p in absolute.ancestors() {
        if let Some(problem) = write_problem(p)? {
            return Err(ConfigError::Insecure {
                path: p.to_owned(),
                problem,
            });
        }
    }
    Ok(())
}

/// [`require_root_owned`] for a rule file, or a rule directory and every `*.toml` in it.
pub fn require_root_owned_rules(path: &Path) -> Result<(), ConfigError> {
    require_root_owned(path)?;
    if !path.is_dir() {
        return Ok(());
    }
    let read = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    for entry in fs::read_dir(path).map_err(read)? {
        let file = entry.map_err(read)?.path();
        if file.extension().is_some_and(|x| x == "toml") {
            require_root_owned(&file)?;
        }
    }
    Ok(())
}

/// A secret (the HMAC key): root's, readable by root alone (0600 or 0400), in a directory
/// only root can change.
pub fn require_root_only(path: &Path) -> Result<(), ConfigError> {
    require_root_owned(path)?;
    let mode = stat(path)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::KeyExposed {
            path: path.to_owned(),
            problem: format!("accessible to group or others (mode {mode:o})"),
        });
    }
    Ok(())
}

fn stat(p: &Path) -> Result<fs::Metadata, ConfigError> {
    fs::metadata(p).map_err(|source| ConfigError::Read {
        path: p.to_owned(),
        source,
    })
}

/// Why non-root users could change `p`, if they could (a sticky directory like /tmp is fine:
/// others cannot replace root's files in it).
fn write_problem(p: &Path) -> Result<Option<String>, ConfigError> {
    let meta = stat(p)?;
    Ok(if meta.uid() != 0 {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 && !(meta.is_dir() && meta.mode() & 0o1000 != 0) {
        Some(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn empty_text_gives_defaults() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.rules.path, None);
        assert!(c.sinks.alert_log.enabled);
        assert_eq!(c.alert_budget.max_alerts, 100);
        assert_eq!(c.alert_budget.window_seconds, 300);
        assert_eq!(c.sensor.ring_buffer_bytes, 4 << 20);
        assert_eq!(c.metrics.listen, None);
        assert!(c.rules.file && c.rules.strict);
        let off = Config::parse("[rules]\nfile = false\n", Path::new("c.toml")).unwrap();
        assert_eq!(
            off.rules.bundled(),
            boot_copy_rules::Bundled {
                strict: true,
                file: false
            }
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = Config::parse("[sensor]\nring_bufer_bytes = 4\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/x.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("ring_bufer_bytes"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = Config::parse(
            "[metrics]\nlisten = \"0.0.0.0:9464\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("metrics.listen"), "{err}");
        let err = Config::parse(
            "[sensor]\nring_buffer_bytes = 3000000\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sensor.ring_buffer_bytes"), "{err}");
        let err = Config::parse(
            "[sensor]\ncapture_env_vars = [\"A\", \"B\", \"C\", \"D\", \"E\", \"F\"]\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sensor.capture_env_vars") && err.contains("at most 5"),
            "{err}"
        );
    }

    #[test]
    fn missing_default_file_is_defaults_but_explicit_is_an_error() {
        let p = Path::new("/nonexistent/boot-copy.toml");
        assert!(Config::load(p, false).is_ok());
        assert!(matches!(
            Config::load(p, true),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn world_writable_config_is_refused() {
        let dir = std::env::temp_dir().join(format!("bc-config-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("config.toml");
        fs::write(&file, "").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let err = Config::load(&file, true).unwrap_err();
        assert!(matches!(err, ConfigError::Insecure { .. }), "{err}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        if nix::unistd::geteuid().is_root() {
            Config::load(&file, true).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

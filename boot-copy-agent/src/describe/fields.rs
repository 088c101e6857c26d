//! The fields the sensor fills: what a rule may read and find. A rule reading a field outside
//! them has a blind spot (a condition on it never holds, an exclusion on it never fires), which
//! `check`, `rules` and `run` name.
use boot_copy_rules::Rule;

/// Every field an exec or file event can carry, sorted (a test checks it against the describer's
/// output for events with every optional part present).
pub const FILLED: &[&str] = &[
    "@timestamp",
    "agent.id",
    "agent.name",
    "agent.type",
    "agent.version",
    "boot_copy.boot.host_filesystem",
    "boot_copy.file.io_uring",
    "boot_copy.file.path_truncated",
    "boot_copy.file.tree",
    "boot_copy.parent.args_truncated",
    "boot_copy.parent.source",
    "boot_copy.parent.text_altered",
    "boot_copy.pod.uid",
    "boot_copy.process.args_bytes",
    "boot_copy.process.args_truncated",
    "boot_copy.process.comm",
    "boot_copy.process.env_incomplete",
    "boot_copy.process.groups_truncated",
    "boot_copy.process.interpreter",
    "boot_copy.process.interpreter_executable",
    "boot_copy.process.mount_namespace",
    "boot_copy.process.path_truncated",
    "boot_copy.process.text_altered",
    "boot_copy.seq",
    "boot_copy.strict.args_missing.captured_args",
    "boot_copy.strict.args_missing.captured_bytes",
    "boot_copy.strict.args_missing.cause",
    "boot_copy.strict.args_missing.missing_bytes",
    "boot_copy.strict.args_missing.total_args",
    "boot_copy.strict.args_missing.total_bytes",
    "boot_copy.strict.boot_paths",
    "boot_copy.strict.evasion",
    "boot_copy.strict.identified_by",
    "boot_copy.strict.into_boot",
    "boot_copy.strict.program",
    "boot_copy.strict.targets",
    "boot_copy.strict.tool",
    "container.id",
    "container.runtime",
    "ecs.version",
    "event.action",
    "event.category",
    "event.kind",
    "event.type",
    "file.Ext.original.name",
    "file.Ext.original.path",
    "file.extension",
    "file.name",
    "file.path",
    "group.Ext.real.id",
    "group.Ext.real.name",
    "group.id",
    "group.name",
    "host.architecture",
    "host.hostname",
    "host.id",
    "host.name",
    "host.os.family",
    "host.os.full",
    "host.os.kernel",
    "host.os.name",
    "host.os.platform",
    "host.os.type",
    "host.os.version",
    "orchestrator.resource.id",
    "orchestrator.resource.type",
    "orchestrator.type",
    "process.args",
    "process.args_count",
    "process.command_line",
    "process.entity_id",
    "process.entry_leader.args",
    "process.entry_leader.args_count",
    "process.entry_leader.command_line",
    "process.entry_leader.entity_id",
    "process.entry_leader.entry_meta.source.ip",
    "process.entry_leader.entry_meta.type",
    "process.entry_leader.executable",
    "process.entry_leader.group.id",
    "process.entry_leader.group.name",
    "process.entry_leader.interactive",
    "process.entry_leader.name",
    "process.entry_leader.pid",
    "process.entry_leader.same_as_process",
    "process.entry_leader.start",
    "process.entry_leader.tty.char_device.major",
    "process.entry_leader.tty.char_device.minor",
    "process.entry_leader.user.id",
    "process.entry_leader.user.name",
    "process.entry_leader.working_directory",
    "process.env_vars",
    "process.executable",
    "process.group.id",
    "process.group.name",
    "process.group_leader.args",
    "process.group_leader.args_count",
    "process.group_leader.command_line",
    "process.group_leader.entity_id",
    "process.group_leader.executable",
    "process.group_leader.group.id",
    "process.group_leader.group.name",
    "process.group_leader.interactive",
    "process.group_leader.name",
    "process.group_leader.pid",
    "process.group_leader.same_as_process",
    "process.group_leader.start",
    "process.group_leader.tty.char_device.major",
    "process.group_leader.tty.char_device.minor",
    "process.group_leader.user.id",
    "process.group_leader.user.name",
    "process.group_leader.working_directory",
    "process.interactive",
    "process.name",
    "process.parent.args",
    "process.parent.args_count",
    "process.parent.command_line",
    "process.parent.entity_id",
    "process.parent.executable",
    "process.parent.group.id",
    "process.parent.group.name",
    "process.parent.interactive",
    "process.parent.name",
    "process.parent.pid",
    "process.parent.start",
    "process.parent.tty.char_device.major",
    "process.parent.tty.char_device.minor",
    "process.parent.user.id",
    "process.parent.user.name",
    "process.parent.working_directory",
    "process.pid",
    "process.real_group.id",
    "process.real_user.id",
    "process.session_leader.args",
    "process.session_leader.args_count",
    "process.session_leader.command_line",
    "process.session_leader.entity_id",
    "process.session_leader.executable",
    "process.session_leader.group.id",
    "process.session_leader.group.name",
    "process.session_leader.interactive",
    "process.session_leader.name",
    "process.session_leader.pid",
    "process.session_leader.same_as_process",
    "process.session_leader.start",
    "process.session_leader.tty.char_device.major",
    "process.session_leader.tty.char_device.minor",
    "process.session_leader.user.id",
    "process.session_leader.user.name",
    "process.session_leader.working_directory",
    "process.start",
    "process.supplemental_groups.id",
    "process.supplemental_groups.name",
    "process.tty.char_device.major",
    "process.tty.char_device.minor",
    "process.user.id",
    "process.user.name",
    "process.working_directory",
    "user.Ext.real.id",
    "user.Ext.real.name",
    "user.id",
    "user.name",
];

/// Filled only for the variables `sensor.capture_env_vars` names.
const ENV_VARS: &str = "process.env_vars";

/// Prefixes of fields that belong to other data sources some rules also accept (an `or` over
/// the sensors that report them): not a blind spot of this sensor.
const OTHER_SOURCES: &[&str] = &["auditd."];

/// Why fields the sensor does not fill stay empty, by prefix (the first that matches).
const WHY: &[(&str, &str)] = &[
    (
        ENV_VARS,
        "the process's environment is not captured: set sensor.capture_env_vars to the variables the rule reads",
    ),
    (
        "process.Ext.",
        "Elastic Defend's extension for other event kinds",
    ),
];

/// Why `field` is never filled, where that is known.
pub fn why(field: &str) -> Option<&'static str> {
    WHY.iter()
        .find(|(prefix, _)| field.starts_with(prefix))
        .map(|&(_, why)| why)
}

/// What of a rule's fields the sensor never fills.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unfilled<'r> {
    /// Fields this sensor could be expected to fill but does not.
    pub missing: Vec<&'r str>,
    /// Fields of other data sources (`auditd.*`).
    pub other_sources: Vec<&'r str>,
}

impl Unfilled<'_> {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.other_sources.is_empty()
    }
}

/// The fields `rule` reads that no event of the sensor carries, `process.env_vars` among them
/// unless the environment is captured.
pub fn unfilled(rule: &Rule, env_captured: bool) -> Unfilled<'_> {
    let mut out = Unfilled::default();
    for field in rule.fields() {
        if FILLED.binary_search(&field).is_ok() && (field != ENV_VARS || env_captured) {
            continue;
        }
        if OTHER_SOURCES.iter().any(|p| field.starts_with(p)) {
            out.other_sources.push(field);
        } else {
            out.missing.push(field);
        }
    }
    out
}

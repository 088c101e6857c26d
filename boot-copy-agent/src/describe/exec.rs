//! One exec as an ECS process event: a typed [`ExecEvent`] borrowing the exec's text, from which
//! come both the flat [`Document`] the rules evaluate (field by field, no JSON in between) and the
//! JSON written out (serialized straight from the types). Struct fields are declared in sorted
//! key order, the order of serde_json's maps, so the JSON is byte for byte what a
//! `serde_json::Value` of the same event gives, as the `replay` path builds it.
use super::{Describer, Ecs, Id, Ids};
use crate::context::{
    clock::rfc3339,
    container::Container,
    exec::{ExecContext, Process},
};
use crate::decode::Exec;
use crate::strict::{Analysis, StrictFields};
use boot_copy_common::exec_flags;
use boot_copy_rules::{Document, FieldHasher, FieldSet, Value as Field};
use serde::Serialize;
use serde_json::{Value, json, value::RawValue};
use std::{borrow::Cow, cell::RefCell, collections::HashMap, hash::BuildHasherDefault, sync::Arc};

/// `event.*` of every exec event.
const EVENT: EventFields = EventFields {
    action: "exec",
    category: ["process"],
    kind: "event",
    type_: ["start"],
};

/// The fields every exec event of a host has (`agent`, `ecs`, `event`, `host`), flattened.
pub(super) fn base(agent: &Value, host: &Value) -> Document {
    Document::from_json(&json!({
        "agent": agent,
        "ecs": Ecs::CURRENT,
        "event": EVENT,
        "host": host,
    }))
}

impl Describer {
    /// The ECS process event for one exec, as JSON (the `events` command).
    pub fn exec_json(&mut self, ctx: &ExecContext) -> Value {
        self.learn_all_names(ctx);
        serde_json::to_value(self.exec(ctx, None)).expect("an event serializes")
    }

    /// The ECS process event for one exec, with the strict rule's analysis when there is one.
    /// Names not looked up beforehand by [`Describer::learn_names`] are left out.
    pub fn exec<'a>(&'a self, ctx: &'a ExecContext, strict: Option<&'a Analysis>) -> ExecEvent<'a> {
        let e = &ctx.exec;
        let mut altered = Vec::new();
        let mut process = self.process(&ctx.process, &mut altered);
        let mut parent_altered = Vec::new();
        let mut parent = self.process(&ctx.parent, &mut parent_altered);
        (parent.user, parent.group) = self.user_group(&ctx.parent);
        parent.interactive = ctx.parent_interactive();
        parent.tty = ctx.parent_tty().map(tty);
        let user = self.ids_with_real(e.euid, e.uid, &self.users);
        let group = self.ids_with_real(e.egid, e.gid, &self.groups);
        process.user = Some(self.ids(e.euid, &self.users));
        process.real_user = Some(Id {
            id: e.uid.to_string(),
        });
        process.group = Some(self.ids(e.egid, &self.groups));
        process.real_group = Some(Id {
            id: e.gid.to_string(),
        });
        process.parent = Some(Box::new(parent));
        process.interactive = ctx.interactive();
        process.tty = ctx.tty().map(tty);
        process.env_vars = self.env_vars(e);
        let groups = ctx.supplemental_groups();
        process.supplemental_groups =
            groups.map(|(ids, _)| ids.iter().map(|&g| self.ids(g, &self.groups)).collect());
        self.leaders(ctx, &mut process);
        let script = e.interp.as_ref();
        let container = ctx.container.as_ref();
        ExecEvent {
            timestamp: rfc3339(self.epoch.wall(e.ktime_boot_ns)),
            agent: &self.agent_raw,
            boot_copy: Ours {
                boot: OursBoot::of(ctx.host_boot),
                parent: OursParent {
                    args_truncated: ctx.parent.args_truncated,
                    source: ctx.parent_source.as_str(),
                    text_altered: (!parent_altered.is_empty()).then_some(parent_altered),
                },
                pod: container
                    .and_then(|c| c.pod_uid.as_deref())
                    .map(|uid| OursPod { uid }),
                process: OursProcess {
                    args_bytes: e.args_size,
                    args_truncated: ctx.process.args_truncated,
                    comm: String::from_utf8_lossy(&e.comm),
                    env_incomplete: e.has(exec_flags::ENV_INCOMPLETE).then_some(true),
                    interpreter: script.map(|i| String::from_utf8_lossy(i)),
                    groups_truncated: groups.and_then(|(_, cut)| cut.then_some(true)),
                    interpreter_executable: script.map(|_| String::from_utf8_lossy(&e.exe)),
                    mount_namespace: (e.session.mnt_ns != 0).then_some(e.session.mnt_ns),
                    path_truncated: ctx.process.path_truncated,
                    text_altered: (!altered.is_empty()).then_some(altered),
                },
                seq: None,
                strict: strict.map(Analysis::fields_view),
            },
            container: container.map(ContainerFields::of),
            ecs: Ecs::CURRENT,
            event: EVENT,
            group,
            host: &self.host_raw,
            orchestrator: container.and_then(Orchestrator::of),
            process,
            user,
            base: &self.exec_base,
        }
    }

    /// `process.env_vars`: the configured variables of a captured environment (none captured:
    /// absent, as in Defend's events without `capture_env_vars`).
    fn env_vars<'a>(&self, e: &'a Exec) -> Option<Vec<Cow<'a, str>>> {
        let env = e.env.as_ref()?;
        let picked = self.env.select(env);
        (!picked.is_empty()).then(|| picked.into_iter().map(String::from_utf8_lossy).collect())
    }

    /// `process.group_leader`, `session_leader` and `entry_leader`. A leader's text altered into
    /// valid UTF-8 is not reported apart from the process's own.
    fn leaders<'a>(&'a self, ctx: &'a ExecContext, process: &mut ProcessFields<'a>) {
        let l = &ctx.leaders;
        let session_pid = l.session.as_ref().map(|s| s.pid);
        let leader = |p: &'a Process, same_session: bool| {
            let mut f = self.process(p, &mut Vec::new());
            (f.user, f.group) = self.user_group(p);
            f.same_as_process = Some(p.pid == ctx.process.pid);
            if same_session {
                // The terminal is the session's.
                f.interactive = ctx.interactive();
                f.tty = ctx.tty().map(tty);
            }
            Box::new(f)
        };
        process.group_leader = l.group.as_ref().map(|g| leader(g, true));
        process.session_leader = l.session.as_ref().map(|s| leader(s, true));
        process.entry_leader = l.entry.as_ref().map(|e| {
            let mut f = leader(&e.leader, Some(e.leader.pid) == session_pid);
            f.entry_meta = Some(EntryMeta {
                source: e.source_ip.map(|ip| EntrySource { ip: ip.to_string() }),
                type_: e.kind.as_str(),
            });
            f
        });
    }

    /// A process's `user` and `group` (effective), where known.
    fn user_group(&self, p: &Process) -> (Option<Ids<'_>>, Option<Ids<'_>>) {
        match p.user {
            Some((uid, gid)) => (
                Some(self.ids(uid, &self.users)),
                Some(self.ids(gid, &self.groups)),
            ),
            None => (None, None),
        }
    }

    /// `process.*` (or `process.parent.*`) fields. Names of fields whose text was not valid
    /// UTF-8 (and so was altered into valid JSON) are pushed onto `altered`.
    fn process<'a>(&self, p: &'a Process, altered: &mut Vec<&'static str>) -> ProcessFields<'a> {
        let mut text = |field: &'static str, bytes: &'a [u8]| -> Cow<'a, str> {
            let s = String::from_utf8_lossy(bytes);
            if matches!(s, Cow::Owned(_)) {
                altered.push(field);
            }
            s
        };
        let mut f = ProcessFields {
            pid: p.pid,
            ..ProcessFields::default()
        };
        if let Some(start) = p.start_ns {
            f.entity_id = Some(self.entity_id(p.pid, start));
            f.start = Some(rfc3339(self.epoch.wall(start)));
        }
        if let Some(exe) = &p.executable {
            f.executable = Some(text("executable", exe));
            f.name = Some(text("name", p.name().unwrap_or_default()));
        }
        if let Some(cwd) = &p.cwd {
            f.working_directory = Some(text("working_directory", cwd));
        }
        if !p.args.is_empty() || p.executable.is_some() {
            f.argv = Some(Argv {
                args: p.args.iter().map(|a| text("args", a)).collect(),
                count: p.args_count,
            });
        }
        altered.dedup();
        f
    }
}

/// One exec as an ECS process event. Fields in JSON key order.
#[derive(Debug, Serialize)]
pub struct ExecEvent<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub agent: &'a RawValue,
    pub boot_copy: Ours<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerFields<'a>>,
    pub ecs: Ecs,
    pub event: EventFields,
    pub group: Ids<'a>,
    pub host: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Orchestrator<'a>>,
    pub process: ProcessFields<'a>,
    pub user: Ids<'a>,
    /// The fields of `agent`, `ecs`, `event` and `host`, flattened.
    #[serde(skip)]
    base: &'a Arc<Document>,
}
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventFields {
    pub action: &'static str,
    pub category: [&'static str; 1],
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub type_: [&'static str; 1],
}

/// `container.*`: the process's container, from its cgroup.
#[derive(Debug, Serialize)]
pub struct ContainerFields<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'static str>,
}

impl<'a> ContainerFields<'a> {
    fn of(c: &'a Container) -> Self {
        Self {
            id: &c.id,
            name: c.name.as_deref(),
            runtime: c.runtime.map(|r| r.as_str()),
        }
    }
}

/// `orchestrator.*`: the Kubernetes pod a container belongs to.
#[derive(Debug, Serialize)]
pub struct Orchestrator<'a> {
    pub resource: OrchestratorResource<'a>,
    #[serde(rename = "type")]
    pub type_: &'static str,
}

#[derive(Debug, Serialize)]
pub struct OrchestratorResource<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub type_: &'static str,
}

impl<'a> Orchestrator<'a> {
    fn of(c: &'a Container) -> Option<Self> {
        Some(Self {
            resource: OrchestratorResource {
                id: c.pod_uid.as_deref()?,
                type_: "pod",
            },
            type_: "kubernetes",
        })
    }
}

/// `process.*`; the parent has neither credentials nor a parent of its own.
#[derive(Debug, Default, Serialize)]
pub struct ProcessFields<'a> {
    /// `args`, `args_count` and `command_line`.
    #[serde(flatten)]
    pub argv: Option<Argv<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_leader: Option<Box<ProcessFields<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_meta: Option<EntryMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Ids<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_leader: Option<Box<ProcessFields<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ProcessFields<'a>>>,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_group: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_user: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_as_process: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_leader: Option<Box<ProcessFields<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplemental_groups: Option<Vec<Ids<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<Tty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Ids<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<Cow<'a, str>>,
}

/// A process's arguments, their count and its command line (the arguments joined by spaces).
/// The command line is written out as the event is serialized and never held: an argv can be
/// megabytes.
#[derive(Debug)]
pub struct Argv<'a> {
    pub args: Vec<Cow<'a, str>>,
    pub count: u32,
}

impl Argv<'_> {
    /// The command line, whole if it is at most `max` bytes, else cut past `max` (at the first
    /// character boundary after it): what a caller shortening it to `max` needs.
    pub fn command_line_head(&self, max: usize) -> Cow<'_, str> {
        match self.args.as_slice() {
            [one] => return Cow::Borrowed(cut_after(one, max)),
            [] => return Cow::Borrowed(""),
            _ => {}
        }
        let mut out = String::new();
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(cut_after(a, max));
            if out.len() > max {
                break;
            }
        }
        Cow::Owned(out)
    }

    /// The command line, made (for the rules' document).
    fn command_line(&self) -> String {
        self.args.join(" ")
    }
}

/// `s` up to the first character boundary past `max` bytes.
fn cut_after(s: &str, max: usize) -> &str {
    let end = (max + 1..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[..end]
}

impl Serialize for Argv<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("args", &self.args)?;
        m.serialize_entry("args_count", &self.count)?;
        m.serialize_entry("command_line", &Joined(&self.args))?;
        m.end()
    }
}

/// Arguments serialized as one string joined by spaces, written piece by piece.
struct Joined<'a, 'b>(&'a [Cow<'b, str>]);

impl std::fmt::Display for Joined<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(a)?;
        }
        Ok(())
    }
}

impl Serialize for Joined<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `process.tty`: the controlling terminal.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tty {
    pub char_device: CharDevice,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CharDevice {
    pub major: u32,
    pub minor: u32,
}

/// `process.entry_leader.entry_meta`: how the session was entered.
#[derive(Debug, Serialize)]
pub struct EntryMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<EntrySource>,
    #[serde(rename = "type")]
    pub type_: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EntrySource {
    pub ip: String,
}

/// `boot_copy.boot`: the boot file system the event's /boot paths are on.
#[derive(Debug, Serialize)]
pub struct OursBoot {
    pub host_filesystem: bool,
}

impl OursBoot {
    /// Present where it is known whether the `/boot` is the host's.
    fn of(host_boot: Option<bool>) -> Option<Self> {
        host_boot.map(|host_filesystem| Self { host_filesystem })
    }
}

/// `boot_copy.*` of an exec event.
#[derive(Debug, Serialize)]
pub struct Ours<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<OursBoot>,
    pub parent: OursParent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<OursPod<'a>>,
    pub process: OursProcess<'a>,
    /// Set when the event (or its alert) is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<StrictFields<'a>>,
}

#[derive(Debug, Serialize)]
pub struct OursParent {
    pub args_truncated: bool,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_altered: Option<Vec<&'static str>>,
}

/// `boot_copy.pod`: the Kubernetes pod's UID, also where `orchestrator.*` is not read.
#[derive(Debug, Serialize)]
pub struct OursPod<'a> {
    pub uid: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OursProcess<'a> {
    pub args_bytes: u32,
    pub args_truncated: bool,
    pub comm: Cow<'a, str>,
    /// The environment was captured in part: a configured variable may be missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_incomplete: Option<bool>,
    /// The process has more supplementary groups than its record carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter_executable: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_namespace: Option<u32>,
    pub path_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_altered: Option<Vec<&'static str>>,
}

/// Dotted field names of one process level (`process.` or `process.parent.`).
struct ProcessNames {
    args: &'static str,
    args_count: &'static str,
    command_line: &'static str,
    entity_id: &'static str,
    entry_source_ip: &'static str,
    entry_type: &'static str,
    env_vars: &'static str,
    executable: &'static str,
    group_id: &'static str,
    group_name: &'static str,
    interactive: &'static str,
    name: &'static str,
    pid: &'static str,
    same_as_process: &'static str,
    start: &'static str,
    supplemental_id: &'static str,
    supplemental_name: &'static str,
    tty_major: &'static str,
    tty_minor: &'static str,
    user_id: &'static str,
    user_name: &'static str,
    working_directory: &'static str,
}

macro_rules! process_names {
    ($prefix:literal) => {
        ProcessNames {
            args: concat!($prefix, "args"),
            args_count: concat!($prefix, "args_count"),
            command_line: concat!($prefix, "command_line"),
            entity_id: concat!($prefix, "entity_id"),
            entry_source_ip: concat!($prefix, "entry_meta.source.ip"),
            entry_type: concat!($prefix, "entry_meta.type"),
            env_vars: concat!($prefix, "env_vars"),
            executable: concat!($prefix, "executable"),
            group_id: concat!($prefix, "group.id"),
            group_name: concat!($prefix, "group.name"),
            interactive: concat!($prefix, "interactive"),
            name: concat!($prefix, "name"),
            pid: concat!($prefix, "pid"),
            same_as_process: concat!($prefix, "same_as_process"),
            start: concat!($prefix, "start"),
            supplemental_id: concat!($prefix, "supplemental_groups.id"),
            supplemental_name: concat!($prefix, "supplemental_groups.name"),
            tty_major: concat!($prefix, "tty.char_device.major"),
            tty_minor: concat!($prefix, "tty.char_device.minor"),
            user_id: concat!($prefix, "user.id"),
            user_name: concat!($prefix, "user.name"),
            working_directory: concat!($prefix, "working_directory"),
        }
    };
}

const PROCESS: ProcessNames = process_names!("process.");
const PARENT: ProcessNames = process_names!("process.parent.");
const GROUP_LEADER: ProcessNames = process_names!("process.group_leader.");
const SESSION_LEADER: ProcessNames = process_names!("process.session_leader.");
const ENTRY_LEADER: ProcessNames = process_names!("process.entry_leader.");

fn tty((major, minor): (u32, u32)) -> Tty {
    Tty {
        char_device: CharDevice { major, minor },
    }
}

fn text(s: &str) -> Field {
    Field::Str(s.to_owned())
}

fn texts<S: AsRef<str>>(items: &[S]) -> Field {
    Field::Array(items.iter().map(|s| text(s.as_ref())).collect())
}

/// A document being filled, with only the fields in `wanted` when that is given.
/// The fields the rules read. Whether a name the describer puts is one of them is remembered by
/// the name's address and length (the names are `'static`): an event asks a hundred times, and
/// this way without hashing the text.
pub struct Wanted {
    set: FieldSet,
    seen: RefCell<HashMap<(usize, usize), bool, BuildHasherDefault<FieldHasher>>>,
}

impl Wanted {
    pub fn new(set: FieldSet) -> Self {
        Self {
            set,
            seen: RefCell::default(),
        }
    }

    fn contains(&self, name: &'static str) -> bool {
        let key = (name.as_ptr() as usize, name.len());
        if let Some(&wanted) = self.seen.borrow().get(&key) {
            return wanted;
        }
        let wanted = self.set.contains(name);
        self.seen.borrow_mut().insert(key, wanted);
        wanted
    }
}

struct Fill<'w> {
    doc: Document,
    wanted: Option<&'w Wanted>,
}

impl Fill<'_> {
    /// Sets `name`; the value is made only if the field is wanted.
    fn put(&mut self, name: &'static str, value: impl FnOnce() -> Field) {
        if self.wanted.is_none_or(|w| w.contains(name)) {
            self.doc.insert(name, value());
        }
    }
}

impl ExecEvent<'_> {
    /// Sets whether the process's `/boot` is the host's, when looked up after the event was made.
    pub fn set_host_boot(&mut self, host_boot: Option<bool>) {
        self.boot_copy.boot = OursBoot::of(host_boot);
    }

    /// The event as the rules see it: the fields of its JSON flattened, without the JSON. With
    /// `wanted`, only those fields (besides the shared host fields): what the rules read is all
    /// their verdicts depend on.
    pub fn document(&self, wanted: Option<&Wanted>) -> Document {
        let mut d = Fill {
            doc: Document::with_base(self.base.clone(), wanted.map_or(64, |w| w.set.len())),
            wanted,
        };
        d.put("@timestamp", || text(&self.timestamp));
        let p = &self.process;
        p.fill(&mut d, &PROCESS);
        let levels = [
            (&p.parent, &PARENT),
            (&p.group_leader, &GROUP_LEADER),
            (&p.session_leader, &SESSION_LEADER),
            (&p.entry_leader, &ENTRY_LEADER),
        ];
        for (level, names) in levels {
            if let Some(f) = level {
                f.fill(&mut d, names);
            }
        }
        let ids = [
            (Some(&self.user), "user.id", "user.name"),
            (Some(&self.group), "group.id", "group.name"),
        ];
        for (ids, id, name) in ids {
            if let Some(ids) = ids {
                d.put(id, || text(&ids.id));
                if let Some(n) = ids.name {
                    d.put(name, || text(n));
                }
            }
        }
        let real = [
            (&self.user, "user.Ext.real.id", "user.Ext.real.name"),
            (&self.group, "group.Ext.real.id", "group.Ext.real.name"),
        ];
        for (ids, id, name) in real {
            if let Some(r) = ids.ext.as_ref().map(|e| &e.real) {
                d.put(id, || text(&r.id));
                if let Some(n) = r.name {
                    d.put(name, || text(n));
                }
            }
        }
        if let Some(r) = &p.real_user {
            d.put("process.real_user.id", || text(&r.id));
        }
        if let Some(r) = &p.real_group {
            d.put("process.real_group.id", || text(&r.id));
        }
        if let Some(c) = &self.container {
            c.fill(&mut d);
        }
        if let Some(o) = &self.orchestrator {
            d.put("orchestrator.type", || o.type_.into());
            d.put("orchestrator.resource.type", || o.resource.type_.into());
            d.put("orchestrator.resource.id", || text(o.resource.id));
        }
        self.boot_copy.fill(&mut d);
        d.doc
    }
}

impl ContainerFields<'_> {
    fn fill(&self, d: &mut Fill) {
        d.put("container.id", || text(self.id));
        if let Some(n) = self.name {
            d.put("container.name", || text(n));
        }
        if let Some(r) = self.runtime {
            d.put("container.runtime", || r.into());
        }
    }
}

impl ProcessFields<'_> {
    fn fill(&self, d: &mut Fill, names: &ProcessNames) {
        d.put(names.pid, || Field::Int(self.pid.into()));
        let strings = [
            (names.entity_id, self.entity_id.as_deref()),
            (names.executable, self.executable.as_deref()),
            (names.name, self.name.as_deref()),
            (names.start, self.start.as_deref()),
            (names.working_directory, self.working_directory.as_deref()),
        ];
        for (name, value) in strings {
            if let Some(v) = value {
                d.put(name, || text(v));
            }
        }
        if let Some(env) = &self.env_vars {
            d.put(names.env_vars, || texts(env));
        }
        if let Some(argv) = &self.argv {
            d.put(names.args, || texts(&argv.args));
            d.put(names.args_count, || Field::Int(argv.count.into()));
            d.put(names.command_line, || Field::Str(argv.command_line()));
        }
        let ids = [
            (self.user.as_ref(), names.user_id, names.user_name),
            (self.group.as_ref(), names.group_id, names.group_name),
        ];
        for (ids, id, name) in ids {
            if let Some(ids) = ids {
                d.put(id, || text(&ids.id));
                if let Some(n) = ids.name {
                    d.put(name, || text(n));
                }
            }
        }
        let flags = [
            (names.interactive, self.interactive),
            (names.same_as_process, self.same_as_process),
        ];
        for (name, value) in flags {
            if let Some(v) = value {
                d.put(name, || v.into());
            }
        }
        if let Some(groups) = &self.supplemental_groups {
            let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
            d.put(names.supplemental_id, || texts(&ids));
            let known: Vec<&str> = groups.iter().filter_map(|g| g.name).collect();
            if !known.is_empty() {
                d.put(names.supplemental_name, || texts(&known));
            }
        }
        if let Some(t) = &self.tty {
            d.put(names.tty_major, || Field::Int(t.char_device.major.into()));
            d.put(names.tty_minor, || Field::Int(t.char_device.minor.into()));
        }
        if let Some(m) = &self.entry_meta {
            d.put(names.entry_type, || m.type_.into());
            if let Some(source) = &m.source {
                d.put(names.entry_source_ip, || text(&source.ip));
            }
        }
    }
}

impl Ours<'_> {
    fn fill(&self, d: &mut Fill) {
        let (p, c) = (&self.parent, &self.process);
        if let Some(b) = &self.boot {
            d.put("boot_copy.boot.host_filesystem", || {
                b.host_filesystem.into()
            });
        }
        d.put("boot_copy.parent.args_truncated", || {
            p.args_truncated.into()
        });
        d.put("boot_copy.parent.source", || p.source.into());
        if let Some(t) = &p.text_altered {
            d.put("boot_copy.parent.text_altered", || texts(t));
        }
        if let Some(pod) = &self.pod {
            d.put("boot_copy.pod.uid", || text(pod.uid));
        }
        d.put("boot_copy.process.args_bytes", || {
            Field::Int(c.args_bytes.into())
        });
        d.put("boot_copy.process.args_truncated", || {
            c.args_truncated.into()
        });
        d.put("boot_copy.process.comm", || text(&c.comm));
        if let Some(cut) = c.env_incomplete {
            d.put("boot_copy.process.env_incomplete", || cut.into());
        }
        if let Some(cut) = c.groups_truncated {
            d.put("boot_copy.process.groups_truncated", || cut.into());
        }
        if let Some(i) = &c.interpreter {
            d.put("boot_copy.process.interpreter", || text(i));
        }
        if let Some(i) = &c.interpreter_executable {
            d.put("boot_copy.process.interpreter_executable", || text(i));
        }
        if let Some(n) = c.mount_namespace {
            d.put("boot_copy.process.mount_namespace", || Field::Int(n.into()));
        }
        d.put("boot_copy.process.path_truncated", || {
            c.path_truncated.into()
        });
        if let Some(t) = &c.text_altered {
            d.put("boot_copy.process.text_altered", || texts(t));
        }
        if let Some(n) = self.seq {
            d.put("boot_copy.seq", || Field::Int(n as i64));
        }
        if let Some(s) = &self.strict {
            s.fill(&mut |name, value| d.put(name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{
        clock::BootEpoch,
        exec::{ParentSource, resolve},
        host::Host,
        session::{Entry, EntryType, Leaders},
    };
    use crate::decode::Exec;

    fn describer() -> Describer {
        let host = Host {
            name: "h1".into(),
            id: Some("0123456789abcdef".into()),
            architecture: "x86_64".into(),
            kernel: "6.18".into(),
            ..Host::default()
        };
        Describer::new(host, BootEpoch::now().unwrap())
    }

    fn exec() -> Exec {
        Exec {
            flags: 0,
            ktime_boot_ns: 5_000_000_000,
            start_boottime_ns: 4_000_000_000,
            pid: 7,
            tgid: 7,
            ppid: 0,
            uid: 1000,
            euid: 0,
            gid: 1000,
            egid: 0,
            args_count: 3,
            args_size: 20,
            comm: b"cp".to_vec(),
            filename: b"/bin/cp".to_vec(),
            exe: b"/usr/bin/cp".to_vec(),
            interp: None,
            cwd: Some(b"/root".to_vec()),
            args: vec![b"cp".to_vec(), b"a\n\"b\xff".to_vec(), b"/boot/x".to_vec()],
            env: None,
            parent: None,
            session: Default::default(),
        }
    }

    #[test]
    fn defend_shaped_fields() {
        let mut d = describer();
        let mut ctx = resolve(exec());
        ctx.parent_source = ParentSource::Unknown;
        let v = d.exec_json(&ctx);
        assert_eq!(v["event"]["category"], json!(["process"]));
        assert_eq!(v["event"]["type"], json!(["start"]));
        assert_eq!(v["event"]["action"], "exec");
        assert_eq!(v["host"]["os"]["type"], "linux");
        assert_eq!(v["process"]["name"], "cp");
        assert_eq!(v["process"]["executable"], "/usr/bin/cp");
        assert_eq!(v["process"]["args"][0], "cp");
        assert_eq!(v["process"]["args_count"], 3);
        assert_eq!(v["process"]["command_line"], "cp a\n\"b\u{fffd} /boot/x");
        assert_eq!(v["process"]["working_directory"], "/root");
        assert_eq!(v["process"]["user"]["id"], "0");
        assert_eq!(v["process"]["real_user"]["id"], "1000");
        assert_eq!(v["user"]["Ext"]["real"]["id"], "1000");
        assert_eq!(v["group"]["Ext"]["real"]["id"], "1000");
        assert!(v["process"]["user"].get("Ext").is_none());
        assert_eq!(v["process"]["entity_id"], "0123456789ab-7-400");
        assert_eq!(v["boot_copy"]["process"]["text_altered"], json!(["args"]));
        // One line, valid JSON, whatever the arguments held.
        let line = serde_json::to_string(&v).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
    }

    /// A container's cgroup gives `container.*`, `orchestrator.*` and `boot_copy.pod.uid`, in the
    /// JSON (serialized in key order, as a `Value` of it) and in the rules' document alike.
    #[test]
    fn container_fields_from_the_cgroup() {
        let mut d = describer();
        let mut ctx = resolve(exec());
        let id = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970";
        ctx.set_cgroup(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8dbf1a4e_5b4c_4a4e_9a5e_0e3c2b1d7f60.slice/cri-containerd-{id}.scope"
        ));
        d.learn_names(0, 0);
        let event = d.exec(&ctx, None);
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), v.to_string());
        assert_eq!(v["container"], json!({"id": id, "runtime": "containerd"}));
        let pod = "8dbf1a4e-5b4c-4a4e-9a5e-0e3c2b1d7f60";
        assert_eq!(
            v["orchestrator"],
            json!({"type": "kubernetes", "resource": {"type": "pod", "id": pod}})
        );
        assert_eq!(v["boot_copy"]["pod"]["uid"], pod);
        assert_eq!(event.document(None), Document::from_json(&v));

        // A host process: none of them.
        ctx.set_cgroup("/process_api/066d82d2816111511c193b382c94c866");
        let v = d.exec_json(&ctx);
        assert!(v.get("container").is_none() && v.get("orchestrator").is_none());
        assert!(v["boot_copy"].get("pod").is_none());
    }

    /// The epoch read now from a wall clock set `ahead` of the real one.
    fn epoch_ahead(ahead: std::time::Duration) -> BootEpoch {
        BootEpoch::read(|clock| {
            let t = nix::time::clock_gettime(clock).map_err(std::io::Error::from)?;
            let ns = t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128;
            Ok(match clock {
                nix::time::ClockId::CLOCK_REALTIME => ns + ahead.as_nanos() as i128,
                _ => ns,
            })
        })
        .unwrap()
    }

    /// A step of the wall clock moves `@timestamp` and `process.start` with it, once the
    /// describer follows the epoch read after the step.
    #[test]
    fn times_follow_a_stepped_wall_clock() {
        let mut d = describer();
        let ctx = resolve(exec());
        let before = d.exec_json(&ctx);
        let wall = |v: &Value, field: &str| {
            let text = v.pointer(field).and_then(Value::as_str).unwrap();
            humantime::parse_rfc3339(text).unwrap()
        };
        let hour = std::time::Duration::from_secs(3600);
        d.follow_clock(epoch_ahead(hour));
        let after = d.exec_json(&ctx);
        for field in ["/@timestamp", "/process/start"] {
            let moved = wall(&after, field)
                .duration_since(wall(&before, field))
                .unwrap();
            let off = moved.abs_diff(hour);
            assert!(
                off < std::time::Duration::from_millis(50),
                "{field} moved {moved:?}"
            );
        }
        // Following the clock again without another step changes nothing.
        d.follow_clock(epoch_ahead(hour));
        assert_eq!(d.exec_json(&ctx)["@timestamp"], after["@timestamp"]);
    }

    /// [`super::super::fields::FILLED`] is exactly what an exec event with every optional part
    /// (interpreter, container with a pod, altered text, a captured environment in part, seq, the
    /// strict analysis with missing arguments) and a file event of a rename carry.
    #[test]
    fn the_filled_fields_are_what_a_whole_event_carries() {
        let os = Some("x".to_owned());
        let mut d = Describer::new(
            Host {
                name: "h1".into(),
                id: Some("0123456789abcdef".into()),
                os_name: os.clone(),
                os_version: os.clone(),
                os_family: os.clone(),
                os_platform: os.clone(),
                os_full: os,
                ..Host::default()
            },
            BootEpoch::now().unwrap(),
        );
        d.set_env(crate::context::env::EnvNames::new(&["HISTFILE".into()]));
        let mut e = exec();
        e.interp = Some(b"/usr/bin/sh".to_vec());
        e.env = Some(vec![b"PATH=/bin".to_vec(), b"HISTFILE=/dev/null".to_vec()]);
        e.flags |= exec_flags::ENV_INCOMPLETE;
        (e.uid, e.gid) = (0, 0); // root's names resolve on every host
        let mut groups = [0; boot_copy_common::SUPPLEMENTAL_GROUPS_CAP];
        groups[1] = 4;
        e.session = boot_copy_common::Session {
            pgid: 7,
            sid: 7,
            tty_major: 136,
            tty_minor: 1,
            parent_tty_major: 136,
            parent_tty_minor: 1,
            mnt_ns: 4026531832,
            ngroups: 17,
            groups,
            ..Default::default()
        };
        let mut ctx = resolve(e);
        ctx.parent = ctx.process.clone();
        ctx.parent.args[1] = b"\xff".to_vec();
        ctx.host_boot = Some(false);
        ctx.leaders = Leaders {
            group: Some(ctx.process.clone()),
            session: Some(ctx.process.clone()),
            entry: Some(Entry {
                leader: ctx.process.clone(),
                kind: EntryType::Sshd,
                source_ip: Some([127, 0, 0, 1].into()),
            }),
        };
        ctx.set_cgroup(
            "/kubepods.slice/kubepods-pod8dbf1a4e_5b4c_4a4e_9a5e_0e3c2b1d7f60.slice/cri-containerd-4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970.scope",
        );
        d.learn_all_names(&ctx);
        let mut event = d.exec(&ctx, None);
        event.boot_copy.seq = Some(1);
        let mut fields: Vec<String> = event
            .document(None)
            .iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        let missing = crate::strict::ArgsMissing {
            captured_args: 1,
            captured_bytes: 1,
            cause: "spill_full",
            missing_bytes: 1,
            total_args: 2,
            total_bytes: 2,
        };
        let strict = StrictFields {
            args_missing: Some(&missing),
            boot_paths: &[],
            evasion: &["loader"],
            identified_by: "file",
            into_boot: true,
            program: Some("/usr/bin/cp"),
            targets: &[],
            tool: "cp",
        };
        strict.fill(&mut |name, _| fields.push(name.to_owned()));
        let rename = crate::describe::file::FileContext {
            action: boot_copy_common::file_action::RENAME,
            path: b"/boot/grub/grub.cfg".to_vec(),
            old_path: Some(b"/boot/grub/grub.cfg.new".to_vec()),
            path_truncated: false,
            tree: 1,
            io_uring: false,
            writer: ctx.clone(),
        };
        d.set_trees(crate::sensor::roots::Watched {
            trees: vec!["/boot".into()],
            ..Default::default()
        });
        let file = Document::from_json(&d.file_json(&rename));
        fields.extend(file.iter().map(|(k, _)| k.to_owned()));
        fields.sort();
        fields.dedup();
        assert_eq!(fields, super::super::fields::FILLED);
    }
}

//! Exec events as ECS 9.4 documents shaped like Elastic Defend's. ECS field names live here;
//! fields ECS does not define go under the project's own `boot_copy` namespace.
use crate::process::{
    clock::{BootEpoch, rfc3339},
    context::{ExecContext, Process},
    host::Host,
    procfs,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const ECS_VERSION: &str = "9.4.0";
/// The project's namespace for fields ECS does not define.
pub const NAMESPACE: &str = "boot_copy";

/// What stays the same across events: the host, the clock, name lookups.
pub struct Describer {
    host: Host,
    host_json: Value,
    epoch: BootEpoch,
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Describer {
    pub fn new(host: Host, epoch: BootEpoch) -> Self {
        Self {
            host_json: host_json(&host),
            host,
            epoch,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// Follows a stepped wall clock (NTP, settimeofday).
    pub fn set_epoch(&mut self, epoch: BootEpoch) {
        self.epoch = epoch;
    }

    pub fn epoch(&self) -> BootEpoch {
        self.epoch
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `agent.*`: this agent, identified per host.
    pub fn agent_json(&self) -> Value {
        let id = self.host.id.as_deref().unwrap_or(&self.host.name);
        json!({
            "type": "boot-copy",
            "version": env!("CARGO_PKG_VERSION"),
            "id": format!("boot-copy-{id}"),
            "name": self.host.name,
        })
    }

    /// What every record of the agent carries.
    pub fn origin(&self) -> crate::health::Origin {
        crate::health::Origin {
            agent: self.agent_json(),
            host: self.host_json.clone(),
        }
    }

    /// The ECS process event for one exec.
    pub fn exec_event(&mut self, ctx: &ExecContext) -> Value {
        let e = &ctx.exec;
        let mut altered = Vec::new();
        let mut process = self.process(&ctx.process, &mut altered);
        let mut parent_altered = Vec::new();
        let parent = self.process(&ctx.parent, &mut parent_altered);
        let obj = process.as_object_mut().expect("process is an object");
        obj.insert("user".into(), self.user(e.euid));
        obj.insert("real_user".into(), json!({ "id": e.uid.to_string() }));
        obj.insert("group".into(), self.group(e.egid));
        obj.insert("real_group".into(), json!({ "id": e.gid.to_string() }));
        obj.insert("parent".into(), parent);
        let mut ours = json!({
            "parent": { "source": ctx.parent_source.as_str() },
            "process": {
                "args_truncated": ctx.process.args_truncated,
                "args_bytes": e.args_size,
                "path_truncated": ctx.process.path_truncated,
                "comm": lossy(&e.comm).0,
            },
        });
        let ours_process = ours["process"].as_object_mut().expect("object");
        if let Some(interp) = &e.interp {
            ours_process.insert("interpreter".into(), lossy(interp).0.into());
            ours_process.insert("interpreter_executable".into(), lossy(&e.exe).0.into());
        }
        if !altered.is_empty() {
            ours_process.insert("text_altered".into(), altered.into());
        }
        let ours_parent = ours["parent"].as_object_mut().expect("object");
        ours_parent.insert("args_truncated".into(), ctx.parent.args_truncated.into());
        if !parent_altered.is_empty() {
            ours_parent.insert("text_altered".into(), parent_altered.into());
        }
        json!({
            "@timestamp": rfc3339(self.epoch.wall(e.ktime_boot_ns)),
            "ecs": { "version": ECS_VERSION },
            "agent": self.agent_json(),
            "event": {
                "kind": "event",
                "category": ["process"],
                "type": ["start"],
                "action": "exec",
            },
            "host": self.host_json.clone(),
            "process": process,
            "user": self.user(e.euid),
            "group": self.group(e.egid),
            NAMESPACE: ours,
        })
    }

    /// `process.*` (or `process.parent.*`) fields. Names of fields whose text was not valid
    /// UTF-8 (and so was altered into valid JSON) are pushed onto `altered`.
    fn process(&self, p: &Process, altered: &mut Vec<String>) -> Value {
        let mut m = Map::new();
        m.insert("pid".into(), p.pid.into());
        if let Some(start) = p.start_ns {
            m.insert("entity_id".into(), self.entity_id(p.pid, start).into());
            m.insert("start".into(), rfc3339(self.epoch.wall(start)).into());
        }
        let mut text = |field: &str, bytes: &[u8]| -> Value {
            let (s, was_altered) = lossy(bytes);
            if was_altered {
                altered.push(field.to_owned());
            }
            s.into()
        };
        if let Some(exe) = &p.executable {
            m.insert("executable".into(), text("executable", exe));
            let name = p.name().unwrap_or_default();
            m.insert("name".into(), text("name", name));
        }
        if let Some(cwd) = &p.cwd {
            m.insert("working_directory".into(), text("working_directory", cwd));
        }
        if !p.args.is_empty() || p.executable.is_some() {
            let args: Vec<Value> = p.args.iter().map(|a| text("args", a)).collect();
            let line = args
                .iter()
                .map(|a| a.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ");
            m.insert("args".into(), args.into());
            m.insert("args_count".into(), p.args_count.into());
            m.insert("command_line".into(), line.into());
        }
        altered.dedup();
        Value::Object(m)
    }

    /// Stable per process, distinct across pid reuse: host, pid and start time in /proc ticks (so
    /// a process seeded from /proc and seen by the kernel get the same id).
    pub fn entity_id(&self, pid: u32, start_ns: u64) -> String {
        let host = self.host.id.as_deref().unwrap_or(&self.host.name);
        let host = &host[..host.len().min(12)];
        format!("{host}-{pid}-{}", procfs::ns_to_ticks(start_ns))
    }

    fn user(&mut self, uid: u32) -> Value {
        let name = self
            .users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone();
        id_and_name(uid, name)
    }

    fn group(&mut self, gid: u32) -> Value {
        let name = self
            .groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone();
        id_and_name(gid, name)
    }
}

fn id_and_name(id: u32, name: Option<String>) -> Value {
    match name {
        Some(name) => json!({ "id": id.to_string(), "name": name }),
        None => json!({ "id": id.to_string() }),
    }
}

fn host_json(host: &Host) -> Value {
    let mut os = Map::new();
    os.insert("type".into(), "linux".into());
    os.insert("kernel".into(), host.kernel.clone().into());
    let optional = [
        ("name", &host.os_name),
        ("version", &host.os_version),
        ("family", &host.os_family),
        ("platform", &host.os_platform),
        ("full", &host.os_full),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            os.insert(key.into(), v.clone().into());
        }
    }
    let mut h = Map::new();
    h.insert("name".into(), host.name.clone().into());
    h.insert("hostname".into(), host.name.clone().into());
    if let Some(id) = &host.id {
        h.insert("id".into(), id.clone().into());
    }
    h.insert("architecture".into(), host.architecture.clone().into());
    h.insert("os".into(), Value::Object(os));
    Value::Object(h)
}

/// Bytes as valid UTF-8 text (invalid sequences become U+FFFD) and whether anything changed.
pub fn lossy(bytes: &[u8]) -> (String, bool) {
    match String::from_utf8_lossy(bytes) {
        std::borrow::Cow::Borrowed(s) => (s.to_owned(), false),
        std::borrow::Cow::Owned(s) => (s, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Exec;
    use crate::process::context::{ParentSource, resolve};

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
            parent: None,
        }
    }

    #[test]
    fn defend_shaped_fields() {
        let mut d = describer();
        let mut ctx = resolve(exec());
        ctx.parent_source = ParentSource::Unknown;
        let v = d.exec_event(&ctx);
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
        assert_eq!(v["process"]["entity_id"], "0123456789ab-7-400");
        assert_eq!(v["boot_copy"]["process"]["text_altered"], json!(["args"]));
        // One line, valid JSON, whatever the arguments held.
        let line = serde_json::to_string(&v).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
    }
}

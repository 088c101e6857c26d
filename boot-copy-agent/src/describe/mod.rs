//! Events as ECS 9.4 documents shaped like Elastic Defend's. ECS field names live here;
//! fields ECS does not define go under the project's own `boot_copy` namespace.
//!
//! The [`Describer`] holds what stays the same across events (the host, the agent, the boot
//! clock's epoch, user and group names); [`exec`] makes an exec's process event from it.
pub mod exec;
pub mod fields;
pub mod file;

use crate::context::{clock::BootEpoch, env::EnvNames, host::Host, procfs};
use crate::decode::FileOp;
use crate::sensor::roots::Watched;
use boot_copy_common::TREE_CLIMBS;
use boot_copy_rules::Document;
use serde::Serialize;
use serde_json::{Map, Value, json, value::RawValue};
use std::{collections::HashMap, sync::Arc};

pub use exec::ExecEvent;

pub const ECS_VERSION: &str = "9.4.0";
/// The project's namespace for fields ECS does not define.
pub const NAMESPACE: &str = "boot_copy";

/// What stays the same across events: the host, the clock, name lookups.
pub struct Describer {
    host: Host,
    /// `host` and `agent`, serialized once.
    host_raw: Box<RawValue>,
    agent_raw: Box<RawValue>,
    /// The fields every exec event of this host has, flattened once.
    exec_base: Arc<Document>,
    epoch: BootEpoch,
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    /// The kernel's watched trees, which file events name.
    trees: Watched,
    /// The variables `process.env_vars` reports.
    env: EnvNames,
}

impl Describer {
    pub fn new(host: Host, epoch: BootEpoch) -> Self {
        let host_json = host_json(&host);
        let agent = agent_json(&host);
        Self {
            exec_base: Arc::new(exec::base(&agent, &host_json)),
            host_raw: raw(&host_json),
            agent_raw: raw(&agent),
            host,
            epoch,
            users: HashMap::new(),
            groups: HashMap::new(),
            trees: Watched::default(),
            env: EnvNames::default(),
        }
    }

    /// The environment variables exec events report in `process.env_vars`.
    pub fn set_env(&mut self, env: EnvNames) {
        self.env = env;
    }

    /// The trees the kernel watches, as file events are to name them.
    pub fn set_trees(&mut self, trees: Watched) {
        self.trees = trees;
    }

    /// The operation in the watched tree it is in; `None` for one the kernel sent because its
    /// path has a `..` (`TREE_CLIMBS`) and that, made absolute, is in none.
    pub fn placed(&self, mut op: FileOp) -> Option<FileOp> {
        if op.tree != TREE_CLIMBS {
            return Some(op);
        }
        let old = op
            .old_path
            .as_deref()
            .and_then(|p| self.trees.containing(p));
        op.tree = self.trees.containing(&op.path).or(old)?;
        Some(op)
    }

    /// Follows a stepped wall clock (NTP, settimeofday): `now` is the epoch read this second.
    pub fn follow_clock(&mut self, now: BootEpoch) {
        self.epoch = self.epoch.follow(now);
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Looks up (once per id) the user and group names events will need.
    pub fn learn_names(&mut self, uid: u32, gid: u32) {
        self.users.entry(uid).or_insert_with(|| {
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|u| u.name)
        });
        self.groups.entry(gid).or_insert_with(|| {
            nix::unistd::Group::from_gid(gid.into())
                .ok()
                .flatten()
                .map(|g| g.name)
        });
    }

    /// Looks up the names of an exec's effective and real user and group.
    pub fn learn_all_names(&mut self, ctx: &crate::context::exec::ExecContext) {
        self.learn_names(ctx.exec.euid, ctx.exec.egid);
        self.learn_names(ctx.exec.uid, ctx.exec.gid);
        let l = &ctx.leaders;
        let others = [Some(&ctx.parent), l.group.as_ref(), l.session.as_ref()]
            .into_iter()
            .chain([l.entry.as_ref().map(|e| &e.leader)]);
        for (uid, gid) in others.flatten().filter_map(|p| p.user) {
            self.learn_names(uid, gid);
        }
        for &gid in ctx.supplemental_groups().map_or(&[][..], |(g, _)| g) {
            self.learn_names(ctx.exec.euid, gid);
        }
    }

    /// Stable per process, distinct across pid reuse: host, pid and start time in /proc ticks (so
    /// a process seeded from /proc and seen by the kernel get the same id).
    pub fn entity_id(&self, pid: u32, start_ns: u64) -> String {
        let host = self.host.id.as_deref().unwrap_or(&self.host.name);
        let host = &host[..host.len().min(12)];
        format!("{host}-{pid}-{}", procfs::ns_to_ticks(start_ns))
    }

    fn ids<'a>(&self, id: u32, names: &'a HashMap<u32, Option<String>>) -> Ids<'a> {
        Ids {
            ext: None,
            id: id.to_string(),
            name: names.get(&id).and_then(|n| n.as_deref()),
        }
    }

    /// `user` or `group` of an event: the effective id, with the real one under `Ext.real` as
    /// Elastic Defend writes it.
    fn ids_with_real<'a>(
        &self,
        effective: u32,
        real: u32,
        names: &'a HashMap<u32, Option<String>>,
    ) -> Ids<'a> {
        let real = self.ids(real, names);
        Ids {
            ext: Some(IdsExt {
                real: RealIds {
                    id: real.id,
                    name: real.name,
                },
            }),
            ..self.ids(effective, names)
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ecs {
    pub version: &'static str,
}

impl Ecs {
    pub const CURRENT: Ecs = Ecs {
        version: ECS_VERSION,
    };
}

/// `user` or `group`: the id, and the name when it resolves.
#[derive(Debug, Clone, Serialize)]
pub struct Ids<'a> {
    #[serde(rename = "Ext", skip_serializing_if = "Option::is_none")]
    pub ext: Option<IdsExt<'a>>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

/// `user.Ext` / `group.Ext` (Elastic Defend's own fields).
#[derive(Debug, Clone, Serialize)]
pub struct IdsExt<'a> {
    pub real: RealIds<'a>,
}

/// The real user or group id, and its name when it resolves.
#[derive(Debug, Clone, Serialize)]
pub struct RealIds<'a> {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Id {
    pub id: String,
}

fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("serialized JSON is valid JSON")
}

/// `agent.*`: this agent, identified per host.
pub fn agent_json(host: &Host) -> Value {
    let id = host.id.as_deref().unwrap_or(&host.name);
    json!({
        "type": "boot-copy",
        "version": env!("CARGO_PKG_VERSION"),
        "id": format!("boot-copy-{id}"),
        "name": host.name,
    })
}

/// `host.*`: this host.
pub fn host_json(host: &Host) -> Value {
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

//! One file operation as an ECS file event shaped like Elastic Defend's Linux file events
//! (`event.category: file`, `file.*`), the writing process described exactly as an exec event
//! describes its process (`process.*`, `process.parent.*`, user, group, host): the exec event of
//! the writer's current image, with the file's fields in place of the exec's `event.*`.
//! `boot_copy.file.tree` names the watched tree the kernel found the file in;
//! `boot_copy.file.path_truncated` says a path was cut at the record's capacity;
//! `boot_copy.file.io_uring` that an io_uring worker began the operation, which was reported
//! before its result.
use super::{Describer, NAMESPACE};
use crate::context::{
    exec::{self, ExecContext},
    paths,
};
use crate::decode::FileOp;
use boot_copy_common::file_action;
use serde_json::{Value, json};

/// A file operation joined with its writer's context.
pub struct FileContext {
    /// `boot_copy_common::file_action`.
    pub action: u32,
    pub path: Vec<u8>,
    pub old_path: Option<Vec<u8>>,
    pub path_truncated: bool,
    /// `FileOp::tree`.
    pub tree: u32,
    pub io_uring: bool,
    /// The writer as an exec of its current image.
    pub writer: ExecContext,
}

impl FileContext {
    /// Resolves the writer's parent as for an exec.
    pub fn resolve(op: FileOp) -> Self {
        Self {
            action: op.action,
            path: op.path,
            old_path: op.old_path,
            path_truncated: op.path_truncated,
            tree: op.tree,
            io_uring: op.io_uring,
            writer: exec::resolve(op.writer),
        }
    }
}

/// `event.action` and `event.type` of an action.
fn action(action: u32) -> (&'static str, &'static str) {
    match action {
        file_action::CREATION => ("creation", "creation"),
        file_action::RENAME => ("rename", "change"),
        file_action::DELETION => ("deletion", "deletion"),
        file_action::ATTRIBUTES_MODIFICATION => ("attributes_modification", "change"),
        _ => ("modification", "change"),
    }
}

impl Describer {
    /// The ECS file event, as JSON.
    pub fn file_json(&mut self, ctx: &FileContext) -> Value {
        let mut event = self.exec_json(&ctx.writer);
        let (name, type_) = action(ctx.action);
        event["event"] = json!({
            "action": name,
            "category": ["file"],
            "kind": "event",
            "type": [type_],
        });
        event["file"] = file_fields(&ctx.path, ctx.old_path.as_deref());
        // The kernel sent the record because the file is in a watched tree, whatever path
        // reached it (a bind mount), and said which.
        let tree = self.trees.tree(ctx.tree);
        event[NAMESPACE]["file"] = json!({
            "tree": tree.map(|t| t.to_string_lossy()),
            "path_truncated": ctx.path_truncated,
            "io_uring": ctx.io_uring,
        });
        // The kernel matched the host's trees by device and inode: a file in /boot is on the
        // host's boot file system, whatever /boot the writer sees; another tree is not /boot.
        let ours = event[NAMESPACE]
            .as_object_mut()
            .expect("boot_copy is an object");
        if tree == Some(std::path::Path::new(crate::sensor::roots::BOOT)) {
            ours.insert("boot".into(), json!({ "host_filesystem": true }));
        } else {
            ours.remove("boot");
        }
        event
    }
}

/// `file.*`: path, name, extension, and a rename's source (`file.Ext.original.*`).
fn file_fields(path: &[u8], old_path: Option<&[u8]>) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let name = paths::basename(path);
    let mut file = json!({
        "path": text(path),
        "name": text(name),
    });
    if let Some(ext) = extension(name) {
        file["extension"] = json!(text(ext));
    }
    if let Some(old) = old_path {
        file["Ext"] = json!({"original": {"path": text(old), "name": text(paths::basename(old))}});
    }
    file
}

/// What follows the last dot of a name, as Defend reports `file.extension` (none for a name
/// without one, or a dot file like `.config`).
fn extension(name: &[u8]) -> Option<&[u8]> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    (dot > 0 && dot + 1 < name.len()).then(|| &name[dot + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension(b"grub.cfg"), Some(&b"cfg"[..]));
        assert_eq!(extension(b"initrd.img-6.1.0"), Some(&b"0"[..]));
        assert_eq!(extension(b"vmlinuz"), None);
        assert_eq!(extension(b".hidden"), None);
        assert_eq!(extension(b"x."), None);
    }

    #[test]
    fn actions() {
        assert_eq!(action(file_action::CREATION), ("creation", "creation"));
        assert_eq!(action(file_action::RENAME).0, "rename");
        assert_eq!(action(file_action::DELETION).1, "deletion");
        assert_eq!(
            action(file_action::ATTRIBUTES_MODIFICATION).0,
            "attributes_modification"
        );
        assert_eq!(
            action(file_action::MODIFICATION),
            ("modification", "change")
        );
    }
}

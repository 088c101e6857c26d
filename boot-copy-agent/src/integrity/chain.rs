//! The keyed hash chain: every record carries `boot_copy.chain.hmac`, HMAC-SHA256 under a key
//! from a root-only file, over the previous record's HMAC followed by the record's canonical
//! bytes. Removing, reordering, editing or inserting a line breaks the chain; `verify` finds
//! where.
//!
//! Canonical bytes: the record as parsed JSON, without `boot_copy.chain.hmac` (and without
//! `boot_copy.chain` if that leaves it empty), serialized with every object's keys in byte
//! order, no whitespace, strings and numbers as serde_json writes them. A shipper that reorders
//! keys or reformats whitespace keeps the chain verifiable; one that changes values does not.
//!
//! Each run starts a new chain: its first record has `boot_copy.seq` 1, is chained from 32 zero
//! bytes, and names the previous run's last record it knew of (from the status file) in
//! `boot_copy.chain.previous` (`seq`, `hmac`, `clean`), so records cut from the end of a run
//! show at the next start.
use crate::config::{ConfigError, require_root_only};
use crate::describe::NAMESPACE;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::{Path, PathBuf};

pub type Mac256 = [u8; 32];

/// Where the chain start begins: no previous record.
pub const GENESIS: Mac256 = [0; 32];

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Insecure(#[from] ConfigError),
    #[error(
        "{path} is too short for an HMAC key ({len} bytes, at least {MIN_KEY_BYTES} needed): create one with `head -c 32 /dev/urandom > {path}`"
    )]
    TooShort { path: PathBuf, len: usize },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The chain key: the file's bytes, as they are.
pub struct Key(Vec<u8>);

impl Key {
    /// Reads the key, refusing a file anyone but root could read or replace.
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        require_root_only(path)?;
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(bytes).map_err(|len| KeyError::TooShort {
            path: path.to_owned(),
            len,
        })
    }

    /// A key of at least [`MIN_KEY_BYTES`]; the length otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Key, usize> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(bytes.len());
        }
        Ok(Key(bytes))
    }

    /// HMAC(key, previous || canonical(record)); `record` must not hold its own HMAC.
    pub fn link(&self, previous: &Mac256, record: &Value) -> Mac256 {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(previous);
        let mut bytes = Vec::with_capacity(1024);
        canonical(record, &mut bytes);
        mac.update(&bytes);
        mac.finalize().into_bytes().into()
    }
}

/// The running chain of this agent.
pub struct Chain {
    key: Key,
    last: Mac256,
    /// The previous run's last record, named by this run's first record.
    previous: Option<Value>,
    started: bool,
}

impl Chain {
    /// A new chain; `previous` is the last record (`seq`, `hmac`, `clean`) of the previous run.
    pub fn new(key: Key, previous: Option<Value>) -> Self {
        Self {
            key,
            last: GENESIS,
            previous,
            started: false,
        }
    }

    /// Links `doc` (already numbered, not yet serialized) to the chain: sets
    /// `boot_copy.chain.hmac`. The record is then serialized once, for every sink.
    pub fn seal(&mut self, doc: &mut Value) {
        if !self.started {
            self.started = true;
            if let Some(previous) = self.previous.take() {
                chain_object(doc)["previous"] = previous;
            }
        }
        self.last = self.key.link(&self.last, doc);
        chain_object(doc)["hmac"] = hex(&self.last).into();
    }

    /// The HMAC of the last sealed record, in hex.
    pub fn last_hex(&self) -> Option<String> {
        self.started.then(|| hex(&self.last))
    }
}

fn chain_object(doc: &mut Value) -> &mut Value {
    let ours = &mut doc[NAMESPACE];
    if !ours.is_object() {
        *ours = json!({});
    }
    let chain = &mut ours["chain"];
    if !chain.is_object() {
        *chain = json!({});
    }
    chain
}

/// Removes and returns `boot_copy.chain.hmac` (dropping `boot_copy.chain` if that empties it):
/// what the HMAC was computed over.
pub fn take_hmac(doc: &mut Value) -> Option<String> {
    let ours = doc.get_mut(NAMESPACE)?.as_object_mut()?;
    let chain = ours.get_mut("chain")?.as_object_mut()?;
    let hmac = chain.remove("hmac")?;
    if chain.is_empty() {
        ours.remove("chain");
    }
    hmac.as_str().map(str::to_owned)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Mac256> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Sorted keys, no whitespace: the same bytes however the record's keys were ordered.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec");
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    #[test]
    fn canonical_form_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"a\" : { \"x\":null, \"y\":[1, \"x\"] }, \"b\" : 1 }")
                .unwrap();
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        canonical(&a, &mut ca);
        canonical(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(ca, br#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn sealed_records_verify_and_edits_do_not() {
        let mut chain = Chain::new(key(), Some(json!({"seq": 9, "hmac": "00", "clean": true})));
        let mut first = json!({"message": "a", "boot_copy": {"seq": 1}});
        chain.seal(&mut first);
        let mut second = json!({"message": "b", "boot_copy": {"seq": 2}});
        chain.seal(&mut second);
        assert_eq!(first["boot_copy"]["chain"]["previous"]["seq"], 9);
        assert!(second["boot_copy"]["chain"].get("previous").is_none());

        let mut check = first.clone();
        let mac = unhex(&take_hmac(&mut check).unwrap()).unwrap();
        assert_eq!(key().link(&GENESIS, &check), mac);
        let mut check2 = second.clone();
        let mac2 = unhex(&take_hmac(&mut check2).unwrap()).unwrap();
        assert!(check2["boot_copy"].get("chain").is_none());
        assert_eq!(key().link(&mac, &check2), mac2);
        check2["message"] = "c".into();
        assert_ne!(key().link(&mac, &check2), mac2);
        assert_eq!(chain.last_hex(), Some(hex(&mac2)));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(Key::from_bytes(vec![1; 15]).err(), Some(15));
    }
}

//! Tamper evidence: the keyed hash chain over every record (`chain`), its verifier (`verify`),
//! the watch on the kernel programs' attachments (`attachment`) and the guard on the maps that
//! decide what the kernel reports (`maps`).
pub mod attachment;
pub mod chain;
pub mod maps;
pub mod verify;

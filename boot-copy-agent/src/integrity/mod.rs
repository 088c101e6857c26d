//! Tamper evidence: the keyed hash chain over every record (`chain`), its verifier (`verify`),
//! and the watch on the kernel programs' attachments (`attachment`).
pub mod attachment;
pub mod chain;
pub mod verify;

//! Arbitrary text as an EQL query: parsing and compiling must return a value or an error, never
//! panic; a query that compiles must evaluate without panicking too.
#![no_main]

use boot_copy_rules::{Document, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(query) = compile(text) else {
        return;
    };
    let mut doc = Document::new();
    doc.insert("event.category", vec!["process"]);
    doc.insert("process.name", "cp");
    doc.insert("process.args", vec!["cp", "x", "/BOOT/y"]);
    doc.insert("process.pid", 42i64);
    doc.insert("process.parent.name", "");
    let _ = query.matches(&doc);
    let _ = query.matches(&Document::new());
    let _ = query.fields();
});

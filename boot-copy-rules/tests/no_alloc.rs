//! Evaluating Elastic's Linux rule library against exec events allocates nothing: the index
//! lookup, every candidate rule (regexes, wildcards, field-argument functions) and the verdicts.
//! The only test in its binary, so the counting allocator sees nothing else.
use boot_copy_rules::{Document, Exceptions, load_ruleset};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn evaluating_the_library_allocates_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/detection-rules");
    let set = load_ruleset(Some(&dir), &Exceptions::default()).unwrap();
    let events: Vec<Document> = [
        ("bash", "/usr/bin/ls", vec!["ls", "-la"]),
        (
            "sshd",
            "/usr/bin/bash",
            vec!["bash", "-c", "echo 10.0.0.1:22:10.0.0.2:80"],
        ),
        ("php-fpm", "/usr/bin/sh", vec!["sh", "-c", "id"]),
        ("bash", "/usr/bin/shred", vec!["shred", "-u", "/tmp/x"]),
        ("bash", "/usr/bin/touch", vec!["touch", "/tmp/.hidden_file"]),
        ("bash", "/tmp/pkexec", vec!["/tmp/pkexec", "--user"]),
    ]
    .into_iter()
    .map(|(parent, exe, args)| {
        let name = exe.rsplit('/').next().unwrap();
        Document::from_json(&serde_json::json!({
            "event": {"category": ["process"], "type": ["start"], "action": "exec"},
            "host": {"os": {"type": "linux"}},
            "process": {"name": name, "executable": exe, "args": args, "args_count": args.len(),
                        "command_line": args.join(" "), "user": {"id": "0"},
                        "real_user": {"id": "1000"},
                        "parent": {"name": parent, "executable": format!("/usr/sbin/{parent}"),
                                   "user": {"id": "1000"}}},
        }))
    })
    .collect();
    let mut verdicts = 0;
    COUNTING.store(true, Ordering::Relaxed);
    for doc in &events {
        verdicts += set.evaluate(doc).count();
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
    assert!(verdicts > 0, "some of these events match a rule");
}

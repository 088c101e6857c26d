//! `cargo xtask test`: the whole suite. Kernel tests load the real programs into the running
//! kernel, so this needs root.
use crate::{cargo, setup};

pub fn run() -> anyhow::Result<()> {
    setup::require_root("the test suite")?;
    // Kernel tests share the host's exec stream; one test at a time keeps their timing honest.
    cargo(&["test", "--workspace", "--", "--test-threads=1"])
}

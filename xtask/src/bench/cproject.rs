//! A real exec workload that needs nothing from the network: a generated C project of 200
//! files built with `make -j2` (make, the shell, gcc's driver, cc1, as and ld: several execs
//! per file, a compiler's worth of work between them).
use super::bench_dir;
use crate::status;
use anyhow::Context as _;
use std::{
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

const FILES: usize = 200;

pub struct CProject {
    dir: PathBuf,
}

impl CProject {
    /// Writes the project into `target/bench/cproject` (rewritten every run: it is small).
    pub fn generate() -> anyhow::Result<Self> {
        let dir = bench_dir()?.join("cproject");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut main = String::from(
            "#include <stdio.h>\n#include \"unit.h\"\nint main(void) {\n    unsigned long s = 0;\n",
        );
        let mut header = String::new();
        for i in 0..FILES {
            fs::write(dir.join(format!("unit{i}.c")), unit(i))?;
            writeln!(header, "unsigned long unit{i}(unsigned long);")?;
            writeln!(main, "    s += unit{i}(s);")?;
        }
        main.push_str("    printf(\"%lu\\n\", s);\n    return 0;\n}\n");
        fs::write(dir.join("unit.h"), header)?;
        fs::write(dir.join("main.c"), main)?;
        fs::write(
            dir.join("Makefile"),
            "CFLAGS = -O2\nSRCS = $(wildcard *.c)\nOBJS = $(SRCS:.c=.o)\n\
             prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\
             %.o: %.c unit.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\
             clean:\n\trm -f prog $(OBJS)\n",
        )?;
        Ok(Self { dir })
    }

    pub fn clean(&self) -> anyhow::Result<()> {
        self.make(&["clean"])
    }

    /// Builds from clean with `make -j2`; the wall time in seconds.
    pub fn build(&self) -> anyhow::Result<f64> {
        let start = Instant::now();
        self.make(&["-j2"])?;
        Ok(start.elapsed().as_secs_f64())
    }

    fn make(&self, args: &[&str]) -> anyhow::Result<()> {
        status(
            Command::new("make")
                .args(["-s", "-C"])
                .arg(&self.dir)
                .args(args)
                .stdout(Stdio::null()),
        )
        .context("building the generated C project")
    }
}

/// One translation unit: a little arithmetic for the compiler to chew on.
fn unit(i: usize) -> String {
    let mut s = format!(
        "#include \"unit.h\"\nstatic unsigned long mix{i}(unsigned long x) {{ return (x * 2654435761u) ^ (x >> 13); }}\n"
    );
    for f in 0..8 {
        let _ = writeln!(
            s,
            "static unsigned long step{i}_{f}(unsigned long x) {{ for (int k = 0; k < {n}; k++) x = mix{i}(x + k); return x; }}",
            n = 3 + f
        );
    }
    let _ = write!(s, "unsigned long unit{i}(unsigned long x) {{ return ");
    for f in 0..8 {
        let _ = write!(s, "step{i}_{f}(x) + ");
    }
    s.push_str("0; }\n");
    s
}

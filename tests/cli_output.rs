//! What the command prints, as a person and a script see it: `check-config`,
//! `verify`, `trace` and `replay`, each against a snapshot in
//! `tests/snapshots/` (text by default, JSON with `--json`).
//!
//! A snapshot that differs fails the test with both texts. After an intended
//! change, `UPDATE_SNAPSHOTS=1 cargo test --test cli_output` rewrites them;
//! review the diff before committing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use distill_guard::extensions::{AccountId, ClusterId};
use distill_guard::watermark::mark::{MarkPayload, MarkPlan, TextMarker};
use distill_guard::watermark::tag::{
    ContentDigest, Keys, RequestId, SigningKey, TagFields, TagKind,
};
use serde_json::{json, Value};

const KEY_SECRET: &str = "k1-secret-0123456789abcdef0123456789";
const SECRET: &str = "9f2c41d0b7e85a36c1f04e9d2b7a8c55";

fn bin() -> Command {
    support::process::bin()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8 output")
}

/// Compares `actual` with `tests/snapshots/{name}`, or writes it with
/// `UPDATE_SNAPSHOTS=1`.
fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1 to create it. Output:\n{actual}",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}\n(UPDATE_SNAPSHOTS=1 rewrites it)",
        path.display()
    );
}

fn keys() -> Keys {
    Keys::new(vec![
        SigningKey::new("k1", KEY_SECRET.as_bytes()).expect("key")
    ])
    .expect("keys")
}

fn watermark_config(dir: &Path) -> PathBuf {
    let path = dir.join("guard.toml");
    std::fs::write(
        &path,
        format!(
            "[identity]\nsecret = \"{SECRET}\"\n[watermark]\ntext_mark = true\n[[watermark.keys]]\nid = \"k1\"\nsecret = \"{KEY_SECRET}\"\n"
        ),
    )
    .expect("write config");
    path
}

const ACCOUNT: AccountId = AccountId([
    0x41, 0x22, 0xa1, 0xc2, 0xa3, 0xa6, 0x79, 0x74, 0xc4, 0xd1, 0x0a, 0x00, 0x21, 0x8e, 0x84, 0x61,
]);
const ISSUED_MS: u64 = 1_764_000_000_000;

#[test]
fn check_config_lists_every_error_with_its_path_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("guard.toml"),
        "[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n\n[tiers.default]\nbogus_field = 1\nrequests_per_minute = -5\ntokens_per_minute = \"lots\"\n\n[quota]\ncluster_exponent = 2.0\n",
    )
    .expect("write");
    let out = run(dir.path(), &["check-config", "guard.toml"]);
    assert_eq!(out.status.code(), Some(1));
    snapshot("check-config-errors.txt", &text(&out.stdout));

    let out = run(dir.path(), &["check-config", "--json", "guard.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let found: Vec<(String, u64)> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().expect("path").to_owned(),
                e["line"].as_u64().expect("line"),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("tiers.default.bogus_field".to_owned(), 5),
            ("tiers.default.requests_per_minute".to_owned(), 6),
            ("tiers.default.tokens_per_minute".to_owned(), 7),
            ("quota.cluster_exponent".to_owned(), 10),
        ]
    );
}

/// Model groups: a bad pattern, a limit above the tier's and an unknown key
/// inside a group are each reported with the group's quoted path and line.
#[test]
fn check_config_reports_model_groups_with_their_paths() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("guard.toml"),
        concat!(
            "[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n",
            "[tiers.default]\nrequests_per_minute = 60\n",
            "[tiers.default.models.\"gpt-5*\"]\nrequests_per_minute = 100\n",
            "[tiers.default.models.\"gpt-4.1\"]\nrpm = 5\n",
            "[tiers.default.models.\"o[13]\"]\nrequests_per_minute = 5\n",
        ),
    )
    .expect("write");
    let out = run(dir.path(), &["check-config", "guard.toml"]);
    assert_eq!(out.status.code(), Some(1));
    snapshot("check-config-model-groups.txt", &text(&out.stdout));
}

#[test]
fn check_config_warns_about_the_shipped_placeholder_secret() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(root, &["check-config", "examples/guard.toml"]);
    assert_eq!(out.status.code(), Some(0), "valid, with a warning");
    snapshot("check-config-placeholder.txt", &text(&out.stdout));
    let out = run(
        root,
        &["check-config", "--deny-warnings", "examples/guard.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_names_the_file_of_a_bad_config() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("bad.toml"), "[identity]\nsecret = 5\n").expect("write");
    let out = run(dir.path(), &["serve", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml: invalid configuration (1 error)"),
        "{err}"
    );
    assert!(err.contains("identity.secret: expected a string"), "{err}");
    assert!(err.contains("(line 2)"), "{err}");
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("dir");
    let traffic = dir.path().join("t.jsonl");
    std::fs::write(&traffic, "").expect("write");
    // The shipped config's placeholder secret is logged as a warning.
    let out = run(
        root,
        &[
            "replay",
            "--config",
            "examples/guard.toml",
            traffic.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("identity.secret"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped logs: {err:?}"
    );
}

fn tag() -> String {
    keys().sign(&TagFields {
        key_id: "k1".into(),
        kind: TagKind::Body,
        account: ACCOUNT,
        cluster: ClusterId([0x38; 16]),
        request_id: RequestId::of_request("0b6e41a2-9c1d-4f7e-8a3b-5d2c1e0f9a87"),
        issued_at_ms: ISSUED_MS,
        text_marked: true,
        text_digest: Some(ContentDigest::of(b"some generated text")),
        stream_digest: None,
        stream_bytes: None,
    })
}

#[test]
fn verify_prints_the_tag_in_words_or_as_json() {
    let dir = tempfile::tempdir().expect("dir");
    watermark_config(dir.path());
    let tag = tag();
    let out = run(dir.path(), &["verify", "--config", "guard.toml", &tag]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    snapshot("verify.txt", &text(&out.stdout));

    let out = run(
        dir.path(),
        &["verify", "--config", "guard.toml", "--json", &tag],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["account"], json!(ACCOUNT.to_string()));
    assert_eq!(
        v["request_id"],
        json!("0b6e41a2-9c1d-4f7e-8a3b-5d2c1e0f9a87"),
        "the tag's request id is the request's x-request-id"
    );

    let mut bad = tag.clone();
    bad.pop();
    bad.push('A');
    let out = run(dir.path(), &["verify", "--config", "guard.toml", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("invalid:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn trace_prints_the_account_in_the_same_form_as_verify() {
    let dir = tempfile::tempdir().expect("dir");
    watermark_config(dir.path());
    let plan = std::sync::Arc::new(MarkPlan::new(
        &MarkPayload::new(ACCOUNT, ClusterId([0x38; 16]), ISSUED_MS),
        keys().signing(),
        4,
    ));
    let prose = "The scheduler keeps a queue of pending work and wakes the worker that has been idle the longest. \
        Each worker takes a batch, runs it to completion and reports back before it takes the next one, \
        so a slow batch never blocks the others and the queue drains at the pace of the fastest workers.";
    let marked = TextMarker::mark(&plan, prose);
    assert_ne!(marked, prose, "marks were placed");
    std::fs::write(dir.path().join("leak.txt"), &marked).expect("write");
    let out = run(dir.path(), &["trace", "--config", "guard.toml", "leak.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    snapshot("trace.txt", &shown);
    // verify shows the full id; trace's prefix is the start of that same form.
    let prefix = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("account"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("account line");
    assert!(ACCOUNT.to_string().starts_with(prefix), "{prefix}");

    let out = run(
        dir.path(),
        &["trace", "--config", "guard.toml", "--json", "leak.txt"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["method"], "mark");
    assert_eq!(v["account"], json!(prefix));

    std::fs::write(dir.path().join("plain.txt"), prose).expect("write");
    let out = run(
        dir.path(),
        &["trace", "--config", "guard.toml", "plain.txt"],
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Forty lines: one campaign account (the first key) and three ordinary users.
fn traffic(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for i in 0..40u64 {
        let user = i % 4;
        let line = json!({
            "ts_ms": 1_764_000_000_000u64 + i * 1_500,
            "ip": format!("203.0.113.{}", 10 + user),
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [["authorization", format!("Bearer sk-user-{user}")], ["content-type", "application/json"]],
            "body": {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": format!("question {i} from user {user}")}]},
            "usage": {"input_tokens": 12, "output_tokens": 150},
            "label": {"actor": if user == 0 { "campaign-1".to_owned() } else { format!("user-{user}") }},
        });
        lines.push(line.to_string());
    }
    lines.insert(20, "{not json".to_owned());
    let path = dir.join("traffic.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

/// The summary without its wall-clock figures.
fn steady(summary: &str) -> String {
    summary
        .lines()
        .map(|l| match l.strip_prefix("replayed ") {
            Some(rest) => {
                let lines = rest.split(" lines in").next().unwrap_or("");
                let malformed = rest.split("; ").nth(1).unwrap_or("");
                format!("replayed {lines} lines in <time>; {malformed}")
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn replay_summary_is_readable_text_by_default_and_json_on_request() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("limits.toml");
    std::fs::write(
        &cfg,
        format!("[identity]\nsecret = \"{SECRET}\"\n[tiers.default]\nrequests_per_minute = 4\n"),
    )
    .expect("write");
    traffic(dir.path());
    let out = run(
        dir.path(),
        &[
            "replay",
            "--config",
            "limits.toml",
            "traffic.jsonl",
            "--out",
            "decisions.jsonl",
            "--score",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "decisions went to --out");
    let err = text(&out.stderr);
    assert!(err.contains("skipped line 21"), "{err}");
    let summary: String = err
        .lines()
        .skip_while(|l| !l.starts_with("replayed "))
        .collect::<Vec<_>>()
        .join("\n");
    snapshot("replay-summary.txt", &(steady(&summary) + "\n"));
    assert!(
        !summary.contains('{'),
        "no Debug or JSON forms in the text: {summary}"
    );

    // Every account's size in the summary matches its decision lines.
    let decisions = std::fs::read_to_string(dir.path().join("decisions.jsonl")).expect("read");
    assert!(decisions.lines().all(|l| l.contains("\"cluster_size\":1")));
    assert!(summary.lines().any(|l| l.contains("busiest accounts")));

    // With --summary FILE.json: the JSON there (score included), nothing but
    // the skipped line on stderr.
    let out = run(
        dir.path(),
        &[
            "replay",
            "--config",
            "limits.toml",
            "traffic.jsonl",
            "--out",
            "decisions.jsonl",
            "--score",
            "--summary",
            "s.json",
        ],
    );
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(!err.contains("score") && !err.contains("replayed"), "{err}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("summary"))
            .expect("json");
    assert_eq!(v["lines"], 41);
    assert_eq!(v["malformed"], 1);
    assert!(v["score"]["campaign"].is_object());
    assert!(v["tagging_off"]
        .as_str()
        .is_some_and(|s| s.contains("watermark.keys")));
    assert!(v["top_accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .all(|a| a["size"] == 1));
}

#[test]
fn replay_report_is_one_page_with_its_plots_and_compares_two_configs() {
    let dir = tempfile::tempdir().expect("dir");
    for (name, rpm) in [("a.toml", 100), ("b.toml", 3)] {
        std::fs::write(
            dir.path().join(name),
            format!(
                "[identity]\nsecret = \"{SECRET}\"\n[tiers.default]\nrequests_per_minute = {rpm}\n"
            ),
        )
        .expect("write");
    }
    traffic(dir.path());
    let out = run(
        dir.path(),
        &[
            "replay",
            "--config",
            "a.toml",
            "traffic.jsonl",
            "--out",
            "d.jsonl",
            "--report",
            "r.html",
            "--compare",
            "b.toml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(dir.path().join("r.html")).expect("report");
    assert!(!html.contains("<script") && !html.contains("https://"));
    for want in [
        "decisions per",
        "clusters by member count",
        "campaign output tokens per",
        "harvest and harm per",
        "Most suspicious clusters",
        "compared with <b>b.toml</b>",
    ] {
        assert!(html.contains(want), "{want}");
    }
    assert_eq!(html.matches("<svg").count(), 8, "four plots per config");
    // b.toml denies what a.toml allows: the figures table shows the difference.
    assert!(html.contains("<th>difference</th>"));
    let summary = text(&out.stderr);
    assert!(
        summary.contains("== a.toml") && summary.contains("== b.toml"),
        "{summary}"
    );

    let out = run(
        dir.path(),
        &["replay", "--config", "a.toml", "-", "--compare", "b.toml"],
    );
    assert!(!out.status.success(), "--compare needs a file");
}

/// Prints a skip line when asked to (by the test below, in a child process).
#[test]
fn skip_line_probe() {
    if std::env::var_os("DISTILL_GUARD_SKIP_PROBE").is_some() {
        support::report_skip_line("probe SKIPPED: asked to");
        println!("captured line");
    }
}

#[test]
fn a_skip_line_reaches_the_harness_output_despite_capture() {
    // Runs this test binary again, only the probe, as `cargo test` would: a
    // `println!` in a passing test is swallowed, the skip line must not be.
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "skip_line_probe", "--test-threads", "1"])
        .env("DISTILL_GUARD_SKIP_PROBE", "1")
        .output()
        .expect("run the probe");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("probe SKIPPED: asked to"), "{stdout}");
    assert!(
        !stdout.contains("captured line"),
        "libtest captures println!: {stdout}"
    );
    assert!(text(&out.stderr).contains("probe SKIPPED: asked to"));
}

//! `serve` with a `[watermark]` key tags what it serves (header, JSON body, SSE
//! records), and `distill-guard verify` checks those tags.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use axum::body::Body;
use http::Request;
use serde_json::{json, Value};
use support::process::{send, Served};

const CONFIG: &str = r#"
[identity]
secret = "serve-watermark-test"
[watermark]
tag = "always"
[[watermark.keys]]
id = "k1"
secret = "a watermark key for this test"
"#;

fn spawn(config: &std::path::Path, extra: &[&str]) -> Served {
    let path = config.to_str().expect("utf-8 path");
    let mut args = vec!["--config", path];
    args.extend_from_slice(extra);
    support::process::serve(&args, false)
}

async fn post(url: &str, path: &str, body: Value) -> (http::HeaderMap, String) {
    let req = Request::post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-watermark")
        .body(Body::from(body.to_string()))
        .expect("request");
    let r = send(req).await;
    assert_eq!(r.status, 200);
    (r.headers.clone(), r.text())
}

/// Runs `distill-guard verify --config FILE --json ARG`, with `stdin` when given.
fn verify(config: &std::path::Path, arg: &str, stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distill-guard"))
        .args(["verify", "--json", "--config"])
        .arg(config)
        .arg(arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start verify");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("verify output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn serve_tags_and_verify_checks() {
    let mut cfg = tempfile::NamedTempFile::new().expect("temp file");
    cfg.write_all(CONFIG.as_bytes()).expect("write");
    let server = spawn(cfg.path(), &[]);

    let (h, body) = post(
        &server.url,
        "/v1/chat/completions",
        json!({"model": "m", "max_tokens": 30, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let tag = h["x-distill-guard-tag"].to_str().expect("ascii").to_owned();
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["distill_guard"]["tag"], tag.as_str());
    let (code, out) = verify(cfg.path(), &tag, None);
    assert_eq!(code, 0, "{out}");
    let fields: Value = serde_json::from_str(out.trim()).expect("json fields");
    assert_eq!(fields["key_id"], "k1");
    // The header line form, read from stdin.
    let (code, _) = verify(
        cfg.path(),
        "-",
        Some(&format!("x-distill-guard-tag: {tag}\n")),
    );
    assert_eq!(code, 0);
    // One character changed in the signature: rejected.
    let mut bad = tag.clone().into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let (code, out) = verify(cfg.path(), &String::from_utf8(bad).expect("ascii"), None);
    assert_eq!(code, 1, "{out}");

    // Anthropic SSE: a final record that verifies too.
    let (_, body) = post(
        &server.url,
        "/v1/messages",
        json!({"model": "m", "max_tokens": 30, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let record = body
        .lines()
        .find(|l| l.starts_with(": dg-final "))
        .expect("final record")
        .to_owned();
    let (code, out) = verify(cfg.path(), &record, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"stream_digest\":\""), "{out}");
}

#[tokio::test]
async fn passthrough_serves_untagged() {
    let mut cfg = tempfile::NamedTempFile::new().expect("temp file");
    cfg.write_all(CONFIG.as_bytes()).expect("write");
    let server = spawn(cfg.path(), &["--passthrough"]);
    let (h, body) = post(
        &server.url,
        "/v1/chat/completions",
        json!({"model": "m", "max_tokens": 30, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(h.get("x-distill-guard-tag").is_none());
    assert!(!body.contains("distill_guard"));
}

/// `trace --server` completes a text mark's 14-hex-digit account prefix from the
/// live server's admin API, so `trace` and `verify` end up naming the same
/// account in full.
#[tokio::test]
async fn trace_with_a_server_completes_the_marks_account() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        r#"
[identity]
secret = "serve-watermark-test"
[watermark]
tag = "always"
text_mark = true
[[watermark.keys]]
id = "k1"
secret = "a watermark key for this test"
[admin]
token = "an admin token for this test"
"#,
    )
    .expect("write config");
    let path = config.to_str().expect("utf-8 path");
    let served = support::process::serve(&["--config", path], true);
    let (headers, body) = post(
        &served.url,
        "/v1/chat/completions",
        json!({"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "tell me about caches"}]}),
    )
    .await;
    let tag = headers["x-distill-guard-tag"].to_str().expect("ascii");
    let (code, verified) = verify(&config, tag, None);
    assert_eq!(code, 0, "{verified}");
    let account = serde_json::from_str::<Value>(&verified).expect("json")["account"]
        .as_str()
        .expect("account")
        .to_owned();
    let text = serde_json::from_str::<Value>(&body).expect("json")["choices"][0]["message"]
        ["content"]
        .as_str()
        .expect("text")
        .to_owned();
    let leak = dir.path().join("leak.txt");
    std::fs::write(&leak, &text).expect("write leak");
    let trace = |server: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_distill-guard"));
        cmd.args(["trace", "--json", "--config", path]);
        if let Some(s) = server {
            cmd.args(["--server", s]);
        }
        let out = cmd.arg(&leak).output().expect("trace");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    };
    let offline = trace(None);
    assert_eq!(offline["method"], "mark");
    let prefix = offline["account"].as_str().expect("prefix");
    assert_eq!(prefix.len(), 14);
    assert!(account.starts_with(prefix), "{prefix} vs {account}");
    let online = trace(Some(served.admin()));
    assert_eq!(online["account"], json!(account), "completed by the server");
}

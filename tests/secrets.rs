//! A distinctive API key sent through the binary must appear nowhere the guard
//! writes: its logs at trace level, the audit log (every decision), the admin
//! API's answers, the metrics, or the answers to the client. Only its keyed hash
//! may.

mod support;

use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::json;

use support::process::{self, config_file, send};

const KEY: &str = "sk-DISTINCT1VE-canary-7f3a9c21e0";
/// The part of the key that no hash, id or random value could contain by chance.
const NEEDLE: &str = "DISTINCT1VE";
const ADMIN_TOKEN: &str = "secrets-test-admin-token-0123456789";

fn admin_get(base: &str, path: &str) -> Request<Body> {
    Request::get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distinctive_key_appears_nowhere_the_guard_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audit = dir.path().join("audit.jsonl");
    let log = dir.path().join("stderr.log");
    let cfg = config_file(&format!(
        r#"
[identity]
secret = "secrets-test-identity-secret-0123456789"
[admin]
token = "{ADMIN_TOKEN}"
[audit]
path = "{}"
all = true
[watermark]
tag = "always"
[[watermark.keys]]
id = "k1"
secret = "secrets-test-watermark-key-0123456789"
[tiers.default]
requests_per_minute = 3
"#,
        audit.display()
    ));
    let mut served = process::Serve::new()
        .config(cfg.path())
        .admin()
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).expect("log file"))
        .start();
    let url = served.url.clone();
    let admin = served.admin().to_owned();

    let mut emitted = String::new();
    // Both dialects, JSON and streamed, the key in either header; the fourth and
    // fifth requests are 429s (three a minute).
    let bodies = [
        (
            "/v1/chat/completions",
            json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "max_tokens": 20, "stream": true, "messages": [{"role": "user", "content": "hello"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 20, "stream": true, "messages": [{"role": "user", "content": "hello"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": []}),
        ),
    ];
    for (i, (path, body)) in bodies.iter().enumerate() {
        let mut req =
            Request::post(format!("{url}{path}")).header("content-type", "application/json");
        req = if i % 2 == 0 {
            req.header("authorization", format!("Bearer {KEY}"))
        } else {
            req.header("x-api-key", KEY)
        };
        let r = send(req.body(Body::from(body.to_string())).expect("request")).await;
        emitted.push_str(&format!(
            "{:?}\n{}\n",
            r.headers,
            String::from_utf8_lossy(&r.body)
        ));
    }
    // A malformed body and a missing key as well.
    let r = send(
        Request::post(format!("{url}/v1/chat/completions"))
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::from("{not json"))
            .expect("request"),
    )
    .await;
    emitted.push_str(&String::from_utf8_lossy(&r.body));

    // Everything the admin API says about it.
    let accounts = send(admin_get(&admin, "/api/accounts")).await;
    emitted.push_str(&accounts.text());
    let ids: Vec<String> = accounts.json()["accounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["account"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !ids.is_empty(),
        "the account is remembered: {}",
        accounts.text()
    );
    for id in &ids {
        emitted.push_str(
            &send(admin_get(&admin, &format!("/api/accounts/{id}")))
                .await
                .text(),
        );
    }
    for path in [
        "/api/status",
        "/api/decisions",
        "/api/clusters",
        "/api/overrides",
        "/api/trace?text=hello%20there",
        "/metrics",
    ] {
        let r = send(admin_get(&admin, path)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        emitted.push_str(&r.text());
    }

    // Stop it gracefully, so the audit log is flushed.
    process::signal(served.child.id(), "-TERM");
    let status = process::exit_within(&mut served.child, Duration::from_secs(20));
    if status.is_none() {
        let _ = served.child.kill();
        let _ = served.child.wait();
    }
    let logs = std::fs::read_to_string(&log).expect("logs");
    let audit_log = std::fs::read_to_string(&audit).expect("audit log");
    assert!(
        logs.contains("TRACE") || logs.contains("trace"),
        "trace-level logs were on"
    );
    assert!(
        audit_log.lines().count() >= 5,
        "every decision audited: {audit_log}"
    );
    for (what, text) in [
        ("the logs", &logs),
        ("the audit log", &audit_log),
        ("the answers and the admin API", &emitted),
    ] {
        assert!(!text.contains(NEEDLE), "the key appears in {what}");
    }
    // The account's hash is what they carry instead.
    assert!(audit_log.contains(&ids[0]));
}

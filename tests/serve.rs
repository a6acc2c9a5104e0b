//! The binary over real sockets: with its demo upstream, and in front of a separate
//! upstream process; both dialects, JSON and streaming.

mod support;

use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::{json, Value};

use support::process::{self, config_file, send, Served};

fn spawn(args: &[&str]) -> Served {
    support::process::serve(args, false)
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn post(url: &str, path: &str, key: Option<&str>, body: Value) -> Reply {
    let mut req = Request::post(format!("{url}{path}")).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let r = send(req.body(Body::from(body.to_string())).expect("request")).await;
    Reply {
        status: r.status,
        body: r.text(),
        headers: r.headers,
    }
}

async fn exercise_both_dialects(url: &str) {
    // OpenAI JSON
    let r = post(
        url,
        "/v1/chat/completions",
        Some("sk-e2e"),
        json!({"model": "m", "max_tokens": 50,
        "messages": [{"role": "user", "content": "Write a haiku"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
            .len()
            > 20
    );
    assert!(v["usage"]["completion_tokens"].as_u64().expect("usage") > 0);
    assert_eq!(r.headers["x-ratelimit-limit-requests"], "5");
    // OpenAI SSE
    let r = post(url, "/v1/chat/completions", Some("sk-e2e"), json!({"model": "m", "max_tokens": 50, "stream": true,
        "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert!(r.body.contains("chat.completion.chunk"));
    assert!(r.body.contains("\"usage\":{\"prompt_tokens\""));
    assert!(r.body.ends_with("data: [DONE]\n\n"));
    // Anthropic JSON
    let r = post(
        url,
        "/v1/messages",
        Some("sk-e2e-a"),
        json!({"model": "m", "max_tokens": 40,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["type"], "message");
    assert!(r
        .headers
        .contains_key("anthropic-ratelimit-requests-remaining"));
    // Anthropic SSE
    let r = post(
        url,
        "/v1/messages",
        Some("sk-e2e-a"),
        json!({"model": "m", "max_tokens": 40, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("event: message_delta"));
    assert!(r.body.contains("event: message_stop"));
    // Limits over the socket: 5 per minute for this key.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            post(
                url,
                "/v1/chat/completions",
                Some("sk-e2e"),
                json!({"model": "m", "max_tokens": 5, "messages": []}),
            )
            .await,
        );
    }
    let last = codes.last().expect("replies");
    assert_eq!(last.status, 429, "{}", last.body);
    assert!(last.headers.contains_key("retry-after"));
    let v: Value = serde_json::from_str(&last.body).expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    // No key.
    let r = post(
        url,
        "/v1/messages",
        None,
        json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("authentication_error"));
}

const CONFIG: &str = r#"
[identity]
secret = "e2e-secret"
[tiers.default]
requests_per_minute = 5
tokens_per_minute = 100000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_its_demo_upstream() {
    let cfg = config_file(CONFIG);
    let server = spawn(&["--config", cfg.path().to_str().expect("path")]);
    exercise_both_dialects(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_in_front_of_a_separate_upstream_process() {
    // The upstream is another process: the demo model served bare.
    let upstream = spawn(&["--passthrough"]);
    let cfg = config_file(CONFIG);
    let guard = spawn(&[
        "--config",
        cfg.path().to_str().expect("path"),
        "--upstream",
        &upstream.url,
    ]);
    exercise_both_dialects(&guard.url).await;
    let r = post(
        &guard.url,
        "/v1/chat/completions",
        Some("sk-other"),
        json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(
        r.headers["x-distill-guard-demo"], "1",
        "upstream headers are forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_502_in_dialect() {
    // Bind and drop a port so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cfg = config_file(CONFIG);
    let upstream = format!("http://127.0.0.1:{port}");
    let guard = spawn(&[
        "--config",
        cfg.path().to_str().expect("path"),
        "--upstream",
        &upstream,
    ]);
    let r = post(
        &guard.url,
        "/v1/messages",
        Some("k"),
        json!({"model": "m", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.status, 502);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
}

#[test]
fn check_config_lists_errors_and_exits_non_zero() {
    let bad = config_file(
        "[identity]\n[tiers.default]\nrequests_per_minute = 0\n[quota]\ncluster_exponent = 3.0\n",
    );
    let out = process::bin()
        .args(["check-config", bad.path().to_str().expect("path")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    // The errors are the command's output: stdout, one `FILE:LINE: error: …` each.
    let err = String::from_utf8_lossy(&out.stdout);
    for path in [
        "identity.secret",
        "tiers.default.requests_per_minute",
        "quota.cluster_exponent",
    ] {
        assert!(err.contains(path), "{path} missing from {err}");
    }
    let good = config_file(CONFIG);
    let out = process::bin()
        .args(["check-config", good.path().to_str().expect("path")])
        .output()
        .expect("run");
    assert!(out.status.success());
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = spawn(&[]);
    process::signal(server.child.id(), "-TERM");
    let mut child = std::mem::replace(
        &mut server.child,
        Command::new("true").spawn().expect("placeholder"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let exit = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("exited after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
}

const TAGGING: &str = r#"
[identity]
secret = "e2e-secret"
[watermark]
tag = "always"
text_mark = true
[[watermark.keys]]
id = "k1"
secret = "a long random secret for the e2e test"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_responses_verify_and_trace_with_the_cli() {
    let cfg = config_file(TAGGING);
    let path = cfg.path().to_str().expect("path").to_owned();
    let server = spawn(&["--config", &path]);
    let r = post(
        &server.url,
        "/v1/chat/completions",
        Some("sk-tagged"),
        json!({"model": "m", "max_tokens": 300,
        "messages": [{"role": "user", "content": "Tell me a story"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let tag = r.headers["x-distill-guard-tag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        v["distill_guard"]["tag"],
        tag.as_str(),
        "the body carries the same tag"
    );
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();

    let out = process::bin()
        .args(["verify", "--config", &path, "--json", &tag])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(fields.to_string().contains("k1"), "{fields}");
    // A tampered tag fails.
    let mut bad = tag.clone();
    bad.pop();
    bad.push(if tag.ends_with('A') { 'B' } else { 'A' });
    let out = process::bin()
        .args(["verify", "--config", &path, &bad])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));

    // A 60-word excerpt of the marked answer traces back to the account's hash prefix.
    let excerpt: Vec<&str> = text.split(' ').skip(20).take(60).collect();
    let leaked = config_file(&excerpt.join(" "));
    let out = process::bin()
        .args([
            "trace",
            "--config",
            &path,
            "--json",
            leaked.path().to_str().expect("path"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(found["method"], "mark");
    assert!(found["account"].as_str().expect("account").len() >= 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_finds_stripped_text_in_a_live_servers_index() {
    let text_cfg = format!("{TAGGING}\n[admin]\ntoken = \"an admin token for the e2e test\"\n");
    let cfg = config_file(&text_cfg);
    let path = cfg.path().to_str().expect("path").to_owned();
    let server = support::process::serve(&["--config", &path], true);
    let admin = server.admin().to_owned();
    assert!(admin.starts_with("http://"), "{admin:?}");

    let r = post(
        &server.url,
        "/v1/messages",
        Some("sk-leaker"),
        json!({"model": "m", "max_tokens": 400,
        "messages": [{"role": "user", "content": "Write an essay"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    let marked = v["content"][0]["text"].as_str().expect("text");
    let stripped = distill_guard::watermark::strip_marks(marked);
    assert!(stripped.len() < marked.len(), "the answer was marked");
    let excerpt: String = stripped
        .split(' ')
        .skip(10)
        .take(120)
        .collect::<Vec<_>>()
        .join(" ");
    let leaked = config_file(&excerpt);
    // Offline, without marks, nothing is found.
    let out = process::bin()
        .args([
            "trace",
            "--config",
            &path,
            "--json",
            leaked.path().to_str().expect("path"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    // The live server's index finds it.
    let out = process::bin()
        .args([
            "trace",
            "--config",
            &path,
            "--json",
            "--server",
            &admin,
            leaked.path().to_str().expect("path"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(found["method"], "index", "{found}");
    assert_eq!(found["account"].as_str().map(str::len), Some(32), "{found}");
    drop(server);
}

#[tokio::test]
async fn metrics_listener_serves_metrics_alone_without_a_token() {
    let cfg = config_file(CONFIG);
    let served = process::Serve::new().config(cfg.path()).metrics().start();
    let metrics = served.metrics().to_owned();
    let r = post(
        &served.url,
        "/v1/chat/completions",
        Some("sk-metrics"),
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = send(Request::get(&metrics).body(Body::empty()).expect("request")).await;
    assert_eq!(m.status, 200, "{}", m.text());
    assert!(
        m.text().contains("distill_guard_decisions_total{action=\"allow\",dialect=\"openai\",status=\"200\",scope=\"none\"} 1"),
        "{}",
        m.text()
    );
    let other = send(
        Request::get(metrics.replace("/metrics", "/api/status"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(other.status, 404);
}

/// A model server behind a compressing front end (nginx's `gzip on`): answers
/// 3,000 output tokens, gzip-compressed when the request accepts it, or always
/// when the client sends `x-mock-compress: always`. Returns its address and the
/// `Accept-Encoding` values it saw.
async fn gzip_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let log = log.clone();
        async move {
            let accept = headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            log.lock().expect("lock").push(accept.clone());
            let always = headers.get("x-mock-compress").is_some();
            let body = json!({"id": "c", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(12_000)}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3000, "total_tokens": 3012}})
            .to_string();
            if always || accept.contains("gzip") {
                let z = support::compress::compress("gzip", body.as_bytes());
                (
                    [("content-type", "application/json"), ("content-encoding", "gzip")],
                    z,
                )
                    .into_response()
            } else {
                ([("content-type", "application/json")], body).into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_encoding_gzip_does_not_bypass_the_token_quota() {
    let (upstream, seen) = gzip_upstream().await;
    let cfg = config_file(CONFIG);
    let guard = spawn(&[
        "--config",
        cfg.path().to_str().expect("path"),
        "--upstream",
        &upstream,
    ]);
    let remaining = |r: &support::process::Reply| -> u64 {
        r.headers["x-ratelimit-remaining-tokens"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("number")
    };
    let body = json!({"model": "m", "max_tokens": 4000,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    for (key, always) in [("sk-gzip-negotiated", false), ("sk-gzip-forced", true)] {
        let mut req = Request::post(format!("{}/v1/chat/completions", guard.url))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .header("accept-encoding", "gzip");
        if always {
            req = req.header("x-mock-compress", "always");
        }
        let r = send(req.body(Body::from(body.clone())).expect("request")).await;
        assert_eq!(r.status, 200);
        let text = match r.headers.get("content-encoding") {
            Some(_) => {
                String::from_utf8(support::compress::decompress("gzip", &r.body)).expect("utf8")
            }
            None => r.text(),
        };
        assert!(text.contains("\"completion_tokens\":3000"), "{key}");
        let models = Request::get(format!("{}/v1/models", guard.url))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .expect("request");
        let after = send(models).await;
        // Charged the reported 3,012 tokens, not the 3-token input estimate (the
        // bucket refills in real time meanwhile: ~1,667 tokens a second).
        let charged = 100_000 - remaining(&after);
        assert!(
            (2_500..=3_012).contains(&charged),
            "{key}: charged {charged}"
        );
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.first().map(String::as_str), Some("identity"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_ends_stalled_streams_and_slow_bodies() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that sends SSE headers and one event, then goes silent.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = format!("http://{}", stalled.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = stalled.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let event = "data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n";
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                    event.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                // Hold the connection open, silent, until the test ends.
                let _ = sock.read(&mut buf).await;
            });
        }
    });
    let cfg = config_file(&format!(
        "{CONFIG}[server]\nstream_idle_timeout = \"1s\"\nrequest_read_timeout = \"1s\"\n"
    ));
    let guard = spawn(&[
        "--config",
        cfg.path().to_str().expect("path"),
        "--upstream",
        &upstream,
    ]);
    let r = post(
        &guard.url,
        "/v1/chat/completions",
        Some("sk-stalled"),
        json!({"model": "m", "stream": true, "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("partial"), "{}", r.body);
    let last = r.body.rsplit("data: ").next().expect("an event");
    let v: Value = serde_json::from_str(last.trim()).expect("the error event");
    assert_eq!(v["error"]["code"], "timeout");

    // A client that sends ten bytes of a hundred-byte body, then nothing.
    let addr = guard.url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sock.write_all(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: sk-slow\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
    )
    .await
    .expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the guard answers within its 1 s deadline; 20 s is a hang.
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = sock.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.windows(12).any(|w| w == b"timeout_error") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"type\":\"timeout_error\""), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_and_the_server_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = config_file(CONFIG);
    let guard = spawn(&["--config", cfg.path().to_str().expect("path")]);
    let addr = guard.url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let huge = "a".repeat(1024 * 1024);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-big\r\nx-padding: {huge}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    // The server may close before reading it all: a write error is an answer too.
    let _ = sock.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "refused: {reply}"
    );
    // The next client is served as usual.
    let r = post(
        &guard.url,
        "/v1/chat/completions",
        Some("sk-after"),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_a_504_in_dialect() {
    use tokio::io::AsyncReadExt;
    // Accepts, reads the request, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = format!("http://{}", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let cfg = config_file(&format!("{CONFIG}[server]\nupstream_timeout = \"1s\"\n"));
    let guard = spawn(&[
        "--config",
        cfg.path().to_str().expect("path"),
        "--upstream",
        &upstream,
    ]);
    for (path, key) in [
        ("/v1/chat/completions", "sk-slow-o"),
        ("/v1/messages", "sk-slow-a"),
    ] {
        let r = post(
            &guard.url,
            path,
            Some(key),
            json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(r.status, 504, "{path}");
        let v: Value = serde_json::from_str(&r.body).expect("json");
        if path == "/v1/messages" {
            assert_eq!(v["error"]["type"], "timeout_error");
        } else {
            assert_eq!(v["error"]["code"], "timeout");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_send_their_headers_too_slowly_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = config_file(&format!(
        "{CONFIG}[server]\nheader_read_timeout = \"1s\"\n[admin]\ntoken = \"a token for the slow client test\"\n"
    ));
    let guard = process::serve(&["--config", cfg.path().to_str().expect("path")], true);
    for url in [guard.url.as_str(), guard.admin()] {
        let addr = url.trim_start_matches("http://").to_owned();
        // Half a request line, then nothing more: the guard closes at its 1 s
        // deadline without an answer; 20 s is a hang.
        let mut sock = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthor")
            .await
            .expect("write");
        let mut reply = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "{url}: a slow client held the connection");
        assert!(
            reply.is_empty(),
            "{url}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    // Clients that send their request at once are served as usual.
    let r = post(
        &guard.url,
        "/v1/chat/completions",
        Some("sk-prompt"),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
}

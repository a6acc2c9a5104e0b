//! Replay runs the same stack as `serve`: same decisions over a socket, malformed
//! lines, and labels that never influence a decision.

use std::io::Cursor;
use std::net::SocketAddr;

use axum::body::Body;
use distill_guard::config::Config;
use distill_guard::proxy::demo::DemoUsage;
use distill_guard::proxy::server::app;
use distill_guard::replay::format::{parse_line, TrafficLine};
use distill_guard::replay::{replay, ReplayOptions, Replayer};
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::ServiceExt;

const T0: u64 = 1_714_000_000_000;

fn config() -> Config {
    Config::from_toml_str(
        r#"
        [identity]
        secret = "replay-test"
        [tiers.default]
        requests_per_minute = 4
        tokens_per_minute = 20000
        [network]
        trusted_proxies = ["127.0.0.0/8"]
        "#,
    )
    .expect("valid")
}

/// A small, varied traffic file: several accounts, both dialects, JSON and SSE,
/// bursts that hit limits, a missing key, a malformed line.
fn traffic() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..60u64 {
        let account = i % 3;
        let anthropic = i % 4 == 0;
        let path = if anthropic {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let auth = if anthropic {
            json!(["x-api-key", format!("sk-{account}")])
        } else {
            json!(["authorization", format!("Bearer sk-{account}")])
        };
        let headers = if i == 17 {
            json!([["user-agent", "curl/8.5.0"]])
        } else {
            json!([auth, ["user-agent", "OpenAI/Python 1.54.3"]])
        };
        let line = json!({
            "ts_ms": T0 + i * 2_500,
            "ip": format!("203.0.113.{}", 10 + account),
            "method": "POST",
            "path": path,
            "headers": headers,
            "body": {"model": "m", "max_tokens": 500 + i * 10, "stream": i % 2 == 0,
                     "messages": [{"role": "user", "content": format!("question {i}")}]},
            "usage": {"input_tokens": 20 + i, "output_tokens": 100 + i * 7},
            "label": {"actor": if account == 0 { "campaign-x".to_owned() } else { format!("user-{account}") }}
        });
        lines.push(line.to_string());
    }
    lines.insert(30, "{\"ts_ms\": oops}".to_owned());
    lines
}

fn run(lines: &[String], strict: bool) -> Result<(String, distill_guard::replay::Summary), String> {
    let input = Cursor::new(lines.join("\n").into_bytes());
    let mut out = Vec::new();
    let summary = replay(
        config(),
        input,
        &mut out,
        &ReplayOptions {
            strict,
            score: true,
            ..ReplayOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((String::from_utf8(out).expect("utf8"), summary))
}

#[test]
fn malformed_lines_are_reported_and_skipped_or_stop_in_strict_mode() {
    let lines = traffic();
    let (out, summary) = run(&lines, false).expect("replay");
    assert_eq!(summary.malformed, 1);
    assert_eq!(out.lines().count(), 60);
    let numbers: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["line"]
                .as_u64()
                .expect("line")
        })
        .collect();
    assert!(
        !numbers.contains(&31),
        "the malformed line 31 has no decision"
    );
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "input order");
    let err = run(&lines, true).expect_err("strict stops");
    assert!(err.starts_with("line 31:"), "{err}");
    // The budget of 4 per minute was hit, and the keyless line got 401.
    assert!(summary.by_status.get(&429).copied().unwrap_or(0) > 0);
    assert_eq!(summary.by_status.get(&401).copied(), Some(1));
}

#[test]
fn labels_never_influence_decisions() {
    let lines = traffic();
    let (a, _) = run(&lines, false).expect("replay");
    // Rotate every label to another line, and drop some.
    let mut shuffled = Vec::new();
    let labels: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["label"].clone())
        .collect();
    let mut k = 7;
    for l in &lines {
        match serde_json::from_str::<Value>(l) {
            Ok(mut v) => {
                k = (k + 13) % labels.len();
                if k % 5 == 0 {
                    v.as_object_mut().expect("object").remove("label");
                } else {
                    v["label"] = labels[k].clone();
                }
                shuffled.push(v.to_string());
            }
            Err(_) => shuffled.push(l.clone()),
        }
    }
    assert_ne!(lines, shuffled);
    let (b, _) = run(&shuffled, false).expect("replay");
    assert_eq!(a, b, "identical decisions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_matches_the_same_requests_sent_over_a_socket() {
    let parsed: Vec<(u64, TrafficLine)> = traffic()
        .iter()
        .enumerate()
        .filter_map(|(i, l)| parse_line(i as u64 + 1, l).ok().map(|t| (i as u64 + 1, t)))
        .collect();

    // The replay side.
    let replayer = Replayer::new(config()).expect("config");
    let mut expected = Vec::new();
    for (n, line) in &parsed {
        let (head, d) = replayer.decide(*n, line).await.expect("valid line");
        expected.push((
            d.status,
            head.headers()
                .get("x-ratelimit-remaining-requests")
                .cloned(),
            head.headers().get("x-ratelimit-remaining-tokens").cloned(),
        ));
    }

    // The socket side: the same stack in a real server, driven by the same clock.
    let socket = Replayer::new(config()).expect("config");
    let service = socket.service().clone();
    let usage_from_header = tower::service_fn(move |mut req: Request<Body>| {
        let svc = service.clone();
        async move {
            if let Some(v) = req
                .headers()
                .get("x-test-usage")
                .and_then(|v| v.to_str().ok())
            {
                let mut it = v.split(',').filter_map(|x| x.parse::<u64>().ok());
                if let (Some(i), Some(o)) = (it.next(), it.next()) {
                    req.extensions_mut().insert(DemoUsage {
                        input_tokens: i,
                        output_tokens: o,
                    });
                }
            }
            svc.oneshot(req).await
        }
    });
    let router = app(tower::util::BoxCloneSyncService::new(usage_from_header));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let mut got = Vec::new();
    for (n, line) in &parsed {
        let mut req = distill_guard::replay::run::request_of(*n, line).expect("valid");
        let uri = format!("http://{addr}{}", req.uri());
        *req.uri_mut() = uri.parse().expect("uri");
        req.headers_mut().insert(
            "x-forwarded-for",
            line.ip.to_string().parse().expect("value"),
        );
        req.headers_mut().insert(
            "x-test-usage",
            format!("{},{}", line.usage.input_tokens, line.usage.output_tokens)
                .parse()
                .expect("value"),
        );
        socket.clock().set_ms(line.ts_ms);
        let res = client.request(req).await.expect("response");
        let status = res.status().as_u16();
        let r = res.headers().get("x-ratelimit-remaining-requests").cloned();
        let t = res.headers().get("x-ratelimit-remaining-tokens").cloned();
        let _ = res.into_body().collect().await;
        got.push((status, r, t));
    }
    assert_eq!(expected.len(), got.len());
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(e, g, "line {} differs", parsed[i].0);
    }
    assert!(
        expected.iter().any(|e| e.0 == 429),
        "the file exercises limits"
    );
}

/// Replay knows the model groups: each decision line names its request's
/// group and whether the group's limit refused it; the summary counts them.
#[test]
fn replay_reports_model_groups() {
    let cfg = Config::from_toml_str(
        r#"
        [identity]
        secret = "replay-test"
        [tiers.default]
        requests_per_minute = 50
        [tiers.default.models."gpt-5*"]
        requests_per_minute = 2
        "#,
    )
    .expect("valid");
    let lines: Vec<String> = (0..6u64)
        .map(|i| {
            json!({
                "ts_ms": T0 + i,
                "ip": "203.0.113.9",
                "method": "POST",
                "path": "/v1/chat/completions",
                "headers": [["authorization", "Bearer sk-groups"]],
                "body": {"model": if i % 2 == 0 { "gpt-5" } else { "o3" }, "max_tokens": 10,
                         "messages": [{"role": "user", "content": "hi"}]},
            })
            .to_string()
        })
        .collect();
    let mut out = Vec::new();
    let summary = replay(
        cfg,
        Cursor::new(lines.join("\n").into_bytes()),
        &mut out,
        &ReplayOptions::default(),
    )
    .expect("replay");
    let decisions: Vec<Value> = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let got: Vec<(u64, Option<&str>, bool)> = decisions
        .iter()
        .map(|d| {
            (
                d["status"].as_u64().expect("status"),
                d["model_group"].as_str(),
                d["limited_in_group"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (200, Some("gpt-5*"), false),
            (200, None, false),
            (200, Some("gpt-5*"), false),
            (200, None, false),
            (429, Some("gpt-5*"), true),
            (200, None, false),
        ]
    );
    let g = &summary.by_model_group["gpt-5*"];
    assert_eq!((g.requests, g.denied, g.denied_by_group), (3, 1, 1));
    assert!(summary.to_string().contains("requests by model group"));
}

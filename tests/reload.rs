//! Hot reload: under concurrent load no request is dropped and no bucket state is
//! lost; a bad config is rejected and the old one keeps serving; file changes and
//! SIGHUP reload a running `serve`.

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use distill_guard::clock::ManualClock;
use distill_guard::config::Config;
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::server::{stack, Backend, HttpService};
use distill_guard::reload::{ReloadError, Reloader, Trigger};
use distill_guard::telemetry::Telemetry;
use distill_guard::Guard;
use http::Request;
use http_body_util::BodyExt;
use serde_json::json;
use support::process::serve_config as serve;
use support::process::{self, Served};
use support::wait;
use tower::ServiceExt;

const T0: u64 = 1_714_000_000_000;

fn config_text(rpm: u64, extra: &str) -> String {
    format!(
        "[identity]\nsecret = \"reload-secret\"\n[tiers.default]\nrequests_per_minute = {rpm}\n{extra}\n"
    )
}

fn chat(key: &str) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(
            json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ))
        .expect("request")
}

async fn status(svc: &HttpService, key: &str) -> u16 {
    let res = svc.clone().oneshot(chat(key)).await.expect("infallible");
    let s = res.status().as_u16();
    // Read the body to the end so the reservation settles.
    res.into_body().collect().await.expect("body");
    s
}

fn guard_with_clock(text: &str) -> (Guard, Arc<Telemetry>, HttpService) {
    let cfg = Config::from_toml_str(text).expect("valid");
    let telemetry = Arc::new(Telemetry::new(100));
    let guard = Guard::builder(cfg)
        .clock(Arc::new(ManualClock::new(T0)))
        .sink(telemetry.clone())
        .build()
        .expect("valid");
    let svc = stack(Some(&guard), Backend::Demo(DemoModel::new()).into_service());
    (guard, telemetry, svc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_bucket_state_and_drops_no_request() {
    // The clock is frozen: no bucket refills, so exactly `rpm` requests per
    // account may pass however often the config is swapped meanwhile.
    let (guard, telemetry, svc) = guard_with_clock(&config_text(100, ""));
    let reloader = Reloader::new(guard.clone(), telemetry.clone(), None);
    let variants = [
        config_text(100, "[quota]\ndefault_max_output_tokens = 2048"),
        config_text(100, "[tiers.extra]\nrequests_per_minute = 7"),
    ];
    let mut tasks = Vec::new();
    for i in 0..600 {
        let svc = svc.clone();
        let key = format!("sk-load-{}", i % 3);
        tasks.push(tokio::spawn(async move { status(&svc, &key).await }));
    }
    let reloads = {
        let reloader = reloader.clone();
        tokio::spawn(async move {
            for n in 0..60 {
                reloader
                    .reload_text(&variants[n % 2], Trigger::Manual)
                    .await
                    .expect("valid reload");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.expect("request task") {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    reloads.await.expect("reload task");
    assert_eq!(ok + limited, 600, "every request answered");
    assert_eq!(ok, 300, "3 accounts × 100: no bucket was reset by a reload");
    let st = reloader.status();
    assert_eq!(st.reloads_ok, 60);
    assert_eq!(st.generation, 61);
    // After the storm, the buckets are still full.
    assert_eq!(status(&svc, "sk-load-0").await, 429);
    let m = telemetry.render_metrics(0);
    assert!(
        m.contains("distill_guard_config_reloads_total{result=\"ok\"} 61"),
        "{m}"
    );
    assert!(m.contains("distill_guard_config_generation 61"), "{m}");
}

#[tokio::test]
async fn a_bad_config_is_rejected_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("guard.toml");
    std::fs::write(&path, config_text(2, "")).expect("write");
    let (guard, telemetry, svc) = guard_with_clock(&config_text(2, ""));
    let reloader = Reloader::new(guard.clone(), telemetry.clone(), Some(path.clone()));
    assert_eq!(status(&svc, "sk-a").await, 200);
    assert_eq!(status(&svc, "sk-a").await, 200);
    assert_eq!(status(&svc, "sk-a").await, 429);

    // Two problems at once, both reported; nothing changes.
    std::fs::write(&path, config_text(0, "[quota]\ncluster_exponent = 3.0")).expect("write");
    match reloader.reload(Trigger::Api).await {
        Err(ReloadError::Invalid(e)) => {
            let paths: Vec<_> = e.errors.iter().map(|f| f.path.as_str()).collect();
            assert!(
                paths.contains(&"tiers.default.requests_per_minute"),
                "{paths:?}"
            );
            assert!(paths.contains(&"quota.cluster_exponent"), "{paths:?}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let st = reloader.status();
    assert_eq!(st.generation, 1);
    assert_eq!(st.reloads_failed, 1);
    let last = st.last_attempt.expect("attempt");
    assert!(!last.ok);
    assert_eq!(last.errors.len(), 2);
    assert_eq!(guard.shared().settings().config.quota.cluster_exponent, 0.5);
    assert_eq!(
        status(&svc, "sk-a").await,
        429,
        "old limits and old state still apply"
    );
    assert_eq!(status(&svc, "sk-b").await, 200);

    // Unparseable TOML is rejected the same way.
    std::fs::write(&path, "[identity\nsecret = ").expect("write");
    assert!(reloader.reload(Trigger::Signal).await.is_err());

    // A fixed file is accepted; bucket state carries over.
    std::fs::write(&path, config_text(3, "")).expect("write");
    reloader.reload(Trigger::FileChange).await.expect("valid");
    assert_eq!(reloader.status().generation, 2);
    assert_eq!(status(&svc, "sk-a").await, 200, "one more of three");
    assert_eq!(status(&svc, "sk-a").await, 429);
    let m = telemetry.render_metrics(0);
    assert!(
        m.contains("distill_guard_config_reloads_total{result=\"error\"} 2"),
        "{m}"
    );

    // Without a file there is nothing to reload.
    let (g2, t2, _) = guard_with_clock(&config_text(2, ""));
    assert!(matches!(
        Reloader::new(g2, t2, None).reload(Trigger::Api).await,
        Err(ReloadError::NoSource)
    ));
}

async fn admin_status(admin: &str, token: &str) -> serde_json::Value {
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = Request::get(format!("{admin}/api/status"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("no timeout")
        .expect("response");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

/// Waits until the served config's status satisfies `cond`, and returns it.
async fn wait_status(
    s: &Served,
    token: &str,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait::until_some(what, || async {
        let st = admin_status(s.admin(), token).await;
        cond(&st).then_some(st)
    })
    .await
}

/// Waits until the served config reaches `generation`.
async fn wait_generation(s: &Served, token: &str, generation: u64) -> serde_json::Value {
    wait_status(s, token, &format!("config generation {generation}"), |st| {
        st["config"]["generation"] == generation
    })
    .await
}

#[tokio::test]
async fn serve_reloads_on_file_change_and_on_sighup() {
    let token = "reload test admin token";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("guard.toml");
    let admin = format!("[admin]\ntoken = \"{token}\"\n");
    std::fs::write(&path, config_text(5, &admin)).expect("write");
    let s = serve(&path);
    let st = admin_status(s.admin(), token).await;
    assert_eq!(st["config"]["generation"], 1);

    // A change on disk is picked up by the poller (every 2 s).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    writeln!(f, "[tiers.extra]\nrequests_per_minute = 9").expect("append");
    drop(f);
    let st = wait_generation(&s, token, 2).await;
    assert_eq!(st["config"]["last_reload"]["trigger"], "file_change");
    assert!(st["config"]["tiers"].to_string().contains("extra"));

    // SIGHUP reloads even an unchanged file.
    process::signal(s.child.id(), "-HUP");
    let st = wait_generation(&s, token, 3).await;
    assert_eq!(st["config"]["last_reload"]["trigger"], "signal");

    // A broken file is rejected and reported; the server keeps its config.
    std::fs::write(&path, config_text(0, &admin)).expect("write");
    let st = wait_status(&s, token, "the broken file was tried", |st| {
        st["config"]["reloads_failed"] == 1
    })
    .await;
    assert_eq!(st["config"]["generation"], 3);
    assert_eq!(st["config"]["last_reload"]["ok"], false);
    assert!(st["config"]["last_reload"]["errors"][0]
        .as_str()
        .expect("message")
        .contains("tiers.default.requests_per_minute"));
}

#[test]
fn serve_without_an_admin_token_keeps_the_admin_listener_disabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("guard.toml");
    std::fs::write(&path, config_text(5, "")).expect("write");
    let mut served = process::Serve::new()
        .config(&path)
        .admin()
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .start();
    assert_eq!(
        served.admin, None,
        "the binary said the admin listener is disabled"
    );
    let _ = served.child.kill();
    let mut log = String::new();
    served
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read the log");
    assert!(log.contains("admin listener disabled"), "{log}");
}

#[tokio::test]
async fn serve_writes_the_audit_log_and_flushes_it_on_shutdown() {
    const RAW: &str = "sk-audit-RAW-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let path = dir.path().join("guard.toml");
    let extra = format!(
        "[admin]\ntoken = \"audit test admin token\"\n[audit]\npath = \"{}\"\n",
        audit.display()
    );
    std::fs::write(&path, config_text(1, &extra)).expect("write");
    let mut s = serve(&path);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let req = Request::post(format!("{}/v1/chat/completions", s.url))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {RAW}"))
            .header("x-request-id", format!("audit-{i}"))
            .body(Body::from(
                json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
                    .to_string(),
            ))
            .expect("request");
        let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
            .await
            .expect("no timeout")
            .expect("response");
        statuses.push(res.status().as_u16());
        res.into_body().collect().await.expect("body");
    }
    assert_eq!(statuses, [200, 429, 429]);
    // SIGTERM: graceful shutdown drains the audit queue before exiting.
    process::signal(s.child.id(), "-TERM");
    let exit = tokio::task::spawn_blocking(move || {
        let status = s.child.wait();
        (s, status)
    })
    .await
    .expect("wait");
    assert!(exit.1.expect("exit status").success());
    let text = std::fs::read_to_string(&audit).expect("audit file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "only the two refusals are notable:\n{text}");
    assert_eq!(lines[0]["request_id"], "audit-1");
    assert_eq!(lines[1]["status"], 429);
    assert_eq!(lines[1]["limited_by"], "account");
    assert!(
        !text.contains(RAW) && !text.contains("RAW-0123"),
        "no raw key"
    );
}

//! The admin API in process: authentication, metrics format, explanations by
//! request id, overrides honoured by the enforce stage, account inspection, engine
//! hooks, and raw API keys never leaking into logs, metrics, audit lines or API
//! answers.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::Router;
use distill_guard::admin::{
    self, AccountView, AdminHooks, ClusterInspector, ClusterView, LinkEvidence, SizeCount,
    TopClusters, TraceHit, TraceIndex,
};
use distill_guard::clock::ManualClock;
use distill_guard::config::{Config, Limit, TierConfig};
use distill_guard::extensions::{AccountId, Action, Cluster, ClusterId, Decision, Reason, Verdict};
use distill_guard::features::{Family, FeatureKind};
use distill_guard::proxy::demo::DemoModel;
use distill_guard::proxy::server::{app, stack, Backend};
use distill_guard::request::BoxError;
use distill_guard::telemetry::{Telemetry, DEFAULT_RECENT_DECISIONS};
use distill_guard::Guard;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test admin token, long enough";
const T0: u64 = 1_714_000_000_000;

struct Env {
    guard: Guard,
    telemetry: Arc<Telemetry>,
    clock: ManualClock,
    proxy: Router,
    admin: Router,
}

fn env_with(edit: impl FnOnce(&mut Config), hooks: AdminHooks) -> Env {
    let mut cfg = Config::with_secret("test-secret");
    cfg.tiers.insert(
        "default".into(),
        TierConfig {
            requests_per_minute: Limit::Count(5),
            ..TierConfig::default()
        },
    );
    cfg.tiers.insert(
        "gold".into(),
        TierConfig {
            requests_per_minute: Limit::Count(50),
            ..TierConfig::default()
        },
    );
    edit(&mut cfg);
    let clock = ManualClock::new(T0);
    let telemetry = Arc::new(Telemetry::new(DEFAULT_RECENT_DECISIONS));
    let guard = Guard::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .sink(telemetry.clone())
        .build()
        .expect("valid");
    let proxy = app(stack(
        Some(&guard),
        Backend::Demo(DemoModel::new()).into_service(),
    ));
    let admin = admin::router(&guard, &telemetry, TOKEN, None, hooks);
    Env {
        guard,
        telemetry,
        clock,
        proxy,
        admin,
    }
}

impl Env {
    fn clock_now(&self) -> u64 {
        use distill_guard::clock::Clock;
        self.clock.now_ms()
    }
}

fn env() -> Env {
    env_with(|_| {}, AdminHooks::default())
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
    decision: Option<Decision>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn call(router: &Router, req: Request<Body>) -> Reply {
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let decision = res.extensions().get::<Decision>().cloned();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        decision,
    }
}

fn chat_req(key: &str, request_id: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"));
    if let Some(id) = request_id {
        b = b.header("x-request-id", id);
    }
    b.body(Body::from(
        json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]})
            .to_string(),
    ))
    .expect("request")
}

async fn chat(e: &Env, key: &str, request_id: Option<&str>) -> Reply {
    call(&e.proxy, chat_req(key, request_id)).await
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn post(path: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).expect("request")
}

async fn admin_get(e: &Env, path: &str) -> Reply {
    call(&e.admin, get(path, Some(TOKEN))).await
}

async fn account_of(e: &Env, key: &str) -> AccountId {
    chat(e, key, None).await.decision.expect("decision").account
}

#[tokio::test]
async fn admin_endpoints_refuse_a_missing_or_wrong_token() {
    let e = env();
    let endpoints: [(&str, bool); 11] = [
        ("/metrics", false),
        ("/api/status", false),
        ("/api/accounts", false),
        ("/api/accounts/00112233445566778899aabbccddeeff", false),
        ("/api/clusters", false),
        ("/api/clusters/c_00112233445566778899aabbccddeeff", false),
        ("/api/decisions", false),
        ("/api/decisions/some-id", false),
        ("/api/overrides", true),
        ("/api/reload", true),
        ("/api/trace?text=hello", false),
    ];
    for (path, is_post) in endpoints {
        for token in [None, Some("wrong token, long enough too"), Some("")] {
            let req = if is_post {
                post(path, token, json!({}))
            } else {
                get(path, token)
            };
            let r = call(&e.admin, req).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            assert!(r.headers.contains_key("www-authenticate"), "{path}");
            assert!(r.json()["error"].is_string());
        }
    }
    // Basic auth with the right secret is still refused.
    let r = call(
        &e.admin,
        Request::get("/api/status")
            .header("authorization", format!("Basic {TOKEN}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(admin_get(&e, "/api/status").await.status, StatusCode::OK);
    assert_eq!(admin_get(&e, "/metrics").await.status, StatusCode::OK);
    // The dashboard page itself is static and carries no data.
    let page = call(&e.admin, get("/", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("<canvas id=\"chart\""));
    assert!(!page.text.contains(TOKEN));
    let refused = e.telemetry.render_metrics(0);
    assert!(
        refused.contains("distill_guard_admin_unauthorized_total 34"),
        "{refused}"
    );
}

#[test]
fn admin_is_disabled_without_a_token() {
    let t = Arc::new(Telemetry::new(10));
    let guard = Guard::from_config(Config::with_secret("s")).expect("valid");
    assert!(admin::router_from_config(&guard, &t, None, AdminHooks::default()).is_none());
    let mut cfg = Config::with_secret("s");
    cfg.admin.token = Some(TOKEN.into());
    let guard = Guard::from_config(cfg).expect("valid");
    assert!(admin::router_from_config(&guard, &t, None, AdminHooks::default()).is_some());
}

/// A strict reading of the Prometheus text exposition format (0.0.4).
fn check_prometheus_text(text: &str) -> usize {
    fn is_name(s: &str) -> bool {
        let mut c = s.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    }
    fn is_value(s: &str) -> bool {
        s.parse::<f64>().is_ok() || matches!(s, "+Inf" | "-Inf" | "NaN")
    }
    let mut samples = 0;
    let mut typed = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().expect("kind");
            let name = parts
                .next()
                .unwrap_or_else(|| panic!("{at}: no metric name"));
            assert!(is_name(name), "{at}: bad name");
            let tail = parts.next().unwrap_or_else(|| panic!("{at}: empty"));
            match kind {
                "HELP" => assert!(!tail.is_empty(), "{at}"),
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                        "{at}: bad type"
                    );
                    assert!(
                        typed.insert(name.to_owned(), tail.to_owned()).is_none(),
                        "{at}: TYPE twice"
                    );
                }
                _ => panic!("{at}: unknown comment"),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "{at}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{at}: no value"));
        assert!(is_value(value), "{at}: bad value");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{at}: unclosed labels"));
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("{at}: bad label"));
                    assert!(is_name(k), "{at}: bad label name {k}");
                    assert!(
                        !v.trim_end_matches('"').contains('"'),
                        "{at}: unescaped quote"
                    );
                }
                assert!(labels.ends_with('"'), "{at}");
                name
            }
            None => series,
        };
        assert!(is_name(name), "{at}: bad metric name");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "{at}: sample before its TYPE line"
        );
        samples += 1;
    }
    samples
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let e = env();
    for i in 0..7 {
        chat(&e, "sk-metrics", Some(&format!("m-{i}"))).await;
    }
    let r = admin_get(&e, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain; version=0.0.4"));
    let samples = check_prometheus_text(&r.text);
    assert!(samples > 20, "{}", r.text);
    for want in [
        "distill_guard_decisions_total{action=\"allow\",dialect=\"openai\",status=\"200\",scope=\"none\"} 5",
        "distill_guard_decisions_total{action=\"allow\",dialect=\"openai\",status=\"429\",scope=\"account\"} 2",
        "# TYPE distill_guard_store_latency_seconds histogram",
        "# TYPE distill_guard_reconciliation_error_tokens histogram",
        "distill_guard_reconciliation_error_tokens_count 5",
        "distill_guard_suspicion_count 7",
        "distill_guard_store_tracked_subjects 1",
    ] {
        assert!(r.text.contains(want), "missing {want} in\n{}", r.text);
    }
}

#[tokio::test]
async fn past_decisions_are_explained_by_request_id() {
    let e = env();
    let mut generated = Vec::new();
    for _ in 0..5 {
        let r = chat(&e, "sk-explain", None).await;
        assert_eq!(r.status, 200);
        let id = r.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(
            r.decision.as_ref().and_then(|d| d.request_id.as_deref()),
            Some(id.as_str())
        );
        generated.push(id);
    }
    let r = chat(&e, "sk-explain", Some("client-chosen-id-1")).await;
    assert_eq!(r.status, 429);
    let x = admin_get(&e, "/api/decisions/client-chosen-id-1").await;
    assert_eq!(x.status, StatusCode::OK, "{}", x.text);
    let v = x.json();
    assert_eq!(v["decision"]["status"], 429);
    assert_eq!(v["decision"]["limited_by"], "account");
    assert_eq!(v["decision"]["request_id"], "client-chosen-id-1");
    assert!(
        v["explanation"]
            .as_str()
            .expect("text")
            .starts_with("Refused with 429"),
        "{v}"
    );
    let first = admin_get(&e, &format!("/api/decisions/{}", generated[0]))
        .await
        .json();
    assert_eq!(first["decision"]["status"], 200);
    assert_eq!(
        first["explanation"]
            .as_str()
            .map(|s| s.starts_with("Admitted")),
        Some(true)
    );
    assert_eq!(
        admin_get(&e, "/api/decisions/never-seen").await.status,
        StatusCode::NOT_FOUND
    );
    let latest = admin_get(&e, "/api/decisions?limit=2").await.json();
    assert_eq!(latest["decisions"].as_array().map(Vec::len), Some(2));
    assert_eq!(latest["decisions"][0]["request_id"], "client-chosen-id-1");
}

#[tokio::test]
async fn overrides_are_honoured_by_the_enforce_stage() {
    let e = env_with(|c| c.guard.shadow = true, AdminHooks::default());
    let blocked = account_of(&e, "sk-bad").await;
    let r = call(
        &e.admin,
        post(
            "/api/overrides",
            Some(TOKEN),
            json!({"account": blocked.to_string(), "action": "block", "note": "T-42"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Blocked even in shadow mode, in the path's dialect.
    let r = chat(&e, "sk-bad", None).await;
    assert_eq!(r.status, 403);
    let d = r.decision.expect("decision");
    assert_eq!(d.action, Action::Block);
    assert_eq!(&*d.reasons[0].signal, "operator_blocklist");

    // Allowlisted: a host verdict of `block` and a cluster are ignored.
    let e = env();
    let good = account_of(&e, "sk-good").await;
    let r = call(
        &e.admin,
        post(
            "/api/overrides",
            Some(TOKEN),
            json!({"account": good.to_string(), "action": "allow"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut req = chat_req("sk-good", None);
    req.extensions_mut().insert(Verdict {
        action: Action::Block,
        reasons: vec![Reason {
            signal: "x".into(),
            weight: 1.0,
        }],
    });
    req.extensions_mut().insert(Cluster {
        id: ClusterId::from_name("ring"),
        size: 40,
    });
    let r = call(&e.proxy, req).await;
    assert_eq!(r.status, 200);
    let d = r.decision.expect("decision");
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.cluster.size, 1);

    // Pinned tier and unlink.
    let other = account_of(&e, "sk-other").await;
    let pin = json!({"account": other.to_string(), "action": "pin_tier", "tier": "gold"});
    assert_eq!(
        call(&e.admin, post("/api/overrides", Some(TOKEN), pin))
            .await
            .status,
        StatusCode::OK
    );
    let unlink = json!({"account": other.to_string(), "action": "unlink"});
    assert_eq!(
        call(&e.admin, post("/api/overrides", Some(TOKEN), unlink))
            .await
            .status,
        StatusCode::OK
    );
    let mut req = chat_req("sk-other", None);
    req.extensions_mut().insert(Cluster {
        id: ClusterId::from_name("ring"),
        size: 40,
    });
    let d = call(&e.proxy, req).await.decision.expect("decision");
    assert_eq!(&*d.tier, "gold");
    assert_eq!(d.cluster, Cluster::singleton(other));

    // Bad requests are refused with a reason.
    for body in [
        json!({"account": "nothex", "action": "block"}),
        json!({"account": other.to_string(), "action": "pin_tier", "tier": "platinum"}),
        json!({"account": other.to_string(), "action": "pin_tier"}),
        json!({"account": other.to_string(), "action": "explode"}),
    ] {
        let r = call(&e.admin, post("/api/overrides", Some(TOKEN), body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()["error"].is_string());
    }
    let list = admin_get(&e, "/api/overrides").await.json();
    assert_eq!(list["overrides"].as_array().map(Vec::len), Some(2));
    // Clearing restores normal treatment.
    let clear = json!({"account": other.to_string(), "action": "clear"});
    call(&e.admin, post("/api/overrides", Some(TOKEN), clear)).await;
    let d = chat(&e, "sk-other", None).await.decision.expect("decision");
    assert_eq!(&*d.tier, "default");
}

#[tokio::test]
async fn an_account_shows_its_buckets_and_recent_decisions() {
    let e = env();
    let id = account_of(&e, "sk-inspect").await;
    chat(&e, "sk-inspect", None).await;
    let v = admin_get(&e, &format!("/api/accounts/{id}")).await.json();
    assert_eq!(v["account"], id.to_string());
    assert_eq!(v["tier"], "default");
    let rpm = &v["buckets"]["account"]["requests_per_minute"];
    assert_eq!(rpm["limit"], 5.0);
    assert_eq!(rpm["remaining"], 3.0);
    assert_eq!(v["buckets"]["account"]["requests_per_day"]["used"], 2.0);
    assert_eq!(v["recent_decisions"].as_array().map(Vec::len), Some(2));
    // The guard's own engine tracks it, alone, with its two requests.
    assert_eq!(v["cluster_engine"]["requests"], 2);
    assert_eq!(v["cluster_engine"]["cluster"]["size"], 1);
    assert_eq!(v["cluster"]["id"], ClusterId::of_account(id).to_string());
    assert_eq!(
        admin_get(&e, "/api/accounts/00112233445566778899aabbccddeeff")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin_get(&e, "/api/accounts/xyz").await.status,
        StatusCode::BAD_REQUEST
    );
    let top = admin_get(&e, "/api/accounts").await.json();
    assert_eq!(top["accounts"][0]["account"], id.to_string());
    assert_eq!(top["accounts"][0]["requests"], 2);
    let status = admin_get(&e, "/api/status").await.json();
    assert_eq!(status["decisions"]["totals"]["allow"], 2);
    assert_eq!(status["config"]["generation"], 1);
    assert_eq!(status["engines"]["cluster"], true);
    assert!(
        !status.to_string().contains("test-secret"),
        "no secrets in status"
    );
}

struct FakeEngine {
    unlinked: Mutex<Vec<AccountId>>,
}

fn fake_cluster() -> ClusterView {
    ClusterView {
        id: ClusterId::from_name("ring"),
        size: 40,
        suspicion: 0.9,
        members: vec![AccountId([7; 16])],
        links: 39,
        evidence: vec![LinkEvidence {
            family: Family::Template,
            kind: FeatureKind::SystemPrompt,
            feature: "system_prompt:9f3a0c11".into(),
            accounts: 40,
            links: 39,
            weight: 3.2,
        }],
        evidence_by_kind: vec![],
        top_signals: vec![Reason {
            signal: "template_reuse".into(),
            weight: 0.6,
        }],
    }
}

impl ClusterInspector for FakeEngine {
    fn account(&self, account: &AccountId) -> Option<AccountView> {
        (*account == AccountId([7; 16])).then(|| AccountView {
            account: *account,
            suspicion: 0.8,
            cluster: fake_cluster(),
            top_signals: vec![],
            requests: 3,
            held_until_ms: None,
            tie: 1.0,
            bears_cluster: true,
        })
    }
    fn cluster(&self, id: &ClusterId) -> Option<ClusterView> {
        (*id == ClusterId::from_name("ring")).then(fake_cluster)
    }
    fn top_clusters(&self, _n: usize) -> TopClusters {
        TopClusters {
            largest: vec![fake_cluster()],
            most_suspicious: vec![fake_cluster()],
        }
    }
    fn unlink(&self, account: &AccountId) -> Result<bool, BoxError> {
        self.unlinked.lock().expect("lock").push(*account);
        Ok(true)
    }
    fn cluster_sizes(&self) -> Vec<SizeCount> {
        vec![
            SizeCount {
                size: 40,
                clusters: 1,
            },
            SizeCount {
                size: 1,
                clusters: 2,
            },
        ]
    }
}

struct FakeIndex;

impl TraceIndex for FakeIndex {
    fn trace(&self, text: &str, _limit: usize) -> Vec<TraceHit> {
        vec![TraceHit {
            score: 0.97,
            request_id: Some("r-1".into()),
            account: None,
            cluster: Some(ClusterId::from_name("ring")),
            at_ms: Some(T0),
            detail: json!({"len": text.len()}),
        }]
    }
}

#[tokio::test]
async fn engines_plug_in_through_hooks() {
    let plain = env();
    // Without hooks the guard's own engines answer: its watermark index (empty:
    // nothing was tagged) and its cluster engine.
    let t = admin_get(&plain, "/api/trace?text=abc").await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.json()["hits"], json!([]));
    // Without a hook the guard's own engine answers (no clusters yet).
    let own = admin_get(&plain, "/api/clusters").await.json();
    assert_eq!(own["largest"], json!([]), "{own}");
    assert_eq!(own["most_suspicious"], json!([]));

    let engine = Arc::new(FakeEngine {
        unlinked: Mutex::new(Vec::new()),
    });
    let hooks = AdminHooks {
        cluster: Some(engine.clone()),
        trace: Some(Arc::new(FakeIndex)),
    };
    let e = env_with(|_| {}, hooks);
    let c = admin_get(&e, "/api/clusters").await.json();
    assert_eq!(c["largest"][0]["evidence"][0]["family"], "template");
    assert_eq!(c["largest"][0]["evidence"][0]["kind"], "system_prompt");
    let one = admin_get(
        &e,
        &format!("/api/clusters/{}", ClusterId::from_name("ring")),
    )
    .await;
    assert_eq!(one.json()["size"], 40);
    let a = admin_get(&e, &format!("/api/accounts/{}", AccountId([7; 16])))
        .await
        .json();
    assert_eq!(a["cluster_engine"]["cluster"]["size"], 40);
    assert_eq!(a["cluster"]["size"], 40);
    let r = call(
        &e.admin,
        post(
            "/api/overrides",
            Some(TOKEN),
            json!({"account": AccountId([7; 16]).to_string(), "action": "unlink"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        *engine.unlinked.lock().expect("lock"),
        vec![AccountId([7; 16])]
    );
    let t = admin_get(&e, "/api/trace?text=some%20harvested%20text")
        .await
        .json();
    assert_eq!(t["hits"][0]["detail"]["len"], 19);
    assert_eq!(
        admin_get(&e, "/api/trace").await.status,
        StatusCode::BAD_REQUEST
    );
    let m = admin_get(&e, "/metrics").await.text;
    assert!(m.contains("distill_guard_clusters{size=\"1\"} 2"), "{m}");
    assert!(
        m.contains("distill_guard_clusters{size=\"10-99\"} 1"),
        "{m}"
    );
}

/// Collects everything `tracing` emits on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn raw_api_keys_never_appear_in_logs_metrics_audit_or_answers() {
    const RAW: &str = "sk-live-RAWKEY-0123456789abcdef";
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // Global, not thread-local: tracing caches per-callsite interest
    // process-wide, and the other tests of this binary run on other threads.
    // They log into the same buffer, which only makes the check below stricter.
    tracing::subscriber::set_global_default(subscriber).expect("only this test sets a subscriber");

    let dir = tempfile::tempdir().expect("tempdir");
    let audit_path = dir.path().join("audit.jsonl");
    let e = env_with(
        |c| {
            c.audit.path = Some(audit_path.to_string_lossy().into_owned());
            c.audit.all = true;
        },
        AdminHooks::default(),
    );
    let cfg = e.guard.shared().settings().config.audit.clone();
    let (sink, writer_task) =
        distill_guard::audit::start(&cfg, e.telemetry.metrics().audit_counters())
            .await
            .expect("open")
            .expect("enabled");
    e.telemetry.set_audit(Some(sink));

    let mut bodies = Vec::new();
    for i in 0..8 {
        let r = chat(&e, RAW, Some(&format!("leak-{i}"))).await;
        bodies.push(r.text);
    }
    let mut anthropic = Request::post("/v1/messages")
        .header("x-api-key", RAW)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
                .to_string(),
        ))
        .expect("request");
    anthropic.extensions_mut().insert(Verdict {
        action: Action::Tag,
        reasons: vec![],
    });
    bodies.push(call(&e.proxy, anthropic).await.text);
    let id = account_of(&e, RAW).await;
    for path in [
        "/metrics".to_owned(),
        "/api/status".to_owned(),
        "/api/accounts".to_owned(),
        format!("/api/accounts/{id}"),
        "/api/clusters".to_owned(),
        "/api/decisions?limit=100".to_owned(),
        "/api/decisions/leak-7".to_owned(),
    ] {
        let r = admin_get(&e, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        bodies.push(r.text);
    }
    e.telemetry.set_audit(None);
    writer_task.await.expect("audit writer");
    let audit = std::fs::read_to_string(&audit_path).expect("audit file");
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect();
    assert_eq!(lines.len(), 10, "all = true audits every decision");
    assert!(lines
        .iter()
        .any(|l| l["status"] == 429 && l["request_id"] == "leak-7"));
    assert!(lines.iter().all(|l| l["account"] == id.to_string()));
    let logs = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains(&id.to_string()),
        "spans carry the account hash:\n{logs}"
    );
    assert!(logs.contains("leak-3"), "spans carry the request id");
    for (what, text) in [("logs", &logs), ("audit", &audit)]
        .into_iter()
        .chain(bodies.iter().map(|b| ("answer", b)))
    {
        assert!(!text.contains(RAW), "raw key in {what}");
        assert!(!text.contains("RAWKEY"), "part of the raw key in {what}");
    }
}

#[tokio::test]
async fn a_reload_rotates_the_admin_token() {
    let text = |token: &str| format!("[identity]\nsecret = \"s\"\n[admin]\ntoken = \"{token}\"\n");
    let old = "the first admin token, long";
    let new = "the second admin token, long";
    let guard =
        Guard::from_config(Config::from_toml_str(&text(old)).expect("valid")).expect("valid");
    let t = Arc::new(Telemetry::new(10));
    let reloader = distill_guard::reload::Reloader::new(guard.clone(), t.clone(), None);
    let app = admin::router_from_config(&guard, &t, Some(reloader.clone()), AdminHooks::default())
        .expect("token configured");
    assert_eq!(
        call(&app, get("/api/status", Some(old))).await.status,
        StatusCode::OK
    );
    reloader
        .reload_text(&text(new), distill_guard::reload::Trigger::Manual)
        .await
        .expect("valid");
    assert_eq!(
        call(&app, get("/api/status", Some(old))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let st = call(&app, get("/api/status", Some(new))).await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.json()["config"]["generation"], 2);
    assert!(!st.text.contains(new), "the token is never shown");
    // Removing the token closes the admin API rather than opening it.
    reloader
        .reload_text(
            "[identity]\nsecret = \"s\"\n",
            distill_guard::reload::Trigger::Manual,
        )
        .await
        .expect("valid");
    assert_eq!(
        call(&app, get("/api/status", Some(new))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, get("/api/status", Some(""))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn trace_back_searches_the_watermark_index() {
    let cfg = Config::from_toml_str(
        "[identity]\nsecret = \"s\"\n[watermark]\ntag = \"always\"\n[[watermark.keys]]\nid = \"k1\"\nsecret = \"watermark test secret\"\n",
    )
    .expect("valid");
    let clock = ManualClock::new(T0);
    let telemetry = Arc::new(Telemetry::new(100));
    let guard = Guard::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .sink(telemetry.clone())
        .build()
        .expect("valid");
    let proxy = app(stack(
        Some(&guard),
        Backend::Demo(DemoModel::new()).into_service(),
    ));
    let hooks = AdminHooks {
        cluster: None,
        trace: Some(guard.shared().watermarker().clone()),
    };
    let admin = admin::router(&guard, &telemetry, TOKEN, None, hooks);
    let mut req = chat_req("sk-harvester", Some("harvest-1"));
    *req.body_mut() = Body::from(
        json!({"model": "m", "max_tokens": 300, "messages": [{"role": "user", "content": "Explain how tides work in detail."}]})
            .to_string(),
    );
    let r = call(&proxy, req).await;
    assert_eq!(r.status, 200);
    let account = r.decision.as_ref().expect("decision").account;
    let content = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    let words: Vec<&str> = content.split_whitespace().collect();
    assert!(words.len() > 30, "a long enough answer: {content}");
    let excerpt = words[5..words.len() - 5].join(" ");
    let q: String = excerpt
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let t = call(&admin, get(&format!("/api/trace?text={q}"), Some(TOKEN))).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    let v = t.json();
    assert_eq!(v["hits"][0]["account"], account.to_string(), "{v}");
}

/// One request of a distillation campaign (see `support::traffic`).
fn campaign_req(key: &str, i: u64) -> Request<Body> {
    support::traffic::campaign_request("", key, i, 200)
}

/// Runs a campaign of `accounts` accounts until they are linked; returns the
/// accounts and their cluster.
async fn linked_campaign(e: &Env, accounts: u64) -> (Vec<AccountId>, ClusterId) {
    let mut ids = vec![None; accounts as usize];
    let mut cluster = None;
    for round in 0..3u64 {
        for a in 0..accounts {
            e.clock.advance_ms(20_000);
            let r = call(
                &e.proxy,
                campaign_req(&format!("sk-campaign-{a}"), round * 100 + a),
            )
            .await;
            let d = r.decision.expect("decision");
            ids[a as usize] = Some(d.account);
            if d.cluster.size >= accounts as u32 {
                cluster = Some(d.cluster.id);
            }
        }
    }
    (
        ids.into_iter().map(|a| a.expect("sent")).collect(),
        cluster.expect("the campaign was linked into one cluster"),
    )
}

fn campaign_env() -> Env {
    env_with(
        |c| {
            c.cluster.warmup_accounts = 0;
            c.tiers.insert(
                "default".into(),
                TierConfig {
                    requests_per_minute: Limit::Count(1000),
                    ..TierConfig::default()
                },
            );
        },
        AdminHooks::default(),
    )
}

#[tokio::test]
async fn linked_clusters_are_inspected_with_their_evidence() {
    let e = campaign_env();
    // A bystander with its own prompt stays alone.
    let bystander = account_of(&e, "sk-bystander").await;
    let (members, id) = linked_campaign(&e, 6).await;

    let c = admin_get(&e, &format!("/api/clusters/{id}")).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    let c = c.json();
    assert_eq!(c["id"], id.to_string());
    assert_eq!(c["size"], 6);
    let listed: Vec<&str> = c["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for m in &members {
        assert!(listed.contains(&m.to_string().as_str()), "{m} in {c}");
    }
    assert!(!listed.contains(&bystander.to_string().as_str()));
    assert!(c["links"].as_u64().expect("links") >= 5, "{c}");
    // Evidence: the shared template (an anchor family) and the client.
    let kinds = c["evidence_by_kind"].as_array().expect("by kind");
    assert!(
        kinds.iter().any(|k| k["family"] == "template"
            && k["links"].as_u64() >= Some(1)
            && k["weight_max"].as_f64() > Some(0.0)),
        "{c}"
    );
    let evidence = c["evidence"].as_array().expect("evidence");
    assert!(!evidence.is_empty(), "{c}");
    for ev in evidence {
        assert!(ev["weight"].as_f64() > Some(0.0), "{ev}");
        assert!(ev["accounts"].as_u64().is_some_and(|n| n <= 6), "{ev}");
        let feature = ev["feature"].as_str().expect("feature");
        assert!(feature.starts_with(ev["kind"].as_str().expect("kind")));
    }
    assert!(
        evidence.iter().any(|ev| ev["accounts"].as_u64() >= Some(2)),
        "a value shared by several members: {c}"
    );
    let suspicion = c["suspicion"].as_f64().expect("suspicion");
    assert!(suspicion > 0.0 && suspicion <= 1.0, "{c}");
    assert!(c["top_signals"]
        .as_array()
        .expect("signals")
        .iter()
        .any(|r| r["signal"] == "cluster_size"));

    // Unknown and malformed ids.
    let unknown = admin_get(&e, "/api/clusters/c_00112233445566778899aabbccddeeff").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["error"].is_string());
    assert_eq!(
        admin_get(&e, "/api/clusters/nope").await.status,
        StatusCode::BAD_REQUEST
    );

    // An account page carries its cluster and the evidence.
    let a = admin_get(&e, &format!("/api/accounts/{}", members[2]))
        .await
        .json();
    assert_eq!(a["cluster"]["id"], id.to_string());
    assert_eq!(a["cluster"]["size"], 6);
    assert_eq!(a["cluster_engine"]["cluster"]["id"], id.to_string());
    assert_eq!(a["cluster_engine"]["cluster"]["evidence"], c["evidence"]);
    assert!(a["cluster_engine"]["requests"].as_u64() >= Some(3));
    let alone = admin_get(&e, &format!("/api/accounts/{bystander}"))
        .await
        .json();
    assert_eq!(alone["cluster_engine"]["cluster"]["size"], 1);
    assert_eq!(alone["cluster_engine"]["cluster"]["evidence"], json!([]));
    let one = admin_get(
        &e,
        &format!("/api/clusters/{}", ClusterId::of_account(bystander)),
    )
    .await;
    assert_eq!(one.status, StatusCode::OK, "a cluster of one: {}", one.text);
    assert_eq!(one.json()["size"], 1);
    assert_eq!(one.json()["members"], json!([bystander.to_string()]));

    // Largest and most suspicious.
    let top = admin_get(&e, "/api/clusters?limit=5").await.json();
    assert_eq!(top["largest"][0]["id"], id.to_string());
    assert_eq!(top["most_suspicious"][0]["id"], id.to_string());
    assert_eq!(top["largest"].as_array().map(Vec::len), Some(1));

    // The gauge counts the cluster in its size class, and the bystander alone.
    let m = admin_get(&e, "/metrics").await.text;
    assert!(m.contains("distill_guard_clusters{size=\"2-9\"} 1"), "{m}");
    assert!(m.contains("distill_guard_clusters{size=\"1\"} 1"), "{m}");
}

#[tokio::test]
async fn unlinking_through_the_admin_api_takes_the_account_out() {
    let e = campaign_env();
    let (members, id) = linked_campaign(&e, 6).await;
    let out = members[3];
    // Token checks come first.
    for token in [None, Some("wrong token, long enough too")] {
        let r = call(
            &e.admin,
            post(
                "/api/overrides",
                token,
                json!({"account": out.to_string(), "action": "unlink"}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        admin_get(&e, &format!("/api/clusters/{id}")).await.json()["size"],
        6,
        "refused unlinks change nothing"
    );
    let r = call(
        &e.admin,
        post(
            "/api/overrides",
            Some(TOKEN),
            json!({"account": out.to_string(), "action": "unlink", "note": "false positive"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json()["cluster_engine"],
        "unlinked in the cluster engine and held apart"
    );
    assert_eq!(
        admin_get(&e, &format!("/api/clusters/{id}")).await.json()["size"],
        5
    );
    // Its next requests, with the same campaign evidence, leave it alone for
    // the hold time while the others stay linked.
    for i in 0..3u64 {
        e.clock.advance_ms(3_600_000);
        let d = call(&e.proxy, campaign_req("sk-campaign-3", 900 + i))
            .await
            .decision
            .expect("decision");
        assert_eq!(d.cluster.size, 1, "charged alone");
        let mate = call(&e.proxy, campaign_req("sk-campaign-0", 950 + i))
            .await
            .decision
            .expect("decision");
        assert_eq!(mate.cluster.id, id);
        assert_eq!(mate.cluster.size, 5);
        let a = admin_get(&e, &format!("/api/accounts/{out}")).await.json();
        assert_eq!(a["cluster_engine"]["cluster"]["size"], 1, "{a}");
        assert_eq!(
            a["cluster_engine"]["cluster"]["id"],
            ClusterId::of_account(out).to_string()
        );
        assert!(
            a["cluster_engine"]["held_until_ms"].as_u64() > Some(e.clock_now()),
            "{a}"
        );
    }
    let c = admin_get(&e, &format!("/api/clusters/{id}")).await.json();
    assert!(!c["members"]
        .as_array()
        .expect("members")
        .contains(&json!(out.to_string())));

    // `relink` ends the hold: its next campaign request links it back.
    let r = call(
        &e.admin,
        post(
            "/api/overrides",
            Some(TOKEN),
            json!({"account": out.to_string(), "action": "relink"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json()["cluster_engine"],
        "hold ended in the cluster engine; it may link again"
    );
    let a = admin_get(&e, &format!("/api/accounts/{out}")).await.json();
    assert!(
        a["cluster_engine"]["held_until_ms"].is_null()
            || a["cluster_engine"]["held_until_ms"].as_u64() <= Some(e.clock_now()),
        "{a}"
    );
    e.clock.advance_ms(60_000);
    let d = call(&e.proxy, campaign_req("sk-campaign-3", 990))
        .await
        .decision
        .expect("decision");
    assert_eq!(d.cluster.id, id, "linked again after relink");
    assert_eq!(d.cluster.size, 6);
}

#[tokio::test]
async fn metrics_alone_on_their_own_router_need_no_token() {
    let e = env();
    for i in 0..3 {
        chat(&e, "sk-scraped", Some(&format!("s-{i}"))).await;
    }
    let metrics = admin::metrics_router(&e.guard, &e.telemetry, AdminHooks::default());
    let r = call(&metrics, get("/metrics", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(check_prometheus_text(&r.text) > 20);
    assert!(r.text.contains(
        "distill_guard_decisions_total{action=\"allow\",dialect=\"openai\",status=\"200\",scope=\"none\"} 3"
    ));
    // Nothing else is served there, with or without a token.
    for path in ["/api/status", "/", "/api/accounts"] {
        assert_eq!(
            call(&metrics, get(path, Some(TOKEN))).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // The admin listener's own /metrics still wants the token.
    assert_eq!(
        call(&e.admin, get("/metrics", None)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tagged_answer_leads_to_its_decision_and_a_mark_to_its_account() {
    use distill_guard::watermark::{KeyConfig, TagPolicy, TextMarkPolicy};
    let e = env_with(
        |c| {
            c.watermark.tag = Some(TagPolicy::Always);
            c.watermark.text_mark = TextMarkPolicy::Enabled(true);
            c.watermark.keys = vec![KeyConfig {
                id: "k1".into(),
                secret: Some("watermark key for the admin test, 32+ bytes".into()),
                secret_env: None,
            }];
        },
        AdminHooks::default(),
    );
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-tagged")
        .body(Body::from(
            json!({"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": "tell me about caches"}]})
                .to_string(),
        ))
        .expect("request");
    let r = call(&e.proxy, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let request_id = r.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let tag = r.headers["x-distill-guard-tag"].to_str().expect("ascii");
    let marker = e.guard.shared().watermarker().clone();
    let fields = marker.verify(tag).expect("valid tag");
    // The tag names the response's own x-request-id ...
    assert_eq!(fields.request_id.to_string(), request_id);
    // ... so the decision behind a tagged answer is one lookup away.
    let d = admin_get(&e, &format!("/api/decisions/{}", fields.request_id)).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert_eq!(
        d.json()["decision"]["account"],
        json!(fields.account.to_string())
    );

    // A text mark carries only the account's first 14 hex digits; the admin
    // API completes them.
    let text = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    let traced = distill_guard::watermark::trace(&text, marker.keys(), None).expect("marked");
    assert_eq!(traced.account.len(), 14, "{traced:?}");
    let a = admin_get(&e, &format!("/api/accounts/{}", traced.account)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["account"], json!(fields.account.to_string()));
    assert_eq!(
        admin_get(&e, "/api/accounts/4122").await.status,
        StatusCode::BAD_REQUEST,
        "too short to be useful"
    );
    let unknown = if traced.account.starts_with('0') {
        "ffffffffffffff"
    } else {
        "00000000000000"
    };
    assert_eq!(
        admin_get(&e, &format!("/api/accounts/{unknown}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// The admin API, the metrics and the explanations know the model groups: an
/// account shows each group's buckets, decisions name their group, metrics
/// count per configured pattern, the status lists each tier's groups.
#[tokio::test]
async fn model_groups_show_in_buckets_decisions_metrics_and_status() {
    let e = env_with(
        |cfg| {
            cfg.tiers
                .get_mut("default")
                .expect("default")
                .models
                .insert(
                    "m".into(),
                    distill_guard::config::ModelLimits {
                        requests_per_minute: Some(Limit::Count(2)),
                        ..Default::default()
                    },
                );
        },
        AdminHooks::default(),
    );
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(chat(&e, "sk-groups", Some(&format!("g-{i}"))).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let id = account_of(&e, "sk-other-groups").await;
    chat(&e, "sk-other-groups", None).await;
    let v = admin_get(&e, &format!("/api/accounts/{id}")).await.json();
    let group = &v["buckets"]["model_groups"]["m"]["account"]["requests_per_minute"];
    assert_eq!(group["limit"], 2.0, "{v:#}");
    assert_eq!(group["remaining"], 0.0, "{v:#}");
    assert_eq!(
        v["buckets"]["account"]["requests_per_minute"]["remaining"],
        3.0
    );
    assert!(v["buckets"]["model_groups"]["m"]["cluster"].is_null());

    let d = admin_get(&e, "/api/decisions/g-2").await.json();
    let text = d["explanation"].as_str().expect("explanation");
    assert!(
        text.contains("for models `m`") && text.contains("model group `m`"),
        "{text}"
    );
    assert_eq!(d["decision"]["model_group"], "m", "{d:#}");
    assert_eq!(d["decision"]["limited_in_group"], true, "{d:#}");

    let metrics = admin_get(&e, "/metrics").await.text;
    for want in [
        "distill_guard_model_group_decisions_total{tier=\"default\",group=\"m\",outcome=\"admitted\"} 4",
        "distill_guard_model_group_decisions_total{tier=\"default\",group=\"m\",outcome=\"refused_by_group\"} 1",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    let status = admin_get(&e, "/api/status").await.json();
    let tiers = status["config"]["tiers"].as_array().expect("tiers");
    let default = tiers
        .iter()
        .find(|t| t["name"] == "default")
        .expect("default tier");
    assert_eq!(default["limits"]["models"]["m"]["requests_per_minute"], 2);
}

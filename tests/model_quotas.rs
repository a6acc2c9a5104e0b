//! Quotas per model group (`[tiers.NAME.models."PATTERN"]`) through the whole
//! layer stack with `oneshot`, a virtual clock and the demo model as the
//! upstream: on the embedded store, on a real `redis-server`, and on a real
//! Redis Cluster (`backend = "redis-cluster"`).
//!
//! Every scenario runs against each store. When `redis-server` (or, for the
//! cluster, `redis-cli`) is not on PATH the Redis runs print the SKIPPED line
//! CI looks for and return.

mod support;

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use distill_guard::clock::ManualClock;
use distill_guard::config::Config;
use distill_guard::extensions::{Cluster, ClusterId, Decision, Scope, Suspicion};
use distill_guard::policy::OverrideAction;
use distill_guard::proxy::demo::{DemoModel, DemoUsage};
use distill_guard::proxy::server::{stack, Backend, HttpService};
use distill_guard::store::{MemoryStore, Store};
use distill_guard::Guard;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const T0: u64 = 1_714_000_000_000;

/// The issue's example, plus an exact name beside a glob, a dated family and
/// a token-limited Anthropic group.
const LIMITS: &str = r#"
[tiers.default]
requests_per_minute = 20
requests_per_day = "unlimited"
tokens_per_minute = 150000
tokens_per_day = "unlimited"
[tiers.default.models."gpt-5*"]
requests_per_minute = 3
tokens_per_minute = 40000
tokens_per_day = 1000000
[tiers.default.models."gpt-5-mini"]
requests_per_minute = 5
[tiers.default.models."claude-opus-4-1*"]
requests_per_minute = 2
tokens_per_minute = 20000
"#;

struct Harness {
    guard: Guard,
    clock: ManualClock,
    svc: HttpService,
    store: Arc<dyn Store>,
}

fn harness(store: Arc<dyn Store>, extra: &str) -> Harness {
    let cfg = Config::from_toml_str(&format!(
        "[identity]\nsecret = \"model-quota-test-secret\"\n{LIMITS}\n{extra}"
    ))
    .expect("valid config");
    let clock = ManualClock::new(T0);
    let guard = Guard::builder(cfg)
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("guard");
    let svc = stack(Some(&guard), Backend::Demo(DemoModel::new()).into_service());
    Harness {
        guard,
        clock,
        svc,
        store,
    }
}

/// One request: dialect by path, the model, stream or not, the output cap
/// and the usage the demo model reports.
struct Call {
    path: &'static str,
    key: String,
    body: Value,
    usage: DemoUsage,
}

fn openai(key: &str, model: &str) -> Call {
    Call {
        path: "/v1/chat/completions",
        key: key.to_owned(),
        body: json!({"model": model, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}),
        usage: DemoUsage {
            input_tokens: 1,
            output_tokens: 1,
        },
    }
}

fn anthropic(key: &str, model: &str) -> Call {
    Call {
        path: "/v1/messages",
        ..openai(key, model)
    }
}

impl Call {
    fn max_tokens(mut self, n: u64) -> Self {
        self.body["max_tokens"] = json!(n);
        self
    }

    fn streamed(mut self) -> Self {
        self.body["stream"] = json!(true);
        if self.path == "/v1/chat/completions" {
            self.body["stream_options"] = json!({"include_usage": true});
        }
        self
    }

    fn usage(mut self, input: u64, output: u64) -> Self {
        self.usage = DemoUsage {
            input_tokens: input,
            output_tokens: output,
        };
        self
    }

    fn build(&self) -> Request<Body> {
        let auth = if self.path == "/v1/messages" {
            ("x-api-key", self.key.clone())
        } else {
            ("authorization", format!("Bearer {}", self.key))
        };
        let mut req = Request::post(self.path)
            .header("content-type", "application/json")
            .header(auth.0, auth.1)
            .body(Body::from(self.body.to_string()))
            .expect("request");
        req.extensions_mut().insert(self.usage);
        req
    }
}

impl Harness {
    /// Sends `call` and reads its whole body (so its reservation settles).
    async fn send(&self, call: &Call) -> (Response<()>, Bytes) {
        self.send_request(call.build()).await
    }

    async fn send_request(&self, req: Request<Body>) -> (Response<()>, Bytes) {
        let res = self.svc.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        // A shared store sends settlements from a background task: wait
        // until this request's has reached it.
        if self.store.status().is_some() {
            support::wait::until_true("the settlement reached the store", || {
                self.store
                    .status()
                    .is_some_and(|s| s.settlements_pending == 0)
            })
            .await;
        }
        (Response::from_parts(parts, ()), bytes)
    }

    async fn status(&self, call: &Call) -> StatusCode {
        self.send(call).await.0.status()
    }
}

fn header<'a>(res: &'a Response<()>, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

fn num(res: &Response<()>, name: &str) -> u64 {
    header(res, name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .parse()
        .expect("number")
}

/// The remaining units of the IETF policy `name` in the `RateLimit` header.
fn ietf_remaining(res: &Response<()>, name: &str) -> Option<u64> {
    let state = header(res, "ratelimit")?;
    let prefix = format!("\"{name}\";r=");
    state
        .split(", ")
        .find_map(|item| item.strip_prefix(&prefix)?.split(';').next()?.parse().ok())
}

fn decision(res: &Response<()>) -> Decision {
    res.extensions()
        .get::<Decision>()
        .cloned()
        .expect("the response carries its decision")
}

/// Each group's request bucket is its own: using up `gpt-5*` leaves the exact
/// `gpt-5-mini`, the dated Opus family and unmatched models alone; the most
/// specific pattern wins and case does not matter; the 429 names the group.
async fn groups_are_enforced_independently(store: Arc<dyn Store>) {
    let h = harness(store, "");
    let key = "sk-independent";
    for i in 0..3 {
        let (res, _) = h.send(&openai(key, "gpt-5")).await;
        assert_eq!(res.status(), 200, "gpt-5 request {i}");
        assert_eq!(header(&res, "x-distill-guard-model-group"), Some("gpt-5*"));
        // The group's bucket is tighter than the tier's: it is the one shown.
        assert_eq!(num(&res, "x-ratelimit-limit-requests"), 3);
        assert_eq!(num(&res, "x-ratelimit-remaining-requests"), 2 - i);
    }
    let (res, body) = h.send(&openai(key, "gpt-5.1-codex")).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "x-distill-guard-limit"),
        Some("account; requests-minute; model=\"gpt-5*\"")
    );
    assert_eq!(header(&res, "retry-after"), Some("20"));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("on models `gpt-5*`") && msg.contains("3 requests per minute"),
        "{msg}"
    );
    let d = decision(&res);
    assert_eq!(d.limited_by, Some(Scope::Account));
    assert!(d.limited_in_group);
    assert_eq!(d.model_group.as_deref(), Some("gpt-5*"));

    // The exact name beats the glob it also matches, whatever its case.
    for i in 0..5 {
        let (res, _) = h.send(&openai(key, "GPT-5-Mini")).await;
        assert_eq!(res.status(), 200, "gpt-5-mini request {i}");
        assert_eq!(
            header(&res, "x-distill-guard-model-group"),
            Some("gpt-5-mini")
        );
    }
    assert_eq!(h.status(&openai(key, "gpt-5-mini")).await, 429);
    // A dated snapshot falls under the `*` family; the undated exact name of
    // another family matches nothing and is held to the tier alone.
    let (res, _) = h.send(&anthropic(key, "claude-opus-4-1-20250805")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "x-distill-guard-model-group"),
        Some("claude-opus-4-1*")
    );
    let (res, _) = h.send(&openai(key, "o3")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-distill-guard-model-group"), None);
    assert_eq!(decision(&res).model_group, None);
    assert_eq!(num(&res, "x-ratelimit-limit-requests"), 20);

    // The group refills on the virtual clock: one request per 20 s.
    h.clock.advance_ms(19_999);
    assert_eq!(h.status(&openai(key, "gpt-5")).await, 429);
    h.clock.advance_ms(1);
    assert_eq!(h.status(&openai(key, "gpt-5")).await, 200);
    // Another account has its own group buckets.
    assert_eq!(h.status(&openai("sk-other", "gpt-5")).await, 200);
}

/// The tier's account-wide buckets still bind across groups: once they are
/// used up, a group with room left is refused by the tier's limit.
async fn account_wide_limit_binds_across_groups(store: Arc<dyn Store>) {
    let h = harness(store, "");
    let key = "sk-account-wide";
    assert_eq!(h.status(&openai(key, "gpt-5")).await, 200);
    assert_eq!(h.status(&anthropic(key, "claude-opus-4-1")).await, 200);
    for i in 0..18 {
        assert_eq!(h.status(&openai(key, "o3")).await, 200, "o3 request {i}");
    }
    // 20 of the tier's 20; gpt-5* has 2 of its 3 left, Opus 1 of 2.
    for call in [
        openai(key, "gpt-5"),
        anthropic(key, "claude-opus-4-1"),
        openai(key, "o3"),
    ] {
        let (res, _) = h.send(&call).await;
        assert_eq!(res.status(), 429, "{}", call.body["model"]);
        assert_eq!(
            header(&res, "x-distill-guard-limit"),
            Some("account; requests-minute")
        );
        let d = decision(&res);
        assert!(!d.limited_in_group);
    }
    // In the Anthropic dialect too, and its headers show the binding bucket.
    let (res, body) = h.send(&anthropic(key, "claude-opus-4-1")).await;
    assert_eq!(res.status(), 429);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(num(&res, "anthropic-ratelimit-requests-remaining"), 0);
    assert_eq!(
        ietf_remaining(&res, "claude-opus-4-1*:requests-minute"),
        Some(1)
    );
    assert_eq!(ietf_remaining(&res, "requests-minute"), Some(0));
}

/// The headers of a group's request: the dialect fields show the tighter of
/// the group's and the tier's buckets per window, the IETF fields list both.
async fn headers_report_the_group(store: Arc<dyn Store>) {
    let h = harness(store, "");
    let (res, _) = h.send(&openai("sk-headers", "gpt-5").max_tokens(997)).await;
    assert_eq!(res.status(), 200);
    // 3 input tokens ("user" + "hello") + 997 reserved.
    assert_eq!(num(&res, "x-ratelimit-limit-tokens"), 40_000);
    assert_eq!(num(&res, "x-ratelimit-remaining-tokens"), 39_000);
    let policy = header(&res, "ratelimit-policy").expect("policy");
    for want in [
        "\"requests-minute\";q=20;w=60",
        "\"tokens-minute\";q=150000;w=60",
        "\"gpt-5*:requests-minute\";q=3;w=60",
        "\"gpt-5*:tokens-minute\";q=40000;w=60",
        "\"gpt-5*:tokens-day\";q=1000000;w=86400",
    ] {
        assert!(policy.contains(want), "{want} not in {policy}");
    }
    assert!(
        !policy.contains("gpt-5*:requests-day"),
        "the group sets no daily request limit: {policy}"
    );
    assert_eq!(ietf_remaining(&res, "tokens-minute"), Some(149_000));
    assert_eq!(ietf_remaining(&res, "gpt-5*:tokens-minute"), Some(39_000));
    assert_eq!(ietf_remaining(&res, "gpt-5*:tokens-day"), Some(999_000));

    let (res, _) = h
        .send(&anthropic("sk-headers", "claude-opus-4-1-20250805").max_tokens(997))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "anthropic-ratelimit-requests-limit"), 2);
    assert_eq!(num(&res, "anthropic-ratelimit-requests-remaining"), 1);
    assert_eq!(num(&res, "anthropic-ratelimit-tokens-limit"), 20_000);
    assert_eq!(num(&res, "anthropic-ratelimit-tokens-remaining"), 19_000);
    assert_eq!(
        num(&res, "anthropic-ratelimit-output-tokens-remaining"),
        19_000
    );
    // The tier's bucket holds this reservation and the first request's usage
    // (1 + 1 tokens, reconciled when its body ended).
    assert_eq!(
        ietf_remaining(&res, "tokens-minute"),
        Some(150_000 - 2 - 1_000)
    );
}

/// Reservations are reconciled with the usage into the group they were
/// charged to, for JSON and SSE in both dialects; other groups and the
/// tier's buckets see exactly their share.
async fn tokens_reconcile_into_the_right_group(store: Arc<dyn Store>) {
    let h = harness(store, "");
    let key = "sk-reconcile";
    // JSON: 10,003 reserved, 300 used.
    let (res, _) = h
        .send(&openai(key, "gpt-5").max_tokens(10_000).usage(100, 200))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(num(&res, "x-ratelimit-remaining-tokens"), 40_000 - 10_003);
    // SSE: 1,003 reserved, 30 used.
    let (res, body) = h
        .send(
            &openai(key, "gpt-5")
                .max_tokens(1_000)
                .usage(10, 20)
                .streamed(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(body.ends_with(b"data: [DONE]\n\n"), "a stream");
    assert_eq!(
        num(&res, "x-ratelimit-remaining-tokens"),
        40_000 - 300 - 1_003
    );
    // A model of no group is charged to the tier alone.
    let (res, _) = h
        .send(&openai(key, "o3").max_tokens(1_000).usage(5, 5))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(ietf_remaining(&res, "gpt-5*:tokens-minute"), None);
    assert_eq!(
        num(&res, "x-ratelimit-remaining-tokens"),
        150_000 - 330 - 1_003
    );
    let (res, _) = h.send(&openai(key, "gpt-5").max_tokens(1_000)).await;
    assert_eq!(
        ietf_remaining(&res, "gpt-5*:tokens-minute"),
        Some(40_000 - 330 - 1_003)
    );
    assert_eq!(
        ietf_remaining(&res, "tokens-minute"),
        Some(150_000 - 330 - 10 - 1_003)
    );

    // Anthropic SSE into the Opus group: 3,003 reserved, 100 used.
    let (res, body) = h
        .send(
            &anthropic(key, "claude-opus-4-1-20250805")
                .max_tokens(3_000)
                .usage(25, 75)
                .streamed(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        String::from_utf8_lossy(&body).contains("event: message_stop"),
        "an Anthropic stream"
    );
    assert_eq!(
        num(&res, "anthropic-ratelimit-tokens-remaining"),
        20_000 - 3_003
    );
    let (res, _) = h
        .send(&anthropic(key, "claude-opus-4-1").max_tokens(997))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        num(&res, "anthropic-ratelimit-tokens-remaining"),
        20_000 - 100 - 1_000
    );
    // The gpt-5* group saw none of it.
    let (res, _) = h.send(&openai(key, "gpt-5").max_tokens(7)).await;
    assert_eq!(res.status(), 429, "gpt-5* has used its 3 requests");
    assert_eq!(
        ietf_remaining(&res, "gpt-5*:tokens-minute"),
        Some(40_000 - 330 - 2)
    );
}

/// A request larger than the group's whole token bucket gets 400, naming the
/// group; an unparseable body is held to the tier's limits alone; shadow mode
/// reports a group's refusal without enforcing it.
async fn edges_fall_back_to_the_tier(store: Arc<dyn Store>) {
    let h = harness(store.clone(), "");
    let (res, body) = h
        .send(&anthropic("sk-edges", "claude-opus-4-1").max_tokens(25_000))
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        String::from_utf8_lossy(&body).contains("models `claude-opus-4-1*`"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    for _ in 0..3 {
        assert_eq!(h.status(&openai("sk-edges", "gpt-5")).await, 200);
    }
    assert_eq!(h.status(&openai("sk-edges", "gpt-5")).await, 429);
    // Not JSON: no model to read, so no group; the tier admits it (the demo
    // model then answers what it answers, never a 429).
    let req = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk-edges")
        .body(Body::from("{\"model\": \"gpt-5\", oops"))
        .expect("request");
    let (res, _) = h.send_request(req).await;
    assert_ne!(res.status(), 429);
    assert_eq!(header(&res, "x-distill-guard-model-group"), None);
    // A model that is not a string: no group either.
    let mut odd = openai("sk-edges", "gpt-5");
    odd.body["model"] = json!(["gpt-5"]);
    let (res, _) = h.send(&odd).await;
    assert_ne!(res.status(), 429);
    assert_eq!(header(&res, "x-distill-guard-model-group"), None);

    let shadow = harness(store, "[guard]\nshadow = true\n");
    for _ in 0..3 {
        assert_eq!(shadow.status(&openai("sk-shadow", "gpt-5")).await, 200);
    }
    let (res, _) = shadow.send(&openai("sk-shadow", "gpt-5")).await;
    assert_eq!(res.status(), 200, "shadow mode never refuses");
    let d = decision(&res);
    assert!(d.shadowed && d.limited_in_group);
    assert_eq!(d.model_group.as_deref(), Some("gpt-5*"));
}

/// A cluster has its own buckets per group, with the same sub-linear
/// capacity as the tier's (`members^0.5`), and suspicion bands scale a
/// group's limits like the tier's.
async fn cluster_and_suspicion_scale_group_limits(store: Arc<dyn Store>) {
    let h = harness(store, "");
    let cluster = Cluster {
        id: ClusterId::from_name("operator-models"),
        size: 4,
    };
    // 4 members: gpt-5* gets 3 × 4^0.5 = 6 requests per minute for the cluster.
    let mut admitted = 0;
    for i in 0..8 {
        let call = openai(&format!("sk-member-{}", i % 4), "gpt-5");
        let mut req = call.build();
        req.extensions_mut().insert(cluster);
        let (res, body) = h.send_request(req).await;
        match res.status().as_u16() {
            200 => admitted += 1,
            429 => {
                assert_eq!(
                    header(&res, "x-distill-guard-limit"),
                    Some("cluster; requests-minute; model=\"gpt-5*\"")
                );
                let text = String::from_utf8_lossy(&body).into_owned();
                assert!(
                    text.contains("group of accounts") && text.contains("models `gpt-5*`"),
                    "{text}"
                );
                let d = decision(&res);
                assert_eq!(d.limited_by, Some(Scope::Cluster));
                assert!(d.limited_in_group);
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(admitted, 6);
    // The cluster's tier-wide bucket (20 × 2 = 40) still had room.
    let mut req = openai("sk-member-0", "o3").build();
    req.extensions_mut().insert(cluster);
    assert_eq!(h.send_request(req).await.0.status(), 200);

    // Suspicion 0.6 halves every limit: gpt-5* holds 1.5 requests, so one.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut req = openai("sk-suspect", "gpt-5").build();
        req.extensions_mut().insert(Suspicion::new(0.6));
        statuses.push(h.send_request(req).await.0.status().as_u16());
    }
    assert_eq!(statuses, [200, 429]);
}

/// A tier pinned by an operator's override (or the config's `[accounts]`)
/// brings its own groups: the account is held to the pinned tier's.
async fn pinned_tiers_bring_their_groups(store: Arc<dyn Store>) {
    let h = harness(
        store,
        r#"
        [tiers.pro]
        requests_per_minute = 100
        [tiers.pro.models."gpt-5*"]
        requests_per_minute = 50
        "#,
    );
    let (res, _) = h.send(&openai("sk-pinned", "gpt-5")).await;
    assert_eq!(num(&res, "x-ratelimit-limit-requests"), 3);
    let account = decision(&res).account;
    h.guard.shared().overrides().apply(
        account,
        OverrideAction::PinTier,
        Some("pro".into()),
        None,
        0,
    );
    for _ in 0..5 {
        let (res, _) = h.send(&openai("sk-pinned", "gpt-5")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(num(&res, "x-ratelimit-limit-requests"), 50);
        assert_eq!(decision(&res).tier.as_ref(), "pro");
    }
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(Arc::new(MemoryStore::new())).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            use super::*;
            use distill_guard::store::{Backend, OnError, RedisStore, StoreConfig};
            use std::time::Duration;
            use support::{RedisCluster, RedisServer};

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = RedisServer::start() else {
                        return;
                    };
                    let store = RedisStore::new(&StoreConfig {
                        backend: Backend::Redis,
                        url: Some(server.url()),
                        timeout: Duration::from_secs(2),
                        on_error: OnError::FailClosed,
                        key_prefix: "mq:".into(),
                        ..StoreConfig::default()
                    })
                    .expect("store");
                    super::$name(Arc::new(store.clone())).await;
                    assert_eq!(store.fallback_count(), 0, "every call reached Redis");
                }
            )*

            mod cluster {
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(redis) = RedisCluster::start(3, 0) else {
                            return;
                        };
                        let store = RedisStore::new(&StoreConfig {
                            backend: Backend::RedisCluster,
                            nodes: redis.urls().into_iter().take(2).collect(),
                            timeout: Duration::from_secs(2),
                            on_error: OnError::FailClosed,
                            key_prefix: "mq:".into(),
                            ..StoreConfig::default()
                        })
                        .expect("store");
                        super::super::$name(Arc::new(store.clone())).await;
                        assert_eq!(store.fallback_count(), 0, "every call reached Redis");
                    }
                )*
            }
        }
    };
}

on_every_store!(
    groups_are_enforced_independently,
    account_wide_limit_binds_across_groups,
    headers_report_the_group,
    tokens_reconcile_into_the_right_group,
    edges_fall_back_to_the_tier,
    cluster_and_suspicion_scale_group_limits,
    pinned_tiers_bring_their_groups,
);

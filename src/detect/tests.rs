//! The detect stage driven through the composed guard with `oneshot` and a
//! manual clock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};

use crate::clock::ManualClock;
use crate::config::Config;
use crate::extensions::{Action, Cluster, ClusterId, HardLink, Suspicion, Verdict};
use crate::fingerprint::Fingerprint;
use crate::network::PeerAddr;
use crate::Guard;

const T0: u64 = 1_714_000_000_000;

/// What the handler saw.
#[derive(Debug, Clone)]
struct Seen {
    cluster: Cluster,
    suspicion: f64,
    verdict: Verdict,
    body: serde_json::Value,
    fingerprinted: bool,
}

struct Harness {
    guard: Guard,
    clock: ManualClock,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Harness {
    fn new(config: Config) -> Self {
        let clock = ManualClock::new(T0);
        let guard = Guard::builder(config)
            .clock(Arc::new(clock.clone()))
            .build()
            .expect("valid config");
        Self {
            guard,
            clock,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, Option<Seen>) {
        let seen = self.seen.clone();
        let handler = service_fn(move |req: Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let ext = req.extensions();
                let s = Seen {
                    cluster: *ext.get::<Cluster>().expect("cluster inserted"),
                    suspicion: ext.get::<Suspicion>().expect("suspicion inserted").value(),
                    verdict: ext.get::<Verdict>().expect("verdict inserted").clone(),
                    fingerprinted: ext.get::<Fingerprint>().is_some(),
                    body: serde_json::Value::Null,
                };
                let bytes = req.into_body().collect().await.expect("body").to_bytes();
                let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                seen.lock().expect("lock").push(Seen { body, ..s });
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                    br#"{"usage":{"prompt_tokens":10,"completion_tokens":10}}"#,
                ))))
            }
        });
        let before = self.seen.lock().expect("lock").len();
        let res = self
            .guard
            .layer()
            .layer(handler)
            .oneshot(req)
            .await
            .expect("infallible");
        let status = res.status();
        let _ = res.into_body().collect().await;
        let seen = self.seen.lock().expect("lock");
        (status, seen.get(before).cloned())
    }
}

fn campaign_body(i: u64) -> String {
    let payload: String = (0..30)
        .map(|k| format!("w{} ", (i * 31 + k * 7) % 997))
        .collect();
    format!(
        r#"{{"model":"m","temperature":0.6,"max_tokens":16000,"messages":[{{"role":"user","content":"You are an expert competition programmer and mathematician. Read the task below with great care, consider the edge cases, the constraints and the complexity bounds, and then solve it completely in Python. TASK: {payload} END OF TASK. Think step by step and write out your full reasoning in detail before giving the final answer, then give the complete program in one fenced code block and state its time complexity at the end."}}]}}"#
    )
}

fn organic_body(i: u64) -> String {
    let words: String = (0..40)
        .map(|k| format!("t{} ", (i * 7919 + k * 104_729) % 100_003))
        .collect();
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#)
}

fn request(key: &str, ip: [u8; 4], ua: &str, body: String) -> Request<Full<Bytes>> {
    let mut req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("user-agent", ua)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from((ip, 40_000))));
    req
}

/// Sixty organic accounts (warm-up and bystanders), then a campaign.
async fn warm(h: &Harness) {
    for u in 0..60u64 {
        h.clock.advance_ms(1_000);
        let ua = ["OpenAI/Python 1.40.0", "curl/8.5.0", "Mozilla/5.0"][(u % 3) as usize];
        let (status, seen) = h
            .send(request(
                &format!("organic-{u}"),
                [198, 51, (u % 250) as u8, 7],
                ua,
                organic_body(u),
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(seen.expect("served").cluster.size, 1);
    }
}

#[tokio::test]
async fn a_campaign_is_linked_escalates_and_explains_itself() {
    let h = Harness::new(Config::with_secret("test-secret"));
    warm(&h).await;
    let mut last: Option<Seen> = None;
    let mut first_cluster: Option<ClusterId> = None;
    let mut degraded_body = None;
    let mut blocked = false;
    for round in 0..4u64 {
        for a in 0..30u64 {
            h.clock.advance_ms(20_000);
            let (status, seen) = h
                .send(request(
                    &format!("campaign-{a}"),
                    [203, 0, 113, (a % 4) as u8 + 1],
                    "python-httpx/0.27.0",
                    campaign_body(round * 100 + a),
                ))
                .await;
            if status == StatusCode::FORBIDDEN {
                blocked = true;
                continue;
            }
            let seen = seen.expect("served");
            assert!(seen.fingerprinted);
            if a == 0 && round > 0 {
                // The first account's cluster id never changes once linked.
                let id = seen.cluster.id;
                assert_eq!(*first_cluster.get_or_insert(id), id);
            }
            if seen.verdict.action == Action::Degrade {
                degraded_body = Some(seen.body.clone());
            }
            last = Some(seen);
        }
    }
    let last = last.expect("some request served");
    // Its members' behaviour evidence stops it well before all 30 join: the
    // last request served is from a cluster of about a dozen.
    assert!(last.cluster.size >= 8, "{:?}", last.cluster);
    assert!(last.suspicion >= 0.7, "{last:?}");
    assert!(
        last.verdict
            .reasons
            .iter()
            .any(|r| matches!(&*r.signal, "cluster_size" | "linked_extraction") && r.weight > 0.0),
        "{:?}",
        last.verdict.reasons
    );
    let body = degraded_body.expect("a request was degraded before any block");
    assert_eq!(body["max_tokens"], 1024, "output capped: {body}");
    assert!(blocked, "the campaign reached the block rung");
    // Bystanders are untouched.
    let (status, seen) = h
        .send(request(
            "organic-3",
            [198, 51, 3, 7],
            "OpenAI/Python 1.40.0",
            organic_body(3),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = seen.expect("served");
    assert_eq!(seen.cluster.size, 1);
    assert_eq!(seen.verdict.action, Action::Allow);
}

#[tokio::test]
async fn a_lone_account_asking_for_reasoning_is_never_throttled() {
    let h = Harness::new(Config::with_secret("test-secret"));
    warm(&h).await;
    for i in 0..200u64 {
        h.clock.advance_ms(37_000);
        let (status, seen) = h
            .send(request(
                "lonely-reasoner",
                [192, 0, 2, 9],
                "python-httpx/0.27.0",
                campaign_body(i),
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let seen = seen.expect("served");
        assert_eq!(seen.cluster.size, 1);
        assert!(seen.verdict.action <= Action::Tag, "{seen:?}");
        assert!(seen.suspicion < 0.5);
    }
    let (_, seen) = h
        .send(request(
            "lonely-reasoner",
            [192, 0, 2, 9],
            "python-httpx/0.27.0",
            campaign_body(999),
        ))
        .await;
    let seen = seen.expect("served");
    assert!(
        seen.verdict
            .reasons
            .iter()
            .any(|r| &*r.signal == "cot_elicitation"),
        "content signals are explained even when capped: {:?}",
        seen.verdict.reasons
    );
}

#[tokio::test]
async fn host_supplied_hard_links_and_clusters_are_honoured() {
    let h = Harness::new(Config::with_secret("test-secret"));
    warm(&h).await;
    let mut ids = Vec::new();
    for (i, key) in ["card-a", "card-b"].iter().enumerate() {
        h.clock.advance_ms(5_000);
        let mut req = request(
            key,
            [100, 64, i as u8, 1],
            "OpenAI/Python 1.40.0",
            organic_body(500 + i as u64),
        );
        req.extensions_mut()
            .insert(HardLink("pm_card_fingerprint_42".into()));
        let (_, seen) = h.send(req).await;
        ids.push(seen.expect("served").cluster);
    }
    assert_eq!(ids[1].size, 2);
    // A cluster the host application chose itself is kept.
    let mut req = request("org-key", [100, 64, 9, 1], "curl/8.5.0", organic_body(9));
    let host = Cluster {
        id: ClusterId::from_name("org-7"),
        size: 12,
    };
    req.extensions_mut().insert(host);
    let (_, seen) = h.send(req).await;
    assert_eq!(seen.expect("served").cluster, host);
}

#[tokio::test]
async fn preparation_errors_come_from_the_outermost_stage() {
    let h = Harness::new(Config::with_secret("test-secret"));
    let req = Request::post("/v1/messages")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let (status, seen) = h.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(seen.is_none());
    let mut cfg = Config::with_secret("test-secret");
    cfg.guard.max_body_bytes = 64;
    let h = Harness::new(cfg);
    let (status, _) = h
        .send(request("k", [1, 2, 3, 4], "curl/8", organic_body(1)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn shadow_mode_does_not_rewrite_degraded_requests() {
    let mut cfg = Config::with_secret("test-secret");
    cfg.guard.shadow = true;
    let h = Harness::new(cfg);
    warm(&h).await;
    let mut saw_degrade = false;
    for round in 0..3u64 {
        for a in 0..30u64 {
            h.clock.advance_ms(20_000);
            let (status, seen) = h
                .send(request(
                    &format!("campaign-{a}"),
                    [203, 0, 113, 1],
                    "python-httpx/0.27.0",
                    campaign_body(round * 100 + a),
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "shadow mode never rejects");
            let seen = seen.expect("served");
            if seen.verdict.action >= Action::Degrade {
                saw_degrade = true;
                assert_eq!(seen.body["max_tokens"], 16000);
            }
        }
    }
    assert!(saw_degrade);
}

/// A reseller's customer: short everyday requests with a small output cap.
fn customer_body(i: u64) -> String {
    let words: String = (0..25)
        .map(|k| format!("c{} ", (i * 6_151 + k * 49_157) % 100_019))
        .collect();
    format!(
        r#"{{"model":"m","max_tokens":512,"messages":[{{"role":"user","content":"{words}"}}]}}"#
    )
}

#[tokio::test]
async fn a_resellers_customers_keep_working_while_the_operator_behind_it_is_stopped() {
    let h = Harness::new(Config::with_secret("test-secret"));
    warm(&h).await;
    // One reseller: four proxy addresses and one gateway client for every
    // request it relays, its own customers' and an operator's thirty
    // accounts' alike.
    let proxy = |i: u64| [100, 70, 0, (i % 4) as u8 + 1];
    let gateway = "reseller-gateway/2.1";
    let mut operator_stopped = false;
    for round in 0..6u64 {
        for c in 0..20u64 {
            h.clock.advance_ms(9_000);
            let (status, seen) = h
                .send(request(
                    &format!("customer-{c}"),
                    proxy(c + round),
                    gateway,
                    customer_body(round * 100 + c),
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "customer-{c} round {round}");
            let seen = seen.expect("served");
            assert!(
                seen.verdict.action < Action::Throttle,
                "customer-{c} round {round}: {seen:?}"
            );
        }
        for a in 0..30u64 {
            h.clock.advance_ms(9_000);
            let (status, seen) = h
                .send(request(
                    &format!("operator-{a}"),
                    proxy(a + round),
                    gateway,
                    campaign_body(round * 100 + a),
                ))
                .await;
            if status == StatusCode::FORBIDDEN
                || seen.is_some_and(|s| s.verdict.action >= Action::Degrade)
            {
                operator_stopped = true;
            }
        }
    }
    assert!(
        operator_stopped,
        "the operator's accounts were degraded or blocked"
    );
    // No customer was linked to the operator, nor to one another.
    for c in 0..20u64 {
        h.clock.advance_ms(9_000);
        let (_, seen) = h
            .send(request(
                &format!("customer-{c}"),
                proxy(c),
                gateway,
                customer_body(900 + c),
            ))
            .await;
        assert_eq!(seen.expect("served").cluster.size, 1, "customer-{c}");
    }
}

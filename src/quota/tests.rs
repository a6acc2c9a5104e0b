//! The enforce stage built on its own, without a guard, driven with `oneshot`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};

use super::EnforceLayer;
use crate::clock::ManualClock;
use crate::config::{Config, Limit, TierConfig};
use crate::dialect::Dialect;
use crate::extensions::{AccountId, Decision, Verdict};
use crate::policy::{OverrideAction, Overrides};
use crate::stage::LiveSettings;
use crate::store::MemoryStore;

fn config(rpm: u64) -> Config {
    let mut cfg = Config::with_secret("test-secret");
    cfg.tiers.insert(
        "default".into(),
        TierConfig {
            requests_per_minute: Limit::Count(rpm),
            ..TierConfig::default()
        },
    );
    cfg
}

fn chat(key: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .expect("request")
}

async fn send(layer: &EnforceLayer, req: Request<Full<Bytes>>) -> StatusCode {
    let handler = service_fn(|req: Request<Full<Bytes>>| async move {
        assert!(
            req.extensions().get::<Decision>().is_some(),
            "the stage hands its decision to the handler"
        );
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            br#"{"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        ))))
    });
    let res = layer.layer(handler).oneshot(req).await.expect("infallible");
    let status = res.status();
    let _ = res.into_body().collect().await;
    status
}

#[tokio::test]
async fn built_from_a_config_alone_it_enforces_the_tier() {
    let layer = EnforceLayer::from_config(&config(2)).expect("valid");
    assert_eq!(send(&layer, chat("sk-a")).await, StatusCode::OK);
    assert_eq!(send(&layer, chat("sk-a")).await, StatusCode::OK);
    assert_eq!(
        send(&layer, chat("sk-a")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&layer, chat("sk-b")).await, StatusCode::OK);
    let no_key = Request::post("/v1/messages")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(send(&layer, no_key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn its_parts_are_its_own_sink_overrides_and_clock() {
    let clock = ManualClock::new(1_714_000_000_000);
    let settings = LiveSettings::from_config(config(1)).expect("valid");
    let overrides = Arc::new(Overrides::new());
    let seen: Arc<Mutex<Vec<(u16, AccountId)>>> = Arc::default();
    let sink = {
        let seen = seen.clone();
        move |d: &Decision, _: Dialect, at_ms: u64| {
            assert_eq!(at_ms, 1_714_000_000_000);
            seen.lock().expect("lock").push((d.status, d.account));
        }
    };
    let layer = EnforceLayer::new(
        settings.clone(),
        Arc::new(MemoryStore::new()),
        Arc::new(clock),
    )
    .with_overrides(overrides.clone())
    .with_sink(sink);
    assert_eq!(send(&layer, chat("sk-a")).await, StatusCode::OK);
    assert_eq!(
        send(&layer, chat("sk-a")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let account = seen.lock().expect("lock")[0].1;
    overrides.apply(account, OverrideAction::Block, None, None, 0);
    assert_eq!(send(&layer, chat("sk-a")).await, StatusCode::FORBIDDEN);
    // The host's own verdict is honoured without a detect stage in front.
    let mut req = chat("sk-c");
    req.extensions_mut().insert(Verdict {
        action: crate::extensions::Action::Block,
        reasons: vec![],
    });
    assert_eq!(send(&layer, req).await, StatusCode::FORBIDDEN);
    let statuses: Vec<u16> = seen.lock().expect("lock").iter().map(|s| s.0).collect();
    assert_eq!(statuses, [200, 429, 403, 403]);
    // A reload through the shared settings handle lifts the limit at once.
    settings.store(crate::stage::Settings::build(config(100), None).expect("valid"));
    assert_eq!(send(&layer, chat("sk-b")).await, StatusCode::OK);
    assert_eq!(send(&layer, chat("sk-b")).await, StatusCode::OK);
}

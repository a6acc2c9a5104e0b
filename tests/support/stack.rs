//! Requests to the guarded stack in-process (`oneshot`), for the suites that
//! drive the layers with a mock upstream.

use axum::body::Body;
use distill_guard::proxy::server::HttpService;
use http::Request;
use serde_json::json;
use tower::ServiceExt;

/// A streamed chat request to `path` (either dialect) with `key` in both key
/// headers, reserving 8,000 output tokens.
pub fn streamed_chat(path: &str, key: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .body(Body::from(
            json!({"model": "m", "stream": true, "max_tokens": 8000,
                "messages": [{"role": "user", "content": "hello"}]})
            .to_string(),
        ))
        .expect("request")
}

/// The tokens left in `key`'s minute bucket, from a request that generates
/// nothing (its answer still reports the buckets, in `path`'s dialect).
pub async fn remaining_tokens(svc: &HttpService, path: &str, key: &str) -> u64 {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    let res = svc.clone().oneshot(req).await.expect("infallible");
    let name = if path.starts_with("/v1/messages") {
        "anthropic-ratelimit-tokens-remaining"
    } else {
        "x-ratelimit-remaining-tokens"
    };
    res.headers()[name]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number")
}

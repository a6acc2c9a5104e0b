//! Guarding an Axum model server with one `.layer(...)`.
//!
//! ```sh
//! cargo run --example axum
//! curl -s localhost:3000/v1/chat/completions -H 'authorization: Bearer sk-1' \
//!      -H 'content-type: application/json' \
//!      -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
//! ```
//!
//! With `--self-test` it serves on a free port, sends a few requests to itself and
//! exits, so the example also runs unattended.

use std::net::SocketAddr;

use axum::extract::Json;
use axum::routing::post;
use axum::{Extension, Router};
use distill_guard::extensions::Decision;
use distill_guard::{Config, Guard};
use serde_json::{json, Value};

/// Your model handler. The guard's decision is available as an extension.
async fn chat(decision: Option<Extension<Decision>>, Json(req): Json<Value>) -> Json<Value> {
    let tier = decision.map(|d| d.tier.to_string()).unwrap_or_default();
    let asked = req["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "my-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": format!("You said: {asked} (tier {tier})")}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_toml_str(
        r#"
        [identity]
        secret = "a long random secret"
        [tiers.default]
        requests_per_minute = 3
        tokens_per_minute = 150000
        "#,
    )?;
    let guard = Guard::from_config(config)?;

    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(chat))
        .layer(guard.layer());

    let self_test = std::env::args().any(|a| a == "--self-test");
    let addr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    let server = axum::serve(
        listener,
        // The guard reads the peer address for network features and anonymous keys.
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !self_test {
        server.await?;
        return Ok(());
    }
    tokio::spawn(async move { server.await });
    let client: hyper_util::client::legacy::Client<_, axum::body::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    for i in 0..4 {
        let req = http::Request::post(format!("http://{local}/v1/chat/completions"))
            .header("authorization", "Bearer sk-example")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
            ))?;
        let res = client.request(req).await?;
        println!(
            "request {i}: {} remaining={:?}",
            res.status(),
            res.headers().get("x-ratelimit-remaining-requests")
        );
        let expected = if i < 3 { 200 } else { 429 };
        if res.status().as_u16() != expected {
            return Err(format!("request {i}: expected {expected}, got {}", res.status()).into());
        }
    }
    println!("self-test passed");
    Ok(())
}

//! The minimal authenticated endpoint that lets `distill-guard trace` search a
//! running server's trace-back index (the index lives in the serving process).
//!
//! Mount it on the admin listener only, never on the public one:
//!
//! ```text
//! POST /admin/watermark/trace
//! Authorization: Bearer <admin token>
//! <the leaked text, UTF-8, at most 1 MiB>
//! ```
//!
//! Answers `200` with a [`TraceResult`](super::TraceResult) as JSON, `404` with
//! `{"found": false}` when neither a mark nor the index attributes the text, `401`
//! without the right token, `413` for a larger body and `400` for a body that is
//! not UTF-8.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use serde_json::json;

use super::state::Watermarker;
use crate::request::{buffer, BufferError};

/// Largest text accepted.
pub const MAX_TRACE_BYTES: u64 = 1024 * 1024;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Handles one trace request against `marker`'s keys and index. `token` is the
/// admin token; an empty token refuses every request.
pub async fn trace_endpoint<B>(
    marker: &Watermarker,
    token: &str,
    req: Request<B>,
) -> Response<Bytes>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.is_empty() || !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        let mut res = respond(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a valid admin token is required"}),
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    if req.method() != http::Method::POST {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "POST the text to trace"}),
        );
    }
    let bytes = match buffer(req, MAX_TRACE_BYTES).await {
        Ok((_, b)) => b,
        Err(BufferError::TooLarge) => {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("the text may be at most {MAX_TRACE_BYTES} bytes")}),
            )
        }
        Err(BufferError::Read(e)) => {
            return respond(StatusCode::BAD_REQUEST, json!({"error": e}));
        }
        Err(BufferError::TimedOut) => {
            return respond(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "the text was not received in time"}),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return respond(
            StatusCode::BAD_REQUEST,
            json!({"error": "the text must be UTF-8"}),
        );
    };
    match marker.trace(text) {
        Some(found) => match serde_json::to_value(&found) {
            Ok(v) => respond(StatusCode::OK, v),
            Err(e) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        },
        None => respond(StatusCode::NOT_FOUND, json!({"found": false})),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::Full;

    use super::*;
    use crate::extensions::{AccountId, ClusterId};
    use crate::watermark::tag::RequestId;
    use crate::watermark::WatermarkConfig;

    const TEXT: &str = "Glaciers advance and retreat over thousands of years, carving wide valleys and leaving behind moraines, lakes and scattered boulders across the landscape.";

    fn marker() -> Arc<Watermarker> {
        let cfg: WatermarkConfig =
            toml::from_str("[[keys]]\nid = \"k1\"\nsecret = \"admin test\"\n").expect("config");
        let m = Arc::new(Watermarker::from_config(&cfg).expect("valid"));
        m.index().insert(
            AccountId([7; 16]),
            ClusterId([8; 16]),
            RequestId([9; 16]),
            5_000,
            TEXT,
        );
        m
    }

    fn req(auth: Option<&str>, body: &str) -> Request<Full<Bytes>> {
        let mut b = Request::post("/admin/watermark/trace");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Full::new(Bytes::from(body.to_owned())))
            .expect("request")
    }

    #[tokio::test]
    async fn traces_with_the_token_only() {
        let m = marker();
        let res = trace_endpoint(&m, "s3cret", req(Some("Bearer s3cret"), TEXT)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
        assert_eq!(v["account"], AccountId([7; 16]).to_string());
        assert_eq!(v["method"], "index");
        for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
            let res = trace_endpoint(&m, "s3cret", req(auth, TEXT)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        }
        let res = trace_endpoint(&m, "", req(Some("Bearer "), TEXT)).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "empty token refuses all"
        );
        let res = trace_endpoint(
            &m,
            "s3cret",
            req(Some("Bearer s3cret"), "unrelated words about cooking rice"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let big = "a ".repeat(MAX_TRACE_BYTES as usize);
        let res = trace_endpoint(&m, "s3cret", req(Some("Bearer s3cret"), &big)).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}

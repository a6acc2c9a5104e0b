//! The two API dialects and the error bodies their SDKs parse.
//!
//! `/v1/messages` (and anything under it) speaks Anthropic; every other path speaks
//! OpenAI. Error bodies follow each provider's shape so that the official SDKs raise
//! their usual exception types (`RateLimitError`, `BadRequestError`, …).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

/// An API dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// OpenAI-style: `/v1/chat/completions`, `/v1/completions`, `/v1/responses`.
    OpenAi,
    /// Anthropic-style: `/v1/messages`.
    Anthropic,
}

impl Dialect {
    /// The lowercase name, for metric labels and JSON: `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        }
    }

    /// The dialect of a request path.
    pub fn from_path(path: &str) -> Self {
        let p = path.trim_end_matches('/');
        if p.ends_with("/v1/messages") || p.contains("/v1/messages/") || p == "/messages" {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }
}

/// What kind of error a guard response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 429: a quota is exhausted.
    RateLimited,
    /// 400: the request can never be served under the quota, or is malformed.
    InvalidRequest,
    /// 401: no API key.
    Unauthenticated,
    /// 403: blocked.
    Forbidden,
    /// 408: the client did not send its request body in time.
    RequestTimeout,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 502: the upstream could not be reached or answered garbage.
    BadGateway,
    /// 503: the guard cannot decide (store down and failing closed).
    Unavailable,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn openai(self) -> (&'static str, Option<&'static str>) {
        match self {
            ErrorKind::RateLimited => ("requests", Some("rate_limit_exceeded")),
            ErrorKind::InvalidRequest => {
                ("invalid_request_error", Some("quota_exceeded_by_request"))
            }
            ErrorKind::Unauthenticated => ("invalid_request_error", Some("invalid_api_key")),
            ErrorKind::Forbidden => ("permission_error", Some("access_denied")),
            ErrorKind::RequestTimeout => ("invalid_request_error", Some("request_timeout")),
            ErrorKind::PayloadTooLarge => ("invalid_request_error", Some("request_too_large")),
            ErrorKind::BadGateway => ("server_error", Some("bad_gateway")),
            ErrorKind::Unavailable => ("server_error", Some("service_unavailable")),
            ErrorKind::GatewayTimeout => ("server_error", Some("timeout")),
        }
    }

    fn anthropic(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Unauthenticated => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::BadGateway => "api_error",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::GatewayTimeout => "timeout_error",
        }
    }
}

/// The JSON error body of `kind` in `dialect`.
pub fn error_body(dialect: Dialect, kind: ErrorKind, message: &str) -> Bytes {
    let value = match dialect {
        Dialect::OpenAi => {
            let (ty, code) = kind.openai();
            json!({"error": {"message": message, "type": ty, "param": null, "code": code}})
        }
        Dialect::Anthropic => {
            json!({"type": "error", "error": {"type": kind.anthropic(), "message": message}})
        }
    };
    Bytes::from(value.to_string())
}

/// A complete error response of `kind` in `dialect`.
pub fn error_response(dialect: Dialect, kind: ErrorKind, message: &str) -> Response<Bytes> {
    let mut res = Response::new(error_body(dialect, kind, message));
    *res.status_mut() = kind.status();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if kind == ErrorKind::Unauthenticated && dialect == Dialect::OpenAi {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// A 429 in `dialect` for a request or token window. OpenAI names the kind of
/// limit in the error's `type`: `requests` for request windows, `tokens` for token
/// windows (what its SDKs expose as `RateLimitError.type`).
pub fn rate_limit_response(dialect: Dialect, tokens: bool, message: &str) -> Response<Bytes> {
    let mut res = error_response(dialect, ErrorKind::RateLimited, message);
    if tokens && dialect == Dialect::OpenAi {
        let value = json!({"error": {"message": message, "type": "tokens", "param": null,
            "code": "rate_limit_exceeded"}});
        *res.body_mut() = Bytes::from(value.to_string());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_by_path() {
        assert_eq!(Dialect::from_path("/v1/messages"), Dialect::Anthropic);
        assert_eq!(Dialect::from_path("/v1/messages/"), Dialect::Anthropic);
        assert_eq!(
            Dialect::from_path("/v1/messages/count_tokens"),
            Dialect::Anthropic
        );
        assert_eq!(Dialect::from_path("/v1/chat/completions"), Dialect::OpenAi);
        assert_eq!(Dialect::from_path("/v1/responses"), Dialect::OpenAi);
    }

    #[test]
    fn bodies_have_each_providers_shape() {
        let o: serde_json::Value = serde_json::from_slice(&error_body(
            Dialect::OpenAi,
            ErrorKind::RateLimited,
            "slow down",
        ))
        .expect("json");
        assert_eq!(o["error"]["code"], "rate_limit_exceeded");
        assert_eq!(o["error"]["message"], "slow down");
        assert!(o["error"]["param"].is_null());
        let a: serde_json::Value = serde_json::from_slice(&error_body(
            Dialect::Anthropic,
            ErrorKind::RateLimited,
            "slow down",
        ))
        .expect("json");
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "rate_limit_error");
        let r = error_response(Dialect::Anthropic, ErrorKind::Forbidden, "no");
        assert_eq!(r.status(), 403);
    }

    #[test]
    fn openai_rate_limits_name_the_kind_of_window() {
        let parse = |r: Response<Bytes>| -> serde_json::Value {
            assert_eq!(r.status(), 429);
            serde_json::from_slice(r.body()).expect("json")
        };
        let t = parse(rate_limit_response(Dialect::OpenAi, true, "slow"));
        assert_eq!(t["error"]["type"], "tokens");
        assert_eq!(t["error"]["code"], "rate_limit_exceeded");
        assert_eq!(t["error"]["message"], "slow");
        assert!(t["error"]["param"].is_null());
        let r = parse(rate_limit_response(Dialect::OpenAi, false, "slow"));
        assert_eq!(r["error"]["type"], "requests");
        let a = parse(rate_limit_response(Dialect::Anthropic, true, "slow"));
        assert_eq!(a["error"]["type"], "rate_limit_error");
    }
}

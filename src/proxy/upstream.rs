//! Forwarding to a real upstream (hyper-util's pooled client): `http://` over
//! HTTP/1.1, `https://` over TLS (rustls with the ring provider) with HTTP/2 when
//! the upstream offers it in ALPN, else HTTP/1.1.
//!
//! TLS trusts the Mozilla root set built into the binary (`webpki-roots`, so a
//! minimal container needs no CA bundle) plus the platform's store; when
//! `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, those certificates take the
//! platform store's place (the OpenSSL convention), e.g. a private CA. The
//! certificate must match the URL's host. The request goes out with the
//! upstream's authority (`Host` on HTTP/1.1, `:authority` on HTTP/2); the
//! client's own `Host` is not forwarded.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::network::PeerAddr;

/// Headers that describe one hop and must not be forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// A reverse-proxy service to one upstream base URL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: Uri,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
}

/// The roots TLS upstreams are verified against: the built-in Mozilla set and
/// the platform's store (or `SSL_CERT_FILE` / `SSL_CERT_DIR` instead of it).
/// An unreadable or empty `SSL_CERT_FILE` is an error: it names a CA the
/// operator means to trust.
fn root_store() -> Result<rustls::RootCertStore, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    let env_file = std::env::var_os("SSL_CERT_FILE");
    if let Some(file) = &env_file {
        if !native.errors.is_empty() || native.certs.is_empty() {
            let why = native.errors.first().map_or_else(
                || "it holds no PEM certificate".to_owned(),
                |e| e.to_string(),
            );
            return Err(UpstreamError::CertFile {
                file: file.into(),
                why,
            });
        }
    }
    for e in &native.errors {
        tracing::warn!(error = %e, "some platform root certificates could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!(added, ignored, "some root certificates could not be parsed");
    }
    Ok(roots)
}

/// The TLS client settings for `https://` upstreams: ring as the crypto provider
/// (set here, not process-wide), TLS 1.2 and 1.3, verified certificates only.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, UpstreamError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Why an [`Upstream`] cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The base URL is refused.
    #[error(transparent)]
    Url(#[from] crate::config::UpstreamUrlError),
    /// `SSL_CERT_FILE` names a file that cannot be read or holds no certificate.
    #[error("SSL_CERT_FILE={}: {why}", file.display())]
    CertFile {
        /// The file.
        file: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The TLS client could not be set up.
    #[error("TLS set-up: {0}")]
    Tls(#[source] crate::request::BoxError),
}

impl Upstream {
    /// Proxies to `base` (`http://host:port` or `https://host[:port]`, with an
    /// optional path prefix), failing a request with 502 when the connection (or
    /// the TLS handshake) cannot be made within `connect_timeout` and with 504
    /// when response headers take longer than `timeout`.
    pub fn new(
        base: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        let base = crate::config::parse_upstream(base)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        // The TLS layer above handles `https`.
        http.enforce_http(false);
        let tls = if base.scheme_str() == Some("https") {
            tls_config(root_store()?)?
        } else {
            // Never used for `http://`; an empty store keeps start-up cheap.
            tls_config(rustls::RootCertStore::empty())?
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            base,
            client,
            timeout,
        })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let base_path = self.base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{base_path}{pq}").parse()?);
        Ok(Uri::from_parts(parts)?)
    }
}

impl tower::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let dialect = Dialect::from_path(req.uri().path());
            let (mut parts, body) = req.into_parts();
            let target = match this.target(&parts.uri) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(error_response(
                        dialect,
                        ErrorKind::BadGateway,
                        &format!("bad upstream path: {e}"),
                    )
                    .map(Body::from))
                }
            };
            strip_hop_by_hop(&mut parts.headers);
            if let Some(peer) = parts.extensions.get::<PeerAddr>() {
                let ip = peer.0.ip().to_string();
                let value = match parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(prev) => format!("{prev}, {ip}"),
                    None => ip,
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    parts.headers.insert("x-forwarded-for", v);
                }
            }
            parts.headers.remove(header::HOST);
            parts.uri = target;
            let mut out = Request::from_parts(parts, body);
            *out.version_mut() = http::Version::HTTP_11;
            match tokio::time::timeout(this.timeout, this.client.request(out)).await {
                Err(_) => Ok(error_response(
                    dialect,
                    ErrorKind::GatewayTimeout,
                    "The model server did not answer in time.",
                )
                .map(Body::from)),
                Ok(Err(e)) => {
                    // The source chain says why (refused, TLS certificate, ...).
                    let mut why = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        why.push_str(": ");
                        why.push_str(&s.to_string());
                        source = s.source();
                    }
                    tracing::warn!(error = %why, "upstream request failed");
                    Ok(error_response(
                        dialect,
                        ErrorKind::BadGateway,
                        "The model server could not be reached.",
                    )
                    .map(Body::from))
                }
                Ok(Ok(res)) => {
                    let (mut parts, body) = res.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Ok(Response::from_parts(parts, Body::new(body)))
                }
            }
        })
    }
}

//! `serve --upstream https://…` against a local TLS server whose certificate
//! chains to a throwaway CA made here, trusted through `SSL_CERT_FILE`: HTTP/2
//! when the upstream offers it in ALPN, HTTP/1.1 when it does not, the
//! upstream's authority on the wire, and a 502 (not a connection to an
//! unverified server) without the CA.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use support::process::{send, serve_with_env};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: http::Version,
    authority: Option<String>,
    host: Option<String>,
    authorization: Option<String>,
}

struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// A CA (its PEM) and a server certificate for `localhost` and 127.0.0.1 signed
/// by it (DER chain and key).
fn certificates() -> (
    String,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "distill-guard test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key"))
            .expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    (ca.pem(), vec![leaf.der().clone()], key_der)
}

/// A TLS upstream offering `alpn`, answering chat completions with what it saw.
async fn upstream(
    alpn: &[&[u8]],
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Upstream {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                // A client that rejects our certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let seen = Seen {
                            version: req.version(),
                            authority: req.uri().authority().map(|a| a.to_string()),
                            host: header("host"),
                            authorization: header("authorization"),
                        };
                        log.lock().expect("log").push(seen.clone());
                        let _ = req.into_body().collect().await;
                        let body = json!({
                            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello over TLS"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                            "seen_version": format!("{:?}", seen.version),
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream {
        port,
        seen,
        _task: task,
    }
}

fn chat(base: &str) -> Request<Body> {
    Request::post(format!("{base}/v1/chat/completions"))
        .header("authorization", "Bearer sk-tls-test")
        .header("content-type", "application/json")
        .header("host", "guard.example")
        .body(Body::from(
            r#"{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .expect("request")
}

fn config() -> tempfile::NamedTempFile {
    support::process::config_file("[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_over_http2_and_http1_with_a_ca_from_ssl_cert_file() {
    let (ca_pem, chain, key) = certificates();
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).expect("write CA");
    let ca = ca_file.to_str().expect("path");
    let cfg = config();
    let cfg_path = cfg.path().to_str().expect("path");

    for (alpn, want) in [
        (
            &[b"h2".as_slice(), b"http/1.1".as_slice()][..],
            http::Version::HTTP_2,
        ),
        (&[b"http/1.1".as_slice()][..], http::Version::HTTP_11),
        (&[][..], http::Version::HTTP_11),
    ] {
        let up = upstream(alpn, chain.clone(), key.clone_key()).await;
        let url = format!("https://localhost:{}", up.port);
        let served = serve_with_env(
            &["--config", cfg_path, "--upstream", &url],
            false,
            &[("SSL_CERT_FILE", ca)],
        );
        let reply = send(chat(&served.url)).await;
        assert_eq!(reply.status, 200, "{alpn:?}: {}", reply.text());
        let v: Value = reply.json();
        assert_eq!(v["choices"][0]["message"]["content"], "hello over TLS");
        assert!(
            reply.headers.contains_key("x-ratelimit-remaining-requests"),
            "guarded"
        );
        let seen = up.seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let s = &seen[0];
        assert_eq!(s.version, want, "{alpn:?}");
        let authority = format!("localhost:{}", up.port);
        match want {
            // HTTP/2 carries the upstream's authority in `:authority`, no Host.
            http::Version::HTTP_2 => {
                assert_eq!(s.authority.as_deref(), Some(authority.as_str()));
                assert_eq!(s.host, None, "no host header next to :authority");
            }
            // HTTP/1.1 carries it in Host, never the client's `guard.example`.
            _ => assert_eq!(s.host.as_deref(), Some(authority.as_str())),
        }
        assert_eq!(s.authorization.as_deref(), Some("Bearer sk-tls-test"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_502_and_never_reaches_the_upstream() {
    let (_ca_pem, chain, key) = certificates();
    let up = upstream(&[b"h2", b"http/1.1"], chain, key).await;
    let cfg = config();
    let url = format!("https://localhost:{}", up.port);
    // No SSL_CERT_FILE: the throwaway CA is in no root store.
    let served = serve_with_env(
        &[
            "--config",
            cfg.path().to_str().expect("path"),
            "--upstream",
            &url,
        ],
        false,
        &[],
    );
    let reply = send(chat(&served.url)).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(up.seen.lock().expect("log").is_empty());
}

#[tokio::test]
async fn a_bad_ssl_cert_file_stops_serve_at_start() {
    let cfg = config();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_distill-guard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            cfg.path().to_str().expect("path"),
            "--upstream",
            "https://localhost:1",
        ])
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SSL_CERT_FILE=/nonexistent/ca.pem"), "{err}");
}

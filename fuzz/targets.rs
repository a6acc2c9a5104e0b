// The fuzz targets' bodies, shared by the cargo-fuzz crate (`fuzz/`, libFuzzer on
// nightly) and by `tests/fuzz_targets.rs` (the same bodies driven by proptest and
// the seed corpora on stable, so CI runs them on every build). Each takes the
// fuzzer's bytes, feeds them to one parser that reads outside input, and checks
// what must hold whatever the input: no panic, no hang, bounded output.
//
// Included with `include!`: items only, no inner attributes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use distill_guard::encoding::{Coding, Decoder};
use distill_guard::extensions::{AccountId, Action, Cluster, ClusterId, Decision};
use distill_guard::fingerprint::{Fingerprint, FingerprintSection, FingerprintSettings};
use distill_guard::quota::usage::UsageScanner;
use distill_guard::request::RequestInfo;
use distill_guard::watermark::{WatermarkConfig, WatermarkLayer, Watermarker};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};

/// The input cut in two at its first byte's position: a selector and the rest.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((k, rest)) => (*k, rest),
        None => (0, &[]),
    }
}

/// Chunk boundaries taken from the input itself, so every split is tried.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let step = usize::from(seed % 61) + 1;
    data.chunks(step).collect()
}

/// Request bodies of both dialects through the body parser and the fingerprint
/// extractor (the outermost stage's work on every request).
pub fn request_body(data: &[u8]) {
    let (k, body) = split(data);
    let path = match k % 4 {
        0 => "/v1/chat/completions",
        1 => "/v1/messages",
        2 => "/v1/responses",
        _ => "/v1/completions",
    };
    let info = RequestInfo::parse(path, Bytes::copy_from_slice(body));
    assert!(info.body.len() == body.len());
    let settings = FingerprintSettings::default();
    let fp = Fingerprint::compute(&HeaderMap::new(), None, &info, &settings);
    let _ = fp.features();
}

/// Header values a client controls: the API key (both headers), forwarding
/// headers (from a trusted and an untrusted peer), the user agent, and every
/// other header the fingerprint reads.
pub fn headers(data: &[u8]) {
    let mut h = HeaderMap::new();
    let names = [
        "authorization",
        "x-api-key",
        "x-forwarded-for",
        "forwarded",
        "user-agent",
        "x-stainless-lang",
        "x-stainless-package-version",
        "anthropic-version",
        "accept",
        "x-request-id",
    ];
    for (i, value) in data.split(|b| *b == b'\n').enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(HeaderName::from_static(names[i % names.len()]), v);
        }
    }
    let id = distill_guard::identity::Identity::new(b"fuzz secret");
    let _ = id.account_of(&h, &http::Extensions::new());
    let peer: std::net::IpAddr = [10, 0, 0, 1].into();
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
    let _ = distill_guard::network::client_ip(&h, Some(peer), &trusted);
    let _ = distill_guard::network::client_ip(&h, Some(peer), &[]);
    let _ = distill_guard::request::request_id(&h);
    let section = FingerprintSection {
        tls_fingerprint_header: Some("x-ja4".into()),
        ..FingerprintSection::default()
    };
    let settings = FingerprintSettings::from_section(&section, trusted).expect("settings");
    let info = RequestInfo::parse("/v1/chat/completions", Bytes::from_static(b"{}"));
    let _ = Fingerprint::compute(&h, Some(peer), &info, &settings).features();
}

/// The usage scanner over a response body of either kind, in chunks, plain or
/// behind a content coding (the decoder sees the same bytes).
pub fn usage_scanner(data: &[u8]) {
    let (k, body) = split(data);
    let mut h = HeaderMap::new();
    let ct = if k & 1 == 0 {
        "text/event-stream"
    } else {
        "application/json"
    };
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    let coding =
        ["identity", "gzip", "deflate", "br", "zstd", "x-unknown"][usize::from(k >> 1) % 6];
    h.insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static(coding),
    );
    let mut s = UsageScanner::for_response(&h);
    for c in chunks(body, k) {
        s.feed(c);
    }
    let u = s.finish();
    let _ = (u, s.estimated_output(), s.unreadable());
}

/// The streaming decoders alone: any bytes, any split, never more than the
/// per-chunk bound out.
pub fn decoder(data: &[u8]) {
    let (k, body) = split(data);
    let coding = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd][usize::from(k) % 4];
    let Ok(mut d) = Decoder::new(coding) else {
        return;
    };
    for c in chunks(body, k) {
        match d.feed(c) {
            Ok(out) => assert!(out.len() <= distill_guard::encoding::MAX_DECODED_CHUNK),
            Err(_) => return,
        }
    }
    let _ = d.finish();
}

/// A body that yields the given chunks.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn watermarker() -> Arc<Watermarker> {
    static M: OnceLock<Arc<Watermarker>> = OnceLock::new();
    M.get_or_init(|| {
        let cfg: WatermarkConfig = toml::from_str(
            "tag = \"always\"\ntext_mark = true\nmark_every_words = 3\n[[keys]]\nid = \"k1\"\nsecret = \"fuzz watermark secret\"\n",
        )
        .expect("config");
        Arc::new(Watermarker::from_config(&cfg).expect("valid"))
    })
    .clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// An answer through the watermark stage as the upstream sent it: SSE streams
/// through the tag rewriter and text marks, JSON bodies through tag injection,
/// both dialects, in chunks.
pub fn watermark_body(data: &[u8]) {
    let (k, body) = split(data);
    let ct = if k & 1 == 0 {
        "text/event-stream"
    } else {
        "application/json"
    };
    let path = if k & 2 == 0 {
        "/v1/chat/completions"
    } else {
        "/v1/messages"
    };
    let pieces: VecDeque<Bytes> = chunks(body, k >> 2)
        .into_iter()
        .map(Bytes::copy_from_slice)
        .collect();
    let upstream = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let pieces = pieces.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header(http::header::CONTENT_TYPE, ct)
                    .body(Chunks(pieces))
                    .expect("response"),
            )
        }
    });
    let mut req = Request::post(path)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    req.extensions_mut().insert(Decision {
        request_id: None,
        account: AccountId([1; 16]),
        cluster: Cluster {
            id: ClusterId([2; 16]),
            size: 3,
        },
        suspicion: 0.9,
        action: Action::Tag,
        status: 200,
        limited_by: None,
        shadowed: false,
        reserved_tokens: 10,
        tier: "default".into(),
        model_group: None,
        limited_in_group: false,
        reasons: Vec::new(),
    });
    let m = watermarker();
    let out = runtime().block_on(async move {
        let res = WatermarkLayer::new(m)
            .layer(upstream)
            .oneshot(req)
            .await
            .expect("infallible");
        res.into_body().collect().await.expect("body").to_bytes()
    });
    // Tags and marks add a bounded amount per byte; nothing is lost wholesale.
    assert!(
        out.len() <= body.len() * 8 + 4096,
        "{} -> {}",
        body.len(),
        out.len()
    );
}

/// Config files: every error reported, nothing panics.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = distill_guard::Config::from_toml_str(text) {
        let _ = cfg.validate();
    }
}

/// Provenance tags as `verify` reads them from a header, a JSON field or an SSE
/// comment line.
pub fn tag(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let keys = watermarker();
    let _ = distill_guard::watermark::tag::extract_token(&text);
    let _ = keys.verify(&text);
}

/// The text-mark decoder and stripper over any text (a suspected leak, a prompt
/// that may echo marks).
pub fn text_marks(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let m = watermarker();
    let _ = m.detect_marks(&text);
    // No run of four or more mark characters (a whole or damaged group) survives.
    let stripped = distill_guard::watermark::mark::strip_marks(&text);
    let mut run = 0;
    for c in stripped.chars() {
        run = if distill_guard::watermark::mark::is_mark_char(c) {
            run + 1
        } else {
            0
        };
        assert!(run < 4, "a mark group survived stripping");
    }
}

/// One line of recorded traffic, as `replay` reads it.
pub fn replay_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(line) = distill_guard::replay::format::parse_line(1, &text) {
        let _ = line.to_request(1);
    }
    let _ = distill_guard::replay::format::parse_decision(1, &text);
}

/// One batch of the cluster log replicas share through Redis.
pub fn share_codec(data: &[u8]) {
    if let Ok(n) = distill_guard::cluster::share::decode_batch_len(data) {
        assert!(n <= data.len());
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the stable tests and the corpus replay walk it).
pub const TARGETS: [(&str, Target); 10] = [
    ("request_body", request_body),
    ("headers", headers),
    ("usage_scanner", usage_scanner),
    ("decoder", decoder),
    ("watermark_body", watermark_body),
    ("config", config),
    ("tag", tag),
    ("text_marks", text_marks),
    ("replay_line", replay_line),
    ("share_codec", share_codec),
];

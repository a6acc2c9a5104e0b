//! Request fingerprints: what a request reveals about the software, network,
//! automation and prompt template behind it.
//!
//! [`Fingerprint::compute`] reads a request's headers, TCP peer and parsed body
//! ([`RequestInfo`](crate::request::RequestInfo)) and returns a [`Fingerprint`]
//! with four parts:
//!
//! - [`ClientFingerprint`]: our own header-order hash, the user-agent family and
//!   version, the official SDKs' `x-stainless-*` headers, `anthropic-version`,
//!   accept headers, an upstream TLS fingerprint (e.g. JA4) from a trusted proxy,
//!   and [`Inconsistency`] flags when the headers contradict the user-agent.
//! - [`NetworkFingerprint`]: the client's IPv4 /24 or IPv6 /48 (forwarding headers
//!   only from trusted proxies, see [`crate::network`]), ASN and datacenter tags
//!   from a trusted proxy.
//! - [`ShapeFingerprint`]: JSON key order, the parameter vector, tools, the role
//!   sequence.
//! - [`TemplateFingerprint`]: the exact hash of the normalised system prompt,
//!   SimHash and MinHash/LSH signatures ([`WindowSketch`]) of the head and tail
//!   of the last user turn with its payload masked, and content signals
//!   (chain-of-thought elicitation, task category, length).
//!
//! [`Fingerprint::features`] turns it into the [`Feature`](crate::features::Feature)s
//! the clustering stage links accounts by. All hashes are seeded, stable 64-bit
//! hashes, identical across runs and machines.
//!
//! ```
//! use distill_guard::features::FeatureKind;
//! use distill_guard::fingerprint::{Fingerprint, FingerprintSettings};
//! use distill_guard::request::RequestInfo;
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("user-agent", "OpenAI/Python 1.54.3".parse().unwrap());
//! headers.insert("x-stainless-lang", "python".parse().unwrap());
//! let info = RequestInfo::parse(
//!     "/v1/chat/completions",
//!     bytes::Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#),
//! );
//! let fp = Fingerprint::compute(&headers, None, &info, &FingerprintSettings::default());
//! assert_eq!(fp.client.user_agent.as_ref().unwrap().family, "openai-python");
//! assert!(!fp.inconsistent());
//! assert!(fp.features().iter().any(|f| f.kind == FeatureKind::HeadLshBand));
//! ```
//!
//! See `docs/fingerprint.md` for the spoofing model and the config reference.

mod behaviour;
mod body;
mod client;
mod compute;
pub(crate) mod hash;
mod network;
mod settings;
mod shape;
mod sketch;
mod template;
mod text;
mod useragent;

pub use crate::config::FingerprintSection;
pub use behaviour::{Behaviour, Turns};
pub use client::{ClientFingerprint, Inconsistency, Stainless, VOLATILE_HEADERS};
pub use compute::Fingerprint;
pub use network::NetworkFingerprint;
pub use settings::FingerprintSettings;
pub use shape::{log2_bucket, Params, ShapeFingerprint, Tools};
pub use sketch::WindowSketch;
pub use template::{CotSignals, TaskCategory, TemplateFingerprint};
pub use useragent::{parse as parse_user_agent, ClientKind, UserAgent};

#[cfg(test)]
mod tests;

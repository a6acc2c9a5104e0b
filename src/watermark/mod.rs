//! The watermark stage: tag what suspicious clusters receive, and trace harvested
//! text back to the account that received it.
//!
//! It is the innermost guard stage (fingerprint → enforce → **watermark** → your
//! handler). For each request it reads the enforce stage's
//! [`Decision`](crate::extensions::Decision) from the request extensions (or, used
//! alone, the [`Account`](crate::extensions::Account),
//! [`Cluster`](crate::extensions::Cluster), [`Suspicion`](crate::extensions::Suspicion)
//! and [`Verdict`](crate::extensions::Verdict) extensions) and decides by
//! `[watermark] tag` whether the response is tagged:
//!
//! * a **signed provenance tag** ([`tag`]) in the [`TAG_HEADER`] response header;
//!   in JSON bodies also as a top-level `distill_guard` object ([`json`]); in SSE
//!   streams as comment lines, with a final record carrying the digest of what was
//!   streamed ([`sse`]). Successful responses only; compressed bodies
//!   (`Content-Encoding` other than `identity`) and other content types get the
//!   header tag only;
//! * optionally an invisible **text mark** in the prose ([`mark`]);
//! * an entry in the bounded **trace-back index** ([`index`]).
//!
//! [`verify`] and [`trace()`] are the library forms of `distill-guard verify` and
//! `distill-guard trace`. Requests are also cleaned of our marks before the
//! handler sees them.
//!
//! ```
//! use std::sync::Arc;
//! use distill_guard::watermark::{Watermarker, WatermarkConfig, WatermarkLayer};
//!
//! let cfg: WatermarkConfig = toml::from_str(r#"
//!     tag = "always"
//!     text_mark = true
//!     [[keys]]
//!     id = "k1"
//!     secret = "a long random secret"
//! "#).expect("valid section");
//! let marker = Arc::new(Watermarker::from_config(&cfg).expect("valid"));
//! let layer = WatermarkLayer::new(marker.clone());
//! # let _ = layer;
//! assert!(marker.verify("dg1.k1.AAAA.AAAA").is_err());
//! ```

pub mod admin;
mod body;
mod future;
pub mod index;
mod issue;
pub mod json;
mod layer;
pub mod mark;
mod service;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod share;
pub mod sse;
mod state;
pub mod tag;
pub mod trace;

pub use crate::config::{KeyConfig, SecretError, TagPolicy, TextMarkPolicy, WatermarkConfig};
pub use body::WatermarkBody;
pub use future::WatermarkFuture;
pub use index::{IndexMatch, TraceIndex};
pub use layer::WatermarkLayer;
pub use mark::{detect_marks, echoes, strip_marks, strip_marks_json, DetectedMark, MarkEcho};
pub use service::Watermark;
pub use state::{Subject, Watermarker};
pub use tag::{verify, Keys, SigningKey, TagFields, TagKind, VerifyError};
pub use trace::{trace, TraceMethod, TraceResult};

/// The response header that carries the tag.
pub const TAG_HEADER: &str = "x-distill-guard-tag";

#[cfg(test)]
mod tests;

//! One tagged response's signing context, shared by the JSON and SSE rewriters.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::index::TraceIndex;
use super::mark::MarkPlan;
use super::tag::{ContentDigest, Keys, RequestId, TagFields, TagKind};
use crate::extensions::{AccountId, ClusterId};

/// Who and when a response is tagged for, and with which keys.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub(crate) keys: Keys,
    pub(crate) account: AccountId,
    pub(crate) cluster: ClusterId,
    pub(crate) request_id: RequestId,
    pub(crate) issued_at_ms: u64,
    /// The text mark to apply, when this response is marked.
    pub(crate) mark: Option<Arc<MarkPlan>>,
    pub(crate) index: Option<Arc<TraceIndex>>,
    pub(crate) index_text_bytes: usize,
}

impl Issue {
    /// Signs a tag of `kind` with the given digests.
    pub(crate) fn sign(
        &self,
        kind: TagKind,
        text_digest: Option<ContentDigest>,
        stream: Option<(ContentDigest, u64)>,
    ) -> String {
        self.keys.sign(&TagFields {
            key_id: String::new(),
            kind,
            account: self.account,
            cluster: self.cluster,
            request_id: self.request_id,
            issued_at_ms: self.issued_at_ms,
            text_marked: self.mark.is_some(),
            text_digest,
            stream_digest: stream.map(|(d, _)| d),
            stream_bytes: stream.map(|(_, n)| n),
        })
    }

    /// A sink for the generated text of this response.
    pub(crate) fn text_sink(&self) -> TextSink {
        TextSink {
            hash: Sha256::new(),
            kept: String::new(),
            limit: if self.index.is_some() {
                self.index_text_bytes
            } else {
                0
            },
        }
    }

    /// Adds the response's text to the trace-back index.
    pub(crate) fn record(&self, text: &str) {
        if let Some(index) = &self.index {
            index.insert(
                self.account,
                self.cluster,
                self.request_id,
                self.issued_at_ms,
                text,
            );
        }
    }
}

/// Digests the generated text as delivered and keeps a bounded prefix of it for
/// the index.
#[derive(Debug, Clone)]
pub(crate) struct TextSink {
    hash: Sha256,
    kept: String,
    limit: usize,
}

impl TextSink {
    pub(crate) fn push(&mut self, text: &str) {
        self.hash.update(text.as_bytes());
        let room = self.limit.saturating_sub(self.kept.len());
        if room > 0 {
            let mut end = room.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.kept.push_str(&text[..end]);
        }
    }

    /// Separates the texts of different fields (choices, content blocks).
    pub(crate) fn separate(&mut self) {
        if !self.kept.is_empty() && self.kept.len() < self.limit {
            self.kept.push_str("\n\n");
        }
    }

    pub(crate) fn digest(&self) -> ContentDigest {
        ContentDigest::from_sha256(self.hash.clone().finalize().as_slice())
    }

    pub(crate) fn kept(&self) -> &str {
        &self.kept
    }
}

//! [`Watermarker`]: the watermark stage's state (keys, policy, index), built from
//! `[watermark]` and shared by every clone of the service through an `Arc`.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::Extensions;
use sha2::{Digest, Sha256};

use super::index::TraceIndex;
use super::issue::Issue;
use super::mark::{self, DetectedMark, MarkEcho, MarkPayload, MarkPlan};
use super::tag::{self, Keys, RequestId, TagFields, VerifyError};
use super::trace::{self, TraceResult};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    validate_watermark as validate, ConfigError, TagPolicy, TextMarkPolicy, WatermarkConfig,
};
use crate::extensions::{
    Account, AccountId, Action, Cluster, ClusterId, Decision, HardLink, Suspicion, Verdict,
};
use crate::request::RequestInfo;

/// Who a request is served to and how suspicious it is: what the tagging policy
/// looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subject {
    /// The account.
    pub account: AccountId,
    /// Its cluster.
    pub cluster: ClusterId,
    /// The rung of the action ladder.
    pub action: Action,
    /// Suspicion, `0..=1`.
    pub suspicion: f64,
}

impl Subject {
    /// From the request's extensions: the enforce stage's [`Decision`] when
    /// present, else [`Account`], [`Cluster`], [`Suspicion`] and [`Verdict`] as
    /// the fingerprint stage or the host application set them. `None` when the
    /// request has no account: such responses are never tagged.
    pub fn of(ext: &Extensions) -> Option<Self> {
        if let Some(d) = ext.get::<Decision>() {
            return Some(Self {
                account: d.account,
                cluster: d.cluster.id,
                action: d.action,
                suspicion: d.suspicion,
            });
        }
        let account = ext.get::<Account>()?.id;
        Some(Self {
            account,
            cluster: ext
                .get::<Cluster>()
                .map_or_else(|| ClusterId::of_account(account), |c| c.id),
            action: ext.get::<Verdict>().map_or(Action::Allow, |v| v.action),
            suspicion: ext.get::<Suspicion>().map_or(0.0, |s| s.value()),
        })
    }
}

/// The watermark stage's state. Build it once from the config and share it.
pub struct Watermarker {
    policy: TagPolicy,
    threshold: f64,
    text_mark: TextMarkPolicy,
    every: u32,
    pub(crate) in_body: bool,
    pub(crate) max_json_bytes: u64,
    pub(crate) max_line_bytes: usize,
    index_text_bytes: usize,
    keys: Option<Keys>,
    index: Arc<TraceIndex>,
    clock: Arc<dyn Clock>,
    seed: [u8; 16],
    counter: AtomicU64,
}

impl std::fmt::Debug for Watermarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watermarker")
            .field("policy", &self.policy)
            .field("text_mark", &self.text_mark)
            .field(
                "keys",
                &self
                    .keys
                    .as_ref()
                    .map(|k| k.iter().map(|k| k.id().to_owned()).collect::<Vec<_>>()),
            )
            .field("indexed", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Watermarker {
    /// Validates `[watermark]` and builds the stage's state, with the system clock
    /// and a new index of `index_max_entries`.
    pub fn from_config(cfg: &WatermarkConfig) -> Result<Self, ConfigError> {
        let errors = validate(cfg);
        if !errors.is_empty() {
            return Err(ConfigError { errors });
        }
        let keys = if cfg.keys.is_empty() {
            None
        } else {
            Some(Keys::from_config(&cfg.keys)?)
        };
        let mut seed = [0u8; 16];
        for half in seed.chunks_mut(8) {
            // `RandomState` is seeded from the operating system's randomness.
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x6467_7761_7465_726d);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        Ok(Self {
            policy: cfg.effective_tag(),
            threshold: cfg.suspicion_threshold,
            text_mark: cfg.text_mark,
            every: cfg.mark_every_words,
            in_body: cfg.in_body,
            max_json_bytes: cfg.max_json_bytes,
            max_line_bytes: usize::try_from(cfg.max_line_bytes).unwrap_or(usize::MAX),
            index_text_bytes: cfg.index_text_bytes,
            keys,
            index: Arc::new(TraceIndex::new(cfg.index_max_entries)),
            clock: Arc::new(SystemClock),
            seed,
            counter: AtomicU64::new(0),
        })
    }

    /// Reads time from `clock` (tests and replay use a `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `index` (for example the previous one, kept across a config reload).
    pub fn with_index(mut self, index: Arc<TraceIndex>) -> Self {
        self.index = index;
        self
    }

    /// The keys, if any are configured.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The trace-back index.
    pub fn index(&self) -> &Arc<TraceIndex> {
        &self.index
    }

    /// Checks a tag (see [`tag::verify`]).
    pub fn verify(&self, input: &str) -> Result<TagFields, VerifyError> {
        match &self.keys {
            Some(keys) => tag::verify(input, keys),
            None => Err(VerifyError::UnknownKey(
                tag::extract_token(input)
                    .and_then(|t| t.split('.').nth(1))
                    .unwrap_or("")
                    .to_string(),
            )),
        }
    }

    /// Traces leaked text to the account that received it (see [`trace::trace`]).
    pub fn trace(&self, text: &str) -> Option<TraceResult> {
        trace::trace(text, self.keys.as_ref(), Some(&self.index))
    }

    /// Every authenticated mark in `text`.
    pub fn detect_marks(&self, text: &str) -> Vec<DetectedMark> {
        self.keys
            .as_ref()
            .map_or_else(Vec::new, |k| mark::detect_marks(text, k))
    }

    /// Marks in a prompt from `current` that were issued to other accounts.
    pub fn echoes(&self, prompt: &str, current: &AccountId) -> Vec<MarkEcho> {
        self.keys
            .as_ref()
            .map_or_else(Vec::new, |k| mark::echoes(prompt, current, k))
    }

    /// The hard links a request from `account` carries through text marks (a
    /// [`LinkSource`](crate::detect::LinkSource) for the detect stage): with keys
    /// configured, the account's own mark link (what its marked answers are
    /// traced by) and the link of every other account whose marks the prompt
    /// echoes, so an operator feeding one account's harvested answers to another
    /// links the two outright. Links already in `links` are not repeated.
    pub fn echo_links(
        &self,
        account: &AccountId,
        request: &RequestInfo,
        links: &mut Vec<HardLink>,
    ) {
        if self.keys.is_none() {
            return;
        }
        let own = mark::source_link(account);
        if !links.contains(&own) {
            links.push(own);
        }
        if !mark::contains_mark_bytes(&request.body) {
            return;
        }
        if let Some(json) = &request.json {
            for echo in self.echoes(&mark::marked_strings(json), account) {
                if !links.contains(&echo.link) {
                    links.push(echo.link);
                }
            }
        }
    }

    /// Whether a response to `subject` is tagged, and whether it is marked.
    pub fn policy_for(&self, subject: &Subject) -> (bool, bool) {
        if self.keys.is_none() {
            return (false, false);
        }
        let tag = match self.policy {
            TagPolicy::Always => true,
            TagPolicy::Never => false,
            TagPolicy::Suspicious => {
                subject.action >= Action::Tag || subject.suspicion >= self.threshold
            }
        };
        (tag, tag && self.text_mark.applies(subject.action))
    }

    /// The signing context for a response to a request with these extensions, or
    /// `None` when it is not tagged.
    ///
    /// The tag's request id is the request's `x-request-id` (`request_id`) when it
    /// has one, so `/api/decisions/{request_id}` finds a tagged answer's decision.
    pub(crate) fn issue_for(
        self: &Arc<Self>,
        ext: &Extensions,
        request_id: Option<&str>,
    ) -> Option<Issue> {
        let subject = Subject::of(ext)?;
        let (tag, marked) = self.policy_for(&subject);
        if !tag {
            return None;
        }
        let keys = self.keys.clone()?;
        let issued_at_ms = self.clock.now_ms();
        let mark = marked.then(|| {
            Arc::new(MarkPlan::new(
                &MarkPayload::new(subject.account, subject.cluster, issued_at_ms),
                keys.signing(),
                self.every,
            ))
        });
        Some(Issue {
            keys,
            account: subject.account,
            cluster: subject.cluster,
            request_id: match request_id {
                Some(id) => RequestId::of_request(id),
                None => self.next_request_id(issued_at_ms),
            },
            issued_at_ms,
            mark,
            index: (self.index.capacity() > 0).then(|| self.index.clone()),
            index_text_bytes: self.index_text_bytes,
        })
    }

    fn next_request_id(&self, now_ms: u64) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update(n.to_le_bytes())
            .chain_update(now_ms.to_le_bytes())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        RequestId(id)
    }
}

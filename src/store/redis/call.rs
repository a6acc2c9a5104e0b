//! One call of a batched script: an admission waiting for the batching task
//! ([`Pending`]) or a charge (a settlement, or a lease given back).

use tokio::sync::oneshot;

use super::script;
use super::settle_queue::Charge;
use crate::store::{StoreError, Subject};

/// An admission queued for the next batched script call.
pub(super) struct Pending {
    pub(super) now_ms: u64,
    /// Requests to charge: 1 for an admission, more for a lease.
    pub(super) requests: f64,
    pub(super) tokens: f64,
    /// One to four subjects, in the order of [`Admission::subjects`](crate::store::Admission::subjects).
    pub(super) subjects: Vec<Subject>,
    /// Where its reply goes; closed when the caller gave up (timeout, cancel).
    pub(super) reply: oneshot::Sender<Result<script::AdmitReply, StoreError>>,
}

/// One call of a script batch: an admission or a charge.
pub(super) trait Call {
    /// Its time, requests and tokens.
    fn amounts(&self) -> (u64, f64, f64);
    /// Its subjects, one to four.
    fn subjects(&self) -> impl Iterator<Item = &Subject>;
}

impl Call for Pending {
    fn amounts(&self) -> (u64, f64, f64) {
        (self.now_ms, self.requests, self.tokens)
    }

    fn subjects(&self) -> impl Iterator<Item = &Subject> {
        self.subjects.iter()
    }
}

impl Call for Charge {
    fn amounts(&self) -> (u64, f64, f64) {
        (self.now_ms, self.requests, self.tokens)
    }

    fn subjects(&self) -> impl Iterator<Item = &Subject> {
        self.subjects.iter()
    }
}

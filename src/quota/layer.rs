use std::sync::Arc;

use tower::Layer;

use super::service::Enforce;
use crate::guard::Shared;

/// Applies [`Enforce`]: per-account and per-cluster quotas for requests and tokens.
#[derive(Debug, Clone)]
pub struct EnforceLayer {
    pub(crate) shared: Arc<Shared>,
}

impl<S> Layer<S> for EnforceLayer {
    type Service = Enforce<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Enforce {
            inner,
            shared: self.shared.clone(),
        }
    }
}

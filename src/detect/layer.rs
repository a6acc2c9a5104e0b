use std::sync::Arc;

use tower::Layer;

use super::service::Detect;
use crate::guard::Shared;

/// Applies [`Detect`]: fingerprinting, account linking and scoring.
#[derive(Debug, Clone)]
pub struct DetectLayer {
    pub(crate) shared: Arc<Shared>,
}

impl DetectLayer {
    /// The detect stage over a guard's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for DetectLayer {
    type Service = Detect<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Detect {
            inner,
            shared: self.shared.clone(),
        }
    }
}

use std::sync::Arc;

use tower::Layer;

use super::service::Watermark;
use super::state::Watermarker;

/// Applies [`Watermark`]: signed provenance tags, optional text marks and the
/// trace-back index. Cheap to clone: every service shares one [`Watermarker`].
#[derive(Debug, Clone)]
pub struct WatermarkLayer {
    marker: Arc<Watermarker>,
}

impl WatermarkLayer {
    /// A layer over shared watermark state.
    pub fn new(marker: Arc<Watermarker>) -> Self {
        Self { marker }
    }

    /// The shared state (keys, index) for `verify` and `trace`.
    pub fn watermarker(&self) -> &Arc<Watermarker> {
        &self.marker
    }
}

impl<S> Layer<S> for WatermarkLayer {
    type Service = Watermark<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Watermark::new(inner, self.marker.clone())
    }
}

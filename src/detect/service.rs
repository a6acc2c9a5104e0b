use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::Service;

use super::body::DetectBody;
use super::degrade::degrade_body;
use super::layer::DetectState;
use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::extensions::{
    Account, AccountId, Action, Cluster, HardLink, Suspicion, TierName, Verdict,
};
use crate::network;
use crate::request::RequestInfo;
use crate::stage::prepare;

/// The detect stage: fingerprints each request, links its account into a
/// cluster, scores it, and inserts `Fingerprint`, [`Cluster`], [`Suspicion`] and
/// [`Verdict`] extensions for the stages inside. A `degrade` verdict rewrites the
/// body (see [`crate::detect`]). See [`crate::detect`].
#[derive(Clone)]
pub struct Detect<S> {
    pub(crate) inner: S,
    pub(crate) state: Arc<DetectState>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Detect<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detect")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The future of [`Detect`]. Preparation awaits the body, so it is boxed once.
pub type DetectFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<DetectBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Detect<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + Send + 'static,
{
    type Response = Response<DetectBody<ResBody>>;
    type Error = S::Error;
    type Future = DetectFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(detect(state, inner, req))
    }
}

async fn detect<S, ReqBody, ResBody>(
    state: Arc<DetectState>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<DetectBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body,
{
    let settings = state.settings.load();
    if !settings.enabled {
        return Ok(inner.call(req).await?.map(DetectBody::inner));
    }
    let mut req = match prepare(&settings, req).await {
        Ok(r) => r,
        Err(res) => return Ok(res.map(DetectBody::full)),
    };
    let (Some(account), Some(info)) = (
        req.extensions().get::<Account>().copied(),
        req.extensions().get::<Arc<RequestInfo>>().cloned(),
    ) else {
        let res = error_response(
            Dialect::from_path(req.uri().path()),
            ErrorKind::Unavailable,
            "The guard could not identify this request.",
        );
        return Ok(res.map(DetectBody::full));
    };
    let detector = &state.detector;
    let now_ms = state.clock.now_ms();
    let links = hard_links(&state, &req, account.id, &info);
    let d = detector.detect(
        account.id,
        req.headers(),
        network::peer_of(req.extensions()),
        &info,
        &links,
        now_ms,
    );
    let ext = req.extensions_mut();
    // What the host application decided itself wins over detection.
    if ext.get::<Cluster>().is_none() {
        ext.insert(d.cluster);
    }
    if ext.get::<Suspicion>().is_none() {
        ext.insert(d.suspicion);
    }
    let verdict = match ext.get::<Verdict>() {
        Some(v) => v.clone(),
        None => {
            ext.insert(d.verdict.clone());
            d.verdict
        }
    };
    ext.insert(d.fingerprint);

    if verdict.action == Action::Degrade {
        let tier = settings.tier_for(
            &account.id,
            req.extensions().get::<TierName>().map(|t| &*t.0),
        );
        let shadow = settings.shadow || tier.shadow;
        let cap = detector.scorer().config().degrade_max_output_tokens;
        if let (false, Some(json)) = (shadow, info.json.as_ref()) {
            if let Some(bytes) = degrade_body(info.endpoint, json, cap) {
                let path = req.uri().path().to_owned();
                let (mut parts, _old) = req.into_parts();
                parts
                    .headers
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                parts
                    .extensions
                    .insert(Arc::new(RequestInfo::parse(&path, bytes.clone())));
                req = Request::from_parts(parts, ReqBody::from(bytes));
            }
        }
    }
    Ok(inner.call(req).await?.map(DetectBody::inner))
}

/// The hard links of a request: the host application's `HardLink` extension,
/// and those the stage's [`LinkSource`](super::LinkSource) finds (the guard's
/// watermark stage: text marks echoed from other accounts' answers).
fn hard_links<B>(
    state: &DetectState,
    req: &Request<B>,
    account: AccountId,
    info: &RequestInfo,
) -> Vec<HardLink> {
    let mut links: Vec<HardLink> = req
        .extensions()
        .get::<HardLink>()
        .cloned()
        .into_iter()
        .collect();
    state.links.links(&account, info, &mut links);
    links
}

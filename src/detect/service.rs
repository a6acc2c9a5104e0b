use std::future::Ready;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};

use super::body::DetectBody;
use super::degrade::degrade_body;
use super::stage::DetectStage;
use crate::extensions::{AccountId, Action, Cluster, HardLink, Suspicion, TierName, Verdict};
use crate::network;
use crate::request::RequestInfo;
use crate::stage::{
    prepared, unprepared, Sealed, Settings, Stage, StageFuture, StageService, Step,
};

/// The detect stage: fingerprints each request, links its account into a
/// cluster, scores it, and inserts `Fingerprint`, [`Cluster`], [`Suspicion`] and
/// [`Verdict`] extensions for the stages inside. A `degrade` verdict rewrites the
/// body (see [`crate::detect`]).
pub type Detect<S> = StageService<DetectStage, S>;

/// The response future of [`Detect`].
pub type DetectFuture<S, ReqBody, ResBody> = StageFuture<DetectStage, S, ReqBody, ResBody>;

impl Sealed for DetectStage {}

impl<ReqBody, ResBody> Stage<ReqBody, ResBody> for DetectStage
where
    ReqBody: From<Bytes>,
{
    /// Detection never waits.
    type Wait = Ready<()>;
    type Plan = ();
    type Ctx = ();
    type Body = DetectBody<ResBody>;

    fn settings(&self) -> Arc<Settings> {
        self.settings.load()
    }

    fn start(
        &self,
        settings: &Settings,
        mut req: Request<ReqBody>,
    ) -> Step<Request<ReqBody>, Ready<()>, (), ()> {
        let Some((account, info)) = prepared(&req) else {
            return Step::Answer(unprepared(&req));
        };
        let links = hard_links(self, &req, account.id, &info);
        let d = self.detector.detect(
            account.id,
            req.headers(),
            network::peer_of(req.extensions()),
            &info,
            &links,
            self.clock.now_ms(),
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
            req = self.degrade(settings, req, account.id, &info);
        }
        Step::Call(req, ())
    }

    fn resume(
        &self,
        _: (),
        req: Request<ReqBody>,
        _: (),
    ) -> Step<Request<ReqBody>, Ready<()>, (), ()> {
        Step::Call(req, ())
    }

    fn finish(_: &Arc<Self>, _: (), res: Response<ResBody>) -> Response<DetectBody<ResBody>> {
        res.map(DetectBody::inner)
    }

    fn answer(res: Response<Bytes>) -> Response<DetectBody<ResBody>> {
        res.map(DetectBody::full)
    }

    fn pass(res: Response<ResBody>) -> Response<DetectBody<ResBody>> {
        res.map(DetectBody::inner)
    }
}

impl DetectStage {
    /// The `degrade` action: the body rewritten with a smaller output cap and no
    /// reasoning settings (not in shadow mode).
    fn degrade<B: From<Bytes>>(
        &self,
        settings: &Settings,
        req: Request<B>,
        account: AccountId,
        info: &RequestInfo,
    ) -> Request<B> {
        let tier = settings.tier_for(&account, req.extensions().get::<TierName>().map(|t| &*t.0));
        let cap = self.detector.scorer().config().degrade_max_output_tokens;
        let rewritten = match (settings.shadow || tier.shadow, info.json.as_ref()) {
            (false, Some(json)) => degrade_body(info.endpoint, json, cap),
            _ => None,
        };
        let Some(bytes) = rewritten else {
            return req;
        };
        let path = req.uri().path().to_owned();
        let (mut parts, _old) = req.into_parts();
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        parts
            .extensions
            .insert(Arc::new(RequestInfo::parse(&path, bytes.clone())));
        Request::from_parts(parts, B::from(bytes))
    }
}

/// The hard links of a request: the host application's `HardLink` extension,
/// and those the stage's [`LinkSource`](super::LinkSource) finds (the guard's
/// watermark stage: text marks echoed from other accounts' answers).
fn hard_links<B>(
    stage: &DetectStage,
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
    stage.links.links(&account, info, &mut links);
    links
}

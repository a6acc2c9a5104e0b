//! The service skeleton the detect and enforce stages share: settings, the kill
//! switch, request preparation, an optional wait (the store's admission), the
//! call to the inner service, and short-circuit answers, as one
//! `pin-project-lite` state machine (no boxed future).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::prepare::{prepare, Prepared, Reading};
use super::settings::Settings;
use crate::request::BoxError;

mod sealed {
    pub trait Sealed {}
}

pub(crate) use sealed::Sealed;

/// What a stage does with a prepared request.
#[derive(Debug)]
pub enum Step<Req, Wait, Plan, Ctx> {
    /// Call the inner service with the request; `Ctx` goes to
    /// [`Stage::finish`] with its response.
    Call(Req, Ctx),
    /// Wait for `Wait` (the store's admission), then [`Stage::resume`] with
    /// the request and `Plan`.
    Wait(Wait, Req, Plan),
    /// Answer with this response; the inner service is not called.
    Answer(Response<Bytes>),
}

/// One stage of the guard in the shared skeleton ([`StageService`]):
/// implemented by the detect and enforce stages (sealed).
pub trait Stage<ReqBody, ResBody>: Sealed + Send + Sync + 'static {
    /// What the stage waits on before calling the inner service.
    type Wait: Future;
    /// What it keeps across the wait.
    type Plan;
    /// What it keeps until the inner service's response.
    type Ctx;
    /// Its response body.
    type Body;

    /// The settings in force.
    fn settings(&self) -> Arc<Settings>;

    /// The span every poll of this request runs in.
    fn span(&self, req: &Request<ReqBody>) -> tracing::Span {
        let _ = req;
        tracing::Span::none()
    }

    /// A request refused while being prepared (401, 400, 413).
    fn refused(&self, res: &Response<Bytes>) {
        let _ = res;
    }

    /// The prepared request: it carries an `Account` and an `Arc<RequestInfo>`.
    fn start(
        &self,
        settings: &Settings,
        req: Request<ReqBody>,
    ) -> Step<Request<ReqBody>, Self::Wait, Self::Plan, Self::Ctx>;

    /// After the wait.
    fn resume(
        &self,
        waited: <Self::Wait as Future>::Output,
        req: Request<ReqBody>,
        plan: Self::Plan,
    ) -> Step<Request<ReqBody>, Self::Wait, Self::Plan, Self::Ctx>;

    /// The inner service's response (the stage by its `Arc`: a body may keep it).
    fn finish(stage: &Arc<Self>, ctx: Self::Ctx, res: Response<ResBody>) -> Response<Self::Body>;

    /// A response the stage wrote itself.
    fn answer(res: Response<Bytes>) -> Response<Self::Body>;

    /// The inner service's response with the guard switched off.
    fn pass(res: Response<ResBody>) -> Response<Self::Body>;
}

/// A guard stage around `S`: the shared skeleton of [`Detect`](crate::detect::Detect)
/// and [`Enforce`](crate::quota::Enforce). Its response future is a state
/// machine ([`StageFuture`]), never boxed; rejections are responses
/// (`Error = S::Error`).
pub struct StageService<St, S> {
    pub(crate) inner: S,
    pub(crate) stage: Arc<St>,
}

impl<St, S: Clone> Clone for StageService<St, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            stage: self.stage.clone(),
        }
    }
}

impl<St, S: fmt::Debug> fmt::Debug for StageService<St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageService")
            .field("stage", &std::any::type_name::<St>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<St, S, ReqBody, ResBody> Service<Request<ReqBody>> for StageService<St, S>
where
    St: Stage<ReqBody, ResBody>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<St::Body>;
    type Error = S::Error;
    type Future = StageFuture<St, S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready inner service goes into the future; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let stage = self.stage.clone();
        let settings = stage.settings();
        let span = stage.span(&req);
        let state = if !settings.enabled {
            State::Passing {
                future: inner.call(req),
            }
        } else {
            match prepare(&settings, req) {
                Prepared::Ready(req) => State::Started { req: Some(req) },
                Prepared::Reading(reading) => State::Reading { reading },
                Prepared::Refused(res) => {
                    stage.refused(&res);
                    State::Answered { res: Some(res) }
                }
            }
        };
        StageFuture {
            state,
            stage,
            settings,
            inner: Some(inner),
            span,
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, ReqBody, W, P, C>
    where
        ReqBody: Body,
        ReqBody::Error: Into<BoxError>,
    {
        Reading { #[pin] reading: Reading<ReqBody> },
        Started { req: Option<Request<ReqBody>> },
        Waiting { #[pin] wait: W, req: Option<Request<ReqBody>>, plan: Option<P> },
        Calling { #[pin] future: F, ctx: Option<C> },
        Passing { #[pin] future: F },
        Answered { res: Option<Response<Bytes>> },
    }
}

pin_project! {
    /// The response future of a [`StageService`]: reading the body, waiting,
    /// calling the inner service, or answering.
    pub struct StageFuture<St, S, ReqBody, ResBody>
    where
        St: Stage<ReqBody, ResBody>,
        S: Service<Request<ReqBody>>,
        ReqBody: Body,
        ReqBody::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S::Future, ReqBody, St::Wait, St::Plan, St::Ctx>,
        stage: Arc<St>,
        settings: Arc<Settings>,
        inner: Option<S>,
        span: tracing::Span,
    }
}

impl<St, S, ReqBody, ResBody> fmt::Debug for StageFuture<St, S, ReqBody, ResBody>
where
    St: Stage<ReqBody, ResBody>,
    S: Service<Request<ReqBody>>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageFuture")
            .field("stage", &std::any::type_name::<St>())
            .finish_non_exhaustive()
    }
}

const POLLED_AFTER_COMPLETION: &str = "a guard stage's future polled after completion";

impl<St, S, ReqBody, ResBody> Future for StageFuture<St, S, ReqBody, ResBody>
where
    St: Stage<ReqBody, ResBody>,
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Output = Result<Response<St::Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Reading { reading } => match ready!(reading.poll(cx)) {
                    Ok(req) => this.stage.start(this.settings, req),
                    Err(res) => {
                        this.stage.refused(&res);
                        Step::Answer(res)
                    }
                },
                StateProj::Started { req } => {
                    let req = req.take().expect(POLLED_AFTER_COMPLETION);
                    this.stage.start(this.settings, req)
                }
                StateProj::Waiting { wait, req, plan } => {
                    let waited = ready!(wait.poll(cx));
                    let (req, plan) = req.take().zip(plan.take()).expect(POLLED_AFTER_COMPLETION);
                    this.stage.resume(waited, req, plan)
                }
                StateProj::Calling { future, ctx } => {
                    let res = ready!(future.poll(cx))?;
                    let ctx = ctx.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(St::finish(this.stage, ctx, res)));
                }
                StateProj::Passing { future } => {
                    return future.poll(cx).map_ok(St::pass);
                }
                StateProj::Answered { res } => {
                    let res = res.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(St::answer(res)));
                }
            };
            match step {
                Step::Call(req, ctx) => {
                    let mut inner = this.inner.take().expect(POLLED_AFTER_COMPLETION);
                    let future = inner.call(req);
                    this.state.set(State::Calling {
                        future,
                        ctx: Some(ctx),
                    });
                }
                Step::Wait(wait, req, plan) => this.state.set(State::Waiting {
                    wait,
                    req: Some(req),
                    plan: Some(plan),
                }),
                Step::Answer(res) => return Poll::Ready(Ok(St::answer(res))),
            }
        }
    }
}

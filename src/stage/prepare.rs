//! The work every stage needs done once per request: who is it, and what is in
//! it. The outermost stage does it; the ones inside find it done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;

use super::settings::Settings;
use crate::config::AnonymousPolicy;
use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::extensions::Account;
use crate::network;
use crate::request::{buffer, BoxError, Buffer, BufferError, RequestInfo};

/// A request on its way to carrying an [`Account`] and an `Arc<RequestInfo>`.
pub(crate) enum Prepared<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Both are there (an outer stage prepared it).
    Ready(Request<B>),
    /// The account is known; the body is being read.
    Reading(Reading<B>),
    /// The response to send instead: no key (401), a body too large (413).
    Refused(Response<Bytes>),
}

/// Identifies the request's account (401 without a key, unless anonymous
/// requests are charged to their network) and, unless an earlier stage did,
/// starts buffering its body up to `max_body_bytes` (413 beyond).
pub(crate) fn prepare<B>(settings: &Settings, mut req: Request<B>) -> Prepared<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let dialect = Dialect::from_path(req.uri().path());
    let account = match req.extensions().get::<Account>() {
        Some(a) => *a,
        None => match identify(settings, &req) {
            Some(a) => a,
            None => return Prepared::Refused(unauthenticated(dialect)),
        },
    };
    req.extensions_mut().insert(account);
    if req.extensions().get::<Arc<RequestInfo>>().is_some() {
        return Prepared::Ready(req);
    }
    let path = req.uri().path().to_owned();
    Prepared::Reading(Reading {
        buffer: buffer(req, settings.max_body_bytes),
        path,
        dialect,
        limit: settings.max_body_bytes,
    })
}

/// The request's account: its API key's keyed hash, or its network's when
/// anonymous requests are charged to their network.
fn identify<B>(settings: &Settings, req: &Request<B>) -> Option<Account> {
    if let Some(id) = settings
        .identity
        .account_of(req.headers(), req.extensions())
    {
        return Some(Account {
            id,
            anonymous: false,
        });
    }
    match settings.anonymous {
        AnonymousPolicy::Network => {
            let ip = network::client_ip(
                req.headers(),
                network::peer_of(req.extensions()),
                &settings.trusted_proxies,
            )?;
            Some(Account {
                id: settings.identity.hash_network(&network::prefix(ip)),
                anonymous: true,
            })
        }
        AnonymousPolicy::Reject => None,
    }
}

pin_project! {
    /// Reading a request's body, then parsing it into the `Arc<RequestInfo>`
    /// every stage reads.
    pub(crate) struct Reading<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        buffer: Buffer<B>,
        path: String,
        dialect: Dialect,
        limit: u64,
    }
}

impl<B> Future for Reading<B>
where
    B: Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Request<B>, Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.buffer.poll(cx)) {
            Ok((mut parts, bytes)) => {
                parts
                    .extensions
                    .insert(Arc::new(RequestInfo::parse(this.path, bytes.clone())));
                Ok(Request::from_parts(parts, B::from(bytes)))
            }
            Err(BufferError::TooLarge) => Err(error_response(
                *this.dialect,
                ErrorKind::PayloadTooLarge,
                &format!(
                    "Request body is larger than the {} bytes this server accepts.",
                    this.limit
                ),
            )),
            Err(BufferError::TimedOut) => Err(error_response(
                *this.dialect,
                ErrorKind::RequestTimeout,
                "The request body was not received in time.",
            )),
            Err(BufferError::Read(e)) => Err(error_response(
                *this.dialect,
                ErrorKind::InvalidRequest,
                &format!("Could not read the request body: {e}"),
            )),
        })
    }
}

fn unauthenticated(dialect: Dialect) -> Response<Bytes> {
    error_response(
        dialect,
        ErrorKind::Unauthenticated,
        "No API key provided. Send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
    )
}

/// The account and parsed body of a prepared request (preparation inserts both).
pub(crate) fn prepared<B>(req: &Request<B>) -> Option<(Account, Arc<RequestInfo>)> {
    Some((
        *req.extensions().get::<Account>()?,
        req.extensions().get::<Arc<RequestInfo>>()?.clone(),
    ))
}

/// The answer to a request that should have been prepared and was not (a bug):
/// 503, failing closed.
pub(crate) fn unprepared<B>(req: &Request<B>) -> Response<Bytes> {
    error_response(
        Dialect::from_path(req.uri().path()),
        ErrorKind::Unavailable,
        "The guard could not identify this request.",
    )
}

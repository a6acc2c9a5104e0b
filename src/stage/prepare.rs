//! The work every stage needs done once per request: who is it, and what is in it.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;

use super::settings::Settings;
use crate::config::AnonymousPolicy;
use crate::dialect::{error_response, Dialect, ErrorKind};
use crate::extensions::Account;
use crate::network;
use crate::request::{buffer, BufferError, RequestInfo};

/// Ensures the request carries an [`Account`] and an `Arc<RequestInfo>`, buffering
/// the body if no earlier stage did. Returns the error response to send instead
/// when there is no key (401), the body is too large (413) or cannot be read (400).
pub(crate) async fn prepare<B>(
    settings: &Settings,
    req: Request<B>,
) -> Result<Request<B>, Response<Bytes>>
where
    B: Body + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let dialect = Dialect::from_path(req.uri().path());
    let account = match req.extensions().get::<Account>() {
        Some(a) => *a,
        None => match settings
            .identity
            .account_of(req.headers(), req.extensions())
        {
            Some(id) => Account {
                id,
                anonymous: false,
            },
            None => match settings.anonymous {
                AnonymousPolicy::Network => {
                    let ip = network::client_ip(
                        req.headers(),
                        network::peer_of(req.extensions()),
                        &settings.trusted_proxies,
                    );
                    match ip {
                        Some(ip) => Account {
                            id: settings.identity.hash_network(&network::prefix(ip)),
                            anonymous: true,
                        },
                        None => return Err(unauthenticated(dialect)),
                    }
                }
                AnonymousPolicy::Reject => return Err(unauthenticated(dialect)),
            },
        },
    };
    let mut req = req;
    req.extensions_mut().insert(account);
    if req.extensions().get::<Arc<RequestInfo>>().is_some() {
        return Ok(req);
    }
    let path = req.uri().path().to_owned();
    match buffer(req, settings.max_body_bytes).await {
        Ok((mut parts, bytes)) => {
            parts
                .extensions
                .insert(Arc::new(RequestInfo::parse(&path, bytes.clone())));
            Ok(Request::from_parts(parts, B::from(bytes)))
        }
        Err(BufferError::TooLarge) => Err(error_response(
            dialect,
            ErrorKind::PayloadTooLarge,
            &format!(
                "Request body is larger than the {} bytes this server accepts.",
                settings.max_body_bytes
            ),
        )),
        Err(BufferError::Read(e)) => Err(error_response(
            dialect,
            ErrorKind::InvalidRequest,
            &format!("Could not read the request body: {e}"),
        )),
    }
}

fn unauthenticated(dialect: Dialect) -> Response<Bytes> {
    error_response(
        dialect,
        ErrorKind::Unauthenticated,
        "No API key provided. Send it as `Authorization: Bearer KEY` or `x-api-key: KEY`.",
    )
}

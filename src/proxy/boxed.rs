//! The boxed service type that the proxy's parts hand each other.

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response};
use tower::util::BoxCloneSyncService;

/// A boxed, cloneable HTTP service.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

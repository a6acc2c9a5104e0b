//! The Redis backend: see [`RedisStore`].
//!
//! One concern per file: `store` (the [`RedisStore`] that ties them together)
//! and `inner` (its shared state and one script call), `admit` (the admission
//! path and its fallback), `settle` (the settlement path and its fallback),
//! `connect` (connections: URL, TLS, Sentinel; one call with a deadline),
//! `script` (the Lua scripts and their replies), `keys` (a subject's key),
//! `call` (one call of a batched script), `batch` (admissions and settlements
//! sent together), `slots` (the same on a Redis Cluster), `health` (outages
//! and probes), `deny_cache` (refusals answered locally), `lease` (shares of
//! busy subjects' buckets), `settle_queue` (settlements waiting for Redis,
//! bounded).

mod admit;
mod batch;
mod call;
mod connect;
mod deny_cache;
mod health;
mod inner;
mod keys;
mod lease;
mod script;
mod settle;
mod settle_queue;
mod slots;
mod store;

pub use connect::RedisCallError;
pub(crate) use connect::{call, manager, within, RedisConn};
pub(crate) use keys::named;
pub use store::RedisStore;

//! The trace-back index shared between replicas through Redis.
//!
//! Behind a load balancer each replica serves a share of the responses, so a
//! replica's own index can trace only that share. With a Redis store (and
//! `[store] share_trace_index`, the default) every replica publishes each
//! entry it records — the account, cluster, request id, time and the text's
//! fingerprints (MinHash, paragraph SimHashes, shingle count; never the text),
//! about 330 bytes — to one stream, `{key_prefix}watermark:index` (`…{watermark:index}`
//! on a Redis Cluster), and adds the other replicas' entries to its own index
//! as they arrive: every replica's index holds the responses all of them
//! served (within `index_max_entries`), and `trace --server` may ask any.
//!
//! The stream is the cluster log's machinery with another codec: batches of up
//! to 64 entries per `XADD`, a bounded queue that drops (and counts) when Redis
//! is slower than the traffic, a reader on its own connection that skips
//! malformed entries, and warm-up from the stream for a replica that starts.
//! The stream keeps about `index_max_entries / 16` entries (at least 1,000),
//! so Redis holds up to four times the index in the worst case; a replica that
//! starts warms up from them.

use std::sync::Arc;

use super::index::{decode_batch, encode_batch, TraceIndex};
use crate::cluster::share::{SharedLog, Topic};
use crate::config::{ConfigError, StoreConfig};

/// Whether `config` asks for a shared trace index.
pub fn wanted(config: &StoreConfig) -> bool {
    config.backend.is_redis() && config.share_trace_index
}

/// Starts sharing `index` through the Redis of `config` (valid, naming a
/// Redis backend): entries recorded from now on are published, the other
/// replicas' are added. Must run inside a Tokio runtime; connects lazily.
pub fn share(index: &Arc<TraceIndex>, config: &StoreConfig) -> Result<(), ConfigError> {
    if index.capacity() == 0 {
        return Ok(());
    }
    let topic = Topic {
        name: "trace index log",
        alone: "the trace index holds this replica's responses only",
        key: crate::store::redis_key(config, "watermark:index", ""),
        max_len: (index.capacity() as u64 / 16).max(1_000),
        encode: encode_batch,
        decode: decode_batch,
    };
    let key = topic.key.clone();
    let target = Arc::downgrade(index);
    let log = SharedLog::start(
        config,
        topic,
        Box::new(move |entry| match target.upgrade() {
            Some(index) => {
                index.add_shared(entry);
                true
            }
            None => false,
        }),
    )?;
    tracing::info!(
        log = key,
        "trace index shared with the other replicas through Redis"
    );
    index.publish_to(log);
    Ok(())
}

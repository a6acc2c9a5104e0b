//! The two background tasks of a [`SharedLog`](super::SharedLog): the writer
//! batches this replica's events into `XADD`s, the reader follows the stream
//! with `XREAD BLOCK` on its own connection and applies the other replicas'
//! events. What an entry holds, and what applying an event means, is the
//! [`Topic`]'s (the cluster log's, the watermark trace index's).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::redis::Value;
use tokio::sync::{mpsc, watch};

use super::{Msg, ShareError, ShareStats};
use crate::config::ConfigError;
use crate::store::{redis_call, redis_manager, RedisCallError, StoreConfig};

/// Most events written in one entry.
const BATCH: usize = 64;
/// Entries read per `XREAD` (at most `BATCH` events each): bounds how long one
/// read's events hold the engine.
const READ_COUNT: usize = 32;
/// How long one `XREAD` waits for new entries.
const BLOCK: Duration = Duration::from_millis(1000);
/// Waits between attempts while Redis fails.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The field of an entry holding its batch.
const FIELD: &str = "b";

/// A Redis stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, before every entry.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// Parses `ms-seq`.
    pub fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Where the writing replica's id (`u64`, little-endian) sits in every
/// topic's entry: after a 3-byte magic.
const ENTRY_REPLICA: std::ops::Range<usize> = 3..11;

/// A stream replicas share: its key, how long it is kept, and how its
/// entries are written and read. Every entry starts with a 3-byte magic
/// and the writing replica's id.
pub(crate) struct Topic<T, E> {
    /// What log lines call it (`cluster log`).
    pub(crate) name: &'static str,
    /// What a replica does alone while Redis fails, for the warning.
    pub(crate) alone: &'static str,
    /// The stream's key.
    pub(crate) key: String,
    /// About how many entries the stream keeps (`XADD MAXLEN ~`).
    pub(crate) max_len: u64,
    /// One entry from this replica's id and its encoded events.
    pub(crate) encode: fn(u64, &[Vec<u8>]) -> Vec<u8>,
    /// An entry's replica and events; an error skips the entry whole.
    pub(crate) decode: Decode<T, E>,
}

/// Decodes one entry: the replica that wrote it and its events, or why not
/// (the topic codec's own error).
pub(crate) type Decode<T, E> = fn(&[u8]) -> Result<(u64, Vec<T>), E>;

/// What applies another replica's event. Returns false once the receiver is
/// gone, which stops the reader.
pub(crate) type ApplyFn<T> = Box<dyn Fn(T) -> bool + Send + Sync>;

pub(super) fn spawn<T: Send + 'static, E: std::fmt::Display + 'static>(
    config: &StoreConfig,
    topic: Topic<T, E>,
    replica: u64,
    rx: mpsc::Receiver<Msg>,
    applied: watch::Sender<StreamId>,
    apply: ApplyFn<T>,
    stats: Arc<ShareStats>,
) -> Result<(), ConfigError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        ConfigError::single(
            "store",
            "logs shared through Redis must be started inside a Tokio runtime",
        )
    })?;
    let topic = Arc::new(topic);
    let writer = Writer {
        conn: redis_manager(config, config.timeout)?,
        topic: topic.clone(),
        replica,
        timeout: config.timeout,
        stats: stats.clone(),
    };
    let reader = Reader {
        conn: redis_manager(config, BLOCK.saturating_add(config.timeout))?,
        topic,
        replica,
        timeout: BLOCK.saturating_add(config.timeout),
        stats,
    };
    handle.spawn(writer.run(rx));
    handle.spawn(reader.run(applied, apply));
    Ok(())
}

fn failed<T, E>(topic: &Topic<T, E>, stats: &ShareStats, what: &str, error: &RedisCallError) {
    stats.errors.fetch_add(1, Ordering::Relaxed);
    if !stats.down.swap(true, Ordering::Relaxed) {
        tracing::warn!(%error, "{}: {what} failed; {} until Redis answers", topic.name, topic.alone);
    }
}

fn recovered<T, E>(topic: &Topic<T, E>, stats: &ShareStats) {
    if stats.down.swap(false, Ordering::Relaxed) {
        tracing::info!("{}: Redis answers again; sharing resumed", topic.name);
    }
}

struct Writer<T, E> {
    conn: crate::store::RedisConn,
    topic: Arc<Topic<T, E>>,
    replica: u64,
    timeout: Duration,
    stats: Arc<ShareStats>,
}

impl<T, E> Writer<T, E> {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut last = StreamId::ZERO;
        // Why events were dropped since the last flush was answered, if any were.
        let mut lost: Option<RedisCallError> = None;
        let mut events = Vec::with_capacity(BATCH);
        let mut flushes = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(e) => events.push(e),
                    Msg::Flush(f) => flushes.push(f),
                }
                if events.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !events.is_empty() {
                let n = events.len() as u64;
                match self.write(&events).await {
                    Ok(id) => {
                        last = id;
                        self.stats.published.fetch_add(n, Ordering::Relaxed);
                        recovered(&self.topic, &self.stats);
                    }
                    Err(e) => {
                        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                        failed(&self.topic, &self.stats, "publishing", &e);
                        lost = Some(e);
                    }
                }
                events.clear();
            }
            if !flushes.is_empty() {
                // A flush answers for every event queued before it: an error when
                // any of them was lost since the previous flush.
                let result = match lost.take() {
                    Some(e) => Err(ShareError::Redis(e)),
                    None => Ok(last),
                };
                for f in flushes.drain(..) {
                    let _ = f.send(result.clone());
                }
            }
        }
    }

    async fn write(&self, events: &[Vec<u8>]) -> Result<StreamId, RedisCallError> {
        let payload = (self.topic.encode)(self.replica, events);
        let mut cmd = ::redis::cmd("XADD");
        cmd.arg(&self.topic.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.topic.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(payload);
        match redis_call(&self.conn, &cmd, self.timeout).await? {
            Value::BulkString(b) => StreamId::parse(&b),
            Value::SimpleString(s) => StreamId::parse(s.as_bytes()),
            _ => None,
        }
        .ok_or(RedisCallError::Reply(
            "XADD answered something other than an entry id",
        ))
    }
}

struct Reader<T, E> {
    conn: crate::store::RedisConn,
    topic: Arc<Topic<T, E>>,
    replica: u64,
    timeout: Duration,
    stats: Arc<ShareStats>,
}

/// One entry of an `XREAD` reply: its id and its batch, if it has one.
type RawEntry = (StreamId, Option<Vec<u8>>);

impl<T, E: std::fmt::Display> Reader<T, E> {
    async fn run(self, applied: watch::Sender<StreamId>, apply: ApplyFn<T>) {
        let mut last = StreamId::ZERO;
        let mut backoff = BACKOFF_MIN;
        let mut check_restart = false;
        loop {
            if applied.is_closed() {
                return;
            }
            if check_restart {
                match self.newest().await {
                    Ok(newest) => {
                        check_restart = false;
                        if newest < last {
                            tracing::warn!(%last, %newest, "{}: the stream's ids went backwards (Redis restarted without its data, its clock behind); reading it from the start", self.topic.name);
                            last = StreamId::ZERO;
                        }
                    }
                    Err(e) => {
                        failed(&self.topic, &self.stats, "reading", &e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let entries = match self.read(last).await {
                Ok(entries) => entries,
                Err(e) => {
                    failed(&self.topic, &self.stats, "reading", &e);
                    check_restart = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            recovered(&self.topic, &self.stats);
            backoff = BACKOFF_MIN;
            for (id, payload) in entries {
                if id <= last {
                    continue;
                }
                // This replica's own entries come back too: skipped before
                // decoding their events.
                if payload
                    .as_deref()
                    .and_then(|p| p.get(ENTRY_REPLICA))
                    .is_some_and(|r| r == self.replica.to_le_bytes())
                {
                    last = id;
                    continue;
                }
                match payload.as_deref().map(self.topic.decode) {
                    Some(Ok((replica, events))) => {
                        if replica != self.replica {
                            for event in events {
                                if !apply(event) {
                                    return;
                                }
                                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%id, error = %e, "{}: skipping a malformed entry", self.topic.name);
                    }
                    None => {
                        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%id, "{}: skipping an entry without a batch", self.topic.name);
                    }
                }
                last = id;
            }
            applied.send_replace(last);
        }
    }

    async fn read(&self, after: StreamId) -> Result<Vec<RawEntry>, RedisCallError> {
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.topic.key)
            .arg(after.to_string());
        let reply = redis_call(&self.conn, &cmd, self.timeout).await?;
        parse_xread(&reply).ok_or(RedisCallError::Reply(
            "XREAD answered in an unexpected shape",
        ))
    }

    /// The id of the newest entry (`0-0` when the stream is empty or absent).
    async fn newest(&self) -> Result<StreamId, RedisCallError> {
        let mut cmd = ::redis::cmd("XREVRANGE");
        cmd.arg(&self.topic.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let reply = redis_call(&self.conn, &cmd, self.timeout).await?;
        let entries = parse_entries(&reply).ok_or(RedisCallError::Reply(
            "XREVRANGE answered in an unexpected shape",
        ))?;
        Ok(entries.first().map_or(StreamId::ZERO, |e| e.0))
    }
}

/// The entries of an `XREAD` reply for one stream (RESP2 arrays or RESP3 maps);
/// `Nil` (nothing new) is no entries.
fn parse_xread(v: &Value) -> Option<Vec<RawEntry>> {
    match v {
        Value::Nil => Some(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(pair) = s else { return None };
                let [_, entries] = pair.as_slice() else {
                    return None;
                };
                out.extend(parse_entries(entries)?);
            }
            Some(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in streams {
                out.extend(parse_entries(entries)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]`. An entry whose fields are not the batch
/// field is returned without a batch.
fn parse_entries(v: &Value) -> Option<Vec<RawEntry>> {
    let Value::Array(entries) = v else {
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Value::Array(pair) = e else { return None };
        let [id, fields] = pair.as_slice() else {
            return None;
        };
        let id = match id {
            Value::BulkString(b) => StreamId::parse(b)?,
            Value::SimpleString(s) => StreamId::parse(s.as_bytes())?,
            _ => return None,
        };
        let payload = match fields {
            Value::Array(kv) => kv.chunks(2).find_map(|c| match c {
                [Value::BulkString(k), Value::BulkString(v)] if k == FIELD.as_bytes() => {
                    Some(v.clone())
                }
                _ => None,
            }),
            Value::Map(kv) => kv.iter().find_map(|(k, v)| match (k, v) {
                (Value::BulkString(k), Value::BulkString(v)) if k == FIELD.as_bytes() => {
                    Some(v.clone())
                }
                _ => None,
            }),
            _ => None,
        };
        out.push((id, payload));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_ids_parse_and_order() {
        let a = StreamId::parse(b"1700000000000-5").expect("id");
        assert_eq!(
            a,
            StreamId {
                ms: 1_700_000_000_000,
                seq: 5
            }
        );
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(StreamId::parse(b"9-0").expect("id") < StreamId::parse(b"10-0").expect("id"));
        assert!(StreamId::parse(b"10-1").expect("id") > StreamId::parse(b"10-0").expect("id"));
        for bad in [&b""[..], b"12", b"a-b", b"-1-2", b"1-", b"\xff-1"] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn xread_replies_parse_in_both_protocols() {
        let entry = |id: &str, k: &str, v: &str| {
            Value::Array(vec![bulk(id), Value::Array(vec![bulk(k), bulk(v)])])
        };
        let entries = Value::Array(vec![entry("1-0", "b", "x"), entry("2-0", "other", "y")]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("k"), entries)]);
        for v in [resp2, resp3] {
            let got = parse_xread(&v).expect("parses");
            assert_eq!(
                got,
                vec![
                    (StreamId { ms: 1, seq: 0 }, Some(b"x".to_vec())),
                    (StreamId { ms: 2, seq: 0 }, None),
                ]
            );
        }
        assert_eq!(parse_xread(&Value::Nil), Some(Vec::new()));
        for bad in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("k")])]),
            Value::Array(vec![Value::Array(vec![
                bulk("k"),
                Value::Array(vec![Value::Array(vec![bulk("nope"), Value::Nil])]),
            ])]),
        ] {
            assert_eq!(parse_xread(&bad), None, "{bad:?}");
        }
    }
}

//! The audit log: one JSON line per notable decision (every one that is not a plain
//! allow: tagged, throttled, degraded, blocked, refused or shadow-denied), or per
//! decision with `all = true`.
//!
//! ```toml
//! [audit]
//! path = "/var/log/distill-guard/audit.jsonl"   # or "-" for stdout
//! all = false
//! max_bytes = 104857600                         # rotate to `<path>.1` beyond this
//! ```
//!
//! A line carries the request id, account hash, cluster, action, status, the limit
//! that denied, suspicion and reasons — never an API key (accounts are keyed
//! hashes). Records go through a bounded channel to a background writer, so the
//! request path never waits for the disk; when the writer falls behind, records are
//! dropped and counted (`distill_guard_audit_dropped_total`).

use std::path::PathBuf;
use std::sync::Arc;

use metrics::Counter;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::config::AuditConfig;
use crate::dialect::Dialect;
use crate::extensions::Decision;

/// One audit line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    ts_ms: u64,
    dialect: &'static str,
    #[serde(flatten)]
    decision: &'a Decision,
}

struct Item {
    at_ms: u64,
    dialect: Dialect,
    decision: Arc<Decision>,
}

/// The sending side of the audit log, held by the guard's telemetry.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Item>,
    all: bool,
    target: Arc<str>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditItem")
    }
}

impl AuditSink {
    /// Queues a record; false when the queue is full (the record is dropped) or
    /// the writer is gone.
    pub fn send(&self, at_ms: u64, dialect: Dialect, decision: Arc<Decision>) -> bool {
        self.tx
            .try_send(Item {
                at_ms,
                dialect,
                decision,
            })
            .is_ok()
    }

    /// True when every decision is audited.
    pub fn all(&self) -> bool {
        self.all
    }

    /// `-` or the file path.
    pub fn target(&self) -> &str {
        &self.target
    }
}

enum Out {
    Stdout(tokio::io::Stdout),
    File {
        path: PathBuf,
        file: tokio::fs::File,
        len: u64,
        max: u64,
    },
}

async fn open(path: &PathBuf) -> std::io::Result<(tokio::fs::File, u64)> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let len = file.metadata().await?.len();
    Ok((file, len))
}

impl Out {
    /// Bytes that still fit before rotation (`None`: unbounded), and whether the
    /// current file is empty.
    fn room(&self) -> (Option<u64>, bool) {
        match self {
            Out::Stdout(_) => (None, false),
            Out::File { len, max, .. } if *max > 0 => (Some(max.saturating_sub(*len)), *len == 0),
            Out::File { len, .. } => (None, *len == 0),
        }
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        if let Out::File {
            path, file, len, ..
        } = self
        {
            file.flush().await?;
            let mut rotated = path.clone().into_os_string();
            rotated.push(".1");
            tokio::fs::rename(&*path, &rotated).await?;
            let (f, l) = open(path).await?;
            *file = f;
            *len = l;
        }
        Ok(())
    }

    async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        match self {
            Out::Stdout(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Out::File { file, len, .. } => {
                file.write_all(buf).await?;
                file.flush().await?;
                *len += buf.len() as u64;
                Ok(())
            }
        }
    }
}

/// What the audit writer counts: records written and write errors (the metrics
/// facade's handles; [`Counter::noop`] counts nothing).
#[derive(Debug, Clone)]
pub struct AuditCounters {
    /// Records written.
    pub written: Counter,
    /// Failed writes and records that could not be encoded.
    pub errors: Counter,
}

impl Default for AuditCounters {
    fn default() -> Self {
        Self {
            written: Counter::noop(),
            errors: Counter::noop(),
        }
    }
}

/// Starts the audit writer for `cfg` on the current Tokio runtime and returns its
/// sink and the writer task (which ends once every sink clone is dropped and the
/// queue is written), or `None` when `cfg.path` is unset. Fails when the file
/// cannot be opened.
pub async fn start(
    cfg: &AuditConfig,
    counters: AuditCounters,
) -> std::io::Result<Option<(AuditSink, JoinHandle<()>)>> {
    let Some(target) = cfg.path.clone() else {
        return Ok(None);
    };
    let out = if target == "-" {
        Out::Stdout(tokio::io::stdout())
    } else {
        let path = PathBuf::from(&target);
        let (file, len) = open(&path).await?;
        Out::File {
            path,
            file,
            len,
            max: cfg.max_bytes,
        }
    };
    let (tx, rx) = mpsc::channel(cfg.queue.max(1));
    let task = tokio::spawn(write_loop(rx, out, counters.written, counters.errors));
    let sink = AuditSink {
        tx,
        all: cfg.all,
        target: target.into(),
    };
    Ok(Some((sink, task)))
}

async fn write_loop(mut rx: mpsc::Receiver<Item>, mut out: Out, written: Counter, errors: Counter) {
    let mut batch: Vec<Item> = Vec::with_capacity(256);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        batch.clear();
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        buf.clear();
        let mut n = 0u64;
        for item in &batch {
            let line = Line {
                ts_ms: item.at_ms,
                dialect: item.dialect.as_str(),
                decision: &item.decision,
            };
            let start = buf.len();
            if serde_json::to_writer(&mut buf, &line).is_err() {
                buf.truncate(start);
                errors.increment(1);
                continue;
            }
            buf.push(b'\n');
            if let (Some(room), empty) = out.room() {
                if buf.len() as u64 > room && !(start == 0 && empty) {
                    // This line would overflow the file: write what fits, rotate,
                    // and start the new file with it.
                    let tail = buf.split_off(start);
                    flush(&mut out, &buf, n, &written, &errors).await;
                    buf = tail;
                    n = 0;
                    if let Err(e) = out.rotate().await {
                        errors.increment(1);
                        tracing::warn!(error = %e, "audit log rotation failed");
                    }
                }
            }
            n += 1;
        }
        flush(&mut out, &buf, n, &written, &errors).await;
    }
}

async fn flush(out: &mut Out, buf: &[u8], n: u64, written: &Counter, errors: &Counter) {
    match out.write(buf).await {
        Ok(()) => written.increment(n),
        Err(e) => {
            errors.increment(1);
            tracing::warn!(error = %e, lost = n, "audit log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::{AccountId, Action, Cluster, Reason, Scope};

    fn decision(i: u8) -> Arc<Decision> {
        let account = AccountId([i; 16]);
        Arc::new(Decision {
            request_id: Some(format!("req-{i}").into()),
            account,
            cluster: Cluster::singleton(account),
            suspicion: 0.5,
            action: Action::Throttle,
            status: 429,
            limited_by: Some(Scope::Account),
            shadowed: false,
            reserved_tokens: 100,
            tier: "default".into(),
            model_group: None,
            limited_in_group: false,
            reasons: vec![Reason {
                signal: "cluster_size".into(),
                weight: 0.4,
            }],
        })
    }

    #[tokio::test]
    async fn writes_json_lines_and_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let cfg = AuditConfig {
            path: Some(path.to_string_lossy().into_owned()),
            all: false,
            max_bytes: 1500,
            queue: 100,
        };
        let (sink, task) = start(&cfg, AuditCounters::default())
            .await
            .expect("open")
            .expect("enabled");
        for i in 0..20 {
            assert!(sink.send(1_000, Dialect::OpenAi, decision(i)));
        }
        drop(sink);
        // The writer drains the queue and ends once every sender is gone.
        task.await.expect("writer");
        let current = std::fs::read_to_string(&path).expect("current file");
        let rotated =
            std::fs::read_to_string(dir.path().join("audit.jsonl.1")).expect("rotated file");
        assert!(!rotated.is_empty(), "rotated at max_bytes");
        assert!(current.len() as u64 <= 1500);
        let mut ids = Vec::new();
        for line in current.lines().chain(rotated.lines()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            assert_eq!(v["action"], "throttle");
            assert_eq!(v["status"], 429);
            assert_eq!(v["limited_by"], "account");
            assert_eq!(v["dialect"], "openai");
            ids.push(v["request_id"].as_str().expect("id").to_owned());
        }
        // Rotation keeps one old file: the newest lines survive.
        assert!(ids.contains(&"req-19".to_owned()));
    }
}

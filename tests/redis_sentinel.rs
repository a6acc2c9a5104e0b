//! The Redis backend behind Redis Sentinel: real `redis-server` processes (a
//! primary, a replica and a sentinel) on free loopback ports; the primary is
//! killed and the guard follows the failover by itself.
//!
//! When `redis-server` is not on PATH the test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use std::cell::Cell;
use std::time::Duration;

use distill_guard::extensions::Scope;
use distill_guard::store::gcra::BucketLimit;
use distill_guard::store::{Admission, Backend, OnError, RedisStore, Store, StoreConfig, Subject};
use support::{wait, RedisServer};

const T0: u64 = 1_700_000_000_000;

fn admission(now_ms: u64, key: u8) -> Admission {
    let rpm = 1_000.0;
    Admission {
        now_ms,
        account: Subject {
            scope: Scope::Account,
            key: [key; 16],
            group: None,
            limits: [Some(BucketLimit::new(rpm, 60_000.0, rpm)), None, None, None],
        },
        cluster: None,
        account_group: None,
        cluster_group: None,
        tokens: 0.0,
    }
}

fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    cmd.query(&mut conn)
}

fn info_has(port: u16, section: &str, needle: &str) -> bool {
    match query(port, redis::cmd("INFO").arg(section)) {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).contains(needle),
        Ok(redis::Value::VerbatimString { text, .. }) => text.contains(needle),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover() {
    let Some(mut primary) = RedisServer::start() else {
        return;
    };
    let Some(replica) = RedisServer::start_replica(primary.port) else {
        return;
    };
    let Some(sentinel) = RedisServer::start_sentinel(primary.port, "dg") else {
        return;
    };
    wait::until_blocking("the replica is in sync", || {
        info_has(replica.port, "replication", "master_link_status:up")
    });
    wait::until_blocking("the sentinel knows the replica", || {
        info_has(sentinel.port, "sentinel", "slaves=1")
    });

    let store = RedisStore::new(&StoreConfig {
        backend: Backend::Redis,
        url: Some(format!("redis+sentinel://127.0.0.1:{}/dg", sentinel.port)),
        timeout: Duration::from_millis(300),
        on_error: OnError::FailOpen,
        key_prefix: "s:".into(),
        ..StoreConfig::default()
    })
    .expect("store");
    let now = T0;
    let out = store.admit(&admission(now, 1)).await.expect("admit");
    assert!(out.denied.is_none());
    assert_eq!(
        store.fallback_count(),
        0,
        "served by the primary Sentinel named"
    );
    let key = store.key_of(&admission(now, 1).account);
    let exists = |port| {
        matches!(
            query(port, redis::cmd("EXISTS").arg(&key)),
            Ok(redis::Value::Int(1))
        )
    };
    assert!(exists(primary.port), "the bucket is on the primary");

    // The primary dies: requests go on (fail_open) while Sentinel promotes the
    // replica, then land on the new primary without anything being restarted.
    primary.kill();
    let (at, during) = (Cell::new(now), Cell::new(0u64));
    wait::until("the store followed the failover", || {
        let (at, during, store) = (&at, &during, &store);
        async move {
            at.set(at.get() + 10);
            let before = store.fallback_count();
            let out = store
                .admit(&admission(at.get(), 2))
                .await
                .expect("fail_open answers");
            assert!(out.denied.is_none());
            let followed = store.fallback_count() == before && !store.is_down();
            if !followed {
                during.set(during.get() + 1);
            }
            followed
        }
    })
    .await;
    let now = at.get();
    let during = during.get();
    assert!(
        during > 0,
        "some requests were served locally during the failover"
    );
    assert!(store.outage_count() >= 1);
    assert!(
        info_has(replica.port, "replication", "role:master"),
        "the replica was promoted"
    );
    let key2 = store.key_of(&admission(now, 2).account);
    assert!(
        matches!(
            query(replica.port, redis::cmd("EXISTS").arg(&key2)),
            Ok(redis::Value::Int(1))
        ),
        "the bucket is on the new primary"
    );
    // And it keeps working there.
    let before = store.fallback_count();
    for i in 0..20 {
        let out = store.admit(&admission(now + i, 3)).await.expect("admit");
        assert!(out.denied.is_none());
    }
    assert_eq!(store.fallback_count(), before);
}

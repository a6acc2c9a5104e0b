//! Clusters shared between replicas through the log in a real `redis-server`.
//!
//! When `redis-server` is not on PATH every test prints
//! `redis tests SKIPPED: redis-server not found` and returns; CI fails on that line.

mod support;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distill_guard::clock::{Clock, ManualClock};
use distill_guard::cluster::share::ClusterShare;
use distill_guard::extensions::{Cluster, ClusterId};
use distill_guard::network::PeerAddr;
use distill_guard::{Config, Guard};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::traffic::organic_body;
use support::{wait, RedisServer};
use tower::{service_fn, Layer, ServiceExt};

const T0: u64 = 1_714_000_000_000;
const SECRET: &str = "shared-secret";

fn config(server: &RedisServer, prefix: &str, share: bool) -> Config {
    Config::from_toml_str(&format!(
        r#"
        [identity]
        secret = "{SECRET}"
        [store]
        backend = "redis"
        url = "{}"
        timeout = "2s"
        on_error = "fail_open"
        key_prefix = "{prefix}"
        share_clusters = {share}
        "#,
        server.url()
    ))
    .expect("config")
}

fn replica(cfg: Config, clock: &ManualClock) -> Guard {
    Guard::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("guard")
}

fn share(g: &Guard) -> &ClusterShare {
    g.shared().detector().share().expect("clusters are shared")
}

/// Sends one request through `g`; the status and the cluster the handler saw.
async fn send(
    g: &Guard,
    key: &str,
    ip: [u8; 4],
    ua: &str,
    body: String,
) -> (StatusCode, Option<Cluster>) {
    let seen: Arc<Mutex<Option<Cluster>>> = Arc::default();
    let s = seen.clone();
    let handler = service_fn(move |req: Request<Full<Bytes>>| {
        let s = s.clone();
        async move {
            *s.lock().expect("lock") = req.extensions().get::<Cluster>().copied();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                br#"{"usage":{"prompt_tokens":10,"completion_tokens":10}}"#,
            ))))
        }
    });
    let mut req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("user-agent", ua)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from((ip, 40_000))));
    let res = g
        .layer()
        .layer(handler)
        .oneshot(req)
        .await
        .expect("infallible");
    let status = res.status();
    let _ = res.into_body().collect().await;
    let c = *seen.lock().expect("lock");
    (status, c)
}

fn campaign_body(i: u64) -> String {
    support::traffic::campaign_body(i, 16_000)
}

/// Makes every replica read the log up to everything `from` has published.
async fn sync(from: &Guard, all: &[Guard]) {
    let Some(s) = from.shared().detector().share() else {
        return;
    };
    let id = s.flush().await.expect("flushed");
    for g in all {
        if let Some(s) = g.shared().detector().share() {
            tokio::time::timeout(Duration::from_secs(10), s.caught_up(id))
                .await
                .expect("caught up in time")
                .expect("caught up");
        }
    }
}

/// Fifty organic accounts per replica (the engine's warm-up and
/// bystanders), then a 30-account campaign in which account `a` only ever
/// talks to replica `a % n`. Returns the cluster of the last campaign request
/// each replica served (blocked requests never reach the handler: the
/// campaign is usually blocked well before its last round).
async fn traffic(clock: &ManualClock, guards: &[Guard]) -> Vec<Cluster> {
    let n = guards.len() as u64;
    for u in 0..50 * n {
        clock.advance_ms(1_000);
        let g = &guards[(u % n) as usize];
        let ua = ["OpenAI/Python 1.40.0", "curl/8.5.0", "Mozilla/5.0"][(u % 3) as usize];
        let (status, c) = send(
            g,
            &format!("organic-{u}"),
            [198, 51, (u % 250) as u8, 7],
            ua,
            organic_body(u),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(c.expect("cluster").size, 1);
        sync(g, guards).await;
    }
    let mut last = vec![None; guards.len()];
    for round in 0..3u64 {
        for a in 0..30u64 {
            clock.advance_ms(20_000);
            let gi = (a % n) as usize;
            let g = &guards[gi];
            let (status, c) = send(
                g,
                &format!("campaign-{a}"),
                [203, 0, 113, (a % 4) as u8 + 1],
                "python-httpx/0.27.0",
                campaign_body(round * 100 + a),
            )
            .await;
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
            if c.is_some() {
                last[gi] = c;
            }
            sync(g, guards).await;
        }
    }
    last.into_iter().map(|c| c.expect("served")).collect()
}

fn account(key: &str) -> distill_guard::extensions::AccountId {
    distill_guard::identity::Identity::new(SECRET.as_bytes()).hash_key(key)
}

async fn cluster_keys(server: &RedisServer, prefix: &str) -> usize {
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}c:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.len()
}

/// Three replicas that each see a third of a campaign link it into one cluster
/// with one id, and charge one cluster bucket; without sharing each replica
/// finds its own third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_linked_across_replicas() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for shared in [true, false] {
        let prefix = format!("t{shared}:");
        let clock = ManualClock::new(T0);
        let guards: Vec<Guard> = (0..3)
            .map(|_| replica(config(&server, &prefix, shared), &clock))
            .collect();
        let seen = traffic(&clock, &guards).await;
        let first = account("campaign-0");
        let views: Vec<Option<Cluster>> = guards
            .iter()
            .map(|g| g.shared().detector().engine().cluster_of(&first))
            .collect();
        println!("shared={shared}: last clusters {seen:?}, views of campaign-0 {views:?}");
        if shared {
            let id = ClusterId::of_account(first);
            for (c, v) in seen.iter().zip(&views) {
                assert_eq!(c.id, id, "every replica charges the same cluster: {seen:?}");
                let v = v.expect("every replica knows campaign-0");
                assert_eq!(v.id, id);
                assert!(v.size >= 27, "{v:?}");
            }
            assert_eq!(
                cluster_keys(&server, &prefix).await,
                1,
                "one cluster bucket in Redis"
            );
            for g in &guards {
                let c = share(g).counts();
                assert!(c.published > 0 && c.applied > 0, "{c:?}");
                assert_eq!((c.dropped, c.malformed), (0, 0), "{c:?}");
            }
            // Bystanders stay alone on every replica.
            for g in &guards {
                let o = g
                    .shared()
                    .detector()
                    .engine()
                    .cluster_of(&account("organic-5"));
                assert_eq!(o.expect("known everywhere").size, 1);
            }
        } else {
            assert!(guards
                .iter()
                .all(|g| g.shared().detector().share().is_none()));
            let ids: std::collections::HashSet<ClusterId> = seen.iter().map(|c| c.id).collect();
            assert_eq!(ids.len(), 3, "each replica has its own cluster: {seen:?}");
            assert!(
                seen.iter().all(|c| (8..=10).contains(&c.size)),
                "each links only the accounts it saw: {seen:?}"
            );
            assert!(views[1].is_none(), "replica 1 never saw campaign-0");
            assert_eq!(
                cluster_keys(&server, &prefix).await,
                3,
                "three cluster buckets"
            );
        }
    }
}

/// A replica that starts late reads the log from its start and knows the
/// clusters the others built; an unlink on one replica reaches every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_warms_up_from_the_log_and_unlinks_travel() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new(T0);
    let first = vec![replica(config(&server, "w:", true), &clock)];
    traffic(&clock, &first).await;
    let a0 = account("campaign-0");
    let built = first[0]
        .shared()
        .detector()
        .engine()
        .cluster_of(&a0)
        .expect("linked");
    assert!(built.size >= 27, "{built:?}");
    let late = replica(config(&server, "w:", true), &clock);
    let all = vec![first[0].clone(), late.clone()];
    sync(&first[0], &all).await;
    let view = late
        .shared()
        .detector()
        .engine()
        .cluster_of(&a0)
        .expect("warmed up");
    assert_eq!(view, built, "the late replica has the same cluster");

    let a5 = account("campaign-5");
    assert!(first[0]
        .shared()
        .detector()
        .unlink(&a5, clock.now_ms(), 3_600_000));
    sync(&first[0], &all).await;
    for g in &all {
        let c = g
            .shared()
            .detector()
            .engine()
            .cluster_of(&a5)
            .expect("tracked");
        assert_eq!(c.size, 1, "unlinked on every replica");
        assert_eq!(
            g.shared()
                .detector()
                .engine()
                .cluster_of(&a0)
                .expect("tracked")
                .size,
            built.size - 1
        );
    }
    // Held apart: its next request, on the other replica, stays alone.
    clock.advance_ms(20_000);
    let (_, c) = send(
        &late,
        "campaign-5",
        [203, 0, 113, 2],
        "python-httpx/0.27.0",
        campaign_body(5),
    )
    .await;
    assert_eq!(c.expect("served").size, 1);

    // A relink on the late replica ends the hold on the first one too.
    assert!(late.shared().detector().relink(&a5, clock.now_ms()));
    sync(&late, &all).await;
    clock.advance_ms(20_000);
    // (The campaign may be blocked by now: the engine still sees the request.)
    send(
        &first[0],
        "campaign-5",
        [203, 0, 113, 2],
        "python-httpx/0.27.0",
        campaign_body(6),
    )
    .await;
    let c = first[0].shared().detector().engine().cluster_of(&a5);
    assert_eq!(
        c.expect("tracked").id,
        built.id,
        "linked again after relink"
    );
}

/// Garbage in the log is skipped and counted; Redis killed and restarted empty
/// loses nothing but the log, and sharing resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_entries_and_a_redis_restart_are_survived() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = ManualClock::new(T0);
    let guards: Vec<Guard> = (0..2)
        .map(|_| replica(config(&server, "f:", true), &clock))
        .collect();
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    for (field, value) in [("b", &b"dg\x01garbage"[..]), ("x", b"y"), ("b", b"")] {
        let _: String = redis::cmd("XADD")
            .arg("f:clusters:log")
            .arg("*")
            .arg(field)
            .arg(value)
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let (status, _) = send(
        &guards[0],
        "organic-1",
        [198, 51, 1, 7],
        "curl/8.5.0",
        organic_body(1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sync(&guards[0], &guards).await;
    for g in &guards {
        assert_eq!(share(g).counts().malformed, 3, "{:?}", share(g).counts());
    }
    assert_eq!(share(&guards[1]).counts().applied, 1);

    // A well-formed entry dated far in the future (a replica with a broken
    // clock, or a forged entry) must not age out everyone's state.
    for u in 0..12u64 {
        clock.advance_ms(1_000);
        send(
            &guards[0],
            &format!("shared-ua-{u}"),
            [198, 51, 9, u as u8],
            "curl/8.5.0",
            organic_body(300 + u),
        )
        .await;
    }
    sync(&guards[0], &guards).await;
    let postings = guards[1].shared().detector().engine().stats().postings;
    assert!(postings > 0, "shared values have posting lists");
    let mut forged = b"dg\x02".to_vec();
    forged.extend_from_slice(&7u64.to_le_bytes()); // replica
    forged.extend_from_slice(&1u16.to_le_bytes()); // one event
    forged.push(1); // observe
    forged.extend_from_slice(&[0xee; 16]);
    forged.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    forged.extend_from_slice(&[0; 4 * distill_guard::cluster::SIGNALS]); // the signals
    forged.push(0); // no features
    let _: String = redis::cmd("XADD")
        .arg("f:clusters:log")
        .arg("*")
        .arg("b")
        .arg(forged)
        .query_async(&mut conn)
        .await
        .expect("XADD");
    clock.advance_ms(1_000);
    send(
        &guards[0],
        "shared-ua-12",
        [198, 51, 9, 12],
        "curl/8.5.0",
        organic_body(312),
    )
    .await;
    sync(&guards[0], &guards).await;
    assert_eq!(
        share(&guards[1]).counts().malformed,
        3,
        "well-formed, so applied"
    );
    let after = guards[1].shared().detector().engine().stats().postings;
    assert!(
        after >= postings,
        "postings kept: {postings} before, {after} after"
    );

    server.kill();
    for i in 0..5u64 {
        clock.advance_ms(1_000);
        let (status, _) = send(
            &guards[0],
            &format!("during-{i}"),
            [198, 51, 2, 7],
            "curl/8.5.0",
            organic_body(100 + i),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "fail_open keeps serving");
    }
    assert!(
        share(&guards[0]).flush().await.is_err(),
        "publishing fails while Redis is down"
    );
    // Nothing can be applied while Redis is down: what the other replica has
    // applied so far, counted before anything is published again (read once
    // sharing is back, its reader may already have caught up).
    let before = share(&guards[1]).counts().applied;
    server.restart();
    // Publishing recovers on its own once Redis is back.
    let attempt = Cell::new(0u64);
    let id = wait::until_some("sharing recovered", || {
        let (attempt, guards, clock) = (&attempt, &guards, &clock);
        async move {
            let i = attempt.get();
            attempt.set(i + 1);
            clock.advance_ms(1_000);
            send(
                &guards[0],
                &format!("after-{i}"),
                [198, 51, 3, 7],
                "curl/8.5.0",
                organic_body(200 + i),
            )
            .await;
            share(&guards[0]).flush().await.ok()
        }
    })
    .await;
    // The other replica's reader reconnects by itself and reads the restarted
    // stream's new entries.
    let s1 = share(&guards[1]).clone();
    wait::until_true(&format!("the reader read the new log ({id})"), || {
        s1.counts().applied != before
    })
    .await;
    let c = share(&guards[0]).counts();
    assert!(c.dropped >= 5 && c.errors > 0, "{c:?}");
}

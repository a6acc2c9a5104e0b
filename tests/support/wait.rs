//! Waiting on what runs outside the test's control (processes, Redis, their
//! background tasks): poll with a deadline and fail naming what never happened.
//! The deadlines guard against hangs; no test asserts how long something took.
//! On tokio's paused clock, [`finishes_at`] checks *when* something happens
//! (pending just before a deadline, done just after) without measuring it.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long an outside condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a condition is polled.
pub const EVERY: Duration = Duration::from_millis(20);

/// Polls `f` until it gives a value; panics naming `what` after [`PATIENCE`].
pub async fn until_some<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `cond` until it holds; panics naming `what` after [`PATIENCE`].
pub async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_some(what, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// [`until`] for a condition that needs no `.await`.
pub async fn until_true(what: &str, mut cond: impl FnMut() -> bool) {
    until(what, || std::future::ready(cond())).await
}

/// [`until`] outside a runtime: blocks the thread between polls.
pub fn until_blocking(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(EVERY);
    }
}

/// How far either side of a deadline [`finishes_at`] looks.
pub const SLACK: Duration = Duration::from_millis(1);

/// `fut`'s output, checked to finish at `at` on tokio's paused clock: still
/// pending at `at - SLACK`, done by `at + SLACK`. Fails naming `what`
/// otherwise.
pub async fn finishes_at<F: Future>(what: &str, at: tokio::time::Instant, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    assert!(
        tokio::time::timeout_at(at - SLACK, &mut fut).await.is_err(),
        "{what} came before its deadline"
    );
    match tokio::time::timeout_at(at + SLACK, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} had not come at its deadline"),
    }
}

/// `fut`'s output, failing the test if it has not finished after `bound` (a
/// hang guard: a call that must be bounded by a timeout must come back).
pub async fn within<F: Future>(what: &str, bound: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(bound, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not come back within {bound:?}"),
    }
}

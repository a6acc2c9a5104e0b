//! GCRA, written as the bucket level it implies.
//!
//! GCRA keeps a theoretical arrival time `tat`; a request of cost `n` is admitted
//! when `tat + n·T − τ ≤ now`. That is a leaky bucket whose level is
//! `(tat − now)/T` units. We keep the *level* and the time it was last brought up to
//! date instead of `tat`, which is the same algorithm with two properties that
//! governor's keyed limiters do not offer and this crate needs:
//!
//! * the rate and capacity of a key change at run time (cluster size, suspicion
//!   band) without resetting its state: the level is in units, not in time;
//! * units can be given back (token reservations refunded on reconciliation) or
//!   charged after the fact, which governor's API has no operation for.
//!
//! The arithmetic is small and pure, so the in-memory store and the Redis Lua script
//! compute exactly the same thing.

/// The effective limit of one bucket at this moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Largest level: how many units may be taken at once from an empty bucket.
    pub capacity: f64,
    /// Drain rate in units per millisecond.
    pub per_ms: f64,
}

impl BucketLimit {
    /// `limit` units per `window_ms`, holding `burst` units.
    pub fn new(limit: f64, window_ms: f64, burst: f64) -> Self {
        Self {
            capacity: burst,
            per_ms: if window_ms > 0.0 {
                limit / window_ms
            } else {
                0.0
            },
        }
    }

    /// The same bucket with capacity and rate multiplied by `m`.
    pub fn scaled(self, m: f64) -> Self {
        Self {
            capacity: self.capacity * m,
            per_ms: self.per_ms * m,
        }
    }
}

/// Slack for float rounding when comparing levels.
const EPSILON: f64 = 1e-9;

/// The level at `now_ms` of a bucket that held `level` at `last_ms`.
pub fn drained(level: f64, last_ms: u64, now_ms: u64, limit: &BucketLimit) -> f64 {
    let elapsed = now_ms.saturating_sub(last_ms) as f64;
    (level - elapsed * limit.per_ms).max(0.0)
}

/// Whether `cost` more units fit on top of `level`; if not, how long until they do
/// (`None` when they never will at this rate and capacity).
pub fn check(level: f64, cost: f64, limit: &BucketLimit) -> Result<(), Option<u64>> {
    let over = level + cost - limit.capacity;
    if over <= EPSILON * limit.capacity.max(1.0) {
        Ok(())
    } else if cost > limit.capacity + EPSILON || limit.per_ms <= 0.0 {
        Err(None)
    } else {
        Err(Some((over / limit.per_ms).ceil() as u64))
    }
}

/// Units left before the bucket is full.
pub fn remaining(level: f64, limit: &BucketLimit) -> f64 {
    (limit.capacity - level).max(0.0)
}

/// Milliseconds until the bucket is empty again (back to its initial state).
pub fn reset_ms(level: f64, limit: &BucketLimit) -> u64 {
    if level <= 0.0 {
        0
    } else if limit.per_ms <= 0.0 {
        u64::MAX
    } else {
        (level / limit.per_ms).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sixty_per_minute_is_sixty_at_once_then_one_per_second() {
        let lim = BucketLimit::new(60.0, 60_000.0, 60.0);
        let mut level = 0.0;
        for _ in 0..60 {
            assert!(check(level, 1.0, &lim).is_ok());
            level += 1.0;
        }
        assert_eq!(check(level, 1.0, &lim), Err(Some(1_000)));
        let later = drained(level, 0, 1_000, &lim);
        assert!(check(later, 1.0, &lim).is_ok());
        assert_eq!(reset_ms(level, &lim), 60_000);
    }

    #[test]
    fn a_cost_larger_than_capacity_never_fits() {
        let lim = BucketLimit::new(100.0, 60_000.0, 100.0);
        assert_eq!(check(0.0, 101.0, &lim), Err(None));
        assert_eq!(check(0.0, 1.0, &lim.scaled(0.0)), Err(None));
    }

    proptest! {
        /// Admitted units over any span never exceed capacity + rate × span.
        #[test]
        fn never_admits_more_than_capacity_plus_refill(
            steps in proptest::collection::vec((0u64..5_000, 1u32..20), 1..200),
            limit in 1u32..500,
        ) {
            let lim = BucketLimit::new(limit as f64, 60_000.0, limit as f64);
            let (mut level, mut last, mut now, mut admitted) = (0.0, 0u64, 0u64, 0.0);
            for (dt, cost) in steps {
                now += dt;
                level = drained(level, last, now, &lim);
                last = now;
                if check(level, cost as f64, &lim).is_ok() {
                    level += cost as f64;
                    admitted += cost as f64;
                }
                prop_assert!(level <= lim.capacity + 1e-6);
            }
            prop_assert!(admitted <= lim.capacity + lim.per_ms * now as f64 + 1e-6);
        }

        /// The retry time is exact: waiting it makes the cost fit, a millisecond
        /// less does not (when more than a millisecond is needed).
        #[test]
        fn retry_after_is_tight(level in 0.0f64..100.0, cost in 1.0f64..50.0) {
            let lim = BucketLimit::new(100.0, 60_000.0, 100.0);
            if let Err(Some(wait)) = check(level, cost, &lim) {
                prop_assert!(check(drained(level, 0, wait, &lim), cost, &lim).is_ok());
                if wait > 1 {
                    prop_assert!(check(drained(level, 0, wait - 2, &lim), cost, &lim).is_err());
                }
            }
        }
    }
}

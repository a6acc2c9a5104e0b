//! When accounts send: each account's events of one hour, drawn from its own
//! random stream for that hour, so generation runs hour by hour in bounded
//! memory and any hour can be drawn without the ones before it.

use rand::Rng;

use super::population::{Behaviour, Content, Population, HOUR_MS};
use super::random::{chance, geometric, log_normal, mix, poisson, rng_of};

/// Relative request intensity of people by local hour (mean 1 after scaling).
const HUMAN_DAY: [f64; 24] = [
    0.15, 0.1, 0.08, 0.07, 0.08, 0.15, 0.35, 0.7, 1.2, 1.6, 1.8, 1.8, 1.5, 1.7, 1.8, 1.7, 1.5, 1.2,
    1.0, 0.95, 0.9, 0.75, 0.5, 0.3,
];

pub(crate) fn human_day(local_hour: i64) -> f64 {
    let mean: f64 = HUMAN_DAY.iter().sum::<f64>() / 24.0;
    HUMAN_DAY[local_hour.rem_euclid(24) as usize] / mean
}

/// Mean requests in a campaign account's human-like session.
const SESSION_MEAN: f64 = 5.0;
/// Mean tasks in a power user's session.
const TASKS_PER_SESSION: f64 = 3.0;

/// One request to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Event {
    pub(crate) ts: u64,
    pub(crate) account: u32,
    /// The conversation (or request) seed.
    pub(crate) session: u64,
    /// The turn within the conversation (0 for a first message).
    pub(crate) turn: u16,
}

impl Population {
    /// Appends account `idx`'s events that start in hour `hour` (they may run on).
    pub(crate) fn events(&self, idx: usize, hour: u64, out: &mut Vec<Event>) {
        let Some(a) = self.accounts.get(idx) else {
            return;
        };
        let hs = self.params.start_ms + hour * HOUR_MS;
        let he = hs + HOUR_MS;
        if a.active_from >= he {
            return;
        }
        let from = hs.max(a.active_from);
        let span = (he - from) as f64 / HOUR_MS as f64;
        let mut rng = rng_of(mix(self.params.seed, a.seed), hour);
        let local = (hs / HOUR_MS) as i64 + a.tz;
        let account = idx as u32;
        let mut push = |ts: u64, session: u64, turn: u16| {
            out.push(Event {
                ts,
                account,
                session,
                turn,
            })
        };
        // A campaign account's first request comes when it is created.
        let created_now = a.campaign && (hs..he).contains(&a.active_from);
        match a.behaviour {
            Behaviour::Chat | Behaviour::Agent => {
                let sessions = poisson(&mut rng, a.rate / 24.0 * human_day(local) * span);
                let agent = a.behaviour == Behaviour::Agent;
                for _ in 0..sessions {
                    let mut t = from + rng.random_range(0..he - from);
                    let session: u64 = rng.random();
                    let turns = if agent {
                        2 + geometric(&mut rng, 4.0).min(30)
                    } else {
                        1 + geometric(&mut rng, 1.8).min(11)
                    };
                    for turn in 0..turns {
                        push(t, session, turn as u16);
                        let gap = if agent {
                            log_normal(&mut rng, 9_000.0, 0.6)
                        } else {
                            log_normal(&mut rng, 70_000.0, 0.8)
                        };
                        t += gap.min(1_800_000.0) as u64;
                    }
                }
            }
            Behaviour::Power => {
                let follow = self.knobs.follow_up_share;
                let sessions = poisson(
                    &mut rng,
                    a.rate / TASKS_PER_SESSION / 24.0 * human_day(local) * span,
                );
                for _ in 0..sessions {
                    let mut t = from + rng.random_range(0..he - from);
                    let tasks = 1 + geometric(&mut rng, TASKS_PER_SESSION - 1.0).min(20);
                    for _ in 0..tasks {
                        let conversation: u64 = rng.random();
                        let turns = if chance(&mut rng, follow) {
                            2 + geometric(&mut rng, 0.5).min(4)
                        } else {
                            1
                        };
                        for turn in 0..turns {
                            push(t, conversation, turn as u16);
                            t += log_normal(&mut rng, 120_000.0, 0.6).min(1_800_000.0) as u64;
                        }
                        t += log_normal(&mut rng, 240_000.0, 0.7).min(3_600_000.0) as u64;
                    }
                }
            }
            Behaviour::Job => {
                // People's scripts and researchers run in working hours;
                // batch jobs around the clock.
                let shape = if matches!(a.content, Content::EvalMc { .. }) {
                    1.0
                } else {
                    human_day(local)
                };
                let runs = poisson(&mut rng, a.rate / 24.0 * shape * span);
                for _ in 0..runs {
                    let mut t = from + rng.random_range(0..he - from);
                    let job: u64 = rng.random();
                    let n = rng.random_range(a.run.0..=a.run.1.max(a.run.0));
                    for j in 0..n {
                        push(t, mix(job, u64::from(j)), 0);
                        t += (a.interval_ms as f64 * rng.random_range(0.9..1.1)) as u64;
                    }
                }
            }
            Behaviour::Service | Behaviour::Poisson => {
                let shape = if a.behaviour == Behaviour::Service {
                    0.5 + 0.5 * human_day(local)
                } else {
                    let amp =
                        a.op.and_then(|o| self.operators.get(usize::from(o)))
                            .map_or(0.25, |op| op.rhythm.clamp(0.0, 1.0));
                    1.0 - amp + amp * human_day(local)
                };
                if created_now {
                    push(a.active_from, rng.random(), 0);
                }
                let k = poisson(&mut rng, a.rate / 24.0 * shape * span);
                for _ in 0..k {
                    let ts = from + rng.random_range(0..he - from);
                    push(ts, rng.random(), 0);
                }
            }
            Behaviour::Sessions => {
                let mut starts: Vec<u64> = Vec::new();
                if created_now {
                    starts.push(a.active_from);
                }
                let k = poisson(
                    &mut rng,
                    a.rate / SESSION_MEAN / 24.0 * human_day(local) * span,
                );
                for _ in 0..k {
                    starts.push(from + rng.random_range(0..he - from));
                }
                for mut t in starts {
                    let n = 1 + geometric(&mut rng, SESSION_MEAN - 1.0).min(40);
                    for _ in 0..n {
                        push(t, rng.random(), 0);
                        t += log_normal(&mut rng, 100_000.0, 0.5).min(900_000.0) as u64;
                    }
                }
            }
            Behaviour::Regular => {
                let i = a.interval_ms.max(1);
                let jitter = ((i as f64 * self.knobs.naive_jitter) as u64).max(1);
                let first = (from - a.active_from).div_ceil(i);
                let mut k = first;
                while a.active_from + k * i < he {
                    let ts = a.active_from + k * i + rng.random_range(0..jitter);
                    push(ts, rng.random(), 0);
                    k += 1;
                }
            }
        }
    }
}

//! Every numeric parameter of the generator, its default and the range a
//! perturbation may move it in.
//!
//! With `--perturb N` (N ≠ 0) each knob is multiplied by a factor drawn
//! uniformly from `[1 − r, 1 + r]`, where `r` is the knob's range, from a
//! random stream named by the perturbation seed and the knob's name (adding a
//! knob never moves the others). Shares are clamped to `[0, 1]` where they are
//! used, counts rounded. Tuning that only works at the defaults is fitted to
//! one generator; run perturbed generators too.

use serde::Serialize;

use super::random::{name_hash, rng_of};
use rand::Rng;

macro_rules! knobs {
    ($( $(#[doc = $doc:literal])+ $name:ident : $default:expr, $range:expr; )*) => {
        /// The generator's parameters (see the module docs and
        /// `docs/simulate.md` for what each one moves).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct Knobs {
            $( $(#[doc = $doc])+ pub $name: f64, )*
        }

        impl Knobs {
            /// Every knob: name, default and relative range of a perturbation.
            pub const TABLE: &'static [(&'static str, f64, f64)] = &[
                $( (stringify!($name), $default, $range), )*
            ];

            /// The documented defaults.
            pub fn defaults() -> Self {
                Self { $( $name: $default, )* }
            }

            fn apply(&mut self, perturb: u64) {
                $( self.$name *= factor(perturb, stringify!($name), $range); )*
            }

            /// The knobs as `(name, value)` pairs, in table order.
            pub fn values(&self) -> Vec<(&'static str, f64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

fn factor(perturb: u64, name: &str, range: f64) -> f64 {
    let mut rng = rng_of(perturb, name_hash(name));
    1.0 + range * (2.0 * rng.random::<f64>() - 1.0)
}

knobs! {
    // ---- the organic population
    /// Multiplier on every person's sessions per day.
    organic_activity: 1.0, 0.3;
    /// Share of organic accounts using the popular coding agent.
    share_coding_agent: 0.15, 0.3;
    /// Share of organic accounts behind corporate NATs.
    share_nat: 0.08, 0.3;
    /// Share of organic accounts using the hosted bring-your-own-key app.
    share_hosted_app: 0.05, 0.3;
    /// Share of organic accounts that are resellers' innocent customers.
    share_reseller_customers: 0.045, 0.3;
    /// Share of organic accounts run by organisations with several keys.
    share_org: 0.05, 0.3;
    /// Share of organic accounts that run batch evaluation jobs.
    share_batch: 0.005, 0.3;
    /// Share of organic accounts that are reasoning power users (people).
    share_power_user: 0.06, 0.3;
    /// Share of organic accounts that run small reasoning scripts.
    share_power_script: 0.01, 0.3;
    /// Share of organic accounts that are students.
    share_student: 0.05, 0.3;
    /// Share of organic accounts that are researchers' ad-hoc evaluation scripts.
    share_researcher: 0.004, 0.3;
    /// Share of organic accounts created to try the newly released model.
    share_early_adopter: 0.02, 0.3;
    /// Accounts behind one corporate NAT.
    nat_size: 500.0, 0.3;
    /// Mean extra keys of an organisation (beyond two).
    org_size_mean: 3.0, 0.3;
    /// Share of people whose default cap is large (4k–32k).
    organic_large_cap_share: 0.2, 0.3;
    /// Share of ordinary people's first messages that ask for the reasoning.
    organic_cot_share: 0.06, 0.3;
    /// Power users' median tasks per day.
    power_daily: 10.0, 0.3;
    /// Students' median tasks per day.
    student_daily: 6.0, 0.3;
    /// Share of a power user's or student's tasks followed up in conversation.
    follow_up_share: 0.3, 0.3;
    /// Researchers' evaluation runs per day.
    researcher_runs_per_day: 0.4, 0.3;
    /// Probability that a batch account runs its job on a given day.
    batch_job_probability: 0.6, 0.3;
    /// Share of people who try the new model after its release.
    new_model_trial_share: 0.12, 0.3;
    /// When the new model is released, as a fraction of the run.
    release_at: 0.5, 0.3;
    /// Mean hours from the release to an early adopter's first request.
    early_adopter_delay_h: 3.0, 0.3;
    /// Median output tokens of an ordinary answer.
    organic_output_median: 280.0, 0.3;

    // ---- the campaigns
    /// Requests per campaign account per day (the report's 26.2).
    campaign_daily: 26.18, 0.3;
    /// Spread (log-normal sigma) of campaign accounts' daily volume.
    campaign_rate_sigma: 0.25, 0.3;
    /// The first operator's share of the campaign accounts.
    first_operator_share: 0.42, 0.3;
    /// Each next operator's size relative to the one before.
    operator_size_decay: 0.78, 0.3;
    /// Hours from the start of the run to the first operator (at most 10% of it).
    campaign_start_h: 2.0, 0.3;
    /// Time between operator starts, as a fraction of the run.
    operator_stagger: 0.12, 0.3;
    /// Bursts in which a naive operator creates its accounts.
    naive_bursts: 20.0, 0.3;
    /// Minutes between a naive operator's bursts.
    naive_burst_gap_min: 18.0, 0.3;
    /// A naive operator's timing jitter, as a fraction of its interval.
    naive_jitter: 0.04, 0.3;
    /// Hours over which a spoofing operator brings its accounts online.
    spoofed_ramp_h: 12.0, 0.3;
    /// Hours over which a hydra operator brings its accounts online.
    hydra_ramp_h: 6.0, 0.3;
    /// Waves of account creation of an adaptive operator.
    adaptive_waves: 5.0, 0.3;
    /// Hours between an adaptive operator's waves.
    wave_gap_h: 6.0, 0.3;
    /// Hours over which one wave's accounts are created.
    wave_spread_h: 1.5, 0.3;
    /// Share of campaign requests that are short ordinary tasks.
    short_share: 0.2, 0.3;
    /// Share of an adaptive operator's long tasks that ask for the reasoning in
    /// words (the rest rely on reasoning effort, thinking or the system prompt).
    cot_share: 0.85, 0.3;
    /// Multiplier on campaign output caps.
    campaign_cap_scale: 1.0, 0.3;
    /// Share of campaign long tasks sent with an ordinary cap.
    ordinary_cap_share: 0.1, 0.3;
    /// Share of campaign accounts that set reasoning effort or thinking.
    reasoning_share: 0.4, 0.3;
    /// Hours between client re-draws and sticky-address rotations.
    rotation_h: 6.0, 0.3;
    /// Share of spoofed accounts whose client headers contradict each other.
    mismatch_share: 0.1, 0.3;
    /// Share of an adaptive operator's accounts routed through a reseller.
    reseller_share: 0.25, 0.3;
    /// Hours from the model's release to an adaptive operator's pivot.
    pivot_delay_h: 2.0, 0.3;
    /// Share of an adaptive operator's accounts that move to the new model.
    pivot_share: 0.8, 0.2;
    /// Weight of coding tasks in a campaign's capability focus.
    focus_coding: 0.35, 0.3;
    /// Weight of agentic tool-use plans.
    focus_agentic: 0.2, 0.3;
    /// Weight of maths problems.
    focus_maths: 0.25, 0.3;
    /// Weight of long-horizon reasoning puzzles.
    focus_long: 0.2, 0.3;
    /// Median output tokens of a campaign's long task.
    campaign_output_median: 1800.0, 0.3;
}

/// Share of each wording pool kept by a perturbation: uniform in this range.
pub const POOL_KEEP: (f64, f64) = (0.6, 0.9);

impl Knobs {
    /// The knobs of perturbation `perturb` (0: the defaults).
    pub fn for_perturb(perturb: u64) -> Self {
        let mut k = Self::defaults();
        if perturb != 0 {
            k.apply(perturb);
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_the_defaults() {
        assert_eq!(Knobs::for_perturb(0), Knobs::defaults());
        let d = Knobs::defaults();
        assert_eq!(d.campaign_daily, 26.18);
        assert_eq!(d.values().len(), Knobs::TABLE.len());
    }

    #[test]
    fn a_perturbation_moves_every_knob_within_its_range_deterministically() {
        let d = Knobs::defaults().values();
        let a = Knobs::for_perturb(5);
        assert_eq!(a, Knobs::for_perturb(5), "deterministic");
        let b = Knobs::for_perturb(6);
        for (((name, def, range), (_, va)), (_, vb)) in
            Knobs::TABLE.iter().zip(a.values()).zip(b.values())
        {
            assert_ne!(va, vb, "{name} differs between perturbations");
            let f = va / def;
            assert!((1.0 - range..=1.0 + range).contains(&f), "{name}: ×{f}");
            assert_ne!(f, 1.0, "{name} moved");
        }
        assert_eq!(d.len(), Knobs::TABLE.len());
    }
}

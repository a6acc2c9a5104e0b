//! Campaign operators: their plans (wording, system prompts, parameters,
//! clients, networks, schedules) and their accounts.
//!
//! What an operator cannot hide is shared by every kind: capability focus
//! (coding, agentic plans, maths, long-horizon reasoning), single-turn
//! tool-less prompts that ask for the full reasoning, large output budgets
//! and reasoning effort, and ~26 requests per account per day, with noise
//! (short ordinary tasks, slower and faster accounts, ordinary caps).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::paraphrase::{compose, system_prompt, Voice, PAYLOAD};
use super::plan::Operator;
use super::pools::P;
use super::population::{
    pool_in, residential, snap_cap, tz_of, Behaviour, Content, Net, NewModel, Population, System,
    Who, DAY_MS, GENERIC_SYSTEMS, HOUR_MS, LARGE_CAPS, TEMPERATURES,
};
use super::profile::{Client, ClientKind, Dialect, Endpoint};
use super::random::{chance, mean_one, mix, pick, pick_or, rng_of, weighted};
use super::scenario::OperatorKind;

/// The clients operators draw from: the stock SDKs and scripts.
pub(crate) const CAMPAIGN_CLIENTS: [ClientKind; 7] = [
    ClientKind::OpenAiPython,
    ClientKind::OpenAiNode,
    ClientKind::AnthropicPython,
    ClientKind::AnthropicNode,
    ClientKind::Curl,
    ClientKind::PyRequests,
    ClientKind::LangChain,
];
const CLIENT_BASE: [f64; 7] = [30.0, 14.0, 12.0, 6.0, 5.0, 5.0, 10.0];

/// How an operator rotates residential addresses.
#[derive(Debug, Clone, Copy)]
enum Rotation {
    PerRequest,
    Every(u64),
    PerAccount,
}

impl Rotation {
    fn of(index: usize, rotation_ms: u64) -> Self {
        match index % 3 {
            1 => Rotation::PerRequest,
            2 => Rotation::Every(rotation_ms),
            _ => Rotation::PerAccount,
        }
    }

    fn net<R: Rng + ?Sized>(self, rng: &mut R) -> Net {
        match self {
            Rotation::PerRequest => Net::Churn,
            Rotation::Every(ms) => Net::Sticky(ms.max(60_000)),
            Rotation::PerAccount => {
                let ip = residential(rng);
                Net::Home(ip, ip)
            }
        }
    }
}

fn jitter<R: Rng + ?Sized>(rng: &mut R, x: f64, r: f64) -> f64 {
    x * rng.random_range(1.0 - r..=1.0 + r)
}

/// Splits `total` into parts proportional to `weights`, each at least 1.
fn split(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| ((total as f64 * w / sum).floor() as usize).max(1))
        .collect();
    let len = sizes.len();
    let mut i = 0;
    while sizes.iter().sum::<usize>() < total {
        sizes[i % len] += 1;
        i += 1;
    }
    while sizes.iter().sum::<usize>() > total {
        if let Some(m) = sizes.iter_mut().filter(|s| **s > 1).max() {
            *m -= 1;
        } else {
            break;
        }
    }
    sizes
}

fn endpoint_for(dialect: Dialect) -> Endpoint {
    match dialect {
        Dialect::OpenAi => Endpoint::Chat,
        Dialect::Anthropic => Endpoint::Messages,
    }
}

impl Population {
    /// Builds the scenario's operators and their accounts.
    pub(crate) fn campaigns(&mut self) {
        let kinds = self.scenario.operators(self.params.operators);
        if kinds.is_empty() {
            return;
        }
        let k = self.knobs.clone();
        let total = self.params.campaign_count(kinds.len());
        let weights: Vec<f64> = (0..kinds.len())
            .map(|i| k.first_operator_share * k.operator_size_decay.clamp(0.2, 1.5).powi(i as i32))
            .collect();
        let sizes = split(total, &weights);
        let run_ms = self.end_ms - self.params.start_ms;
        let first = (k.campaign_start_h * HOUR_MS as f64).min(run_ms as f64 * 0.1);
        let mut per_kind = [0usize; 4];
        for (i, (&kind, &size)) in kinds.iter().zip(&sizes).enumerate() {
            let mut rng = rng_of(
                mix(self.params.seed, self.params.perturb),
                0x0_ca4a_0000 + i as u64,
            );
            let slot = OperatorKind::ALL
                .iter()
                .position(|x| *x == kind)
                .unwrap_or(0);
            per_kind[slot] += 1;
            let index = per_kind[slot];
            let offset = if i == 0 {
                first
            } else {
                first + jitter(&mut rng, i as f64 * k.operator_stagger * run_ms as f64, 0.2)
            };
            let start_ms = self.params.start_ms + offset.min(run_ms as f64 * 0.9) as u64;
            let op = self.plan(&mut rng, kind, index, size, start_ms);
            let o = self.operators.len() as u16;
            self.operators.push(op);
            match kind {
                OperatorKind::Naive => self.naive_accounts(&mut rng, o),
                OperatorKind::Spoofed => self.spoofed_accounts(&mut rng, o, index),
                OperatorKind::Hydra => self.hydra_accounts(&mut rng, o, index),
                OperatorKind::Adaptive => self.adaptive_accounts(&mut rng, o, index),
            }
        }
    }

    fn plan(
        &self,
        rng: &mut ChaCha8Rng,
        kind: OperatorKind,
        index: usize,
        accounts: usize,
        start_ms: u64,
    ) -> Operator {
        let k = &self.knobs;
        // An adaptive operator runs a paraphraser over its own text too.
        let voice = Voice {
            rephrase: kind == OperatorKind::Adaptive,
            ..Voice::random(rng)
        };
        let n_templates = match kind {
            OperatorKind::Naive => rng.random_range(3..=6),
            OperatorKind::Spoofed => rng.random_range(8..=12),
            OperatorKind::Hydra => rng.random_range(6..=8),
            OperatorKind::Adaptive => 0,
        };
        let templates = (0..n_templates)
            .map(|t| {
                let mut s = String::new();
                // The first template always asks for the reasoning.
                let reason = t == 0 || rng.random_bool(0.85);
                compose(rng, &self.words, &voice, reason, PAYLOAD, &mut s);
                s
            })
            .collect();
        let mut short_template = String::from(PAYLOAD);
        short_template.push_str(pick(rng, &["\n\n", " ", "\n"]));
        let p = if rng.random_bool(0.5) {
            P::Format
        } else {
            P::Closer
        };
        self.words.fill_from(rng, p, &mut short_template);
        let n_systems = match kind {
            OperatorKind::Naive => 1,
            OperatorKind::Spoofed => rng.random_range(2..=3),
            OperatorKind::Hydra => rng.random_range(1..=2),
            OperatorKind::Adaptive => 0,
        };
        let mut systems: Vec<String> = (0..n_systems)
            .map(|_| {
                let mut s = String::new();
                system_prompt(rng, &self.words, &mut s);
                s
            })
            .collect();
        // Spoofing operators hide among strangers with a stock prompt.
        if kind == OperatorKind::Spoofed && rng.random_bool(0.7) {
            systems.push(GENERIC_SYSTEMS[0].to_owned());
        }
        let system_share = match kind {
            OperatorKind::Naive => 1.0,
            OperatorKind::Spoofed => rng.random_range(0.5..0.9),
            OperatorKind::Hydra => rng.random_range(0.2..0.6),
            OperatorKind::Adaptive => rng.random_range(0.55..0.85),
        };
        let mut focus = [k.focus_coding, k.focus_agentic, k.focus_maths, k.focus_long];
        for f in &mut focus {
            *f = jitter(rng, *f, 0.4);
        }
        let mut client_weights = CLIENT_BASE;
        for w in &mut client_weights {
            *w = jitter(rng, *w, 0.7);
        }
        let rotation_ms = (k.rotation_h * HOUR_MS as f64) as u64;
        let client_redraw_ms = match (kind, index % 3) {
            (OperatorKind::Spoofed, 1) => Some(rotation_ms),
            (OperatorKind::Spoofed, 0) => Some(rotation_ms * 4),
            (OperatorKind::Adaptive, 2) => Some(rotation_ms * 2),
            _ => None,
        };
        let rhythm = match (kind, index % 3) {
            (OperatorKind::Naive, _) => 0.0,
            (OperatorKind::Adaptive, 1) => 0.3,
            (OperatorKind::Adaptive, _) => 1.0,
            _ => rng.random_range(0.1..0.4),
        };
        let pivot_ms = (kind == OperatorKind::Adaptive)
            .then(|| self.release_ms + (jitter(rng, k.pivot_delay_h, 0.5) * HOUR_MS as f64) as u64);
        Operator {
            kind,
            actor: format!("campaign-{}-{index}", kind.name()),
            start_ms,
            accounts,
            voice,
            templates,
            short_template,
            systems,
            system_share,
            focus,
            short_share: jitter(rng, k.short_share, 0.2),
            cot_share: jitter(rng, k.cot_share, 0.1).min(1.0),
            ordinary_cap_share: jitter(rng, k.ordinary_cap_share, 0.3),
            output_median: jitter(rng, k.campaign_output_median, 0.15),
            client_redraw_ms,
            client_weights,
            rhythm,
            pivot_ms,
        }
    }

    /// Adds one account of operator `o`; returns its index.
    fn campaign_account(
        &mut self,
        rng: &mut ChaCha8Rng,
        o: u16,
        client: Client,
        net: Net,
        behaviour: Behaviour,
    ) -> usize {
        let (actor, cohort) = {
            let op = &self.operators[usize::from(o)];
            (op.actor.clone(), op.kind.name())
        };
        let i = self.push(
            rng,
            Who::new(&actor, "campaign", cohort),
            client,
            net,
            (behaviour, Content::Campaign),
        );
        let daily = self.knobs.campaign_daily;
        let sigma = self.knobs.campaign_rate_sigma;
        let a = &mut self.accounts[i];
        a.op = Some(o);
        a.endpoint = endpoint_for(a.client.dialect);
        a.rate = daily * mean_one(rng, sigma);
        i
    }

    /// A client drawn from the operator's mix that speaks `dialect` (any
    /// dialect when `None`).
    fn campaign_client(&self, rng: &mut ChaCha8Rng, o: u16, dialect: Option<Dialect>) -> Client {
        let weights = self.operators[usize::from(o)].client_weights;
        let kind = CAMPAIGN_CLIENTS[weighted(rng, &weights)];
        campaign_client_of(rng, kind, dialect)
    }

    /// Per-account parameters from the operator's ranges.
    fn campaign_params(&mut self, rng: &mut ChaCha8Rng, i: usize, caps: &[u32]) {
        let reasoning = self.knobs.reasoning_share;
        let a = &mut self.accounts[i];
        a.model = match a.client.dialect {
            Dialect::OpenAi => pick(rng, &["gpt-4.1", "o4-mini", "o3", "gpt-4o"]),
            Dialect::Anthropic => {
                pick(rng, &["claude-sonnet-4-20250514", "claude-opus-4-20250514"])
            }
        };
        a.max_tokens = Some(pick_or(rng, caps, 16384));
        a.temperature = if rng.random_bool(0.3) {
            None
        } else {
            Some(pick_or(rng, TEMPERATURES, 0.7))
        };
        a.reasoning = chance(rng, reasoning);
        a.stream = if rng.random_bool(0.4) {
            Some(true)
        } else {
            None
        };
        a.tz = tz_of(rng);
    }

    fn caps(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<u32> {
        let scale = self.knobs.campaign_cap_scale;
        (0..n)
            .map(|_| {
                let base = pick_or(rng, &LARGE_CAPS[3..], 16384);
                snap_cap(f64::from(base) * scale)
            })
            .collect()
    }

    fn naive_accounts(&mut self, rng: &mut ChaCha8Rng, o: u16) {
        let (n, start) = {
            let op = &self.operators[usize::from(o)];
            (op.accounts, op.start_ms)
        };
        let k = self.knobs.clone();
        let pool = self.ip_pools.len();
        self.ip_pools.push(pool_in(rng, 3, 12));
        // One client installation for every account.
        let kind = pick_or(
            rng,
            &[
                ClientKind::OpenAiPython,
                ClientKind::AnthropicPython,
                ClientKind::OpenAiNode,
                ClientKind::PyRequests,
            ],
            ClientKind::OpenAiPython,
        );
        let mut client = Client::random(rng, kind);
        client.async_client = true;
        let caps = self.caps(rng, 1);
        let cap = caps.first().copied().unwrap_or(16384);
        let model = match client.dialect {
            Dialect::OpenAi => pick(rng, &["gpt-4.1", "o4-mini", "gpt-4o"]),
            Dialect::Anthropic => {
                pick(rng, &["claude-sonnet-4-20250514", "claude-opus-4-20250514"])
            }
        };
        let temperature = pick_or(rng, TEMPERATURES, 0.7);
        let reasoning = rng.random_bool(0.5);
        // Accounts come online in bursts; compressed to fit short runs.
        let bursts = jitter(rng, k.naive_bursts, 0.2).round().max(1.0) as usize;
        let room = (self.end_ms.saturating_sub(start)) as f64 * 0.5;
        let gap = jitter(rng, k.naive_burst_gap_min, 0.2) * 60_000.0;
        let gap = gap.min(room / bursts as f64);
        let per_burst = n.div_ceil(bursts).max(1);
        let interval = DAY_MS as f64 / k.campaign_daily;
        let op_rate = rng.random_range(0.97..1.03);
        for j in 0..n {
            let i =
                self.campaign_account(rng, o, client.clone(), Net::Pool(pool), Behaviour::Regular);
            let a = &mut self.accounts[i];
            a.model = model;
            a.max_tokens = Some(cap);
            a.temperature = Some(temperature);
            a.reasoning = reasoning;
            a.system = System::Operator(0);
            a.interval_ms = (interval / op_rate * rng.random_range(0.97..1.03)) as u64;
            let burst_at = start + ((j / per_burst) as f64 * gap) as u64;
            a.active_from = burst_at + rng.random_range(0..(a.interval_ms / 10).max(1));
        }
    }

    fn spoofed_accounts(&mut self, rng: &mut ChaCha8Rng, o: u16, index: usize) {
        let (n, start, n_templates) = {
            let op = &self.operators[usize::from(o)];
            (op.accounts, op.start_ms, op.templates.len())
        };
        let k = self.knobs.clone();
        let rotation = Rotation::of(index, (k.rotation_h * HOUR_MS as f64) as u64);
        let caps = self.caps(rng, 4);
        let ramp = (jitter(rng, k.spoofed_ramp_h, 0.2) * HOUR_MS as f64)
            .min((self.end_ms.saturating_sub(start)) as f64 * 0.5)
            .max(1.0) as u64;
        for _ in 0..n {
            let mut client = self.campaign_client(rng, o, None);
            client.mismatched = chance(rng, k.mismatch_share);
            let net = rotation.net(rng);
            let i = self.campaign_account(rng, o, client, net, Behaviour::Poisson);
            self.campaign_params(rng, i, &caps);
            let a = &mut self.accounts[i];
            a.active_from = start + rng.random_range(0..ramp);
            for t in a.templates.iter_mut() {
                *t = rng.random_range(0..n_templates.max(1)) as u8;
            }
        }
    }

    fn hydra_accounts(&mut self, rng: &mut ChaCha8Rng, o: u16, index: usize) {
        let (n, start, n_templates, n_systems) = {
            let op = &self.operators[usize::from(o)];
            (
                op.accounts,
                op.start_ms,
                op.templates.len(),
                op.systems.len(),
            )
        };
        let k = self.knobs.clone();
        let r = (index - 1) % self.resellers.len().max(1);
        let (pool, dialect, remarshal) = {
            let res = &self.resellers[r];
            (res.pool, res.dialect(), res.remarshal)
        };
        // Behind a pass-through relay the operator's own script writes the body.
        let script = match dialect {
            Dialect::OpenAi => Client::random(rng, ClientKind::OpenAiPython),
            Dialect::Anthropic => Client::random(rng, ClientKind::AnthropicPython),
        };
        let script = if remarshal {
            self.resellers[r].gateway.clone()
        } else {
            script
        };
        let caps = self.caps(rng, 2);
        let models: Vec<&'static str> = match dialect {
            Dialect::OpenAi => vec![
                pick(rng, &["gpt-4.1", "gpt-4o"]),
                pick(rng, &["o4-mini", "o3"]),
            ],
            Dialect::Anthropic => vec!["claude-sonnet-4-20250514", "claude-opus-4-20250514"],
        };
        let temperature = pick_or(rng, TEMPERATURES, 0.6);
        let ramp = (jitter(rng, k.hydra_ramp_h, 0.2) * HOUR_MS as f64)
            .min((self.end_ms.saturating_sub(start)) as f64 * 0.5)
            .max(1.0) as u64;
        for _ in 0..n {
            let i =
                self.campaign_account(rng, o, script.clone(), Net::Pool(pool), Behaviour::Poisson);
            let a = &mut self.accounts[i];
            a.relay = Some(r as u8);
            a.endpoint = endpoint_for(dialect);
            a.model = pick_or(rng, &models, "gpt-4.1");
            a.max_tokens = Some(pick_or(rng, &caps, 16384));
            a.temperature = Some(temperature);
            a.reasoning = super::population::reasons(a.model);
            a.active_from = start + rng.random_range(0..ramp);
            a.system = if n_systems > 0 {
                System::Operator(rng.random_range(0..n_systems) as u8)
            } else {
                System::None
            };
            for t in a.templates.iter_mut() {
                *t = rng.random_range(0..n_templates.max(1)) as u8;
            }
        }
    }

    fn adaptive_accounts(&mut self, rng: &mut ChaCha8Rng, o: u16, index: usize) {
        let (n, start, system_share, pivot_ms) = {
            let op = &self.operators[usize::from(o)];
            (op.accounts, op.start_ms, op.system_share, op.pivot_ms)
        };
        let k = self.knobs.clone();
        let rotation = Rotation::of(index, (k.rotation_h * HOUR_MS as f64) as u64);
        let reseller = index % self.resellers.len().max(1);
        let behaviour = if index % 3 == 0 {
            Behaviour::Sessions
        } else {
            Behaviour::Poisson
        };
        // Waves of account creation, fitted into the first 60% of what is
        // left of the run after the operator starts.
        let waves = jitter(rng, k.adaptive_waves, 0.2).round().max(2.0) as usize;
        let room = (self.end_ms.saturating_sub(start)) as f64 * 0.6;
        let gap = (k.wave_gap_h * HOUR_MS as f64).min(room / (waves - 1) as f64);
        let spread = (k.wave_spread_h * HOUR_MS as f64).min(gap * 0.5).max(1.0);
        let mut wave_at = Vec::with_capacity(waves);
        for w in 0..waves {
            let at = if w == 0 {
                0.0
            } else {
                jitter(rng, w as f64 * gap, 0.1 / w as f64)
            };
            wave_at.push(start + at as u64);
        }
        let sizes = split(
            n,
            &(0..waves).map(|w| 1.0 + 0.3 * w as f64).collect::<Vec<_>>(),
        );
        let caps = self.caps(rng, 6);
        let pivot_share = k.pivot_share;
        for (w, &size) in sizes.iter().enumerate() {
            for _ in 0..size {
                let via_reseller = chance(rng, k.reseller_share);
                let (net, dialect) = if via_reseller {
                    let res = &self.resellers[reseller];
                    (Net::Pool(res.pool), Some(res.dialect()))
                } else {
                    (rotation.net(rng), None)
                };
                let mut client = self.campaign_client(rng, o, dialect);
                client.mismatched = chance(rng, k.mismatch_share * 0.5);
                let remarshal = via_reseller && self.resellers[reseller].remarshal;
                if remarshal {
                    client = self.resellers[reseller].gateway.clone();
                }
                let i = self.campaign_account(rng, o, client, net, behaviour);
                self.campaign_params(rng, i, &caps);
                let a = &mut self.accounts[i];
                if via_reseller {
                    a.relay = Some(reseller as u8);
                }
                if a.client.dialect == Dialect::OpenAi
                    && !via_reseller
                    && matches!(
                        a.client.kind,
                        ClientKind::OpenAiPython | ClientKind::OpenAiNode
                    )
                    && rng.random_bool(0.15)
                {
                    a.endpoint = Endpoint::Responses;
                }
                if rng.random_bool(0.1) {
                    a.top_p = Some(pick_or(rng, &[0.9f32, 0.95, 1.0], 0.95));
                }
                a.system = if !chance(rng, system_share) {
                    System::None
                } else if rng.random_bool(0.15) {
                    System::Generic(0)
                } else {
                    System::Own
                };
                a.active_from = wave_at[w] + rng.random_range(0.0..spread) as u64;
                if pivot_ms.is_some() && chance(rng, pivot_share) {
                    a.new_model = NewModel::Adopter;
                }
            }
        }
    }
}

/// A client of `kind` speaking `dialect` (or its own when `None`).
fn campaign_client_of<R: Rng + ?Sized>(
    rng: &mut R,
    kind: ClientKind,
    dialect: Option<Dialect>,
) -> Client {
    let kind = match (dialect, kind) {
        (Some(Dialect::OpenAi), ClientKind::AnthropicPython) => ClientKind::OpenAiPython,
        (Some(Dialect::OpenAi), ClientKind::AnthropicNode) => ClientKind::OpenAiNode,
        (Some(Dialect::Anthropic), ClientKind::OpenAiPython | ClientKind::LangChain) => {
            ClientKind::AnthropicPython
        }
        (Some(Dialect::Anthropic), ClientKind::OpenAiNode) => ClientKind::AnthropicNode,
        (_, k) => k,
    };
    let mut c = Client::random(rng, kind);
    if let Some(d) = dialect {
        c.dialect = d;
    }
    c
}

/// The client installation of a campaign account in period `period` of its
/// operator's re-draws: same dialect and spoofing slip, new kind and version.
pub(crate) fn redrawn_client(seed: u64, period: u64, weights: &[f64; 7], base: &Client) -> Client {
    let mut rng = rng_of(seed, period);
    let kind = CAMPAIGN_CLIENTS[weighted(&mut rng, weights)];
    let mut c = campaign_client_of(&mut rng, kind, Some(base.dialect));
    c.mismatched = base.mismatched;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_total_and_gives_everyone_one() {
        assert_eq!(split(10, &[0.5, 0.3, 0.2]).iter().sum::<usize>(), 10);
        assert_eq!(split(3, &[0.9, 0.05, 0.05]), vec![1, 1, 1]);
        let s = split(1000, &[0.42, 0.33, 0.25]);
        assert_eq!(s.iter().sum::<usize>(), 1000);
        assert!(s[0] > s[1] && s[1] > s[2], "{s:?}");
    }

    #[test]
    fn redrawn_clients_keep_the_dialect() {
        let base = Client::random(&mut rng_of(1, 1), ClientKind::AnthropicPython);
        for period in 0..50 {
            let c = redrawn_client(9, period, &CLIENT_BASE, &base);
            assert_eq!(c.dialect, Dialect::Anthropic);
        }
        assert_eq!(
            redrawn_client(9, 3, &CLIENT_BASE, &base).version,
            redrawn_client(9, 3, &CLIENT_BASE, &base).version
        );
    }
}

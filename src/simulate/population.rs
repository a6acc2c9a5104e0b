//! The population of a run: accounts, their clients, networks and parameters,
//! the organic cohorts and the resellers' gateways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::json::Obj;
use super::knobs::Knobs;
use super::plan::Operator;
use super::pools::Pools;
use super::profile::{Client, ClientKind, Dialect, Endpoint};
use super::random::{chance, exponential, geometric, log_normal, mix, pick, pick_or, rng_of};
use super::scenario::{Scenario, SimParams};
use super::templates::Assets;

pub(crate) const HOUR_MS: u64 = 3_600_000;
pub(crate) const DAY_MS: u64 = 24 * HOUR_MS;

/// How an account's requests are spread over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// A person chatting: sessions of a few turns, on a daily cycle.
    Chat,
    /// A coding agent: sessions of many quick tool-use steps.
    Agent,
    /// A person working through tasks: sessions of several single tasks, some
    /// followed up, on a daily cycle.
    Power,
    /// A script or eval job: runs of many items at a steady pace.
    Job,
    /// A product backend: steady single-turn calls with a mild daily cycle.
    Service,
    /// A naive campaign account: one request every `interval_ms`.
    Regular,
    /// A campaign account with Poisson timing (and its operator's rhythm).
    Poisson,
    /// A campaign account imitating people: sessions of several requests on a
    /// daily cycle in the account's time zone.
    Sessions,
}

/// What an account's requests say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Everyday chat prompts (coding questions for coders).
    Chat { coder: bool },
    /// The coding agent's tool-use steps.
    Agent,
    /// Multiple-choice eval items (with "Let's think step by step" when `cot`).
    EvalMc { cot: bool },
    /// An organisation's product template.
    Org(u32),
    /// A power user's or student's tasks in their own words.
    Power,
    /// Capability tasks wrapped in the account's own fixed template (a
    /// researcher's eval script or a power user's small script).
    Script,
    /// The operator's extraction traffic.
    Campaign,
}

/// Where an account's requests come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Net {
    /// A home or office address, sometimes another (phone, café).
    Home(IpAddr, IpAddr),
    /// One of a shared pool of egress addresses (NAT, app servers, gateway).
    Pool(usize),
    /// A fresh residential-proxy address per request.
    Churn,
    /// A residential-proxy address kept for `period_ms`, then rotated.
    Sticky(u64),
}

/// An account's system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    None,
    Agent,
    App,
    Org(u32),
    /// One of the stock prompts thousands of strangers paste ([`GENERIC_SYSTEMS`]).
    Generic(u8),
    /// One of its operator's system prompts.
    Operator(u8),
    /// Its own, generated from the account's seed.
    Own,
}

/// Whether an account uses the newly released model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewModel {
    Never,
    /// Some sessions after the release (people trying it).
    Trial,
    /// Always (early adopters; campaign accounts after their operator's pivot).
    Adopter,
}

/// System prompts copied from quickstarts by many unrelated users (operators
/// use them too).
pub(crate) const GENERIC_SYSTEMS: &[&str] = &[
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer concisely.",
    "You are an expert Python developer.",
];

/// The models of the OpenAI dialect before the release.
pub(crate) const OPENAI_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4o-mini",
    "gpt-4.1",
    "o4-mini",
    "o3",
];
/// The models of the Anthropic dialect before the release.
pub(crate) const ANTHROPIC_MODELS: &[&str] = &[
    "claude-sonnet-4-20250514",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-20241022",
    "claude-opus-4-20250514",
];
/// The model released mid-run, per dialect.
pub(crate) const NEW_OPENAI_MODEL: &str = "gpt-5.5-preview";
/// The model released mid-run in the Anthropic dialect.
pub(crate) const NEW_ANTHROPIC_MODEL: &str = "claude-opus-5-preview";

/// The new model in `dialect`.
pub(crate) fn new_model(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => NEW_OPENAI_MODEL,
        Dialect::Anthropic => NEW_ANTHROPIC_MODEL,
    }
}

/// Output caps people and operators set (one list, so no cap value belongs to
/// one class).
pub(crate) const LARGE_CAPS: &[u32] = &[
    4000, 4096, 6000, 8000, 8192, 10000, 12000, 16000, 16384, 20000, 24000, 32000, 32768,
];
/// Ordinary caps.
pub(crate) const SMALL_CAPS: &[u32] = &[256, 500, 512, 1000, 1024, 2048];
/// Temperatures people and operators set.
pub(crate) const TEMPERATURES: &[f32] = &[0.0, 0.2, 0.3, 0.5, 0.6, 0.7, 0.7, 0.8, 1.0, 1.2];

/// The nearest value of [`LARGE_CAPS`] to `cap`.
pub(crate) fn snap_cap(cap: f64) -> u32 {
    LARGE_CAPS
        .iter()
        .copied()
        .min_by(|a, b| {
            (f64::from(*a) - cap)
                .abs()
                .total_cmp(&(f64::from(*b) - cap).abs())
        })
        .unwrap_or(8192)
}

#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) key: Box<str>,
    pub(crate) label: Box<str>,
    pub(crate) campaign: bool,
    pub(crate) behaviour: Behaviour,
    pub(crate) content: Content,
    /// The operator (index into `Population::operators`) of a campaign account.
    pub(crate) op: Option<u16>,
    /// The client that writes the body (and the headers, without a relay).
    pub(crate) client: Client,
    /// The reseller (index into `Population::resellers`) relaying the account.
    pub(crate) relay: Option<u8>,
    pub(crate) net: Net,
    pub(crate) model: &'static str,
    pub(crate) endpoint: Endpoint,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) stream: Option<bool>,
    /// Sets reasoning effort (OpenAI) or thinking (Anthropic).
    pub(crate) reasoning: bool,
    pub(crate) new_model: NewModel,
    /// Sessions per day (chat, agent), tasks per day (power), runs per day
    /// (job), requests per day (service and campaigns).
    pub(crate) rate: f64,
    /// Local time offset from UTC in hours.
    pub(crate) tz: i64,
    pub(crate) active_from: u64,
    /// Regular interval (naive) or job pace.
    pub(crate) interval_ms: u64,
    /// Items per job run (fewest, most).
    pub(crate) run: (u16, u16),
    pub(crate) seed: u64,
    pub(crate) system: System,
    /// The account's subset of its operator's templates.
    pub(crate) templates: [u8; 4],
    /// Share of tasks asking for the reasoning (power users, students) and
    /// whether they write casually.
    pub(crate) ask_reasoning: f32,
    pub(crate) casual: bool,
}

/// A reseller ("hydra" proxy): a gateway that relays many customers' keys
/// from a few addresses with its own client.
#[derive(Debug)]
pub(crate) struct Reseller {
    pub(crate) cohort: &'static str,
    pub(crate) pool: usize,
    pub(crate) gateway: Client,
    /// Re-marshals the body from its own struct (else forwards it as written).
    pub(crate) remarshal: bool,
}

impl Reseller {
    pub(crate) fn dialect(&self) -> Dialect {
        self.gateway.dialect
    }
}

/// The population of a run.
#[derive(Debug)]
pub(crate) struct Population {
    pub(crate) accounts: Vec<Account>,
    pub(crate) ip_pools: Vec<Vec<IpAddr>>,
    pub(crate) resellers: Vec<Reseller>,
    pub(crate) operators: Vec<Operator>,
    pub(crate) assets: Assets,
    pub(crate) words: Pools,
    pub(crate) knobs: Knobs,
    pub(crate) scenario: Scenario,
    pub(crate) params: SimParams,
    /// When the new model is released.
    pub(crate) release_ms: u64,
    pub(crate) end_ms: u64,
}

pub(crate) fn residential_v4<R: Rng + ?Sized>(rng: &mut R) -> IpAddr {
    const FIRST: &[u8] = &[
        24, 50, 66, 67, 68, 69, 70, 71, 72, 73, 75, 76, 81, 82, 84, 86, 88, 90, 92, 95, 98, 99,
        101, 106, 110, 112, 114, 118, 121, 124, 174, 175, 177, 179, 181, 186, 187, 189, 190, 191,
        201,
    ];
    let a = pick_or(rng, FIRST, 24);
    IpAddr::V4(Ipv4Addr::new(
        a,
        rng.random(),
        rng.random(),
        rng.random_range(1..255),
    ))
}

pub(crate) fn residential<R: Rng + ?Sized>(rng: &mut R) -> IpAddr {
    if rng.random_bool(0.15) {
        let prefix = pick_or(
            rng,
            &[0x2600u16, 0x2601, 0x2a02, 0x2a01, 0x2003, 0x2409],
            0x2600,
        );
        IpAddr::V6(Ipv6Addr::new(
            prefix,
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
        ))
    } else {
        residential_v4(rng)
    }
}

fn datacenter_24<R: Rng + ?Sized>(rng: &mut R) -> [u8; 3] {
    const FIRST: &[u8] = &[
        3, 13, 18, 34, 35, 44, 52, 54, 104, 137, 138, 139, 143, 146, 147, 157, 159, 164, 165, 167,
        178, 185, 188, 193, 194, 195, 204, 206, 207, 209,
    ];
    [pick_or(rng, FIRST, 3), rng.random(), rng.random()]
}

pub(crate) fn pool_in<R: Rng + ?Sized>(
    rng: &mut R,
    prefixes: usize,
    per_prefix: usize,
) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for _ in 0..prefixes {
        let p = datacenter_24(rng);
        let base: u8 = rng.random_range(2..200);
        for i in 0..per_prefix {
            out.push(IpAddr::V4(Ipv4Addr::new(
                p[0],
                p[1],
                p[2],
                base.wrapping_add(i as u8).max(1),
            )));
        }
    }
    out
}

fn key<R: Rng + ?Sized>(rng: &mut R, dialect: Dialect) -> Box<str> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let (prefix, n) = match dialect {
        Dialect::OpenAi => ("sk-proj-", 48),
        Dialect::Anthropic => ("sk-ant-api03-", 56),
    };
    let mut s = String::with_capacity(prefix.len() + n);
    s.push_str(prefix);
    for _ in 0..n {
        s.push(char::from(pick_or(rng, ALPHABET, b'a')));
    }
    s.into()
}

/// Who an account is, for the label.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) actor: &'a str,
    /// `campaign`, `organic`, `batch` or `reseller_customer`.
    pub(crate) kind: &'static str,
    pub(crate) org: Option<&'a str>,
    pub(crate) cohort: &'a str,
}

impl<'a> Who<'a> {
    pub(crate) fn new(actor: &'a str, kind: &'static str, cohort: &'a str) -> Self {
        Self {
            actor,
            kind,
            org: None,
            cohort,
        }
    }
}

fn label(who: Who<'_>, scenario: Scenario) -> Box<str> {
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.str("actor", who.actor)
        .str("kind", who.kind)
        .str("scenario", scenario.name());
    if let Some(org) = who.org {
        o.str("org", org);
    }
    o.str("cohort", who.cohort);
    o.end();
    s.into()
}

pub(crate) fn client_mix<R: Rng + ?Sized>(rng: &mut R) -> ClientKind {
    match rng.random_range(0..100) {
        0..30 => ClientKind::OpenAiPython,
        30..44 => ClientKind::OpenAiNode,
        44..56 => ClientKind::AnthropicPython,
        56..62 => ClientKind::AnthropicNode,
        62..67 => ClientKind::Curl,
        67..72 => ClientKind::PyRequests,
        72..82 => ClientKind::LangChain,
        _ => ClientKind::Browser,
    }
}

pub(crate) fn tz_of<R: Rng + ?Sized>(rng: &mut R) -> i64 {
    pick_or(
        rng,
        &[-8, -7, -6, -5, -5, -3, 0, 1, 1, 2, 3, 5, 8, 8, 9, 10],
        0,
    )
}

/// The endpoint a client of `dialect` and `kind` uses.
pub(crate) fn endpoint_of<R: Rng + ?Sized>(rng: &mut R, client: &Client) -> Endpoint {
    match (client.dialect, client.kind) {
        (Dialect::Anthropic, _) => Endpoint::Messages,
        (_, ClientKind::OpenAiPython | ClientKind::OpenAiNode) if rng.random_bool(0.15) => {
            Endpoint::Responses
        }
        (_, ClientKind::Curl | ClientKind::PyRequests) if rng.random_bool(0.05) => {
            Endpoint::Completions
        }
        _ => Endpoint::Chat,
    }
}

/// A model of `dialect` before the release.
pub(crate) fn model_of<R: Rng + ?Sized>(rng: &mut R, dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => pick(rng, OPENAI_MODELS),
        Dialect::Anthropic => pick(rng, ANTHROPIC_MODELS),
    }
}

/// Whether `model` takes a reasoning effort or thinking budget.
pub(crate) fn reasons(model: &str) -> bool {
    model.starts_with('o')
        || model.contains("opus")
        || model == NEW_OPENAI_MODEL
        || model.contains("sonnet-4")
}

fn count_of(n: usize, share: f64) -> usize {
    (share.max(0.0) * n as f64).round() as usize
}

impl Population {
    /// The organic accounts and the resellers of a run; the campaigns are
    /// added by [`Population::campaigns`].
    pub(crate) fn without_campaigns(scenario: Scenario, params: SimParams) -> Self {
        let knobs = Knobs::for_perturb(params.perturb);
        let hours_ms = (params.hours * HOUR_MS as f64) as u64;
        let release_ms =
            params.start_ms + (hours_ms as f64 * knobs.release_at.clamp(0.05, 0.95)) as u64;
        let mut p = Population {
            accounts: Vec::new(),
            ip_pools: Vec::new(),
            resellers: Vec::new(),
            operators: Vec::new(),
            assets: Assets::new(),
            words: Pools::new(params.perturb),
            knobs,
            scenario,
            params,
            release_ms,
            end_ms: params.start_ms + hours_ms,
        };
        // Separate streams: the organic population is the same in every
        // scenario (for a seed, perturbation and size).
        let mut rng = rng_of(mix(params.seed, params.perturb), 0x0_0a61c);
        p.resellers(&mut rng);
        p.organic(&mut rng);
        p
    }

    pub(crate) fn push(
        &mut self,
        rng: &mut ChaCha8Rng,
        who: Who<'_>,
        client: Client,
        net: Net,
        (behaviour, content): (Behaviour, Content),
    ) -> usize {
        let campaign = who.kind == "campaign";
        let a = Account {
            key: key(rng, client.dialect),
            label: label(who, self.scenario),
            campaign,
            behaviour,
            content,
            op: None,
            client,
            relay: None,
            net,
            model: "gpt-4o",
            endpoint: Endpoint::Chat,
            max_tokens: None,
            temperature: None,
            top_p: None,
            stream: None,
            reasoning: false,
            new_model: NewModel::Never,
            rate: 1.0,
            tz: tz_of(rng),
            active_from: self.params.start_ms,
            interval_ms: 0,
            run: (1, 1),
            seed: rng.random(),
            system: System::None,
            templates: [0; 4],
            ask_reasoning: 0.0,
            casual: false,
        };
        self.accounts.push(a);
        self.accounts.len() - 1
    }

    /// Three resellers with their own gateways: a Go relay that re-marshals
    /// bodies, a Node relay and a Python relay (Anthropic dialect) that forward
    /// them as written.
    fn resellers(&mut self, rng: &mut ChaCha8Rng) {
        for (cohort, kind, prefixes, per, remarshal) in [
            ("reseller-go", ClientKind::Gateway, 3, 8, true),
            ("reseller-node", ClientKind::NodeRelay, 2, 5, false),
            ("reseller-python", ClientKind::PyRelay, 2, 3, false),
        ] {
            let pool = self.ip_pools.len();
            self.ip_pools.push(pool_in(rng, prefixes, per));
            self.resellers.push(Reseller {
                cohort,
                pool,
                gateway: Client::random(rng, kind),
                remarshal,
            });
        }
    }

    fn organic(&mut self, rng: &mut ChaCha8Rng) {
        let k = self.knobs.clone();
        let n = self.params.organic_count();
        let nf = n as f64;
        let nat_users = count_of(n, k.share_nat).max((0.15 * nf).min(300.0) as usize);
        let app_users = count_of(n, k.share_hosted_app).max((0.1 * nf).min(250.0) as usize);
        let reseller_users =
            count_of(n, k.share_reseller_customers).max((0.06 * nf).min(90.0) as usize);
        let org_users = count_of(n, k.share_org);
        let batch_users = count_of(n, k.share_batch).max(1);
        let researchers = count_of(n, k.share_researcher).max(1);
        let agent_users = count_of(n, k.share_coding_agent);
        let power_users = count_of(n, k.share_power_user);
        let scripts = count_of(n, k.share_power_script);
        let students = count_of(n, k.share_student);
        let early = count_of(n, k.share_early_adopter);
        let individuals = n.saturating_sub(
            nat_users
                + app_users
                + reseller_users
                + org_users
                + batch_users
                + researchers
                + agent_users
                + power_users
                + scripts
                + students
                + early,
        );
        let mut next_user = 0u32;
        let mut user = move || {
            next_user += 1;
            format!("user-{next_user}")
        };

        // Individuals with their own SDK, script or browser app.
        for _ in 0..individuals {
            let kind = client_mix(rng);
            let client = self.organic_client(rng, kind);
            let net = Net::Home(residential(rng), residential(rng));
            self.person(rng, &user(), cohort_name(kind), client, net);
        }
        // Users of the popular coding agent: one long shared system prompt.
        for _ in 0..agent_users {
            let net = Net::Home(residential(rng), residential(rng));
            self.agent_user(rng, &user(), net, "coding-agent");
        }
        // Corporate NATs: hundreds of employees behind one /24.
        let per_nat = k.nat_size.max(50.0) as usize;
        let nats = nat_users.div_ceil(per_nat).max(1);
        for j in 0..nats {
            let pool = self.ip_pools.len();
            self.ip_pools.push(pool_in(rng, 1, 4));
            let size = nat_users / nats + usize::from(j < nat_users % nats);
            let tz = tz_of(rng);
            for _ in 0..size {
                let i = if rng.random_bool(0.3) {
                    self.agent_user(rng, &user(), Net::Pool(pool), "nat")
                } else {
                    let kind = client_mix(rng);
                    let client = self.organic_client(rng, kind);
                    let i = self.person(rng, &user(), "nat", client, Net::Pool(pool));
                    self.accounts[i].rate = log_normal(rng, 1.5, 0.8) * k.organic_activity;
                    i
                };
                self.accounts[i].tz = tz;
            }
        }
        // The hosted chat app: users' own keys relayed with identical headers.
        let app_pool = self.ip_pools.len();
        self.ip_pools.push(pool_in(rng, 2, 2));
        let mut app_client = Client::random(rng, ClientKind::OpenAiNode);
        app_client.version = "4.73.1";
        app_client.runtime = "v20.17.0";
        app_client.os = "Linux";
        app_client.arm = false;
        app_client.variant = 0;
        for _ in 0..app_users {
            let i = self.push(
                rng,
                Who::new(&user(), "organic", "hosted-app"),
                app_client.clone(),
                Net::Pool(app_pool),
                (Behaviour::Chat, Content::Chat { coder: false }),
            );
            let a = &mut self.accounts[i];
            a.model = "gpt-4o";
            a.max_tokens = Some(2048);
            a.temperature = Some(0.7);
            a.stream = Some(true);
            a.system = System::App;
            a.rate = log_normal(rng, 1.0, 0.9) * k.organic_activity;
        }
        // The resellers' innocent customers: chat and reasoning tasks.
        for _ in 0..reseller_users {
            let r = match rng.random_range(0..100) {
                0..45 => 0,
                45..80 => 1,
                _ => 2,
            };
            self.reseller_customer(rng, &user(), r);
        }
        // Organisations running several keys behind one backend.
        let mut org = 0u32;
        let mut left = org_users;
        while left > 0 {
            org += 1;
            let size = (2 + geometric(rng, k.org_size_mean) as usize)
                .min(12)
                .min(left);
            left = left.saturating_sub(size);
            self.organisation(rng, org, size);
        }
        // Batch jobs: multiple-choice eval loops from one account.
        for _ in 0..batch_users {
            self.batch_job(rng, &user());
        }
        // Researchers' small ad-hoc evaluation scripts over problem sets.
        for _ in 0..researchers {
            self.researcher(rng, &user());
        }
        // Reasoning power users: people asking hard single-turn tasks.
        for _ in 0..power_users {
            self.power_user(rng, &user(), "power-user");
        }
        // Their small scripts: a handful of tasks in a loop now and then.
        for _ in 0..scripts {
            self.power_script(rng, &user());
        }
        for _ in 0..students {
            self.power_user(rng, &user(), "student");
        }
        // Early adopters of the model released mid-run.
        for _ in 0..early {
            let i = self.power_user(rng, &user(), "early-adopter");
            let delay = exponential(rng, k.early_adopter_delay_h * HOUR_MS as f64);
            let a = &mut self.accounts[i];
            a.active_from = self.release_ms + delay as u64;
            a.new_model = NewModel::Adopter;
            a.model = new_model(a.client.dialect);
            a.rate *= 1.5;
            a.reasoning = true;
        }
    }

    /// An SDK installation of `kind` for a person; a few wrap the SDK in a
    /// library that pins an older package header.
    fn organic_client(&self, rng: &mut ChaCha8Rng, kind: ClientKind) -> Client {
        let mut c = Client::random(rng, kind);
        c.mismatched = rng.random_bool(0.01);
        c
    }

    /// A person chatting with their own client.
    fn person(
        &mut self,
        rng: &mut ChaCha8Rng,
        actor: &str,
        cohort: &str,
        client: Client,
        net: Net,
    ) -> usize {
        let coder = client.kind != ClientKind::Browser && rng.random_bool(0.66);
        let i = self.push(
            rng,
            Who::new(actor, "organic", cohort),
            client,
            net,
            (Behaviour::Chat, Content::Chat { coder }),
        );
        self.person_params(rng, i);
        let trial = chance(rng, self.knobs.new_model_trial_share);
        let a = &mut self.accounts[i];
        a.rate = log_normal(rng, 1.2, 1.0) * self.knobs.organic_activity;
        if trial {
            a.new_model = NewModel::Trial;
        }
        i
    }

    /// Typical parameters of a person: mostly defaults, some large caps.
    fn person_params(&mut self, rng: &mut ChaCha8Rng, i: usize) {
        let large = self.knobs.organic_large_cap_share;
        let a = &mut self.accounts[i];
        a.model = model_of(rng, a.client.dialect);
        let roll: f64 = rng.random();
        a.max_tokens = if roll < large {
            Some(pick_or(rng, LARGE_CAPS, 8192))
        } else if roll < large + 0.25 {
            Some(pick_or(rng, SMALL_CAPS, 1024))
        } else {
            None
        };
        a.temperature = if rng.random_bool(0.5) {
            None
        } else {
            Some(pick_or(rng, TEMPERATURES, 0.7))
        };
        if rng.random_bool(0.06) {
            a.top_p = Some(pick_or(rng, &[0.9f32, 0.95, 1.0], 1.0));
        }
        a.reasoning = reasons(a.model) && rng.random_bool(0.3);
        a.endpoint = endpoint_of(rng, &a.client);
        if a.client.kind != ClientKind::Browser {
            // Developers paste a stock prompt or write their own.
            a.system = match rng.random_range(0..100) {
                0..25 => System::Generic(rng.random_range(0..GENERIC_SYSTEMS.len() as u8)),
                25..45 => System::Own,
                _ => System::None,
            };
        }
        a.stream = match a.client.kind {
            ClientKind::Browser => Some(true),
            ClientKind::LangChain => Some(false),
            _ if rng.random_bool(0.35) => Some(true),
            _ => None,
        };
    }

    fn agent_user(&mut self, rng: &mut ChaCha8Rng, actor: &str, net: Net, cohort: &str) -> usize {
        let kind = if rng.random_bool(0.6) {
            ClientKind::AnthropicNode
        } else {
            ClientKind::OpenAiNode
        };
        let mut client = Client::random(rng, kind);
        client.extra = Some(("x-title", "Cadence"));
        client.variant = 0;
        let i = self.push(
            rng,
            Who::new(actor, "organic", cohort),
            client,
            net,
            (Behaviour::Agent, Content::Agent),
        );
        let a = &mut self.accounts[i];
        a.model = if kind == ClientKind::AnthropicNode {
            "claude-sonnet-4-20250514"
        } else {
            "gpt-4.1"
        };
        a.endpoint = if kind == ClientKind::AnthropicNode {
            Endpoint::Messages
        } else {
            Endpoint::Chat
        };
        a.max_tokens = Some(8192);
        a.temperature = Some(0.0);
        a.stream = Some(true);
        a.system = System::Agent;
        a.rate = log_normal(rng, 1.0, 0.8) * self.knobs.organic_activity;
        i
    }

    fn reseller_customer(&mut self, rng: &mut ChaCha8Rng, actor: &str, r: usize) {
        let (cohort, dialect, pool) = {
            let res = &self.resellers[r];
            (res.cohort, res.dialect(), res.pool)
        };
        // The customer's own client writes the body a pass-through relay forwards.
        let kind = match dialect {
            Dialect::Anthropic => pick_or(
                rng,
                &[
                    ClientKind::AnthropicPython,
                    ClientKind::AnthropicNode,
                    ClientKind::Curl,
                ],
                ClientKind::AnthropicPython,
            ),
            Dialect::OpenAi => match client_mix(rng) {
                ClientKind::AnthropicPython | ClientKind::AnthropicNode | ClientKind::Browser => {
                    ClientKind::OpenAiPython
                }
                k => k,
            },
        };
        let mut client = Client::random(rng, kind);
        client.dialect = dialect;
        let power = rng.random_bool(0.25);
        let i = if power {
            self.power_user(rng, actor, cohort)
        } else {
            let i = self.push(
                rng,
                Who::new(actor, "reseller_customer", cohort),
                client.clone(),
                Net::Pool(pool),
                (Behaviour::Chat, Content::Chat { coder: true }),
            );
            self.person_params(rng, i);
            self.accounts[i].rate = log_normal(rng, 2.0, 0.8) * self.knobs.organic_activity;
            i
        };
        let a = &mut self.accounts[i];
        a.label = label(Who::new(actor, "reseller_customer", cohort), self.scenario);
        if a.client.dialect != dialect {
            a.model = model_of(rng, dialect);
        }
        a.client = client;
        a.relay = Some(r as u8);
        a.net = Net::Pool(pool);
        a.endpoint = match dialect {
            Dialect::Anthropic => Endpoint::Messages,
            Dialect::OpenAi => Endpoint::Chat,
        };
        a.reasoning = reasons(a.model) && a.reasoning;
    }

    fn organisation(&mut self, rng: &mut ChaCha8Rng, org: u32, size: usize) {
        let name = format!("org-{org}");
        let pool = self.ip_pools.len();
        self.ip_pools.push(pool_in(rng, 1, 2));
        let kind = pick_or(
            rng,
            &[
                ClientKind::OpenAiPython,
                ClientKind::OpenAiPython,
                ClientKind::AnthropicPython,
                ClientKind::OpenAiNode,
            ],
            ClientKind::OpenAiPython,
        );
        let client = Client::random(rng, kind);
        let model = model_of(rng, client.dialect);
        let max_tokens = Some(pick_or(rng, &[512u32, 1024, 2048, 4096], 1024));
        let temperature = Some(pick_or(rng, &[0.0f32, 0.2, 0.3], 0.0));
        for _ in 0..size {
            let i = self.push(
                rng,
                Who {
                    actor: &name,
                    kind: "organic",
                    org: Some(&name),
                    cohort: "org",
                },
                client.clone(),
                Net::Pool(pool),
                (Behaviour::Service, Content::Org(org)),
            );
            let a = &mut self.accounts[i];
            a.model = model;
            a.max_tokens = max_tokens;
            a.temperature = temperature;
            a.endpoint = if client.dialect == Dialect::Anthropic {
                Endpoint::Messages
            } else {
                Endpoint::Chat
            };
            a.system = System::Org(org);
            a.rate = log_normal(rng, 15.0, 0.7);
        }
    }

    fn job_client(&mut self, rng: &mut ChaCha8Rng) -> (Client, Net) {
        let kind = pick_or(
            rng,
            &[
                ClientKind::OpenAiPython,
                ClientKind::OpenAiPython,
                ClientKind::AnthropicPython,
                ClientKind::PyRequests,
            ],
            ClientKind::OpenAiPython,
        );
        let client = Client::random(rng, kind);
        let ip = if rng.random_bool(0.5) {
            residential_v4(rng)
        } else {
            pool_in(rng, 1, 1)
                .first()
                .copied()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        };
        (client, Net::Home(ip, ip))
    }

    fn batch_job(&mut self, rng: &mut ChaCha8Rng, actor: &str) {
        let (client, net) = self.job_client(rng);
        let cot = rng.random_bool(0.5);
        let i = self.push(
            rng,
            Who::new(actor, "batch", "batch"),
            client,
            net,
            (Behaviour::Job, Content::EvalMc { cot }),
        );
        self.person_params(rng, i);
        let a = &mut self.accounts[i];
        a.max_tokens = Some(if cot { 2048 } else { 16 });
        a.temperature = Some(0.0);
        a.stream = None;
        a.system = System::None;
        a.endpoint = if a.client.dialect == Dialect::Anthropic {
            Endpoint::Messages
        } else {
            Endpoint::Chat
        };
        a.rate = self.knobs.batch_job_probability;
        a.run = (100, 600);
        a.interval_ms = rng.random_range(1_000..5_000);
    }

    fn researcher(&mut self, rng: &mut ChaCha8Rng, actor: &str) {
        let (client, net) = self.job_client(rng);
        let i = self.push(
            rng,
            Who::new(actor, "batch", "researcher-eval"),
            client,
            net,
            (Behaviour::Job, Content::Script),
        );
        self.person_params(rng, i);
        let trial = rng.random_bool(0.6);
        let a = &mut self.accounts[i];
        a.max_tokens = Some(pick_or(rng, &[4096u32, 8192, 16384, 32000, 32768], 8192));
        a.temperature = Some(pick_or(rng, &[0.0f32, 0.0, 0.6, 1.0], 0.0));
        a.reasoning = reasons(a.model) || rng.random_bool(0.3);
        a.stream = None;
        a.system = System::None;
        a.endpoint = if a.client.dialect == Dialect::Anthropic {
            Endpoint::Messages
        } else {
            Endpoint::Chat
        };
        a.rate = self.knobs.researcher_runs_per_day;
        a.run = (20, 300);
        a.interval_ms = rng.random_range(1_000..10_000);
        a.ask_reasoning = 0.7;
        // Researchers compare a new model as soon as it ships.
        if trial {
            a.new_model = NewModel::Trial;
        }
    }

    /// A reasoning power user, student or early adopter: human sessions of
    /// single tasks with large caps and the reasoning asked for in their own
    /// words, some followed up.
    fn power_user(&mut self, rng: &mut ChaCha8Rng, actor: &str, cohort: &'static str) -> usize {
        let student = cohort == "student";
        let kind = match client_mix(rng) {
            ClientKind::LangChain if student => ClientKind::Browser,
            k => k,
        };
        let client = self.organic_client(rng, kind);
        let net = Net::Home(residential(rng), residential(rng));
        let i = self.push(
            rng,
            Who::new(actor, "organic", cohort),
            client,
            net,
            (Behaviour::Power, Content::Power),
        );
        self.person_params(rng, i);
        let k = &self.knobs;
        let (daily, large) = if student {
            (k.student_daily, 0.3)
        } else {
            (k.power_daily, 0.7)
        };
        let trial = chance(rng, k.new_model_trial_share * 2.0);
        let a = &mut self.accounts[i];
        a.rate = log_normal(rng, daily, 0.7);
        if rng.random_bool(large) {
            a.max_tokens = Some(pick_or(rng, LARGE_CAPS, 16384));
        }
        if !student && rng.random_bool(0.5) {
            a.model = match a.client.dialect {
                Dialect::OpenAi => pick(rng, &["o4-mini", "o3", "gpt-4.1"]),
                Dialect::Anthropic => {
                    pick(rng, &["claude-opus-4-20250514", "claude-sonnet-4-20250514"])
                }
            };
        }
        a.reasoning = reasons(a.model) && rng.random_bool(0.5);
        a.ask_reasoning = if student {
            rng.random_range(0.4..0.9)
        } else {
            rng.random_range(0.3..0.95)
        } as f32;
        a.casual = rng.random_bool(if student { 0.4 } else { 0.15 });
        if student {
            // Students work later in their day.
            a.tz -= 4;
        }
        if trial {
            a.new_model = NewModel::Trial;
        }
        i
    }

    /// A power user's small script: a handful of tasks in its own fixed
    /// template now and then, at a script's pace.
    fn power_script(&mut self, rng: &mut ChaCha8Rng, actor: &str) {
        let kind = pick_or(
            rng,
            &[
                ClientKind::OpenAiPython,
                ClientKind::AnthropicPython,
                ClientKind::PyRequests,
                ClientKind::OpenAiNode,
            ],
            ClientKind::OpenAiPython,
        );
        let client = self.organic_client(rng, kind);
        let net = Net::Home(residential(rng), residential(rng));
        let i = self.push(
            rng,
            Who::new(actor, "organic", "power-script"),
            client,
            net,
            (Behaviour::Job, Content::Script),
        );
        self.person_params(rng, i);
        let a = &mut self.accounts[i];
        a.max_tokens = Some(pick_or(rng, LARGE_CAPS, 16384));
        a.reasoning = reasons(a.model) && rng.random_bool(0.6);
        a.rate = rng.random_range(0.3..1.5);
        a.run = (3, 30);
        a.interval_ms = rng.random_range(5_000..40_000);
        a.ask_reasoning = 0.9;
    }
}

pub(crate) fn cohort_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::OpenAiPython => "openai-python",
        ClientKind::OpenAiNode => "openai-node",
        ClientKind::AnthropicPython => "anthropic-python",
        ClientKind::AnthropicNode => "anthropic-node",
        ClientKind::Curl => "curl",
        ClientKind::PyRequests => "python-requests",
        ClientKind::LangChain => "langchain",
        ClientKind::Browser => "browser",
        ClientKind::Gateway | ClientKind::NodeRelay | ClientKind::PyRelay => "gateway",
    }
}

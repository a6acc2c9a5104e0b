//! The population of accounts, their timing, and the rendering of lines.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::json::Obj;
use super::profile::{self, Client, ClientKind, Dialect, Endpoint, Msg, Spec};
use super::prose::{geometric, log_normal, pick, poisson};
use super::scenario::{
    Scenario, SimParams, SimulateError, Stats, CAMPAIGN_ACCOUNTS, CAMPAIGN_DAILY_REQUESTS,
    HYDRA_ACCOUNTS, ORGANIC_ACCOUNTS,
};
use super::templates::{self, Assets};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Relative request intensity of people by local hour (mean 1 after scaling).
const HUMAN_DAY: [f64; 24] = [
    0.15, 0.1, 0.08, 0.07, 0.08, 0.15, 0.35, 0.7, 1.2, 1.6, 1.8, 1.8, 1.5, 1.7, 1.8, 1.7, 1.5, 1.2,
    1.0, 0.95, 0.9, 0.75, 0.5, 0.3,
];

fn human_day(local_hour: i64) -> f64 {
    let mean: f64 = HUMAN_DAY.iter().sum::<f64>() / 24.0;
    HUMAN_DAY[local_hour.rem_euclid(24) as usize] / mean
}

/// SplitMix64 finaliser: decorrelates derived seeds.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn rng_of(a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(a, b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// A person chatting: sessions of a few turns.
    Chat,
    /// A coding agent: sessions of many quick tool-use steps.
    Agent,
    /// An eval job: hundreds of templated prompts at a fixed pace, once a day or so.
    Batch,
    /// A product backend: steady single-turn templated calls.
    Service,
    /// A naive campaign account: machine-regular interval.
    Regular,
    /// A campaign account with Poisson timing.
    Poisson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    None,
    Naive,
    Spoofed,
    Hydra,
}

#[derive(Debug, Clone, Copy)]
enum Net {
    /// A home or office address, sometimes another (phone, café).
    Home(IpAddr, IpAddr),
    /// One of a shared pool of egress addresses (NAT, app servers, gateway).
    Pool(usize),
    /// A fresh residential-proxy address per request.
    Churn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    None,
    Agent,
    App,
    Org(u32),
    /// One of the stock prompts thousands of strangers paste ([`GENERIC_SYSTEMS`]).
    Generic(u8),
}

/// System prompts copied from quickstarts by many unrelated users (one of
/// them is also a spoofing campaign's).
const GENERIC_SYSTEMS: &[&str] = &[
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer concisely.",
    "You are an expert Python developer.",
];

#[derive(Debug)]
struct Account {
    key: Box<str>,
    label: Box<str>,
    campaign: bool,
    behaviour: Behaviour,
    operator: Operator,
    client: Client,
    net: Net,
    model: &'static str,
    endpoint: Endpoint,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    stream: Option<bool>,
    reasoning: bool,
    /// Sessions per day (chat, agent), requests per day (service, Poisson),
    /// probability of a job per day (batch).
    rate: f64,
    /// Local time offset from UTC in hours.
    tz: i64,
    active_from: u64,
    /// Regular interval (naive) or job pace (batch).
    interval_ms: u64,
    seed: u64,
    system: System,
    cot: bool,
    templates: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    ts: u64,
    account: u32,
    session: u64,
    turn: u16,
}

const OPENAI_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4o-mini",
    "gpt-4.1",
    "o4-mini",
];
const ANTHROPIC_MODELS: &[&str] = &[
    "claude-sonnet-4-20250514",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-20241022",
    "claude-opus-4-20250514",
];

fn residential_v4<R: Rng + ?Sized>(rng: &mut R) -> IpAddr {
    const FIRST: &[u8] = &[
        24, 50, 66, 67, 68, 69, 70, 71, 72, 73, 75, 76, 81, 82, 84, 86, 88, 90, 92, 95, 98, 99,
        101, 106, 110, 112, 114, 118, 121, 124, 174, 175, 177, 179, 181, 186, 187, 189, 190, 191,
        201,
    ];
    let a = FIRST[rng.random_range(0..FIRST.len())];
    IpAddr::V4(Ipv4Addr::new(
        a,
        rng.random(),
        rng.random(),
        rng.random_range(1..255),
    ))
}

fn residential<R: Rng + ?Sized>(rng: &mut R) -> IpAddr {
    if rng.random_bool(0.15) {
        let prefix = [0x2600u16, 0x2601, 0x2a02, 0x2a01, 0x2003, 0x2409][rng.random_range(0..6)];
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
    [
        FIRST[rng.random_range(0..FIRST.len())],
        rng.random(),
        rng.random(),
    ]
}

fn pool_in<R: Rng + ?Sized>(rng: &mut R, prefixes: usize, per_prefix: usize) -> Vec<IpAddr> {
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
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s.into()
}

fn label(
    actor: &str,
    campaign: bool,
    scenario: Scenario,
    org: Option<&str>,
    cohort: &str,
) -> Box<str> {
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.str("actor", actor)
        .str("kind", if campaign { "campaign" } else { "organic" })
        .str("scenario", scenario.name());
    if let Some(org) = org {
        o.str("org", org);
    }
    o.str("cohort", cohort);
    o.end();
    s.into()
}

fn client_mix<R: Rng + ?Sized>(rng: &mut R) -> ClientKind {
    let w = rng.random_range(0..100);
    match w {
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

fn tz_of<R: Rng + ?Sized>(rng: &mut R) -> i64 {
    pick(
        rng,
        &[
            "-8", "-7", "-6", "-5", "-5", "-3", "0", "1", "1", "2", "3", "5", "8", "8", "9", "10",
        ],
    )
    .parse()
    .unwrap_or(0)
}

/// Typical organic parameters: mostly defaults, some large caps.
fn organic_params<R: Rng + ?Sized>(rng: &mut R, a: &mut Account) {
    a.model = match a.client.dialect {
        Dialect::OpenAi => pick(rng, OPENAI_MODELS),
        Dialect::Anthropic => pick(rng, ANTHROPIC_MODELS),
    };
    a.max_tokens = match rng.random_range(0..100) {
        0..55 => None,
        55..80 => Some(
            *[256u32, 500, 512, 1000, 1024, 2048]
                .get(rng.random_range(0..6))
                .unwrap_or(&1024),
        ),
        _ => Some(
            *[4096u32, 8000, 8192, 16384, 32000]
                .get(rng.random_range(0..5))
                .unwrap_or(&4096),
        ),
    };
    a.temperature = if rng.random_bool(0.5) {
        None
    } else {
        Some(
            *[0.0f32, 0.2, 0.3, 0.5, 0.7, 0.7, 0.8, 1.0, 1.2]
                .get(rng.random_range(0..9))
                .unwrap_or(&0.7),
        )
    };
    a.reasoning = a.model.starts_with('o') && rng.random_bool(0.3)
        || a.model.contains("opus") && rng.random_bool(0.2);
    a.endpoint = match (a.client.dialect, a.client.kind) {
        (Dialect::Anthropic, _) => Endpoint::Messages,
        (_, ClientKind::OpenAiPython | ClientKind::OpenAiNode) if rng.random_bool(0.15) => {
            Endpoint::Responses
        }
        (_, ClientKind::Curl | ClientKind::PyRequests) if rng.random_bool(0.05) => {
            Endpoint::Completions
        }
        _ => Endpoint::Chat,
    };
    if a.client.kind != ClientKind::Browser && rng.random_bool(0.25) {
        a.system = System::Generic(rng.random_range(0..GENERIC_SYSTEMS.len() as u8));
    }
    a.stream = match a.client.kind {
        ClientKind::Browser => Some(true),
        ClientKind::LangChain => Some(false),
        _ if rng.random_bool(0.35) => Some(true),
        _ => None,
    };
}

/// The population of a run.
#[derive(Debug)]
pub(crate) struct Population {
    accounts: Vec<Account>,
    pools: Vec<Vec<IpAddr>>,
    /// The reseller gateway: its address pool and its relay client.
    gateway: Option<(usize, Client)>,
    assets: Assets,
    scenario: Scenario,
    params: SimParams,
}

fn count(scale: f64, base: f64) -> usize {
    (base * scale).round().max(1.0) as usize
}

impl Population {
    pub(crate) fn new(scenario: Scenario, params: SimParams) -> Self {
        let mut p = Population {
            accounts: Vec::new(),
            pools: Vec::new(),
            gateway: None,
            assets: Assets::new(),
            scenario,
            params,
        };
        // Separate streams: the organic population is the same in every scenario.
        let mut rng = rng_of(params.seed, 0x0_0a61c);
        p.organic(&mut rng);
        let campaign_start = params.start_ms + hours_ms((params.hours * 0.1).min(2.0));
        if scenario.has_naive() {
            let mut rng = rng_of(params.seed, 0x0_4a1e);
            p.naive(&mut rng, campaign_start);
        }
        if scenario.has_spoofed() {
            let mut rng = rng_of(params.seed, 0x0_5f00f);
            p.spoofed(&mut rng, campaign_start);
        }
        if scenario.has_hydra() {
            let mut rng = rng_of(params.seed, 0x0_4d7a);
            p.hydra(&mut rng, campaign_start);
        }
        p
    }

    fn push(
        &mut self,
        rng: &mut ChaCha8Rng,
        (actor, org, cohort): (&str, Option<&str>, &str),
        client: Client,
        net: Net,
        behaviour: Behaviour,
    ) -> usize {
        let campaign = actor.starts_with("campaign");
        let a = Account {
            key: key(rng, client.dialect),
            label: label(actor, campaign, self.scenario, org, cohort),
            campaign,
            behaviour,
            operator: Operator::None,
            client,
            net,
            model: "gpt-4o",
            endpoint: Endpoint::Chat,
            max_tokens: None,
            temperature: None,
            stream: None,
            reasoning: false,
            rate: 1.0,
            tz: tz_of(rng),
            active_from: self.params.start_ms,
            interval_ms: 0,
            seed: rng.random(),
            system: System::None,
            cot: false,
            templates: [0; 4],
        };
        self.accounts.push(a);
        self.accounts.len() - 1
    }

    fn organic(&mut self, rng: &mut ChaCha8Rng) {
        let n = count(self.params.scale, ORGANIC_ACCOUNTS);
        let nf = n as f64;
        let nat_users = (0.08 * nf).max((0.15 * nf).min(300.0)) as usize;
        let app_users = (0.05 * nf).max((0.1 * nf).min(250.0)) as usize;
        let hydra_users = (0.03 * nf).max((0.05 * nf).min(60.0)) as usize;
        let org_users = (0.05 * nf) as usize;
        let batch_users = ((0.005 * nf) as usize).max(1);
        let agent_users = (0.15 * nf) as usize;
        let individuals = n.saturating_sub(
            nat_users + app_users + hydra_users + org_users + batch_users + agent_users,
        );
        let mut next_user = 0u32;
        let mut user = || {
            next_user += 1;
            format!("user-{next_user}")
        };

        // Individuals with their own SDK, script or browser app.
        for _ in 0..individuals {
            let kind = client_mix(rng);
            let client = Client::random(rng, kind);
            let net = Net::Home(residential(rng), residential(rng));
            let cohort = cohort_name(kind);
            let i = self.push(rng, (&user(), None, cohort), client, net, Behaviour::Chat);
            organic_params(rng, &mut self.accounts[i]);
            self.accounts[i].rate = log_normal(rng, 1.2, 1.0);
        }
        // Users of the popular coding agent: one long shared system prompt.
        for _ in 0..agent_users {
            let net = Net::Home(residential(rng), residential(rng));
            self.agent_user(rng, &user(), net, "coding-agent");
        }
        // Corporate NATs: hundreds of employees behind one /24.
        let nats = nat_users.div_ceil(500).max(1);
        for k in 0..nats {
            let pool = self.pools.len();
            self.pools.push(pool_in(rng, 1, 4));
            let size = nat_users / nats + usize::from(k < nat_users % nats);
            let tz = tz_of(rng);
            for _ in 0..size {
                let i = if rng.random_bool(0.3) {
                    self.agent_user(rng, &user(), Net::Pool(pool), "nat")
                } else {
                    let kind = client_mix(rng);
                    let client = Client::random(rng, kind);
                    let i = self.push(
                        rng,
                        (&user(), None, "nat"),
                        client,
                        Net::Pool(pool),
                        Behaviour::Chat,
                    );
                    organic_params(rng, &mut self.accounts[i]);
                    self.accounts[i].rate = log_normal(rng, 1.5, 0.8);
                    i
                };
                self.accounts[i].tz = tz;
            }
        }
        // The hosted chat app: users' own keys relayed with identical headers.
        let app_pool = self.pools.len();
        self.pools.push(pool_in(rng, 2, 2));
        let mut app_client = Client::random(rng, ClientKind::OpenAiNode);
        app_client.version = "4.73.1";
        app_client.runtime = "v20.17.0";
        app_client.os = "Linux";
        app_client.arm = false;
        app_client.variant = 0;
        for _ in 0..app_users {
            let i = self.push(
                rng,
                (&user(), None, "hosted-app"),
                app_client.clone(),
                Net::Pool(app_pool),
                Behaviour::Chat,
            );
            let a = &mut self.accounts[i];
            a.model = "gpt-4o";
            a.max_tokens = Some(2048);
            a.temperature = Some(0.7);
            a.stream = Some(true);
            a.system = System::App;
            a.rate = log_normal(rng, 1.0, 0.9);
        }
        // The hydra reseller's innocent customers.
        let hydra_pool = self.pools.len();
        self.pools.push(pool_in(rng, 3, 8));
        let gateway = Client::random(rng, ClientKind::Gateway);
        self.gateway = Some((hydra_pool, gateway.clone()));
        for _ in 0..hydra_users {
            let i = self.push(
                rng,
                (&user(), None, "hydra-customer"),
                gateway.clone(),
                Net::Pool(hydra_pool),
                Behaviour::Chat,
            );
            organic_params(rng, &mut self.accounts[i]);
            let a = &mut self.accounts[i];
            a.endpoint = Endpoint::Chat;
            a.model = pick(rng, OPENAI_MODELS);
            a.rate = log_normal(rng, 2.0, 0.8);
        }
        // Organisations running several keys behind one backend: one operator.
        let mut org = 0u32;
        let mut left = org_users;
        while left > 0 {
            org += 1;
            let size = (2 + geometric(rng, 3.0) as usize).min(12).min(left.max(2));
            left = left.saturating_sub(size);
            let name = format!("org-{org}");
            let pool = self.pools.len();
            self.pools.push(pool_in(rng, 1, 2));
            let kind = pick(rng, &["py", "py", "anthropic", "node"]);
            let kind = match kind {
                "anthropic" => ClientKind::AnthropicPython,
                "node" => ClientKind::OpenAiNode,
                _ => ClientKind::OpenAiPython,
            };
            let client = Client::random(rng, kind);
            let model = match client.dialect {
                Dialect::OpenAi => pick(rng, OPENAI_MODELS),
                Dialect::Anthropic => pick(rng, ANTHROPIC_MODELS),
            };
            let max_tokens = Some(
                *[512u32, 1024, 2048, 4096]
                    .get(rng.random_range(0..4))
                    .unwrap_or(&1024),
            );
            let temperature = Some(
                *[0.0f32, 0.2, 0.3]
                    .get(rng.random_range(0..3))
                    .unwrap_or(&0.0),
            );
            for _ in 0..size {
                let i = self.push(
                    rng,
                    (&name, Some(&name), "org"),
                    client.clone(),
                    Net::Pool(pool),
                    Behaviour::Service,
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
        // Batch/eval jobs: one account looping over a dataset (hard negatives).
        for _ in 0..batch_users {
            let kind = if rng.random_bool(0.7) {
                ClientKind::OpenAiPython
            } else {
                ClientKind::AnthropicPython
            };
            let client = Client::random(rng, kind);
            let ip = if rng.random_bool(0.5) {
                residential_v4(rng)
            } else {
                pool_in(rng, 1, 1)[0]
            };
            let i = self.push(
                rng,
                (&user(), None, "batch"),
                client,
                Net::Home(ip, ip),
                Behaviour::Batch,
            );
            organic_params(rng, &mut self.accounts[i]);
            let a = &mut self.accounts[i];
            a.cot = rng.random_bool(0.5);
            a.max_tokens = Some(if a.cot { 2048 } else { 16 });
            a.temperature = Some(0.0);
            a.stream = None;
            a.rate = 0.6;
            a.interval_ms = rng.random_range(1_000..5_000);
        }
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
        let i = self.push(rng, (actor, None, cohort), client, net, Behaviour::Agent);
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
        a.rate = log_normal(rng, 1.0, 0.8);
        i
    }

    fn naive(&mut self, rng: &mut ChaCha8Rng, start: u64) {
        let n = count(self.params.scale, CAMPAIGN_ACCOUNTS);
        let pool = self.pools.len();
        self.pools.push(pool_in(rng, 3, 12));
        let mut client = Client::random(rng, ClientKind::OpenAiPython);
        client.version = "1.40.0";
        client.runtime = "3.10.12";
        client.os = "Linux";
        client.arm = false;
        client.async_client = true;
        client.variant = 0;
        // Accounts come online in ~20 bursts, 18 minutes apart.
        let burst = n.div_ceil(20).max(1);
        let interval = DAY_MS as f64 / CAMPAIGN_DAILY_REQUESTS;
        for k in 0..n {
            let i = self.push(
                rng,
                ("campaign-naive", None, "naive"),
                client.clone(),
                Net::Pool(pool),
                Behaviour::Regular,
            );
            let a = &mut self.accounts[i];
            a.operator = Operator::Naive;
            a.model = "gpt-4.1";
            a.max_tokens = Some(16_384);
            a.temperature = Some(0.7);
            a.interval_ms = (interval * rng.random_range(0.97..1.03)) as u64;
            let burst_at = start + (k / burst) as u64 * 18 * 60_000;
            a.active_from = burst_at + rng.random_range(0..(a.interval_ms / 10).max(1));
        }
    }

    fn spoofed(&mut self, rng: &mut ChaCha8Rng, start: u64) {
        let n = count(self.params.scale, CAMPAIGN_ACCOUNTS);
        for _ in 0..n {
            let kind = client_mix(rng);
            let mut client = Client::random(rng, kind);
            client.mismatched = rng.random_bool(0.15);
            let i = self.push(
                rng,
                ("campaign-spoofed", None, "spoofed"),
                client,
                Net::Churn,
                Behaviour::Poisson,
            );
            let a = &mut self.accounts[i];
            a.operator = Operator::Spoofed;
            a.model = match a.client.dialect {
                Dialect::OpenAi => pick(rng, &["gpt-4.1", "o4-mini", "gpt-4o"]),
                Dialect::Anthropic => {
                    pick(rng, &["claude-sonnet-4-20250514", "claude-opus-4-20250514"])
                }
            };
            a.endpoint = if a.client.dialect == Dialect::Anthropic {
                Endpoint::Messages
            } else {
                Endpoint::Chat
            };
            a.max_tokens = Some(
                *[4096u32, 8000, 8192, 12000, 16000, 32000]
                    .get(rng.random_range(0..6))
                    .unwrap_or(&8192),
            );
            a.temperature = if rng.random_bool(0.3) {
                None
            } else {
                Some(
                    *[0.6f32, 0.7, 0.8, 1.0]
                        .get(rng.random_range(0..4))
                        .unwrap_or(&0.7),
                )
            };
            a.reasoning = rng.random_bool(0.4);
            a.stream = if rng.random_bool(0.4) {
                Some(true)
            } else {
                None
            };
            // Lognormal spread around the reported per-account mean.
            a.rate =
                CAMPAIGN_DAILY_REQUESTS * log_normal(rng, 1.0, 0.25) / (0.25f64 * 0.25 / 2.0).exp();
            a.active_from = start + rng.random_range(0..12 * HOUR_MS);
            a.tz = tz_of(rng);
            for t in a.templates.iter_mut() {
                *t = rng.random_range(0..templates::SPOOFED_TEMPLATES.len() as u8);
            }
        }
    }

    fn hydra(&mut self, rng: &mut ChaCha8Rng, start: u64) {
        let n = count(self.params.scale, HYDRA_ACCOUNTS);
        // The reseller's gateway is the one its innocent customers use.
        let (pool, gateway) = match self.gateway.clone() {
            Some(g) => g,
            None => {
                let pool = self.pools.len();
                self.pools.push(pool_in(rng, 3, 8));
                (pool, Client::random(rng, ClientKind::Gateway))
            }
        };
        for _ in 0..n {
            let i = self.push(
                rng,
                ("campaign-hydra", None, "hydra"),
                gateway.clone(),
                Net::Pool(pool),
                Behaviour::Poisson,
            );
            let a = &mut self.accounts[i];
            a.operator = Operator::Hydra;
            a.model = pick(rng, &["gpt-4.1", "o4-mini"]);
            a.max_tokens = Some(
                *[8192u32, 16_384]
                    .get(rng.random_range(0..2))
                    .unwrap_or(&8192),
            );
            a.temperature = Some(0.6);
            a.reasoning = a.model == "o4-mini";
            a.rate =
                CAMPAIGN_DAILY_REQUESTS * log_normal(rng, 1.0, 0.2) / (0.2f64 * 0.2 / 2.0).exp();
            a.active_from = start + rng.random_range(0..6 * HOUR_MS);
            for t in a.templates.iter_mut() {
                *t = rng.random_range(0..templates::HYDRA_TEMPLATES.len() as u8);
            }
        }
    }

    /// Appends account `idx`'s events that start in hour `hour` (they may run on).
    fn events(&self, idx: usize, hour: u64, out: &mut Vec<Event>) {
        let a = &self.accounts[idx];
        let hs = self.params.start_ms + hour * HOUR_MS;
        let he = hs + HOUR_MS;
        if a.active_from >= he {
            return;
        }
        let from = hs.max(a.active_from);
        let span = he - from;
        let mut rng = rng_of(mix(self.params.seed, a.seed), hour);
        let local = (hs / HOUR_MS) as i64 + a.tz;
        let account = idx as u32;
        match a.behaviour {
            Behaviour::Chat | Behaviour::Agent => {
                let sessions = poisson(
                    &mut rng,
                    a.rate / 24.0 * human_day(local) * span as f64 / HOUR_MS as f64,
                );
                for _ in 0..sessions {
                    let mut t = from + rng.random_range(0..span);
                    let session: u64 = rng.random();
                    let turns = if a.behaviour == Behaviour::Agent {
                        2 + geometric(&mut rng, 4.0).min(30)
                    } else {
                        1 + geometric(&mut rng, 1.8).min(11)
                    };
                    for turn in 0..turns {
                        out.push(Event {
                            ts: t,
                            account,
                            session,
                            turn: turn as u16,
                        });
                        let gap = if a.behaviour == Behaviour::Agent {
                            log_normal(&mut rng, 9_000.0, 0.6)
                        } else {
                            log_normal(&mut rng, 70_000.0, 0.8)
                        };
                        t += gap.min(1_800_000.0) as u64;
                    }
                }
            }
            Behaviour::Service | Behaviour::Poisson => {
                let shape = if a.behaviour == Behaviour::Service {
                    0.5 + 0.5 * human_day(local)
                } else {
                    0.75 + 0.25 * human_day(local)
                };
                let k = poisson(
                    &mut rng,
                    a.rate / 24.0 * shape * span as f64 / HOUR_MS as f64,
                );
                for _ in 0..k {
                    let ts = from + rng.random_range(0..span);
                    out.push(Event {
                        ts,
                        account,
                        session: rng.random(),
                        turn: 0,
                    });
                }
            }
            Behaviour::Regular => {
                let i = a.interval_ms.max(1);
                let first = (from - a.active_from).div_ceil(i);
                let mut k = first;
                while a.active_from + k * i < he {
                    let ts = a.active_from + k * i + rng.random_range(0..(i / 25).max(1));
                    out.push(Event {
                        ts,
                        account,
                        session: rng.random(),
                        turn: 0,
                    });
                    k += 1;
                }
            }
            Behaviour::Batch => {
                let day = (hs - self.params.start_ms) / DAY_MS;
                let mut drng = rng_of(mix(self.params.seed, a.seed), 0x0_ba7c_0000 + day);
                if !drng.random_bool(a.rate.clamp(0.0, 1.0)) {
                    return;
                }
                let job_hour = drng.random_range(0..24u64);
                if hour % 24 != job_hour || a.active_from > hs {
                    return;
                }
                let n = drng.random_range(100..600u32);
                let mut t = hs + drng.random_range(0..HOUR_MS / 2);
                let job: u64 = drng.random();
                for j in 0..n {
                    out.push(Event {
                        ts: t,
                        account,
                        session: mix(job, u64::from(j)),
                        turn: 0,
                    });
                    t += (a.interval_ms as f64 * drng.random_range(0.9..1.1)) as u64;
                }
            }
        }
    }

    fn ip(&self, a: &Account, rng: &mut ChaCha8Rng) -> IpAddr {
        match a.net {
            Net::Home(home, away) => {
                if rng.random_bool(0.1) {
                    away
                } else {
                    home
                }
            }
            Net::Pool(p) => {
                let pool = &self.pools[p];
                pool[rng.random_range(0..pool.len())]
            }
            Net::Churn => residential(rng),
        }
    }

    /// Appends one event as a JSON line to `line`; returns
    /// whether it is campaign traffic.
    fn render(&self, ev: &Event, line: &mut String, body: &mut String) -> bool {
        let a = &self.accounts[ev.account as usize];
        let mut rng = rng_of(ev.session, u64::from(ev.turn));
        let mut spec = Spec {
            model: a.model,
            max_tokens: a.max_tokens,
            temperature: a.temperature,
            stream: a.stream,
            ..Spec::default()
        };
        let mut client = a.client.clone();
        let mut endpoint = a.endpoint;
        let mut user = String::with_capacity(1024);
        let output: f64;
        match a.behaviour {
            Behaviour::Chat => {
                spec.system = match a.system {
                    System::App => Some(self.assets.app_system.as_str()),
                    System::Generic(g) => GENERIC_SYSTEMS.get(usize::from(g)).copied(),
                    _ => None,
                };
                let coder = a.client.kind != ClientKind::Browser && a.seed % 3 != 0;
                for turn in 0..=ev.turn {
                    let mut r = rng_of(ev.session, u64::from(turn));
                    let mut text = String::with_capacity(1024);
                    if turn == 0 {
                        templates::organic_prompt(&mut r, coder, &mut text);
                    } else {
                        templates::follow_up(&mut r, &mut text);
                    }
                    let out_tokens = log_normal(&mut r, 280.0, 0.9);
                    if turn < ev.turn {
                        spec.messages.push(Msg::User(text));
                        let mut ans = String::with_capacity(1024);
                        templates::answer(&mut r, (out_tokens * 0.7).min(150.0) as usize, &mut ans);
                        spec.messages.push(Msg::Assistant(ans));
                    } else {
                        spec.messages.push(Msg::User(text));
                        rng = r;
                    }
                }
                output = log_normal(&mut rng, 280.0, 0.9);
                if a.reasoning {
                    spec.reasoning_effort = Some(pick(&mut rng, &["low", "medium", "high"]));
                }
            }
            Behaviour::Agent => {
                spec.system = Some(self.assets.agent_system.as_str());
                spec.system_json = Some(self.assets.agent_system_json.as_str());
                spec.tools = Some(match a.client.dialect {
                    Dialect::OpenAi => self.assets.agent_tools_openai.as_str(),
                    Dialect::Anthropic => self.assets.agent_tools_anthropic.as_str(),
                });
                let mut r = rng_of(ev.session, 0);
                templates::agent_task(&mut r, &mut user);
                spec.messages.push(Msg::User(std::mem::take(&mut user)));
                for step in 1..=ev.turn {
                    let mut r = rng_of(ev.session, u64::from(step));
                    let (tool, _, _) = templates::AGENT_TOOLS[r.random_range(0..6)];
                    let id = match a.client.dialect {
                        Dialect::Anthropic => format!("toolu_{:016x}", r.random::<u64>()),
                        Dialect::OpenAi => format!("call_{:016x}", r.random::<u64>()),
                    };
                    let args = format!(
                        "{{\"path\":\"src/{}.py\"}}",
                        pick(&mut r, super::prose::IDENTS)
                    );
                    let mut result = String::with_capacity(1024);
                    templates::tool_result(&mut r, tool, &mut result);
                    spec.messages.push(Msg::ToolCall(id.clone(), tool, args));
                    spec.messages.push(Msg::ToolResult(id, result));
                }
                output = if rng.random_bool(0.65) {
                    log_normal(&mut rng, 120.0, 0.6)
                } else {
                    log_normal(&mut rng, 700.0, 0.8)
                };
            }
            Behaviour::Batch => {
                templates::eval_prompt(&mut rng, a.cot, &mut user);
                spec.messages.push(Msg::User(std::mem::take(&mut user)));
                output = if a.cot {
                    log_normal(&mut rng, 350.0, 0.5)
                } else {
                    log_normal(&mut rng, 2.0, 0.4)
                };
            }
            Behaviour::Service => {
                let org = match a.system {
                    System::Org(o) => o,
                    _ => 0,
                };
                let system = templates::org_system(org);
                templates::org_prompt(&mut rng, org, &mut user);
                spec.messages.push(Msg::User(std::mem::take(&mut user)));
                output = log_normal(&mut rng, 250.0, 0.7);
                spec.system = None;
                return self.finish(
                    ev,
                    a,
                    &client,
                    endpoint,
                    spec,
                    Some(&system),
                    output,
                    &mut rng,
                    line,
                    body,
                );
            }
            Behaviour::Regular | Behaviour::Poisson => {
                let short = rng.random_bool(0.2);
                let mut payload = String::with_capacity(1024);
                templates::campaign_payload(&mut rng, short, &mut payload);
                match a.operator {
                    Operator::Naive => {
                        let t = if short {
                            3
                        } else {
                            [0usize, 1, 2, 4][rng.random_range(0..4)]
                        };
                        templates::fill_template(
                            &mut rng,
                            templates::NAIVE_TEMPLATES[t],
                            &payload,
                            false,
                            &mut user,
                        );
                        spec.system = Some(templates::NAIVE_SYSTEM);
                    }
                    Operator::Spoofed => {
                        let t = if short {
                            6
                        } else {
                            a.templates[rng.random_range(0..4)] as usize
                        };
                        templates::fill_template(
                            &mut rng,
                            templates::SPOOFED_TEMPLATES[t],
                            &payload,
                            true,
                            &mut user,
                        );
                        if rng.random_bool(0.7) {
                            spec.system = Some(pick(&mut rng, templates::SPOOFED_SYSTEMS));
                        }
                        // Rotate the client installation every six hours.
                        let period = (ev.ts - self.params.start_ms) / (6 * HOUR_MS);
                        let mut crng = rng_of(a.seed, period);
                        let kind = match a.client.dialect {
                            Dialect::Anthropic => pick(&mut crng, &["ap", "an", "curl"]),
                            Dialect::OpenAi => pick(&mut crng, &["op", "on", "lc", "curl", "req"]),
                        };
                        let kind = match kind {
                            "ap" => ClientKind::AnthropicPython,
                            "an" => ClientKind::AnthropicNode,
                            "op" => ClientKind::OpenAiPython,
                            "on" => ClientKind::OpenAiNode,
                            "lc" => ClientKind::LangChain,
                            "req" => ClientKind::PyRequests,
                            _ => ClientKind::Curl,
                        };
                        let dialect = a.client.dialect;
                        client = Client::random(&mut crng, kind);
                        client.dialect = dialect;
                        client.mismatched = a.client.mismatched;
                        endpoint = if dialect == Dialect::Anthropic {
                            Endpoint::Messages
                        } else {
                            Endpoint::Chat
                        };
                    }
                    _ => {
                        let t = if short {
                            3
                        } else {
                            a.templates[rng.random_range(0..4)] as usize
                        };
                        templates::fill_template(
                            &mut rng,
                            templates::HYDRA_TEMPLATES[t],
                            &payload,
                            true,
                            &mut user,
                        );
                    }
                }
                spec.messages.push(Msg::User(std::mem::take(&mut user)));
                if short {
                    spec.max_tokens = if rng.random_bool(0.5) {
                        None
                    } else {
                        Some(1024)
                    };
                    output = log_normal(&mut rng, 150.0, 0.6);
                } else {
                    output = log_normal(&mut rng, 1_800.0, 0.45);
                    if a.reasoning {
                        spec.reasoning_effort = Some("high");
                        if endpoint == Endpoint::Messages {
                            spec.thinking_budget = Some(spec.max_tokens.unwrap_or(8192) / 2);
                        }
                    }
                }
            }
        }
        if a.reasoning
            && endpoint == Endpoint::Messages
            && spec.thinking_budget.is_none()
            && spec.max_tokens.unwrap_or(0) > 2048
        {
            spec.thinking_budget = Some(1024);
        }
        self.finish(
            ev, a, &client, endpoint, spec, None, output, &mut rng, line, body,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish<'s>(
        &self,
        ev: &Event,
        a: &Account,
        client: &Client,
        endpoint: Endpoint,
        mut spec: Spec<'s>,
        system: Option<&'s str>,
        output: f64,
        rng: &mut ChaCha8Rng,
        line: &mut String,
        body: &mut String,
    ) -> bool {
        if spec.system.is_none() {
            spec.system = system;
        }
        if client.kind == ClientKind::LangChain {
            spec.n = Some(1);
            spec.stream = Some(spec.stream.unwrap_or(false));
            spec.temperature = Some(spec.temperature.unwrap_or(0.7));
        }
        let cap = spec.max_tokens.unwrap_or(4096);
        let output_tokens = (output.max(1.0) as u64).min(u64::from(cap));
        let input_tokens = spec.prompt_chars() as u64 / 4 + 8;
        body.clear();
        profile::body(client, endpoint, &spec, body);
        let ip = self.ip(a, rng);
        let mut o = Obj::new(line);
        o.num("ts_ms", ev.ts);
        {
            use std::fmt::Write as _;
            let out = o.key("ip");
            let _ = write!(out, "\"{ip}\"");
        }
        o.str("method", "POST").str("path", endpoint.path());
        client.headers(&a.key, body.len(), o.key("headers"));
        o.raw("body", body);
        {
            let u = o.key("usage");
            let mut uo = Obj::new(u);
            uo.num("input_tokens", input_tokens)
                .num("output_tokens", output_tokens);
            uo.end();
        }
        o.raw("label", &a.label);
        o.end();
        line.push('\n');
        a.campaign
    }
}

fn cohort_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::OpenAiPython => "openai-python",
        ClientKind::OpenAiNode => "openai-node",
        ClientKind::AnthropicPython => "anthropic-python",
        ClientKind::AnthropicNode => "anthropic-node",
        ClientKind::Curl => "curl",
        ClientKind::PyRequests => "python-requests",
        ClientKind::LangChain => "langchain",
        ClientKind::Browser => "browser",
        ClientKind::Gateway => "gateway",
    }
}

/// Events rendered per thread at a time (bounds the memory of rendered text).
const RENDER_CHUNK: usize = 2048;

/// Rendered lines of a run of events.
#[derive(Debug)]
struct Rendered {
    text: String,
    lines: u64,
    campaign_lines: u64,
}

impl Population {
    fn render_all(&self, events: &[Event]) -> Rendered {
        let mut text = String::with_capacity(events.len() * 6 * 1024);
        let mut body = String::with_capacity(32 * 1024);
        let mut campaign_lines = 0;
        for ev in events {
            if self.render(ev, &mut text, &mut body) {
                campaign_lines += 1;
            }
        }
        Rendered {
            text,
            lines: events.len() as u64,
            campaign_lines,
        }
    }
}

/// Hours as milliseconds.
fn hours_ms(hours: f64) -> u64 {
    (hours * HOUR_MS as f64) as u64
}

/// Runs the simulation, writing sorted JSON lines to `out`.
pub(crate) fn run<W: Write>(
    scenario: Scenario,
    params: &SimParams,
    out: W,
) -> Result<Stats, SimulateError> {
    params.validate()?;
    let pop = Population::new(scenario, *params);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut stats = Stats {
        campaign_accounts: pop.accounts.iter().filter(|a| a.campaign).count() as u64,
        organic_accounts: pop.accounts.iter().filter(|a| !a.campaign).count() as u64,
        ..Stats::default()
    };
    let end = params.start_ms + hours_ms(params.hours);
    let hours = params.hours.ceil() as u64;
    let mut batch: Vec<Event> = Vec::new();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    for hour in 0..hours {
        let he = (params.start_ms + (hour + 1) * HOUR_MS).min(end);
        for idx in 0..pop.accounts.len() {
            pop.events(idx, hour, &mut batch);
        }
        batch.sort_unstable();
        let last = hour + 1 == hours;
        let cut = batch.partition_point(|e| e.ts < he);
        // Render in bounded chunks, split across threads, written in order.
        for chunk in batch[..cut].chunks(RENDER_CHUNK * workers) {
            let parts = if workers == 1 || chunk.len() < 512 {
                vec![pop.render_all(chunk)]
            } else {
                let per = chunk.len().div_ceil(workers);
                std::thread::scope(|s| {
                    let handles: Vec<_> = chunk
                        .chunks(per)
                        .map(|part| s.spawn(|| pop.render_all(part)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join())
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|_| std::io::Error::other("a render thread panicked"))?
            };
            for part in parts {
                out.write_all(part.text.as_bytes())?;
                stats.lines += part.lines;
                stats.bytes += part.text.len() as u64;
                stats.campaign_lines += part.campaign_lines;
                stats.organic_lines += part.lines - part.campaign_lines;
            }
        }
        if last {
            batch.clear();
        } else {
            batch.drain(..cut);
        }
    }
    out.flush()?;
    Ok(stats)
}

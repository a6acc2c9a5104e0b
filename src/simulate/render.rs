//! Rendering one event as a JSON line: the prompt, the parameters, the client's
//! body and headers, the address, the usage and the label.

use std::net::IpAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::json::Obj;
use super::operators::redrawn_client;
use super::paraphrase::{compose, lightly_edit, personal_reasoning, system_prompt, Voice, PAYLOAD};
use super::population::{
    new_model, reasons, residential, Account, Content, Net, NewModel, Population, System,
    GENERIC_SYSTEMS,
};
use super::profile::{self, ClientKind, Dialect, Endpoint, Msg, Spec};
use super::random::{chance, log_normal, mix, pick, pick_or, rng_of, unit};
use super::scenario::OperatorKind;
use super::tasks::{self, Focus};
use super::templates::{self, Habits};
use super::timing::Event;

/// Random streams of an account's fixed text (its template, voice, system prompt).
const STREAM_TEMPLATE: u64 = 0x0_7e4b;
const STREAM_VOICE: u64 = 0x0_0b1c;
const STREAM_SYSTEM: u64 = 0x0_5b5b;
const STREAM_COT: u64 = 0x0_c07;

/// Thinking budgets people set: the minimum, round numbers and half of every
/// common cap (operators give half the cap).
const THINKING_BUDGETS: &[u32] = &[
    1024, 1024, 2000, 2048, 3000, 4000, 4096, 5000, 6000, 8000, 8192, 10000, 12000, 16000, 16384,
];

/// What a request asks for, before it is written out.
struct Request<'s> {
    spec: Spec<'s>,
    client: profile::Client,
    endpoint: Endpoint,
    output: f64,
}

impl Population {
    /// Whether the account uses the new model for this event.
    fn uses_new_model(&self, a: &Account, ev: &Event) -> bool {
        let released = ev.ts >= self.release_ms;
        match (a.new_model, a.op) {
            (NewModel::Never, _) => false,
            (NewModel::Adopter, Some(o)) => self
                .operators
                .get(usize::from(o))
                .and_then(|op| op.pivot_ms)
                .is_some_and(|at| ev.ts >= at),
            (NewModel::Adopter, None) => released,
            (NewModel::Trial, _) => released && unit(mix(ev.session, 0x0_7a1)) < 0.5,
        }
    }

    /// Appends one event as a JSON line to `line`; returns the operator of a
    /// campaign line.
    pub(crate) fn render(&self, ev: &Event, line: &mut String, body: &mut String) -> Option<u16> {
        let a = self.accounts.get(ev.account as usize)?;
        let mut rng = rng_of(ev.session, u64::from(ev.turn));
        let mut system_text = String::new();
        let model = if self.uses_new_model(a, ev) {
            new_model(a.client.dialect)
        } else {
            a.model
        };
        let mut req = Request {
            spec: Spec {
                model,
                max_tokens: a.max_tokens,
                temperature: a.temperature,
                top_p: a.top_p,
                stream: a.stream,
                ..Spec::default()
            },
            client: a.client.clone(),
            endpoint: a.endpoint,
            output: 0.0,
        };
        let effort = |rng: &mut ChaCha8Rng| pick(rng, &["low", "medium", "medium", "high"]);
        match a.content {
            Content::Chat { coder } => {
                self.conversation(ev, &mut req, |rng, pools, out| {
                    templates::organic_prompt(rng, pools, coder, out);
                    // Some people ask for the steps too, in their own words.
                    let mut r = rng_of(ev.session, STREAM_COT);
                    if chance(&mut r, self.knobs.organic_cot_share) {
                        out.push(' ');
                        personal_reasoning(
                            &mut rng_of(a.seed, STREAM_COT),
                            pools,
                            false,
                            r.random_range(0..3),
                            out,
                        );
                    }
                });
                req.output = log_normal(&mut rng, self.knobs.organic_output_median, 0.9);
                if a.reasoning && reasons(model) {
                    req.spec.reasoning_effort = Some(effort(&mut rng));
                }
            }
            Content::Power => {
                let habits = Habits {
                    seed: a.seed,
                    ask_reasoning: f64::from(a.ask_reasoning),
                    casual: a.casual,
                    focus: [0.35, 0.05, 0.4, 0.2],
                };
                self.conversation(ev, &mut req, |rng, pools, out| {
                    templates::power_prompt(rng, pools, &habits, out)
                });
                req.output = log_normal(&mut rng, 1_200.0, 0.6);
                if a.reasoning && reasons(model) {
                    req.spec.reasoning_effort = Some(pick(&mut rng, &["medium", "high", "high"]));
                }
            }
            Content::Agent => {
                self.agent_step(a, ev, &mut req);
                req.output = if rng.random_bool(0.65) {
                    log_normal(&mut rng, 120.0, 0.6)
                } else {
                    log_normal(&mut rng, 700.0, 0.8)
                };
            }
            Content::EvalMc { cot } => {
                let mut user = String::with_capacity(512);
                templates::eval_prompt(&mut rng, cot, &mut user);
                req.spec.messages.push(Msg::User(user));
                req.output = if cot {
                    log_normal(&mut rng, 350.0, 0.5)
                } else {
                    log_normal(&mut rng, 2.0, 0.4)
                };
            }
            Content::Org(org) => {
                system_text = templates::org_system(org);
                let mut user = String::with_capacity(1024);
                templates::org_prompt(&mut rng, org, &mut user);
                req.spec.messages.push(Msg::User(user));
                req.output = log_normal(&mut rng, 250.0, 0.7);
            }
            Content::Script => {
                // The account's own fixed template around problem-set items.
                let mut t = rng_of(a.seed, STREAM_TEMPLATE);
                let voice = Voice::random(&mut rng_of(a.seed, STREAM_VOICE));
                let mut template = String::new();
                let reason = chance(&mut t, f64::from(a.ask_reasoning));
                compose(&mut t, &self.words, &voice, reason, PAYLOAD, &mut template);
                let mut item = String::with_capacity(512);
                let focus = Focus::draw(&mut rng, &[0.4, 0.05, 0.45, 0.1]);
                tasks::task(&mut rng, &self.words, focus, &mut item);
                req.spec
                    .messages
                    .push(Msg::User(template.replacen(PAYLOAD, &item, 1)));
                req.output = log_normal(&mut rng, 900.0, 0.6);
                if a.reasoning && reasons(model) {
                    req.spec.reasoning_effort = Some("high");
                }
            }
            Content::Campaign => self.campaign(a, ev, &mut rng, &mut req),
        }
        if a.system == System::Own && system_text.is_empty() {
            system_prompt(
                &mut rng_of(a.seed, STREAM_SYSTEM),
                &self.words,
                &mut system_text,
            );
        }
        if req.spec.system.is_none() {
            req.spec.system = match a.system {
                System::App => Some(self.assets.app_system.as_str()),
                System::Generic(g) => GENERIC_SYSTEMS.get(usize::from(g)).copied(),
                System::Org(_) | System::Own | System::Operator(_) if !system_text.is_empty() => {
                    Some(system_text.as_str())
                }
                _ => None,
            };
        }
        // Thinking on the Anthropic dialect for accounts that reason.
        if a.reasoning
            && req.endpoint == Endpoint::Messages
            && req.spec.thinking_budget.is_none()
            && req.spec.max_tokens.unwrap_or(0) > 2048
            && reasons(model)
        {
            // People keep the documented minimum or pick a round budget below the cap.
            let cap = req.spec.max_tokens.unwrap_or(4096);
            let budgets: Vec<u32> = THINKING_BUDGETS
                .iter()
                .copied()
                .filter(|b| *b < cap)
                .collect();
            req.spec.thinking_budget = Some(pick_or(&mut rng_of(a.seed, 0x0_7b), &budgets, 1024));
        }
        let campaign = a.op;
        self.write(ev, a, req, &mut rng, line, body);
        campaign
    }

    /// A conversation: the first message from `first`, then follow-ups, with
    /// earlier answers abbreviated in the history.
    fn conversation(
        &self,
        ev: &Event,
        req: &mut Request<'_>,
        first: impl Fn(&mut ChaCha8Rng, &super::pools::Pools, &mut String),
    ) {
        for turn in 0..=ev.turn {
            let mut r = rng_of(ev.session, u64::from(turn));
            let mut text = String::with_capacity(1024);
            if turn == 0 {
                first(&mut r, &self.words, &mut text);
            } else {
                templates::follow_up(&mut r, &self.words, &mut text);
            }
            req.spec.messages.push(Msg::User(text));
            if turn < ev.turn {
                let words = log_normal(&mut r, 280.0, 0.9) * 0.7;
                let mut ans = String::with_capacity(1024);
                templates::answer(&mut r, words.min(150.0) as usize, &mut ans);
                req.spec.messages.push(Msg::Assistant(ans));
            }
        }
    }

    fn agent_step<'s>(&'s self, a: &Account, ev: &Event, req: &mut Request<'s>) {
        req.spec.system = Some(self.assets.agent_system.as_str());
        req.spec.system_json = Some(self.assets.agent_system_json.as_str());
        req.spec.tools = Some(match a.client.dialect {
            Dialect::OpenAi => self.assets.agent_tools_openai.as_str(),
            Dialect::Anthropic => self.assets.agent_tools_anthropic.as_str(),
        });
        let mut r = rng_of(ev.session, 0);
        let mut task = String::with_capacity(512);
        templates::agent_task(&mut r, &mut task);
        req.spec.messages.push(Msg::User(task));
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
            req.spec
                .messages
                .push(Msg::ToolCall(id.clone(), tool, args));
            req.spec.messages.push(Msg::ToolResult(id, result));
        }
    }

    /// An operator's request: a capability task (or a short ordinary one) in
    /// the operator's wording, its parameters and client of the moment.
    fn campaign<'s>(
        &'s self,
        a: &Account,
        ev: &Event,
        rng: &mut ChaCha8Rng,
        req: &mut Request<'s>,
    ) {
        let Some(op) = a.op.and_then(|o| self.operators.get(usize::from(o))) else {
            return;
        };
        let short = chance(rng, op.short_share);
        let mut payload = String::with_capacity(1024);
        if short {
            tasks::short_task(rng, &self.words, &mut payload);
        } else {
            let focus = Focus::draw(rng, &op.focus);
            tasks::task(rng, &self.words, focus, &mut payload);
        }
        let mut user = String::with_capacity(payload.len() + 512);
        let template = |i: usize| op.templates.get(i % op.templates.len().max(1));
        match op.kind {
            OperatorKind::Naive => {
                let t = if short {
                    Some(&op.short_template)
                } else {
                    template(rng.random_range(0..op.templates.len().max(1)))
                };
                user.push_str(
                    &t.map_or(PAYLOAD, String::as_str)
                        .replacen(PAYLOAD, &payload, 1),
                );
                req.spec.system = op.systems.first().map(String::as_str);
            }
            OperatorKind::Spoofed | OperatorKind::Hydra => {
                let t = if short {
                    Some(&op.short_template)
                } else {
                    template(usize::from(a.templates[rng.random_range(0..4)]))
                };
                lightly_edit(rng, t.map_or(PAYLOAD, String::as_str), &payload, &mut user);
                if chance(rng, op.system_share) {
                    req.spec.system = match a.system {
                        System::Operator(s) => op.systems.get(usize::from(s)),
                        _ => op.systems.get(rng.random_range(0..op.systems.len().max(1))),
                    }
                    .map(String::as_str);
                }
            }
            OperatorKind::Adaptive => {
                if short && rng.random_bool(0.5) {
                    user.push_str(&payload);
                } else {
                    let reason = !short && chance(rng, op.cot_share);
                    compose(rng, &self.words, &op.voice, reason, &payload, &mut user);
                }
            }
        }
        req.spec.messages.push(Msg::User(user));
        if short {
            req.spec.max_tokens = if rng.random_bool(0.5) {
                None
            } else {
                Some(1024)
            };
            req.output = log_normal(rng, 150.0, 0.6);
        } else {
            if chance(rng, op.ordinary_cap_share) {
                req.spec.max_tokens = Some(pick_or(rng, &[1000u32, 1024, 2048], 1024));
            }
            req.output = log_normal(rng, op.output_median, 0.45);
            if a.reasoning && reasons(req.spec.model) {
                req.output *= 1.3;
                req.spec.reasoning_effort = Some(if rng.random_bool(0.85) {
                    "high"
                } else {
                    "medium"
                });
                let cap = req.spec.max_tokens.unwrap_or(4096);
                if req.endpoint == Endpoint::Messages && cap > 2048 {
                    req.spec.thinking_budget = Some(cap / 2);
                }
            }
        }
        if let Some(every) = op.client_redraw_ms {
            let period = ev.ts.saturating_sub(op.start_ms) / every.max(1);
            let c = redrawn_client(a.seed, period, &op.client_weights, &a.client);
            req.endpoint = match c.dialect {
                Dialect::OpenAi => Endpoint::Chat,
                Dialect::Anthropic => Endpoint::Messages,
            };
            req.client = c;
        }
    }

    fn ip(&self, a: &Account, ts: u64, rng: &mut ChaCha8Rng) -> IpAddr {
        match a.net {
            Net::Home(home, away) => {
                if rng.random_bool(0.1) {
                    away
                } else {
                    home
                }
            }
            Net::Pool(p) => {
                let pool = self.ip_pools.get(p).map_or(&[][..], Vec::as_slice);
                pick_or(rng, pool, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            }
            Net::Churn => residential(rng),
            Net::Sticky(period) => {
                let n = ts.saturating_sub(a.active_from) / period.max(1);
                residential(&mut rng_of(a.seed, mix(n, 0x0_1b)))
            }
        }
    }

    fn write(
        &self,
        ev: &Event,
        a: &Account,
        mut req: Request<'_>,
        rng: &mut ChaCha8Rng,
        line: &mut String,
        body: &mut String,
    ) {
        let relay = a.relay.and_then(|r| self.resellers.get(usize::from(r)));
        // A re-marshalling relay writes the body itself; others forward it.
        let body_client = match relay {
            Some(r) if r.remarshal => &r.gateway,
            _ => &req.client,
        };
        if body_client.kind == ClientKind::LangChain {
            req.spec.n = Some(1);
            req.spec.stream = Some(req.spec.stream.unwrap_or(false));
            req.spec.temperature = Some(req.spec.temperature.unwrap_or(0.7));
        }
        let cap = req.spec.max_tokens.unwrap_or(4096);
        let output_tokens = (req.output.max(1.0) as u64).min(u64::from(cap));
        let input_tokens = req.spec.prompt_chars() as u64 / 4 + 8;
        body.clear();
        profile::body(body_client, req.endpoint, &req.spec, body);
        let header_client = relay.map_or(&req.client, |r| &r.gateway);
        let ip = self.ip(a, ev.ts, rng);
        let mut o = Obj::new(line);
        o.num("ts_ms", ev.ts);
        {
            use std::fmt::Write as _;
            let out = o.key("ip");
            let _ = write!(out, "\"{ip}\"");
        }
        o.str("method", "POST").str("path", req.endpoint.path());
        header_client.headers(&a.key, body.len(), o.key("headers"));
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
    }
}

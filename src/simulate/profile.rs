//! Client profiles: the header sets, header orders and JSON key orders of real
//! clients, and the rendering of a request body in each dialect.
//!
//! The orders follow what the clients really send: the official Python SDKs
//! build the body from their keyword arguments in signature order (which is
//! alphabetical, `messages`/`input` before `model`) and send httpx's headers
//! first; the Node SDKs send the caller's object literal as written; curl sends
//! `host`, `user-agent`, `accept`, then the `-H` flags in the order typed; a Go
//! relay re-marshals bodies from its own struct.

use rand::Rng;

use super::json::{self, Obj};
use super::random::pick;

const OPENAI_PY: &[&str] = &[
    "1.35.10", "1.40.0", "1.43.0", "1.51.2", "1.54.4", "1.58.1", "1.61.0", "1.66.3", "1.70.0",
    "1.75.0",
];
const OPENAI_JS: &[&str] = &[
    "4.47.1", "4.56.0", "4.67.3", "4.73.1", "4.77.0", "4.85.1", "4.89.0",
];
const ANTHROPIC_PY: &[&str] = &["0.28.1", "0.34.2", "0.39.0", "0.42.0", "0.45.2", "0.49.0"];
const ANTHROPIC_JS: &[&str] = &["0.24.3", "0.27.3", "0.32.1", "0.33.1", "0.36.3", "0.39.0"];
const PYTHONS: &[&str] = &["3.9.18", "3.10.12", "3.11.9", "3.12.3", "3.12.7", "3.13.1"];
const NODES: &[&str] = &["v18.19.0", "v20.11.1", "v20.17.0", "v22.11.0", "v22.12.0"];
const CURLS: &[&str] = &["7.81.0", "8.5.0", "8.7.1", "8.9.1", "8.11.0"];
const REQUESTS: &[&str] = &["2.28.1", "2.31.0", "2.32.3"];
const AIOHTTPS: &[&str] = &["3.8.6", "3.9.5", "3.10.10", "3.11.11"];
const OSES: &[&str] = &["Linux", "Linux", "MacOS", "MacOS", "Windows"];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
];
const LANGUAGES: &[&str] = &[
    "en-US,en;q=0.9",
    "en-GB,en;q=0.9",
    "de-DE,de;q=0.9,en;q=0.8",
    "fr-FR,fr;q=0.9,en;q=0.8",
    "es-ES,es;q=0.9",
    "ja,en-US;q=0.9,en;q=0.8",
    "pt-BR,pt;q=0.9,en;q=0.8",
];

/// The API host every simulated client talks to.
const HOST: &str = "api.example.com";

/// The software that sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    OpenAiPython,
    OpenAiNode,
    AnthropicPython,
    AnthropicNode,
    Curl,
    PyRequests,
    LangChain,
    Browser,
    /// A Go relay (reseller gateway) that re-issues every request itself,
    /// re-marshalling the body from its own struct.
    Gateway,
    /// A Node relay (reseller gateway) that forwards the body as the customer
    /// wrote it with Node's built-in `fetch` (undici) headers.
    NodeRelay,
    /// A Python relay (reseller gateway, Anthropic dialect) that forwards the
    /// body with aiohttp's headers.
    PyRelay,
}

/// The API dialect a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
}

/// A concrete client installation.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) kind: ClientKind,
    pub(crate) dialect: Dialect,
    pub(crate) version: &'static str,
    pub(crate) runtime: &'static str,
    pub(crate) os: &'static str,
    pub(crate) arm: bool,
    pub(crate) async_client: bool,
    /// A habit: which of the plausible header or key orders this user writes.
    pub(crate) variant: u8,
    pub(crate) language: &'static str,
    /// An extra application header, e.g. a coding agent's `x-title`.
    pub(crate) extra: Option<(&'static str, &'static str)>,
    /// A spoofing mistake: the user-agent claims one SDK version, the
    /// `x-stainless-package-version` another.
    pub(crate) mismatched: bool,
}

impl Client {
    /// A random installation of `kind`.
    pub(crate) fn random<R: Rng + ?Sized>(rng: &mut R, kind: ClientKind) -> Self {
        let (dialect, version, runtime) = match kind {
            ClientKind::OpenAiPython | ClientKind::LangChain => {
                (Dialect::OpenAi, pick(rng, OPENAI_PY), pick(rng, PYTHONS))
            }
            ClientKind::OpenAiNode => (Dialect::OpenAi, pick(rng, OPENAI_JS), pick(rng, NODES)),
            ClientKind::AnthropicPython => (
                Dialect::Anthropic,
                pick(rng, ANTHROPIC_PY),
                pick(rng, PYTHONS),
            ),
            ClientKind::AnthropicNode => (
                Dialect::Anthropic,
                pick(rng, ANTHROPIC_JS),
                pick(rng, NODES),
            ),
            ClientKind::Curl => (
                if rng.random_bool(0.7) {
                    Dialect::OpenAi
                } else {
                    Dialect::Anthropic
                },
                pick(rng, CURLS),
                "",
            ),
            ClientKind::PyRequests => (
                if rng.random_bool(0.75) {
                    Dialect::OpenAi
                } else {
                    Dialect::Anthropic
                },
                pick(rng, REQUESTS),
                pick(rng, PYTHONS),
            ),
            ClientKind::Browser => (
                if rng.random_bool(0.5) {
                    Dialect::OpenAi
                } else {
                    Dialect::Anthropic
                },
                pick(rng, OPENAI_JS),
                pick(rng, BROWSERS),
            ),
            ClientKind::Gateway => (Dialect::OpenAi, "1.1", ""),
            ClientKind::NodeRelay => (Dialect::OpenAi, "", pick(rng, NODES)),
            ClientKind::PyRelay => (Dialect::Anthropic, pick(rng, AIOHTTPS), pick(rng, PYTHONS)),
        };
        Self {
            kind,
            dialect,
            version,
            runtime,
            os: pick(rng, OSES),
            arm: rng.random_bool(0.35),
            async_client: rng.random_bool(0.3),
            variant: rng.random_range(0..3),
            language: pick(rng, LANGUAGES),
            extra: None,
            mismatched: false,
        }
    }

    /// True for the clients whose bodies follow SDK signature order (mostly
    /// alphabetical).
    fn alphabetical(&self) -> bool {
        matches!(
            self.kind,
            ClientKind::OpenAiPython | ClientKind::LangChain | ClientKind::AnthropicPython
        )
    }

    /// Appends the JSON array of `[name, value]` header pairs.
    pub(crate) fn headers(&self, key: &str, content_length: usize, out: &mut String) {
        let host = HOST;
        let auth = format!("Bearer {key}");
        let len = content_length.to_string();
        let arch = if self.arm { "arm64" } else { "x64" };
        let mut h: Vec<(&str, &str)> = Vec::with_capacity(20);
        let stainless_version = if self.mismatched {
            "1.12.0"
        } else {
            self.version
        };
        match self.kind {
            ClientKind::OpenAiPython | ClientKind::LangChain | ClientKind::AnthropicPython => {
                let anthropic = self.kind == ClientKind::AnthropicPython;
                h.push(("host", host));
                h.push((
                    "accept-encoding",
                    if self.variant == 2 {
                        "gzip, deflate, br, zstd"
                    } else {
                        "gzip, deflate"
                    },
                ));
                h.push(("connection", "keep-alive"));
                h.push(("accept", "application/json"));
                h.push(("content-type", "application/json"));
                let ua = if anthropic {
                    format!("Anthropic/Python {}", self.version)
                } else {
                    format!("OpenAI/Python {}", self.version)
                };
                h.push(("user-agent", &ua));
                h.push(("x-stainless-lang", "python"));
                h.push(("x-stainless-package-version", stainless_version));
                h.push(("x-stainless-os", self.os));
                h.push(("x-stainless-arch", arch));
                h.push(("x-stainless-runtime", "CPython"));
                h.push(("x-stainless-runtime-version", self.runtime));
                if anthropic {
                    h.push(("anthropic-version", "2023-06-01"));
                    h.push(("x-api-key", key));
                } else {
                    h.push(("authorization", &auth));
                }
                h.push((
                    "x-stainless-async",
                    if self.async_client {
                        "async:asyncio"
                    } else {
                        "false"
                    },
                ));
                if let Some((n, v)) = self.extra {
                    h.push((n, v));
                }
                h.push(("x-stainless-retry-count", "0"));
                if self.version >= "1.5" || anthropic && self.version >= "0.39" {
                    h.push(("x-stainless-read-timeout", "600"));
                }
                h.push(("content-length", &len));
                write_pairs(&h, out);
            }
            ClientKind::OpenAiNode | ClientKind::AnthropicNode => {
                let anthropic = self.kind == ClientKind::AnthropicNode;
                let ua = if anthropic {
                    format!("Anthropic/JS {}", self.version)
                } else {
                    format!("OpenAI/JS {}", self.version)
                };
                let os = match self.os {
                    "MacOS" => "MacOS",
                    "Windows" => "Windows",
                    _ => "Linux",
                };
                h.push(("accept", "application/json"));
                if anthropic {
                    h.push(("anthropic-version", "2023-06-01"));
                }
                h.push(("content-type", "application/json"));
                h.push(("user-agent", &ua));
                if anthropic {
                    h.push(("x-api-key", key));
                }
                h.push(("x-stainless-lang", "js"));
                h.push(("x-stainless-package-version", stainless_version));
                h.push(("x-stainless-os", os));
                h.push(("x-stainless-arch", arch));
                h.push(("x-stainless-runtime", "node"));
                h.push(("x-stainless-runtime-version", self.runtime));
                if !anthropic {
                    h.push(("authorization", &auth));
                }
                if let Some((n, v)) = self.extra {
                    h.push((n, v));
                }
                h.push(("x-stainless-retry-count", "0"));
                h.push(("content-length", &len));
                h.push(("accept-encoding", "gzip,deflate"));
                h.push(("host", host));
                h.push(("connection", "keep-alive"));
                write_pairs(&h, out);
            }
            ClientKind::Curl => {
                let ua = format!("curl/{}", self.version);
                h.push(("host", host));
                h.push(("user-agent", &ua));
                h.push(("accept", "*/*"));
                match (self.dialect, self.variant) {
                    (Dialect::OpenAi, 0) => {
                        h.push(("content-type", "application/json"));
                        h.push(("authorization", &auth));
                    }
                    (Dialect::OpenAi, _) => {
                        h.push(("authorization", &auth));
                        h.push(("content-type", "application/json"));
                    }
                    (Dialect::Anthropic, 0) => {
                        h.push(("x-api-key", key));
                        h.push(("anthropic-version", "2023-06-01"));
                        h.push(("content-type", "application/json"));
                    }
                    (Dialect::Anthropic, _) => {
                        h.push(("content-type", "application/json"));
                        h.push(("x-api-key", key));
                        h.push(("anthropic-version", "2023-06-01"));
                    }
                }
                h.push(("content-length", &len));
                write_pairs(&h, out);
            }
            ClientKind::PyRequests => {
                let ua = format!("python-requests/{}", self.version);
                h.push(("host", host));
                h.push(("user-agent", &ua));
                h.push(("accept-encoding", "gzip, deflate"));
                h.push(("accept", "*/*"));
                h.push(("connection", "keep-alive"));
                match self.dialect {
                    Dialect::OpenAi => h.push(("authorization", &auth)),
                    Dialect::Anthropic => {
                        h.push(("x-api-key", key));
                        h.push(("anthropic-version", "2023-06-01"));
                    }
                }
                if self.variant == 0 {
                    h.push(("content-type", "application/json"));
                    h.push(("content-length", &len));
                } else {
                    h.push(("content-length", &len));
                    h.push(("content-type", "application/json"));
                }
                write_pairs(&h, out);
            }
            ClientKind::Browser => {
                let chrome = self.runtime.contains("Chrome");
                let platform = if self.runtime.contains("Windows") {
                    "\"Windows\""
                } else if self.runtime.contains("Mac") {
                    "\"macOS\""
                } else {
                    "\"Linux\""
                };
                h.push(("host", host));
                h.push(("connection", "keep-alive"));
                h.push(("content-length", &len));
                if chrome {
                    h.push(("sec-ch-ua-platform", platform));
                }
                match self.dialect {
                    Dialect::OpenAi => {
                        h.push(("authorization", &auth));
                        h.push(("x-stainless-lang", "js"));
                        h.push(("x-stainless-package-version", self.version));
                        h.push(("x-stainless-os", "Unknown"));
                        h.push(("x-stainless-arch", "unknown"));
                        h.push((
                            "x-stainless-runtime",
                            if chrome {
                                "browser:chrome"
                            } else {
                                "browser:safari"
                            },
                        ));
                        h.push(("x-stainless-retry-count", "0"));
                    }
                    Dialect::Anthropic => {
                        h.push(("anthropic-version", "2023-06-01"));
                        h.push(("x-api-key", key));
                        h.push(("anthropic-dangerous-direct-browser-access", "true"));
                    }
                }
                if chrome {
                    h.push((
                        "sec-ch-ua",
                        "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
                    ));
                    h.push(("sec-ch-ua-mobile", "?0"));
                }
                h.push(("user-agent", self.runtime));
                h.push(("content-type", "application/json"));
                h.push(("accept", "application/json"));
                h.push(("origin", "https://chat.byok.example"));
                h.push(("sec-fetch-site", "cross-site"));
                h.push(("sec-fetch-mode", "cors"));
                h.push(("sec-fetch-dest", "empty"));
                h.push(("referer", "https://chat.byok.example/"));
                h.push(("accept-encoding", "gzip, deflate, br, zstd"));
                h.push(("accept-language", self.language));
                write_pairs(&h, out);
            }
            ClientKind::Gateway => {
                h.push(("host", host));
                h.push(("user-agent", "Go-http-client/1.1"));
                h.push(("content-length", &len));
                h.push(("authorization", &auth));
                h.push(("content-type", "application/json"));
                h.push(("accept-encoding", "gzip"));
                write_pairs(&h, out);
            }
            ClientKind::NodeRelay => {
                h.push(("host", host));
                h.push(("connection", "keep-alive"));
                h.push(("content-type", "application/json"));
                h.push(("authorization", &auth));
                h.push(("accept", "*/*"));
                h.push(("accept-language", "*"));
                h.push(("sec-fetch-mode", "cors"));
                h.push(("user-agent", "node"));
                h.push(("accept-encoding", "gzip, deflate"));
                h.push(("content-length", &len));
                write_pairs(&h, out);
            }
            ClientKind::PyRelay => {
                let python: String = self
                    .runtime
                    .split('.')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(".");
                let ua = format!("Python/{python} aiohttp/{}", self.version);
                h.push(("host", host));
                h.push(("x-api-key", key));
                h.push(("anthropic-version", "2023-06-01"));
                h.push(("content-type", "application/json"));
                h.push(("accept", "*/*"));
                h.push(("accept-encoding", "gzip, deflate"));
                h.push(("user-agent", &ua));
                h.push(("content-length", &len));
                write_pairs(&h, out);
            }
        }
    }

    /// The order of body members this client writes, as a priority list (members
    /// not listed come last, in insertion order). `None` means alphabetical.
    fn key_order(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        if self.alphabetical() {
            return None;
        }
        Some(match (self.kind, endpoint, self.variant) {
            (ClientKind::Gateway, ..) => &[
                "model",
                "messages",
                "prompt",
                "input",
                "max_tokens",
                "temperature",
                "top_p",
                "stream",
                "tools",
                "reasoning_effort",
            ],
            (_, Endpoint::Messages, 0) => &[
                "model",
                "max_tokens",
                "system",
                "messages",
                "temperature",
                "stream",
                "thinking",
                "tools",
            ],
            (_, Endpoint::Messages, 1) => &[
                "model",
                "system",
                "messages",
                "max_tokens",
                "temperature",
                "tools",
                "stream",
                "thinking",
            ],
            (_, Endpoint::Messages, _) => &[
                "model",
                "messages",
                "system",
                "max_tokens",
                "stream",
                "temperature",
                "tools",
                "thinking",
            ],
            (_, Endpoint::Responses, _) => &[
                "model",
                "instructions",
                "input",
                "max_output_tokens",
                "reasoning",
                "temperature",
                "tools",
                "stream",
            ],
            (_, _, 0) => &[
                "model",
                "messages",
                "prompt",
                "temperature",
                "max_tokens",
                "stream",
                "tools",
                "reasoning_effort",
            ],
            (_, _, 1) => &[
                "messages",
                "model",
                "prompt",
                "stream",
                "max_tokens",
                "temperature",
                "top_p",
                "tools",
            ],
            _ => &[
                "model",
                "max_tokens",
                "messages",
                "prompt",
                "stream",
                "temperature",
                "tools",
                "reasoning_effort",
            ],
        })
    }
}

fn write_pairs(h: &[(&str, &str)], out: &mut String) {
    out.push('[');
    for (i, (n, v)) in h.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json::string(out, n);
        out.push(',');
        json::string(out, v);
        out.push(']');
    }
    out.push(']');
}

/// The endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Responses,
    Completions,
    Messages,
}

impl Endpoint {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Messages => "/v1/messages",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    User(String),
    Assistant(String),
    /// An assistant turn that calls a tool: call id, tool name, JSON arguments.
    ToolCall(String, &'static str, String),
    /// A tool's result: call id, content.
    ToolResult(String, String),
}

/// Everything a request body says.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spec<'a> {
    pub(crate) model: &'a str,
    pub(crate) system: Option<&'a str>,
    /// `system` already rendered as a JSON string literal (for long shared
    /// prompts, escaped once per run).
    pub(crate) system_json: Option<&'a str>,
    pub(crate) messages: Vec<Msg>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) stream: Option<bool>,
    pub(crate) n: Option<u32>,
    pub(crate) reasoning_effort: Option<&'a str>,
    pub(crate) thinking_budget: Option<u32>,
    /// Pre-rendered tool list in the request's dialect.
    pub(crate) tools: Option<&'a str>,
}

impl Spec<'_> {
    /// Characters of prompt text, for the input-token estimate.
    pub(crate) fn prompt_chars(&self) -> usize {
        let mut n = self.system.map_or(0, str::len) + self.tools.map_or(0, str::len);
        for m in &self.messages {
            n += match m {
                Msg::User(s) | Msg::Assistant(s) => s.len() + 16,
                Msg::ToolCall(_, name, args) => name.len() + args.len() + 40,
                Msg::ToolResult(_, s) => s.len() + 40,
            };
        }
        n
    }
}

fn num_f32(v: f32) -> String {
    // Renders 0.7 as 0.7, not 0.699999988.
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Appends `text` as a JSON string, or its pre-rendered literal when given.
fn push_text(out: &mut String, text: &str, rendered: Option<&str>) {
    match rendered {
        Some(r) => out.push_str(r),
        None => json::string(out, text),
    }
}

fn openai_messages(spec: &Spec<'_>, out: &mut String) {
    out.push('[');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    if let Some(system) = spec.system {
        sep(out);
        let mut o = Obj::new(out);
        o.str("role", "system");
        push_text(o.key("content"), system, spec.system_json);
        o.end();
    }
    for m in &spec.messages {
        sep(out);
        let mut o = Obj::new(out);
        match m {
            Msg::User(t) => {
                o.str("role", "user").str("content", t);
            }
            Msg::Assistant(t) => {
                o.str("role", "assistant").str("content", t);
            }
            Msg::ToolCall(id, name, args) => {
                o.str("role", "assistant").raw("content", "null");
                let buf = o.key("tool_calls");
                buf.push('[');
                let mut c = Obj::new(buf);
                c.str("id", id).str("type", "function");
                let f = c.key("function");
                let mut fo = Obj::new(f);
                fo.str("name", name).str("arguments", args);
                fo.end();
                c.end();
                o.push(']');
            }
            Msg::ToolResult(id, t) => {
                o.str("role", "tool")
                    .str("tool_call_id", id)
                    .str("content", t);
            }
        }
        o.end();
    }
    out.push(']');
}

fn anthropic_messages(spec: &Spec<'_>, out: &mut String) {
    out.push('[');
    for (i, m) in spec.messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::new(out);
        match m {
            Msg::User(t) => {
                o.str("role", "user").str("content", t);
            }
            Msg::Assistant(t) => {
                o.str("role", "assistant").str("content", t);
            }
            Msg::ToolCall(id, name, args) => {
                o.str("role", "assistant");
                let buf = o.key("content");
                buf.push('[');
                let mut c = Obj::new(buf);
                c.str("type", "tool_use")
                    .str("id", id)
                    .str("name", name)
                    .raw("input", args);
                c.end();
                o.push(']');
            }
            Msg::ToolResult(id, t) => {
                o.str("role", "user");
                let buf = o.key("content");
                buf.push('[');
                let mut c = Obj::new(buf);
                c.str("type", "tool_result")
                    .str("tool_use_id", id)
                    .str("content", t);
                c.end();
                o.push(']');
            }
        }
        o.end();
    }
    out.push(']');
}

/// A body member's value: small ones rendered up front, large ones written
/// straight into the output when their turn in the key order comes.
#[derive(Debug)]
enum Val {
    Small(String),
    Messages,
    Input,
    System,
    Tools,
    Prompt(String),
}

/// Renders the body of `spec` for `endpoint` as `client` would, into `out`.
pub(crate) fn body(client: &Client, endpoint: Endpoint, spec: &Spec<'_>, out: &mut String) {
    let mut members: Vec<(&'static str, Val)> = Vec::with_capacity(12);
    match endpoint {
        Endpoint::Chat => members.push(("messages", Val::Messages)),
        Endpoint::Completions => {
            let mut prompt = String::new();
            if let Some(s) = spec.system {
                prompt.push_str(s);
                prompt.push_str("\n\n");
            }
            for m in &spec.messages {
                if let Msg::User(t) | Msg::Assistant(t) = m {
                    prompt.push_str(t);
                    prompt.push_str("\n\n");
                }
            }
            prompt.truncate(prompt.trim_end().len());
            members.push(("prompt", Val::Prompt(prompt)));
        }
        Endpoint::Responses => {
            if spec.system.is_some() {
                members.push(("instructions", Val::System));
            }
            members.push(("input", Val::Input));
        }
        Endpoint::Messages => {
            members.push(("messages", Val::Messages));
            if spec.system.is_some() {
                members.push(("system", Val::System));
            }
        }
    }
    let mut model = String::new();
    json::string(&mut model, spec.model);
    members.push(("model", Val::Small(model)));
    if let Some(m) = spec.max_tokens {
        let name = match endpoint {
            Endpoint::Responses => "max_output_tokens",
            Endpoint::Chat if client.alphabetical() && spec.reasoning_effort.is_some() => {
                "max_completion_tokens"
            }
            _ => "max_tokens",
        };
        members.push((name, Val::Small(m.to_string())));
    } else if endpoint == Endpoint::Messages {
        members.push(("max_tokens", Val::Small("4096".to_owned())));
    }
    if let Some(n) = spec.n {
        members.push(("n", Val::Small(n.to_string())));
    }
    if let Some(t) = spec.temperature {
        members.push(("temperature", Val::Small(num_f32(t))));
    }
    if let Some(p) = spec.top_p {
        members.push(("top_p", Val::Small(num_f32(p))));
    }
    if let Some(s) = spec.stream {
        members.push(("stream", Val::Small(s.to_string())));
    }
    if let Some(e) = spec.reasoning_effort {
        match endpoint {
            Endpoint::Responses => {
                members.push(("reasoning", Val::Small(format!("{{\"effort\":\"{e}\"}}"))))
            }
            Endpoint::Messages => {}
            _ => members.push(("reasoning_effort", Val::Small(format!("\"{e}\"")))),
        }
    }
    if let (Some(b), Endpoint::Messages) = (spec.thinking_budget, endpoint) {
        members.push((
            "thinking",
            Val::Small(format!("{{\"type\":\"enabled\",\"budget_tokens\":{b}}}")),
        ));
    }
    if spec.tools.is_some() {
        members.push(("tools", Val::Tools));
    }
    match client.key_order(endpoint) {
        // The SDKs' signature order: OpenAI's starts with `messages`/`input`
        // and `model`, then the optional parameters alphabetically; Anthropic's
        // is alphabetical throughout.
        None => {
            let lead = |k: &str| match (endpoint, k) {
                (Endpoint::Messages, _) => 2,
                (_, "messages" | "input" | "prompt") => 0,
                (_, "model") => 1,
                _ => 2,
            };
            members.sort_by(|a, b| (lead(a.0), a.0).cmp(&(lead(b.0), b.0)))
        }
        Some(order) => {
            members.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(usize::MAX))
        }
    }
    let mut o = Obj::new(out);
    for (k, v) in &members {
        let out = o.key(k);
        match v {
            Val::Small(s) => out.push_str(s),
            Val::Prompt(p) => json::string(out, p),
            Val::System => push_text(out, spec.system.unwrap_or(""), spec.system_json),
            Val::Tools => out.push_str(spec.tools.unwrap_or("[]")),
            Val::Messages if endpoint == Endpoint::Messages => anthropic_messages(spec, out),
            Val::Messages => openai_messages(spec, out),
            Val::Input => match spec.messages.as_slice() {
                [Msg::User(t)] => json::string(out, t),
                _ => {
                    let plain = Spec {
                        system: None,
                        system_json: None,
                        messages: spec.messages.clone(),
                        ..Spec::default()
                    };
                    openai_messages(&plain, out);
                }
            },
        }
    }
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn headers(client: &Client, key: &str, len: usize) -> Vec<(String, String)> {
        let mut s = String::new();
        client.headers(key, len, &mut s);
        serde_json::from_str(&s).expect("a JSON array of pairs")
    }

    fn names(h: &[(String, String)]) -> Vec<&str> {
        h.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn client(kind: ClientKind, seed: u64) -> Client {
        Client::random(&mut ChaCha8Rng::seed_from_u64(seed), kind)
    }

    #[test]
    fn openai_python_sends_httpx_then_stainless_headers() {
        let c = client(ClientKind::OpenAiPython, 1);
        let h = headers(&c, "sk-1", 42);
        let n = names(&h);
        assert_eq!(
            &n[..6],
            [
                "host",
                "accept-encoding",
                "connection",
                "accept",
                "content-type",
                "user-agent"
            ]
        );
        assert_eq!(h[5].1, format!("OpenAI/Python {}", c.version));
        let lang = n
            .iter()
            .position(|x| *x == "x-stainless-lang")
            .expect("lang");
        let auth = n.iter().position(|x| *x == "authorization").expect("auth");
        assert!(lang < auth);
        assert_eq!(h[auth].1, "Bearer sk-1");
        assert_eq!(
            h.last().map(|(n, v)| (n.as_str(), v.as_str())),
            Some(("content-length", "42"))
        );
        assert!(!n.contains(&"anthropic-version"));
    }

    #[test]
    fn anthropic_clients_send_version_and_api_key() {
        for kind in [ClientKind::AnthropicPython, ClientKind::AnthropicNode] {
            let c = client(kind, 2);
            let h = headers(&c, "sk-ant-1", 7);
            let get = |name: &str| h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            assert_eq!(get("anthropic-version"), Some("2023-06-01"));
            assert_eq!(get("x-api-key"), Some("sk-ant-1"));
            assert!(get("authorization").is_none());
            assert!(get("user-agent").is_some_and(|u| u.starts_with("Anthropic/")));
            assert_eq!(c.dialect, Dialect::Anthropic);
        }
    }

    #[test]
    fn node_curl_gateway_and_browser_orders_differ() {
        let node = names(&headers(&client(ClientKind::OpenAiNode, 3), "k", 1))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert_eq!(node[0], "accept");
        assert_eq!(node.last().map(String::as_str), Some("connection"));
        let curl = headers(&client(ClientKind::Curl, 4), "k", 1);
        assert_eq!(names(&curl)[..3], ["host", "user-agent", "accept"]);
        assert!(curl[1].1.starts_with("curl/"));
        assert_eq!(curl[2].1, "*/*");
        let gw = headers(&client(ClientKind::Gateway, 5), "k", 1);
        assert_eq!(gw[1].1, "Go-http-client/1.1");
        let browser = headers(&client(ClientKind::Browser, 6), "k", 1);
        assert!(browser.iter().any(|(n, _)| n == "origin"));
        assert!(browser.iter().any(|(n, _)| n == "accept-language"));
    }

    #[test]
    fn relays_send_their_own_headers() {
        let node = headers(&client(ClientKind::NodeRelay, 9), "sk-1", 10);
        let get = |h: &[(String, String)], n: &str| {
            h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&node, "user-agent").as_deref(), Some("node"));
        assert_eq!(get(&node, "sec-fetch-mode").as_deref(), Some("cors"));
        assert_eq!(get(&node, "authorization").as_deref(), Some("Bearer sk-1"));
        let py = client(ClientKind::PyRelay, 10);
        assert_eq!(py.dialect, Dialect::Anthropic);
        let h = headers(&py, "sk-ant-1", 10);
        let ua = get(&h, "user-agent").expect("ua");
        assert!(
            ua.starts_with("Python/3.") && ua.contains(" aiohttp/"),
            "{ua}"
        );
        assert_eq!(get(&h, "x-api-key").as_deref(), Some("sk-ant-1"));
        assert!(get(&h, "authorization").is_none());
    }

    #[test]
    fn spoofing_slip_shows_in_the_package_version() {
        let mut c = client(ClientKind::OpenAiPython, 7);
        c.mismatched = true;
        let h = headers(&c, "k", 1);
        let get = |name: &str| h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let ua = get("user-agent").expect("ua");
        let pkg = get("x-stainless-package-version").expect("pkg");
        assert!(!ua.ends_with(&pkg), "{ua} vs {pkg}");
    }

    #[test]
    fn bodies_are_valid_json_in_every_dialect() {
        let spec = Spec {
            model: "m",
            system: Some("sys \"quoted\""),
            messages: vec![
                Msg::User("hi\nthere".into()),
                Msg::ToolCall("call_1".into(), "read_file", r#"{"path":"a.py"}"#.into()),
                Msg::ToolResult("call_1".into(), "print(1)".into()),
            ],
            max_tokens: Some(100),
            temperature: Some(0.7),
            stream: Some(true),
            reasoning_effort: Some("high"),
            thinking_budget: Some(50),
            tools: Some("[]"),
            ..Spec::default()
        };
        for kind in [
            ClientKind::OpenAiPython,
            ClientKind::OpenAiNode,
            ClientKind::AnthropicPython,
            ClientKind::Gateway,
            ClientKind::Curl,
        ] {
            let c = client(kind, 8);
            for endpoint in [
                Endpoint::Chat,
                Endpoint::Responses,
                Endpoint::Completions,
                Endpoint::Messages,
            ] {
                let mut s = String::new();
                body(&c, endpoint, &spec, &mut s);
                let v: serde_json::Value = serde_json::from_str(&s).expect("valid body");
                assert_eq!(v["model"], "m");
                if endpoint == Endpoint::Messages {
                    assert_eq!(v["system"], "sys \"quoted\"");
                    assert_eq!(v["thinking"]["budget_tokens"], 50);
                    assert_eq!(v["messages"][1]["content"][0]["type"], "tool_use");
                }
                if endpoint == Endpoint::Chat {
                    assert_eq!(v["messages"][0]["role"], "system");
                    assert_eq!(
                        v["messages"][2]["tool_calls"][0]["function"]["name"],
                        "read_file"
                    );
                    assert_eq!(v["temperature"], 0.7);
                }
                if endpoint == Endpoint::Responses {
                    assert_eq!(v["max_output_tokens"], 100);
                    assert_eq!(v["reasoning"]["effort"], "high");
                }
            }
        }
    }
}

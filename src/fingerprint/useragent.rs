//! User-agent parsing: the software family and version behind a request.
//!
//! Only what identifies *software* is kept — a family name such as
//! `openai-python`, `curl` or `chrome`, and its version (browsers: the major
//! version only, since the rest changes weekly) — never the raw header.

use serde::{Deserialize, Serialize};

/// What kind of software a user-agent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// An official OpenAI or Anthropic SDK (these also send `x-stainless-*`).
    OfficialSdk,
    /// A command-line HTTP tool: curl, wget, HTTPie.
    CommandLine,
    /// A general-purpose HTTP library: python-requests, httpx, aiohttp, axios,
    /// node-fetch, Go's net/http, okhttp, …
    HttpLibrary,
    /// A web browser.
    Browser,
    /// Anything else (agents, apps, unknown tools).
    Other,
}

/// A parsed `User-Agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAgent {
    /// The software family, lowercase: `openai-python`, `openai-node`,
    /// `anthropic-python`, `anthropic-node`, `curl`, `python-requests`, `chrome`, …
    /// For unknown software, the first product name, lowercased and trimmed to 32
    /// characters.
    pub family: String,
    /// The version as sent (browsers: major only), at most 24 characters.
    pub version: Option<String>,
    /// The kind of software.
    pub kind: ClientKind,
    /// The SDK's asynchronous client (`AsyncOpenAI/Python`, `AsyncAnthropic/Python`).
    pub async_client: bool,
}

impl UserAgent {
    /// The `x-stainless-lang` an official SDK of this family sends, if it is one.
    pub fn sdk_lang(&self) -> Option<&'static str> {
        if self.kind != ClientKind::OfficialSdk {
            return None;
        }
        if self.family.ends_with("-python") {
            Some("python")
        } else if self.family.ends_with("-node") {
            Some("js")
        } else if self.family.ends_with("-go") {
            Some("go")
        } else if self.family.ends_with("-java") || self.family.ends_with("-kotlin") {
            Some("java")
        } else {
            None
        }
    }

    /// True for an official SDK of Anthropic.
    pub fn is_anthropic_sdk(&self) -> bool {
        self.kind == ClientKind::OfficialSdk && self.family.starts_with("anthropic-")
    }
}

const COMMAND_LINE: &[&str] = &["curl", "wget", "httpie"];
const HTTP_LIBRARIES: &[&str] = &[
    "python-requests",
    "python-httpx",
    "python-urllib",
    "python-urllib3",
    "aiohttp",
    "axios",
    "node-fetch",
    "node",
    "undici",
    "got",
    "go-http-client",
    "okhttp",
    "java-http-client",
    "apache-httpclient",
    "guzzlehttp",
    "ruby",
    "faraday",
    "rest-client",
    "reqwest",
    "postmanruntime",
    "insomnia",
    "dart",
    "libwww-perl",
];

/// Keeps `[A-Za-z0-9._+-]`, at most `max` characters.
fn clean(s: &str, max: usize, lower: bool) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        .take(max)
        .map(|c| if lower { c.to_ascii_lowercase() } else { c })
        .collect()
}

fn version_of(s: &str) -> Option<String> {
    let v = clean(s, 24, false);
    (!v.is_empty()).then_some(v)
}

/// Parses a user-agent. Never fails: unknown text gives its first product name.
pub fn parse(ua: &str) -> Option<UserAgent> {
    let ua = ua.trim();
    if ua.is_empty() {
        return None;
    }
    let mut words = ua.split_whitespace();
    let first = words.next().unwrap_or("");
    // Official SDKs: `OpenAI/Python 1.54.3`, `AsyncAnthropic/Python 0.39.0`,
    // `OpenAI/JS 4.73.0`, `Anthropic/JS 0.32.1`, `OpenAI/Go 1.1.0`.
    if let Some((vendor, lang)) = first.split_once('/') {
        let (async_client, bare) = match vendor.strip_prefix("Async") {
            Some(rest) => (true, rest),
            None => (false, vendor),
        };
        if bare.eq_ignore_ascii_case("openai") || bare.eq_ignore_ascii_case("anthropic") {
            let lang = clean(lang, 16, true);
            if !lang.is_empty() && !lang.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                let lang = if lang == "js" {
                    "node".to_owned()
                } else {
                    lang
                };
                return Some(UserAgent {
                    family: format!("{}-{}", bare.to_ascii_lowercase(), lang),
                    version: words.next().and_then(version_of),
                    kind: ClientKind::OfficialSdk,
                    async_client,
                });
            }
        }
    }
    if ua.starts_with("Mozilla/") {
        if let Some(b) = browser(ua) {
            return Some(b);
        }
    }
    // `Python/3.11 aiohttp/3.9.1`: aiohttp names itself second.
    if let Some(tok) = ua
        .split_whitespace()
        .find(|t| t.len() > 8 && t.as_bytes()[..8].eq_ignore_ascii_case(b"aiohttp/"))
    {
        return Some(UserAgent {
            family: "aiohttp".into(),
            version: version_of(&tok[8..]),
            kind: ClientKind::HttpLibrary,
            async_client: false,
        });
    }
    let (name, version) = match first.split_once('/') {
        Some((n, v)) => (n, version_of(v)),
        None => (first, None),
    };
    let family = clean(name, 32, true);
    if family.is_empty() {
        return Some(UserAgent {
            family: "unknown".into(),
            version: None,
            kind: ClientKind::Other,
            async_client: false,
        });
    }
    let kind = if COMMAND_LINE.contains(&family.as_str()) {
        ClientKind::CommandLine
    } else if HTTP_LIBRARIES.contains(&family.as_str()) {
        ClientKind::HttpLibrary
    } else {
        ClientKind::Other
    };
    Some(UserAgent {
        family,
        version,
        kind,
        async_client: false,
    })
}

fn browser(ua: &str) -> Option<UserAgent> {
    let find = |prefix: &str| {
        ua.split_whitespace()
            .find_map(|t| t.strip_prefix(prefix))
            .map(|v| v.split('.').next().unwrap_or(v))
            .and_then(version_of)
    };
    let (family, version) = if let Some(v) = find("Edg/") {
        ("edge", Some(v))
    } else if let Some(v) = find("OPR/") {
        ("opera", Some(v))
    } else if let Some(v) = find("Firefox/") {
        ("firefox", Some(v))
    } else if let Some(v) = find("Chrome/") {
        ("chrome", Some(v))
    } else if ua.contains("Safari/") {
        ("safari", find("Version/"))
    } else {
        return None;
    };
    Some(UserAgent {
        family: family.into(),
        version,
        kind: ClientKind::Browser,
        async_client: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(ua: &str) -> (String, Option<String>, ClientKind) {
        let p = parse(ua).expect("parsed");
        (p.family, p.version, p.kind)
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn official_sdks() {
        assert_eq!(
            fv("OpenAI/Python 1.54.3"),
            (
                s("openai-python"),
                Some(s("1.54.3")),
                ClientKind::OfficialSdk
            )
        );
        let a = parse("AsyncOpenAI/Python 1.40.0").expect("parsed");
        assert_eq!((a.family.as_str(), a.async_client), ("openai-python", true));
        assert_eq!(
            fv("OpenAI/JS 4.73.0"),
            (s("openai-node"), Some(s("4.73.0")), ClientKind::OfficialSdk)
        );
        assert_eq!(
            fv("Anthropic/Python 0.39.0"),
            (
                s("anthropic-python"),
                Some(s("0.39.0")),
                ClientKind::OfficialSdk
            )
        );
        assert_eq!(
            fv("Anthropic/JS 0.32.1"),
            (
                s("anthropic-node"),
                Some(s("0.32.1")),
                ClientKind::OfficialSdk
            )
        );
        assert_eq!(
            parse("Anthropic/JS 0.32.1").and_then(|u| u.sdk_lang()),
            Some("js")
        );
        assert_eq!(
            parse("OpenAI/Python 1.5").and_then(|u| u.sdk_lang()),
            Some("python")
        );
        // A product called OpenAI with a numeric version is not the SDK.
        assert_eq!(fv("OpenAI/1.0").2, ClientKind::Other);
    }

    #[test]
    fn tools_libraries_and_browsers() {
        assert_eq!(
            fv("curl/8.5.0"),
            (s("curl"), Some(s("8.5.0")), ClientKind::CommandLine)
        );
        assert_eq!(
            fv("python-requests/2.31.0"),
            (
                s("python-requests"),
                Some(s("2.31.0")),
                ClientKind::HttpLibrary
            )
        );
        assert_eq!(
            fv("Python/3.11 aiohttp/3.9.1"),
            (s("aiohttp"), Some(s("3.9.1")), ClientKind::HttpLibrary)
        );
        assert_eq!(fv("axios/1.6.7").0, "axios");
        assert_eq!(
            fv("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)").0,
            "node-fetch"
        );
        assert_eq!(fv("node").2, ClientKind::HttpLibrary);
        assert_eq!(
            fv("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.130 Safari/537.36"),
            (s("chrome"), Some(s("120")), ClientKind::Browser)
        );
        assert_eq!(
            fv("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91").0,
            "edge"
        );
        assert_eq!(
            fv("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
            (s("firefox"), Some(s("121")), ClientKind::Browser)
        );
        assert_eq!(
            fv("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"),
            (s("safari"), Some(s("17")), ClientKind::Browser)
        );
        assert_eq!(fv("claude-cli/1.0.58 (external, cli)").0, "claude-cli");
    }

    #[test]
    fn junk_is_bounded() {
        assert!(parse("   ").is_none());
        assert_eq!(fv("///").0, "unknown");
        let long = format!("{}/{}", "x".repeat(5000), "9".repeat(5000));
        let p = parse(&long).expect("parsed");
        assert!(p.family.len() <= 32 && p.version.map_or(0, |v| v.len()) <= 24);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(ua in ".{0,200}") {
            if let Some(p) = parse(&ua) {
                proptest::prop_assert!(p.family.len() <= 32);
            }
        }
    }
}

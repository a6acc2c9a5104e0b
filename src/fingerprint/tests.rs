//! Whole-fingerprint tests: real SDK header sets, the spoofing model, template
//! similarity, and hostile bodies.

use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;

use super::*;
use crate::config::Config;
use crate::features::Family;
use crate::request::RequestInfo;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    h
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip"))
}

fn chat(user: &str) -> RequestInfo {
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": user}
    ], "temperature": 0.7});
    RequestInfo::parse("/v1/chat/completions", Bytes::from(body.to_string()))
}

fn settings(toml_extra: &str) -> FingerprintSettings {
    let cfg = Config::from_toml_str(&format!("[identity]\nsecret = \"s\"\n{toml_extra}"))
        .expect("config");
    FingerprintSettings::from_config(&cfg).expect("settings")
}

fn fp_of(h: &HeaderMap, info: &RequestInfo) -> Fingerprint {
    Fingerprint::compute(h, ip("203.0.113.7"), info, &FingerprintSettings::default())
}

// --- Template similarity ---------------------------------------------------

const PAYLOADS: &[&str] = &[
    "A farmer has a rectangular field whose length is three times its width. He walks around the whole field once and then along one diagonal, covering a total distance that he measures with a wheel. Find the width of the field and explain whether the diagonal walk could ever be shorter than half of the perimeter.",
    "Consider all the ways of seating guests around a round table so that no two people who arrived together sit next to each other. Count the arrangements when couples arrive together and describe how the count changes if one couple refuses to sit opposite each other.",
    "Let f be a function from the positive integers to the positive integers such that f of f of n equals twice n for every n. Determine every possible value of f at small inputs and prove that the function cannot be strictly decreasing anywhere.",
    "A bag holds red marbles and blue marbles. Drawing without replacement, the chance that the first two marbles share a colour equals the chance that they differ. Characterise the bag sizes for which this happens and give the smallest nontrivial example with a short argument.",
];

fn templated(payload: &str) -> String {
    format!(
        "You are a world-class competition mathematician. Read the problem below carefully and solve it completely.\n\nProblem:\n{payload}\n\nThink step by step, show your full reasoning, check every case, and finally put the final answer alone inside \\boxed{{}} at the end."
    )
}

const UNRELATED: &[&str] = &[
    "Can you help me write a short, friendly email to my landlord asking whether the broken heater in the living room could be repaired before the weekend, since the nights are getting cold?",
    "What are some good vegetarian dinner ideas for a family with two picky kids who refuse to eat anything green but love pasta, cheese and crunchy things?",
    "Summarise the main causes of the French Revolution for a high school history class, focusing on economic hardship, the role of the Enlightenment and the financial crisis of the monarchy.",
    "I am planning a three day hiking trip in the mountains in late autumn. What should I pack, how should I plan water and food, and what are the main safety risks to prepare for?",
];

fn template_of(text: &str, cfg: &FingerprintSettings) -> TemplateFingerprint {
    let h = HeaderMap::new();
    Fingerprint::compute(&h, None, &chat(text), cfg)
        .template
        .expect("template")
}

/// Jaccard similarity of the full masked token 3-shingle sets (exact).
fn whole_jaccard(a: &str, b: &str) -> f64 {
    use std::collections::HashSet;
    let shingles = |s: &str| -> HashSet<Vec<u64>> {
        let mut t = Vec::new();
        text::tokenize(&text::nfkc(s), &mut t, usize::MAX);
        t.windows(3).map(<[u64]>::to_vec).collect()
    };
    let (x, y) = (shingles(a), shingles(b));
    x.intersection(&y).count() as f64 / x.union(&y).count() as f64
}

#[test]
fn one_template_with_different_payloads_shares_head_and_tail_bands() {
    let cfg = FingerprintSettings::default();
    let tpl: Vec<TemplateFingerprint> = PAYLOADS
        .iter()
        .map(|p| template_of(&templated(p), &cfg))
        .collect();
    let other: Vec<TemplateFingerprint> = UNRELATED.iter().map(|p| template_of(p, &cfg)).collect();
    let mut min_head = usize::MAX;
    let mut min_tail = usize::MAX;
    for i in 0..tpl.len() {
        for j in i + 1..tpl.len() {
            let (a, b) = (&tpl[i], &tpl[j]);
            let (ah, bh) = (
                a.head.as_ref().expect("head"),
                b.head.as_ref().expect("head"),
            );
            let (at, bt) = (
                a.tail.as_ref().expect("tail"),
                b.tail.as_ref().expect("tail"),
            );
            let whole = whole_jaccard(&templated(PAYLOADS[i]), &templated(PAYLOADS[j]));
            eprintln!(
                "template pair {i},{j}: whole-prompt Jaccard {whole:.2}; head J~{:.2} simhash d={} bands {}; tail J~{:.2} d={} bands {}",
                ah.jaccard(bh), ah.simhash_distance(bh), ah.shared_bands(bh),
                at.jaccard(bt), at.simhash_distance(bt), at.shared_bands(bt),
            );
            assert!(whole < 0.5, "payload dominates the whole prompt: {whole}");
            min_head = min_head.min(ah.shared_bands(bh));
            min_tail = min_tail.min(at.shared_bands(bt));
        }
    }
    assert!(min_head >= 1, "every template pair shares a head band");
    assert!(min_tail >= 1, "every template pair shares a tail band");
    let mut max_unrelated = 0;
    for (i, a) in tpl.iter().chain(&other).enumerate() {
        for (j, b) in other.iter().enumerate() {
            if i == tpl.len() + j {
                continue;
            }
            let (ah, bh) = (
                a.head.as_ref().expect("head"),
                b.head.as_ref().expect("head"),
            );
            let (at, bt) = (
                a.tail.as_ref().expect("tail"),
                b.tail.as_ref().expect("tail"),
            );
            let shared = ah.shared_bands(bh) + at.shared_bands(bt);
            if i >= tpl.len() || j == 0 {
                eprintln!(
                    "unrelated pair {i},{j}: head J~{:.2} d={}; tail J~{:.2} d={}; bands {shared}",
                    ah.jaccard(bh),
                    ah.simhash_distance(bh),
                    at.jaccard(bt),
                    at.simhash_distance(bt)
                );
            }
            max_unrelated = max_unrelated.max(shared);
        }
    }
    assert_eq!(max_unrelated, 0, "unrelated prompts share no band");
}

#[test]
fn a_template_with_a_masked_payload_matches_exactly_at_both_ends() {
    let cfg = FingerprintSettings::default();
    let a = template_of("Translate the following text into French, keeping the tone: \"Good morning, how did you sleep?\" Reply with the translation only.", &cfg);
    let b = template_of("Translate the following text into French, keeping the tone: \"The quarterly report is due on Friday at 5 pm, please review section 4.\" Reply with the translation only.", &cfg);
    let (ah, bh) = (a.head.expect("head"), b.head.expect("head"));
    assert_eq!(ah, bh);
    assert_eq!(a.tail, b.tail);
}

// --- Real client header sets -------------------------------------------------

const OPENAI_PYTHON: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "keep-alive"),
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("user-agent", "OpenAI/Python 1.54.3"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "1.54.3"),
    ("x-stainless-os", "MacOS"),
    ("x-stainless-arch", "arm64"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.12.4"),
    ("authorization", "Bearer sk-test-python"),
    ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"),
    ("content-length", "120"),
];

const OPENAI_NODE: &[(&str, &str)] = &[
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("user-agent", "OpenAI/JS 4.73.0"),
    ("x-stainless-lang", "js"),
    ("x-stainless-package-version", "4.73.0"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "node"),
    ("x-stainless-runtime-version", "v20.11.1"),
    ("authorization", "Bearer sk-test-node"),
    ("x-stainless-retry-count", "0"),
    ("content-length", "120"),
    ("accept-encoding", "gzip,deflate"),
    ("connection", "keep-alive"),
    ("host", "api.example.com"),
];

const ANTHROPIC_PYTHON: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "keep-alive"),
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
    ("user-agent", "Anthropic/Python 0.39.0"),
    ("x-api-key", "sk-ant-test"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-lang", "python"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-package-version", "0.39.0"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.11.9"),
    ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"),
    ("content-length", "98"),
];

const ANTHROPIC_NODE: &[(&str, &str)] = &[
    ("accept", "application/json"),
    ("anthropic-version", "2023-06-01"),
    ("content-type", "application/json"),
    ("user-agent", "Anthropic/JS 0.32.1"),
    ("x-api-key", "sk-ant-test"),
    ("x-stainless-arch", "arm64"),
    ("x-stainless-lang", "js"),
    ("x-stainless-os", "MacOS"),
    ("x-stainless-package-version", "0.32.1"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-runtime", "node"),
    ("x-stainless-runtime-version", "v22.3.0"),
    ("content-length", "98"),
    ("accept-encoding", "gzip,deflate"),
    ("connection", "keep-alive"),
    ("host", "api.example.com"),
];

const CURL: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("user-agent", "curl/8.5.0"),
    ("accept", "*/*"),
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-test-curl"),
    ("content-length", "80"),
];

const REQUESTS: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("user-agent", "python-requests/2.31.0"),
    ("accept-encoding", "gzip, deflate"),
    ("accept", "*/*"),
    ("connection", "keep-alive"),
    ("authorization", "Bearer sk-test-script"),
    ("content-type", "application/json"),
    ("content-length", "80"),
];

#[test]
fn official_sdks_tools_and_scripts_are_told_apart() {
    let info = chat("hello");
    let sets = [
        (
            OPENAI_PYTHON,
            "openai-python",
            "1.54.3",
            ClientKind::OfficialSdk,
        ),
        (
            OPENAI_NODE,
            "openai-node",
            "4.73.0",
            ClientKind::OfficialSdk,
        ),
        (
            ANTHROPIC_PYTHON,
            "anthropic-python",
            "0.39.0",
            ClientKind::OfficialSdk,
        ),
        (
            ANTHROPIC_NODE,
            "anthropic-node",
            "0.32.1",
            ClientKind::OfficialSdk,
        ),
        (CURL, "curl", "8.5.0", ClientKind::CommandLine),
        (
            REQUESTS,
            "python-requests",
            "2.31.0",
            ClientKind::HttpLibrary,
        ),
    ];
    let mut orders = Vec::new();
    for (set, family, version, kind) in sets {
        let fp = fp_of(&headers(set), &info);
        let ua = fp.client.user_agent.as_ref().expect("user agent");
        assert_eq!(
            (ua.family.as_str(), ua.version.as_deref(), ua.kind),
            (family, Some(version), kind)
        );
        assert!(
            !fp.inconsistent(),
            "{family}: {:?}",
            fp.client.inconsistencies
        );
        match kind {
            ClientKind::OfficialSdk => {
                let st = fp.client.stainless.as_ref().expect("stainless");
                let lang = if family.ends_with("python") {
                    "python"
                } else {
                    "js"
                };
                assert_eq!(st.lang.as_deref(), Some(lang));
                assert_eq!(st.package_version.as_deref(), Some(version));
            }
            _ => assert!(fp.client.stainless.is_none()),
        }
        assert_eq!(
            fp.client.anthropic_version.is_some(),
            family.starts_with("anthropic")
        );
        orders.push(fp.client.header_order);
    }
    let mut unique = orders.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        orders.len(),
        "every client has its own header order"
    );
    let py = fp_of(&headers(OPENAI_PYTHON), &info);
    let st = py.client.stainless.as_ref().expect("stainless");
    assert_eq!(
        (
            st.os.as_deref(),
            st.arch.as_deref(),
            st.runtime.as_deref(),
            st.async_mode.as_deref()
        ),
        (Some("MacOS"), Some("arm64"), Some("CPython"), Some("false"))
    );
}

#[test]
fn volatile_headers_do_not_change_the_client_fingerprint() {
    let info = chat("hello");
    let base = fp_of(&headers(OPENAI_PYTHON), &info);
    // Another key, length, retry count, a trace header and a request id.
    let mut other: Vec<(&str, &str)> = OPENAI_PYTHON
        .iter()
        .map(|&(k, v)| match k {
            "authorization" => (k, "Bearer sk-someone-else"),
            "content-length" => (k, "4711"),
            "x-stainless-retry-count" => (k, "2"),
            _ => (k, v),
        })
        .collect();
    other.insert(
        3,
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    );
    other.push(("x-request-id", "abc"));
    other.push(("x-forwarded-for", "198.51.100.1"));
    let again = fp_of(&headers(&other), &info);
    assert_eq!(base.client, again.client);
    // A real difference in order is seen.
    let mut swapped = OPENAI_PYTHON.to_vec();
    swapped.swap(3, 4);
    assert_ne!(
        fp_of(&headers(&swapped), &info).client.header_order,
        base.client.header_order
    );
}

#[test]
fn repeated_header_names_count_once_at_their_first_position() {
    // HeaderMap groups values of one name at its first insertion.
    let a = headers(&[("accept", "a"), ("user-agent", "x"), ("accept", "b")]);
    let b = headers(&[("accept", "a"), ("accept", "b"), ("user-agent", "x")]);
    let names: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["accept", "accept", "user-agent"]);
    let info = chat("x");
    assert_eq!(
        fp_of(&a, &info).client.header_order,
        fp_of(&b, &info).client.header_order
    );
}

fn with(
    base: &[(&'static str, &'static str)],
    edits: &[(&'static str, Option<&'static str>)],
) -> HeaderMap {
    let mut v: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !edits.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    for (k, val) in edits {
        if let Some(val) = val {
            v.push((k, val));
        }
    }
    headers(&v)
}

#[test]
fn inconsistencies_are_flagged() {
    use Inconsistency::*;
    let info = chat("x");
    let flags = |h: HeaderMap| fp_of(&h, &info).client.inconsistencies;
    let no_stainless: Vec<(&str, &str)> = OPENAI_PYTHON
        .iter()
        .filter(|(k, _)| !k.starts_with("x-stainless-"))
        .copied()
        .collect();
    assert_eq!(flags(headers(&no_stainless)), vec![SdkWithoutStainless]);
    assert_eq!(
        flags(with(OPENAI_PYTHON, &[("x-stainless-lang", Some("js"))])),
        vec![StainlessLangMismatch, StainlessRuntimeMismatch]
    );
    assert_eq!(
        flags(with(OPENAI_PYTHON, &[("x-stainless-lang", None)])),
        vec![StainlessLangMismatch]
    );
    assert_eq!(
        flags(with(
            OPENAI_PYTHON,
            &[("x-stainless-package-version", Some("1.12.0"))]
        )),
        vec![StainlessVersionMismatch]
    );
    assert_eq!(
        flags(with(OPENAI_PYTHON, &[("user-agent", Some("curl/8.5.0"))])),
        vec![StainlessWithNonSdkAgent]
    );
    assert_eq!(
        flags(with(
            OPENAI_NODE,
            &[("user-agent", Some("python-requests/2.31.0"))]
        )),
        vec![StainlessWithNonSdkAgent]
    );
    assert_eq!(
        flags(with(ANTHROPIC_PYTHON, &[("anthropic-version", None)])),
        vec![AnthropicSdkWithoutVersion]
    );
    assert_eq!(
        flags(with(
            OPENAI_NODE,
            &[("x-stainless-runtime", Some("CPython"))]
        )),
        vec![StainlessRuntimeMismatch]
    );
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    assert_eq!(
        flags(with(OPENAI_NODE, &[("user-agent", Some(chrome))])),
        vec![StainlessWithNonSdkAgent]
    );
    // The SDK in a browser cannot set User-Agent and says so in its runtime.
    assert!(flags(with(
        OPENAI_NODE,
        &[
            ("user-agent", Some(chrome)),
            ("x-stainless-runtime", Some("browser:chrome"))
        ]
    ))
    .is_empty());
    // Agents built on an SDK keep its headers under their own user-agent.
    assert!(flags(with(
        ANTHROPIC_NODE,
        &[("user-agent", Some("claude-cli/1.0.58 (external, cli)"))]
    ))
    .is_empty());
    assert!(flags(headers(&[])).is_empty());
}

// --- Network and the spoofing model --------------------------------------------

#[test]
fn ipv6_prefixes_are_48_bits() {
    let cfg = FingerprintSettings::default();
    let info = chat("x");
    let h = HeaderMap::new();
    let p = |a: &str| Fingerprint::compute(&h, ip(a), &info, &cfg).network;
    let a = p("2001:db8:abcd:1::1");
    assert!(a.ipv6);
    assert_eq!(a.prefix, p("2001:db8:abcd:ffff::2").prefix);
    assert_ne!(a.prefix, p("2001:db8:abce::1").prefix);
    assert_eq!(p("203.0.113.7").prefix, p("203.0.113.200").prefix);
    assert_ne!(p("203.0.113.7").prefix, p("203.0.114.7").prefix);
    assert_eq!(p("::ffff:203.0.113.9").prefix, p("203.0.113.7").prefix);
    assert!(!p("::ffff:203.0.113.9").ipv6);
    assert_eq!(
        Fingerprint::compute(&h, None, &info, &cfg).network.prefix,
        None
    );
}

#[test]
fn spoofed_headers_from_untrusted_peers_are_ignored() {
    let cfg = settings(
        "[network]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[fingerprint]\ntls_fingerprint_header = \"x-ja4\"\nasn_header = \"x-asn\"\ndatacenter_header = \"x-dc\"\n",
    );
    let info = chat("x");
    let h = headers(&[
        ("user-agent", "curl/8.5.0"),
        ("x-forwarded-for", "198.51.100.23"),
        ("x-ja4", "t13d1516h2_8daaf6152771_02713d6af862"),
        ("x-asn", "AS64500"),
        ("x-dc", "hosting-provider"),
    ]);
    let direct = Fingerprint::compute(&h, ip("203.0.113.7"), &info, &cfg);
    let peer_only = Fingerprint::compute(&HeaderMap::new(), ip("203.0.113.7"), &info, &cfg);
    assert_eq!(direct.network.prefix, peer_only.network.prefix);
    assert!(!direct.network.via_trusted_proxy);
    assert_eq!((direct.client.tls, direct.network.asn), (None, None));
    assert!(!direct.network.is_datacenter());

    let proxied = Fingerprint::compute(&h, ip("10.0.0.5"), &info, &cfg);
    let real = Fingerprint::compute(&HeaderMap::new(), ip("198.51.100.23"), &info, &cfg);
    assert_eq!(proxied.network.prefix, real.network.prefix);
    assert!(proxied.network.via_trusted_proxy);
    assert!(proxied.client.tls.is_some() && proxied.network.asn.is_some());
    assert!(proxied.network.is_datacenter());
    // Proxy-added headers are not part of the client's header order.
    assert_eq!(proxied.client.header_order, direct.client.header_order);
    let fams: Vec<(Family, &str)> = proxied
        .features()
        .iter()
        .map(|f| (f.family(), f.kind.as_str()))
        .collect();
    for want in [
        (Family::Client, "tls"),
        (Family::Network, "asn"),
        (Family::Network, "datacenter"),
    ] {
        assert!(fams.contains(&want), "missing {want:?}");
    }
    assert!(!direct
        .features()
        .iter()
        .any(|f| f.kind.as_str() == "tls" || f.kind.as_str() == "asn"));
    // A "not a datacenter" value is no tag.
    let h = headers(&[("x-dc", "false")]);
    assert!(!Fingerprint::compute(&h, ip("10.0.0.5"), &info, &cfg)
        .network
        .is_datacenter());
}

// --- System prompt -------------------------------------------------------------

fn long_prompt() -> String {
    let words = [
        "You",
        "are",
        "an",
        "interactive",
        "CLI",
        "tool",
        "that",
        "helps",
        "users",
        "with",
        "software",
        "engineering",
        "tasks.",
        "Use",
        "the",
        "instructions",
        "below",
        "and",
        "the",
        "tools",
        "available",
        "to",
        "you",
        "to",
        "assist",
        "the",
        "user.",
    ];
    (0..2000)
        .map(|i| words[(i * 7 + i / 27) % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn one_popular_system_prompt_gives_one_hash_in_both_dialects() {
    let cfg = FingerprintSettings::default();
    let prompt = long_prompt();
    let openai = json!({"model": "m", "messages": [
        {"role": "system", "content": prompt}, {"role": "user", "content": "fix the failing test"}]});
    let anthropic = json!({"model": "m", "max_tokens": 1024,
        "system": [{"type": "text", "text": prompt.replace(' ', "\n  ")}],
        "messages": [{"role": "user", "content": "refactor the parser"}]});
    let responses = json!({"model": "m", "instructions": prompt.to_uppercase(), "input": "hi"});
    let sp = |v: &serde_json::Value, path: &str| {
        let info = RequestInfo::parse(path, Bytes::from(v.to_string()));
        Fingerprint::compute(&HeaderMap::new(), None, &info, &cfg)
            .template
            .expect("template")
    };
    let a = sp(&openai, "/v1/chat/completions");
    let b = sp(&anthropic, "/v1/messages");
    let c = sp(&responses, "/v1/responses");
    assert_eq!(a.system_prompt_words, 2000);
    assert!(a.system_prompt.is_some());
    assert_eq!(a.system_prompt, b.system_prompt);
    assert_eq!(a.system_prompt, c.system_prompt);
    let edited = json!({"model": "m", "messages": [
        {"role": "system", "content": format!("{prompt} Always answer in French.")},
        {"role": "user", "content": "x"}]});
    assert_ne!(
        sp(&edited, "/v1/chat/completions").system_prompt,
        a.system_prompt
    );
}

// --- Bodies of every shape -------------------------------------------------------

#[test]
fn non_json_bodies_still_get_client_and_network_parts() {
    let cfg = FingerprintSettings::default();
    for body in [
        &b"\xff\x00garbage"[..],
        b"[1,2,3]",
        b"",
        b"\"just a string\"",
    ] {
        let info = RequestInfo::parse("/v1/chat/completions", Bytes::copy_from_slice(body));
        let fp = Fingerprint::compute(&headers(OPENAI_PYTHON), ip("203.0.113.7"), &info, &cfg);
        assert!(fp.shape.is_none() && fp.template.is_none());
        let kinds: Vec<&str> = fp.features().iter().map(|f| f.kind.as_str()).collect();
        for want in ["header_order", "user_agent", "stainless", "ip_prefix"] {
            assert!(kinds.contains(&want), "missing {want} in {kinds:?}");
        }
    }
    // An object of an unknown shape has a shape but no prompt.
    let info = RequestInfo::parse(
        "/v1/embeddings",
        Bytes::from_static(br#"{"model":"e","x":{"y":1}}"#),
    );
    let fp = Fingerprint::compute(&HeaderMap::new(), None, &info, &cfg);
    let t = fp.template.expect("template");
    assert!(t.head.is_none() && t.system_prompt.is_none());
    assert_eq!(fp.shape.expect("shape").roles, "");
}

#[test]
fn features_have_stable_kinds_families_and_values() {
    let cfg = FingerprintSettings::default();
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Write a Python function that parses dates."}],
        "tools": [{"type": "function", "function": {"name": "run", "parameters": {}}}]});
    let info = RequestInfo::parse("/v1/chat/completions", Bytes::from(body.to_string()));
    let fp = Fingerprint::compute(&headers(OPENAI_PYTHON), ip("203.0.113.7"), &info, &cfg);
    let f = fp.features();
    let count = |kind: &str| f.iter().filter(|x| x.kind.as_str() == kind).count();
    assert_eq!(count("head_lsh_band"), 8);
    assert_eq!(count("tail_lsh_band"), 8);
    for (kind, family) in [
        ("header_order", Family::Client),
        ("user_agent", Family::Client),
        ("stainless", Family::Client),
        ("ip_prefix", Family::Network),
        ("key_order", Family::Shape),
        ("params", Family::Shape),
        ("tool_schema", Family::Shape),
        ("system_prompt", Family::Template),
    ] {
        let x: Vec<_> = f.iter().filter(|x| x.kind.as_str() == kind).collect();
        assert_eq!(x.len(), 1, "{kind}");
        assert_eq!(x[0].family(), family, "{kind}");
    }
    // Identical requests give identical features; band values differ per band.
    assert_eq!(
        f,
        Fingerprint::compute(&headers(OPENAI_PYTHON), ip("203.0.113.99"), &info, &cfg).features()
    );
    let mut heads: Vec<u64> = f
        .iter()
        .filter(|x| x.kind.as_str() == "head_lsh_band")
        .map(|x| x.value)
        .collect();
    heads.sort_unstable();
    heads.dedup();
    assert_eq!(heads.len(), 8);
    // Serialisable for handlers, logs and replay output.
    let text = serde_json::to_string(&fp).expect("serialise");
    let back: Fingerprint = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(back, fp);
    let t = fp.template.expect("template");
    assert_eq!(t.task, TaskCategory::AgenticTools);
}

#[test]
fn content_signals() {
    let cfg = FingerprintSettings::default();
    let t = |v: serde_json::Value| {
        let info = RequestInfo::parse("/v1/chat/completions", Bytes::from(v.to_string()));
        Fingerprint::compute(&HeaderMap::new(), None, &info, &cfg)
            .template
            .expect("template")
    };
    let cot = t(
        json!({"messages": [{"role": "user", "content": "What is 17 * 23? Think step by step."}]}),
    );
    assert!(cot.cot.phrase && !cot.cot.reasoning_requested);
    let cot = t(
        json!({"messages": [{"role": "system", "content": "Always explain your reasoning in detail."}, {"role": "user", "content": "Is 91 prime?"}]}),
    );
    assert!(cot.cot.phrase);
    let effort =
        t(json!({"reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]}));
    assert!(effort.cot.reasoning_requested && !effort.cot.phrase && effort.cot.any());
    let plain =
        t(json!({"messages": [{"role": "user", "content": "Tell me a joke about penguins."}]}));
    assert!(!plain.cot.any());
    assert_eq!(plain.task, TaskCategory::Other);
    let code = t(
        json!({"messages": [{"role": "user", "content": "Fix the bug in this Python function:\n```python\ndef f(x): return x +\n```"}]}),
    );
    assert_eq!(code.task, TaskCategory::Coding);
    let math = t(
        json!({"messages": [{"role": "user", "content": "Prove that the sum of two odd integers is even, then solve the equation x^2 = 2."}]}),
    );
    assert_eq!(math.task, TaskCategory::MathReasoning);
    let small = t(json!({"messages": [{"role": "user", "content": "hi"}]}));
    let big = t(json!({"messages": [{"role": "user", "content": "word ".repeat(5000)}]}));
    assert!(big.length_bucket > small.length_bucket);
}

#[test]
fn long_turns_are_read_at_both_ends_within_the_cap() {
    let cfg = settings("[fingerprint]\nmax_text_bytes = 4096\n");
    let middle = "filler ".repeat(20_000);
    let text = format!("Begin with this fixed preamble of the template, which is long enough to fill the whole head window. {middle} And end with this fixed closing of the template, which is also long enough to fill the tail window.");
    let other = format!("Begin with this fixed preamble of the template, which is long enough to fill the whole head window. {} And end with this fixed closing of the template, which is also long enough to fill the tail window.", "other ".repeat(30_000));
    let a = template_of(&text, &cfg);
    let b = template_of(&other, &cfg);
    assert_eq!(a.head, b.head);
    assert_eq!(a.tail, b.tail);
    assert!(a.user_tokens <= 4096);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            prop_oneof![
                ".{0,40}",
                Just("user".to_owned()),
                Just("system".to_owned()),
                Just("tool_result".to_owned()),
                Just("```".to_owned()),
                Just("\"".to_owned()),
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            let key = prop_oneof![
                Just("messages".to_owned()),
                Just("role".to_owned()),
                Just("content".to_owned()),
                Just("system".to_owned()),
                Just("input".to_owned()),
                Just("prompt".to_owned()),
                Just("text".to_owned()),
                Just("type".to_owned()),
                Just("tools".to_owned()),
                Just("thinking".to_owned()),
                Just("instructions".to_owned()),
                Just("max_tokens".to_owned()),
                "[a-z_]{1,8}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec((key, inner), 0..6)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), path in "/v1/(messages|chat/completions|responses|completions|x)") {
            let info = RequestInfo::parse(&path, Bytes::from(body));
            let fp = Fingerprint::compute(&headers(OPENAI_PYTHON), ip("203.0.113.7"), &info, &FingerprintSettings::default());
            prop_assert!(!fp.features().is_empty());
        }

        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let body = serde_json::json!({"model": "m", "messages": [v.clone()], "input": v.clone(), "system": v.clone(), "tools": [v.clone()]});
            for value in [v, body] {
                let info = RequestInfo::parse("/v1/chat/completions", Bytes::from(value.to_string()));
                let fp = Fingerprint::compute(&HeaderMap::new(), None, &info, &FingerprintSettings::default());
                let _ = fp.features();
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(pairs in prop::collection::vec(("(user-agent|x-stainless-lang|x-stainless-runtime|x-stainless-package-version|accept|x-[a-z]{1,6})", "[ -~]{0,40}"), 0..12)) {
            let mut h = HeaderMap::new();
            for (k, v) in &pairs {
                if let (Ok(k), Ok(v)) = (http::header::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                    h.append(k, v);
                }
            }
            let fp = Fingerprint::compute(&h, ip("2001:db8::1"), &chat("x"), &FingerprintSettings::default());
            prop_assert!(fp.client.header_count as usize <= pairs.len());
        }
    }
}

#[test]
fn a_slightly_edited_template_stays_near() {
    let cfg = FingerprintSettings::default();
    let edited = |p: &str| {
        templated(p)
            .replace("carefully", "attentively")
            .replace("check every case", "check each case")
    };
    let mut shared = Vec::new();
    for (i, p) in PAYLOADS.iter().enumerate() {
        let a = template_of(&templated(p), &cfg);
        let b = template_of(&edited(PAYLOADS[(i + 1) % PAYLOADS.len()]), &cfg);
        let (ah, bh) = (a.head.expect("head"), b.head.expect("head"));
        let (at, bt) = (a.tail.expect("tail"), b.tail.expect("tail"));
        eprintln!(
            "edited template {i}: head J~{:.2} d={} bands {}; tail J~{:.2} d={} bands {}",
            ah.jaccard(&bh),
            ah.simhash_distance(&bh),
            ah.shared_bands(&bh),
            at.jaccard(&bt),
            at.simhash_distance(&bt),
            at.shared_bands(&bt)
        );
        assert!(ah.jaccard(&bh) > 0.4 && at.jaccard(&bt) > 0.4);
        assert!(ah.simhash_distance(&bh) <= 24 && at.simhash_distance(&bt) <= 24);
        shared.push(ah.shared_bands(&bh) + at.shared_bands(&bt));
    }
    assert!(shared.iter().all(|s| *s >= 1), "{shared:?}");
}

#[test]
fn of_request_reads_the_peer_and_the_parsed_body() {
    use std::sync::Arc;
    let cfg = FingerprintSettings::default();
    let info = chat("Write a haiku about the sea.");
    let mut req = http::Request::builder()
        .uri("/v1/chat/completions")
        .header("user-agent", "curl/8.5.0")
        .body(())
        .expect("request");
    req.extensions_mut().insert(crate::network::PeerAddr(
        "203.0.113.7:5000".parse().expect("addr"),
    ));
    req.extensions_mut().insert(Arc::new(info.clone()));
    let fp = Fingerprint::of_request(&req, &cfg);
    assert_eq!(
        fp,
        Fingerprint::compute(req.headers(), ip("203.0.113.7"), &info, &cfg)
    );
    assert!(fp.template.is_some() && fp.network.prefix.is_some());
    // Without a parsed body: headers and peer only.
    let bare = http::Request::builder()
        .uri("/v1/chat/completions")
        .header("user-agent", "curl/8.5.0")
        .body(())
        .expect("request");
    let fp = Fingerprint::of_request(&bare, &cfg);
    assert!(fp.template.is_none() && fp.network.prefix.is_none());
    assert_eq!(fp.client.user_agent.expect("ua").family, "curl");
}

#[test]
fn template_features_are_shared_across_accounts_of_one_template() {
    let cfg = FingerprintSettings::default();
    let features = |text: &str, peer: &str| -> Vec<crate::features::Feature> {
        Fingerprint::compute(&headers(OPENAI_PYTHON), ip(peer), &chat(text), &cfg)
            .features()
            .into_iter()
            .filter(|f| f.family() == Family::Template && f.kind.as_str() != "system_prompt")
            .collect()
    };
    let a = features(&templated(PAYLOADS[0]), "198.51.100.1");
    let b = features(&templated(PAYLOADS[1]), "203.0.113.9");
    let c = features(UNRELATED[0], "198.51.100.1");
    let shared = |x: &[crate::features::Feature], y: &[crate::features::Feature]| {
        x.iter().filter(|f| y.contains(f)).count()
    };
    assert_eq!(a.len(), 16);
    assert_eq!(shared(&a, &b), 16);
    assert_eq!(shared(&a, &c), 0);
    // Head and tail bands never collide with each other.
    let heads: Vec<u64> = a
        .iter()
        .filter(|f| f.kind.as_str() == "head_lsh_band")
        .map(|f| f.value)
        .collect();
    assert!(a
        .iter()
        .filter(|f| f.kind.as_str() == "tail_lsh_band")
        .all(|f| !heads.contains(&f.value)));
}

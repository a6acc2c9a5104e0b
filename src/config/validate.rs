//! Validation that walks the whole config and collects every error.

use super::error::Errors;
use super::limit::Limit;
use super::model::{Config, TierConfig};
use super::models::ModelPattern;
use crate::extensions::AccountId;

pub(super) fn validate(cfg: &Config, errors: &mut Errors) {
    validate_identity(cfg, errors);
    errors.0.extend(cfg.fingerprint.validate());
    errors.0.extend(cfg.cluster.validate("cluster"));
    errors.0.extend(cfg.score.validate("score"));

    if cfg.guard.max_body_bytes == 0 {
        errors.push("guard.max_body_bytes", "must be greater than 0");
    }

    let q = &cfg.quota;
    if !(0.0..=1.0).contains(&q.cluster_exponent) {
        errors.push(
            "quota.cluster_exponent",
            format!("must be between 0 and 1, got {}", q.cluster_exponent),
        );
    }
    if q.default_max_output_tokens == 0 {
        errors.push("quota.default_max_output_tokens", "must be greater than 0");
    }
    if cfg.tier(&q.default_tier).is_none() {
        errors.push(
            "quota.default_tier",
            format!("tier `{}` is not defined in [tiers]", q.default_tier),
        );
    }
    if q.bands.is_empty() {
        errors.push("quota.bands", "needs at least one band starting at 0.0");
    }
    let mut last = -1.0_f64;
    for (i, band) in q.bands.iter().enumerate() {
        let path = format!("quota.bands[{i}]");
        if !(0.0..=1.0).contains(&band.at_least) {
            errors.push(format!("{path}.at_least"), "must be between 0 and 1");
        } else if band.at_least <= last {
            errors.push(
                format!("{path}.at_least"),
                "bands must be in strictly increasing order of at_least",
            );
        }
        if i == 0 && band.at_least != 0.0 {
            errors.push(
                format!("{path}.at_least"),
                "the first band must start at 0.0",
            );
        }
        if !(0.0..=1.0).contains(&band.multiplier) {
            errors.push(format!("{path}.multiplier"), "must be between 0 and 1");
        }
        last = band.at_least;
    }

    for (name, tier) in &cfg.tiers {
        if name.is_empty() {
            errors.push("tiers", "a tier name must not be empty");
        }
        validate_tier(&format!("tiers.{}", key_segment(name)), tier, errors);
    }

    for (account, tier) in &cfg.accounts {
        let path = format!("accounts.{account}");
        if AccountId::parse(account).is_none() {
            errors.push(
                &path,
                "keys must be account hashes (32 hex digits, as shown in logs and replay output)",
            );
        }
        if cfg.tier(tier).is_none() {
            errors.push(&path, format!("tier `{tier}` is not defined in [tiers]"));
        }
    }

    cfg.admin.validate(errors);
    cfg.audit.validate(errors);
    errors.0.extend(super::watermark::validate(&cfg.watermark));
    cfg.store
        .problems()
        .into_iter()
        .for_each(|(f, m)| errors.push(format!("store.{f}"), m));

    let s = &cfg.server;
    if let Some(up) = &s.upstream {
        if let Err(e) = super::parse_upstream(up) {
            errors.push("server.upstream", e.to_string());
        }
    }
    if s.upstream_timeout.is_zero() {
        errors.push("server.upstream_timeout", "must be greater than 0");
    }
    if s.stream_idle_timeout.is_zero() {
        errors.push("server.stream_idle_timeout", "must be greater than 0");
    }
    if s.request_read_timeout.is_zero() {
        errors.push("server.request_read_timeout", "must be greater than 0");
    }
    if s.header_read_timeout.is_zero() {
        errors.push("server.header_read_timeout", "must be greater than 0");
    }
    if s.connect_timeout.is_zero() {
        errors.push("server.connect_timeout", "must be greater than 0");
    }
}

fn validate_identity(cfg: &Config, errors: &mut Errors) {
    let id = &cfg.identity;
    match (&id.secret, &id.secret_env) {
        (Some(_), Some(_)) => errors.push(
            "identity.secret",
            "set only one of `secret` and `secret_env`",
        ),
        (None, None) => errors.push(
            "identity.secret",
            "required: a long random secret for hashing API keys (or `secret_env`)",
        ),
        (Some(s), None) if s.is_empty() => errors.push("identity.secret", "must not be empty"),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => {}
            _ => errors.push(
                "identity.secret_env",
                format!("environment variable `{var}` is not set or empty"),
            ),
        },
        _ => {}
    }
}

/// A config path segment for a table key: bare when TOML allows it, quoted
/// otherwise (as `check-config` prints paths).
pub(crate) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

const FIELDS: [&str; 4] = [
    "requests_per_minute",
    "requests_per_day",
    "tokens_per_minute",
    "tokens_per_day",
];

/// `[tiers.NAME.models."PATTERN"]`: valid patterns, no two alike but for case,
/// positive limits, bursts only on limited minutes, and no limit above the
/// tier's own (it would never bind).
fn validate_models(path: &str, tier: &TierConfig, errors: &mut Errors) {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let tier_limits = tier.limits();
    let tier_bursts = [
        tier.burst_requests.or(tier_limits[0]),
        tier.burst_tokens.or(tier_limits[2]),
    ];
    for (pattern, group) in &tier.models {
        let gpath = format!("{path}.models.{}", key_segment(pattern));
        if let Err(e) = ModelPattern::parse(pattern) {
            errors.push(&gpath, e.to_string());
        }
        if let Some(other) = seen.insert(pattern.to_ascii_lowercase(), pattern) {
            errors.push(
                &gpath,
                format!("the same pattern as `{other}` (patterns compare without case)"),
            );
        }
        let limits = group.limits();
        let written = [
            group.requests_per_minute,
            group.requests_per_day,
            group.tokens_per_minute,
            group.tokens_per_day,
        ];
        if written.iter().all(Option::is_none) {
            errors.push(
                &gpath,
                format!("sets no limit: give at least one of {}", FIELDS.join(", ")),
            );
        }
        for (i, field) in FIELDS.iter().enumerate() {
            if written[i] == Some(Limit::Count(0)) {
                errors.push(
                    format!("{gpath}.{field}"),
                    "must be greater than 0 (leave it out for no separate limit on this model group)",
                );
            }
            if let (Some(g), Some(t)) = (limits[i], tier_limits[i]) {
                if g > t {
                    errors.push(
                        format!("{gpath}.{field}"),
                        format!(
                            "{g} is above the tier's own {field} ({t}): every request must fit the tier's limit too, so this one would never take effect"
                        ),
                    );
                }
            }
        }
        for (j, (field, burst, limit)) in [
            ("burst_requests", group.burst_requests, limits[0]),
            ("burst_tokens", group.burst_tokens, limits[2]),
        ]
        .into_iter()
        .enumerate()
        {
            match (burst, limit) {
                (Some(0), _) => errors.push(format!("{gpath}.{field}"), "must be greater than 0"),
                (Some(_), None) => errors.push(
                    format!("{gpath}.{field}"),
                    "has no effect without a per-minute limit on this model group",
                ),
                (Some(b), Some(_)) => {
                    if let Some(t) = tier_bursts[j] {
                        if b > t {
                            errors.push(
                                format!("{gpath}.{field}"),
                                format!(
                                    "{b} is above the tier's own burst ({t}): the tier's bucket would refuse it first"
                                ),
                            );
                        }
                    }
                }
                (None, _) => {}
            }
        }
    }
}

fn validate_tier(path: &str, tier: &TierConfig, errors: &mut Errors) {
    validate_models(path, tier, errors);
    let limits = [
        ("requests_per_minute", tier.requests_per_minute),
        ("requests_per_day", tier.requests_per_day),
        ("tokens_per_minute", tier.tokens_per_minute),
        ("tokens_per_day", tier.tokens_per_day),
    ];
    for (field, limit) in limits {
        if limit == Limit::Count(0) {
            errors.push(
                format!("{path}.{field}"),
                "must be greater than 0 (use \"unlimited\" to lift the limit, or a suspicion band with multiplier 0 to block)",
            );
        }
    }
    for (field, burst, limit) in [
        (
            "burst_requests",
            tier.burst_requests,
            tier.requests_per_minute,
        ),
        ("burst_tokens", tier.burst_tokens, tier.tokens_per_minute),
    ] {
        match (burst, limit) {
            (Some(0), _) => errors.push(format!("{path}.{field}"), "must be greater than 0"),
            (Some(_), Limit::Unlimited(_)) => errors.push(
                format!("{path}.{field}"),
                "has no effect when the per-minute limit is unlimited",
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn identity_only_is_enough() {
        let cfg = Config::from_toml_str("[identity]\nsecret = \"s3cret-value\"\n").expect("valid");
        assert_eq!(cfg.quota.default_tier, "default");
        assert!(cfg.tier("default").is_some());
        assert!(cfg.guard.enabled);
    }

    #[test]
    fn every_error_is_listed_with_its_path() {
        let err = Config::from_toml_str(
            r#"
            [identity]
            secret = "x"
            secret_env = "Y"
            [quota]
            cluster_exponent = 1.5
            default_tier = "gold"
            bands = [{ at_least = 0.2, multiplier = 2.0 }]
            [tiers.free]
            requests_per_minute = 0
            burst_tokens = 0
            [accounts]
            nothex = "free"
            "00112233445566778899aabbccddeeff" = "missing"
            [server]
            upstream = "ftp://example"
            "#,
        )
        .expect_err("invalid");
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "identity.secret",
            "quota.cluster_exponent",
            "quota.default_tier",
            "quota.bands[0].at_least",
            "quota.bands[0].multiplier",
            "tiers.free.requests_per_minute",
            "tiers.free.burst_tokens",
            "accounts.nothex",
            "accounts.00112233445566778899aabbccddeeff",
            "server.upstream",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
    }

    #[test]
    fn model_groups_are_checked_with_their_paths() {
        let err = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [tiers.default]
            requests_per_minute = 60
            tokens_per_minute = 150000
            [tiers.default.models."gpt-5*"]
            requests_per_minute = 100
            tokens_per_minute = 0
            [tiers.default.models."GPT-5*"]
            requests_per_minute = 5
            [tiers.default.models."gpt-?"]
            requests_per_minute = 5
            [tiers.default.models."gpt 4"]
            requests_per_minute = 5
            [tiers.default.models."gpt-4.1"]
            burst_tokens = 10
            [tiers.default.models."o3"]
            requests_per_minute = 10
            burst_requests = 70
            "#,
        )
        .expect_err("invalid");
        let got: Vec<(&str, &str)> = err
            .errors
            .iter()
            .map(|e| (e.path.as_str(), e.message.as_str()))
            .collect();
        for (path, words) in [
            (
                r#"tiers.default.models."gpt-5*".requests_per_minute"#,
                "above the tier's own",
            ),
            (
                r#"tiers.default.models."gpt-5*".tokens_per_minute"#,
                "greater than 0",
            ),
            (
                r#"tiers.default.models."gpt-5*""#,
                "the same pattern as `GPT-5*`",
            ),
            (r#"tiers.default.models."gpt-?""#, "`?` is not a wildcard"),
            (r#"tiers.default.models."gpt 4""#, "printable ASCII"),
            (r#"tiers.default.models."gpt-4.1""#, "sets no limit"),
            (
                r#"tiers.default.models."gpt-4.1".burst_tokens"#,
                "no effect",
            ),
            (
                r#"tiers.default.models.o3.burst_requests"#,
                "above the tier's own burst",
            ),
        ] {
            assert!(
                got.iter().any(|(p, m)| *p == path && m.contains(words)),
                "missing {path}: {words} in {got:#?}"
            );
        }
        // Below the tier's limits, it is valid; an unknown key is named with
        // its whole path and line.
        let ok = Config::from_toml_str(
            "[identity]\nsecret = \"s\"\n[tiers.default.models.\"claude-opus-4-1*\"]\nrequests_per_minute = 5\n",
        )
        .expect("valid");
        assert_eq!(
            ok.tiers["default"].models["claude-opus-4-1*"].requests_per_minute,
            Some(crate::config::Limit::Count(5))
        );
        let err = Config::from_toml_str(
            "[identity]\nsecret = \"s\"\n[tiers.default.models.\"gpt-4.1\"]\nrpm = 5\n",
        )
        .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.contains(r#"tiers.default.models."gpt-4.1".rpm"#) && text.contains("line 4"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let err = Config::from_toml_str("[identity]\nsecret = \"s\"\n[tiers.default]\nrpm = 5\n")
            .expect_err("unknown field");
        let text = err.to_string();
        assert!(text.contains("line 4"), "{text}");
        assert!(text.contains("rpm"), "{text}");
    }

    #[test]
    fn unlimited_is_accepted_and_durations_are_humantime() {
        let cfg = Config::from_toml_str(
            r#"
            [identity]
            secret = "s"
            [tiers.default]
            requests_per_day = "unlimited"
            [server]
            upstream_timeout = "2m 30s"
            "#,
        )
        .expect("valid");
        assert_eq!(cfg.tiers["default"].requests_per_day.limit(), None);
        assert_eq!(cfg.server.upstream_timeout.as_secs(), 150);
    }

    #[test]
    fn secret_from_environment() {
        let var = "DISTILL_GUARD_TEST_SECRET_FROM_ENV";
        let text = format!("[identity]\nsecret_env = \"{var}\"\n");
        assert!(
            Config::from_toml_str(&text).is_err(),
            "unset variable must fail"
        );
        // SAFETY-free: tests in this module do not read this variable concurrently.
        std::env::set_var(var, "from-env");
        let cfg = Config::from_toml_str(&text).expect("valid once set");
        assert_eq!(cfg.identity_secret().expect("secret"), "from-env");
    }
}

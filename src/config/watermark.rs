//! `[watermark]`: the configuration section of the watermark stage.
//!
//! The smallest useful section is
//!
//! ```toml
//! [watermark]
//! tag = "always"            # or "suspicious" or "never"
//! text_mark = true
//! [[watermark.keys]]
//! id = "k1"
//! secret = "a long random secret"   # or secret_env = "NAME"
//! ```
//!
//! Every other field has a default. With no `[watermark]` section at all nothing is
//! tagged (there is no key to sign with).

use serde::{Deserialize, Serialize};

use super::FieldError;
use crate::extensions::Action;

/// Longest key id accepted: ids travel in every tag.
pub const MAX_KEY_ID_LEN: usize = 32;

/// `[watermark]`: which responses are tagged, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatermarkConfig {
    /// Which responses carry a signed provenance tag: `always`, `suspicious` (the
    /// request's action is `tag` or harsher, or its suspicion is at least
    /// `suspicion_threshold`) or `never`. Absent: `suspicious` when a key is
    /// configured, `never` otherwise.
    pub tag: Option<TagPolicy>,
    /// While no scorer sets an action, a request whose suspicion is at least this
    /// value (0..1) counts as suspicious. Default 0.5.
    pub suspicion_threshold: f64,
    /// The invisible text-level mark in tagged responses' prose: `true` (every
    /// tagged response), `false` (none; the default), or an action name such as
    /// `"throttle"` (tagged responses whose action is at least that rung).
    pub text_mark: TextMarkPolicy,
    /// One copy of the mark is spread over this many marked words; a mark group is
    /// placed after every `mark_every_words`-th plain word. Smaller values make
    /// shorter excerpts traceable and the text longer. Between 2 and 16; default 4.
    pub mark_every_words: u32,
    /// Put the tag inside JSON response bodies (a top-level `distill_guard` object)
    /// and SSE streams (comment lines), not only in the header. Default `true`.
    pub in_body: bool,
    /// Largest JSON response body rewritten in place; a larger one keeps its body
    /// and gets the header tag only. Default 8 MiB.
    pub max_json_bytes: u64,
    /// Longest SSE line rewritten; a longer line passes through unchanged.
    /// Default 1 MiB.
    pub max_line_bytes: u64,
    /// Most responses kept in the trace-back index; the oldest are evicted first.
    /// 0 disables the index. Default 50 000 (about 20 MB).
    pub index_max_entries: usize,
    /// Most bytes of a response's text fingerprinted for the index. Default 256 KiB.
    pub index_text_bytes: usize,
    /// Signing keys. The first signs; all verify, so a new key goes first and old
    /// ones stay listed until their tags no longer matter.
    pub keys: Vec<KeyConfig>,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        Self {
            tag: None,
            suspicion_threshold: 0.5,
            text_mark: TextMarkPolicy::default(),
            mark_every_words: 4,
            in_body: true,
            max_json_bytes: 8 * 1024 * 1024,
            max_line_bytes: 1024 * 1024,
            index_max_entries: 50_000,
            index_text_bytes: 256 * 1024,
            keys: Vec::new(),
        }
    }
}

impl WatermarkConfig {
    /// The tag policy in force: the configured one, else `suspicious` when a key
    /// exists and `never` otherwise.
    pub fn effective_tag(&self) -> TagPolicy {
        match self.tag {
            Some(t) => t,
            None if self.keys.is_empty() => TagPolicy::Never,
            None => TagPolicy::Suspicious,
        }
    }
}

/// Which responses are tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagPolicy {
    /// Every successful response of an attributed request.
    Always,
    /// Requests whose action is `tag` or harsher, or whose suspicion reaches the
    /// threshold.
    Suspicious,
    /// None.
    Never,
}

/// When tagged responses also carry the text-level mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TextMarkPolicy {
    /// `true`: every tagged response; `false`: none.
    Enabled(bool),
    /// Tagged responses whose action is at least this rung.
    AtLeast(Action),
}

impl<'de> Deserialize<'de> for TextMarkPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TextMarkPolicy;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "true, false, or the lowest action to mark (\"allow\", \"tag\", \"throttle\", \"degrade\" or \"block\")",
                )
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<TextMarkPolicy, E> {
                Ok(TextMarkPolicy::Enabled(on))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TextMarkPolicy, E> {
                Action::ALL
                    .into_iter()
                    .find(|a| a.as_str() == s)
                    .map(TextMarkPolicy::AtLeast)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for TextMarkPolicy {
    fn default() -> Self {
        TextMarkPolicy::Enabled(false)
    }
}

impl TextMarkPolicy {
    /// Whether a tagged response on rung `action` is marked.
    pub fn applies(self, action: Action) -> bool {
        match self {
            TextMarkPolicy::Enabled(on) => on,
            TextMarkPolicy::AtLeast(min) => action >= min,
        }
    }
}

/// `[[watermark.keys]]`: one HMAC-SHA256 signing key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Short public name carried in every tag (letters, digits, `-`, `_`; at most
    /// 32), e.g. `k1` or `2026-11`.
    pub id: String,
    /// The secret. Use at least 32 random bytes. Exactly one of `secret` and
    /// `secret_env` must be set.
    #[serde(default)]
    pub secret: Option<String>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// Why a key's secret cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `secret = ""`.
    #[error("must not be empty")]
    Empty,
    /// The `secret_env` variable is not set, empty or not UTF-8.
    #[error("environment variable `{0}` is not set or empty")]
    Unset(String),
    /// Both `secret` and `secret_env`.
    #[error("set only one of `secret` and `secret_env`")]
    Both,
    /// Neither.
    #[error("set one of `secret` and `secret_env`")]
    Neither,
}

impl KeyConfig {
    /// The secret bytes, from `secret` or the `secret_env` variable.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match (&self.secret, &self.secret_env) {
            (Some(s), None) if !s.is_empty() => Ok(s.clone()),
            (Some(_), None) => Err(SecretError::Empty),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(SecretError::Unset(var.clone())),
            },
            (Some(_), Some(_)) => Err(SecretError::Both),
            (None, None) => Err(SecretError::Neither),
        }
    }
}

/// True for a valid key id.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every problem in the section, with its TOML path.
pub(crate) fn validate(cfg: &WatermarkConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |path: String, message: String| errors.push(FieldError { path, message });
    if !(0.0..=1.0).contains(&cfg.suspicion_threshold) {
        push(
            "watermark.suspicion_threshold".into(),
            format!("must be between 0 and 1, got {}", cfg.suspicion_threshold),
        );
    }
    if !(2..=16).contains(&cfg.mark_every_words) {
        push(
            "watermark.mark_every_words".into(),
            format!("must be between 2 and 16, got {}", cfg.mark_every_words),
        );
    }
    if cfg.max_line_bytes < 1024 {
        push(
            "watermark.max_line_bytes".into(),
            "must be at least 1024".into(),
        );
    }
    if cfg.tag.is_some_and(|t| t != TagPolicy::Never) && cfg.keys.is_empty() {
        push(
            "watermark.keys".into(),
            "tagging is on but no key is configured: add a [[watermark.keys]] entry with `id` and `secret` (or `secret_env`)".into(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, key) in cfg.keys.iter().enumerate() {
        let path = format!("watermark.keys[{i}]");
        if !valid_key_id(&key.id) {
            push(
                format!("{path}.id"),
                format!(
                    "`{}` is not a key id: use 1 to {MAX_KEY_ID_LEN} letters, digits, `-` or `_`",
                    key.id
                ),
            );
        } else if !seen.insert(key.id.as_str()) {
            push(
                format!("{path}.id"),
                format!("key id `{}` is used twice", key.id),
            );
        }
        if let Err(e) = key.resolve() {
            let field = match e {
                SecretError::Unset(_) => "secret_env",
                _ => "secret",
            };
            push(format!("{path}.{field}"), e.to_string());
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WatermarkConfig, toml::de::Error> {
        #[derive(Deserialize)]
        struct Wrap {
            watermark: WatermarkConfig,
        }
        toml::from_str::<Wrap>(text).map(|w| w.watermark)
    }

    #[test]
    fn the_documented_shape_is_accepted_with_defaults() {
        let cfg = parse(
            r#"
            [watermark]
            tag = "always"
            text_mark = true
            [[watermark.keys]]
            id = "k1"
            secret = "a long random secret"
            "#,
        )
        .expect("valid");
        assert_eq!(cfg.effective_tag(), TagPolicy::Always);
        assert_eq!(cfg.text_mark, TextMarkPolicy::Enabled(true));
        assert_eq!(cfg.mark_every_words, 4);
        assert!(validate(&cfg).is_empty());
    }

    #[test]
    fn text_mark_per_action_level() {
        let cfg = parse("[watermark]\ntext_mark = \"throttle\"\n").expect("valid");
        assert_eq!(cfg.text_mark, TextMarkPolicy::AtLeast(Action::Throttle));
        assert!(!cfg.text_mark.applies(Action::Tag));
        assert!(cfg.text_mark.applies(Action::Degrade));
        assert!(parse("[watermark]\ntext_mark = \"sometimes\"\n").is_err());
    }

    #[test]
    fn default_tags_nothing_without_keys() {
        let cfg = WatermarkConfig::default();
        assert_eq!(cfg.effective_tag(), TagPolicy::Never);
        assert!(validate(&cfg).is_empty());
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg = parse(
            r#"
            [watermark]
            tag = "suspicious"
            suspicion_threshold = 2.0
            mark_every_words = 1
            [[watermark.keys]]
            id = "bad id"
            secret = ""
            [[watermark.keys]]
            id = "k2"
            secret = "x"
            secret_env = "Y"
            [[watermark.keys]]
            id = "k2"
            secret_env = "DISTILL_GUARD_WM_TEST_UNSET_VARIABLE"
            "#,
        )
        .expect("parses");
        let paths: Vec<String> = validate(&cfg).into_iter().map(|e| e.path).collect();
        for want in [
            "watermark.suspicion_threshold",
            "watermark.mark_every_words",
            "watermark.keys[0].id",
            "watermark.keys[0].secret",
            "watermark.keys[1].secret",
            "watermark.keys[2].id",
            "watermark.keys[2].secret_env",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "missing {want} in {paths:?}"
            );
        }
        let no_keys = parse("[watermark]\ntag = \"always\"\n").expect("parses");
        assert_eq!(validate(&no_keys)[0].path, "watermark.keys");
        assert!(parse("[watermark]\ncolour = 1\n").is_err());
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let k = KeyConfig {
            id: "k1".into(),
            secret: Some("hunter2-very-secret".into()),
            secret_env: None,
        };
        assert!(!format!("{k:?}").contains("hunter2"));
    }
}

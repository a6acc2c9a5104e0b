//! Problems that do not stop a config from working but should not reach
//! production: placeholder or short secrets written into the file.

use super::error::FieldError;
use super::model::Config;

/// Shortest inline secret that is not reported as too short.
const MIN_SECRET_CHARS: usize = 16;

/// Words that mark a value copied from an example rather than generated.
const PLACEHOLDER_WORDS: [&str; 9] = [
    "change-me",
    "changeme",
    "change_me",
    "replace",
    "example",
    "placeholder",
    "your-",
    "random secret",
    "random token",
];

/// Why an inline secret looks unfit for production, if it does.
fn weak_secret(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDER_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!(
            "looks like a placeholder (contains \"{word}\"): generate one, e.g. `openssl rand -hex 32`, and prefer the `_env` field"
        ));
    }
    let chars = value.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Some(format!(
            "is only {chars} characters long: use at least 32 random bytes, e.g. `openssl rand -hex 32`"
        ));
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 6 {
        return Some(
            "has fewer than 6 distinct characters: use at least 32 random bytes, e.g. `openssl rand -hex 32`"
                .to_owned(),
        );
    }
    None
}

impl Config {
    /// Things a valid config should not ship with: placeholder, short or
    /// repetitive secrets written inline (`identity.secret`, `admin.token`,
    /// `watermark.keys[i].secret`). Empty when there is nothing to say.
    /// `check-config` prints these, and `serve` logs them at start.
    pub fn warnings(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut check = |path: String, value: Option<&str>| {
            if let Some(message) = value.and_then(weak_secret) {
                out.push(FieldError { path, message });
            }
        };
        check("identity.secret".into(), self.identity.secret.as_deref());
        check("admin.token".into(), self.admin.token.as_deref());
        for (i, key) in self.watermark.keys.iter().enumerate() {
            check(format!("watermark.keys[{i}].secret"), key.secret.as_deref());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_short_and_repetitive_secrets_are_named() {
        for bad in [
            "change-me-to-a-long-random-secret",
            "a long random secret",
            "s3cret",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(weak_secret(bad).is_some(), "{bad}");
        }
        assert_eq!(weak_secret("9f2c41d0b7e85a36c1f04e9d2b7a8c55"), None);
    }

    #[test]
    fn warnings_carry_their_paths() {
        let mut cfg = Config::with_secret("change-me");
        cfg.admin.token = Some("0123456789abcdef0123".into());
        let w = cfg.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].path, "identity.secret");
        assert!(w[0].message.contains("placeholder"), "{}", w[0].message);
        let cfg = Config::with_secret("9f2c41d0b7e85a36c1f04e9d2b7a8c55");
        assert!(cfg.warnings().is_empty());
    }
}

//! `[admin]`: the admin listener, its token and the decision memory.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Errors;

/// The default number of decisions remembered for explanations
/// (`[admin] recent_decisions`).
pub const DEFAULT_RECENT_DECISIONS: usize = 10_000;

/// Shortest token accepted: a guessable admin token is worse than none.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[admin]`: the admin API, metrics and dashboard listener.
///
/// ```toml
/// [admin]
/// listen = "127.0.0.1:9090"
/// token = "a long random token"   # or token_env = "NAME"
/// ```
///
/// Without a token the admin listener is disabled (never open), with a log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener (`serve --admin-listen` overrides). Absent:
    /// no admin listener.
    pub listen: Option<SocketAddr>,
    /// Address of a listener serving only `GET /metrics`, **without** the token,
    /// as Prometheus scrapers expect (`serve --metrics-listen` overrides). The
    /// metrics carry no account, key or cluster id; bind it to a private
    /// address all the same. Absent: metrics only on the admin listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token for every admin endpoint except the dashboard's static page.
    /// At least 16 characters. Set at most one of `token` and `token_env`.
    pub token: Option<String>,
    /// Name of an environment variable holding the token.
    pub token_env: Option<String>,
    /// Decisions remembered for `GET /api/decisions/{request_id}`, the dashboard
    /// and account pages (0 keeps only the chart). Takes effect at start.
    pub recent_decisions: usize,
    /// Reload the config when its file changes (checked every 2 seconds).
    pub watch_config: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: None,
            metrics_listen: None,
            token: None,
            token_env: None,
            recent_decisions: DEFAULT_RECENT_DECISIONS,
            watch_config: true,
        }
    }
}

impl AdminConfig {
    /// The token from `token` or the `token_env` variable; `None` when neither is
    /// set (or the variable is unset or empty).
    pub fn resolve_token(&self) -> Option<String> {
        match (&self.token, &self.token_env) {
            (Some(t), _) if !t.trim().is_empty() => Some(t.trim().to_owned()),
            (None, Some(var)) => std::env::var(var)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            _ => None,
        }
    }

    /// Adds every problem of this section to `errors`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => {
                errors.push("admin.token", "set only one of `token` and `token_env`")
            }
            (Some(t), None) if t.trim().chars().count() < MIN_TOKEN_LEN => errors.push(
                "admin.token",
                format!("must be at least {MIN_TOKEN_LEN} characters (use a long random value)"),
            ),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if v.trim().chars().count() >= MIN_TOKEN_LEN => {}
                Ok(v) if !v.trim().is_empty() => errors.push(
                    "admin.token_env",
                    format!("the token in `{var}` must be at least {MIN_TOKEN_LEN} characters"),
                ),
                _ => errors.push(
                    "admin.token_env",
                    format!("environment variable `{var}` is not set or empty"),
                ),
            },
            _ => {}
        }
        if self.recent_decisions > 10_000_000 {
            errors.push("admin.recent_decisions", "must be at most 10000000");
        }
        if let (Some(m), Some(l)) = (self.metrics_listen, self.listen) {
            if m == l && m.port() != 0 {
                errors.push(
                    "admin.metrics_listen",
                    "must differ from admin.listen (the admin listener already serves /metrics, behind the token)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn accepts_the_documented_shape() {
        let cfg = Config::from_toml_str(
            "[identity]\nsecret = \"s\"\n[admin]\nlisten = \"127.0.0.1:9090\"\ntoken = \"a long random token\"\n",
        )
        .expect("valid");
        assert_eq!(cfg.admin.listen.map(|a| a.port()), Some(9090));
        assert_eq!(
            cfg.admin.resolve_token().as_deref(),
            Some("a long random token")
        );
    }

    #[test]
    fn rejects_short_double_and_missing_tokens() {
        for (text, path) in [
            ("token = \"short\"", "admin.token"),
            (
                "token = \"a long random token\"\ntoken_env = \"X\"",
                "admin.token",
            ),
            (
                "token_env = \"DISTILL_GUARD_TEST_UNSET_ADMIN_TOKEN\"",
                "admin.token_env",
            ),
        ] {
            let err =
                Config::from_toml_str(&format!("[identity]\nsecret = \"s\"\n[admin]\n{text}\n"))
                    .expect_err(text);
            assert!(err.errors.iter().any(|e| e.path == path), "{err}");
        }
    }
}

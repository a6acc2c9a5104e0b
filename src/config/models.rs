//! `[tiers.NAME.models."PATTERN"]`: limits per model group, and the patterns
//! that pick a request's group from its `model` field.

use serde::{Deserialize, Serialize};

use super::limit::Limit;

/// `[tiers.NAME.models."PATTERN"]`: the limits of one model group of a tier,
/// per account (a cluster of `n` accounts gets them times
/// `n^quota.cluster_exponent`, and suspicion bands scale them like the
/// tier's). Each account has its own buckets for each group, checked together
/// with the tier's account-wide buckets: a request must fit both.
///
/// A field left out sets no separate limit for the group in that window (the
/// tier's own still applies); `"unlimited"` means the same. A group's limit
/// may not be above the tier's for the same window: the tier's would bind
/// first and the group's would never take effect.
///
/// Matching the request's `model` field: ASCII letters compare without case;
/// `*` stands for any run of characters (also none) and is the only wildcard.
/// An exact name matches that name only: `claude-opus-4-1` does not match the
/// dated `claude-opus-4-1-20250805`, while `claude-opus-4-1*` matches both.
/// When several patterns match, an exact name wins over any glob, then the
/// glob with the most characters other than `*`, then the one first in
/// alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelLimits {
    /// Requests per minute for the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<Limit>,
    /// Requests per day for the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<Limit>,
    /// LLM tokens (input + output) per minute for the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<Limit>,
    /// LLM tokens per day for the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<Limit>,
    /// Burst for the group's per-minute request bucket. Defaults to its
    /// `requests_per_minute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_requests: Option<u64>,
    /// Burst for the group's per-minute token bucket. Defaults to its
    /// `tokens_per_minute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_tokens: Option<u64>,
}

impl ModelLimits {
    /// The group's limit per window (`None`: no separate limit), in
    /// [`Window`](crate::store::Window) order.
    pub fn limits(&self) -> [Option<u64>; 4] {
        [
            self.requests_per_minute,
            self.requests_per_day,
            self.tokens_per_minute,
            self.tokens_per_day,
        ]
        .map(|l| l.and_then(Limit::limit))
    }
}

/// Longest model pattern accepted.
pub const MAX_PATTERN_LEN: usize = 128;

/// A model pattern of `[tiers.NAME.models."PATTERN"]`, ready to match: an exact
/// name or a `*` glob, compared without ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern {
    /// The pattern as written in the config (the group's name everywhere:
    /// headers, metrics, the admin API).
    name: String,
    /// Its pieces between the `*`s, lowercased.
    pieces: Vec<String>,
    /// Whether it contains a `*`.
    glob: bool,
}

/// Why a model pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("a model pattern must not be empty")]
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("a model pattern may have at most {MAX_PATTERN_LEN} characters")]
    TooLong,
    /// A character outside printable ASCII, a space, a quote or a backslash.
    #[error(
        "`{0}` cannot be in a model pattern: use printable ASCII without spaces, quotes or backslashes"
    )]
    Character(char),
    /// A wildcard other than `*`.
    #[error("`{0}` is not a wildcard here: `*` (any run of characters) is the only one")]
    Wildcard(char),
}

impl ModelPattern {
    /// Parses `pattern`: printable ASCII without spaces, `"` or `\`, at most
    /// [`MAX_PATTERN_LEN`] characters; `*` is the only wildcard (`?`, `[`, `]`,
    /// `{` and `}` are refused, so that nobody writes a glob that silently
    /// matches nothing).
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        for c in pattern.chars() {
            if matches!(c, '?' | '[' | ']' | '{' | '}') {
                return Err(PatternError::Wildcard(c));
            }
            if !c.is_ascii_graphic() || c == '"' || c == '\\' {
                return Err(PatternError::Character(c));
            }
        }
        let lower = pattern.to_ascii_lowercase();
        Ok(Self {
            name: pattern.to_owned(),
            pieces: lower.split('*').map(str::to_owned).collect(),
            glob: pattern.contains('*'),
        })
    }

    /// The pattern as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is an exact name (no `*`).
    pub fn is_exact(&self) -> bool {
        !self.glob
    }

    /// How specific it is: exact names first, then globs by their number of
    /// characters other than `*`. Larger is more specific.
    pub fn specificity(&self) -> (bool, usize) {
        (!self.glob, self.pieces.iter().map(String::len).sum())
    }

    /// Whether `model` matches, ASCII case-insensitively.
    pub fn matches(&self, model: &str) -> bool {
        let m = model.as_bytes();
        let eq = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
        let Some((first, rest)) = self.pieces.split_first() else {
            return false;
        };
        if !self.glob {
            return eq(m, first.as_bytes());
        }
        let first = first.as_bytes();
        if m.len() < first.len() || !eq(&m[..first.len()], first) {
            return false;
        }
        let Some((last, middle)) = rest.split_last() else {
            return true;
        };
        let last = last.as_bytes();
        let mut at = first.len();
        if m.len() < at + last.len() || !eq(&m[m.len() - last.len()..], last) {
            return false;
        }
        let end = m.len() - last.len();
        // Each middle piece at its leftmost place: greedy leftmost matching is
        // exact for `*`-only globs.
        for piece in middle {
            let p = piece.as_bytes();
            match (at..=end.saturating_sub(p.len()))
                .find(|&i| i + p.len() <= end && eq(&m[i..i + p.len()], p))
            {
                Some(i) => at = i + p.len(),
                None => return false,
            }
        }
        at <= end
    }
}

/// The pattern among `patterns` that `model` falls under: the most specific
/// match (see [`ModelLimits`]), ties going to the first in alphabetical order
/// of the patterns as written.
pub fn best_match<'a, T>(
    patterns: impl IntoIterator<Item = (&'a ModelPattern, T)>,
    model: &str,
) -> Option<(&'a ModelPattern, T)> {
    let mut best: Option<(&'a ModelPattern, T)> = None;
    for (p, v) in patterns {
        if !p.matches(model) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, _)) => {
                p.specificity() > b.specificity()
                    || (p.specificity() == b.specificity() && p.name() < b.name())
            }
        };
        if better {
            best = Some((p, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ModelPattern {
        ModelPattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn exact_names_and_globs_match_without_case() {
        assert!(p("gpt-5").matches("GPT-5"));
        assert!(!p("gpt-5").matches("gpt-5-mini"));
        assert!(!p("claude-opus-4-1").matches("claude-opus-4-1-20250805"));
        assert!(p("claude-opus-4-1*").matches("claude-opus-4-1-20250805"));
        assert!(p("claude-opus-4-1*").matches("claude-opus-4-1"));
        assert!(p("gpt-5*").matches("gpt-5.1-codex"));
        assert!(!p("gpt-5*").matches("gpt-4.1"));
        assert!(p("*").matches(""));
        assert!(p("*-mini").matches("gpt-5-MINI"));
        assert!(!p("*-mini").matches("gpt-5-mini-2025"));
        assert!(p("claude-*-4*").matches("claude-sonnet-4-5"));
        assert!(!p("claude-*-4*").matches("claude-3-haiku"));
        assert!(p("a*b*c").matches("abc"));
        assert!(p("a*b*c").matches("axxbyybc"));
        assert!(!p("a*b*c").matches("acb"));
        assert!(!p("ab*ba").matches("aba"), "pieces may not overlap");
        assert!(p("**").matches("anything"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(ModelPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(
            ModelPattern::parse("gpt-?"),
            Err(PatternError::Wildcard('?'))
        );
        assert_eq!(
            ModelPattern::parse("gpt 5"),
            Err(PatternError::Character(' '))
        );
        assert_eq!(
            ModelPattern::parse("gpt-5\u{e9}"),
            Err(PatternError::Character('\u{e9}'))
        );
        assert_eq!(
            ModelPattern::parse(&"a".repeat(MAX_PATTERN_LEN + 1)),
            Err(PatternError::TooLong)
        );
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let pats = [
            p("*"),
            p("gpt-5*"),
            p("gpt-5-mini*"),
            p("gpt-5-mini"),
            p("*-mini"),
        ];
        let pick =
            |m: &str| best_match(pats.iter().map(|x| (x, ())), m).map(|(x, _)| x.name().to_owned());
        assert_eq!(pick("gpt-5-mini").as_deref(), Some("gpt-5-mini"));
        assert_eq!(pick("gpt-5-mini-2025").as_deref(), Some("gpt-5-mini*"));
        assert_eq!(pick("gpt-5").as_deref(), Some("gpt-5*"));
        assert_eq!(pick("o3-mini").as_deref(), Some("*-mini"));
        assert_eq!(pick("llama").as_deref(), Some("*"));
        // Equally specific globs: alphabetical order decides.
        let tie = [p("b*x"), p("a*x")];
        let got = best_match(tie.iter().map(|x| (x, ())), "abx").map(|(x, _)| x.name());
        assert_eq!(got, Some("a*x"));
        assert!(best_match(std::iter::empty::<(&ModelPattern, ())>(), "m").is_none());
    }
}

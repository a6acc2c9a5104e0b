//! Bearer-token authentication of the admin API.
//!
//! Both the expected and the presented token are hashed with SHA-256 and the
//! digests compared with `subtle`'s constant-time equality: the comparison takes
//! the same time wherever the first differing byte is, and hashing first hides the
//! token's length too.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token kept only as its digest.
#[derive(Clone)]
pub(crate) struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"distill-guard/admin-token\0")
        .chain_update(token)
        .finalize()
        .into()
}

impl TokenDigest {
    /// Surrounding whitespace (a trailing newline from a secret file, say) is
    /// not part of the token.
    pub(crate) fn new(token: &str) -> Self {
        Self(digest(token.trim().as_bytes()))
    }

    /// True when `headers` carry `Authorization: Bearer <the token>`.
    pub(crate) fn admits(&self, headers: &http::HeaderMap) -> bool {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return false;
        };
        let bytes = value.as_bytes();
        let presented = match bytes.get(..7) {
            Some(p) if p.eq_ignore_ascii_case(b"bearer ") => &bytes[7..],
            _ => return false,
        };
        let presented = presented.trim_ascii();
        bool::from(digest(presented).ct_eq(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().expect("header"));
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let t = TokenDigest::new("correct horse battery staple");
        assert!(t.admits(&headers("Bearer correct horse battery staple")));
        assert!(t.admits(&headers("bearer correct horse battery staple")));
        assert!(!t.admits(&headers("Bearer correct horse battery stapl")));
        assert!(!t.admits(&headers("Basic correct horse battery staple")));
        assert!(!t.admits(&headers("correct horse battery staple")));
        assert!(!t.admits(&http::HeaderMap::new()));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_and_only_the_token_passes(
            token in "[ -~]{16,40}",
            presented in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            prop_assume!(!token.trim().is_empty());
            let t = TokenDigest::new(&token);
            let mut h = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&presented) {
                h.insert(http::header::AUTHORIZATION, v);
                let admitted = t.admits(&h);
                let exact = presented.len() > 7
                    && presented[..7].eq_ignore_ascii_case(b"bearer ")
                    && presented[7..].trim_ascii() == token.trim().as_bytes();
                prop_assert_eq!(admitted, exact);
            }
            let good = format!("Bearer {token}");
            if let Ok(v) = http::HeaderValue::from_str(&good) {
                h.insert(http::header::AUTHORIZATION, v);
                prop_assert!(t.admits(&h));
            }
        }
    }
}

//! Who a request is charged to.
//!
//! The account is the API key from `Authorization: Bearer …` or `x-api-key`, or
//! whatever a [`KeyExtractor`] returns. Only its keyed hash (HMAC-SHA256 with the
//! configured secret, truncated to 128 bits) is ever kept: the raw key is hashed
//! where it is read and dropped.
//!
//! ```
//! use distill_guard::identity::Identity;
//!
//! let id = Identity::new(b"server secret");
//! let req = http::Request::builder()
//!     .header("authorization", "Bearer sk-test-1")
//!     .body(())
//!     .unwrap();
//! let account = id.account_of(req.headers(), req.extensions()).expect("has a key");
//! assert_eq!(account, id.hash_key("sk-test-1"));
//! assert_ne!(account.to_string(), "sk-test-1");
//! ```

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::{Extensions, HeaderMap};
use sha2::Sha256;

use crate::extensions::AccountId;

/// Pulls the raw API key out of a request. Implemented for closures.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The raw key, or `None` when the request carries none.
    fn extract(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<String>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&HeaderMap, &Extensions) -> Option<String> + Send + Sync + 'static,
{
    fn extract(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<String> {
        self(headers, extensions)
    }
}

/// The default extractor: `Authorization: Bearer KEY`, else `x-api-key: KEY`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerOrApiKey;

impl KeyExtractor for BearerOrApiKey {
    fn extract(&self, headers: &HeaderMap, _: &Extensions) -> Option<String> {
        bearer_or_api_key(headers).map(str::to_owned)
    }
}

fn bearer_or_api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let key = v[7..].trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Hashes API keys into [`AccountId`]s.
#[derive(Clone)]
pub struct Identity {
    mac: Hmac<Sha256>,
    extractor: Option<Arc<dyn KeyExtractor>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("secret", &"<redacted>")
            .field("custom_extractor", &self.extractor.is_some())
            .finish()
    }
}

impl Identity {
    /// Keyed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self {
            mac,
            extractor: None,
        }
    }

    /// Replaces the default `Authorization`/`x-api-key` extractor.
    pub fn with_extractor(mut self, extractor: impl KeyExtractor) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }

    /// Uses an already shared extractor.
    pub fn with_shared_extractor(mut self, extractor: Arc<dyn KeyExtractor>) -> Self {
        self.extractor = Some(extractor);
        self
    }

    /// The keyed hash of a raw key.
    pub fn hash_key(&self, key: &str) -> AccountId {
        self.hash_parts(b"key\0", key.as_bytes())
    }

    /// The anonymous account of a network prefix.
    pub fn hash_network(&self, prefix: &ipnet::IpNet) -> AccountId {
        self.hash_parts(b"net\0", prefix.to_string().as_bytes())
    }

    /// A keyed 128-bit hash of any value, for features that must not be reversible.
    pub fn hash_parts(&self, domain: &[u8], value: &[u8]) -> AccountId {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&out[..16]);
        AccountId(id)
    }

    /// The account of a request, if it carries a key.
    pub fn account_of(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<AccountId> {
        match &self.extractor {
            Some(x) => x
                .extract(headers, extensions)
                .filter(|k| !k.is_empty())
                .map(|k| self.hash_key(&k)),
            None => bearer_or_api_key(headers).map(|k| self.hash_key(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder();
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn bearer_and_x_api_key_hash_the_same_key_alike() {
        let id = Identity::new(b"s");
        let a = req(&[("authorization", "Bearer sk-1")]);
        let b = req(&[("x-api-key", "sk-1")]);
        let c = req(&[("authorization", "bearer   sk-1  ")]);
        let ka = id.account_of(a.headers(), a.extensions());
        assert!(ka.is_some());
        assert_eq!(ka, id.account_of(b.headers(), b.extensions()));
        assert_eq!(ka, id.account_of(c.headers(), c.extensions()));
    }

    #[test]
    fn missing_or_empty_keys_are_none() {
        let id = Identity::new(b"s");
        for r in [
            req(&[]),
            req(&[("authorization", "Bearer ")]),
            req(&[("authorization", "Basic abc")]),
            req(&[("x-api-key", "  ")]),
        ] {
            assert_eq!(id.account_of(r.headers(), r.extensions()), None);
        }
    }

    #[test]
    fn the_secret_keys_the_hash() {
        assert_ne!(
            Identity::new(b"a").hash_key("k"),
            Identity::new(b"b").hash_key("k")
        );
        assert_eq!(
            Identity::new(b"a").hash_key("k"),
            Identity::new(b"a").hash_key("k")
        );
    }

    #[test]
    fn custom_extractor() {
        let id = Identity::new(b"s").with_extractor(|h: &HeaderMap, _: &Extensions| {
            h.get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let r = req(&[("x-user", "alice"), ("authorization", "Bearer sk")]);
        assert_eq!(
            id.account_of(r.headers(), r.extensions()),
            Some(id.hash_key("alice"))
        );
    }
}

//! The Redis key of a subject: `{key_prefix}a:{32 hex digits}` for an account,
//! `{key_prefix}c:…` for a cluster.

use crate::extensions::Scope;
use crate::store::Subject;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Builds subjects' keys under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The length of every key.
    pub(super) fn len(&self) -> usize {
        self.prefix.len() + 2 + 32
    }

    /// The prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `subject`.
    pub(super) fn of(&self, subject: &Subject) -> String {
        let mut key = Vec::with_capacity(self.len());
        self.push(subject, &mut key);
        String::from_utf8_lossy(&key).into_owned()
    }

    /// Appends the key of `subject` to `out`.
    pub(super) fn push(&self, subject: &Subject, out: &mut Vec<u8>) {
        let tag = match subject.scope {
            Scope::Account => b"a:",
            Scope::Cluster => b"c:",
        };
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(tag);
        for b in subject.key {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_hex_ids() {
        let keys = Keys::new("p:");
        let mut key = [0u8; 16];
        key[0] = 0xab;
        key[15] = 0x01;
        let subject = |scope| Subject {
            scope,
            key,
            limits: [None; 4],
        };
        assert_eq!(
            keys.of(&subject(Scope::Account)),
            "p:a:ab000000000000000000000000000001"
        );
        assert_eq!(
            keys.of(&subject(Scope::Cluster)),
            "p:c:ab000000000000000000000000000001"
        );
        assert_eq!(keys.of(&subject(Scope::Cluster)).len(), keys.len());
    }
}

//! The Redis key of a subject: `{key_prefix}a:{32 hex digits}` for an account,
//! `{key_prefix}c:…` for a cluster, followed by `:m:{pattern}` for the
//! subject's buckets of a model group (`[tiers.NAME.models."PATTERN"]`). With a Redis Cluster the hex digits are
//! wrapped in braces, `{key_prefix}a:{{hex}}`: the subject's id is the key's
//! hash tag, so a cluster's key (whose id is its oldest account's) shares a
//! slot with that account's key, and so do the subjects' model group keys:
//! an admission of an account (with its model group) is one atomic script
//! call there too.
//! The named keys of the shared structures (overrides, the cluster log) have
//! their name as hash tag there, so that keys written together share a slot.

use crate::config::{Backend, StoreConfig};
use crate::extensions::Scope;
use crate::store::Subject;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Builds subjects' keys under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
    /// Hash tags around the id (a Redis Cluster).
    tagged: bool,
}

impl Keys {
    pub(super) fn new(prefix: &str, tagged: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            tagged,
        }
    }

    /// The length of every key without a model group (a group's adds its
    /// pattern and 3).
    pub(super) fn len(&self) -> usize {
        self.prefix.len() + 2 + 32 + if self.tagged { 2 } else { 0 }
    }

    /// Whether the ids are hash tags (a Redis Cluster).
    pub(super) fn tagged(&self) -> bool {
        self.tagged
    }

    /// The prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `subject`.
    pub(super) fn of(&self, subject: &Subject) -> String {
        let mut key =
            Vec::with_capacity(self.len() + 3 + subject.group.as_ref().map_or(0, |g| g.len()));
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
        if self.tagged {
            out.push(b'{');
        }
        for b in subject.key {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
        if self.tagged {
            out.push(b'}');
        }
        if let Some(group) = &subject.group {
            out.extend_from_slice(b":m:");
            out.extend_from_slice(group.as_bytes());
        }
    }
}

/// The key of a shared structure `name` (`overrides`, `clusters:log`) under
/// the configured prefix, followed by `suffix`: `{prefix}{name}{suffix}`, or
/// with a Redis Cluster `{prefix}{{name}}{suffix}` (the name is the hash tag).
pub(crate) fn named(config: &StoreConfig, name: &str, suffix: &str) -> String {
    if config.backend == Backend::RedisCluster {
        format!("{}{{{name}}}{suffix}", config.key_prefix)
    } else {
        format!("{}{name}{suffix}", config.key_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_hex_ids() {
        let keys = Keys::new("p:", false);
        let mut key = [0u8; 16];
        key[0] = 0xab;
        key[15] = 0x01;
        let subject = |scope| Subject {
            scope,
            key,
            group: None,
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

        let tagged = Keys::new("p:", true);
        assert_eq!(
            tagged.of(&subject(Scope::Account)),
            "p:a:{ab000000000000000000000000000001}"
        );
        assert_eq!(tagged.of(&subject(Scope::Cluster)).len(), tagged.len());
        // An account and the cluster it founded (same id) share a slot.
        assert_eq!(
            ::redis::cluster_routing::Slot::for_key(tagged.of(&subject(Scope::Account))),
            ::redis::cluster_routing::Slot::for_key(tagged.of(&subject(Scope::Cluster)))
        );
        // A model group's buckets: the same id, the group after it, and with a
        // Redis Cluster the same slot as the subject's own key.
        let grouped = subject(Scope::Account).in_group("gpt-5*".into(), [None; 4]);
        assert_eq!(
            keys.of(&grouped),
            "p:a:ab000000000000000000000000000001:m:gpt-5*"
        );
        assert_eq!(
            tagged.of(&grouped),
            "p:a:{ab000000000000000000000000000001}:m:gpt-5*"
        );
        assert_eq!(
            ::redis::cluster_routing::Slot::for_key(tagged.of(&grouped)),
            ::redis::cluster_routing::Slot::for_key(tagged.of(&subject(Scope::Account)))
        );
    }

    #[test]
    fn named_keys_tag_their_name_in_a_cluster() {
        let mut config = StoreConfig {
            key_prefix: "dg:".into(),
            ..StoreConfig::default()
        };
        assert_eq!(
            named(&config, "overrides", ":version"),
            "dg:overrides:version"
        );
        config.backend = Backend::RedisCluster;
        assert_eq!(named(&config, "overrides", ""), "dg:{overrides}");
        assert_eq!(
            named(&config, "overrides", ":version"),
            "dg:{overrides}:version"
        );
    }
}

//! Enforcement policy set by operators: per-account overrides that the enforce
//! stage honours, below every stage (the admin API edits them, the guard holds
//! them, the enforce stage reads them).
//!
//! * **allow**: the account's requests get `Action::Allow` and are never blocked,
//!   throttled by suspicion or charged to a cluster; its tier's own limits still
//!   apply (pin a larger tier to lift them).
//! * **block**: every request answers 403, even in shadow mode.
//! * **tier**: the account is charged under this tier, whatever the config or the
//!   host application says.
//! * **unlink**: the account is charged alone, as its own singleton cluster (and
//!   the cluster engine, when present, is told to unlink it).
//!
//! With the embedded store, overrides live in memory: they survive config reloads
//! but not a restart; make a lasting change in the config (`[accounts]`) or the
//! host application. With `[store] backend = "redis"` they are kept in Redis and
//! every replica follows them (see `RemoteOverrides`): one change applies
//! behind the whole load balancer and survives restarts.

#[cfg(feature = "redis")]
mod remote;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::OnceLock;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use remote::RemoteOverrides;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::extensions::AccountId;

/// Allowlisted or blocklisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Never blocked or throttled by suspicion.
    Allow,
    /// Always 403.
    Block,
}

/// Every override in force for one account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// Allowlisted or blocklisted.
    pub list: Option<ListKind>,
    /// The tier the account is pinned to.
    pub tier: Option<Arc<str>>,
    /// Charged alone, outside any cluster.
    pub unlinked: bool,
    /// The operator's note (a ticket number, say).
    pub note: Option<String>,
    /// When it was last changed (Unix milliseconds).
    pub updated_at_ms: u64,
}

impl Override {
    fn is_empty(&self) -> bool {
        self.list.is_none() && self.tier.is_none() && !self.unlinked
    }
}

/// One change to an account's override (`POST /api/overrides` names it in its
/// `action` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideAction {
    /// Allowlist.
    Allow,
    /// Blocklist.
    Block,
    /// Remove from the allow- or blocklist.
    Unlist,
    /// Pin to `tier`.
    PinTier,
    /// Remove the tier pin.
    UnpinTier,
    /// Charge alone, outside its cluster.
    Unlink,
    /// Undo `unlink`.
    Relink,
    /// Remove every override of the account.
    Clear,
}

/// The overrides in force.
#[derive(Debug, Default)]
pub struct Overrides {
    map: DashMap<AccountId, Override>,
    len: AtomicUsize,
    #[cfg(feature = "redis")]
    remote: OnceLock<RemoteOverrides>,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// The override of `account`, if any (a cheap check when there are none).
    pub fn get(&self, account: &AccountId) -> Option<Override> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.map.get(account).map(|o| o.clone())
    }

    /// Applies `action` to `account` in this process only; `tier` must already
    /// be checked to exist. Returns what is in force afterwards.
    pub fn apply(
        &self,
        account: AccountId,
        action: OverrideAction,
        tier: Option<Arc<str>>,
        note: Option<String>,
        now_ms: u64,
    ) -> Override {
        let next = self.preview(&account, action, tier, note, now_ms);
        self.set(account, next.clone());
        next
    }

    /// Applies `action` to `account` everywhere: first in Redis when the
    /// overrides are shared (an error there changes nothing), then here.
    pub async fn change(
        &self,
        account: AccountId,
        action: OverrideAction,
        tier: Option<Arc<str>>,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Override, String> {
        let next = self.preview(&account, action, tier, note, now_ms);
        #[cfg(feature = "redis")]
        if let Some(remote) = self.remote.get() {
            remote.save(&account, &next).await?;
        }
        self.set(account, next.clone());
        Ok(next)
    }

    /// Whether changes are kept in Redis and followed by every replica.
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        {
            self.remote.get().is_some()
        }
        #[cfg(not(feature = "redis"))]
        {
            false
        }
    }

    /// Keeps overrides in Redis from now on (the first call wins).
    #[cfg(feature = "redis")]
    pub(crate) fn attach_remote(&self, remote: RemoteOverrides) {
        let _ = self.remote.set(remote);
    }

    /// What `action` would leave in force for `account`.
    fn preview(
        &self,
        account: &AccountId,
        action: OverrideAction,
        tier: Option<Arc<str>>,
        note: Option<String>,
        now_ms: u64,
    ) -> Override {
        let mut o = self.map.get(account).map(|o| o.clone()).unwrap_or_default();
        match action {
            OverrideAction::Allow => o.list = Some(ListKind::Allow),
            OverrideAction::Block => o.list = Some(ListKind::Block),
            OverrideAction::Unlist => o.list = None,
            OverrideAction::PinTier => o.tier = tier,
            OverrideAction::UnpinTier => o.tier = None,
            OverrideAction::Unlink => o.unlinked = true,
            OverrideAction::Relink => o.unlinked = false,
            OverrideAction::Clear => o = Override::default(),
        }
        if note.is_some() {
            o.note = note;
        }
        o.updated_at_ms = now_ms;
        o
    }

    /// Puts `o` in force for `account` (an empty override removes it).
    fn set(&self, account: AccountId, o: Override) {
        if o.is_empty() {
            self.map.remove(&account);
        } else {
            self.map.insert(account, o);
        }
        self.len.store(self.map.len(), Ordering::Relaxed);
    }

    /// Makes the overrides in force exactly `all` (what Redis holds).
    #[cfg(feature = "redis")]
    fn replace_all(&self, all: Vec<(AccountId, Override)>) {
        let keep: std::collections::HashSet<AccountId> = all.iter().map(|e| e.0).collect();
        self.map.retain(|a, _| keep.contains(a));
        for (a, o) in all {
            if !o.is_empty() {
                self.map.insert(a, o);
            }
        }
        self.len.store(self.map.len(), Ordering::Relaxed);
    }

    /// Every override, sorted by account.
    pub fn list(&self) -> Vec<(AccountId, Override)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// Counts: allowlisted, blocklisted, tier-pinned, unlinked.
    pub fn counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for e in self.map.iter() {
            match e.list {
                Some(ListKind::Allow) => c[0] += 1,
                Some(ListKind::Block) => c[1] += 1,
                None => {}
            }
            c[2] += usize::from(e.tier.is_some());
            c[3] += usize::from(e.unlinked);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_and_clear() {
        let o = Overrides::new();
        let a = AccountId([1; 16]);
        assert!(o.get(&a).is_none());
        o.apply(a, OverrideAction::Block, None, Some("T-1".into()), 5);
        o.apply(a, OverrideAction::PinTier, Some("gold".into()), None, 6);
        let got = o.get(&a).expect("set");
        assert_eq!(got.list, Some(ListKind::Block));
        assert_eq!(got.tier.as_deref(), Some("gold"));
        assert_eq!(got.note.as_deref(), Some("T-1"));
        assert_eq!(o.counts(), [0, 1, 1, 0]);
        o.apply(a, OverrideAction::Unlist, None, None, 7);
        o.apply(a, OverrideAction::UnpinTier, None, None, 8);
        assert!(o.get(&a).is_none(), "empty overrides are removed");
        assert!(o.list().is_empty());
    }
}

//! Hot reload: on SIGHUP, when the config file changes, or on `POST /api/reload`.
//!
//! A reload reads the file, applies the command line's overrides, validates the
//! whole config and only then swaps it in atomically ([`Guard::reload`]). Bucket
//! state lives in the store and is untouched, and so are overrides and the decision
//! memory. A bad config is rejected with every error, logged, counted
//! (`distill_guard_config_reloads_total{result="error"}`) and shown in
//! `/api/status`; the old config keeps serving.
//!
//! What a reload cannot change: listen addresses and the upstream (`[server]`,
//! `[admin] listen`), `admin.recent_decisions` and `admin.watch_config` need a
//! restart (a warning is logged when they differ). An `[audit]` change restarts
//! the audit writer; an `[admin] token` change takes effect at once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError};
use crate::guard::Guard;
use crate::telemetry::{unix_ms, Telemetry};

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// The config file changed.
    FileChange,
    /// `POST /api/reload`.
    Api,
    /// A direct call.
    Manual,
}

/// The last reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// When (Unix milliseconds).
    pub at_unix_ms: u64,
    /// What started it.
    pub trigger: Trigger,
    /// Whether the new config is in force.
    pub ok: bool,
    /// Every problem, when rejected.
    pub errors: Vec<String>,
    /// Warnings (settings that need a restart).
    pub warnings: Vec<String>,
}

/// Reload state for `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// 1 for the config loaded at start, +1 per successful reload.
    pub generation: u64,
    /// When the config in force was loaded (Unix milliseconds).
    pub loaded_at_unix_ms: u64,
    /// The config file, if there is one.
    pub source: Option<String>,
    /// Successful reloads.
    pub reloads_ok: u64,
    /// Rejected reloads.
    pub reloads_failed: u64,
    /// The last attempt.
    pub last_attempt: Option<Attempt>,
}

/// Why a reload was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// There is no file to reload from (the guard was started without one).
    #[error("no config file to reload from (started without --config)")]
    NoSource,
    /// The new config is invalid; the old one stays.
    #[error("{0}")]
    Invalid(ConfigError),
}

type Adjust = dyn Fn(&mut Config) + Send + Sync;

struct Inner {
    guard: Guard,
    telemetry: Arc<Telemetry>,
    path: Option<PathBuf>,
    adjust: Mutex<Arc<Adjust>>,
    status: Mutex<ReloadStatus>,
    /// Digest of the file content last tried, so an unchanged (or still broken)
    /// file is not reloaded every poll.
    last_digest: Mutex<Option<[u8; 32]>>,
    /// Serialises reloads.
    lock: tokio::sync::Mutex<()>,
}

/// Reloads a guard's config. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Reloader {
    /// A reloader for `guard` reading `path` (`None`: nothing to reload from; the
    /// status is still reported). `telemetry` (the guard's sink) counts reloads
    /// and gets a new audit writer when `[audit]` changes.
    pub fn new(guard: Guard, telemetry: Arc<Telemetry>, path: Option<PathBuf>) -> Self {
        let last = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| digest(&b));
        let status = ReloadStatus {
            generation: 1,
            loaded_at_unix_ms: unix_ms(),
            source: path.as_ref().map(|p| p.display().to_string()),
            reloads_ok: 0,
            reloads_failed: 0,
            last_attempt: None,
        };
        telemetry
            .metrics()
            .reload(true, 1, status.loaded_at_unix_ms as f64 / 1000.0);
        Self {
            inner: Arc::new(Inner {
                guard,
                telemetry,
                path,
                adjust: Mutex::new(Arc::new(|_: &mut Config| {})),
                status: Mutex::new(status),
                last_digest: Mutex::new(last),
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Applies `f` to every newly read config before validation (the command
    /// line's overrides, for instance). Replaces an earlier one; applies to every
    /// clone.
    pub fn with_adjust(self, f: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        *self
            .inner
            .adjust
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(f);
        self
    }

    /// The reload state.
    pub fn status(&self) -> ReloadStatus {
        self.inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file and reloads it. On error the old config stays in force.
    pub async fn reload(&self, trigger: Trigger) -> Result<ReloadStatus, ReloadError> {
        let Some(path) = self.inner.path.clone() else {
            return Err(ReloadError::NoSource);
        };
        let _serial = self.inner.lock.lock().await;
        let result = match std::fs::read(&path) {
            Ok(bytes) => {
                *self
                    .inner
                    .last_digest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(digest(&bytes));
                match String::from_utf8(bytes) {
                    Ok(text) => self.apply_text(&text).await,
                    Err(_) => Err(ConfigError::single("", "the file is not valid UTF-8")),
                }
            }
            Err(e) => Err(ConfigError::single(
                "",
                format!("cannot read {}: {e}", path.display()),
            )),
        };
        self.finish(trigger, result)
    }

    /// Reloads from TOML text (for hosts that keep config elsewhere).
    pub async fn reload_text(
        &self,
        text: &str,
        trigger: Trigger,
    ) -> Result<ReloadStatus, ReloadError> {
        let _serial = self.inner.lock.lock().await;
        let result = self.apply_text(text).await;
        self.finish(trigger, result)
    }

    async fn apply_text(&self, text: &str) -> Result<Vec<String>, ConfigError> {
        let mut config = Config::from_toml_str(text)?;
        let adjust = self
            .inner
            .adjust
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        adjust(&mut config);
        config.validate()?;
        let guard = &self.inner.guard;
        let old = guard.shared().settings().config.clone();
        let mut warnings = Vec::new();
        if config.server != old.server {
            warnings.push("[server] changes take effect only after a restart".to_owned());
        }
        if config.admin.listen != old.admin.listen
            || config.admin.recent_decisions != old.admin.recent_decisions
            || config.admin.watch_config != old.admin.watch_config
        {
            warnings.push(
                "admin.listen, admin.recent_decisions and admin.watch_config take effect only after a restart"
                    .to_owned(),
            );
        }
        let telemetry = &self.inner.telemetry;
        let new_audit = if config.audit != old.audit {
            match crate::audit::start(&config.audit, telemetry.metrics().audit_counters()).await {
                Ok(sink) => Some(sink),
                Err(e) => {
                    return Err(ConfigError::single(
                        "audit.path",
                        format!("cannot open the audit log: {e}"),
                    ))
                }
            }
        } else {
            None
        };
        guard.reload(config)?;
        match new_audit {
            Some(Some((sink, task))) => telemetry.install_audit(sink, task),
            Some(None) => telemetry.set_audit(None),
            None => {}
        }
        Ok(warnings)
    }

    fn finish(
        &self,
        trigger: Trigger,
        result: Result<Vec<String>, ConfigError>,
    ) -> Result<ReloadStatus, ReloadError> {
        let now = unix_ms();
        let metrics = self.inner.telemetry.metrics();
        let mut st = self
            .inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(warnings) => {
                st.generation += 1;
                st.loaded_at_unix_ms = now;
                st.reloads_ok += 1;
                for w in &warnings {
                    tracing::warn!(?trigger, "config reload: {w}");
                }
                tracing::info!(?trigger, generation = st.generation, "config reloaded");
                st.last_attempt = Some(Attempt {
                    at_unix_ms: now,
                    trigger,
                    ok: true,
                    errors: Vec::new(),
                    warnings,
                });
                metrics.reload(true, st.generation, now as f64 / 1000.0);
                Ok(st.clone())
            }
            Err(e) => {
                st.reloads_failed += 1;
                tracing::error!(
                    ?trigger,
                    "config reload rejected; the previous config stays in force:\n{e}"
                );
                st.last_attempt = Some(Attempt {
                    at_unix_ms: now,
                    trigger,
                    ok: false,
                    errors: e.errors.iter().map(|f| f.to_string()).collect(),
                    warnings: Vec::new(),
                });
                metrics.reload(false, st.generation, 0.0);
                Err(ReloadError::Invalid(e))
            }
        }
    }

    /// True when the file's content differs from the last one tried.
    fn changed(&self) -> bool {
        let Some(path) = &self.inner.path else {
            return false;
        };
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        let d = digest(&bytes);
        let last = self
            .inner
            .last_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last != Some(d)
    }

    /// Spawns the watchers on the current runtime: SIGHUP (Unix) and, when
    /// `poll` is given, a check of the file every `poll` (by content digest, so
    /// a touched but unchanged file is not reloaded). They run until the runtime
    /// stops.
    pub fn spawn_watchers(&self, poll: Option<Duration>) {
        #[cfg(unix)]
        {
            let me = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut hup = match signal(SignalKind::hangup()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGHUP; reload via the admin API or file changes");
                        return;
                    }
                };
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the config");
                    if let Err(ReloadError::NoSource) = me.reload(Trigger::Signal).await {
                        tracing::warn!("SIGHUP ignored: started without a config file");
                    }
                }
            });
        }
        if let (Some(every), Some(_)) = (poll, &self.inner.path) {
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let me2 = me.clone();
                    let changed = tokio::task::spawn_blocking(move || me2.changed())
                        .await
                        .unwrap_or(false);
                    if changed {
                        tracing::info!("config file changed: reloading");
                        let _ = me.reload(Trigger::FileChange).await;
                    }
                }
            });
        }
    }
}

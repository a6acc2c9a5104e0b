//! Connections to the configured Redis, shared by everything that talks to it:
//! the quota store, the shared cluster log and the shared overrides.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Client;

use crate::config::ConfigError;
use crate::store::StoreConfig;

/// A lazily connecting, self-reconnecting multiplexed connection to the Redis of
/// `config`, whose calls give up after `response` (connecting after
/// `config.timeout`). Must be called inside a Tokio runtime.
pub(crate) fn manager(
    config: &StoreConfig,
    response: Duration,
) -> Result<ConnectionManager, ConfigError> {
    let url = config
        .url
        .as_deref()
        .ok_or_else(|| ConfigError::single("store.url", "required for the Redis backend"))?;
    super::check_url(url).map_err(|m| ConfigError::single("store.url", m))?;
    tokio::runtime::Handle::try_current().map_err(|_| {
        ConfigError::single(
            "store",
            "the Redis backend must be started inside a Tokio runtime",
        )
    })?;
    let client = Client::open(url).map_err(|e| ConfigError::single("store.url", e.to_string()))?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_lazy_with_config(client, cfg)
        .map_err(|e| ConfigError::single("store.url", e.to_string()))
}

//! The library installs no process-wide rustls crypto provider: a `rediss://`
//! store built before the application chose one is a clear configuration error,
//! never a panic on the first connection. (Its own test binary: no other test
//! may install a provider first.)

use distill_guard::store::{build_store, Backend, StoreConfig};

#[tokio::test]
async fn rediss_needs_the_applications_crypto_provider() {
    let config = StoreConfig {
        backend: Backend::Redis,
        url: Some("rediss://127.0.0.1:1".into()),
        ..StoreConfig::default()
    };
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let err = build_store(&config).expect_err("no provider chosen yet");
    assert_eq!(err.errors[0].path, "store.url", "{err}");
    assert!(err.to_string().contains("crypto provider"), "{err}");
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "building the store installed nothing"
    );
    // Plain `redis://` needs none.
    let plain = StoreConfig {
        url: Some("redis://127.0.0.1:1".into()),
        ..config.clone()
    };
    build_store(&plain).expect("no TLS, no provider needed");
    // Once the application installs one, the same config builds (connecting is
    // lazy: nothing listens there).
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("first install");
    build_store(&config).expect("provider chosen");
}

//! The shipped reference config parses and validates.

use distill_guard::config::Config;

#[test]
fn examples_guard_toml_is_valid() {
    let text = include_str!("../examples/guard.toml");
    let cfg = Config::from_toml_str(text).expect("examples/guard.toml must be valid");
    assert_eq!(cfg.tiers["enterprise"].requests_per_day.limit(), None);
    let gpt5 = &cfg.tiers["default"].models["gpt-5*"];
    assert_eq!(
        gpt5.limits(),
        [Some(10), None, Some(40_000), Some(1_000_000)]
    );
    assert_eq!(cfg.quota.bands.len(), 4);
    // The reference shows the defaults: it must not drift from the code.
    let defaults = Config::with_secret("x");
    assert_eq!(cfg.quota, defaults.quota);
    assert_eq!(cfg.fingerprint, defaults.fingerprint);
    assert_eq!(cfg.cluster, defaults.cluster);
    assert_eq!(cfg.score, defaults.score);
    assert_eq!(cfg.store, defaults.store);
    assert_eq!(cfg.guard, defaults.guard);
    assert_eq!(cfg.server, defaults.server);
}

#[test]
fn the_shape_other_tools_write_is_accepted() {
    Config::from_toml_str(
        "[identity]\nsecret = \"change-me\"\n[tiers.default]\nrequests_per_minute = 60\ntokens_per_minute = 150000\n",
    )
    .expect("valid");
}

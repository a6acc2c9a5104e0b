//! [`LinkSource`]: hard links that another part of the service finds in a
//! request, handed to the detect stage without it knowing where they come from.

use crate::extensions::{AccountId, HardLink};
use crate::request::RequestInfo;

/// Finds hard links in a request, beyond the [`HardLink`] extension the host
/// application may insert itself. The guard plugs in the watermark stage's: every
/// account carries the link its text-marked answers would be traced by, and a
/// prompt that echoes marks issued to another account carries that account's
/// link too, so the two are linked outright.
///
/// `()` finds none (the default); a closure
/// `Fn(&AccountId, &RequestInfo, &mut Vec<HardLink>)` is a source.
pub trait LinkSource: Send + Sync + 'static {
    /// Appends the hard links of `request`, sent by `account`, to `links`
    /// (skipping any already there).
    fn links(&self, account: &AccountId, request: &RequestInfo, links: &mut Vec<HardLink>);
}

impl LinkSource for () {
    fn links(&self, _: &AccountId, _: &RequestInfo, _: &mut Vec<HardLink>) {}
}

impl<F> LinkSource for F
where
    F: Fn(&AccountId, &RequestInfo, &mut Vec<HardLink>) + Send + Sync + 'static,
{
    fn links(&self, account: &AccountId, request: &RequestInfo, links: &mut Vec<HardLink>) {
        self(account, request, links)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use tower::{service_fn, Layer, ServiceExt};

    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::detect::{DetectLayer, Detector};
    use crate::extensions::{AccountId, Cluster, HardLink};
    use crate::identity::Identity;
    use crate::network::PeerAddr;
    use crate::request::RequestInfo;
    use crate::stage::LiveSettings;

    async fn cluster_of(layer: &DetectLayer, key: &str, ip: [u8; 4]) -> Cluster {
        // Unrelated words per account, as ordinary users write.
        let seed = key
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let words: String = (0..40u64)
            .map(|k| format!("t{} ", (seed.wrapping_mul(7919) + k * 104_729) % 100_003))
            .collect();
        let seen = Arc::new(Mutex::new(None));
        let handler = {
            let seen = seen.clone();
            service_fn(move |req: Request<Full<Bytes>>| {
                *seen.lock().expect("lock") = req.extensions().get::<Cluster>().copied();
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
            })
        };
        let ua = ["OpenAI/Python 1.40.0", "curl/8.5.0", "Mozilla/5.0"][(seed % 3) as usize];
        let mut req = Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .header("user-agent", ua)
            .body(Full::new(Bytes::from(format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#
            ))))
            .expect("request");
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::from((ip, 40_000))));
        let res = layer.layer(handler).oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), 200);
        let cluster = seen.lock().expect("lock").take();
        cluster.expect("the stage inserted a cluster")
    }

    #[tokio::test]
    async fn a_standalone_detect_stage_takes_hard_links_from_its_source() {
        let cfg = Config::with_secret("test-secret");
        // Built from a config alone it fingerprints and clusters.
        let plain = DetectLayer::from_config(&cfg).expect("valid");
        assert_eq!(cluster_of(&plain, "sk-one", [198, 51, 1, 7]).await.size, 1);
        // A source that finds the same payment instrument behind two accounts
        // links them (after the engine has seen enough ordinary traffic).
        // (A manual clock: requests a second apart, as independent users send them.)
        let clock = ManualClock::new(1_714_000_000_000);
        let detector = Arc::new(Detector::from_config(&cfg).expect("valid"));
        let settings = LiveSettings::from_config(cfg).expect("valid");
        let identity = Identity::new(b"test-secret");
        let cards = [
            identity.hash_key("sk-card-one"),
            identity.hash_key("sk-card-two"),
        ];
        let calls = Arc::new(Mutex::new(0));
        let linked = DetectLayer::new(settings, detector, Arc::new(clock.clone()))
            .with_link_source({
                let calls = calls.clone();
                move |account: &AccountId, _: &RequestInfo, links: &mut Vec<HardLink>| {
                    *calls.lock().expect("lock") += 1;
                    if cards.contains(account) {
                        links.push(HardLink("card-fingerprint-77".into()));
                    }
                }
            });
        for i in 0..60u8 {
            clock.advance_ms(1_000);
            let key = format!("sk-organic-{i}");
            assert_eq!(cluster_of(&linked, &key, [198, 18, i, 7]).await.size, 1);
        }
        clock.advance_ms(5_000);
        assert_eq!(
            cluster_of(&linked, "sk-card-one", [198, 51, 1, 7])
                .await
                .size,
            1
        );
        clock.advance_ms(5_000);
        assert_eq!(
            cluster_of(&linked, "sk-card-two", [203, 0, 113, 9])
                .await
                .size,
            2
        );
        assert_eq!(*calls.lock().expect("lock"), 62);
    }
}

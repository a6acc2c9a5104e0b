//! [`Fingerprint`]: everything the guard learns about one request, and its
//! mapping to clustering [`Feature`]s.

use std::net::IpAddr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::behaviour::Behaviour;
use super::body::conversation;
use super::client::ClientFingerprint;
use super::hash::{hash_str, seed, StableHasher};
use super::network::NetworkFingerprint;
use super::settings::FingerprintSettings;
use super::shape::ShapeFingerprint;
use super::template::TemplateFingerprint;
use crate::features::{Feature, FeatureKind};
use crate::request::RequestInfo;

/// The fingerprint of one request: a request extension that handlers can read.
///
/// Built by [`Fingerprint::compute`]; cheap enough to compute on every request
/// (a few microseconds for a 4 KB chat body). Holds hashes and short software
/// identifiers only: no prompt text, no address, no key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Which software sent it.
    pub client: ClientFingerprint,
    /// Where it comes from.
    pub network: NetworkFingerprint,
    /// How its JSON is built; `None` when the body is not a JSON object.
    pub shape: Option<ShapeFingerprint>,
    /// What its prompt looks like; `None` when the body is not a JSON object.
    pub template: Option<TemplateFingerprint>,
    /// What it asks for and how; `None` when the body is not a JSON object.
    pub behaviour: Option<Behaviour>,
}

impl Fingerprint {
    /// Fingerprints a request from its headers, its TCP peer (see
    /// [`crate::network::peer_of`]) and its parsed body. Never fails and never
    /// panics: a body that is not JSON, or of an unknown shape, still gets the
    /// client and network parts.
    pub fn compute(
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        info: &RequestInfo,
        cfg: &FingerprintSettings,
    ) -> Self {
        let trusted_peer = cfg.is_trusted_peer(peer);
        let client = ClientFingerprint::compute(headers, trusted_peer, cfg);
        let network = NetworkFingerprint::compute(headers, peer, trusted_peer, cfg);
        let (shape, template, behaviour) = match info.json.as_ref().and_then(|v| v.as_object()) {
            Some(body) => {
                let conv = conversation(body, cfg.max_items);
                let shape = ShapeFingerprint::compute(body, &conv);
                let template = TemplateFingerprint::compute(
                    &conv,
                    shape.params.reasoning_requested(),
                    info.input_tokens_estimate,
                    cfg,
                );
                let behaviour = Behaviour::compute(&conv, &shape.params, &template);
                (Some(shape), Some(template), Some(behaviour))
            }
            None => (None, None, None),
        };
        Self {
            client,
            network,
            shape,
            template,
            behaviour,
        }
    }

    /// Fingerprints a request whose body has been parsed into an
    /// `Arc<RequestInfo>` extension (as the guard's first stage does); without
    /// one, only headers and peer are read.
    pub fn of_request<B>(req: &http::Request<B>, cfg: &FingerprintSettings) -> Self {
        let peer = crate::network::peer_of(req.extensions());
        match req.extensions().get::<crate::request::SharedRequestInfo>() {
            Some(info) => Self::compute(req.headers(), peer, info, cfg),
            None => {
                let info = RequestInfo::parse(req.uri().path(), bytes::Bytes::new());
                Self::compute(req.headers(), peer, &info, cfg)
            }
        }
    }

    /// True when the client's headers contradict its user-agent.
    pub fn inconsistent(&self) -> bool {
        self.client.inconsistent()
    }

    /// The specific values of this fingerprint as clustering features, each with
    /// its family and a stable kind name:
    ///
    /// | family | kinds |
    /// |---|---|
    /// | client | `header_order`, `user_agent`, `stainless`, `accept_values`, `tls` |
    /// | network | `ip_prefix`, `asn`, `datacenter` |
    /// | shape | `key_order`, `params`, `tool_schema` |
    /// | template | `system_prompt`, `head_lsh_band` (one per band), `tail_lsh_band` (one per band) |
    /// | behaviour | `behaviour_signature` (single-turn requests only) |
    ///
    /// Absent values give no feature. Values are hashes with the family, kind
    /// and (for bands) band index mixed in.
    pub fn features(&self) -> Vec<Feature> {
        let mut out = Vec::with_capacity(32);
        let c = &self.client;
        push(&mut out, FeatureKind::HeaderOrder, Some(c.header_order));
        push(&mut out, FeatureKind::UserAgent, c.user_agent_hash());
        push(
            &mut out,
            FeatureKind::Stainless,
            c.stainless.as_ref().map(|s| s.set_hash),
        );
        push(&mut out, FeatureKind::AcceptValues, c.accept_values_hash());
        push(&mut out, FeatureKind::Tls, c.tls);
        let n = &self.network;
        push(&mut out, FeatureKind::IpPrefix, n.prefix);
        push(&mut out, FeatureKind::Asn, n.asn);
        push(&mut out, FeatureKind::Datacenter, n.datacenter);
        if let Some(s) = &self.shape {
            push(&mut out, FeatureKind::KeyOrder, Some(s.key_order));
            push(&mut out, FeatureKind::Params, Some(s.params_hash));
            push(
                &mut out,
                FeatureKind::ToolSchema,
                s.tools.as_ref().map(|t| t.schema_hash),
            );
        }
        if let Some(t) = &self.template {
            push(&mut out, FeatureKind::SystemPrompt, t.system_prompt);
            for (kind, sketch) in [
                (FeatureKind::HeadLshBand, &t.head),
                (FeatureKind::TailLshBand, &t.tail),
            ] {
                if let Some(s) = sketch {
                    for band in &s.bands {
                        push(&mut out, kind, Some(*band));
                    }
                }
            }
        }
        if let Some(b) = &self.behaviour {
            if b.turns == super::behaviour::Turns::Single {
                push(
                    &mut out,
                    FeatureKind::BehaviourSignature,
                    Some(b.signature()),
                );
            }
        }
        out
    }

    /// The request's extraction score (see [`Behaviour::extraction`]); zero
    /// without a JSON body.
    pub fn extraction(&self) -> f32 {
        self.behaviour.map_or(0.0, |b| b.extraction())
    }
}

fn push(out: &mut Vec<Feature>, kind: FeatureKind, raw: Option<u64>) {
    if let Some(raw) = raw {
        let mut h = StableHasher::new(seed::FEATURE);
        h.write_str(kind.family().as_str());
        h.write_u64(hash_str(seed::FEATURE, kind.as_str()));
        h.write_u64(raw);
        out.push(Feature {
            kind,
            value: h.finish(),
        });
    }
}

//! Per-request content signals, each in `0..=1`, read from the request's
//! [`Fingerprint`] (which has already scanned the system prompt and the head and
//! tail of the last user turn).

use crate::fingerprint::{Fingerprint, TaskCategory};

/// The per-request signals the engine averages, in the order of
/// [`crate::cluster::Observation::signals`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// Chain-of-thought elicitation: a "step by step" / "full reasoning" phrase,
    /// or high reasoning effort / a thinking budget.
    pub cot: f32,
    /// Narrow capability focus: coding, agentic tool use, mathematical reasoning.
    pub focus: f32,
    /// `logprobs` / `top_logprobs` / `logit_bias`.
    pub probing: f32,
    /// Client headers that contradict the user agent.
    pub inconsistency: f32,
    /// How much the request looks like harvesting (see
    /// [`crate::fingerprint::Behaviour::extraction`]).
    pub extraction: f32,
    /// 1 when the request looks like ordinary use (see
    /// [`crate::fingerprint::Behaviour::benign`]).
    pub benign: f32,
}

impl Signals {
    /// As the array the engine stores.
    pub fn to_array(self) -> [f32; crate::cluster::SIGNALS] {
        [
            self.cot,
            self.focus,
            self.probing,
            self.inconsistency,
            self.extraction,
            self.benign,
        ]
    }

    /// Reads the signals of one request from its fingerprint.
    pub fn of(fp: &Fingerprint) -> Self {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let (cot, focus) = match &fp.template {
            Some(t) => (
                flag(t.cot.any()),
                flag(matches!(
                    t.task,
                    TaskCategory::Coding | TaskCategory::AgenticTools | TaskCategory::MathReasoning
                )),
            ),
            None => (0.0, 0.0),
        };
        Signals {
            cot,
            focus,
            probing: flag(
                fp.shape
                    .as_ref()
                    .is_some_and(|s| s.params.probes_distribution()),
            ),
            inconsistency: flag(fp.inconsistent()),
            extraction: fp.extraction(),
            benign: flag(fp.behaviour.is_some_and(|b| b.benign())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FingerprintSettings;
    use crate::request::RequestInfo;
    use bytes::Bytes;
    use http::HeaderMap;

    fn signals(body: &str, headers: &HeaderMap) -> Signals {
        let info = RequestInfo::parse("/v1/chat/completions", Bytes::from(body.to_owned()));
        let fp = Fingerprint::compute(headers, None, &info, &FingerprintSettings::default());
        Signals::of(&fp)
    }

    #[test]
    fn cot_probing_and_focus_are_read() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", "OpenAI/Python 1.40.0".parse().expect("hv"));
        h.insert("x-stainless-lang", "python".parse().expect("hv"));
        let s = signals(
            r#"{"model":"m","logit_bias":{"50256":-100},"messages":[{"role":"user","content":"Implement quicksort in Python:\n```python\ndef f(): pass\n```\nThink step by step and show your full reasoning."}]}"#,
            &h,
        );
        assert_eq!(s.cot, 1.0, "{s:?}");
        assert_eq!(s.probing, 1.0);
        assert_eq!(s.focus, 1.0);
        assert_eq!(s.inconsistency, 0.0);
        let plain = signals(
            r#"{"messages":[{"role":"user","content":"What a lovely day for a walk"}]}"#,
            &h,
        );
        assert_eq!(plain.to_array(), [0.0; 6]);
    }

    #[test]
    fn sdk_user_agent_without_sdk_headers_is_inconsistent() {
        let mut h = HeaderMap::new();
        h.insert("user-agent", "OpenAI/Python 1.40.0".parse().expect("hv"));
        let s = signals(r#"{"messages":[]}"#, &h);
        assert_eq!(s.inconsistency, 1.0);
        for body in ["", "null", "[1]", r#"{"messages":7}"#] {
            let _ = signals(body, &h);
        }
    }
}

//! What a request asks for and how, independent of its wording and of the
//! software and network it comes from: the behaviour a distillation operator
//! cannot rotate away without giving up what it came for.
//!
//! A harvesting request is a single turn with no history and no tools, asks
//! for a large output budget and high reasoning effort, asks for the full
//! reasoning (in whatever words), and is about code, mathematics or other
//! capabilities worth copying. People ask for each of these now and then; an
//! operator asks for all of them on every request. [`Behaviour::extraction`]
//! scores one request in `0..=1`; the linking engine accumulates it per account
//! (see `[cluster.behaviour]`), so one request never decides anything.

use serde::{Deserialize, Serialize};

use super::body::{Conversation, Role};
use super::hash::{seed, StableHasher};
use super::shape::{log2_bucket, Params};
use super::template::{TaskCategory, TemplateFingerprint};

/// The turn structure of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Turns {
    /// One user turn, no earlier answers, no tools.
    Single,
    /// A conversation: earlier answers of the model are in the request.
    Conversation,
    /// Tools are declared, called or answered.
    Agentic,
}

/// The behaviour of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behaviour {
    /// Turn structure.
    pub turns: Turns,
    /// The output the request allows, in tokens: its output cap or thinking
    /// budget, whichever is larger (`None` when it sets neither).
    pub budget: Option<u64>,
    /// Reasoning requested: 0 none or low, 1 medium, 2 high effort or thinking.
    pub reasoning: u8,
    /// Elicitation of the reasoning in the prompt, 0 to 3 (see
    /// [`TemplateFingerprint::elicitation`]).
    pub elicitation: u8,
    /// The task category.
    pub task: TaskCategory,
    /// Log2 bucket of the estimated input tokens.
    pub prompt_bucket: u8,
    /// A system prompt is present.
    pub system: bool,
}

/// Output budgets at and above these sizes weigh in, with these terms.
const BUDGET_TERMS: [(u64, f32); 3] = [(12_000, 0.35), (6_000, 0.3), (4_000, 0.15)];
/// An explicit output cap below this, without reasoning requested, caps the
/// extraction score (short answers are not worth harvesting).
const SMALL_CAP: u64 = 6_000;
/// Output caps at or below this, without reasoning or elicitation, are benign.
const BENIGN_CAP: u64 = 1_024;

impl Behaviour {
    pub(crate) fn compute(
        conv: &Conversation<'_>,
        params: &Params,
        template: &TemplateFingerprint,
    ) -> Self {
        let turns = if !conv.tools.is_empty() || conv.tool_traffic {
            Turns::Agentic
        } else if conv.roles.contains(&Role::Assistant)
            || conv.roles.iter().filter(|r| **r == Role::User).count() > 1
        {
            Turns::Conversation
        } else {
            Turns::Single
        };
        let budget = match (params.max_tokens, params.thinking_budget) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let reasoning = if params.thinking_budget_bucket.is_some() {
            2
        } else {
            match params.reasoning_effort.as_deref() {
                Some("high" | "xhigh" | "max") => 2,
                Some("medium") => 1,
                _ => 0,
            }
        };
        Self {
            turns,
            budget,
            reasoning,
            elicitation: template.elicitation,
            task: template.task,
            prompt_bucket: template.length_bucket,
            system: template.system_prompt.is_some(),
        }
    }

    /// How much the request looks like harvesting, in `0..=1`: zero for
    /// conversations and tool use, otherwise the sum of its output budget,
    /// reasoning effort, elicitation and task terms.
    pub fn extraction(&self) -> f32 {
        if self.turns != Turns::Single {
            return 0.0;
        }
        let budget = self.budget.map_or(0.0, |b| {
            BUDGET_TERMS
                .iter()
                .find(|(at, _)| b >= *at)
                .map_or(0.0, |(_, t)| *t)
        });
        let reasoning = match self.reasoning {
            2 => 0.3,
            1 => 0.15,
            _ => 0.0,
        };
        let elicitation = match self.elicitation {
            0 => 0.0,
            1 => 0.2,
            _ => 0.3,
        };
        let focus = match self.task {
            TaskCategory::Coding | TaskCategory::MathReasoning => 0.1,
            TaskCategory::AgenticTools | TaskCategory::Other => 0.0,
        };
        let mut x: f32 = budget + reasoning + elicitation + focus;
        if self.reasoning == 0 && self.budget.is_some_and(|b| b < SMALL_CAP) {
            x = x.min(0.4);
        }
        x.min(1.0)
    }

    /// True when the request looks like ordinary use: a conversation with
    /// history, or a small output cap with neither reasoning nor elicitation.
    pub fn benign(&self) -> bool {
        match self.turns {
            Turns::Conversation => self.reasoning < 2 && self.elicitation == 0,
            Turns::Agentic => false,
            Turns::Single => {
                self.reasoning == 0
                    && self.elicitation == 0
                    && self.budget.is_some_and(|b| b <= BENIGN_CAP)
            }
        }
    }

    /// A coarse signature of the behaviour (turns, budget bucket, reasoning,
    /// elicitation present, task, prompt-size band, system prompt present):
    /// shared by every request of one operator's template and by few others.
    pub fn signature(&self) -> u64 {
        let mut h = StableHasher::new(seed::FIELD);
        h.write_u64(self.turns as u64);
        h.write_u64(self.budget.map_or(u64::MAX, |b| u64::from(log2_bucket(b))));
        h.write_u64(u64::from(self.reasoning));
        h.write_u64(u64::from(self.elicitation > 0));
        h.write_u64(self.task as u64);
        h.write_u64(u64::from(self.prompt_bucket / 2));
        h.write_u64(u64::from(self.system));
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{Fingerprint, FingerprintSettings};
    use crate::request::RequestInfo;

    fn behaviour(body: serde_json::Value) -> Behaviour {
        let info = RequestInfo::parse("/v1/chat/completions", bytes::Bytes::from(body.to_string()));
        let fp = Fingerprint::compute(
            &http::HeaderMap::new(),
            None,
            &info,
            &FingerprintSettings::default(),
        );
        fp.behaviour.expect("a JSON body has a behaviour")
    }

    fn single(prompt: &str) -> serde_json::Value {
        serde_json::json!({
            "model": "m",
            "max_tokens": 16000,
            "reasoning_effort": "high",
            "messages": [{"role": "user", "content": prompt}],
        })
    }

    #[test]
    fn elicitation_is_read_in_wordings_no_list_names() {
        // None of these is one of the known phrases.
        for prompt in [
            "Lay out every intermediate deduction before you answer: how many primes are below 100?",
            "How many primes are below 100? Leave nothing out of your derivation.",
            "Spell out the complete rationale, please. Which sorting algorithm is stable?",
        ] {
            let b = behaviour(single(prompt));
            assert!(b.elicitation >= 1, "{prompt}: {b:?}");
            assert!(b.extraction() > 0.9, "{prompt}: {}", b.extraction());
        }
        // Reasoning words far from any request for all of it do not count.
        let b = behaviour(single(
            "My reasoning class meets on Tuesdays. What should I bring to the first lecture of the term?",
        ));
        assert_eq!(b.elicitation, 0, "{b:?}");
    }

    #[test]
    fn conversations_tools_and_small_caps_are_not_extraction() {
        let chat = serde_json::json!({
            "model": "m", "max_tokens": 16000, "reasoning_effort": "high",
            "messages": [
                {"role": "user", "content": "Show your full reasoning: is 91 prime?"},
                {"role": "assistant", "content": "No, 7 x 13."},
                {"role": "user", "content": "And 97?"},
            ],
        });
        let b = behaviour(chat);
        assert_eq!(b.turns, Turns::Conversation);
        assert_eq!(b.extraction(), 0.0);
        let small = serde_json::json!({
            "model": "m", "max_tokens": 256,
            "messages": [{"role": "user", "content": "Translate 'good morning' into French."}],
        });
        let b = behaviour(small);
        assert!(b.benign(), "{b:?}");
        assert!(b.extraction() < 0.45);
        let tools = serde_json::json!({
            "model": "m", "max_tokens": 16000,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "messages": [{"role": "user", "content": "Show every step of your work."}],
        });
        assert_eq!(behaviour(tools).turns, Turns::Agentic);
    }
}

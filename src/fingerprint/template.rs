//! The prompt-template fingerprint: the exact system prompt, near-duplicate
//! signatures of the head and tail of the last user turn, and cheap content
//! signals for the scorer.
//!
//! A distillation campaign wraps a varying payload in a fixed template ("Solve
//! the following problem … {payload} … think step by step and put the answer in
//! \boxed{}"). Two prompts from one template share their head and tail, not their
//! middle: their whole-prompt Jaccard similarity can be as low as 0.12. So the
//! signatures cover a window of masked tokens at each end of the last user turn.

use serde::{Deserialize, Serialize};

use super::body::Conversation;
use super::settings::FingerprintSettings;
use super::sketch::WindowSketch;
use super::text::{
    ceil_boundary, floor_boundary, is_mask, nfkc, normalized_hash, token_of, tokenize, Mask,
};
use std::sync::OnceLock;

/// Tokens of the last user turn and of the system prompt scanned for content
/// signals.
const MAX_SIGNAL_TOKENS: usize = 4096;
/// Bytes of the system prompt scanned for content signals.
const MAX_SIGNAL_SYSTEM_BYTES: usize = 2 * 1024;

/// A coarse guess of what the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskCategory {
    /// Writing, fixing or explaining code.
    Coding,
    /// Tool use: the request declares tools or carries tool calls or results.
    AgenticTools,
    /// Mathematics and formal reasoning.
    MathReasoning,
    /// Anything else.
    Other,
}

/// Signs that the request elicits chain-of-thought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CotSignals {
    /// A phrase such as "think step by step", "show your full reasoning" or
    /// "explain your reasoning in detail" in the system prompt or last user turn.
    pub phrase: bool,
    /// High reasoning effort or a thinking budget in the parameters.
    pub reasoning_requested: bool,
}

impl CotSignals {
    /// True when any signal fired.
    pub fn any(&self) -> bool {
        self.phrase || self.reasoning_requested
    }
}

/// What the prompt looks like, as hashes and plain signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateFingerprint {
    /// Exact hash of the normalised system prompt (OpenAI `system`/`developer`
    /// messages or `instructions`; Anthropic `system`).
    pub system_prompt: Option<u64>,
    /// Words in the system prompt.
    pub system_prompt_words: u32,
    /// Signature of the first `fingerprint.head_tokens` masked tokens of the last
    /// user turn.
    pub head: Option<WindowSketch>,
    /// Signature of the last `fingerprint.tail_tokens` masked tokens of the last
    /// user turn.
    pub tail: Option<WindowSketch>,
    /// Masked tokens read from the last user turn.
    pub user_tokens: u32,
    /// Chain-of-thought elicitation.
    pub cot: CotSignals,
    /// How strongly the prompt asks for the model's reasoning, in any wording:
    /// 0 (not at all) to 3. A word about reasoning (`reasoning`, `thinking`,
    /// `steps`, `derivation`, ...) close to a word asking for all of it
    /// (`full`, `every`, `show`, `detailed`, ...) in the opening or closing
    /// tokens of the last user turn or the start of the system prompt counts
    /// once per place; a known phrase counts two.
    pub elicitation: u8,
    /// The task category guess.
    pub task: TaskCategory,
    /// Log2 bucket of the estimated input tokens.
    pub length_bucket: u8,
}

/// Tokenizes text pieces into head and tail token lists; when the pieces are
/// longer than `max_bytes` together, the head reads the first half and the tail
/// the last half.
fn turn_tokens(
    pieces: &[&str],
    max_bytes: usize,
    max_tokens: usize,
) -> (Vec<u64>, Option<Vec<u64>>) {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut head = Vec::new();
    if total <= max_bytes {
        for p in pieces {
            tokenize(&nfkc(p), &mut head, max_tokens);
        }
        return (head, None);
    }
    let half = max_bytes / 2;
    let mut left = half;
    for p in pieces {
        if left == 0 {
            break;
        }
        let cut = &p[..floor_boundary(p, left)];
        left -= cut.len().min(left);
        tokenize(&nfkc(cut), &mut head, max_tokens);
    }
    // The tail: the last `half` bytes, walking the pieces backwards.
    let mut chosen: Vec<&str> = Vec::new();
    let mut left = half;
    for p in pieces.iter().rev() {
        if left == 0 {
            break;
        }
        let start = ceil_boundary(p, p.len().saturating_sub(left));
        let cut = &p[start..];
        left -= cut.len().min(left);
        chosen.push(cut);
    }
    let mut tail = Vec::new();
    for p in chosen.iter().rev() {
        tokenize(&nfkc(p), &mut tail, max_tokens);
    }
    (head, Some(tail))
}

impl TemplateFingerprint {
    pub(crate) fn compute(
        conv: &Conversation<'_>,
        reasoning_requested: bool,
        input_tokens: u64,
        cfg: &FingerprintSettings,
    ) -> Self {
        let (system_prompt, words) = match normalized_hash(&conv.system, cfg.max_text_bytes) {
            Some((h, n)) => (Some(h), u32::try_from(n).unwrap_or(u32::MAX)),
            None => (None, 0),
        };
        let max_tokens = cfg.max_text_bytes; // a token is at least one byte
        let (head_tokens, tail_tokens) =
            turn_tokens(&conv.last_user, cfg.max_text_bytes, max_tokens);
        let tail_src = tail_tokens.as_deref().unwrap_or(&head_tokens);
        let sketch =
            |w: &[u64]| WindowSketch::of(w, cfg.shingle_tokens, cfg.minhash_hashes, cfg.lsh_bands);
        let head = sketch(&head_tokens[..head_tokens.len().min(cfg.head_tokens)]);
        let tail = sketch(&tail_src[tail_src.len().saturating_sub(cfg.tail_tokens)..]);

        // Content signals over the last user turn and the start of the system prompt.
        let mut system_tokens = Vec::new();
        for p in &conv.system {
            if system_tokens.len() >= MAX_SIGNAL_TOKENS {
                break;
            }
            let cut = &p[..floor_boundary(p, MAX_SIGNAL_SYSTEM_BYTES)];
            tokenize(&nfkc(cut), &mut system_tokens, MAX_SIGNAL_TOKENS);
        }
        let user = &head_tokens[..head_tokens.len().min(MAX_SIGNAL_TOKENS)];
        let lex = lexicon();
        let phrase = lex.has_cot_phrase(user)
            || tail_tokens
                .as_deref()
                .is_some_and(|t| lex.has_cot_phrase(t))
            || lex.has_cot_phrase(&system_tokens);
        let tail_window = tail_tokens.as_deref().unwrap_or(&head_tokens);
        let mut elicitation = lex.elicitation(&user[..user.len().min(ELICIT_WINDOW)])
            + lex.elicitation(&tail_window[tail_window.len().saturating_sub(ELICIT_WINDOW)..])
            + lex.elicitation(&system_tokens[..system_tokens.len().min(2 * ELICIT_WINDOW)]);
        if phrase {
            elicitation += 2;
        }
        let task = if !conv.tools.is_empty() || conv.tool_traffic {
            TaskCategory::AgenticTools
        } else {
            lex.category(user, &system_tokens)
        };
        Self {
            system_prompt,
            system_prompt_words: words,
            head,
            tail,
            user_tokens: u32::try_from(head_tokens.len() + tail_tokens.map_or(0, |t| t.len()))
                .unwrap_or(u32::MAX),
            cot: CotSignals {
                phrase,
                reasoning_requested,
            },
            elicitation: u8::try_from(elicitation.min(3)).unwrap_or(3),
            task,
            length_bucket: super::shape::log2_bucket(input_tokens),
        }
    }
}

/// Tokens at each end of the user turn (and twice as many at the start of the
/// system prompt) read for elicitation: where a template's instructions sit,
/// not the middle of a pasted document.
const ELICIT_WINDOW: usize = 64;
/// Distance in tokens within which a reasoning word and an exhaustive word
/// make one request for the reasoning.
const NEAR: usize = 6;

/// Words that name the model's reasoning.
const REASONING_WORDS: &[&str] = &[
    "reasoning",
    "reason",
    "reasons",
    "thinking",
    "thought",
    "thoughts",
    "steps",
    "step",
    "work",
    "working",
    "workings",
    "logic",
    "derivation",
    "derive",
    "rationale",
    "scratchpad",
    "scratch",
    "analysis",
    "process",
    "justification",
    "justify",
    "intermediate",
    "chain",
    "walkthrough",
    "deliberation",
    "calculations",
    "calculation",
    "trace",
    "argument",
    "explanation",
    "solution",
    "approach",
    "rationales",
    "deduction",
];

/// Words that ask for all of it, or for it to be shown.
const EXHAUSTIVE_WORDS: &[&str] = &[
    "full",
    "all",
    "every",
    "each",
    "complete",
    "completely",
    "detailed",
    "detail",
    "entire",
    "whole",
    "explicit",
    "explicitly",
    "thorough",
    "thoroughly",
    "show",
    "display",
    "write",
    "spell",
    "lay",
    "expose",
    "visible",
    "verbose",
    "including",
    "include",
    "nothing",
    "skip",
    "omit",
    "leave",
    "unabridged",
    "exhaustive",
    "exhaustively",
    "everything",
    "walk",
    "reveal",
    "print",
    "output",
];

/// Chain-of-thought phrases, as token sequences.
const COT_PHRASES: &[&str] = &[
    "step by step",
    "show your reasoning",
    "show your full reasoning",
    "show all your reasoning",
    "show your work",
    "show your thinking",
    "explain your reasoning",
    "explain your thinking",
    "write out your reasoning",
    "write out your full reasoning",
    "full reasoning",
    "detailed reasoning",
    "complete reasoning",
    "reasoning process",
    "thought process",
    "chain of thought",
    "chain-of-thought",
    "think carefully",
    "think through",
    "reason through",
    "walk through your reasoning",
    "before giving the final answer",
];

const CODING_WORDS: &[&str] = &[
    "code",
    "function",
    "functions",
    "python",
    "javascript",
    "typescript",
    "rust",
    "java",
    "golang",
    "sql",
    "bug",
    "bugs",
    "debug",
    "compile",
    "compiler",
    "implement",
    "refactor",
    "class",
    "method",
    "regex",
    "script",
    "program",
    "programming",
    "api",
    "unit",
    "test",
    "tests",
    "stack",
    "exception",
    "repository",
    "def",
    "const",
    "struct",
    "html",
    "css",
    "algorithm",
    "leetcode",
    "runtime",
    "snippet",
];

const MATH_WORDS: &[&str] = &[
    "prove",
    "proof",
    "theorem",
    "lemma",
    "equation",
    "equations",
    "integral",
    "derivative",
    "solve",
    "calculate",
    "compute",
    "probability",
    "matrix",
    "polynomial",
    "boxed",
    "frac",
    "sqrt",
    "prime",
    "integer",
    "integers",
    "geometry",
    "triangle",
    "algebra",
    "limit",
    "sum",
    "math",
    "mathematical",
    "olympiad",
    "amc",
    "aime",
];

struct Lexicon {
    phrases: Vec<Vec<u64>>,
    /// Bitmap over the low 10 bits of phrase-start tokens: a quick reject.
    starts: [u64; 16],
    coding: Vec<u64>,
    math: Vec<u64>,
    /// Bitmap over the low 10 bits of the coding and math words.
    words: [u64; 16],
    reasoning: Vec<u64>,
    exhaustive: Vec<u64>,
    /// Bitmap over the low 10 bits of the reasoning and exhaustive words.
    elicit: [u64; 16],
}

fn set_bit(map: &mut [u64; 16], token: u64) {
    let b = (token & 1023) as usize;
    map[b / 64] |= 1 << (b % 64);
}

fn has_bit(map: &[u64; 16], token: u64) -> bool {
    let b = (token & 1023) as usize;
    map[b / 64] & (1 << (b % 64)) != 0
}

fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let phrases: Vec<Vec<u64>> = COT_PHRASES
            .iter()
            .map(|p| {
                let mut t = Vec::new();
                tokenize(p, &mut t, 16);
                t
            })
            .filter(|t| !t.is_empty())
            .collect();
        let mut starts = [0u64; 16];
        for p in &phrases {
            set_bit(&mut starts, p[0]);
        }
        let sorted = |words: &[&str]| {
            let mut v: Vec<u64> = words.iter().map(|w| token_of(w)).collect();
            v.sort_unstable();
            v
        };
        let coding = sorted(CODING_WORDS);
        let math = sorted(MATH_WORDS);
        let mut words = [0u64; 16];
        for t in coding.iter().chain(&math) {
            set_bit(&mut words, *t);
        }
        let reasoning = sorted(REASONING_WORDS);
        let exhaustive = sorted(EXHAUSTIVE_WORDS);
        let mut elicit = [0u64; 16];
        for t in reasoning.iter().chain(&exhaustive) {
            set_bit(&mut elicit, *t);
        }
        Lexicon {
            phrases,
            starts,
            coding,
            math,
            words,
            reasoning,
            exhaustive,
            elicit,
        }
    })
}

impl Lexicon {
    fn has_cot_phrase(&self, tokens: &[u64]) -> bool {
        for i in 0..tokens.len() {
            if !has_bit(&self.starts, tokens[i]) {
                continue;
            }
            if self.phrases.iter().any(|p| tokens[i..].starts_with(p)) {
                return true;
            }
        }
        false
    }

    /// Places in `tokens` where a reasoning word has an exhaustive word within
    /// [`NEAR`] tokens (a place counts once however many words it has).
    fn elicitation(&self, tokens: &[u64]) -> usize {
        let mut places = 0;
        let mut last_hit: Option<usize> = None;
        for (i, t) in tokens.iter().enumerate() {
            if !has_bit(&self.elicit, *t) || self.reasoning.binary_search(t).is_err() {
                continue;
            }
            let lo = i.saturating_sub(NEAR);
            let hi = (i + NEAR + 1).min(tokens.len());
            let near = tokens[lo..hi]
                .iter()
                .any(|w| has_bit(&self.elicit, *w) && self.exhaustive.binary_search(w).is_ok());
            if near && last_hit.is_none_or(|h| i > h + NEAR) {
                places += 1;
                last_hit = Some(i);
            }
        }
        places
    }

    fn category(&self, user: &[u64], system: &[u64]) -> TaskCategory {
        let (mut coding, mut math) = (0usize, 0usize);
        for t in user.iter().chain(system) {
            if *t == Mask::Code.token() {
                coding += 2;
            } else if is_mask(*t) || !has_bit(&self.words, *t) {
                continue;
            } else if self.coding.binary_search(t).is_ok() {
                coding += 1;
            } else if self.math.binary_search(t).is_ok() {
                math += 1;
            }
        }
        if coding >= 2 && coding >= math {
            TaskCategory::Coding
        } else if math >= 2 {
            TaskCategory::MathReasoning
        } else {
            TaskCategory::Other
        }
    }
}

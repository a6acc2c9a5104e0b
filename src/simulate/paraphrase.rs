//! The paraphrase engine: composes a prompt from an opener, a lead-in, the
//! task, a request for the reasoning, format requirements and a closer, in
//! varied order, layout and wording, from the combinatorial [`Pools`].
//!
//! An adaptive operator calls [`compose`] for every request, so no two of its
//! prompts share a template head or tail: each side of the task always holds
//! at least two components drawn from pools of thousands to millions of
//! realisations. Template-driven operators call it once per template with
//! [`PAYLOAD`] in place of the task and reuse the result (verbatim, or
//! [`lightly_edit`]ed per request).

use rand::Rng;

use super::pools::{Pools, P};
use super::random::{chance, pick, weighted};

/// Where the task goes in a template.
pub(crate) const PAYLOAD: &str = "{P}";

/// How a prompt is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Sentences and paragraphs around the task.
    Plain,
    /// "Task:" and "Requirements:" sections.
    Sections,
    /// Markdown headings and a numbered list.
    Markdown,
    /// XML-ish tags around the task and the instructions.
    Xml,
    /// Everything on one line.
    Inline,
}

const LAYOUTS: [Layout; 5] = [
    Layout::Plain,
    Layout::Sections,
    Layout::Markdown,
    Layout::Xml,
    Layout::Inline,
];

/// How someone tends to write: an operator's house style or a person's habits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Voice {
    /// Weights of the layouts (plain, sections, markdown, xml, inline).
    pub(crate) layouts: [f64; 5],
    /// Probability of an opener (context, purpose).
    pub(crate) opener: f64,
    /// Probability that the reasoning request comes before the task.
    pub(crate) reason_before: f64,
    /// Fewest and most format requirements.
    pub(crate) formats: (u8, u8),
    /// Probability of a closing remark.
    pub(crate) closer: f64,
    /// Probability of the casual register (lower case, casual phrasing).
    pub(crate) casual: f64,
    /// Share of whole-sentence reasoning requests (the rest are composed).
    pub(crate) sentence_reason: f64,
    /// Runs the phrase-level paraphrase pass over its own text (a
    /// paraphrasing operator; people and template authors do not).
    pub(crate) rephrase: bool,
}

impl Voice {
    /// A random house style.
    pub(crate) fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut layouts = [0.0; 5];
        for w in &mut layouts {
            *w = rng.random_range(0.05..1.0);
        }
        // Most writers favour one layout.
        layouts[rng.random_range(0..5)] += rng.random_range(0.5..2.0);
        Self {
            layouts,
            opener: rng.random_range(0.3..0.9),
            reason_before: rng.random_range(0.2..0.7),
            formats: (rng.random_range(0..2), rng.random_range(2..4)),
            closer: rng.random_range(0.5..0.9),
            casual: rng.random_range(0.0..0.12),
            sentence_reason: rng.random_range(0.1..0.35),
            rephrase: false,
        }
    }
}

fn cap_first(s: &mut String, start: usize) {
    if let Some(c) = s[start..].chars().next() {
        if c.is_lowercase() {
            let upper: String = c.to_uppercase().collect();
            s.replace_range(start..start + c.len_utf8(), &upper);
        }
    }
}

/// Appends why a requirement matters to a sentence ending in a full stop;
/// returns whether it did.
fn add_why<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, s: &mut String) -> bool {
    if !s.ends_with('.') {
        return false;
    }
    s.pop();
    s.push(' ');
    pools.fill_from(rng, P::FormatWhy, s);
    if rng.random_bool(0.6) {
        s.push(' ');
        s.push_str(pools.pick(rng, P::Later));
    }
    s.push('.');
    true
}

/// Lower-cases the character at byte `at` (after a lead-in).
fn lower_at(s: &mut String, at: usize) {
    if let Some(c) = s[at..].chars().next() {
        if c.is_uppercase() && !s[at..].starts_with("I ") {
            let lower: String = c.to_lowercase().collect();
            s.replace_range(at..at + c.len_utf8(), &lower);
        }
    }
}

/// Appends a request for the full reasoning, in any of thousands of wordings.
pub(crate) fn reasoning<R: Rng + ?Sized>(
    rng: &mut R,
    pools: &Pools,
    voice: &Voice,
    casual: bool,
    out: &mut String,
) {
    let start = out.len();
    if casual {
        out.push_str(pools.pick(rng, P::ReasonCasual));
        return;
    }
    if chance(rng, voice.sentence_reason) {
        pools.fill_from(rng, P::ReasonSentence, out);
        return;
    }
    let lead = pools.pick(rng, P::ReasonLead);
    out.push_str(lead);
    out.push(' ');
    out.push_str(pools.pick(rng, P::ReasonVerb));
    out.push(' ');
    out.push_str(pools.pick(rng, P::ReasonObject));
    if rng.random_bool(0.8) {
        out.push(' ');
        out.push_str(pools.pick(rng, P::ReasonQualifier));
    }
    if matches!(lead, "Could you" | "Can you" | "Would you") {
        out.push('?');
    } else {
        out.push_str(pools.pick(rng, P::Stop));
    }
    cap_first(out, start);
}

/// Appends a system prompt: a persona and a few guidance sentences.
pub(crate) fn system_prompt<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    pools.fill_from(rng, P::Persona, out);
    let n = rng.random_range(0..4);
    let mut used: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        let g = pools.pick(rng, P::Guidance);
        if used.contains(&g) {
            continue;
        }
        used.push(g);
        out.push_str(if rng.random_bool(0.7) { " " } else { "\n" });
        out.push_str(g);
    }
}

/// One component of a prompt around the task.
#[derive(Debug)]
struct Part {
    text: String,
    /// An instruction (reasoning or format): listed in sectioned layouts.
    rule: bool,
    /// A format requirement.
    format: bool,
    /// Says what it is for already.
    why: bool,
}

impl Part {
    /// An opener, lead-in or closer from pool `p`.
    fn of<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, p: P) -> Self {
        let mut text = String::new();
        pools.fill_from(rng, p, &mut text);
        Self {
            text,
            rule: false,
            format: false,
            why: false,
        }
    }

    /// A format requirement, perhaps introduced and perhaps justified.
    fn format<R: Rng + ?Sized>(rng: &mut R, pools: &Pools) -> Self {
        let mut text = String::new();
        let lead = pools.pick(rng, P::FormatLead);
        text.push_str(lead);
        pools.fill_from(rng, P::Format, &mut text);
        if !lead.is_empty() {
            lower_at(&mut text, lead.len());
        }
        let why = rng.random_bool(0.5) && add_why(rng, pools, &mut text);
        Self {
            text,
            rule: true,
            format: true,
            why,
        }
    }
}

/// Composes a prompt around `task` into `out`; returns the byte range of the
/// task within `out`. With `reason` the prompt asks for the full reasoning.
pub(crate) fn compose<R: Rng + ?Sized>(
    rng: &mut R,
    pools: &Pools,
    voice: &Voice,
    reason: bool,
    task: &str,
    out: &mut String,
) -> std::ops::Range<usize> {
    let casual = chance(rng, voice.casual);
    let layout = LAYOUTS[weighted(rng, &voice.layouts)];
    let mut before: Vec<Part> = Vec::with_capacity(4);
    let mut after: Vec<Part> = Vec::with_capacity(4);
    if chance(rng, voice.opener) {
        before.push(Part::of(rng, pools, P::Opener));
    }
    if reason {
        let mut text = String::new();
        reasoning(rng, pools, voice, casual, &mut text);
        let p = Part {
            text,
            rule: true,
            format: false,
            why: false,
        };
        if chance(rng, voice.reason_before) {
            before.push(p);
        } else {
            after.push(p);
        }
    }
    let (lo, hi) = voice.formats;
    for _ in 0..rng.random_range(lo.min(hi)..=hi.max(lo)) {
        let p = Part::format(rng, pools);
        if rng.random_bool(0.25) {
            before.push(p);
        } else {
            after.push(p);
        }
    }
    // At least two components on each side, so neither end of the prompt is
    // ever a short, common phrase: context first, then requirements.
    if before.len() < 2 && before.iter().all(|p| p.rule) {
        before.insert(0, Part::of(rng, pools, P::Opener));
    }
    while before.len() < 2 {
        before.push(Part::format(rng, pools));
    }
    if rng.random_bool(0.5) {
        before.push(Part::of(rng, pools, P::Leadin));
    }
    // At least two format requirements after the task, in any order with the
    // reasoning request, then perhaps a closer.
    while after.iter().filter(|p| p.format).count() < 2 {
        after.push(Part::format(rng, pools));
    }
    for i in (1..after.len()).rev() {
        let j = rng.random_range(0..=i);
        after.swap(i, j);
    }
    if chance(rng, voice.closer) {
        after.push(Part::of(rng, pools, P::SignedCloser));
    } else if let Some(last) = after.last_mut() {
        // Without a closer, the last requirement says what it is for.
        if !last.why {
            add_why(rng, pools, &mut last.text);
        }
    }
    if voice.rephrase {
        for p in before.iter_mut().chain(after.iter_mut()) {
            rephrase(rng, &mut p.text);
        }
    }
    if casual {
        for p in before.iter_mut().chain(after.iter_mut()) {
            p.text = p.text.to_lowercase();
            if p.text.ends_with('.') && rng.random_bool(0.7) {
                p.text.pop();
            }
        }
    }
    render(rng, pools, layout, &before, task, &after, out)
}

fn join_plain<R: Rng + ?Sized>(rng: &mut R, parts: &[Part], out: &mut String) {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(pick(rng, &[" ", " ", "\n", "\n\n"]));
        }
        out.push_str(&p.text);
    }
}

fn render<R: Rng + ?Sized>(
    rng: &mut R,
    pools: &Pools,
    layout: Layout,
    before: &[Part],
    task: &str,
    after: &[Part],
    out: &mut String,
) -> std::ops::Range<usize> {
    let range;
    match layout {
        Layout::Plain | Layout::Inline => {
            let inline = layout == Layout::Inline;
            for (i, p) in before.iter().enumerate() {
                if i > 0 {
                    out.push_str(if inline {
                        " "
                    } else {
                        pick(rng, &[" ", "\n", "\n\n"])
                    });
                }
                out.push_str(&p.text);
            }
            out.push_str(if inline {
                " "
            } else {
                pick(rng, &["\n\n", "\n\n", "\n", " "])
            });
            let at = out.len();
            out.push_str(task);
            range = at..out.len();
            for (i, p) in after.iter().enumerate() {
                out.push_str(if inline || i > 0 && rng.random_bool(0.5) {
                    " "
                } else {
                    pick(rng, &["\n\n", "\n"])
                });
                out.push_str(&p.text);
            }
        }
        Layout::Sections | Layout::Markdown => {
            let md = layout == Layout::Markdown;
            let rules: Vec<&Part> = after.iter().filter(|p| p.rule).collect();
            let closers: Vec<&Part> = after.iter().filter(|p| !p.rule).collect();
            join_plain(rng, before, out);
            out.push_str("\n\n");
            let label_task = pools.pick(rng, P::LabelTask);
            let label_rules = pools.pick(rng, P::LabelRules);
            if md {
                out.push_str(pick(rng, &["## ", "### ", "# "]));
                out.push_str(label_task);
                out.push_str("\n\n");
            } else {
                out.push_str(label_task);
                out.push_str(":\n");
            }
            let at = out.len();
            out.push_str(task);
            range = at..out.len();
            if !rules.is_empty() {
                if md {
                    out.push_str("\n\n## ");
                    out.push_str(label_rules);
                    out.push_str("\n\n");
                } else {
                    out.push_str("\n\n");
                    out.push_str(label_rules);
                    out.push_str(":\n");
                }
                let numbered = md || rng.random_bool(0.5);
                for (i, p) in rules.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    if numbered {
                        out.push_str(&format!("{}. ", i + 1));
                    } else {
                        out.push_str("- ");
                    }
                    out.push_str(&p.text);
                }
            }
            for p in &closers {
                out.push_str("\n\n");
                out.push_str(&p.text);
            }
        }
        Layout::Xml => {
            join_plain(rng, before, out);
            let tag = pools.pick(rng, P::TagTask);
            out.push_str(&format!("\n<{tag}>\n"));
            let at = out.len();
            out.push_str(task);
            range = at..out.len();
            out.push_str(&format!("\n</{tag}>\n"));
            let rules: Vec<&Part> = after.iter().filter(|p| p.rule).collect();
            if rules.is_empty() {
                join_plain(rng, after, out);
            } else {
                let tag = pools.pick(rng, P::TagRules);
                out.push_str(&format!("<{tag}>\n"));
                for p in &rules {
                    out.push_str(&p.text);
                    out.push('\n');
                }
                out.push_str(&format!("</{tag}>"));
                for p in after.iter().filter(|p| !p.rule) {
                    out.push('\n');
                    out.push_str(&p.text);
                }
            }
        }
    }
    range
}

/// A person's habitual way of asking for the reasoning: the same few
/// phrasings, reused (people repeat themselves).
pub(crate) fn personal_reasoning<R: Rng + ?Sized>(
    habit: &mut R,
    pools: &Pools,
    casual: bool,
    which: usize,
    out: &mut String,
) {
    let voice = Voice {
        sentence_reason: 0.5,
        ..Voice::random(habit)
    };
    // Draw the habits in order so `which` picks a stable one.
    let mut phrasing = String::new();
    for _ in 0..=which % 3 {
        phrasing.clear();
        reasoning(habit, pools, &voice, casual, &mut phrasing);
    }
    out.push_str(&phrasing);
}

/// Phrase-level alternations a paraphraser applies to the text around the
/// task: each matching phrase is swapped for one of its alternatives half of
/// the time, independently, so the realisations multiply.
const REPHRASE: &[(&str, &[&str])] = &[
    ("I'm ", &["I am ", "I'm currently ", "I'm just "]),
    ("I need to", &["I have to", "I must", "I've got to"]),
    (
        "get this right",
        &["nail this", "get it right", "not mess this up"],
    ),
    (
        "disagree about",
        &["argue about", "can't agree on", "differ on"],
    ),
    ("this one", &["this", "this problem", "this particular one"]),
    ("came up", &["cropped up", "popped up", "surfaced"]),
    (
        "asked me about",
        &["quizzed me on", "asked me", "brought up"],
    ),
    ("As part of", &["For", "Within", "While working on"]),
    (
        "could use a hand",
        &["would love some help", "need a hand", "could use help"],
    ),
    (
        "accuracy matters more than speed",
        &[
            "correctness beats speed",
            "I'd rather be right than fast",
            "precision matters more than speed",
        ],
    ),
    (
        "and I want to understand it properly",
        &[
            "and I'd like to really get it",
            "and I want to understand it",
            "and I need to understand it",
        ],
    ),
    (
        "gave me this",
        &["handed me this", "sent me this", "passed me this"],
    ),
    (
        "has me stuck",
        &["has me stumped", "is blocking me", "beats me"],
    ),
    (
        "Quick context",
        &["Brief context", "Short context", "Some context"],
    ),
    (
        "Long story short",
        &["In short", "To cut it short", "Briefly"],
    ),
    (
        "here's where I am",
        &[
            "this is where I'm at",
            "here's my status",
            "here is where I stand",
        ],
    ),
    ("Background", &["Context", "Some background", "For context"]),
    (
        "the final answer",
        &["the answer", "the end result", "the final result"],
    ),
    (
        "at the end",
        &["at the very end", "afterwards", "to finish"],
    ),
    ("Include", &["Add", "Provide", "Give"]),
    ("Use ", &["Employ ", "Go with ", "Stick to "]),
    ("each step", &["every step", "each stage", "each part"]),
    ("every step", &["each step", "all steps", "every stage"]),
    (
        "your reasoning",
        &["your thinking", "your logic", "the reasoning"],
    ),
    ("in full", &["completely", "fully", "in its entirety"]),
    ("carefully", &["with care", "meticulously", "attentively"]),
    (
        "step by step",
        &["one step at a time", "stepwise", "step-by-step"],
    ),
    (
        "before giving the answer",
        &[
            "before answering",
            "prior to the answer",
            "ahead of the answer",
        ],
    ),
    (
        "so I can",
        &["so that I can", "which lets me", "allowing me to"],
    ),
    ("Thanks", &["Thank you", "Many thanks", "Cheers"]),
    ("Please ", &["Kindly ", "Could you please ", "Do "]),
    ("the problem", &["the question", "the task", "the exercise"]),
    ("Make sure", &["Ensure", "Be sure", "Take care"]),
    ("Don't", &["Do not", "Never", "Please don't"]),
    ("explain", &["clarify", "describe", "lay out"]),
    ("show", &["display", "present", "give"]),
    ("answer", &["response", "reply", "result"]),
    ("right now", &["at the moment", "currently", "just now"]),
    (" and ", &[" & ", " plus ", " and also "]),
    (
        "Let me know if anything is unclear",
        &[
            "Shout if anything's unclear",
            "Ask me if something is unclear",
            "Tell me if anything is unclear",
        ],
    ),
    (
        "Happy to clarify if needed",
        &[
            "Glad to clarify",
            "I can clarify if needed",
            "Happy to explain more",
        ],
    ),
    (
        "since it ends up in",
        &[
            "since it goes into",
            "as it ends up in",
            "because it lands in",
        ],
    ),
    (
        "compare it with",
        &["compare it to", "check it against", "line it up with"],
    ),
    (
        "diff it against",
        &["diff it with", "compare it against", "match it against"],
    ),
    (
        "will grade it",
        &["grades these", "will mark it", "checks these"],
    ),
    (
        "the reference solution",
        &[
            "the official solution",
            "the model solution",
            "the sample solution",
        ],
    ),
    (
        "Two things first",
        &[
            "Two quick things",
            "First, two things",
            "Two notes up front",
        ],
    ),
    ("it's for", &["it is for", "this is for", "it's part of"]),
    (
        "practice set",
        &["problem set", "exercise sheet", "drill set"],
    ),
    ("Been ", &["I've been ", "Have been ", "Spent the week "]),
    ("all week", &["for days", "this whole week", "since Monday"]),
    (
        "Trying something new",
        &[
            "New territory for me",
            "First time trying this",
            "Branching out",
        ],
    ),
    ("My situation", &["Where I'm at", "The situation", "Status"]),
    (
        "Today's job",
        &["Today's task", "On my plate today", "Today I'm on"],
    ),
    (
        "checking my own solution",
        &[
            "verifying my own solution",
            "double-checking my answer",
            "checking my attempt",
        ],
    ),
    (
        "technical interview",
        &["tech interview", "coding interview", "onsite interview"],
    ),
    (
        "for my team",
        &["for our team", "for my group", "for the team"],
    ),
    (
        "I ran into this",
        &["I hit this", "this came up", "I got stuck here"],
    ),
    ("Working on", &["Working through", "Busy with", "Deep in"]),
    ("Busy with", &["Buried in", "Working on", "Occupied with"]),
    ("While ", &["Whilst ", "As I was ", "When "]),
    (
        "I got this from",
        &["This is from", "I was given this by", "This one's from"],
    ),
    (
        "small internal tool",
        &[
            "little internal tool",
            "small in-house tool",
            "tiny internal utility",
        ],
    ),
    (
        "research notebook",
        &["lab notebook", "research log", "analysis notebook"],
    ),
    (
        "side project",
        &["hobby project", "weekend project", "pet project"],
    ),
    (
        "onboarding onto",
        &[
            "getting up to speed on",
            "ramping up on",
            "learning my way around",
        ],
    ),
    (
        "old contest problems",
        &[
            "past contest problems",
            "old olympiad problems",
            "archived contest problems",
        ],
    ),
    ("writing", &["drafting", "putting together", "authoring"]),
    (
        "preparing for",
        &["getting ready for", "prepping for", "studying for"],
    ),
    (
        "training material",
        &["training docs", "teaching material", "course material"],
    ),
    (
        "an internal wiki page",
        &["a wiki page", "an internal doc", "a knowledge-base page"],
    ),
    (", so ", &["; so ", ", hence ", ", therefore "]),
];

/// The first occurrence of `phrase` in `text` that is not part of a longer word.
fn find_word(text: &str, phrase: &str) -> Option<usize> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(i) = text[from..].find(phrase) {
        let at = from + i;
        let end = at + phrase.len();
        let starts_word = phrase.starts_with(|c: char| !c.is_alphanumeric())
            || !is_word(text[..at].chars().next_back());
        let ends_word = phrase.ends_with(|c: char| !c.is_alphanumeric())
            || !is_word(text[end..].chars().next());
        if starts_word && ends_word {
            return Some(at);
        }
        from = at + phrase.len().max(1);
    }
    None
}

/// Applies [`REPHRASE`] to `text`.
fn rephrase<R: Rng + ?Sized>(rng: &mut R, text: &mut String) {
    for (phrase, alternatives) in REPHRASE {
        if let Some(at) = find_word(text, phrase) {
            if rng.random_bool(0.5) {
                let alt = pick(rng, alternatives);
                text.replace_range(at..at + phrase.len(), alt);
            }
        }
    }
}

const SYNONYMS: &[(&str, &str)] = &[
    ("carefully", "thoroughly"),
    ("detail", "depth"),
    ("explain", "describe"),
    ("complete", "full"),
    ("reasoning", "thinking"),
    ("step by step", "one step at a time"),
    ("Please", "Kindly"),
    ("solution", "answer"),
    ("problem", "question"),
    ("help", "assist"),
    ("really", "truly"),
    ("final", "end"),
    ("show", "give"),
    ("every", "each"),
];

/// Fills `template` with `payload`, lightly editing the template's own text:
/// synonyms, a line break, a dropped courtesy, an appended remark.
pub(crate) fn lightly_edit<R: Rng + ?Sized>(
    rng: &mut R,
    template: &str,
    payload: &str,
    out: &mut String,
) {
    let mut t = template.to_owned();
    for (a, b) in SYNONYMS {
        if rng.random_bool(0.12) && t.contains(a) {
            t = t.replacen(a, b, 1);
        }
    }
    if rng.random_bool(0.3) {
        t = t.replacen("\n\n", "\n", 1);
    }
    if rng.random_bool(0.15) {
        t = t
            .replacen("Please ", "", 1)
            .replacen("Can you ", "Could you ", 1);
    }
    if rng.random_bool(0.2) {
        t.push_str(pick(rng, &[" Thanks.", " Thank you!", "", " (important)"]));
    }
    out.push_str(&t.replacen(PAYLOAD, payload, 1));
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::simulate::random::rng_of;

    fn words(s: &str, n: usize, from_end: bool) -> String {
        let w: Vec<&str> = s.split_whitespace().collect();
        let w: Vec<&str> = if from_end {
            w[w.len().saturating_sub(n)..].to_vec()
        } else {
            w[..n.min(w.len())].to_vec()
        };
        w.join(" ")
    }

    /// 20,000 prompts of one paraphrasing voice: every head (the text before
    /// the task) and every tail (after it) is distinct; the 8-word windows at
    /// either end of the prompt are at least 90% distinct and none recurs in
    /// more than 0.1% of the prompts.
    #[test]
    fn composed_prompts_share_no_template_head_or_tail() {
        let pools = Pools::new(0);
        let mut rng = rng_of(11, 0);
        let voice = Voice {
            rephrase: true,
            ..Voice::random(&mut rng)
        };
        let (mut heads, mut tails) = (HashSet::new(), HashSet::new());
        let mut windows: [HashMap<String, usize>; 2] = Default::default();
        let n = 20_000;
        for i in 0..n {
            let mut s = String::new();
            let r = compose(&mut rng, &pools, &voice, i % 10 != 0, "TASK BODY", &mut s);
            assert_eq!(&s[r.clone()], "TASK BODY");
            assert!(heads.insert(s[..r.start].to_owned()), "head repeated: {s}");
            assert!(tails.insert(s[r.end..].to_owned()), "tail repeated: {s}");
            *windows[0].entry(words(&s, 8, false)).or_default() += 1;
            *windows[1].entry(words(&s, 8, true)).or_default() += 1;
        }
        for w in &windows {
            assert!(w.len() * 10 >= n * 9, "{} of {n}", w.len());
            let (top, count) = w.iter().max_by_key(|(_, c)| **c).expect("windows");
            assert!(*count <= n / 1_000, "{top:?} {count} times");
        }
    }

    #[test]
    fn reasoning_requests_come_in_thousands_of_wordings() {
        let pools = Pools::new(0);
        let mut rng = rng_of(12, 0);
        let voice = Voice {
            sentence_reason: 0.2,
            ..Voice::random(&mut rng)
        };
        let mut seen = HashSet::new();
        for _ in 0..5_000 {
            let mut s = String::new();
            reasoning(&mut rng, &pools, &voice, false, &mut s);
            assert!(s.len() > 10 && !s.contains('{'), "{s}");
            seen.insert(s);
        }
        assert!(seen.len() > 3_500, "{}", seen.len());
    }

    #[test]
    fn light_edits_keep_the_payload_and_vary() {
        let pools = Pools::new(0);
        let mut rng = rng_of(13, 0);
        let voice = Voice::random(&mut rng);
        let mut template = String::new();
        compose(&mut rng, &pools, &voice, true, PAYLOAD, &mut template);
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let mut s = String::new();
            lightly_edit(&mut rng, &template, "PAYLOAD", &mut s);
            assert!(s.contains("PAYLOAD") && !s.contains(PAYLOAD), "{s}");
            seen.insert(s);
        }
        assert!(seen.len() > 5, "edits vary: {}", seen.len());
    }

    #[test]
    fn rephrasing_replaces_whole_words_only() {
        assert_eq!(find_word("answered the answer", "answer"), Some(13));
        assert_eq!(find_word("explains", "explain"), None);
        assert_eq!(find_word("show, then", "show"), Some(0));
        assert_eq!(find_word("a and b", " and "), Some(1));
        let mut rng = rng_of(3, 3);
        for _ in 0..200 {
            let mut s = "I answered, then explained: show me the answer.".to_owned();
            rephrase(&mut rng, &mut s);
            assert!(s.contains("answered") && s.contains("explained"), "{s}");
        }
    }

    #[test]
    fn personal_habits_repeat() {
        let pools = Pools::new(0);
        let phrase = |which| {
            let mut s = String::new();
            personal_reasoning(&mut rng_of(5, 5), &pools, false, which, &mut s);
            s
        };
        assert_eq!(phrase(1), phrase(1));
        assert_eq!(phrase(1), phrase(4), "three habits, cycled");
        assert!(!phrase(0).is_empty());
    }
}

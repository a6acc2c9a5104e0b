//! Generated English prose and code: the raw material of prompts and answers.
//!
//! Everything here is a pure function of the random generator passed in, so a
//! seed reproduces the same text.

use rand::Rng;

use super::random::pick;

pub(crate) const NOUNS: &[&str] = &[
    "report",
    "budget",
    "meeting",
    "customer",
    "invoice",
    "project",
    "deadline",
    "team",
    "schedule",
    "proposal",
    "dataset",
    "pipeline",
    "server",
    "database",
    "dashboard",
    "feature",
    "release",
    "contract",
    "garden",
    "recipe",
    "trip",
    "apartment",
    "lecture",
    "essay",
    "presentation",
    "interview",
    "policy",
    "warehouse",
    "shipment",
    "campaign",
    "newsletter",
    "workshop",
    "survey",
    "forecast",
    "inventory",
    "migration",
    "backlog",
    "roadmap",
    "experiment",
    "spreadsheet",
    "playlist",
    "novel",
    "museum",
    "bicycle",
    "kitchen",
    "neighbourhood",
    "festival",
    "library",
    "hospital",
    "school",
    "market",
    "portfolio",
    "mortgage",
    "insurance claim",
    "training plan",
    "onboarding guide",
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "quick",
    "detailed",
    "simple",
    "robust",
    "friendly",
    "formal",
    "concise",
    "clear",
    "practical",
    "reliable",
    "efficient",
    "careful",
    "modern",
    "flexible",
    "secure",
    "accurate",
    "readable",
    "thorough",
    "small",
    "large",
    "recent",
    "typical",
    "better",
    "cheaper",
    "faster",
    "older",
    "complex",
    "common",
    "useful",
    "important",
];

pub(crate) const VERBS: &[&str] = &[
    "improves",
    "reduces",
    "explains",
    "handles",
    "supports",
    "requires",
    "changes",
    "affects",
    "depends on",
    "replaces",
    "extends",
    "simplifies",
    "describes",
    "covers",
    "includes",
    "avoids",
    "measures",
    "tracks",
    "limits",
    "protects",
];

pub(crate) const TOPICS: &[&str] = &[
    "compound interest",
    "photosynthesis",
    "the French Revolution",
    "TCP congestion control",
    "vector databases",
    "the Krebs cycle",
    "supply and demand",
    "black holes",
    "the Roman Empire",
    "machine learning overfitting",
    "climate feedback loops",
    "inflation",
    "DNS resolution",
    "garbage collection",
    "plate tectonics",
    "the immune system",
    "public key cryptography",
    "the stock market",
    "sourdough fermentation",
    "quantum entanglement",
    "the water cycle",
    "container orchestration",
    "Bayesian statistics",
    "the printing press",
    "sleep cycles",
    "electric car batteries",
    "index funds",
    "CRISPR",
    "jazz harmony",
    "the Silk Road",
    "OAuth flows",
    "database indexing",
    "the placebo effect",
];

pub(crate) const LANGS: &[&str] = &[
    "Python",
    "JavaScript",
    "TypeScript",
    "Rust",
    "Go",
    "Java",
    "C#",
    "SQL",
    "Bash",
    "C++",
    "Kotlin",
    "Ruby",
    "PHP",
];

/// The languages [`code`] writes snippets in (others fall back to Python).
pub(crate) const CODE_LANGS: &[&str] = &[
    "Python",
    "Python",
    "JavaScript",
    "TypeScript",
    "Rust",
    "Go",
    "SQL",
    "Java",
    "Bash",
];

pub(crate) const IDENTS: &[&str] = &[
    "items", "user", "orders", "total", "config", "result", "data", "payload", "records", "cache",
    "index", "buffer", "queue", "scores", "matrix", "nodes", "edges", "prices", "events", "tokens",
    "rows", "path", "name", "count", "limit", "offset", "session",
];

pub(crate) const FUNCS: &[&str] = &[
    "parse_orders",
    "merge_intervals",
    "load_config",
    "compute_total",
    "find_duplicates",
    "group_by_day",
    "normalize_scores",
    "fetch_users",
    "retry_request",
    "build_index",
    "flatten_tree",
    "validate_email",
    "top_k",
    "rolling_mean",
    "dedupe_events",
    "paginate",
    "serialize_row",
    "shortest_path",
    "count_words",
    "resize_image",
];

const PEOPLE: &[&str] = &[
    "my manager",
    "the client",
    "our team",
    "a colleague",
    "my landlord",
    "the customer",
    "my professor",
    "the vendor",
    "our investors",
    "the support team",
    "my neighbour",
];

const SENTENCES: &[&str] = &[
    "The {noun} {verb} how we plan the {noun2}.",
    "In most cases a {adj} {noun} is enough.",
    "We should review the {noun} before the end of the week.",
    "This approach {verb} the {noun} without touching the {noun2}.",
    "{people} asked for a {adj} summary of the {noun}.",
    "A {adj} way to think about it is to start from the {noun}.",
    "The main trade-off is between a {adj} {noun} and a {adj2} {noun2}.",
    "If the {noun} changes, the {noun2} usually has to change too.",
    "Keep in mind that the {noun} {verb} the overall cost.",
    "Most people underestimate how much the {noun} {verb} the result.",
    "Here is the short version: the {noun} {verb} the {noun2}.",
    "It helps to write down the {noun} first and the {noun2} second.",
    "There are {n} things to check before you change the {noun}.",
    "The {adj} option is usually the {adj2} one in the long run.",
    "After that, compare the {noun} with last year's {noun2}.",
    "You can skip this step if the {noun} is already {adj}.",
    "Note that {topic} works differently from what most people expect.",
    "A common mistake is to treat the {noun} as if it were a {noun2}.",
    "That said, {people} may prefer a more {adj} {noun}.",
    "The numbers suggest the {noun} grew by about {n} percent.",
];

/// Appends `frame` to `out`, letting `slot` write each `{name}` in it (an
/// unclosed brace is written as it is).
pub(crate) fn fill_slots(frame: &str, out: &mut String, mut slot: impl FnMut(&str, &mut String)) {
    let mut rest = frame;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return;
        };
        slot(&rest[open + 1..open + close], out);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
}

fn fill<R: Rng + ?Sized>(rng: &mut R, frame: &str, out: &mut String) {
    fill_slots(frame, out, |slot, out| match slot {
        "noun" | "noun2" => out.push_str(pick(rng, NOUNS)),
        "adj" | "adj2" => {
            let adj = pick(rng, ADJECTIVES);
            // "a accurate" → "an accurate".
            if adj.starts_with(['a', 'e', 'i', 'o'])
                && (out.ends_with(" a ") || out.ends_with("A "))
            {
                out.insert(out.len() - 1, 'n');
            }
            out.push_str(adj);
        }
        "verb" => out.push_str(pick(rng, VERBS)),
        "topic" => out.push_str(pick(rng, TOPICS)),
        "people" => {
            let p = pick(rng, PEOPLE);
            if out.is_empty() || out.ends_with(". ") || out.ends_with('\n') {
                let mut c = p.chars();
                if let Some(first) = c.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push_str(p);
            }
        }
        "n" => {
            let n: u32 = rng.random_range(2..40);
            out.push_str(&n.to_string());
        }
        _ => out.push_str(slot),
    });
}

/// Appends about `words` words of prose in paragraphs.
pub(crate) fn prose<R: Rng + ?Sized>(rng: &mut R, words: usize, out: &mut String) {
    let start = out.len();
    let mut written = 0usize;
    let mut in_paragraph = 0;
    while written < words.max(1) {
        if out.len() > start {
            if in_paragraph >= rng.random_range(3..7) {
                out.push_str("\n\n");
                in_paragraph = 0;
            } else {
                out.push(' ');
            }
        }
        let before = out.len();
        let frame = pick(rng, SENTENCES);
        fill(rng, frame, out);
        written += 1 + out.as_bytes()[before..]
            .iter()
            .filter(|&&b| b == b' ')
            .count();
        in_paragraph += 1;
    }
}

/// Appends a short code snippet in `lang` (one of [`LANGS`], or Python).
pub(crate) fn code<R: Rng + ?Sized>(rng: &mut R, lang: &str, out: &mut String) {
    let f = pick(rng, FUNCS);
    let a = pick(rng, IDENTS);
    let b = pick(rng, IDENTS);
    let n: u32 = rng.random_range(2..100);
    let snippet = match lang {
        "JavaScript" | "TypeScript" => format!(
            "function {f}({a}, {b} = {n}) {{\n  const out = [];\n  for (const x of {a}) {{\n    if (x.{b} > {b}) {{\n      out.push({{ ...x, {b}: x.{b} - {n} }});\n    }}\n  }}\n  return out.sort((l, r) => l.{b} - r.{b});\n}}"
        ),
        "Rust" => format!(
            "fn {f}({a}: &[u64], {b}: u64) -> Vec<u64> {{\n    let mut out: Vec<u64> = {a}.iter().copied().filter(|x| *x > {b}).collect();\n    out.sort_unstable();\n    out.truncate({n});\n    out\n}}"
        ),
        "Go" => format!(
            "func {f}({a} []int, {b} int) []int {{\n\tout := make([]int, 0, len({a}))\n\tfor _, x := range {a} {{\n\t\tif x%{n} == {b} {{\n\t\t\tout = append(out, x)\n\t\t}}\n\t}}\n\treturn out\n}}"
        ),
        "SQL" => format!(
            "SELECT {a}.id, COUNT(*) AS n, SUM({b}.amount) AS total\nFROM {a}\nJOIN {b} ON {b}.{a}_id = {a}.id\nWHERE {b}.created_at > NOW() - INTERVAL '{n} days'\nGROUP BY {a}.id\nORDER BY total DESC\nLIMIT {n};"
        ),
        "Java" | "C#" | "Kotlin" => format!(
            "public List<Integer> {f}(List<Integer> {a}, int {b}) {{\n    List<Integer> out = new ArrayList<>();\n    for (int x : {a}) {{\n        if (x > {b}) out.add(x * {n});\n    }}\n    Collections.sort(out);\n    return out;\n}}"
        ),
        "Bash" => format!(
            "#!/usr/bin/env bash\nset -euo pipefail\nfor f in ./{a}/*.log; do\n  count=$(grep -c \"{b}\" \"$f\" || true)\n  if [ \"$count\" -gt {n} ]; then\n    echo \"$f: $count\"\n  fi\ndone"
        ),
        _ => format!(
            "def {f}({a}, {b}={n}):\n    result = {{}}\n    for item in {a}:\n        key = item.get(\"{b}\")\n        if key is None:\n            continue\n        result.setdefault(key, []).append(item)\n    return sorted(result.items(), key=lambda kv: len(kv[1]))[:{b}]"
        ),
    };
    out.push_str(&snippet);
}

/// The fence name for a language in [`LANGS`].
pub(crate) fn fence(lang: &str) -> &'static str {
    match lang {
        "JavaScript" => "javascript",
        "TypeScript" => "typescript",
        "Rust" => "rust",
        "Go" => "go",
        "SQL" => "sql",
        "Java" => "java",
        "C#" => "csharp",
        "Kotlin" => "kotlin",
        "Bash" => "bash",
        "C++" => "cpp",
        "Ruby" => "ruby",
        "PHP" => "php",
        _ => "python",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn prose_has_about_the_requested_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = String::new();
        prose(&mut rng, 200, &mut s);
        let n = s.split_whitespace().count();
        assert!((200..260).contains(&n), "{n}");
        assert!(!s.contains('{'), "{s}");
        for vowel in ["a a", "a e", "a i", "a o"] {
            assert!(!s.contains(&format!(" {vowel}")), "{s}");
        }
    }
}

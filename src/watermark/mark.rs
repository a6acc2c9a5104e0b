//! The text-level mark: an identifier hidden in generated prose with invisible
//! format characters.
//!
//! # Encoding
//!
//! A mark carries 16 bytes: the first 7 bytes of the account id, the first 3 of
//! the cluster id, the issue hour (hours since the Unix epoch, 24 bits) and a
//! 24-bit HMAC-SHA256 of those with the signing key, so that nobody without a key
//! can forge a mark naming someone else. The 16 bytes are cut into four 32-bit
//! chunks; each chunk becomes a *group* of 13 invisible characters (2 bits of
//! chunk index, 32 bits of data, a 5-bit check), three bits per character from
//! this alphabet of eight format characters (general category `Cf`, untouched by
//! NFKC, not `White_Space`):
//!
//! `U+200B U+200C U+200D U+2060 U+2061 U+2062 U+2063 U+2064`
//!
//! A group is glued to the end of every `every`-th plain word (letters and
//! ordinary punctuation), before the following whitespace, cycling through the
//! chunks, so a copy of the whole mark repeats every `4 × every` words. Groups
//! ride with their word through copy/paste, re-wrapping and NFKC. Decoding reads
//! every group, checks each, assembles copies from runs of consecutive groups and
//! by majority vote per chunk, and keeps what the HMAC accepts: damaged groups are
//! outvoted by the other copies.
//!
//! Never marked: fenced code blocks (```` ``` ```` / `~~~`), inline code spans,
//! lines indented by four or more spaces, text that starts with `{` or `[` (JSON
//! output), URLs and other words with symbols. Tool-call arguments never reach this
//! module.
//!
//! # What removes it
//!
//! Deleting format characters (for example a filter on Unicode category `Cf`, or
//! `NFKC_Casefold`, which drops default-ignorable code points) removes the mark
//! completely. So does paraphrasing or re-typing. The trace-back index is the
//! fallback for such text.

use std::borrow::Cow;
use std::sync::Arc;

use hmac::Mac;

use super::tag::{Keys, SigningKey};
use crate::extensions::{AccountId, ClusterId, HardLink};

/// The eight invisible characters, by symbol value.
pub const ALPHABET: [char; 8] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{2061}', '\u{2062}', '\u{2063}', '\u{2064}',
];
/// Characters per group.
pub const GROUP_CHARS: usize = 13;
/// Groups per copy of the mark.
pub const CHUNKS: usize = 4;
const PAYLOAD_LEN: usize = 16;
const MAC_DOMAIN: &[u8] = b"distill-guard/mark/v1\0";

fn symbol_value(c: char) -> Option<u8> {
    match c {
        '\u{200B}'..='\u{200D}' => Some(c as u32 as u8 - 0x0B),
        '\u{2060}'..='\u{2064}' => Some((c as u32 - 0x2060) as u8 + 3),
        _ => None,
    }
}

/// True for the characters marks are made of.
pub fn is_mark_char(c: char) -> bool {
    symbol_value(c).is_some()
}

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn check(idx: u8, data: [u8; 4]) -> u8 {
    crc8(&[idx, data[0], data[1], data[2], data[3]]) & 0x1f
}

fn encode_group(idx: u8, data: [u8; 4]) -> String {
    let v: u64 = (u64::from(idx & 3) << 37)
        | (u64::from(u32::from_be_bytes(data)) << 5)
        | u64::from(check(idx, data));
    (0..GROUP_CHARS)
        .rev()
        .map(|i| ALPHABET[((v >> (3 * i)) & 7) as usize])
        .collect()
}

fn decode_group(symbols: &[u8]) -> Option<(u8, [u8; 4])> {
    if symbols.len() != GROUP_CHARS {
        return None;
    }
    let v = symbols
        .iter()
        .fold(0u64, |acc, &s| (acc << 3) | u64::from(s));
    let idx = ((v >> 37) & 3) as u8;
    let data = (((v >> 5) & 0xffff_ffff) as u32).to_be_bytes();
    (check(idx, data) == (v & 0x1f) as u8).then_some((idx, data))
}

/// What a mark says: who received the text, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MarkPayload {
    /// The first 7 bytes of the account id.
    pub account_prefix: [u8; 7],
    /// The first 3 bytes of the cluster id.
    pub cluster_prefix: [u8; 3],
    /// Hours since the Unix epoch (24 bits).
    pub issued_hour: u32,
}

impl MarkPayload {
    /// The payload for a response to `account` in `cluster` at `issued_at_ms`.
    pub fn new(account: AccountId, cluster: ClusterId, issued_at_ms: u64) -> Self {
        let mut account_prefix = [0u8; 7];
        account_prefix.copy_from_slice(&account.0[..7]);
        let mut cluster_prefix = [0u8; 3];
        cluster_prefix.copy_from_slice(&cluster.0[..3]);
        Self {
            account_prefix,
            cluster_prefix,
            issued_hour: ((issued_at_ms / 3_600_000) & 0xff_ffff) as u32,
        }
    }

    /// True when `account` starts with this payload's prefix.
    pub fn matches_account(&self, account: &AccountId) -> bool {
        account.0[..7] == self.account_prefix
    }

    /// True when `cluster` starts with this payload's prefix.
    pub fn matches_cluster(&self, cluster: &ClusterId) -> bool {
        cluster.0[..3] == self.cluster_prefix
    }

    /// The start of the issue hour, Unix milliseconds.
    pub fn issued_at_ms(&self) -> u64 {
        u64::from(self.issued_hour) * 3_600_000
    }

    /// The account prefix as 14 hex digits.
    pub fn account_hex(&self) -> String {
        hex(&self.account_prefix)
    }

    /// The cluster prefix as `c_` and 6 hex digits.
    pub fn cluster_hex(&self) -> String {
        format!("c_{}", hex(&self.cluster_prefix))
    }

    fn body(&self) -> [u8; 13] {
        let mut out = [0u8; 13];
        out[..7].copy_from_slice(&self.account_prefix);
        out[7..10].copy_from_slice(&self.cluster_prefix);
        out[10..13].copy_from_slice(&self.issued_hour.to_be_bytes()[1..]);
        out
    }

    fn mac(&self, key: &SigningKey) -> [u8; 3] {
        let mut m = key.mac();
        m.update(MAC_DOMAIN);
        m.update(&self.body());
        let full = m.finalize().into_bytes();
        [full[0], full[1], full[2]]
    }

    /// The 16 sealed bytes: body and MAC.
    fn seal(&self, key: &SigningKey) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[..13].copy_from_slice(&self.body());
        out[13..].copy_from_slice(&self.mac(key));
        out
    }

    fn open(bytes: &[u8; PAYLOAD_LEN], keys: &Keys) -> Option<(Self, String)> {
        let mut account_prefix = [0u8; 7];
        account_prefix.copy_from_slice(&bytes[..7]);
        let mut cluster_prefix = [0u8; 3];
        cluster_prefix.copy_from_slice(&bytes[7..10]);
        let p = Self {
            account_prefix,
            cluster_prefix,
            issued_hour: u32::from_be_bytes([0, bytes[10], bytes[11], bytes[12]]),
        };
        for key in keys.iter() {
            let mut m = key.mac();
            m.update(MAC_DOMAIN);
            m.update(&bytes[..13]);
            if m.verify_truncated_left(&bytes[13..]).is_ok() {
                return Some((p, key.id().to_string()));
            }
        }
        None
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The four groups of one sealed mark, and how densely to place them. Built once
/// per response and shared by the markers of its text fields.
#[derive(Debug, Clone)]
pub struct MarkPlan {
    groups: [String; CHUNKS],
    every: u32,
}

impl MarkPlan {
    /// Seals `payload` with `key`; a group follows every `every`-th plain word.
    pub fn new(payload: &MarkPayload, key: &SigningKey, every: u32) -> Self {
        let sealed = payload.seal(key);
        let groups = std::array::from_fn(|i| {
            let mut data = [0u8; 4];
            data.copy_from_slice(&sealed[i * 4..i * 4 + 4]);
            encode_group(i as u8, data)
        });
        Self {
            groups,
            every: every.max(1),
        }
    }
}

/// Marks one text field, fed in pieces (stream deltas) or at once.
///
/// Marking is a pure function of the text: feeding a text whole or in any split
/// gives the same output.
#[derive(Debug, Clone)]
pub struct TextMarker {
    plan: Arc<MarkPlan>,
    /// `None` until the first non-space character decides whether the text is
    /// JSON (never marked).
    json: Option<bool>,
    word_len: usize,
    word_plain: bool,
    word_letters: bool,
    plain_words: u32,
    next_chunk: usize,
    in_fence: bool,
    in_inline: bool,
    /// At the head of a line: only spaces and fence characters seen so far.
    line_head: bool,
    indent: usize,
    fence_char: char,
    fence_count: usize,
    line_is_fence: bool,
    code_line: bool,
    prev_newline: bool,
}

impl TextMarker {
    /// A marker at the start of a text.
    pub fn new(plan: Arc<MarkPlan>) -> Self {
        Self {
            plan,
            json: None,
            word_len: 0,
            word_plain: true,
            word_letters: false,
            plain_words: 0,
            next_chunk: 0,
            in_fence: false,
            in_inline: false,
            line_head: true,
            indent: 0,
            fence_char: '`',
            fence_count: 0,
            line_is_fence: false,
            code_line: false,
            prev_newline: false,
        }
    }

    /// Appends `input`, marked, to `out`.
    pub fn push(&mut self, input: &str, out: &mut String) {
        out.reserve(input.len() + 16);
        for c in input.chars() {
            self.step(c, out);
        }
    }

    /// Marks a whole text.
    pub fn mark(plan: &Arc<MarkPlan>, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + text.len() / 2);
        TextMarker::new(plan.clone()).push(text, &mut out);
        out
    }

    fn marking(&self) -> bool {
        self.json == Some(false)
            && !self.in_fence
            && !self.in_inline
            && !self.line_is_fence
            && !self.code_line
    }

    fn end_word(&mut self, out: &mut String) {
        if self.word_len > 0 && self.word_plain && self.word_letters && self.marking() {
            self.plain_words += 1;
            if self.plain_words % self.plan.every == 0 {
                out.push_str(&self.plan.groups[self.next_chunk]);
                self.next_chunk = (self.next_chunk + 1) % CHUNKS;
            }
        }
        self.word_len = 0;
        self.word_plain = true;
        self.word_letters = false;
    }

    fn end_line_head(&mut self) {
        if self.line_head {
            self.line_head = false;
            self.code_line = self.indent >= 4 && !self.in_fence;
            if self.fence_char == '`'
                && self.fence_count > 0
                && self.fence_count < 3
                && !self.in_fence
            {
                // One or two backticks open or close inline code spans.
                if self.fence_count % 2 == 1 {
                    self.in_inline = !self.in_inline;
                }
            }
        }
    }

    fn step(&mut self, c: char, out: &mut String) {
        if self.json.is_none() {
            if c.is_whitespace() {
                out.push(c);
                return;
            }
            self.json = Some(c == '{' || c == '[');
        }
        if self.json == Some(true) {
            out.push(c);
            return;
        }
        if c == '\n' {
            self.end_word(out);
            out.push(c);
            if self.prev_newline {
                // A blank line ends a paragraph and any unclosed inline code span.
                self.in_inline = false;
            }
            self.prev_newline = true;
            self.line_head = true;
            self.indent = 0;
            self.fence_count = 0;
            self.line_is_fence = false;
            self.code_line = false;
            return;
        }
        if c.is_whitespace() {
            self.end_word(out);
            if self.line_head && self.fence_count == 0 {
                self.indent += if c == '\t' { 4 } else { 1 };
            } else {
                self.end_line_head();
            }
            if c != '\r' {
                self.prev_newline = false;
            }
            out.push(c);
            return;
        }
        self.prev_newline = false;
        if self.line_head
            && (c == '`' || c == '~')
            && (self.fence_count == 0 || c == self.fence_char)
        {
            self.fence_char = c;
            self.fence_count += 1;
            if self.fence_count == 3 && self.indent < 4 {
                self.in_fence = !self.in_fence;
                self.line_is_fence = true;
                self.line_head = false;
                self.in_inline = false;
            }
            self.word_len += 1;
            self.word_plain = false;
            out.push(c);
            return;
        }
        self.end_line_head();
        if c == '`' && !self.in_fence {
            self.in_inline = !self.in_inline;
        }
        self.word_len += 1;
        if c.is_alphabetic() {
            self.word_letters = true;
        } else if !(c.is_numeric()
            || matches!(
                c,
                '\'' | '\u{2019}'
                    | '-'
                    | '.'
                    | ','
                    | ';'
                    | ':'
                    | '!'
                    | '?'
                    | '('
                    | ')'
                    | '"'
                    | '\u{201C}'
                    | '\u{201D}'
            ))
        {
            self.word_plain = false;
        }
        out.push(c);
    }
}

/// Removes every run of four or more mark characters (whole or damaged groups).
/// Shorter runs are left alone: a lone U+200D joins emoji sequences and a lone
/// U+200B or U+2060 is ordinary typography.
pub fn strip_marks(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_mark_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let mut run_len = 0usize;
    let mut removed = false;
    for c in text.chars() {
        if is_mark_char(c) {
            run.push(c);
            run_len += 1;
        } else {
            if run_len < 4 {
                out.push_str(&run);
            } else {
                removed = true;
            }
            run.clear();
            run_len = 0;
            out.push(c);
        }
    }
    if run_len < 4 {
        out.push_str(&run);
    } else {
        removed = true;
    }
    if removed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Cleans our marks out of every string in a JSON request body (prompts echoed
/// back to the model must not carry them). Returns true when anything changed.
pub fn strip_marks_json(value: &mut serde_json::Value) -> bool {
    fn walk(v: &mut serde_json::Value, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        match v {
            serde_json::Value::String(s) => match strip_marks(s) {
                Cow::Owned(clean) => {
                    *s = clean;
                    true
                }
                Cow::Borrowed(_) => false,
            },
            serde_json::Value::Array(a) => a.iter_mut().fold(false, |c, x| walk(x, depth + 1) | c),
            serde_json::Value::Object(o) => {
                o.values_mut().fold(false, |c, x| walk(x, depth + 1) | c)
            }
            _ => false,
        }
    }
    walk(value, 0)
}

/// A mark found in a text, authenticated by one of the keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DetectedMark {
    /// What it says.
    pub payload: MarkPayload,
    /// The key whose MAC it carries.
    pub key_id: String,
    /// How many complete, consistent copies were read (0 when only the majority
    /// vote over damaged copies recovered it).
    pub copies: usize,
    /// How many valid groups agreed with it.
    pub groups: usize,
}

/// Finds and authenticates every mark in `text`, most copies first.
pub fn detect_marks(text: &str, keys: &Keys) -> Vec<DetectedMark> {
    let groups = read_groups(text);
    if groups.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<([u8; PAYLOAD_LEN], DetectedMark)> = Vec::new();
    let mut add = |bytes: [u8; PAYLOAD_LEN], whole: bool| {
        if let Some((payload, key_id)) = MarkPayload::open(&bytes, keys) {
            match found.iter_mut().find(|(b, _)| *b == bytes) {
                Some((_, m)) => m.copies += usize::from(whole),
                None => found.push((
                    bytes,
                    DetectedMark {
                        payload,
                        key_id,
                        copies: usize::from(whole),
                        groups: 0,
                    },
                )),
            }
        }
    };
    // Complete copies: consecutive groups whose indices cover 0..4 once each.
    for w in groups.windows(CHUNKS) {
        let mut seen = [false; CHUNKS];
        let mut bytes = [0u8; PAYLOAD_LEN];
        for &(idx, data) in w {
            let at = usize::from(idx) * 4;
            seen[usize::from(idx)] = true;
            bytes[at..at + 4].copy_from_slice(&data);
        }
        if seen.iter().all(|&s| s) {
            add(bytes, true);
        }
    }
    // Majority vote per chunk, for text where no copy survived whole.
    let mut bytes = [0u8; PAYLOAD_LEN];
    let mut complete = true;
    for idx in 0..CHUNKS as u8 {
        let mut votes: Vec<([u8; 4], usize)> = Vec::new();
        for &(i, d) in &groups {
            if i == idx {
                match votes.iter_mut().find(|(v, _)| *v == d) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((d, 1)),
                }
            }
        }
        match votes.iter().max_by_key(|(_, n)| *n) {
            Some((d, _)) => {
                let at = usize::from(idx) * 4;
                bytes[at..at + 4].copy_from_slice(d);
            }
            None => complete = false,
        }
    }
    if complete {
        add(bytes, false);
    }
    let mut found: Vec<DetectedMark> = found
        .into_iter()
        .map(|(bytes, mut m)| {
            m.groups = groups
                .iter()
                .filter(|(idx, data)| {
                    let at = usize::from(*idx) * 4;
                    bytes[at..at + 4] == data[..]
                })
                .count();
            m
        })
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse((m.copies, m.groups)));
    found
}

/// Every valid group in `text`, in order.
fn read_groups(text: &str) -> Vec<(u8, [u8; 4])> {
    let mut out = Vec::new();
    let mut run: Vec<u8> = Vec::with_capacity(GROUP_CHARS);
    let mut flush = |run: &mut Vec<u8>| {
        if let Some(g) = decode_group(run) {
            out.push(g);
        }
        run.clear();
    };
    for c in text.chars() {
        match symbol_value(c) {
            Some(v) => {
                if run.len() <= GROUP_CHARS {
                    run.push(v);
                }
            }
            None => {
                if !run.is_empty() {
                    flush(&mut run);
                }
            }
        }
    }
    if !run.is_empty() {
        flush(&mut run);
    }
    out
}

/// A mark from account A's responses echoed in a prompt sent by account B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkEcho {
    /// The mark found.
    pub mark: DetectedMark,
    /// The link value that ties the echoing account to the mark's account: the
    /// same string for every echo of that account's marks, so clustering can
    /// treat it like a shared payment instrument. The source account must be
    /// given the same value ([`source_link`]) when it is tagged.
    pub link: HardLink,
}

/// Response extension set by the watermark stage when the request's prompt echoed
/// marks issued to other accounts: outer stages (fingerprinting, clustering, logs)
/// read it from the response and turn each [`MarkEcho::link`] into a hard link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkEchoes(pub Vec<MarkEcho>);

/// Every string of a JSON value that contains a mark character, joined by blank
/// lines (bounded depth).
pub fn marked_strings(v: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, depth: usize, out: &mut String) {
        if depth > 64 {
            return;
        }
        match v {
            serde_json::Value::String(s) if s.chars().any(is_mark_char) => {
                out.push_str(s);
                out.push_str("\n\n");
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, depth + 1, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, depth + 1, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(v, 0, &mut out);
    out
}

/// The hard-link value of marks issued to `account`.
pub fn source_link(account: &AccountId) -> HardLink {
    HardLink(format!("dg-mark:{}", hex(&account.0[..7])).into())
}

/// Marks in a prompt from `current` that were issued to *another* account: each
/// is evidence that both accounts are run by one operator.
pub fn echoes(prompt: &str, current: &AccountId, keys: &Keys) -> Vec<MarkEcho> {
    detect_marks(prompt, keys)
        .into_iter()
        .filter(|m| !m.payload.matches_account(current))
        .map(|m| MarkEcho {
            link: HardLink(format!("dg-mark:{}", m.payload.account_hex()).into()),
            mark: m,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::tag::SigningKey;
    use proptest::prelude::*;
    use unicode_normalization::UnicodeNormalization;

    const PROSE: &str = "The river wound slowly through the valley, carrying silt from the mountains toward the distant sea. Farmers along its banks had learned, over many generations, to read the colour of the water and the height of the reeds. When the spring floods came early, they moved their animals to higher ground and waited patiently for the water to recede. Children learned to swim in the shallow bends, and old men fished from the wooden piers that leaned out over the current. Every autumn the village held a festival to thank the river for its gifts, with music, bread, and long tables set beneath the chestnut trees. Travellers who passed through often stayed longer than they had planned, charmed by the quiet rhythm of the place and the kindness of its people. In winter the mist settled thickly over the fields, and the lamps in the windows glowed like small golden moons. Stories were told by the fire about storms long past, lost boats, and the year the river froze from bank to bank. The young listened with wide eyes, and the old corrected each other on the details, laughing at their own faulty memories. Nobody could say exactly how old the village was, but the stones of the church were worn smooth by centuries of rain. Some said a monk had founded it, others that a shipwrecked sailor had built the first house from the timbers of his boat. Whatever the truth, the people were proud of their home and reluctant to leave it for the noisy cities of the coast.";

    fn keys() -> Keys {
        Keys::new(vec![
            SigningKey::new("k1", b"mark test secret").expect("key")
        ])
        .expect("keys")
    }

    fn plan(every: u32) -> Arc<MarkPlan> {
        let p = MarkPayload::new(
            AccountId([0xA1; 16]),
            ClusterId([0xC2; 16]),
            1_764_201_600_000,
        );
        Arc::new(MarkPlan::new(&p, keys().signing(), every))
    }

    fn words(text: &str, from: usize, n: usize) -> String {
        text.split(' ')
            .skip(from)
            .take(n)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn alphabet_survives_nfkc_and_is_not_whitespace() {
        for c in ALPHABET {
            let s = format!("a{c}b");
            assert_eq!(
                s.nfkc().collect::<String>(),
                s,
                "U+{:04X} changed by NFKC",
                c as u32
            );
            assert!(!c.is_whitespace(), "U+{:04X} is whitespace", c as u32);
            assert_eq!(ALPHABET[symbol_value(c).expect("symbol") as usize], c);
        }
    }

    #[test]
    fn groups_round_trip_and_detect_damage() {
        let g = encode_group(2, [1, 2, 3, 4]);
        let syms: Vec<u8> = g.chars().filter_map(symbol_value).collect();
        assert_eq!(decode_group(&syms), Some((2, [1, 2, 3, 4])));
        let mut bad = syms.clone();
        bad[5] ^= 1;
        assert_eq!(decode_group(&bad), None);
    }

    #[test]
    fn marked_text_reads_the_same_without_marks() {
        let marked = TextMarker::mark(&plan(4), PROSE);
        assert!(marked.len() > PROSE.len());
        let visible: String = marked.chars().filter(|c| !is_mark_char(*c)).collect();
        assert_eq!(visible, PROSE);
        assert_eq!(strip_marks(&marked), PROSE);
    }

    #[test]
    fn excerpts_of_40_100_and_200_words_carry_the_mark() {
        let text = format!("{PROSE} {PROSE}");
        let marked = TextMarker::mark(&plan(4), &text);
        let total = text.split(' ').count();
        for n in [40, 100, 200] {
            for from in (0..total.saturating_sub(n)).step_by(7) {
                let excerpt = words(&marked, from, n);
                let found = detect_marks(&excerpt, &keys());
                assert_eq!(found.len(), 1, "{n} words from {from}");
                assert!(found[0].payload.matches_account(&AccountId([0xA1; 16])));
                assert!(found[0].payload.matches_cluster(&ClusterId([0xC2; 16])));
                assert_eq!(found[0].payload.issued_at_ms(), 1_764_201_600_000);
                assert!(
                    found[0].copies >= 1,
                    "{n} words from {from}: {:?}",
                    found[0]
                );
            }
        }
    }

    #[test]
    fn survives_nfkc_and_a_markdown_round_trip() {
        let marked = TextMarker::mark(&plan(4), PROSE);
        let nfkc: String = marked.nfkc().collect();
        assert_eq!(detect_marks(&nfkc, &keys()).len(), 1);
        // Re-wrap into short lines, quote it, emphasise a few words: what an editor
        // or a markdown renderer and copy does to prose.
        let mut rewrapped = String::from("> ");
        let mut col = 0;
        for (i, w) in marked.split_whitespace().enumerate() {
            let w = if i % 17 == 0 {
                format!("*{w}*")
            } else {
                w.to_string()
            };
            if col > 50 {
                rewrapped.push_str("\n> ");
                col = 0;
            } else if i > 0 {
                rewrapped.push(' ');
            }
            col += w.chars().filter(|c| !is_mark_char(*c)).count() + 1;
            rewrapped.push_str(&w);
        }
        let found = detect_marks(&rewrapped, &keys());
        assert_eq!(found.len(), 1, "{rewrapped}");
        assert!(found[0].copies >= 2);
    }

    #[test]
    fn damaged_copies_are_outvoted() {
        let marked = TextMarker::mark(&plan(2), PROSE);
        // Delete one mark character from every third group: no run of four
        // consecutive groups may stay intact, the vote still recovers the mark.
        let mut out = String::new();
        let mut group_no = 0;
        let mut in_run = 0;
        for c in marked.chars() {
            if is_mark_char(c) {
                in_run += 1;
                if in_run == 1 {
                    group_no += 1;
                }
                if group_no % 3 == 0 && in_run == 5 {
                    continue;
                }
            } else {
                in_run = 0;
            }
            out.push(c);
        }
        let found = detect_marks(&out, &keys());
        assert_eq!(found.len(), 1);
        assert!(found[0].payload.matches_account(&AccountId([0xA1; 16])));
    }

    #[test]
    fn code_json_and_urls_are_never_marked() {
        let p = plan(2);
        let text = "Here is how to do it in Python quickly and safely today:\n\n```python\nfor item in items:\n    print(item, end=' ')\n```\n\nThen call `do the thing now` and visit https://example.com/a/b for more words here.\n\n    indented code block line with many words inside it\n\nDone now with all these words.";
        let marked = TextMarker::mark(&p, text);
        for (i, line) in marked.lines().enumerate() {
            let inside =
                line.starts_with("for ") || line.starts_with("    ") || line.starts_with("```");
            if inside {
                assert!(!line.chars().any(is_mark_char), "line {i} marked: {line:?}");
            }
        }
        let span = marked.find("`do").expect("span");
        let end = marked[span + 1..].find('`').expect("end") + span + 1;
        assert!(!marked[span..end].chars().any(is_mark_char));
        let url = marked.find("https").expect("url");
        assert!(!marked[url..url + 25].chars().any(is_mark_char));
        assert!(marked.chars().any(is_mark_char), "prose is still marked");
        let json = "  {\"answer\": \"a b c d e f g h i j k l m n o p\"}";
        assert_eq!(TextMarker::mark(&p, json), json);
    }

    #[test]
    fn prompts_are_cleaned_but_emoji_joiners_kept() {
        let marked = TextMarker::mark(&plan(4), PROSE);
        let prompt =
            format!("Summarise this: {marked} \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}");
        let clean = strip_marks(&prompt);
        assert!(detect_marks(&clean, &keys()).is_empty());
        assert!(clean.contains("\u{1F468}\u{200D}\u{1F469}"));
        let mut body = serde_json::json!({"messages": [{"role": "user", "content": prompt}]});
        assert!(strip_marks_json(&mut body));
        assert!(detect_marks(&body.to_string(), &keys()).is_empty());
        assert!(!strip_marks_json(&mut body));
    }

    #[test]
    fn echo_by_another_account_is_a_hard_link() {
        let marked = TextMarker::mark(&plan(4), PROSE);
        let source = AccountId([0xA1; 16]);
        let other = AccountId([0x55; 16]);
        assert!(
            echoes(&marked, &source, &keys()).is_empty(),
            "own text is no echo"
        );
        let e = echoes(&marked, &other, &keys());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].link, source_link(&source));
        // A mark sealed with an unknown key is ignored.
        let stranger = Keys::new(vec![SigningKey::new("x", b"other").expect("key")]).expect("keys");
        assert!(echoes(&marked, &other, &stranger).is_empty());
    }

    #[test]
    fn two_sources_in_one_text_are_both_found() {
        let p2 = {
            let p = MarkPayload::new(
                AccountId([0xB3; 16]),
                ClusterId([0xD4; 16]),
                1_764_201_600_000,
            );
            Arc::new(MarkPlan::new(&p, keys().signing(), 4))
        };
        let text = format!(
            "{}\n\n{}",
            TextMarker::mark(&plan(4), PROSE),
            TextMarker::mark(&p2, PROSE)
        );
        assert_eq!(detect_marks(&text, &keys()).len(), 2);
    }

    proptest! {
        #[test]
        fn any_split_marks_the_same(cuts in proptest::collection::vec(0usize..2000, 0..6)) {
            let p = plan(3);
            let text = "Intro words here and there.\n\n```\ncode `x` here\n```\nAfter the `span` we go on and on with more prose words.\n    indented words\nEnd of the story told.";
            let whole = TextMarker::mark(&p, text);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).filter(|c| text.is_char_boundary(*c)).collect();
            cuts.sort_unstable();
            let mut m = TextMarker::new(p.clone());
            let mut out = String::new();
            let mut prev = 0;
            for c in cuts {
                m.push(&text[prev..c], &mut out);
                prev = c;
            }
            m.push(&text[prev..], &mut out);
            prop_assert_eq!(out, whole);
        }

        #[test]
        fn detection_never_panics(s in "[a-z \u{200B}-\u{200D}\u{2060}-\u{2064}]{0,400}") {
            let _ = detect_marks(&s, &keys());
            let clean = strip_marks(&s);
            prop_assert!(read_groups(&clean).is_empty());
        }
    }
}

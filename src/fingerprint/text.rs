//! Text normalisation and payload masking: the tokenizer behind the template
//! signatures.
//!
//! Text is normalised to Unicode NFKC (skipped for ASCII and for text the quick
//! check already finds normalised), lowercased and split on whitespace, so spacing
//! and case never matter. The *payload* — what changes from one use of a template
//! to the next — is masked: numbers, quoted strings (`"…"`, `“…”`), fenced code
//! blocks, inline code, URLs, e-mail addresses and hex/UUID-like ids each become
//! one placeholder token, and a run of equal placeholders becomes one. Punctuation
//! is dropped. Tokens come out as 64-bit hashes; the text itself is never kept.

use std::borrow::Cow;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::hash::{fmix, hash_str, mum, seed, StableHasher};

/// Longest inline code span (`` `…` ``) that is masked, in bytes.
const MAX_INLINE_CODE: usize = 256;
/// Longest quoted string that is masked, in bytes.
const MAX_QUOTED: usize = 2048;

/// A masked payload kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mask {
    Number,
    Quoted,
    Code,
    Url,
    Email,
    Id,
}

impl Mask {
    /// The token hash of the placeholder. Word hashes are pseudo-random 64-bit
    /// values, so these fixed values collide with a word only by chance.
    pub(crate) const fn token(self) -> u64 {
        0x6d61_736b_6564_0000
            | match self {
                Mask::Number => 1,
                Mask::Quoted => 2,
                Mask::Code => 3,
                Mask::Url => 4,
                Mask::Email => 5,
                Mask::Id => 6,
            }
    }
}

/// True for the placeholder tokens.
pub(crate) fn is_mask(token: u64) -> bool {
    token & !0xff == 0x6d61_736b_6564_0000
}

/// NFKC, without allocating when the text is ASCII or already normalised.
pub(crate) fn nfkc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

/// The largest char boundary at or below `i`.
pub(crate) fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary at or above `i`.
pub(crate) fn ceil_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Hash of a lowercased word, with a reusable scratch buffer.
///
/// Words of up to 16 ASCII bytes (nearly all of them) take a fast path: the
/// lowercased bytes are loaded as two little-endian words and mixed with one
/// folded multiply and the finaliser. Such words never contain NUL, so the zero
/// padding is unambiguous, and the mixing constants have bytes ≥ 0x80, so neither
/// factor can be zero.
#[inline]
fn word_token(word: &str, scratch: &mut String) -> u64 {
    let b = word.as_bytes();
    if b.len() <= 16 && word.is_ascii() {
        let mut buf = [0u8; 16];
        for (d, s) in buf.iter_mut().zip(b) {
            *d = s.to_ascii_lowercase();
        }
        return short_token(&buf);
    }
    if word.is_ascii() {
        scratch.clear();
        scratch.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        scratch.clear();
        for c in word.chars() {
            scratch.extend(c.to_lowercase());
        }
    }
    hash_str(seed::TOKEN, scratch)
}

/// The fast-path hash of a lowercased ASCII word of at most 16 bytes, zero-padded.
#[inline]
fn short_token(buf: &[u8; 16]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&buf[..8]);
    hi.copy_from_slice(&buf[8..]);
    let x = u64::from_le_bytes(lo) ^ 0xa076_1d64_78bd_642f;
    let y = u64::from_le_bytes(hi) ^ 0xe703_7ed1_a0b4_28db;
    fmix(mum(x, y) ^ seed::TOKEN)
}

/// The token hash of one lowercase ASCII word, as the tokenizer would produce it.
pub(crate) fn token_of(word: &str) -> u64 {
    let mut scratch = String::new();
    word_token(word, &mut scratch)
}

/// Appends the masked token hashes of `text` (already NFKC) to `out`, up to
/// `max_tokens` tokens in total.
pub(crate) fn tokenize(text: &str, out: &mut Vec<u64>, max_tokens: usize) {
    let b = text.as_bytes();
    let mut scratch = String::new();
    let mut i = 0;
    while i < b.len() && out.len() < max_tokens {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'`' {
            if b[i..].starts_with(b"```") {
                let end = find(b, i + 3, b"```").map_or(b.len(), |e| e + 3);
                push_mask(out, Mask::Code);
                i = end;
            } else if let Some(e) = find_inline(b, i + 1, b'`', MAX_INLINE_CODE) {
                push_mask(out, Mask::Code);
                i = e + 1;
            } else {
                i += 1;
            }
            continue;
        }
        if c == b'"' {
            match find_within(b, i + 1, b"\"", MAX_QUOTED) {
                Some(e) => {
                    push_mask(out, Mask::Quoted);
                    i = e + 1;
                }
                None => i += 1,
            }
            continue;
        }
        if c == OPEN_QUOTE[0] && b[i..].starts_with(OPEN_QUOTE) {
            match find_within(b, i + OPEN_QUOTE.len(), CLOSE_QUOTE, MAX_QUOTED) {
                Some(e) => {
                    push_mask(out, Mask::Quoted);
                    i = e + CLOSE_QUOTE.len();
                }
                None => i += OPEN_QUOTE.len(),
            }
            continue;
        }
        // A chunk: up to whitespace or the start of a masked span.
        let start = i;
        let mut flags = 0u8;
        while let Some(&c) = b.get(i) {
            let f = CLASS[usize::from(c)];
            if f & (WS | BREAK | HIGH) != 0 {
                break;
            }
            flags |= f;
            i += 1;
        }
        let mut ascii = true;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_whitespace() || c == b'`' || c == b'"' {
                break;
            }
            if c < 0x80 {
                i += 1;
                continue;
            }
            ascii = false;
            let ch = text[i..].chars().next().unwrap_or(' ');
            if ch.is_whitespace() || ch == '\u{201c}' {
                break;
            }
            i += ch.len_utf8();
        }
        if i == start {
            // A non-ASCII whitespace character: skip it.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        if ascii && flags & SPECIAL == 0 {
            ascii_runs(&text[start..i], out, max_tokens);
        } else {
            chunk(&text[start..i], out, &mut scratch, max_tokens);
        }
    }
}

/// The words of an ASCII chunk that cannot be a URL, e-mail or id and has no
/// underscore (no `@`, `.`, `/`, `:`, `-`, `_`): one pass that lowercases, counts
/// digits and hashes, with the same result as [`chunk`].
fn ascii_runs(t: &str, out: &mut Vec<u64>, max_tokens: usize) {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if CLASS[usize::from(b[i])] & WORD == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0usize;
        let mut buf = [0u8; 16];
        while let Some(&c) = b.get(i) {
            let f = CLASS[usize::from(c)];
            if f & WORD == 0 {
                break;
            }
            digits += usize::from(f & DIGIT != 0);
            if let Some(slot) = buf.get_mut(i - start) {
                *slot = c.to_ascii_lowercase();
            }
            i += 1;
        }
        if out.len() >= max_tokens {
            return;
        }
        let len = i - start;
        if digits * 2 >= len {
            push_mask(out, Mask::Number);
        } else if len >= 12 && digits >= 3 {
            push_mask(out, Mask::Id);
        } else if len <= 16 {
            out.push(short_token(&buf));
        } else {
            let mut scratch = String::new();
            out.push(word_token(&t[start..i], &mut scratch));
        }
    }
}

// Byte classes for the tokenizer's hot loops.
const WS: u8 = 1;
const BREAK: u8 = 2;
const SPECIAL: u8 = 4;
const WORD: u8 = 8;
const DIGIT: u8 = 16;
const HIGH: u8 = 32;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut f = 0;
        if c.is_ascii_whitespace() {
            f |= WS;
        }
        if c == b'`' || c == b'"' {
            f |= BREAK;
        }
        if matches!(c, b'@' | b'.' | b'/' | b':' | b'-' | b'_') {
            f |= SPECIAL;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            f |= WORD;
        }
        if c.is_ascii_digit() {
            f |= DIGIT;
        }
        if c >= 0x80 {
            f |= HIGH;
        }
        t[i] = f;
        i += 1;
    }
    t
};

const OPEN_QUOTE: &[u8] = "\u{201c}".as_bytes();
const CLOSE_QUOTE: &[u8] = "\u{201d}".as_bytes();

fn push_mask(out: &mut Vec<u64>, m: Mask) {
    let t = m.token();
    if out.last() != Some(&t) {
        out.push(t);
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_within(hay: &[u8], from: usize, needle: &[u8], limit: usize) -> Option<usize> {
    let end = hay.len().min(from.saturating_add(limit));
    if from >= end {
        return None;
    }
    find(&hay[..end], from, needle)
}

/// The next `close` on the same line within `limit` bytes.
fn find_inline(hay: &[u8], from: usize, close: u8, limit: usize) -> Option<usize> {
    let end = hay.len().min(from.saturating_add(limit));
    for (j, &c) in hay.get(from..end)?.iter().enumerate() {
        if c == close {
            return Some(from + j);
        }
        if c == b'\n' {
            return None;
        }
    }
    None
}

fn chunk(s: &str, out: &mut Vec<u64>, scratch: &mut String, max_tokens: usize) {
    let t = if s.is_ascii() {
        let b = s.as_bytes();
        let start = b.iter().position(u8::is_ascii_alphanumeric);
        let end = b.iter().rposition(u8::is_ascii_alphanumeric);
        match (start, end) {
            (Some(a), Some(z)) => &s[a..=z],
            _ => return,
        }
    } else {
        s.trim_matches(|c: char| !c.is_alphanumeric())
    };
    if t.is_empty() {
        return;
    }
    if t.len() >= 4 {
        if is_url(t) {
            return push_mask(out, Mask::Url);
        }
        if t.contains('@') && is_email(t) {
            return push_mask(out, Mask::Email);
        }
        if t.len() >= 8 && is_hex_id(t) {
            return push_mask(out, Mask::Id);
        }
    }
    if t.is_ascii() {
        let b = t.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !(b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if out.len() >= max_tokens {
                return;
            }
            run(&t[start..i], out, scratch);
        }
        return;
    }
    for r in t.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if r.is_empty() {
            continue;
        }
        if out.len() >= max_tokens {
            return;
        }
        run(r, out, scratch);
    }
}

fn run(run: &str, out: &mut Vec<u64>, scratch: &mut String) {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    if digits * 2 >= run.len()
        || (digits == 0 && !run.is_ascii() && run.chars().all(char::is_numeric))
    {
        push_mask(out, Mask::Number);
    } else if run.len() >= 12 && digits >= 3 {
        push_mask(out, Mask::Id);
    } else {
        out.push(word_token(run, scratch));
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn is_url(s: &str) -> bool {
    ["http://", "https://", "ftp://", "www.", "file://"]
        .iter()
        .any(|p| starts_with_ci(s, p))
}

fn is_email(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain
            .find('.')
            .is_some_and(|d| d > 0 && d + 1 < domain.len())
}

/// Hex strings and UUIDs: only hex digits and `-`/`:`, at least 8 hex digits, with
/// both a digit and a letter.
fn is_hex_id(s: &str) -> bool {
    let mut hex = 0usize;
    let (mut digit, mut letter) = (false, false);
    for c in s.bytes() {
        match c {
            b'0'..=b'9' => {
                hex += 1;
                digit = true;
            }
            b'a'..=b'f' | b'A'..=b'F' => {
                hex += 1;
                letter = true;
            }
            b'-' | b':' => {}
            _ => return false,
        }
    }
    hex >= 8 && digit && letter
}

/// Exact hash of normalised text (NFKC, lowercase, whitespace collapsed) over
/// `pieces` joined by whitespace, reading at most `max_bytes` in total.
/// Returns the hash and the number of words, or `None` when there are no words.
///
/// The normalised bytes are streamed into the hasher eight at a time, without
/// building the normalised text.
pub(crate) fn normalized_hash(pieces: &[&str], max_bytes: usize) -> Option<(u64, usize)> {
    let mut sink = Sink {
        h: StableHasher::new(seed::FIELD),
        buf: [0; 64],
        len: 0,
    };
    let mut words = 0usize;
    let mut left = max_bytes;
    for piece in pieces {
        if left == 0 {
            break;
        }
        let cut = &piece[..floor_boundary(piece, left)];
        left -= cut.len().min(left);
        let mut in_word = false;
        if cut.is_ascii() {
            for &b in cut.as_bytes() {
                if b.is_ascii_whitespace() {
                    in_word = false;
                } else {
                    if !in_word {
                        if words > 0 {
                            sink.push(b' ');
                        }
                        words += 1;
                        in_word = true;
                    }
                    sink.push(b.to_ascii_lowercase());
                }
            }
        } else {
            let text = nfkc(cut);
            let mut utf8 = [0u8; 4];
            for c in text.chars() {
                if c.is_whitespace() {
                    in_word = false;
                    continue;
                }
                if !in_word {
                    if words > 0 {
                        sink.push(b' ');
                    }
                    words += 1;
                    in_word = true;
                }
                for l in c.to_lowercase() {
                    for &b in l.encode_utf8(&mut utf8).as_bytes() {
                        sink.push(b);
                    }
                }
            }
        }
    }
    (words > 0).then(|| {
        sink.flush();
        sink.h.write_u64(words as u64);
        (sink.h.finish(), words)
    })
}

/// Buffers bytes and feeds them to the hasher 64 at a time.
struct Sink {
    h: StableHasher,
    buf: [u8; 64],
    len: usize,
}

impl Sink {
    #[inline]
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
        if self.len == self.buf.len() {
            self.h.write_raw(&self.buf);
            self.len = 0;
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.h.write_raw(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<u64> {
        let mut out = Vec::new();
        tokenize(&nfkc(s), &mut out, usize::MAX);
        out
    }

    #[test]
    fn case_spacing_and_width_do_not_matter() {
        assert_eq!(toks("Hello   World\n\tagain"), toks("hello world again"));
        // Fullwidth letters normalise to ASCII under NFKC.
        assert_eq!(toks("\u{ff28}ello world"), toks("hello world"));
        assert_eq!(toks("ÉCOLE\u{a0}d'été"), toks("école d été"));
    }

    #[test]
    fn payloads_are_masked() {
        let m = |k: Mask| k.token();
        assert_eq!(
            toks("Translate \"Good morning, Alice\" now"),
            vec![token_of("translate"), m(Mask::Quoted), token_of("now")]
        );
        assert_eq!(
            toks("fix ```python\nprint(1)\n``` and `x = 2` please"),
            vec![
                token_of("fix"),
                m(Mask::Code),
                token_of("and"),
                m(Mask::Code),
                token_of("please")
            ]
        );
        assert_eq!(
            toks("see https://example.com/a?b=1, mail bob@example.org id 550e8400-e29b-41d4-a716-446655440000 or 3.14 and 1,000"),
            vec![
                token_of("see"),
                m(Mask::Url),
                token_of("mail"),
                m(Mask::Email),
                token_of("id"),
                m(Mask::Id),
                token_of("or"),
                m(Mask::Number),
                token_of("and"),
                m(Mask::Number),
            ]
        );
        // Runs of one placeholder collapse.
        assert_eq!(toks("1 2 3 4 5"), vec![m(Mask::Number)]);
        assert_eq!(toks("“curly quoted”"), vec![m(Mask::Quoted)]);
    }

    #[test]
    fn unclosed_spans_do_not_swallow_or_loop() {
        assert_eq!(toks("a \" b"), vec![token_of("a"), token_of("b")]);
        assert_eq!(toks("a ` b"), vec![token_of("a"), token_of("b")]);
        assert_eq!(toks("a ```b c"), vec![token_of("a"), Mask::Code.token()]);
        assert_eq!(toks("\u{3000}\u{2003}x"), vec![token_of("x")]);
        assert!(toks("").is_empty());
    }

    #[test]
    fn the_token_cap_holds() {
        let mut out = Vec::new();
        tokenize(&"word ".repeat(1000), &mut out, 10);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn normalized_hash_ignores_case_and_spacing_only() {
        let a = normalized_hash(&["You are  a helpful\nassistant."], 1 << 20);
        let b = normalized_hash(&["you are a HELPFUL assistant."], 1 << 20);
        let c = normalized_hash(&["you are a helpful assistant!"], 1 << 20);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.map(|x| x.1), Some(5));
        assert_eq!(normalized_hash(&["  \n "], 100), None);
        // The byte cap is over all pieces together.
        assert_eq!(normalized_hash(&["abc", "def"], 3).map(|x| x.1), Some(1));
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_fast_path_matches_the_general_one(s in "[A-Za-z0-9 ,;!?()]{0,80}") {
            let mut fast = Vec::new();
            tokenize(&s, &mut fast, usize::MAX);
            let mut slow = Vec::new();
            let mut scratch = String::new();
            for w in s.split_whitespace() {
                chunk(w, &mut slow, &mut scratch, usize::MAX);
            }
            proptest::prop_assert_eq!(fast, slow);
        }

        #[test]
        fn tokenize_never_panics(s in ".{0,400}", cap in 0usize..50) {
            let mut out = Vec::new();
            tokenize(&nfkc(&s), &mut out, cap);
            proptest::prop_assert!(out.len() <= cap);
            let _ = normalized_hash(&[&s], 17);
        }
    }
}

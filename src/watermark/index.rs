//! The trace-back index: compact fingerprints of tagged responses, so that text
//! whose marks were stripped can still be traced to the account that received it.
//!
//! For each tagged response the index keeps a 64-slot MinHash of its word
//! 3-shingles (for excerpts and lightly edited copies), one 64-bit SimHash per
//! paragraph of at least [`MIN_PARAGRAPH_WORDS`] words (for whole paragraphs,
//! re-wrapped or not), the shingle count, and the account, cluster, request id and
//! time: about 400 bytes per response. Text is normalised first (marks removed,
//! NFKC, lowercase, words of letters and digits), so formatting does not matter.
//!
//! The index is bounded: past `max_entries` the oldest entry is evicted. Lookup is
//! a linear scan, meant for the occasional `trace` (a few milliseconds per 50 000
//! entries), never for the request path.
//!
//! With a Redis store the replicas share their entries (see `share`): each
//! entry is published as it is recorded, and the other replicas' entries are
//! added as they arrive, so every replica's index holds the responses all of
//! them served and `trace --server` may ask any replica.
//!
//! Confidence is a heuristic in `0..=1`: the larger of the share of the query's
//! paragraphs found (SimHash within [`SIMHASH_DISTANCE`] bits) and the estimated
//! share of the query's shingles contained in the response (from the MinHash
//! Jaccard estimate and both shingle counts, discounted when few slots agree).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use super::mark::is_mark_char;
use super::tag::RequestId;
use crate::extensions::{AccountId, ClusterId};

/// MinHash slots per response.
pub const MINHASH_SLOTS: usize = 64;
/// Paragraphs shorter than this are not fingerprinted on their own.
pub const MIN_PARAGRAPH_WORDS: usize = 8;
/// Largest SimHash distance (of 64 bits) that counts as the same paragraph.
pub const SIMHASH_DISTANCE: u32 = 10;
/// Paragraph fingerprints kept per response.
const MAX_PARAGRAPHS: usize = 64;
/// Matches below this confidence are not reported.
pub const MIN_CONFIDENCE: f64 = 0.3;

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn word_hash(w: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in w {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Normalised words of a text: marks removed, NFKC, lowercased, split at anything
/// that is not a letter or digit; each word hashed to 64 bits.
pub fn normalized_words(text: &str) -> Vec<u64> {
    let mut out = Vec::with_capacity(text.len() / 5);
    if ascii_words(text.as_bytes(), &mut out) {
        return out;
    }
    out.clear();
    let clean: String = text
        .chars()
        .filter(|c| !is_mark_char(*c))
        .nfkc()
        .flat_map(char::to_lowercase)
        .collect();
    out.extend(
        clean
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| word_hash(&w.as_bytes()[..w.len().min(64)])),
    );
    out
}

/// The fast path of [`normalized_words`] for ASCII text with marks: one pass over
/// the bytes, no allocation. Returns false (leaving `out` partly filled) at the
/// first other non-ASCII character.
fn ascii_words(b: &[u8], out: &mut Vec<u64>) -> bool {
    let mut word = [0u8; 64];
    let mut n = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            if c.is_ascii_alphanumeric() {
                if n < word.len() {
                    word[n] = c.to_ascii_lowercase();
                    n += 1;
                }
            } else if n > 0 {
                out.push(word_hash(&word[..n]));
                n = 0;
            }
            i += 1;
        } else if c == 0xE2
            && i + 2 < b.len()
            && ((b[i + 1] == 0x80 && (0x8B..=0x8D).contains(&b[i + 2]))
                || (b[i + 1] == 0x81 && (0xA0..=0xA4).contains(&b[i + 2])))
        {
            // A mark character (U+200B..U+200D, U+2060..U+2064): ignored.
            i += 3;
        } else {
            return false;
        }
    }
    if n > 0 {
        out.push(word_hash(&word[..n]));
    }
    true
}

fn shingles(words: &[u64]) -> Vec<u64> {
    if words.len() < 3 {
        return words.iter().map(|&w| mix(w)).collect();
    }
    words
        .windows(3)
        .map(|w| mix(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42)))
        .collect()
}

fn simhash(shingles: &[u64]) -> u64 {
    // Count the set bits per position (branch-free, vectorises), then keep the
    // positions set in more than half of the shingles.
    let mut ones = [0u32; 64];
    for &s in shingles {
        for (bit, c) in ones.iter_mut().enumerate() {
            *c += ((s >> bit) & 1) as u32;
        }
    }
    let half = shingles.len() as u32;
    ones.iter().enumerate().fold(
        0u64,
        |acc, (bit, &c)| if 2 * c > half { acc | 1 << bit } else { acc },
    )
}

/// One-permutation MinHash: each shingle's hash picks a slot by its top bits and
/// competes for that slot's minimum with its low bits. One hash per shingle.
fn minhash(shingles: &[u64]) -> [u32; MINHASH_SLOTS] {
    let mut out = [u32::MAX; MINHASH_SLOTS];
    for &s in shingles {
        let h = mix(s);
        let slot = (h >> 58) as usize % MINHASH_SLOTS;
        let v = h as u32;
        if v < out[slot] {
            out[slot] = v;
        }
    }
    out
}

/// The fingerprints of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPrint {
    minhash: [u32; MINHASH_SLOTS],
    paragraphs: Vec<u64>,
    shingles: u32,
}

impl TextPrint {
    /// Fingerprints `text`; `None` when it has no words.
    pub fn of(text: &str) -> Option<Self> {
        let mut words = Vec::new();
        let mut paragraphs = Vec::new();
        for para in split_paragraphs(text) {
            let w = normalized_words(para);
            if w.len() >= MIN_PARAGRAPH_WORDS && paragraphs.len() < MAX_PARAGRAPHS {
                paragraphs.push(simhash(&shingles(&w)));
            }
            words.extend(w);
        }
        if words.is_empty() {
            return None;
        }
        let all = shingles(&words);
        Some(Self {
            minhash: minhash(&all),
            paragraphs,
            shingles: u32::try_from(all.len()).unwrap_or(u32::MAX),
        })
    }

    /// How much of `query` this text contains, `0..=1` (see the module docs).
    pub fn containment_of(&self, query: &TextPrint) -> f64 {
        let para = if query.paragraphs.is_empty() {
            0.0
        } else {
            let mut sum = 0.0;
            for q in &query.paragraphs {
                let best = self
                    .paragraphs
                    .iter()
                    .map(|p| (p ^ q).count_ones())
                    .min()
                    .unwrap_or(64);
                if best <= SIMHASH_DISTANCE {
                    sum += 1.0 - f64::from(best) / 64.0;
                }
            }
            sum / query.paragraphs.len() as f64
        };
        let (mut agree, mut used) = (0usize, 0usize);
        for (a, b) in self.minhash.iter().zip(query.minhash.iter()) {
            if *a != u32::MAX || *b != u32::MAX {
                used += 1;
                if a == b {
                    agree += 1;
                }
            }
        }
        let j = agree as f64 / used.max(1) as f64;
        // |Q ∩ R| = J / (1 + J) × (|Q| + |R|); containment = |Q ∩ R| / |Q|.
        let q = f64::from(query.shingles.max(1));
        let r = f64::from(self.shingles);
        let contained = (j / (1.0 + j) * (q + r) / q).min(1.0);
        // Few agreeing slots are noise: scale up to full trust at 8 slots.
        let trust = (agree as f64 / 8.0).min(1.0);
        para.max(contained * trust)
    }
}

/// Paragraphs: runs of text separated by blank lines.
fn split_paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (para, tail) = match find_blank_line(rest) {
                Some((start, end)) => (&rest[..start], &rest[end..]),
                None => (rest, ""),
            };
            rest = tail;
            if !para.trim().is_empty() {
                return Some(para);
            }
        }
        None
    })
}

fn find_blank_line(s: &str) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let mut j = nl + 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'\n' {
            return Some((nl, j + 1));
        }
        i = nl + 1;
    }
    None
}

/// One indexed response.
#[derive(Debug, Clone)]
struct Entry {
    account: AccountId,
    cluster: ClusterId,
    request_id: RequestId,
    issued_at_ms: u64,
    print: TextPrint,
}

/// A response the index attributes a text to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexMatch {
    /// The account that received it.
    pub account: AccountId,
    /// Its cluster then.
    pub cluster: ClusterId,
    /// The response's request id (as in its tag).
    pub request_id: RequestId,
    /// When it was served, Unix milliseconds.
    pub issued_at_ms: u64,
    /// How much of the text the response contains, `0..=1`.
    pub confidence: f64,
}

/// Where a recorded entry is published (encoded), once sharing started.
type Publish = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// The bounded index of tagged responses. Cheap to share behind an `Arc`.
pub struct TraceIndex {
    max_entries: usize,
    entries: Mutex<VecDeque<Entry>>,
    publish: std::sync::OnceLock<Publish>,
    /// The log the entries are shared through, once sharing started.
    #[cfg(feature = "redis")]
    log: std::sync::OnceLock<crate::cluster::share::SharedLog>,
}

impl std::fmt::Debug for TraceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceIndex")
            .field("max_entries", &self.max_entries)
            .field("shared", &self.publish.get().is_some())
            .finish_non_exhaustive()
    }
}

impl TraceIndex {
    /// An index of at most `max_entries` responses (0: keeps nothing).
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            entries: Mutex::new(VecDeque::with_capacity(max_entries.min(4096))),
            publish: std::sync::OnceLock::new(),
            #[cfg(feature = "redis")]
            log: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding the lock leaves the deque consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a tagged response's text. Evicts the oldest entry when full.
    pub fn insert(
        &self,
        account: AccountId,
        cluster: ClusterId,
        request_id: RequestId,
        issued_at_ms: u64,
        text: &str,
    ) {
        if self.max_entries == 0 {
            return;
        }
        let Some(print) = TextPrint::of(text) else {
            return;
        };
        let entry = Entry {
            account,
            cluster,
            request_id,
            issued_at_ms,
            print,
        };
        if let Some(publish) = self.publish.get() {
            let mut bytes = Vec::with_capacity(ENTRY_BYTES_MIN + 8 * entry.print.paragraphs.len());
            encode_entry(&entry, &mut bytes);
            publish(bytes);
        }
        self.push(entry);
    }

    fn push(&self, entry: Entry) {
        if self.max_entries == 0 {
            return;
        }
        let mut entries = self.lock();
        while entries.len() >= self.max_entries {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Publishes every entry recorded from now on through `log` (once; later
    /// calls are ignored).
    #[cfg(feature = "redis")]
    pub(crate) fn publish_to(&self, log: crate::cluster::share::SharedLog) {
        let sender = log.clone();
        if self.log.set(log).is_ok() {
            let _ = self.publish.set(Box::new(move |bytes| sender.send(bytes)));
        }
    }

    /// The counters of sharing this index with the other replicas (`None`
    /// when it is not shared).
    #[cfg(feature = "redis")]
    pub fn shared_counts(&self) -> Option<crate::cluster::share::ShareCounts> {
        self.log.get().map(crate::cluster::share::SharedLog::counts)
    }

    /// Adds an entry of another replica's batch (see [`decode_batch`]).
    #[cfg(feature = "redis")]
    pub(crate) fn add_shared(&self, entry: SharedEntry) {
        self.push(entry.0);
    }

    /// The most responses kept.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// How many responses are indexed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The response that best contains `text`, if any reaches [`MIN_CONFIDENCE`].
    pub fn lookup(&self, text: &str) -> Option<IndexMatch> {
        let query = TextPrint::of(text)?;
        let entries = self.lock();
        let mut best: Option<(f64, &Entry)> = None;
        for e in entries.iter() {
            let c = e.print.containment_of(&query);
            // Later entries win ties: the most recent copy of a repeated answer.
            if c >= MIN_CONFIDENCE && best.is_none_or(|(b, _)| c >= b) {
                best = Some((c, e));
            }
        }
        best.map(|(confidence, e)| IndexMatch {
            account: e.account,
            cluster: e.cluster,
            request_id: e.request_id,
            issued_at_ms: e.issued_at_ms,
            confidence,
        })
    }

    /// Distinct accounts of indexed responses whose id starts with the hex digits
    /// `prefix`, newest first, at most `limit`.
    pub fn accounts_with_prefix(&self, prefix: &str, limit: usize) -> Vec<AccountId> {
        let mut out: Vec<AccountId> = Vec::new();
        for e in self.lock().iter().rev() {
            if out.len() >= limit {
                break;
            }
            if e.account.starts_with_hex(prefix) && !out.contains(&e.account) {
                out.push(e.account);
            }
        }
        out
    }

    /// The most recent indexed response whose account and cluster start with these
    /// prefixes, issued within `[from_ms, to_ms)`: resolves a text mark's prefixes
    /// to full ids.
    pub fn resolve_prefix(
        &self,
        account_prefix: &[u8],
        cluster_prefix: &[u8],
        from_ms: u64,
        to_ms: u64,
    ) -> Option<(AccountId, ClusterId)> {
        self.lock()
            .iter()
            .rev()
            .find(|e| {
                e.account.0.starts_with(account_prefix)
                    && e.cluster.0.starts_with(cluster_prefix)
                    && (from_ms..to_ms).contains(&e.issued_at_ms)
            })
            .map(|e| (e.account, e.cluster))
    }
}

/// An entry received from another replica.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub(crate) struct SharedEntry(Entry);

/// Bytes of an encoded entry without its paragraphs.
const ENTRY_BYTES_MIN: usize = 16 * 3 + 8 + 4 + 4 * MINHASH_SLOTS + 1;
/// The header of a batch of shared entries: `dw`, version 1.
#[cfg(feature = "redis")]
const MAGIC: &[u8; 3] = b"dw\x01";
/// Most entries in one batch.
#[cfg(feature = "redis")]
const MAX_BATCH: usize = 4096;

/// Appends `e` to `out`:
/// `account[16] cluster[16] request_id[16] issued_at_ms u64 shingles u32
/// minhash 64 × u32 n u8 n × paragraph u64`, little-endian.
fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.account.0);
    out.extend_from_slice(&e.cluster.0);
    out.extend_from_slice(&e.request_id.0);
    out.extend_from_slice(&e.issued_at_ms.to_le_bytes());
    out.extend_from_slice(&e.print.shingles.to_le_bytes());
    for m in &e.print.minhash {
        out.extend_from_slice(&m.to_le_bytes());
    }
    let n = e.print.paragraphs.len().min(MAX_PARAGRAPHS);
    out.push(n as u8);
    for p in &e.print.paragraphs[..n] {
        out.extend_from_slice(&p.to_le_bytes());
    }
}

/// A batch of encoded entries from replica `replica`:
/// `"dw" 0x01 | replica u64 | count u16 | count × entry`.
#[cfg(feature = "redis")]
pub(crate) fn encode_batch(replica: u64, entries: &[Vec<u8>]) -> Vec<u8> {
    let count = entries.len().min(MAX_BATCH);
    let len: usize = entries.iter().take(count).map(Vec::len).sum();
    let mut out = Vec::with_capacity(13 + len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&replica.to_le_bytes());
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for e in entries.iter().take(count) {
        out.extend_from_slice(e);
    }
    out
}

/// Why a batch of shared entries could not be decoded.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BatchError {
    /// Not this format or version.
    #[error("not a batch of trace index entries (bad magic or version)")]
    Magic,
    /// Ended in the middle of a field.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// Too many entries or paragraphs, or bytes left over.
    #[error("bad count or trailing bytes")]
    Count,
}

/// Decodes a batch: the replica that wrote it and its entries. Every length is
/// checked; anything malformed is an error for the whole batch, never a panic.
#[cfg(feature = "redis")]
pub(crate) fn decode_batch(buf: &[u8]) -> Result<(u64, Vec<SharedEntry>), BatchError> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], BatchError> {
        let end = at.checked_add(n).ok_or(BatchError::Truncated(at))?;
        let s = buf.get(at..end).ok_or(BatchError::Truncated(at))?;
        at = end;
        Ok(s)
    };
    fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&s[..N]);
        a
    }
    if take(3).map_err(|_| BatchError::Magic)? != MAGIC {
        return Err(BatchError::Magic);
    }
    let replica = u64::from_le_bytes(arr(take(8)?));
    let count = usize::from(u16::from_le_bytes(arr(take(2)?)));
    if count > MAX_BATCH {
        return Err(BatchError::Count);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let account = AccountId(arr(take(16)?));
        let cluster = ClusterId(arr(take(16)?));
        let request_id = RequestId(arr(take(16)?));
        let issued_at_ms = u64::from_le_bytes(arr(take(8)?));
        let shingles = u32::from_le_bytes(arr(take(4)?));
        let mut minhash = [0u32; MINHASH_SLOTS];
        for m in &mut minhash {
            *m = u32::from_le_bytes(arr(take(4)?));
        }
        let n = usize::from(take(1)?[0]);
        if n > MAX_PARAGRAPHS {
            return Err(BatchError::Count);
        }
        let mut paragraphs = Vec::with_capacity(n);
        for _ in 0..n {
            paragraphs.push(u64::from_le_bytes(arr(take(8)?)));
        }
        out.push(SharedEntry(Entry {
            account,
            cluster,
            request_id,
            issued_at_ms,
            print: TextPrint {
                minhash,
                paragraphs,
                shingles,
            },
        }));
    }
    if at != buf.len() {
        return Err(BatchError::Count);
    }
    Ok((replica, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "redis")]
    #[test]
    fn shared_entries_round_trip_and_malformed_batches_are_errors() {
        let idx = TraceIndex::new(10);
        let entry = |text: &str, n: u8| Entry {
            account: AccountId([n; 16]),
            cluster: ClusterId([n + 1; 16]),
            request_id: RequestId([n + 2; 16]),
            issued_at_ms: 1_700_000_000_000 + u64::from(n),
            print: TextPrint::of(text).expect("words"),
        };
        let entries = [entry(A, 1), entry(B, 5)];
        let encoded: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| {
                let mut out = Vec::new();
                encode_entry(e, &mut out);
                out
            })
            .collect();
        let batch = encode_batch(77, &encoded);
        let (replica, got) = decode_batch(&batch).expect("decodes");
        assert_eq!(replica, 77);
        assert_eq!(got.len(), 2);
        for (g, e) in got.iter().zip(&entries) {
            assert_eq!(g.0.account, e.account);
            assert_eq!(g.0.request_id, e.request_id);
            assert_eq!(g.0.print, e.print);
        }
        for g in got {
            idx.add_shared(g);
        }
        let hit = idx.lookup(&A[..200]).expect("traced from a shared entry");
        assert_eq!(hit.account, AccountId([1; 16]));
        // Every truncation, a wrong magic, trailing bytes and an oversized
        // paragraph count are errors, never panics.
        for cut in 0..batch.len() {
            assert!(decode_batch(&batch[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = batch.clone();
        bad[0] = b'x';
        assert_eq!(decode_batch(&bad).err(), Some(BatchError::Magic));
        let mut long = batch.clone();
        long.push(0);
        assert_eq!(decode_batch(&long).err(), Some(BatchError::Count));
        let mut paragraphs = encode_batch(1, &encoded[..1]);
        let n_at = 13 + 16 * 3 + 8 + 4 + 4 * MINHASH_SLOTS;
        paragraphs[n_at] = 200;
        assert!(decode_batch(&paragraphs).is_err());
    }

    const A: &str = "Photosynthesis converts light energy into chemical energy stored in glucose. \
        Chlorophyll in the chloroplasts absorbs mostly red and blue light and reflects green.\n\n\
        The light reactions split water, release oxygen and produce ATP and NADPH, which the \
        Calvin cycle then uses to fix carbon dioxide into sugars over several enzymatic steps.\n\n\
        Plants in hot, dry climates often use C4 or CAM pathways to limit water loss while still \
        capturing enough carbon dioxide during the cooler hours of the night.";
    const B: &str = "The French Revolution began in 1789 with the storming of the Bastille and \
        transformed the political landscape of Europe.\n\nIt abolished feudal privileges, \
        proclaimed the rights of man and eventually led to the rise of Napoleon Bonaparte, \
        whose campaigns spread its ideas across the continent.";

    fn index() -> TraceIndex {
        let idx = TraceIndex::new(10);
        idx.insert(
            AccountId([1; 16]),
            ClusterId([11; 16]),
            RequestId([1; 16]),
            1_000,
            A,
        );
        idx.insert(
            AccountId([2; 16]),
            ClusterId([22; 16]),
            RequestId([2; 16]),
            2_000,
            B,
        );
        idx
    }

    #[test]
    fn finds_whole_text_and_rewrapped_paragraphs() {
        let idx = index();
        let m = idx.lookup(A).expect("found");
        assert_eq!(m.account, AccountId([1; 16]));
        assert!(m.confidence > 0.9, "{m:?}");
        // Second paragraph only, re-wrapped, different case and quotes.
        let para = A.split("\n\n").nth(1).expect("para");
        let rewrapped = para
            .split_whitespace()
            .collect::<Vec<_>>()
            .chunks(6)
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
            .to_uppercase();
        let m = idx.lookup(&rewrapped).expect("found");
        assert_eq!(m.account, AccountId([1; 16]));
        assert!(m.confidence > 0.8, "{m:?}");
    }

    #[test]
    fn finds_an_excerpt_inside_a_paragraph() {
        let idx = index();
        let words: Vec<&str> = A.split_whitespace().collect();
        let excerpt = words[10..45].join(" ");
        let m = idx.lookup(&excerpt).expect("found");
        assert_eq!(m.account, AccountId([1; 16]));
    }

    #[test]
    fn normalisation_ignores_marks_case_and_width() {
        let plain = normalized_words("Hello, World of rivers");
        assert_eq!(
            normalized_words("hello world\u{200B}\u{2063} OF Rivers!"),
            plain
        );
        // Fullwidth letters fold under NFKC.
        assert_eq!(normalized_words("\u{FF28}ello World of rivers"), plain);
    }

    #[test]
    fn unrelated_text_is_not_attributed() {
        let idx = index();
        assert!(idx.lookup("A completely different sentence about cooking pasta with garlic, olive oil and a little chilli for dinner tonight.").is_none());
        assert!(idx.lookup("").is_none());
    }

    #[test]
    fn bounded_and_oldest_evicted() {
        let idx = TraceIndex::new(2);
        idx.insert(
            AccountId([1; 16]),
            ClusterId([1; 16]),
            RequestId([1; 16]),
            1,
            A,
        );
        idx.insert(
            AccountId([2; 16]),
            ClusterId([2; 16]),
            RequestId([2; 16]),
            2,
            B,
        );
        idx.insert(
            AccountId([3; 16]),
            ClusterId([3; 16]),
            RequestId([3; 16]),
            3,
            "Something else entirely, with enough words to make a paragraph here.",
        );
        assert_eq!(idx.len(), 2);
        assert!(idx.lookup(A).is_none(), "oldest evicted");
        assert_eq!(idx.lookup(B).expect("kept").account, AccountId([2; 16]));
        let none = TraceIndex::new(0);
        none.insert(
            AccountId([1; 16]),
            ClusterId([1; 16]),
            RequestId([1; 16]),
            1,
            A,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn prefixes_resolve_to_full_ids() {
        let idx = index();
        assert_eq!(
            idx.resolve_prefix(&[2; 7], &[22; 3], 0, 10_000),
            Some((AccountId([2; 16]), ClusterId([22; 16])))
        );
        assert_eq!(idx.resolve_prefix(&[2; 7], &[22; 3], 3_000, 10_000), None);
    }
}

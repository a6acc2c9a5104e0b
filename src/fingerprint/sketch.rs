//! Near-duplicate signatures of a window of tokens: SimHash-64 and MinHash with
//! LSH bands, both over shingles (runs of consecutive tokens).
//!
//! MinHash estimates the Jaccard similarity of two windows' shingle sets: the
//! fraction of equal MinHash values. LSH groups the values into bands of `rows`;
//! two windows share a band with probability `J^rows`, so with 8 bands of 4 rows a
//! pair at J = 0.8 shares at least one band 97 % of the time and a pair at J = 0.2
//! about 1 %. Each band becomes one feature, which lets the clustering stage find
//! near-duplicates with exact lookups. SimHash is a single 64-bit value whose
//! Hamming distance tracks cosine similarity of the shingle multisets; it is kept
//! for handlers and the scorer (a distance of ≤ 3–6 bits means near-identical).

use serde::{Deserialize, Serialize};

use super::hash::{hash_words, mum, seed, StableHasher};

/// Most MinHash values a window can have (`fingerprint.minhash_hashes` ≤ 256).
const MAX_HASHES: usize = 256;

/// The MinHash permutation keys, computed once.
fn permutations() -> &'static [u64; MAX_HASHES] {
    static PERMS: std::sync::OnceLock<[u64; MAX_HASHES]> = std::sync::OnceLock::new();
    PERMS.get_or_init(|| {
        let mut p = [0u64; MAX_HASHES];
        for (i, x) in p.iter_mut().enumerate() {
            *x = super::hash::fmix(seed::MINHASH ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        p
    })
}

/// For each byte value, the ±1 SimHash increments of its eight bits.
fn simhash_table() -> &'static [[i32; 8]; 256] {
    static TABLE: std::sync::OnceLock<[[i32; 8]; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0i32; 8]; 256];
        for (v, row) in t.iter_mut().enumerate() {
            for (bit, x) in row.iter_mut().enumerate() {
                *x = if (v >> bit) & 1 == 1 { 1 } else { -1 };
            }
        }
        t
    })
}

/// The signature of one window of masked tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSketch {
    /// Tokens in the window.
    pub tokens: u32,
    /// SimHash-64 of the window's shingles.
    pub simhash: u64,
    /// MinHash values (`fingerprint.minhash_hashes` of them).
    pub minhash: Vec<u64>,
    /// One hash per LSH band (`fingerprint.lsh_bands` of them), band index mixed in.
    pub bands: Vec<u64>,
}

impl WindowSketch {
    /// Builds the signature of `tokens`. `None` for an empty window or a
    /// `hashes`/`bands` pair that does not divide (validation rules it out).
    pub(crate) fn of(tokens: &[u64], shingle: usize, hashes: usize, bands: usize) -> Option<Self> {
        if tokens.is_empty() || bands == 0 || hashes == 0 || hashes % bands != 0 {
            return None;
        }
        let k = shingle.clamp(1, tokens.len());
        let perms = &permutations()[..hashes.min(MAX_HASHES)];
        let hashes = perms.len();
        if hashes % bands != 0 {
            return None;
        }
        let mut mins = vec![u64::MAX; hashes];
        let mut counts = [0i32; 64];
        for w in tokens.windows(k) {
            let mut h = StableHasher::new(seed::SHINGLE);
            for t in w {
                h.write_u64(*t);
            }
            let sh = h.finish();
            // Eight bits at a time from a table of ±1 vectors.
            let table = simhash_table();
            for (byte, lanes) in counts.chunks_exact_mut(8).enumerate() {
                let add = &table[((sh >> (8 * byte)) & 0xff) as usize];
                for (c, a) in lanes.iter_mut().zip(add) {
                    *c += *a;
                }
            }
            for (m, p) in mins.iter_mut().zip(perms) {
                let v = mum(sh ^ p, 0xe703_7ed1_a0b4_28db);
                if v < *m {
                    *m = v;
                }
            }
        }
        let simhash =
            counts.iter().enumerate().fold(
                0u64,
                |acc, (bit, c)| if *c > 0 { acc | (1 << bit) } else { acc },
            );
        let rows = hashes / bands;
        let band_hashes = mins
            .chunks_exact(rows)
            .enumerate()
            .map(|(b, chunk)| {
                let mut words = Vec::with_capacity(rows + 1);
                words.push(b as u64);
                words.extend_from_slice(chunk);
                hash_words(seed::FIELD, &words)
            })
            .collect();
        Some(Self {
            tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            simhash,
            minhash: mins,
            bands: band_hashes,
        })
    }

    /// The MinHash estimate of the Jaccard similarity of two windows' shingle sets
    /// (0 when the signatures have different sizes).
    pub fn jaccard(&self, other: &WindowSketch) -> f64 {
        if self.minhash.len() != other.minhash.len() || self.minhash.is_empty() {
            return 0.0;
        }
        let same = self
            .minhash
            .iter()
            .zip(&other.minhash)
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / self.minhash.len() as f64
    }

    /// Hamming distance of the SimHashes (0..=64).
    pub fn simhash_distance(&self, other: &WindowSketch) -> u32 {
        (self.simhash ^ other.simhash).count_ones()
    }

    /// Number of LSH bands the two windows share.
    pub fn shared_bands(&self, other: &WindowSketch) -> usize {
        self.bands
            .iter()
            .zip(&other.bands)
            .filter(|(a, b)| a == b)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(words: &[u64]) -> WindowSketch {
        WindowSketch::of(words, 3, 32, 8).expect("sketch")
    }

    #[test]
    fn identical_windows_match_fully_and_disjoint_ones_do_not() {
        let a: Vec<u64> = (0..32).collect();
        let b: Vec<u64> = (1000..1032).collect();
        let sa = window(&a);
        assert_eq!(sa.jaccard(&window(&a)), 1.0);
        assert_eq!(sa.shared_bands(&window(&a)), 8);
        assert_eq!(sa.simhash_distance(&window(&a)), 0);
        let sb = window(&b);
        assert!(sa.jaccard(&sb) < 0.1, "{}", sa.jaccard(&sb));
        assert_eq!(sa.shared_bands(&sb), 0);
        assert!(sa.simhash_distance(&sb) > 16);
    }

    #[test]
    fn small_edits_keep_most_of_the_signature() {
        let a: Vec<u64> = (0..32).collect();
        let mut b = a.clone();
        b[31] = 999;
        let (sa, sb) = (window(&a), window(&b));
        // 29 of 30 shingles are shared: true Jaccard 29/31.
        assert!(sa.jaccard(&sb) > 0.7, "{}", sa.jaccard(&sb));
        assert!(sa.shared_bands(&sb) >= 2);
        assert!(
            sa.simhash_distance(&sb) <= 12,
            "{}",
            sa.simhash_distance(&sb)
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert!(WindowSketch::of(&[], 3, 32, 8).is_none());
        assert!(WindowSketch::of(&[1], 3, 30, 8).is_none());
        let one = WindowSketch::of(&[7], 3, 32, 8).expect("one token");
        assert_eq!(one.tokens, 1);
        assert_eq!(one.bands.len(), 8);
    }
}

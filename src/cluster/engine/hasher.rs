//! The engine's hash maps: a fast seeded hasher for keys that are already
//! hashes.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A fast multiply-rotate hasher with a random per-engine seed. The keys are
/// already keyed or seeded hashes (account ids, feature values) or small
/// integers, so SipHash's strength buys nothing here, and the seed keeps bucket
/// placement unpredictable.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeededHasher(u64);

impl SeededHasher {
    pub(super) fn random() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6a09_e667_f3bc_c908);
        Self(h.finish() | 1)
    }
}

impl BuildHasher for SeededHasher {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FastHasher(u64);

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(MUL);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, SeededHasher>;

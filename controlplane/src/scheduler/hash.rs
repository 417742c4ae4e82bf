//! Small deterministic hashes: tie-breaking between equal-scored nodes and cheap integer-keyed
//! maps. Stable across runs and platforms (no random seed), which the tie-break relies on.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over a string, then [`mix`]: a well-spread 64-bit hash.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finaliser: every input bit affects every output bit.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hasher for maps keyed by small integers (interned ids): one multiply, no SipHash rounds.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// `HashMap<u32, V, IdBuild>` for interned-id keys.
pub type IdBuild = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(hash_str("node-1"), hash_str("node-1"));
        assert_ne!(hash_str("node-1"), hash_str("node-2"));
        // Adjacent inputs land in different halves often enough to spread ties.
        let high = (0..1000)
            .filter(|i| hash_str(&format!("uid-{i}")) >> 63 == 1)
            .count();
        assert!((400..600).contains(&high), "{high}");
    }
}

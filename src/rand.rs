//! Cheap non-cryptographic randomness for retry jitter and emulator ids.
//!
//! Uses std's randomly keyed SipHash over a process-wide counter, so no
//! extra dependency is needed. Never used for anything secret on the client
//! side.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A pseudo-random `u64`.
pub(crate) fn u64() -> u64 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = STATE.get_or_init(RandomState::new).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A pseudo-random value in `0..bound` (0 when `bound` is 0).
pub(crate) fn below(bound: u64) -> u64 {
    if bound == 0 {
        0
    } else {
        u64() % bound
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn below_stays_in_range_and_varies() {
        let xs: Vec<u64> = (0..64).map(|_| super::below(10)).collect();
        assert!(xs.iter().all(|&x| x < 10));
        assert!(xs.iter().any(|&x| x != xs[0]));
        assert_eq!(super::below(0), 0);
    }
}

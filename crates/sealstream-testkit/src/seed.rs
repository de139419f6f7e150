//! Seeds of randomized tests: fixed by default, printed, and changed with
//! `SEALSTREAM_TEST_SEED`, so that a failure can be repeated.

/// The seed of the randomized test `name`: `SEALSTREAM_TEST_SEED`, or a
/// fixed default; printed to standard error.
pub fn test_seed(name: &str) -> u64 {
    let seed = std::env::var("SEALSTREAM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5ea1_5eed_u64);
    eprintln!("{name}: seed {seed} (set SEALSTREAM_TEST_SEED to change)");
    seed
}

/// SplitMix64: a small deterministic generator for test schedules.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `range` (not empty).
    pub fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next_u64() % (range.end - range.start)
    }
}

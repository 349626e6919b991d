// SPDX-License-Identifier: GPL-2.0

//! A small xorshift generator for the KUnit tests' randomized checks: deterministic, so that a
//! failure can be replayed from its seed.

/// The generator's state: any nonzero seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (nonzero).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

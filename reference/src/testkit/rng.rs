//! Deterministic generators, so a seed (a proptest case, a fuzz input, a bench run)
//! always reproduces the same numbers, without a `rand` dependency.

/// SplitMix64 (Steele, Lea and Flood, 2014): the generator of the kernels' tests, the
/// fuzz targets and the bench-suite. Changing it changes every seeded problem (and
/// the meaning of committed proptest regressions and fuzz corpora).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`, from 24 random bits (every value is exact in `f32`).
    pub fn sym(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in `[-a, a)`: [`SplitMix64::sym`] times `a`.
    pub fn uniform(&mut self, a: f32) -> f32 {
        self.sym() * a
    }

    /// `n` values uniform in `[-a, a)`.
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(a)).collect()
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// Knuth's MMIX linear congruential generator, with 53-bit `f64` outputs: the
/// generator of the reference's own tests (`reference/tests/semantics.rs`, `props.rs`),
/// kept so their seeded problems stay what they were.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Lcg(seed)
    }

    /// Uniform in `[-1, 1)` (53 random bits).
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// `n` values uniform in `[-1, 1)`.
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.unit()).collect()
    }

    /// Uniform in `[-scale, scale)`, rounded to the nearest `f32` (so an `f32` run and
    /// an `f64` run of the same problem see the same numbers).
    pub fn f32_exact(&mut self, scale: f64) -> f64 {
        f64::from((self.unit() * scale) as f32)
    }

    /// `n` values of [`Lcg::f32_exact`].
    pub fn vec_f32_exact(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.f32_exact(scale)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs are pinned: seeded problems everywhere depend on them.
    #[test]
    fn streams_are_pinned() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut r = SplitMix64::new(7);
        let v = r.sym();
        assert!((-1.0..1.0).contains(&v));
        assert_eq!(SplitMix64::new(7).uniform(3.0), v * 3.0);
        let mut l = Lcg::new(1);
        let u = l.unit();
        assert!((-1.0..1.0).contains(&u));
        assert_eq!(Lcg::new(1).f32_exact(2.0), f64::from((u * 2.0) as f32));
    }
}

//! Seeds and distributions: every random draw of the simulator goes through a
//! generator derived from the run's seed, so a seed reproduces the same bytes.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: decorrelates derived seeds.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A generator for the stream `(a, b)`.
pub(crate) fn rng_of(a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(a, b))
}

/// A stable 64-bit hash of a name (FNV-1a), for naming random streams.
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A uniform number in `[0, 1)` from a hash: for decisions that must be the
/// same wherever they are taken (e.g. whether an account pivots).
pub(crate) fn unit(h: u64) -> f64 {
    (mix(h, 0x5eed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Picks one item (the slices here are never empty; an empty one gives "").
pub(crate) fn pick<'a, R: Rng + ?Sized>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// Picks one item of any copyable type, or `fallback` from an empty slice.
pub(crate) fn pick_or<T: Copy, R: Rng + ?Sized>(rng: &mut R, items: &[T], fallback: T) -> T {
    items.choose(rng).copied().unwrap_or(fallback)
}

/// An index drawn with the given (non-negative) weights; 0 when they are all 0.
pub(crate) fn weighted<R: Rng + ?Sized>(rng: &mut R, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().map(|w| w.max(0.0)).sum();
    if total <= 0.0 || !total.is_finite() {
        return 0;
    }
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        x -= w.max(0.0);
        if x < 0.0 {
            return i;
        }
    }
    weights.len().saturating_sub(1)
}

/// `true` with probability `p` (clamped to `[0, 1]`; NaN is 0).
pub(crate) fn chance<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    rng.random_bool(p)
}

/// A standard normal deviate (Box–Muller).
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal deviate with the given median and shape `sigma`.
pub(crate) fn log_normal<R: Rng + ?Sized>(rng: &mut R, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// A log-normal deviate with mean 1 and shape `sigma`: a per-account rate
/// multiplier that keeps the population's mean.
pub(crate) fn mean_one<R: Rng + ?Sized>(rng: &mut R, sigma: f64) -> f64 {
    log_normal(rng, 1.0, sigma) / (sigma * sigma / 2.0).exp()
}

/// An exponential deviate with the given mean.
pub(crate) fn exponential<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    -u.ln() * mean
}

/// A Poisson deviate (Knuth's method for small means, normal approximation above).
pub(crate) fn poisson<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u32 {
    if mean.is_nan() || mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let x = mean + mean.sqrt() * normal(rng);
        return x.round().max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let mut k = 0u32;
    let mut p = 1.0f64;
    loop {
        p *= rng.random::<f64>();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// A geometric count ≥ 0 with the given mean.
pub(crate) fn geometric<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u32 {
    let p = 1.0 / (1.0 + mean.max(0.0));
    let mut k = 0;
    while k < 1000 && !rng.random_bool(p) {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_their_means() {
        let mut rng = rng_of(2, 0);
        let n = 20_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        let p = mean(&mut || f64::from(poisson(&mut rng, 3.5)));
        assert!((p - 3.5).abs() < 0.1, "{p}");
        let mut rng = rng_of(2, 1);
        let p = mean(&mut || f64::from(poisson(&mut rng, 80.0)));
        assert!((p - 80.0).abs() < 1.0, "{p}");
        let mut rng = rng_of(2, 2);
        let g = mean(&mut || f64::from(geometric(&mut rng, 2.0)));
        assert!((g - 2.0).abs() < 0.1, "{g}");
        let mut rng = rng_of(2, 3);
        let m = mean(&mut || mean_one(&mut rng, 0.3));
        assert!((m - 1.0).abs() < 0.02, "{m}");
        let mut rng = rng_of(2, 4);
        let e = mean(&mut || exponential(&mut rng, 5.0));
        assert!((e - 5.0).abs() < 0.15, "{e}");
        let mut rng = rng_of(2, 5);
        let mut ln: Vec<f64> = (0..n).map(|_| log_normal(&mut rng, 10.0, 1.0)).collect();
        ln.sort_by(f64::total_cmp);
        let median = ln[n / 2];
        assert!((median - 10.0).abs() < 0.5, "{median}");
    }

    #[test]
    fn weighted_draws_follow_the_weights() {
        let mut rng = rng_of(3, 0);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[weighted(&mut rng, &[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = f64::from(counts[2]) / f64::from(counts[0]);
        assert!((ratio - 3.0).abs() < 0.2, "{ratio}");
        assert_eq!(weighted(&mut rng, &[]), 0);
        assert_eq!(weighted(&mut rng, &[0.0, f64::NAN]), 0);
    }

    #[test]
    fn unit_is_uniform_and_stable() {
        assert_eq!(unit(7), unit(7));
        let n = 10_000u64;
        let m = (0..n).map(unit).sum::<f64>() / n as f64;
        assert!((m - 0.5).abs() < 0.02, "{m}");
        assert!((0..n).map(unit).all(|u| (0.0..1.0).contains(&u)));
    }
}

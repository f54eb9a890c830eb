//! The one Horner evaluation (scalar, lanes, slice) and the one run-time CPU-feature dispatch.
//!
//! Everything in polyact that evaluates a polynomial over many values (the [`Polynomial`]
//! slice methods, the candle ops, the MNIST example's kernels) is written once, generic over two
//! compile-time choices, and [`dispatch`] runs it compiled for the best instruction set the CPU
//! offers, detected at run time:
//!
//! | level | when | `FMA` | `LANES` (independent chains) |
//! |---|---|---|---|
//! | AVX-512 | x86-64 with `avx512f` and `fma` | `true` | 128 |
//! | AVX2 + FMA | x86-64 with `avx2` and `fma` | `true` | 32 |
//! | portable | anything else | hardware FMA if compiled in | 32 |
//!
//! `FMA = false` means a separate multiply and add: a software fused multiply-add would be far
//! slower than either. `LANES` is how many elements are evaluated side by side, enough to hide
//! the latency of a multiply-add on that level's vector width.
//!
//! [`Polynomial`]: crate::Polynomial
//!
//! ```
//! use polyact::kernel::{self, Kernel};
//!
//! // A computation written once, run at the best level available.
//! struct SumOfSquares<'a>(&'a [f32]);
//! impl Kernel for SumOfSquares<'_> {
//!     type Output = f32;
//!     #[inline(always)]
//!     fn run<const FMA: bool, const LANES: usize>(self) -> f32 {
//!         self.0.iter().fold(0.0, |acc, &x| kernel::step::<f32, FMA>(x, x, acc))
//!     }
//! }
//! assert_eq!(kernel::dispatch(SumOfSquares(&[1.0, 2.0, 3.0])), 14.0);
//!
//! // Horner's rule over a slice: 1 + 2x + 3x² at 0, 1 and 2.
//! let mut out = [0.0_f64; 3];
//! kernel::horner_slice(&[1.0, 2.0, 3.0], &[0.0, 1.0, 2.0], &mut out);
//! assert_eq!(out, [1.0, 6.0, 17.0]);
//! ```

use crate::Real;

/// A computation that [`dispatch`] runs compiled for the CPU's best instruction set.
///
/// Implementations should mark `run` (and the generic helpers it calls) `#[inline(always)]`, so
/// that its body is compiled inside each level's `#[target_feature]` function rather than once
/// for the baseline CPU.
pub trait Kernel {
    /// What the computation returns.
    type Output;

    /// The computation, with `FMA` telling whether hardware fused multiply-add may be used
    /// (see [`step`]) and `LANES` the number of elements to evaluate side by side.
    fn run<const FMA: bool, const LANES: usize>(self) -> Self::Output;
}

/// Whether the portable level may use `mul_add`: where it compiles to a hardware instruction
/// (every aarch64 CPU has one; on x86-64 only if the build enables `fma`). Other targets (e.g.
/// 32-bit x86, wasm) also take `mul_add`, correctly rounded but possibly through a slow
/// software routine.
const PORTABLE_FMA: bool = cfg!(any(target_feature = "fma", not(target_arch = "x86_64")));

/// Independent chains at the AVX2 and portable levels: four 256-bit vectors of `f32`.
pub const LANES: usize = 32;

/// Independent chains at the AVX-512 level: eight 512-bit vectors of `f32`.
pub const LANES_AVX512: usize = 128;

/// The instruction-set levels [`dispatch`] chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// x86-64 with AVX-512F and FMA.
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2Fma,
    /// Whatever the build targets.
    Portable,
}

/// The level [`dispatch`] uses on this CPU (detected once; the check is cheap afterwards).
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx2") && has!("fma") {
            return Level::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Level::Avx2Fma;
        }
    }
    Level::Portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn run_avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<true, LANES_AVX512>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2_fma<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<true, LANES>()
}

/// Runs `kernel` compiled for the best level this CPU supports ([`level`]).
pub fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` found every feature `run_avx512` is compiled for.
        Level::Avx512 => unsafe { run_avx512(kernel) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` found every feature `run_avx2_fma` is compiled for.
        Level::Avx2Fma => unsafe { run_avx2_fma(kernel) },
        _ => kernel.run::<PORTABLE_FMA, LANES>(),
    }
}

/// One Horner step `acc · x + c`: one rounding with `FMA`, two without.
#[inline(always)]
pub fn step<T: Real, const FMA: bool>(acc: T, x: T, c: T) -> T {
    if FMA { acc.mul_add(x, c) } else { acc * x + c }
}

/// `p(x)` for coefficients in ascending powers, by Horner's rule.
///
/// It starts from the top coefficient, not from 0, so that `p(±∞)` is `±∞` rather than NaN
/// (`0 · ∞`) when the top coefficient is non-zero. The empty list is the zero polynomial.
#[inline(always)]
pub fn horner<T: Real, const FMA: bool>(coefficients: &[T], x: T) -> T {
    match coefficients.split_last() {
        None => T::zero(),
        Some((&top, rest)) => rest
            .iter()
            .rev()
            .fold(top, |acc, &c| step::<T, FMA>(acc, x, c)),
    }
}

/// `(p(x), p′(x))` in one pass of Horner's rule (the derivative's recurrence rides along).
///
/// ```
/// // p = 1 + 2x + 3x²: p(2) = 17, p′(2) = 2 + 6·2 = 14.
/// assert_eq!(polyact::kernel::horner_with_derivative::<f64, true>(&[1.0, 2.0, 3.0], 2.0), (17.0, 14.0));
/// ```
#[inline(always)]
pub fn horner_with_derivative<T: Real, const FMA: bool>(coefficients: &[T], x: T) -> (T, T) {
    let Some((&top, rest)) = coefficients.split_last() else {
        return (T::zero(), T::zero());
    };
    let (mut p, mut dp) = (top, T::zero());
    for &c in rest.iter().rev() {
        dp = step::<T, FMA>(dp, x, p);
        p = step::<T, FMA>(p, x, c);
    }
    (p, dp)
}

/// `p` at `L` independent inputs; the loop over lanes vectorises.
#[inline(always)]
pub fn horner_lanes<T: Real, const FMA: bool, const L: usize>(
    coefficients: &[T],
    x: &[T; L],
) -> [T; L] {
    let Some((&top, rest)) = coefficients.split_last() else {
        return [T::zero(); L];
    };
    let mut acc = [top; L];
    for &c in rest.iter().rev() {
        for (a, &x) in acc.iter_mut().zip(x) {
            *a = step::<T, FMA>(*a, x, c);
        }
    }
    acc
}

/// `out[i] = p(xs[i])`, `L` elements at a time, then the ragged end one by one.
#[inline(always)]
fn horner_chunks<T: Real, const FMA: bool, const L: usize>(
    coefficients: &[T],
    xs: &[T],
    out: &mut [T],
) {
    let mut x_chunks = xs.chunks_exact(L);
    let mut out_chunks = out.chunks_exact_mut(L);
    for (x, o) in (&mut x_chunks).zip(&mut out_chunks) {
        let x: &[T; L] = x.try_into().expect("chunks_exact gives full chunks");
        o.copy_from_slice(&horner_lanes::<T, FMA, L>(coefficients, x));
    }
    for (o, &x) in out_chunks
        .into_remainder()
        .iter_mut()
        .zip(x_chunks.remainder())
    {
        *o = horner::<T, FMA>(coefficients, x);
    }
}

struct HornerSlice<'a, T> {
    coefficients: &'a [T],
    xs: &'a [T],
    out: &'a mut [T],
}

impl<T: Real> Kernel for HornerSlice<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run<const FMA: bool, const L: usize>(self) {
        horner_chunks::<T, FMA, L>(self.coefficients, self.xs, self.out);
    }
}

/// `out[i] = p(xs[i])` for coefficients in ascending powers, at the CPU's best level.
///
/// # Panics
/// If `xs` and `out` differ in length.
pub fn horner_slice<T: Real>(coefficients: &[T], xs: &[T], out: &mut [T]) {
    assert_eq!(
        xs.len(),
        out.len(),
        "horner_slice: input and output lengths differ"
    );
    dispatch(HornerSlice {
        coefficients,
        xs,
        out,
    });
}

/// The coefficients of `p′` from those of `p` (ascending): `k · cₖ` at power `k − 1`, with
/// `times(c, k)` computing `k · c` in the coefficients' own arithmetic (exact or floating, and
/// converting on the way if it likes).
pub fn differentiate<'a, C, D>(
    coefficients: &'a [C],
    times: impl Fn(&C, usize) -> D + 'a,
) -> impl ExactSizeIterator<Item = D> + 'a {
    coefficients
        .iter()
        .enumerate()
        .skip(1)
        .map(move |(k, c)| times(c, k))
}

/// Runs `f` on the coefficients converted to `T`, on the stack for the usual small degrees, so
/// that evaluating a short slice costs no allocation.
pub(crate) fn with_converted<T: Real, R>(
    coefficients: impl ExactSizeIterator<Item = f64>,
    f: impl FnOnce(&[T]) -> R,
) -> R {
    const ON_STACK: usize = 32;
    let n = coefficients.len();
    if n <= ON_STACK {
        let mut buffer = [T::zero(); ON_STACK];
        for (b, c) in buffer.iter_mut().zip(coefficients) {
            *b = T::of(c);
        }
        f(&buffer[..n])
    } else {
        let buffer: Vec<T> = coefficients.map(T::of).collect();
        f(&buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level the CPU offers gives the same values as the plain scalar rule (within the
    /// one rounding per step that fused multiply-add saves).
    #[test]
    fn every_level_agrees_with_the_scalar_rule() {
        let c = [0.5_f64, 0.25, 0.0, -1.0 / 48.0, 0.0, 1.0 / 480.0];
        let xs: Vec<f64> = (0..300).map(|i| -7.0 + 0.047 * i as f64).collect();
        let mut out = vec![0.0; xs.len()];
        horner_slice(&c, &xs, &mut out);
        for (&x, &y) in xs.iter().zip(&out) {
            let naive: f64 = c
                .iter()
                .enumerate()
                .map(|(k, c)| c * x.powi(k as i32))
                .sum();
            assert!((y - naive).abs() <= 1e-12 * naive.abs().max(1.0), "x = {x}");
        }
        let portable: Vec<f64> = xs
            .iter()
            .map(|&x| horner::<f64, PORTABLE_FMA>(&c, x))
            .collect();
        for (a, b) in portable.iter().zip(&out) {
            assert!((a - b).abs() <= 1e-13 * a.abs().max(1.0));
        }
    }

    #[test]
    fn infinite_inputs_give_infinite_values() {
        let c = [1.0_f32, 0.0, 2.0];
        let top = horner::<f32, true>(&c, f32::INFINITY);
        assert!(top.is_infinite() && top > 0.0);
        assert!(horner::<f32, false>(&[], 3.0).abs() < f32::MIN_POSITIVE);
    }

    #[test]
    fn derivative_coefficients() {
        let d: Vec<f64> = differentiate(&[5.0, 3.0, 2.0, 1.0], |c, k| c * k as f64).collect();
        for (got, want) in d.iter().zip([3.0, 4.0, 3.0]) {
            assert!((got - want).abs() < 1e-15);
        }
        assert_eq!(d.len(), 3);
    }
}

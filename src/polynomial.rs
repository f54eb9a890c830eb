//! Polynomials with exact coefficients, evaluated by Horner's rule.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::activation::{Activation, Formula};
use crate::coefficient::Coefficient;
use crate::{Error, Float, Result};

/// A polynomial `c₀ + c₁x + … + cₙxⁿ` in **ascending** powers of `x`.
///
/// Each coefficient keeps its exact value when one is known (see [`Coefficient`]) beside the
/// `f64` used for evaluation. The empty polynomial is the zero polynomial: it evaluates to 0 and
/// has degree 0.
///
/// A polynomial may carry a *domain*, the interval it was fitted on or is meant for; layers use it
/// to report and guard inputs that fall outside.
///
/// It implements [`Activation`] for any float type, so it can stand in wherever an activation
/// is expected.
///
/// ```
/// use polyact::{Coefficient, Polynomial};
/// // 1/2 + x/4 - x^3/48
/// let p = Polynomial::new(vec![
///     Coefficient::ratio(1, 2),
///     Coefficient::ratio(1, 4),
///     Coefficient::zero(),
///     Coefficient::ratio(-1, 48),
/// ]);
/// assert_eq!(p.to_string(), "1/2 + 1/4·x - 1/48·x^3");
/// assert!((p.eval(2.0_f64) - (0.5 + 0.5 - 8.0 / 48.0)).abs() < 1e-15);
/// assert_eq!(p.derivative().to_string(), "1/4 - 1/16·x^2");
/// assert_eq!(p.degree(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Polynomial {
    coefficients: Vec<Coefficient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<RangeInclusive<f64>>,
}

/// What it costs to evaluate a polynomial on encrypted data, where only additions and
/// multiplications exist and each ciphertext-by-ciphertext multiplication consumes a level.
///
/// Multiplications by plaintext constants are counted as free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedCost {
    /// The degree of the polynomial.
    pub degree: usize,
    /// Ciphertext multiplications with the Paterson–Stockmeyer baby-step/giant-step scheme,
    /// minimised over the baby-step size `k`: `k − 1` for the powers `x², …, xᵏ`, then one per
    /// giant step in `xᵏ` (the first is free when the top block is a constant).
    pub multiplications: usize,
    /// Ciphertext multiplications with plain Horner evaluation (`d − 1`: the first step
    /// multiplies a constant).
    pub horner_multiplications: usize,
    /// The minimal multiplicative depth, `⌈log₂ d⌉`: no evaluation order needs fewer levels,
    /// and evaluating powers by repeated squaring attains it.
    pub depth: u32,
}

impl Polynomial {
    /// A polynomial from coefficients in ascending powers.
    pub fn new(coefficients: Vec<Coefficient>) -> Self {
        Self {
            coefficients,
            domain: None,
        }
    }

    /// A polynomial from exact rationals `(numerator, denominator)`, in ascending powers.
    ///
    /// # Panics
    /// Panics if a denominator is zero.
    ///
    /// ```
    /// let p = polyact::Polynomial::from_ratios(&[(1, 2), (1, 4)]);
    /// assert_eq!(p.to_string(), "1/2 + 1/4·x");
    /// ```
    pub fn from_ratios(ratios: &[(i64, i64)]) -> Self {
        Self::new(
            ratios
                .iter()
                .map(|&(n, d)| Coefficient::ratio(n, d))
                .collect(),
        )
    }

    /// A polynomial from floating-point coefficients, in ascending powers. The coefficients are
    /// kept as approximate values (use [`Coefficient::from_decimal`] to read decimals exactly).
    pub fn from_f64(coefficients: &[f64]) -> Self {
        Self::new(
            coefficients
                .iter()
                .map(|&c| Coefficient::approx(c))
                .collect(),
        )
    }

    /// The coefficients, in ascending powers.
    pub fn coefficients(&self) -> &[Coefficient] {
        &self.coefficients
    }

    /// The coefficients' `f64` values, in ascending powers.
    pub fn coefficients_f64(&self) -> Vec<f64> {
        self.coefficients.iter().map(Coefficient::to_f64).collect()
    }

    /// The degree: the highest power with a non-zero coefficient (0 for the zero polynomial).
    pub fn degree(&self) -> usize {
        self.coefficients
            .iter()
            .rposition(|c| !c.is_zero())
            .unwrap_or(0)
    }

    /// The interval this polynomial is meant for, if any (a fit sets it to the fit interval).
    pub fn domain(&self) -> Option<&RangeInclusive<f64>> {
        self.domain.as_ref()
    }

    /// The same polynomial, meant for inputs in `domain`.
    ///
    /// # Errors
    /// [`Error::InvalidInterval`] unless the ends are finite and `lo < hi`.
    pub fn with_domain(mut self, domain: RangeInclusive<f64>) -> Result<Self> {
        check_interval(&domain)?;
        self.domain = Some(domain);
        Ok(self)
    }

    /// `p(x)` by Horner's rule with fused multiply-add.
    pub fn eval<T: Float>(&self, x: T) -> T {
        let mut coefficients = self.coefficients.iter().rev().map(|c| T::of(c.to_f64()));
        // Start from the top coefficient, not from 0: `0 · ∞` would turn p(±∞) into NaN.
        let top = coefficients.next().unwrap_or_else(T::zero);
        coefficients.fold(top, |acc, c| acc.mul_add(x, c))
    }

    /// The derivative polynomial `p'`, exact where `p` is.
    pub fn derivative(&self) -> Polynomial {
        let coefficients = self
            .coefficients
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, c)| c.mul(&Coefficient::integer(k as i64)))
            .collect();
        Polynomial {
            coefficients,
            domain: self.domain.clone(),
        }
    }

    /// The same polynomial with the coefficient of `x^power` replaced (the polynomial grows
    /// with zeros if needed).
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(1, 2)]).with_coefficient(2, Coefficient::ratio(1, 8));
    /// assert_eq!(p.to_string(), "1/2 + 1/8·x^2");
    /// ```
    pub fn with_coefficient(mut self, power: usize, value: Coefficient) -> Self {
        if self.coefficients.len() <= power {
            self.coefficients.resize(power + 1, Coefficient::zero());
        }
        self.coefficients[power] = value;
        self
    }

    /// The same polynomial with the coefficient of `x^power` multiplied by `factor`
    /// (exact when both are).
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(0, 1), (1, 4)]).scale_coefficient(1, &Coefficient::integer(2));
    /// assert_eq!(p.to_string(), "1/2·x");
    /// ```
    pub fn scale_coefficient(mut self, power: usize, factor: &Coefficient) -> Self {
        if let Some(c) = self.coefficients.get_mut(power) {
            *c = c.mul(factor);
        }
        self
    }

    /// The same polynomial without the powers above `degree`.
    pub fn truncate(mut self, degree: usize) -> Self {
        self.coefficients.truncate(degree + 1);
        self
    }

    /// `p(x / s)`: the polynomial stretched horizontally by `s` (coefficient `k` divided by `sᵏ`),
    /// exact when `s` is. Its domain, if any, is stretched too.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `s` is zero or not finite.
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48)]);
    /// let q = p.rescale_input(&Coefficient::integer(2))?;
    /// assert_eq!(q.to_string(), "1/2 + 1/8·x - 1/384·x^3");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn rescale_input(&self, s: &Coefficient) -> Result<Polynomial> {
        let value = s.to_f64();
        if s.is_zero() || !value.is_finite() {
            return Err(Error::InvalidParameter {
                activation: "polynomial",
                parameter: "input scale",
                value,
                requirement: "it must be finite and non-zero",
            });
        }
        let mut power = Coefficient::integer(1);
        let coefficients = self
            .coefficients
            .iter()
            .map(|c| {
                let scaled = c.div(&power);
                power = power.mul(s);
                scaled
            })
            .collect();
        let domain = self.domain.as_ref().map(|d| {
            let (a, b) = (d.start() * value, d.end() * value);
            a.min(b)..=a.max(b)
        });
        Ok(Polynomial {
            coefficients,
            domain,
        })
    }

    /// The cost of evaluating this polynomial under homomorphic encryption.
    ///
    /// ```
    /// let p = polyact::Polynomial::from_f64(&[0.5, 0.25, 0.0, -0.02, 0.0, 0.002]);
    /// let cost = p.cost();
    /// assert_eq!((cost.degree, cost.multiplications, cost.depth), (5, 3, 3));
    /// ```
    pub fn cost(&self) -> EncryptedCost {
        let degree = self.degree();
        let multiplications = (1..=degree)
            .map(|k| {
                let giant_steps = (degree + 1).div_ceil(k) - 1;
                let constant_top_block = usize::from(degree.is_multiple_of(k));
                (k - 1) + giant_steps - constant_top_block
            })
            .min()
            .unwrap_or(0);
        let depth = if degree < 2 {
            0
        } else {
            usize::BITS - (degree - 1).leading_zeros()
        };
        EncryptedCost {
            degree,
            multiplications,
            horner_multiplications: degree.saturating_sub(1),
            depth,
        }
    }

    /// The polynomial as an expression in `x`, exact coefficients kept (approximate ones as
    /// the decimal they print as).
    fn to_formula(&self) -> crate::expr::Expr {
        crate::expr::Expr::polynomial(self.coefficients.iter().enumerate().filter_map(|(k, c)| {
            (!c.is_zero())
                .then(|| c.to_expr().map(|e| (k, e)))
                .flatten()
        }))
    }
}

pub(crate) fn check_interval(domain: &RangeInclusive<f64>) -> Result<()> {
    let (lo, hi) = (*domain.start(), *domain.end());
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok(())
    } else {
        Err(Error::InvalidInterval { lo, hi })
    }
}

impl fmt::Display for Polynomial {
    /// Writes `1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5`: ascending powers, zero terms left out,
    /// exact coefficients where known; `0` for the zero polynomial.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_terms(f, &self.coefficients, "x")
    }
}

/// Writes `Σ cₖ·variableᵏ` as polyact prints polynomials: ascending powers, zero terms left
/// out, signs between terms, a closed form that is a sum in parentheses, `0` when all vanish.
pub(crate) fn write_terms(
    f: &mut fmt::Formatter<'_>,
    coefficients: &[Coefficient],
    variable: &str,
) -> fmt::Result {
    let mut first = true;
    for (k, c) in coefficients.iter().enumerate() {
        if c.is_zero() {
            continue;
        }
        let negative = c.to_f64() < 0.0;
        match (first, negative) {
            (true, true) => f.write_str("-")?,
            (true, false) => {}
            (false, true) => f.write_str(" - ")?,
            (false, false) => f.write_str(" + ")?,
        }
        first = false;
        let magnitude = c.fmt_abs();
        let magnitude =
            if magnitude.starts_with('-') || crate::coefficient::has_top_level_sign(&magnitude) {
                format!("({magnitude})")
            } else {
                magnitude
            };
        match (k, c.is_unit_magnitude()) {
            (0, _) => f.write_str(&magnitude)?,
            (1, true) => f.write_str(variable)?,
            (1, false) => write!(f, "{magnitude}·{variable}")?,
            (_, true) => write!(f, "{variable}^{k}")?,
            (_, false) => write!(f, "{magnitude}·{variable}^{k}")?,
        }
    }
    if first {
        f.write_str("0")?;
    }
    Ok(())
}

/// Elements evaluated side by side in the slice kernels: enough independent Horner chains to
/// hide the latency of a fused multiply-add (four 256-bit vectors of f32).
const LANES: usize = 32;

/// The same with 512-bit vectors: eight chains of sixteen f32.
#[cfg(target_arch = "x86_64")]
const LANES_512: usize = 128;

/// Horner's rule over a slice, `L` elements at a time so the compiler vectorises across
/// elements. `step(acc, x, c)` is one Horner step, `acc · x + c`.
#[inline(always)]
fn horner_lanes<T: Float, const L: usize>(
    coefficients: &[T],
    xs: &[T],
    out: &mut [T],
    step: impl Fn(T, T, T) -> T + Copy,
) {
    let Some((&top, rest)) = coefficients.split_last() else {
        out.fill(T::zero());
        return;
    };
    let mut x_chunks = xs.chunks_exact(L);
    let mut out_chunks = out.chunks_exact_mut(L);
    for (x, o) in (&mut x_chunks).zip(&mut out_chunks) {
        let mut acc = [top; L];
        for &c in rest.iter().rev() {
            for (a, &xi) in acc.iter_mut().zip(x) {
                *a = step(*a, xi, c);
            }
        }
        o.copy_from_slice(&acc);
    }
    for (o, &x) in out_chunks
        .into_remainder()
        .iter_mut()
        .zip(x_chunks.remainder())
    {
        *o = rest.iter().rev().fold(top, |acc, &c| step(acc, x, c));
    }
}

/// The slice kernel compiled for CPUs with AVX2 and FMA.
#[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
#[target_feature(enable = "avx2,fma")]
fn horner_slice_fma<T: Float>(coefficients: &[T], xs: &[T], out: &mut [T]) {
    horner_lanes::<T, LANES>(coefficients, xs, out, T::mul_add);
}

/// The slice kernel compiled for CPUs with AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn horner_slice_avx512<T: Float>(coefficients: &[T], xs: &[T], out: &mut [T]) {
    horner_lanes::<T, LANES_512>(coefficients, xs, out, T::mul_add);
}

/// Evaluates the polynomial with the given coefficients over a slice, using hardware fused
/// multiply-add when the CPU has it (detected at run time on x86-64) and a separate multiply
/// and add otherwise, rather than a slow software FMA.
pub(crate) fn horner_slice<T: Float>(coefficients: &[T], xs: &[T], out: &mut [T]) {
    assert_eq!(
        xs.len(),
        out.len(),
        "eval_slice: input and output lengths differ"
    );
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("fma") {
            // SAFETY: the CPU supports every feature the kernel is compiled for.
            unsafe { horner_slice_avx512(coefficients, xs, out) };
            return;
        }
        #[cfg(not(target_feature = "fma"))]
        if has!("avx2") && has!("fma") {
            // SAFETY: as above.
            unsafe { horner_slice_fma(coefficients, xs, out) };
        } else {
            horner_lanes::<T, LANES>(coefficients, xs, out, |acc, x, c| acc * x + c);
        }
        #[cfg(target_feature = "fma")]
        horner_lanes::<T, LANES>(coefficients, xs, out, T::mul_add);
    }
    #[cfg(not(target_arch = "x86_64"))]
    horner_lanes::<T, LANES>(coefficients, xs, out, T::mul_add);
}

impl<T: Float> Activation<T> for Polynomial {
    fn name(&self) -> &str {
        "polynomial"
    }

    fn eval(&self, x: T) -> T {
        Polynomial::eval(self, x)
    }

    fn derivative(&self, x: T) -> T {
        let mut coefficients = self
            .coefficients
            .iter()
            .enumerate()
            .skip(1)
            .rev()
            .map(|(k, c)| T::of(c.to_f64() * k as f64));
        let top = coefficients.next().unwrap_or_else(T::zero);
        coefficients.fold(top, |acc, c| acc.mul_add(x, c))
    }

    fn formula(&self) -> Formula {
        Formula::Analytic(self.to_formula())
    }

    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        with_coefficients(self.coefficients.iter().map(Coefficient::to_f64), |c| {
            horner_slice(c, xs, out)
        });
    }

    fn eval_in_place(&self, xs: &mut [T]) {
        // Horner over a copy of each chunk keeps the kernel's vectorised shape.
        with_coefficients(self.coefficients.iter().map(Coefficient::to_f64), |c| {
            let mut input = [T::zero(); 1024];
            for chunk in xs.chunks_mut(1024) {
                let input = &mut input[..chunk.len()];
                input.copy_from_slice(chunk);
                horner_slice(c, input, chunk);
            }
        });
    }

    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        let derivative = self
            .coefficients
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, c)| c.to_f64() * k as f64);
        with_coefficients(derivative, |c| horner_slice(c, xs, out));
    }
}

/// Runs `f` on the coefficients converted to `T`, on the stack for the usual small degrees, so
/// that evaluating a short slice costs no allocation.
fn with_coefficients<T: Float, R>(
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

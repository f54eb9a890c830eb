//! Polynomials with exact coefficients: construction, algebra, evaluation, cost under encryption.

mod algebra;
pub mod kernel;
pub mod plan;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::activation::{Activation, Formula};
use crate::coefficient::Coefficient;
use crate::{Error, Interval, Real, Result};

/// A polynomial `c₀ + c₁x + … + cₙxⁿ` in **ascending** powers of `x`.
///
/// Each coefficient keeps its exact value when one is known (see [`Coefficient`]) beside the
/// `f64` used for evaluation. The empty polynomial is the zero polynomial: it evaluates to 0 and
/// has degree 0. Trailing zero coefficients are dropped when a polynomial is made, so the
/// highest stored coefficient is never zero (and `p(±∞)` is `±∞`, not NaN).
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
/// assert_eq!(p.differentiate().to_string(), "1/4 - 1/16·x^2");
/// assert_eq!(p.degree(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "PolynomialRepr")]
pub struct Polynomial {
    coefficients: Vec<Coefficient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<Interval>,
}

/// The serialised form; reading one goes through [`Polynomial::new`]'s normalisation (the
/// domain validates itself).
#[derive(Deserialize)]
struct PolynomialRepr {
    coefficients: Vec<Coefficient>,
    #[serde(default)]
    domain: Option<Interval>,
}

impl From<PolynomialRepr> for Polynomial {
    fn from(r: PolynomialRepr) -> Self {
        Self {
            domain: r.domain,
            ..Self::new(r.coefficients)
        }
    }
}

/// What it costs to evaluate a polynomial on encrypted data, where only additions and
/// multiplications exist and each ciphertext-by-ciphertext multiplication consumes a level.
///
/// Multiplications by plaintext constants are counted as free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EncryptedCost {
    /// The degree of the polynomial.
    pub degree: usize,
    /// Ciphertext multiplications of the [evaluation plan](Polynomial::evaluation_plan): the
    /// fewest among the plans of least depth (Paterson–Stockmeyer for each baby-step size, or
    /// every needed power), zero coefficients skipped.
    pub multiplications: usize,
    /// Ciphertext multiplications with plain Horner evaluation (`d − 1`: the first step
    /// multiplies a constant).
    pub horner_multiplications: usize,
    /// The multiplicative depth of the evaluation plan: `⌈log₂ d⌉`, the least any order of
    /// evaluation needs.
    pub depth: u32,
}

impl Polynomial {
    /// The highest power a polynomial may have: [`with_coefficient`](Self::with_coefficient)
    /// refuses higher ones (the coefficient list would not fit in memory long before `usize::MAX`).
    pub const MAX_POWER: usize = 1 << 20;

    /// A polynomial from coefficients in ascending powers; trailing zeros are dropped.
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::new(vec![Coefficient::integer(1), Coefficient::zero()]);
    /// assert_eq!(p.coefficients().len(), 1);
    /// assert_eq!(p.eval(f64::INFINITY), 1.0);
    /// ```
    pub fn new(mut coefficients: Vec<Coefficient>) -> Self {
        while coefficients.last().is_some_and(Coefficient::is_zero) {
            coefficients.pop();
        }
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
    pub fn domain(&self) -> Option<Interval> {
        self.domain
    }

    /// The same polynomial, meant for inputs in `domain` (an [`Interval`] or a range `a..=b`).
    ///
    /// # Errors
    /// [`Error::InvalidInterval`] unless the ends are finite and `lo < hi`.
    ///
    /// ```
    /// let p = polyact::presets::m_tanh().with_domain(-2.0..=2.0)?;
    /// assert_eq!(p.domain().map(|d| d.ends()), Some((-2.0, 2.0)));
    /// assert!(polyact::presets::m_tanh().with_domain(2.0..=-2.0).is_err());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn with_domain<I>(mut self, domain: I) -> Result<Self>
    where
        I: TryInto<Interval, Error: Into<Error>>,
    {
        self.domain = Some(domain.try_into().map_err(Into::into)?);
        Ok(self)
    }

    /// `p(x)` by Horner's rule ([`kernel::horner`]) with fused multiply-add.
    pub fn eval<T: Real>(&self, x: T) -> T {
        kernel::with_converted(self.coefficients.iter().map(Coefficient::to_f64), |c| {
            kernel::horner::<T, true>(c, x)
        })
    }

    /// The derivative polynomial `p′`, exact where `p` is, with the same domain.
    ///
    /// (Its value at a point, `p′(x)`, is [`Activation::derivative`].)
    pub fn differentiate(&self) -> Polynomial {
        let coefficients = kernel::differentiate(&self.coefficients, |c, k| {
            c * &Coefficient::integer(k as i64)
        })
        .collect();
        Polynomial {
            domain: self.domain,
            ..Polynomial::new(coefficients)
        }
    }

    /// The same polynomial with the coefficient of `x^power` replaced (the polynomial grows
    /// with zeros if needed).
    ///
    /// # Errors
    /// [`Error::Degree`] if `power` exceeds [`MAX_POWER`](Self::MAX_POWER).
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(1, 2)]).with_coefficient(2, Coefficient::ratio(1, 8))?;
    /// assert_eq!(p.to_string(), "1/2 + 1/8·x^2");
    /// assert!(p.clone().with_coefficient(usize::MAX, Coefficient::integer(1)).is_err());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn with_coefficient(self, power: usize, value: Coefficient) -> Result<Self> {
        if power > Self::MAX_POWER {
            return Err(Error::Degree {
                requested: power,
                reason: format!("a polynomial's powers go up to {}", Self::MAX_POWER),
            });
        }
        let Polynomial {
            mut coefficients,
            domain,
        } = self;
        if coefficients.len() <= power {
            coefficients.resize(power + 1, Coefficient::zero());
        }
        coefficients[power] = value;
        Ok(Polynomial {
            domain,
            ..Polynomial::new(coefficients)
        })
    }

    /// The same polynomial with the coefficient of `x^power` multiplied by `factor`
    /// (exact when both are).
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(0, 1), (1, 4)]).scale_coefficient(1, &Coefficient::integer(2));
    /// assert_eq!(p.to_string(), "1/2·x");
    /// ```
    pub fn scale_coefficient(self, power: usize, factor: &Coefficient) -> Self {
        let Polynomial {
            mut coefficients,
            domain,
        } = self;
        if let Some(c) = coefficients.get_mut(power) {
            *c = &*c * factor;
        }
        Polynomial {
            domain,
            ..Polynomial::new(coefficients)
        }
    }

    /// The same polynomial without the powers above `degree` (unchanged when `degree` is at
    /// least its degree, also for `usize::MAX`).
    ///
    /// ```
    /// let p = polyact::presets::m_sigmoid();
    /// assert_eq!(p.clone().truncate(3).to_string(), "1/2 + 2161/10800·x - 29/9000·x^3");
    /// assert_eq!(p.clone().truncate(usize::MAX), p);
    /// ```
    pub fn truncate(self, degree: usize) -> Self {
        let Polynomial {
            mut coefficients,
            domain,
        } = self;
        coefficients.truncate(degree.saturating_add(1));
        Polynomial {
            domain,
            ..Polynomial::new(coefficients)
        }
    }

    /// `p(x / s)`: the polynomial stretched horizontally by `s` (coefficient `k` divided by `sᵏ`),
    /// exact when `s` is. Its domain, if any, is stretched too. This is
    /// [`compose_affine`](Self::compose_affine) with `α = 1/s`, `β = 0`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `s` is zero or not finite, or if the stretched polynomial
    /// or its domain cannot be held in `f64` (a scale so small that coefficients overflow).
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// let p = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48)]);
    /// let q = p.rescale_input(&Coefficient::integer(2))?;
    /// assert_eq!(q.to_string(), "1/2 + 1/8·x - 1/384·x^3");
    /// assert!(p.rescale_input(&Coefficient::approx(1e-200)).is_err()); // x³ coefficient ~1e598
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn rescale_input(&self, s: &Coefficient) -> Result<Polynomial> {
        let value = s.to_f64();
        if s.is_zero() || !value.is_finite() || !value.recip().is_finite() {
            return Err(Error::InvalidParameter {
                activation: "polynomial",
                parameter: "input scale",
                value,
                requirement: "it must be finite and non-zero, with a reciprocal that fits in f64",
            });
        }
        let alpha = Coefficient::integer(1).checked_div(s)?;
        self.compose_affine(&alpha, &Coefficient::zero())
    }

    /// The straight-line program that evaluates this polynomial on ciphertexts: the one that the
    /// [`he`](https://docs.rs/polyact/latest/polyact/he/index.html) module runs and
    /// [`cost`](Self::cost) counts (zero coefficients are skipped; the least depth first, then
    /// the fewest products).
    ///
    /// ```
    /// let plan = polyact::presets::m_sigmoid().evaluation_plan();
    /// assert_eq!((plan.products, plan.depth), (3, 3)); // x², x³, x⁵
    /// ```
    pub fn evaluation_plan(&self) -> plan::Plan {
        let nonzero: Vec<bool> = self.coefficients.iter().map(|c| !c.is_zero()).collect();
        plan::Plan::new(&nonzero)
    }

    /// The cost of evaluating this polynomial under homomorphic encryption: the ciphertext
    /// products and the depth of its [`evaluation_plan`](Self::evaluation_plan), exactly what
    /// the `he` module's evaluator runs.
    ///
    /// ```
    /// let p = polyact::Polynomial::from_f64(&[0.5, 0.25, 0.0, -0.02, 0.0, 0.002]);
    /// let cost = p.cost();
    /// assert_eq!((cost.degree, cost.multiplications, cost.depth), (5, 3, 3));
    /// // Every coefficient non-zero: still 3 products at depth 3 (Horner would need 4 at depth 5).
    /// let full = polyact::Polynomial::from_f64(&[1.0; 6]).cost();
    /// assert_eq!((full.multiplications, full.depth, full.horner_multiplications), (3, 3, 4));
    /// ```
    pub fn cost(&self) -> EncryptedCost {
        let plan = self.evaluation_plan();
        EncryptedCost {
            degree: self.degree(),
            multiplications: plan.products,
            horner_multiplications: self.degree().saturating_sub(1),
            depth: plan.depth,
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
        // The sign of the exact value: a tiny negative rational is -0.0 as an f64.
        let negative = c.is_negative();
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

impl<T: Real> Activation<T> for Polynomial {
    fn name(&self) -> &str {
        "polynomial"
    }

    fn eval(&self, x: T) -> T {
        Polynomial::eval(self, x)
    }

    fn derivative(&self, x: T) -> T {
        kernel::with_converted(self.derivative_f64(), |c| kernel::horner::<T, true>(c, x))
    }

    fn formula(&self) -> Formula {
        Formula::Analytic(self.to_formula())
    }

    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        let coefficients = self.coefficients.iter().map(Coefficient::to_f64);
        kernel::with_converted(coefficients, |c| kernel::horner_slice(c, xs, out));
    }

    fn eval_in_place(&self, xs: &mut [T]) {
        // Horner over a copy of each chunk keeps the kernel's vectorised shape.
        let coefficients = self.coefficients.iter().map(Coefficient::to_f64);
        kernel::with_converted(coefficients, |c| {
            let mut input = [T::zero(); 1024];
            for chunk in xs.chunks_mut(1024) {
                let input = &mut input[..chunk.len()];
                input.copy_from_slice(chunk);
                kernel::horner_slice(c, input, chunk);
            }
        });
    }

    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        kernel::with_converted(self.derivative_f64(), |c| kernel::horner_slice(c, xs, out));
    }
}

impl Polynomial {
    /// The `f64` coefficients of `p′`, ascending.
    fn derivative_f64(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        kernel::differentiate(&self.coefficients, |c, k| c.to_f64() * k as f64)
    }
}

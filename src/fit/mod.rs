//! Polynomial fits of any activation on an interval, and error reports for any polynomial.
//!
//! A Taylor polynomial is exact at one point and drifts away from it; a network sees inputs
//! spread over an interval. The fits here choose the coefficients for the whole interval
//! `[a, b]` instead, at a given degree:
//!
//! | function | minimises | evaluations of `f` | cost |
//! |---|---|---|---|
//! | [`least_squares`] | the mean square error `∫ₐᵇ (p − f)² dx` | ≈ 1000 Gauss–Legendre nodes | one QR solve, `O(N n²)` |
//! | [`least_squares_on_samples`] | `Σᵢ (p(xᵢ) − f(xᵢ))²` over the inputs the layer really sees | one per sample | `O(N n²)` time, `O(n²)` memory |
//! | [`chebyshev`] | nothing: interpolates at `n + 1` Chebyshev nodes; its max error is within `2 + (2/π) ln(n + 1)` of the best | `n + 1` | `O(n²)` |
//! | [`minimax`] | the maximum error `max \|p − f\|` (Remez exchange) | a few thousand per iteration, a handful of iterations | the slowest, still milliseconds |
//!
//! (`n` is the degree, `N` the number of nodes or samples.) Minimax has the smallest maximum
//! error, least squares the smallest RMS error; Chebyshev interpolation is the cheap,
//! near-minimax middle.
//!
//! Every fit returns a [`Fit`]: the [`Polynomial`] in ascending monomial powers of `x`, with
//! coefficients as [`Coefficient::approx`](crate::Coefficient::approx) values and its
//! [`domain`](Polynomial::domain) set to the interval, and an [`ErrorReport`] on that interval.
//! [`error_report`] measures any polynomial (a Taylor polynomial, the study's
//! [`presets`](crate::presets)) against any activation the same way.
//!
//! # How the fits compute
//! * The work is done in the Chebyshev basis on `t = (2x − a − b)/(b − a) ∈ [-1, 1]`, which is
//!   well conditioned at every degree; the result is then converted to monomials in `x`
//!   **exactly** (rational arithmetic on the `f64` values) and rounded once per coefficient.
//!   The Chebyshev coefficients are kept in [`Fit::chebyshev`]. Chebyshev coefficients at
//!   rounding level (below `64ε` of their sum) are set to zero, so an odd function plus a
//!   constant (sigmoid, tanh) gets exactly-zero even coefficients on a symmetric interval.
//! * Where a function is not analytic (a [`Formula::Piecewise`](crate::Formula::Piecewise)
//!   kink inside the interval, as in relu), quadrature panels and search grids break at the
//!   kink, so non-smooth functions are integrated and searched accurately.
//! * The monomial form is what the [`ErrorReport`] measures. It is ill-conditioned at high
//!   degrees, the more so on intervals far from 0; a fit whose monomial form would be off by
//!   more from rounding than the fit itself is off from `f` is refused with [`Error::Degree`]
//!   (for sigmoid: degree 40 is fine on `[-5, 5]`, degree 24 is refused on `[0, 10]`).
//!
//! # Accuracy
//! Reference values this module meets (maximum absolute error on `[-5, 5]`): minimax degree 5
//! sigmoid 0.01179, degree 3 sigmoid 0.03889 (`0.5 + 0.19751x − 0.0042652x³`), degree 2 relu
//! 0.3125 (exactly `R/16` on `[-R, R]`); the degree-5 Taylor polynomial of sigmoid is 4.663
//! off at `x = ±5`.
//!
//! # Errors
//! * [`Error::InvalidInterval`] unless the interval's ends are finite and `a < b`;
//! * [`Error::Degree`] above [`MAX_DEGREE`], when samples have too few distinct points, or
//!   when the monomial form cannot carry the fit in `f64`;
//! * [`Error::Fit`] when the function is NaN or infinite on the interval, when samples are
//!   empty or not finite, or when the Remez exchange does not converge.
//!
//! ```
//! use polyact::{fit, Sigmoid};
//! let best = fit::minimax(&Sigmoid, 5, -5.0..=5.0)?;
//! assert!((best.report.max_abs - 0.0118).abs() < 0.0118 * 0.02);
//! let l2 = fit::least_squares(&Sigmoid, 5, -5.0..=5.0)?;
//! assert!(l2.report.rms < best.report.rms && l2.report.max_abs > best.report.max_abs);
//! println!("{}\n{}", best.polynomial, best.report);
//! # Ok::<(), polyact::Error>(())
//! ```

mod chebyshev;
mod least_squares;
mod minimax;
mod numeric;

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

pub use chebyshev::chebyshev;
pub use least_squares::{least_squares, least_squares_on_samples};
pub use minimax::minimax;

use crate::{Activation, Error, Polynomial, Result};
use numeric::{Span, chebyshev_to_monomial, check_finite, composite_rule, eval_all, maximize};

/// The highest degree the fits accept.
///
/// Below it, a fit may still be refused with [`Error::Degree`] when its monomial coefficients
/// cannot hold it in `f64` on the interval (rounding in the monomial form would exceed the fit's
/// own error): the monomial basis is ill-conditioned, the more so on intervals far from 0.
///
/// ```
/// use polyact::{fit, Error, Sigmoid};
/// assert!(fit::chebyshev(&Sigmoid, fit::MAX_DEGREE, -1.0..=1.0).is_ok());
/// assert!(matches!(
///     fit::chebyshev(&Sigmoid, fit::MAX_DEGREE + 1, -1.0..=1.0),
///     Err(Error::Degree { .. })
/// ));
/// // Degree 40 on [0, 10] is beyond what f64 monomial coefficients can carry:
/// assert!(matches!(fit::chebyshev(&Sigmoid, 40, 0.0..=10.0), Err(Error::Degree { .. })));
/// ```
pub const MAX_DEGREE: usize = 64;

/// Intervals of the uniform part of the error report's search grid (a Chebyshev-spaced grid of
/// the same size is added, dense near the ends).
const REPORT_GRID: usize = 4096;

/// Panels of the composite Gauss–Legendre rule for RMS errors and least squares.
const QUADRATURE_PANELS: usize = 64;

/// Nodes per quadrature panel.
const QUADRATURE_POINTS: usize = 16;

/// A shape violation smaller than this, relative to `max(1, max |f|)` on the interval, is
/// rounding and is not reported.
const SHAPE_TOLERANCE: f64 = 1e-9;

/// Which fitting method produced a [`Fit`].
///
/// ```
/// use polyact::{fit, Sigmoid};
/// let fit = fit::chebyshev(&Sigmoid, 3, -2.0..=2.0)?;
/// assert_eq!(fit.method, fit::Method::Chebyshev);
/// assert_eq!(fit.method.to_string(), "chebyshev");
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Method {
    /// Continuous least squares on the interval, [`least_squares`].
    LeastSquares,
    /// Least squares over a sample of inputs, [`least_squares_on_samples`].
    SampledLeastSquares,
    /// Interpolation at Chebyshev nodes, [`chebyshev`].
    Chebyshev,
    /// Best uniform approximation by Remez exchange, [`minimax`].
    Minimax,
}

impl Method {
    /// The method's name as used in error messages: `"least squares"`, `"sampled least squares"`,
    /// `"chebyshev"`, `"minimax"`.
    ///
    /// ```
    /// assert_eq!(polyact::fit::Method::Minimax.name(), "minimax");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Method::LeastSquares => "least squares",
            Method::SampledLeastSquares => "sampled least squares",
            Method::Chebyshev => "chebyshev",
            Method::Minimax => "minimax",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fitted polynomial and how well it does.
///
/// ```
/// use polyact::{fit, Tanh};
/// let fit = fit::least_squares(&Tanh, 5, -3.0..=3.0)?;
/// assert_eq!(fit.polynomial.domain(), Some(&(-3.0..=3.0)));
/// assert_eq!(fit.polynomial.degree(), 5);
/// // tanh is odd: the even coefficients are exactly zero.
/// assert!(fit.polynomial.coefficients()[2].is_zero());
/// assert!(fit.report.max_abs < 0.08);
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Fit {
    /// The polynomial in ascending powers of `x`, with approximate coefficients and its domain
    /// set to the fit interval.
    pub polynomial: Polynomial,
    /// Its error against the function on the fit interval.
    pub report: ErrorReport,
    /// The method that produced it.
    pub method: Method,
    /// The same polynomial in the Chebyshev basis on the interval: `cₖ` in
    /// `Σ cₖ Tₖ((2x − a − b)/(b − a))`. Better conditioned than the monomial form, and the
    /// natural input to Chebyshev-basis evaluation schemes.
    pub chebyshev: Vec<f64>,
}

/// How a polynomial keeps a property of the function it replaces (bounds, monotonicity).
///
/// ```
/// use polyact::fit::ShapeCheck;
/// assert_eq!(ShapeCheck::Kept.holds(), Some(true));
/// assert_eq!(ShapeCheck::Broken { at: 5.0, by: 4.6 }.holds(), Some(false));
/// assert_eq!(ShapeCheck::NotApplicable.holds(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ShapeCheck {
    /// The function does not have the property, so there is nothing to keep.
    NotApplicable,
    /// The polynomial has the property too, on the whole interval.
    Kept,
    /// The polynomial loses the property; the worst place and how far.
    Broken {
        /// Where the violation is largest.
        at: f64,
        /// Its size: how far the polynomial leaves the bounds, or how much it falls back
        /// against the function's direction.
        by: f64,
    },
}

impl ShapeCheck {
    /// `Some(true)` when kept, `Some(false)` when broken, `None` when not applicable.
    ///
    /// ```
    /// use polyact::{fit, Identity, Sigmoid};
    /// // The line y = x leaves sigmoid's [0, 1] on [-5, 5], and is monotone like sigmoid.
    /// let report = fit::error_report(&Identity, &Sigmoid, -5.0..=5.0)?;
    /// assert_eq!(report.bounded.holds(), Some(false));
    /// assert_eq!(report.monotone.holds(), Some(true));
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn holds(&self) -> Option<bool> {
        match self {
            ShapeCheck::NotApplicable => None,
            ShapeCheck::Kept => Some(true),
            ShapeCheck::Broken { .. } => Some(false),
        }
    }
}

/// How far a polynomial `p` strays from a function `f` on an interval `[a, b]`.
///
/// * `max_abs = max |p(x) − f(x)|`, located at `at` by a fine grid (uniform plus
///   Chebyshev-spaced, with the function's kinks) and golden-section refinement;
/// * `rms = √(∫ₐᵇ (p − f)² dx / (b − a))`, by composite Gauss–Legendre quadrature;
/// * `bounded`: where `f` is bounded below and/or above on the whole real line (its infimum and
///   supremum, estimated from its limits at ±∞ and dense sampling out to ±10⁸, are kept in
///   `lower_bound` and `upper_bound`), whether `p` stays within those bounds on `[a, b]`;
/// * `monotone`: where `f` is monotone on `[a, b]` (judged on the grid), whether `p` is too,
///   in the same direction.
///
/// Shape violations below `10⁻⁹ · max(1, max |f|)` are rounding and count as kept.
///
/// ```
/// use polyact::{fit, fit::ShapeCheck, Polynomial, Sigmoid};
/// // The degree-5 Maclaurin polynomial of sigmoid, 1/2 + x/4 - x³/48 + x⁵/480:
/// let taylor = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48), (0, 1), (1, 480)]);
/// let report = fit::error_report(&taylor, &Sigmoid, -5.0..=5.0)?;
/// assert!((report.max_abs - 4.663).abs() < 1e-3 && (report.at.abs() - 5.0).abs() < 1e-9);
/// // sigmoid's bounds on the real line, found by sampling it:
/// assert!(report.lower_bound.is_some_and(|lo| lo.abs() < 1e-12));
/// assert!(report.upper_bound.is_some_and(|hi| (hi - 1.0).abs() < 1e-12));
/// assert!(matches!(report.bounded, ShapeCheck::Broken { .. })); // 5.66 at x = 5
/// assert_eq!(report.monotone, ShapeCheck::Kept); // p' = 1/4 − x²/16 + x⁴/96 > 0
/// println!("{report}");
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The maximum absolute error `max |p − f|` on the interval.
    pub max_abs: f64,
    /// Where the maximum absolute error occurs (one of the places, when several reach it, as
    /// the equioscillating error of a minimax fit does).
    pub at: f64,
    /// The root-mean-square error over the interval (continuous, uniform weight).
    pub rms: f64,
    /// The interval the report covers.
    pub interval: RangeInclusive<f64>,
    /// The function's infimum on the real line, when it is bounded below.
    pub lower_bound: Option<f64>,
    /// The function's supremum on the real line, when it is bounded above.
    pub upper_bound: Option<f64>,
    /// Whether the polynomial stays within the function's bounds on the interval.
    pub bounded: ShapeCheck,
    /// Whether the polynomial is monotone on the interval where the function is.
    pub monotone: ShapeCheck,
}

impl fmt::Display for ErrorReport {
    /// One line, e.g. for the degree-5 minimax fit of sigmoid on `[-5, 5]`:
    /// `max |error| 0.01179 at x = -5, rms 0.008309 on [-5, 5]; leaves [0, 1] by 0.005098 at
    /// x = 5; not monotone (falls back 3.784e-4 at x = 4.066)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max |error| {} at x = {}, rms {} on [{}, {}]; ",
            sig(self.max_abs),
            sig(self.at),
            sig(self.rms),
            sig(*self.interval.start()),
            sig(*self.interval.end()),
        )?;
        let bounds = match (self.lower_bound, self.upper_bound) {
            (Some(lo), Some(hi)) => format!("[{}, {}]", sig(lo), sig(hi)),
            (Some(lo), None) => format!("[{}, ∞)", sig(lo)),
            (None, Some(hi)) => format!("(-∞, {}]", sig(hi)),
            (None, None) => String::new(),
        };
        match self.bounded {
            ShapeCheck::NotApplicable => f.write_str("function unbounded")?,
            ShapeCheck::Kept => write!(f, "within {bounds}")?,
            ShapeCheck::Broken { at, by } => {
                write!(f, "leaves {bounds} by {} at x = {}", sig(by), sig(at))?
            }
        }
        match self.monotone {
            ShapeCheck::NotApplicable => f.write_str("; function not monotone"),
            ShapeCheck::Kept => f.write_str("; monotone"),
            ShapeCheck::Broken { at, by } => {
                write!(
                    f,
                    "; not monotone (falls back {} at x = {})",
                    sig(by),
                    sig(at)
                )
            }
        }
    }
}

/// `x` with four significant digits, without trailing zeros.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if (-3..5).contains(&magnitude) {
        let decimals = (3 - magnitude).max(0) as usize;
        let text = format!("{x:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        if text == "-0" {
            "0".into()
        } else {
            text.into()
        }
    } else {
        format!("{x:.3e}")
    }
}

/// Measures a polynomial (or any activation) `p` against an activation `f` on `interval`:
/// the maximum absolute error and where it is, the RMS error, and whether `p` keeps `f`'s
/// bounds and monotonicity. See [`ErrorReport`] for the definitions.
///
/// # Errors
/// [`Error::InvalidInterval`] unless the ends are finite and `lo < hi`; [`Error::Fit`] (method
/// `"error report"`) if `p` or `f` is NaN or infinite somewhere on the interval.
///
/// ```
/// use polyact::{fit, presets, Activation, Relu, Sigmoid};
/// // The study's hand-adjusted sigmoid: 0.119 off at x = 4.42, where it also exceeds 1.
/// let report = fit::error_report(&presets::m_sigmoid(), &Sigmoid, -5.0..=5.0)?;
/// assert!((report.max_abs - 0.1187).abs() < 1e-4 && report.bounded.holds() == Some(false));
/// // A function against itself:
/// let zero = fit::error_report(&Relu, &Relu, -1.0..=1.0)?;
/// assert!(zero.max_abs < 1e-300 && zero.rms < 1e-300);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn error_report<P, A>(p: &P, f: &A, interval: RangeInclusive<f64>) -> Result<ErrorReport>
where
    P: Activation<f64> + ?Sized,
    A: Activation<f64> + ?Sized,
{
    const METHOD: &str = "error report";
    let span = Span::new(&interval)?;
    let kinks = span.kinks([p.formula(), f.formula()]);
    let xs = span.grid(REPORT_GRID, &kinks);
    let fs = eval_all(f, &xs);
    check_finite(METHOD, f.name(), &xs, &fs)?;
    let ps = eval_all(p, &xs);
    check_finite(METHOD, p.name(), &xs, &ps)?;
    let errors: Vec<f64> = ps.iter().zip(&fs).map(|(p, f)| (p - f).abs()).collect();
    let error = |x: f64| {
        let e = (p.eval(x) - f.eval(x)).abs();
        if e.is_nan() { f64::NEG_INFINITY } else { e }
    };
    let (max_abs, at) = refine_maximum(&xs, &errors, 0.5, error);

    let rule = composite_rule(span, &kinks, QUADRATURE_PANELS, QUADRATURE_POINTS);
    let square_sum: f64 = rule
        .iter()
        .map(|&(x, w)| w * (p.eval(x) - f.eval(x)).powi(2))
        .sum();
    let rms = (square_sum / span.width()).sqrt();
    if !rms.is_finite() {
        return Err(Error::Fit {
            method: METHOD,
            reason: format!(
                "the RMS error of {} against {} is {rms}",
                p.name(),
                f.name()
            ),
        });
    }

    let scale = fs.iter().fold(1.0_f64, |m, y| m.max(y.abs()));
    let tolerance = SHAPE_TOLERANCE * scale;
    let (lower_bound, upper_bound) = function_bounds(f, &xs, &fs);
    let bounded = bounds_check(p, &xs, &ps, lower_bound, upper_bound, tolerance);
    let monotone = monotone_check(&xs, &fs, &ps, tolerance);

    Ok(ErrorReport {
        max_abs,
        at,
        rms,
        interval: span.range(),
        lower_bound,
        upper_bound,
        bounded,
        monotone,
    })
}

/// The largest value of `g`, starting from its samples `values` at the sorted points `xs`: every
/// local maximum of the samples within `share` of the largest is refined by golden-section
/// search between its neighbours. Returns `(value, x)`.
fn refine_maximum(xs: &[f64], values: &[f64], share: f64, g: impl Fn(f64) -> f64) -> (f64, f64) {
    let Some(top) = values.iter().copied().reduce(f64::max) else {
        return (f64::NAN, f64::NAN);
    };
    let last = xs.len() - 1;
    let mut best = (f64::NEG_INFINITY, xs[0]);
    for i in 0..=last {
        let v = values[i];
        let left = if i > 0 {
            values[i - 1]
        } else {
            f64::NEG_INFINITY
        };
        let right = if i < last {
            values[i + 1]
        } else {
            f64::NEG_INFINITY
        };
        if v < left || v < right || v < share * top {
            continue;
        }
        let (x, value) = maximize(&g, xs[i.saturating_sub(1)], xs[(i + 1).min(last)], xs[i]);
        // The refinement never loses to the sample itself.
        let (x, value) = if value >= v { (x, value) } else { (xs[i], v) };
        if value > best.0 {
            best = (value, x);
        }
    }
    best
}

/// The infimum and supremum of `f` on the real line, where finite: from its limits at ±∞,
/// samples at the interval's grid, on `[-10, 10]` and log-spaced out to ±10⁸, refined around
/// the extreme sample. `None` for a side where `f` is unbounded or undefined somewhere.
fn function_bounds<A: Activation<f64> + ?Sized>(
    f: &A,
    grid: &[f64],
    on_grid: &[f64],
) -> (Option<f64>, Option<f64>) {
    let limits = [f.eval(f64::NEG_INFINITY), f.eval(f64::INFINITY)];
    if limits.iter().any(|y| y.is_nan()) {
        return (None, None);
    }
    let mut xs: Vec<f64> = (-640..=640).map(|i| f64::from(i) / 64.0).collect();
    for k in -64..=128 {
        let x = 10f64.powf(f64::from(k) / 16.0);
        xs.extend([x, -x]);
    }
    xs.sort_by(f64::total_cmp);
    let mut ys = eval_all(f, &xs);
    if ys.iter().any(|y| y.is_nan()) {
        return (None, None);
    }
    // The interval's own grid, for narrow features the coarse grid misses.
    xs.extend_from_slice(grid);
    ys.extend_from_slice(on_grid);
    let extreme = |sign: f64| -> Option<f64> {
        if limits
            .iter()
            .any(|&y| (sign * y).is_infinite() && sign * y > 0.0)
        {
            return None;
        }
        let (i, &y) = ys
            .iter()
            .enumerate()
            .max_by(|a, b| (sign * a.1).total_cmp(&(sign * b.1)))?;
        if !y.is_finite() {
            return None;
        }
        // Neighbours of xs[i] in whichever of the two sorted lists it came from.
        let (list, j) = if i < xs.len() - grid.len() {
            (&xs[..xs.len() - grid.len()], i)
        } else {
            (grid, i - (xs.len() - grid.len()))
        };
        let (a, b) = (list[j.saturating_sub(1)], list[(j + 1).min(list.len() - 1)]);
        let g = |x: f64| {
            let v = sign * f.eval(x);
            if v.is_nan() { f64::NEG_INFINITY } else { v }
        };
        let (_, refined) = maximize(g, a, b, list[j]);
        let limit = limits
            .iter()
            .map(|&l| sign * l)
            .fold(f64::NEG_INFINITY, f64::max);
        Some(sign * refined.max(sign * y).max(limit))
    };
    (extreme(-1.0), extreme(1.0))
}

/// Whether `p` stays within `[lower, upper]` on the grid, refined at the worst point.
fn bounds_check<P: Activation<f64> + ?Sized>(
    p: &P,
    xs: &[f64],
    ps: &[f64],
    lower: Option<f64>,
    upper: Option<f64>,
    tolerance: f64,
) -> ShapeCheck {
    if lower.is_none() && upper.is_none() {
        return ShapeCheck::NotApplicable;
    }
    let excess = |y: f64| {
        let below = lower.map_or(f64::NEG_INFINITY, |lo| lo - y);
        let above = upper.map_or(f64::NEG_INFINITY, |hi| y - hi);
        below.max(above)
    };
    let excesses: Vec<f64> = ps.iter().map(|&y| excess(y)).collect();
    let (by, at) = refine_maximum(xs, &excesses, 1.0, |x| {
        let e = excess(p.eval(x));
        if e.is_nan() { f64::NEG_INFINITY } else { e }
    });
    if by > tolerance {
        ShapeCheck::Broken { at, by }
    } else {
        ShapeCheck::Kept
    }
}

/// Whether `p` is monotone on the grid in the direction `f` is, where `f` is monotone.
/// A violation is measured as the largest fall back below an earlier value (for an increasing
/// `f`), located where the fall back bottoms out.
fn monotone_check(xs: &[f64], fs: &[f64], ps: &[f64], tolerance: f64) -> ShapeCheck {
    let steps = || fs.windows(2).map(|w| w[1] - w[0]);
    let direction = if steps().all(|d| d >= -tolerance) {
        1.0
    } else if steps().all(|d| d <= tolerance) {
        -1.0
    } else {
        return ShapeCheck::NotApplicable;
    };
    let mut running = f64::NEG_INFINITY;
    let mut worst = (0.0, xs[0]);
    for (&x, &y) in xs.iter().zip(ps) {
        let y = direction * y;
        running = running.max(y);
        if running - y > worst.0 {
            worst = (running - y, x);
        }
    }
    if worst.0 > tolerance {
        ShapeCheck::Broken {
            at: worst.1,
            by: worst.0,
        }
    } else {
        ShapeCheck::Kept
    }
}

/// Fails with [`Error::Degree`] above [`MAX_DEGREE`].
fn check_degree(method: Method, degree: usize) -> Result<()> {
    if degree > MAX_DEGREE {
        Err(Error::Degree {
            requested: degree,
            reason: format!(
                "{} fits go up to degree {MAX_DEGREE}; beyond it the monomial \
                 coefficients lose their digits in f64",
                method.name()
            ),
        })
    } else {
        Ok(())
    }
}

/// Turns Chebyshev coefficients on `span` into a [`Fit`]: exact conversion to monomials,
/// domain, error report.
fn finish<A: Activation<f64> + ?Sized>(
    method: Method,
    f: &A,
    mut chebyshev: Vec<f64>,
    span: Span,
) -> Result<Fit> {
    numeric::drop_rounding_noise(&mut chebyshev);
    let monomial = chebyshev_to_monomial(&chebyshev, span);
    if let Some(c) = monomial.iter().find(|c| !c.is_finite()) {
        return Err(Error::Fit {
            method: method.name(),
            reason: format!("a monomial coefficient is {c}; use a narrower interval"),
        });
    }
    let polynomial = Polynomial::from_f64(&monomial).with_domain(span.range())?;
    // The monomial form must not be dominated by its own rounding: compare it with the
    // Chebyshev form, and the Chebyshev form with f, on a grid.
    let kinks = span.kinks([f.formula()]);
    let xs = span.grid(REPORT_GRID / 4, &kinks);
    let fs = eval_all(f, &xs);
    let (mut drift, mut fit_error, mut scale) = (0.0_f64, 0.0_f64, f64::MIN_POSITIVE);
    for (&x, &y) in xs.iter().zip(&fs) {
        let in_chebyshev = numeric::clenshaw(&chebyshev, span.t_of(x));
        drift = drift.max((polynomial.eval(x) - in_chebyshev).abs());
        fit_error = fit_error.max((in_chebyshev - y).abs());
        scale = scale.max(y.abs());
    }
    if drift > fit_error && drift > 1e-12 * scale {
        return Err(Error::Degree {
            requested: chebyshev.len() - 1,
            reason: format!(
                "{} fit on [{}, {}]: with monomial coefficients in f64 the polynomial is off by \
                 up to {drift:.3e} from rounding alone, more than the fit's own error \
                 {fit_error:.3e}; lower the degree, or fit on an interval centred at 0",
                method.name(),
                span.lo,
                span.hi
            ),
        });
    }
    let report = error_report(&polynomial, f, span.range())?;
    Ok(Fit {
        polynomial,
        report,
        method,
        chebyshev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_keeps_four_significant_digits() {
        assert_eq!(sig(0.011_801_234), "0.0118");
        assert_eq!(sig(4.663_24), "4.663");
        assert_eq!(sig(-5.0), "-5");
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(1.5e-7), "1.500e-7");
        assert_eq!(sig(123_456.0), "1.235e5");
    }
}

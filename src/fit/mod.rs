//! Polynomial fits of any activation on an interval, and error reports for any polynomial.
//!
//! A Taylor polynomial is exact at one point and drifts away from it; a network sees inputs
//! spread over an interval. The fits here choose the coefficients for the whole interval
//! `[a, b]` instead, at a given degree:
//!
//! | function | minimises | evaluations of `f` | cost |
//! |---|---|---|---|
//! | [`least_squares`] | the mean square error `∫ₐᵇ (p − f)² dx` | 1,024 Gauss–Legendre nodes (up to 2,048 at degree 64) | one QR solve, `O(N n²)` |
//! | [`least_squares_on_samples`] | `Σᵢ (p(xᵢ) − f(xᵢ))²` over the inputs the layer really sees | one per sample | `O(N n²)` time, `O(N + n²)` memory |
//! | [`chebyshev`] | nothing: interpolates at `n + 1` Chebyshev nodes; its max error is within `2 + (2/π) ln(n + 1)` of the best | `n + 1` for the fit | `O(n²)` |
//! | [`minimax`] | the maximum error `max \|p − f\|` (Remez exchange) | a few thousand per iteration, a handful of iterations | the slowest, still milliseconds |
//!
//! (`n` is the degree, `N` the number of nodes or samples. Every method then evaluates `f`
//! about 10,000 more times: the check of the monomial form and the error report.) Minimax has
//! the smallest maximum error, least squares the smallest RMS error; Chebyshev interpolation is
//! the cheap, near-minimax middle.
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
mod report;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use chebyshev::chebyshev;
pub use least_squares::{least_squares, least_squares_on_samples};
pub use minimax::minimax;
pub use report::{ErrorReport, ShapeCheck, error_report};

use crate::{Activation, Error, Interval, Polynomial, Result};
use numeric::{chebyshev_to_monomial, eval_all};

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
/// assert_eq!(fit.polynomial.domain().map(|d| d.ends()), Some((-3.0, 3.0)));
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

/// The interval a fit or report is asked for, validated.
fn interval(interval: impl TryInto<Interval, Error: Into<Error>>) -> Result<Interval> {
    interval.try_into().map_err(Into::into)
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
    span: Interval,
) -> Result<Fit> {
    if let Some(k) = chebyshev.iter().position(|c| !c.is_finite()) {
        return Err(Error::Fit {
            method: method.name(),
            reason: format!(
                "Chebyshev coefficient {k} is {}: f is too large on [{}, {}] for f64",
                chebyshev[k],
                span.lo(),
                span.hi()
            ),
        });
    }
    numeric::drop_rounding_noise(&mut chebyshev);
    let polynomial = chebyshev_to_monomial(&chebyshev, span)
        .map_err(|e| Error::Fit {
            method: method.name(),
            reason: format!("{e}; use a narrower interval"),
        })?
        .with_domain(span)?;
    // The monomial form must not be dominated by its own rounding: compare it with the
    // Chebyshev form, and the Chebyshev form with f, on a grid.
    let kinks = numeric::kinks(span, [f.formula()]);
    let xs = numeric::grid(span, REPORT_GRID / 4, &kinks);
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
                span.lo(),
                span.hi()
            ),
        });
    }
    let report = error_report(&polynomial, f, span)?;
    Ok(Fit {
        polynomial,
        report,
        method,
        chebyshev,
    })
}

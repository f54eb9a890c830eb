//! How far a polynomial strays from the function it replaces: [`ErrorReport`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::numeric::{self, check_finite, composite_rule, eval_all, maximize};
use super::{QUADRATURE_PANELS, QUADRATURE_POINTS, REPORT_GRID, SHAPE_TOLERANCE};
use crate::{Activation, Error, Interval, Result};

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
    pub interval: Interval,
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
            sig(self.interval.lo()),
            sig(self.interval.hi()),
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
pub fn error_report<P, A>(
    p: P,
    f: A,
    interval: impl TryInto<Interval, Error: Into<Error>>,
) -> Result<ErrorReport>
where
    P: Activation<f64>,
    A: Activation<f64>,
{
    const METHOD: &str = "error report";
    let span = super::interval(interval)?;
    let kinks = numeric::kinks(span, [p.formula(), f.formula()]);
    let xs = numeric::grid(span, REPORT_GRID, &kinks);
    let fs = eval_all(&f, &xs);
    check_finite(METHOD, f.name(), &xs, &fs)?;
    let ps = eval_all(&p, &xs);
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
    let (lower_bound, upper_bound) = function_bounds(&f, &xs, &fs);
    let bounded = bounds_check(&p, &xs, &ps, lower_bound, upper_bound, tolerance);
    let monotone = monotone_check(&xs, &fs, &ps, tolerance);

    Ok(ErrorReport {
        max_abs,
        at,
        rms,
        interval: span,
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

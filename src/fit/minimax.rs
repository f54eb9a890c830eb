//! Best uniform approximation by the Remez exchange algorithm.

use std::f64::consts::PI;

use super::numeric::{
    self, chebyshev_row, check_finite, clenshaw, eval_all, maximize, solve_dense,
};
use super::{Fit, Method, check_degree, finish};
use crate::{Activation, Error, Interval, Result};

/// Remez iterations before giving up.
const MAX_ITERATIONS: usize = 100;

/// Convergence: the spread between the largest error and the smallest error on the reference,
/// relative to the largest.
const RELATIVE_TOLERANCE: f64 = 1e-9;

/// An error this small relative to `max |f|` is rounding: `f` is (numerically) a polynomial of
/// the requested degree, and the first solve reproduces it.
const EXACT: f64 = 1e-13;

/// The polynomial of degree ≤ `degree` with the smallest maximum error on `interval`,
/// `max |p(x) − f(x)|`, by the Remez exchange algorithm.
///
/// By Chebyshev's equioscillation theorem the best polynomial is the one whose error reaches
/// its maximum with alternating signs at `degree + 2` points (or more). The exchange starts
/// from the Chebyshev extrema, solves for the polynomial whose error alternates with equal
/// size on the current reference points, then moves the reference to the error's actual
/// extrema (found on a fine grid of a few thousand points, breaking at any kink of `f`, and
/// refined by golden-section search), until the extrema are equal to a relative `10⁻⁹`.
///
/// Non-smooth functions work: the best degree-2 polynomial for relu on `[-R, R]` is
/// `R/16 + x/2 + x²/(2R)`, with maximum error exactly `R/16` (0.3125 on `[-5, 5]`).
/// Symmetric functions work at every degree: a degree-6 fit of sigmoid is its degree-5 fit,
/// whose error then alternates at 8 points, and comes back as a degree-5 polynomial.
///
/// # Errors
/// [`Error::InvalidInterval`] for an empty, reversed or infinite interval; [`Error::Degree`]
/// above [`MAX_DEGREE`](super::MAX_DEGREE), or when the monomial coefficients in `f64` cannot
/// hold the fit (rounding alone would exceed its error); [`Error::Fit`] if `f` is not finite on the
/// interval, or if the exchange has not converged after 100 iterations (use
/// [`chebyshev`](super::chebyshev) instead: it is within a small factor of the best).
///
/// ```
/// use polyact::{fit, Relu, Sigmoid};
/// let fit = fit::minimax(&Sigmoid, 5, -5.0..=5.0)?;
/// assert!((fit.report.max_abs - 0.0118).abs() < 0.0118 * 0.02);
/// let c = fit.polynomial.coefficients_f64();
/// assert!((c[0] - 0.5).abs() < 1e-12 && c[2].abs() < 1e-300);
///
/// let relu = fit::minimax(&Relu, 2, -5.0..=5.0)?;
/// assert!((relu.report.max_abs - 5.0 / 16.0).abs() < 1e-6);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn minimax<A: Activation<f64>>(
    f: A,
    degree: usize,
    interval: impl TryInto<Interval, Error: Into<Error>>,
) -> Result<Fit> {
    let method = Method::Minimax;
    check_degree(method, degree)?;
    let span = super::interval(interval)?;
    let remez = Remez::new(&f, degree, span)?;
    let m = degree + 2;
    let mut reference: Vec<f64> = (0..m)
        .map(|i| -(PI * i as f64 / (degree + 1) as f64).cos())
        .collect();
    let mut last = (f64::NAN, f64::NAN);
    for _ in 0..MAX_ITERATIONS {
        let (c, level) = remez.levelled(&reference)?;
        match remez.exchange(&c, &reference, level) {
            Exchange::Converged => return finish(method, &f, c, span),
            Exchange::Next {
                reference: next,
                max_error,
            } => {
                reference = next;
                last = (level, max_error);
            }
        }
    }
    Err(remez.fail(format!(
        "the Remez exchange did not converge in {MAX_ITERATIONS} iterations (levelled error \
         {:.6e}, maximum error {:.6e}); use a lower degree, or chebyshev, which is near-minimax",
        last.0, last.1
    )))
}

/// One Remez problem: `f` on `span`, seen in `t ∈ [-1, 1]`, with its search grid.
struct Remez<'a, A: ?Sized> {
    f: &'a A,
    span: Interval,
    /// Reference points: `degree + 2`.
    m: usize,
    /// The search grid in `t`, with the kinks of `f`, and `f` on it.
    ts: Vec<f64>,
    gs: Vec<f64>,
    /// `max |f|` on the grid, and the rounding level of the fit's arithmetic.
    scale: f64,
    noise: f64,
}

/// What one exchange step found.
enum Exchange {
    /// The extrema are level: the current polynomial is the best.
    Converged,
    /// Move to these reference points.
    Next { reference: Vec<f64>, max_error: f64 },
}

impl<'a, A: Activation<f64> + ?Sized> Remez<'a, A> {
    fn new(f: &'a A, degree: usize, span: Interval) -> Result<Self> {
        let unit = Interval::new(-1.0, 1.0)?;
        let kinks: Vec<f64> = numeric::kinks(span, [f.formula()])
            .into_iter()
            .map(|x| span.t_of(x))
            .collect();
        let ts = numeric::grid(unit, (64 * (degree + 2)).max(2048), &kinks);
        let xs: Vec<f64> = ts.iter().map(|&t| span.x_of(t)).collect();
        let gs = eval_all(f, &xs);
        check_finite(Method::Minimax.name(), f.name(), &xs, &gs)?;
        let scale = gs.iter().fold(f64::MIN_POSITIVE, |m, y| m.max(y.abs()));
        Ok(Self {
            f,
            span,
            m: degree + 2,
            ts,
            gs,
            scale,
            noise: 64.0 * f64::EPSILON * scale * (degree + 1) as f64,
        })
    }

    fn fail(&self, reason: String) -> Error {
        Error::Fit {
            method: Method::Minimax.name(),
            reason,
        }
    }

    /// `f` at `t ∈ [-1, 1]`.
    fn g(&self, t: f64) -> f64 {
        self.f.eval(self.span.x_of(t))
    }

    /// The Chebyshev coefficients of the polynomial whose error alternates with equal size `h`
    /// on the reference, `Σ cₖ Tₖ(tᵢ) + (−1)ⁱ h = g(tᵢ)`, and `|h|`.
    fn levelled(&self, reference: &[f64]) -> Result<(Vec<f64>, f64)> {
        let m = self.m;
        let mut row = vec![0.0; m - 1];
        let mut matrix = Vec::with_capacity(m * m);
        let mut rhs = Vec::with_capacity(m);
        for (i, &t) in reference.iter().enumerate() {
            chebyshev_row(t, &mut row);
            matrix.extend_from_slice(&row);
            matrix.push(if i % 2 == 0 { 1.0 } else { -1.0 });
            let y = self.g(t);
            if !y.is_finite() {
                let x = self.span.x_of(t);
                return Err(self.fail(format!("{} is {y} at x = {x}", self.f.name())));
            }
            rhs.push(y);
        }
        let mut solution = solve_dense(matrix, rhs)
            .ok_or_else(|| self.fail("the reference system is singular".into()))?;
        let level = solution.pop().unwrap_or(0.0).abs();
        Ok((solution, level))
    }

    /// Finds the error's alternating extrema for the polynomial `c` and decides: converged, or
    /// the next reference.
    fn exchange(&self, c: &[f64], reference: &[f64], level: f64) -> Exchange {
        let error = |t: f64| clenshaw(c, t) - self.g(t);
        let errors: Vec<f64> = self
            .ts
            .iter()
            .zip(&self.gs)
            .map(|(&t, &y)| clenshaw(c, t) - y)
            .collect();
        let grid_max = errors.iter().fold(0.0_f64, |m, e| m.max(e.abs()));
        if grid_max <= EXACT * self.scale {
            return Exchange::Converged;
        }
        // One extremum per run of constant sign, refined; plus the reference itself, whose
        // errors alternate with size `level`: unless the reference is degenerate (level ≈ 0),
        // at least m alternating candidates survive the filter.
        let mut candidates: Vec<(f64, f64)> = sign_run_extrema(&self.ts, &errors, &error);
        candidates.extend(reference.iter().map(|&t| (t, error(t))));
        let alternating = alternate(candidates, level * (1.0 - 1e-9) - self.noise);
        let m = self.m;
        if alternating.len() < m {
            // The reference was degenerate: its levelled error is (nearly) zero, typically
            // because it is symmetric and the function is odd or even plus a line (relu,
            // softplus, gelu at even degrees). Keep the extrema found and complete them with
            // the interval's ends and the middles of the widest gaps; the next solve is no
            // longer degenerate.
            let kept = alternating.iter().map(|&(t, _)| t).collect();
            return Exchange::Next {
                reference: complete_reference(kept, m),
                max_error: grid_max,
            };
        }
        // m consecutive extrema that include the largest.
        let largest = alternating
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.abs().total_cmp(&b.1.1.abs()))
            .map_or(0, |(i, _)| i);
        let start = largest.saturating_sub(m - 1);
        let chosen = &alternating[start..start + m];
        let max_error = alternating.iter().fold(0.0_f64, |a, e| a.max(e.1.abs()));
        let min_error = chosen.iter().fold(f64::INFINITY, |a, e| a.min(e.1.abs()));
        if max_error - min_error <= RELATIVE_TOLERANCE * max_error + self.noise {
            return Exchange::Converged;
        }
        Exchange::Next {
            reference: chosen.iter().map(|&(t, _)| t).collect(),
            max_error,
        }
    }
}

/// The candidates `(t, error)` sorted by `t`, without those below `floor`, with each run of
/// one sign reduced to its largest member: errors of alternating sign.
fn alternate(mut candidates: Vec<(f64, f64)>, floor: f64) -> Vec<(f64, f64)> {
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut alternating: Vec<(f64, f64)> = Vec::with_capacity(candidates.len());
    for (t, e) in candidates {
        if e.abs() < floor || e == 0.0 {
            continue;
        }
        match alternating.last_mut() {
            Some(previous) if previous.1.signum() == e.signum() => {
                if e.abs() > previous.1.abs() {
                    *previous = (t, e);
                }
            }
            _ => alternating.push((t, e)),
        }
    }
    alternating
}

/// `points` (sorted, in `[-1, 1]`, fewer than `m`) completed to `m` distinct points: first the
/// ends `±1`, then the middles of the widest gaps.
fn complete_reference(mut points: Vec<f64>, m: usize) -> Vec<f64> {
    for end in [-1.0, 1.0] {
        if points.len() < m && points.iter().all(|&t| (t - end).abs() > 1e-9) {
            points.push(end);
        }
    }
    points.sort_by(f64::total_cmp);
    while points.len() < m {
        let mut widest = (0.0, 0);
        for (i, pair) in points.windows(2).enumerate() {
            if pair[1] - pair[0] > widest.0 {
                widest = (pair[1] - pair[0], i);
            }
        }
        let i = widest.1;
        points.insert(i + 1, 0.5 * (points[i] + points[i + 1]));
    }
    points
}

/// For each maximal run of grid points where the error has one sign, the point of largest
/// `|error|`, refined by golden-section search between its grid neighbours: `(t, error(t))`.
fn sign_run_extrema(ts: &[f64], errors: &[f64], error: &impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    let mut extrema = Vec::new();
    let last = ts.len() - 1;
    let mut i = 0;
    while i <= last {
        // Skip exact zeros between runs.
        if errors[i] == 0.0 {
            i += 1;
            continue;
        }
        let sign = errors[i].signum();
        let mut best = i;
        let mut j = i;
        while j <= last && errors[j] * sign >= 0.0 {
            if errors[j] * sign > errors[best] * sign {
                best = j;
            }
            j += 1;
        }
        let signed = |t: f64| {
            let e = sign * error(t);
            if e.is_nan() { f64::NEG_INFINITY } else { e }
        };
        let (t, value) = maximize(
            signed,
            ts[best.saturating_sub(1)],
            ts[(best + 1).min(last)],
            ts[best],
        );
        extrema.push((t, sign * value));
        i = j;
    }
    extrema
}

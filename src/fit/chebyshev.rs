//! Interpolation at Chebyshev nodes.

use super::numeric::{check_finite, eval_all};
use super::{Fit, Method, check_degree, finish};
use crate::{Activation, Error, Interval, Result};
use std::f64::consts::PI;

/// The polynomial of degree ≤ `degree` that interpolates `f` at the `degree + 1` Chebyshev
/// nodes of the first kind on `interval`, `xⱼ = (a + b)/2 + (b − a)/2 · cos(π(j + ½)/(n + 1))`.
///
/// It needs only `degree + 1` evaluations of `f` and a discrete cosine transform. Its maximum
/// error is at most `1 + Λₙ ≤ 2 + (2/π) ln(n + 1)` times the best possible
/// ([`minimax`](super::minimax)), and in practice much closer for smooth functions.
///
/// # Errors
/// [`Error::InvalidInterval`](crate::Error::InvalidInterval) for an empty, reversed or
/// infinite interval; [`Error::Degree`](crate::Error::Degree) above
/// [`MAX_DEGREE`](super::MAX_DEGREE), or when the monomial coefficients in `f64` cannot hold
/// the fit (rounding alone would exceed its error); [`Error::Fit`](crate::Error::Fit) if `f`
/// is not finite at a node.
///
/// ```
/// use polyact::{fit, Activation, Tanh};
/// let fit = fit::chebyshev(&Tanh, 7, -2.0..=2.0)?;
/// // It interpolates: exact at the nodes.
/// let node = 2.0 * (std::f64::consts::PI * 0.5 / 8.0).cos();
/// assert!((fit.polynomial.eval(node) - Tanh.eval(node)).abs() < 1e-14);
/// assert!(fit.report.max_abs < 5e-3);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn chebyshev<A: Activation<f64>>(
    f: A,
    degree: usize,
    interval: impl TryInto<Interval, Error: Into<Error>>,
) -> Result<Fit> {
    let method = Method::Chebyshev;
    check_degree(method, degree)?;
    let span = super::interval(interval)?;
    let count = degree + 1;
    let angle = |j: usize| PI * (j as f64 + 0.5) / count as f64;
    let xs: Vec<f64> = (0..count).map(|j| span.x_of(angle(j).cos())).collect();
    let ys = eval_all(&f, &xs);
    check_finite(method.name(), f.name(), &xs, &ys)?;
    // cₖ = (2/(n+1)) Σⱼ f(xⱼ) cos(kθⱼ), with c₀ halved.
    let chebyshev = (0..count)
        .map(|k| {
            let sum: f64 = ys
                .iter()
                .enumerate()
                .map(|(j, y)| y * (k as f64 * angle(j)).cos())
                .sum();
            let scale = if k == 0 { 1.0 } else { 2.0 };
            scale * sum / count as f64
        })
        .collect();
    finish(method, &f, chebyshev, span)
}

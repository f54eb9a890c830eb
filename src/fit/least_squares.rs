//! Least-squares fits: continuous on an interval, or over a sample of the inputs a layer sees.

use super::numeric::{
    self, GivensLeastSquares, chebyshev_row, check_finite, composite_rule, eval_all,
};
use super::{Fit, Method, QUADRATURE_POINTS, check_degree, finish};
use crate::{Activation, Error, Interval, Result};

/// The polynomial of degree ≤ `degree` with the smallest mean square error on `interval`,
/// `∫ₐᵇ (p(x) − f(x))² dx`.
///
/// The integral is a composite Gauss–Legendre rule of about 1000 nodes (panels break at any
/// kink of `f` inside the interval), and the weighted least-squares problem is solved by a
/// QR factorisation (Givens rotations) in the Chebyshev basis. Of the three methods it gives
/// the smallest RMS error; its maximum error, usually at the interval's ends, is larger than
/// [`minimax`](super::minimax)'s.
///
/// # Errors
/// [`Error::InvalidInterval`] for an empty, reversed or infinite interval;
/// [`Error::Degree`] above [`MAX_DEGREE`](super::MAX_DEGREE), or when the monomial
/// coefficients in `f64` cannot hold the fit (rounding alone would exceed its error);
/// [`Error::Fit`] if `f` is not finite somewhere on the interval.
///
/// ```
/// use polyact::{fit, Sigmoid};
/// let fit = fit::least_squares(&Sigmoid, 5, -5.0..=5.0)?;
/// assert!((fit.report.rms - 0.00796).abs() < 1e-5);
/// // The ends pay for the small RMS: the max error, at x = ±5, is twice minimax's 0.0118.
/// assert!((fit.report.max_abs - 0.0218).abs() < 1e-4 && (fit.report.at.abs() - 5.0).abs() < 1e-9);
/// assert!((fit.polynomial.eval(0.0_f64) - 0.5).abs() < 1e-12);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn least_squares<A: Activation<f64>>(
    f: A,
    degree: usize,
    interval: impl TryInto<Interval, Error: Into<Error>>,
) -> Result<Fit> {
    let method = Method::LeastSquares;
    check_degree(method, degree)?;
    let span = super::interval(interval)?;
    let kinks = numeric::kinks(span, [f.formula()]);
    // Enough panels that p² is integrated to rounding level up to high degrees (16 points per
    // panel are exact to degree 31 there).
    let panels = super::QUADRATURE_PANELS.max(2 * degree);
    let rule = composite_rule(span, &kinks, panels, QUADRATURE_POINTS);
    let xs: Vec<f64> = rule.iter().map(|&(x, _)| x).collect();
    let ys = eval_all(&f, &xs);
    check_finite(method.name(), f.name(), &xs, &ys)?;
    let mut problem = GivensLeastSquares::new(degree + 1);
    let mut row = vec![0.0; degree + 1];
    for (&(x, w), &y) in rule.iter().zip(&ys) {
        let root = w.sqrt();
        chebyshev_row(span.t_of(x), &mut row);
        row.iter_mut().for_each(|v| *v *= root);
        problem.add_row(&mut row, root * y);
    }
    let chebyshev = problem.solve().ok_or_else(|| Error::Fit {
        method: method.name(),
        reason: "the normal problem is singular (this should not happen on an interval)".into(),
    })?;
    finish(method, &f, chebyshev, span)
}

/// The polynomial of degree ≤ `degree` with the smallest squared error over `samples`,
/// `Σᵢ (p(xᵢ) − f(xᵢ))²`: a least-squares fit weighted by where the layer's inputs really fall.
///
/// Pass the pre-activation values a layer sees on real data (repeated values count as often
/// as they occur). The fit interval, the polynomial's domain and the interval of the
/// [`ErrorReport`](super::ErrorReport) are the samples' range `[min, max]`; the report measures
/// the error uniformly over that range, so it shows how the fit does on rare inputs too.
/// The problem is accumulated row by row (Givens QR in the Chebyshev basis), so the solver's
/// state stays `O(degree²)`; beside it the samples and `f`'s values at them are held once
/// (`O(N)`).
///
/// # Errors
/// [`Error::Fit`] if `samples` is empty, holds a NaN or infinite value, or all samples are
/// equal, or if `f` is not finite at a sample; [`Error::Degree`] above
/// [`MAX_DEGREE`](super::MAX_DEGREE), when there are fewer than `degree + 1` distinct samples,
/// or when the monomial coefficients in `f64` cannot hold the fit.
///
/// ```
/// use polyact::{fit, Activation, Sigmoid};
/// // Inputs concentrated near 0, a few out to ±6.
/// let samples: Vec<f64> = (-600..=600).map(|i| (i as f64 / 100.0).powi(3) / 36.0).collect();
/// let fit = fit::least_squares_on_samples(&Sigmoid, 3, &samples)?;
/// assert_eq!(fit.polynomial.domain().map(|d| d.ends()), Some((-6.0, 6.0)));
/// // Near 0, where most samples are, it beats the fit that weighs [-6, 6] uniformly.
/// let uniform = fit::least_squares(&Sigmoid, 3, -6.0..=6.0)?;
/// let error_at = |p: &polyact::Polynomial| (p.eval(0.5) - Sigmoid.eval(0.5_f64)).abs();
/// assert!(error_at(&fit.polynomial) < error_at(&uniform.polynomial));
/// assert!(fit::least_squares_on_samples(&Sigmoid, 3, &[0.0, 1.0, 2.0]).is_err());
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn least_squares_on_samples<A: Activation<f64>>(
    f: A,
    degree: usize,
    samples: &[f64],
) -> Result<Fit> {
    let method = Method::SampledLeastSquares;
    check_degree(method, degree)?;
    let fail = |reason: String| Error::Fit {
        method: method.name(),
        reason,
    };
    if samples.is_empty() {
        return Err(fail(
            "no samples: pass the inputs the layer sees, or use least_squares on an interval"
                .into(),
        ));
    }
    if let Some((i, x)) = samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(fail(format!("sample {i} is {x}; samples must be finite")));
    }
    // `+ 0.0` turns −0 into 0, so that the two count as one sample.
    let mut distinct: Vec<f64> = samples.iter().map(|&x| x + 0.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|a, b| a.total_cmp(b).is_eq());
    let (lo, hi) = (distinct[0], distinct[distinct.len() - 1]);
    if distinct.len() == 1 {
        return Err(fail(format!(
            "all samples equal {lo}, so there is no interval to fit on"
        )));
    }
    if distinct.len() <= degree {
        return Err(Error::Degree {
            requested: degree,
            reason: format!(
                "the samples hold only {} distinct points, and a degree-{degree} fit needs \
                 at least {}; lower the degree or pass more samples",
                distinct.len(),
                degree + 1
            ),
        });
    }
    drop(distinct);
    let span = Interval::new(lo, hi)?;
    let ys = eval_all(&f, samples);
    check_finite(method.name(), f.name(), samples, &ys)?;
    let mut problem = GivensLeastSquares::new(degree + 1);
    let mut row = vec![0.0; degree + 1];
    for (&x, &y) in samples.iter().zip(&ys) {
        chebyshev_row(span.t_of(x), &mut row);
        problem.add_row(&mut row, y);
    }
    let chebyshev = problem.solve().ok_or_else(|| {
        fail(format!(
            "the samples are too clustered for degree {degree}: the least-squares problem is \
             numerically singular; lower the degree"
        ))
    })?;
    finish(method, &f, chebyshev, span)
}

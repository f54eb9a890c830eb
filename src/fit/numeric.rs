//! The small numerical kit the fits share: the map onto `[-1, 1]`, the Chebyshev basis and its
//! exact conversion to monomials, Gauss–Legendre quadrature, one-dimensional maximisation and
//! two dense solvers for a few dozen unknowns.
//!
//! Nothing here is public: the fits expose polynomials and reports, never these pieces.

use std::f64::consts::PI;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

use crate::activation::{Activation, Formula};
use crate::{Coefficient, Error, Interval, Polynomial, Result};

/// The points strictly inside `span` where `fs` are not analytic (from their [`Formula`]), sorted.
pub(crate) fn kinks<const N: usize>(span: Interval, formulas: [Formula; N]) -> Vec<f64> {
    let mut kinks: Vec<f64> = formulas
        .into_iter()
        .filter_map(|formula| match formula {
            Formula::Piecewise { at, .. } if at > span.lo() && at < span.hi() => Some(at),
            _ => None,
        })
        .collect();
    kinks.sort_by(f64::total_cmp);
    kinks.dedup_by(|a, b| a.total_cmp(b).is_eq());
    kinks
}

/// `n + 1` points spread over `span`, uniform, plus `n + 1` Chebyshev-spaced points (dense near
/// the ends, where polynomial errors oscillate fastest), plus `extra`, sorted.
pub(crate) fn grid(span: Interval, n: usize, extra: &[f64]) -> Vec<f64> {
    let mut xs = Vec::with_capacity(2 * n + 2 + extra.len());
    for i in 0..=n {
        xs.push(span.x_of(-1.0 + 2.0 * i as f64 / n as f64));
        xs.push(span.x_of(-(PI * i as f64 / n as f64).cos()));
    }
    xs.extend_from_slice(extra);
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| a.total_cmp(b).is_eq());
    xs
}

/// `f(x)` for every `x`, through the activation's own (possibly vectorised) slice evaluation.
pub(crate) fn eval_all<A: Activation<f64> + ?Sized>(f: &A, xs: &[f64]) -> Vec<f64> {
    let mut ys = vec![0.0; xs.len()];
    f.eval_slice(xs, &mut ys);
    ys
}

/// Fails with [`Error::Fit`] at the first value that is not finite.
pub(crate) fn check_finite(method: &'static str, name: &str, xs: &[f64], ys: &[f64]) -> Result<()> {
    match xs.iter().zip(ys).find(|(_, y)| !y.is_finite()) {
        Some((x, y)) => Err(Error::Fit {
            method,
            reason: format!(
                "{name} is {y} at x = {x}; fit only where the function is finite \
                 (choose a smaller interval)"
            ),
        }),
        None => Ok(()),
    }
}

/// `T₀(t), …, Tₙ(t)` into `row`, by the three-term recurrence.
pub(crate) fn chebyshev_row(t: f64, row: &mut [f64]) {
    for k in 0..row.len() {
        row[k] = match k {
            0 => 1.0,
            1 => t,
            _ => 2.0 * t * row[k - 1] - row[k - 2],
        };
    }
}

/// `Σ cₖ Tₖ(t)` by Clenshaw's recurrence.
pub(crate) fn clenshaw(c: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = (2.0 * t).mul_add(b1, ck - b2);
        b2 = b1;
        b1 = b0;
    }
    match c.first() {
        Some(&c0) => t.mul_add(b1, c0 - b2),
        None => 0.0,
    }
}

/// Sets to zero the Chebyshev coefficients at rounding level (below `64ε · Σ|cⱼ|`, the accuracy of the Remez and least-squares solves): they carry
/// no information, and removing them lets symmetric functions keep exactly-zero coefficients
/// (a degree-6 fit of sigmoid is an odd polynomial plus 1/2, of degree 5).
pub(crate) fn drop_rounding_noise(c: &mut [f64]) {
    let total: f64 = c.iter().map(|v| v.abs()).sum();
    let floor = 64.0 * f64::EPSILON * total;
    for v in c.iter_mut() {
        if v.abs() <= floor {
            *v = 0.0;
        }
    }
}

/// The polynomial in `x` equal to `Σ cₖ Tₖ(t)` with `t = (2x − lo − hi)/(hi − lo)`, with `f64`
/// coefficients (ascending).
///
/// The conversion is exact: every `f64` involved is a rational, the Chebyshev sum is expanded in
/// rationals and mapped onto the interval by [`Polynomial::compose_affine`], and each result is
/// rounded once to the nearest `f64`. The monomial form may still be ill-conditioned for high
/// degrees on wide intervals; that is a property of the monomial basis, which the error report
/// measures on the polynomial as returned.
pub(crate) fn chebyshev_to_monomial(c: &[f64], span: Interval) -> Result<Polynomial> {
    let exact = |v: f64| {
        Coefficient::rational(BigRational::from_float(v).unwrap_or_else(BigRational::zero))
    };
    // Σ cₖ Tₖ(t) in powers of t, with Tₖ built by Tₖ = 2t·Tₖ₋₁ − Tₖ₋₂ in integers.
    let mut in_t = vec![BigRational::zero(); c.len()];
    let mut previous: Vec<BigInt> = vec![BigInt::one()]; // T₀
    let mut current: Vec<BigInt> = vec![BigInt::zero(), BigInt::one()]; // T₁
    for (k, &ck) in c.iter().enumerate() {
        let tk: &[BigInt] = match k {
            0 => &previous,
            1 => &current,
            _ => {
                let mut next = vec![BigInt::zero(); k + 1];
                for (j, v) in current.iter().enumerate() {
                    next[j + 1] += v * 2;
                }
                for (j, v) in previous.iter().enumerate() {
                    next[j] -= v;
                }
                previous = std::mem::replace(&mut current, next);
                &current
            }
        };
        if ck != 0.0 {
            let ck = BigRational::from_float(ck).unwrap_or_else(BigRational::zero);
            for (j, v) in tk.iter().enumerate() {
                if !v.is_zero() {
                    in_t[j] += &ck * BigRational::from_integer(v.clone());
                }
            }
        }
    }
    let in_t = Polynomial::new(in_t.into_iter().map(Coefficient::rational).collect());
    let (lo, hi) = (exact(span.lo()), exact(span.hi()));
    let width = &hi - &lo;
    let alpha = Coefficient::integer(2).checked_div(&width)?;
    let beta = (-(&lo + &hi)).checked_div(&width)?;
    let in_x = in_t.compose_affine(&alpha, &beta)?;
    Ok(Polynomial::from_f64(&in_x.coefficients_f64()))
}

/// The `m`-point Gauss–Legendre rule on `[-1, 1]`: nodes (ascending) and weights.
pub(crate) fn gauss_legendre(m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; m];
    let mut weights = vec![0.0; m];
    for i in 0..m.div_ceil(2) {
        // Newton's method on Pₘ from the usual asymptotic guess.
        let mut x = (PI * (i as f64 + 0.75) / (m as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=m {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            // p1 = Pₘ(x), p0 = Pₘ₋₁(x).
            derivative = m as f64 * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / derivative;
            x -= step;
            if step.abs() <= 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * derivative * derivative);
        nodes[i] = -x;
        nodes[m - 1 - i] = x;
        weights[i] = w;
        weights[m - 1 - i] = w;
    }
    (nodes, weights)
}

/// A composite Gauss–Legendre rule on `span`: about `panels` panels of `points` nodes each,
/// with panel boundaries at every `kink`, so a function that is smooth between kinks is
/// integrated to high accuracy. Returns `(x, weight)` pairs; the weights sum to the width.
pub(crate) fn composite_rule(
    span: Interval,
    kinks: &[f64],
    panels: usize,
    points: usize,
) -> Vec<(f64, f64)> {
    let (nodes, weights) = gauss_legendre(points);
    let mut ends = vec![span.lo()];
    ends.extend(
        kinks
            .iter()
            .copied()
            .filter(|&k| k > span.lo() && k < span.hi()),
    );
    ends.push(span.hi());
    let mut rule = Vec::with_capacity((panels + ends.len()) * points);
    for piece in ends.windows(2) {
        let (a, b) = (piece[0], piece[1]);
        let count = ((panels as f64 * (b - a) / span.width()).ceil() as usize).max(1);
        let h = (b - a) / count as f64;
        for p in 0..count {
            let left = a + h * p as f64;
            let right = if p + 1 == count { b } else { left + h };
            let (mid, half) = (0.5 * (left + right), 0.5 * (right - left));
            for (&t, &w) in nodes.iter().zip(&weights) {
                rule.push((half.mul_add(t, mid), half * w));
            }
        }
    }
    rule
}

/// The maximum of `g` on `[a, b]` near `start`, by golden-section search; never returns a value
/// below `g(start)`. Assumes `g` is unimodal on the bracket (the caller brackets one grid
/// maximum between its neighbours).
pub(crate) fn maximize(g: impl Fn(f64) -> f64, a: f64, b: f64, start: f64) -> (f64, f64) {
    const INV_PHI: f64 = 0.618_033_988_749_894_8;
    let mut best = (start, g(start));
    let (mut a, mut b) = (a, b);
    let mut c = b - INV_PHI * (b - a);
    let mut d = a + INV_PHI * (b - a);
    let (mut gc, mut gd) = (g(c), g(d));
    let tolerance = 1e-12 * (a.abs() + b.abs()).max(1e-300);
    for _ in 0..200 {
        if b - a <= tolerance {
            break;
        }
        if gc >= gd {
            b = d;
            d = c;
            gd = gc;
            c = b - INV_PHI * (b - a);
            gc = g(c);
        } else {
            a = c;
            c = d;
            gc = gd;
            d = a + INV_PHI * (b - a);
            gd = g(d);
        }
    }
    for candidate in [(c, gc), (d, gd)] {
        if candidate.1 > best.1 {
            best = candidate;
        }
    }
    best
}

/// Linear least squares `min ‖A c − y‖₂` accumulated one row at a time with Givens rotations,
/// so the design matrix is never stored: memory is `O(n²)` for `n` unknowns whatever the
/// number of rows, and the method is as stable as a QR factorisation.
pub(crate) struct GivensLeastSquares {
    n: usize,
    /// The upper triangle of `R`, row-major `n × n`.
    r: Vec<f64>,
    /// `Qᵀ y`, first `n` entries.
    z: Vec<f64>,
}

impl GivensLeastSquares {
    /// An empty problem with `n` unknowns.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            r: vec![0.0; n * n],
            z: vec![0.0; n],
        }
    }

    /// Adds the equation `row · c = rhs` (the row is used as scratch).
    pub fn add_row(&mut self, row: &mut [f64], mut rhs: f64) {
        let n = self.n;
        for k in 0..n {
            if row[k] == 0.0 {
                continue;
            }
            let rkk = self.r[k * n + k];
            let rho = rkk.hypot(row[k]);
            let (c, s) = (rkk / rho, row[k] / rho);
            for (a, b) in self.r[k * n + k..(k + 1) * n].iter_mut().zip(&mut row[k..]) {
                (*a, *b) = (c * *a + s * *b, c * *b - s * *a);
            }
            let (a, b) = (self.z[k], rhs);
            self.z[k] = c * a + s * b;
            rhs = c * b - s * a;
        }
    }

    /// The solution, or `None` when `R` is numerically singular (too few distinct rows).
    pub fn solve(&self) -> Option<Vec<f64>> {
        let n = self.n;
        let largest = (0..n).map(|k| self.r[k * n + k].abs()).fold(0.0, f64::max);
        let floor = largest * f64::EPSILON * n as f64;
        let mut c = vec![0.0; n];
        for k in (0..n).rev() {
            let rkk = self.r[k * n + k];
            if rkk.abs() <= floor || !rkk.is_finite() {
                return None;
            }
            let tail: f64 = (k + 1..n).map(|j| self.r[k * n + j] * c[j]).sum();
            c[k] = (self.z[k] - tail) / rkk;
        }
        Some(c)
    }
}

/// Solves the dense square system `A x = b` (`A` row-major) by Gaussian elimination with
/// partial pivoting; `None` if it is numerically singular.
pub(crate) fn solve_dense(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for k in 0..n {
        let pivot = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))?;
        if a[pivot * n + k].abs() <= f64::MIN_POSITIVE || !a[pivot * n + k].is_finite() {
            return None;
        }
        if pivot != k {
            for j in 0..n {
                a.swap(k * n + j, pivot * n + j);
            }
            b.swap(k, pivot);
        }
        for i in k + 1..n {
            let factor = a[i * n + k] / a[k * n + k];
            if factor != 0.0 {
                for j in k..n {
                    a[i * n + j] -= factor * a[k * n + j];
                }
                b[i] -= factor * b[k];
            }
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let tail: f64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
        x[k] = (b[k] - tail) / a[k * n + k];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let (x, w) = gauss_legendre(16);
        for power in 0..32 {
            let integral: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(power)).sum();
            let exact = if power % 2 == 1 {
                0.0
            } else {
                2.0 / (power + 1) as f64
            };
            assert!((integral - exact).abs() < 1e-14, "x^{power}: {integral}");
        }
    }

    #[test]
    fn composite_rule_weights_sum_to_the_width_and_respect_kinks() {
        let span = Interval::new(-5.0, 3.0).unwrap();
        let rule = composite_rule(span, &[0.0], 20, 8);
        let total: f64 = rule.iter().map(|(_, w)| w).sum();
        assert!((total - 8.0).abs() < 1e-13);
        // ∫ |x| over [-5, 3] = 12.5 + 4.5, exact because 0 is a panel boundary.
        let integral: f64 = rule.iter().map(|(x, w)| w * x.abs()).sum();
        assert!((integral - 17.0).abs() < 1e-12);
    }

    #[test]
    fn chebyshev_to_monomial_matches_clenshaw() {
        let c = [0.3, -1.25, 0.5, 0.125, -0.0625, 0.01];
        let span = Interval::new(-2.0, 7.0).unwrap();
        let monomial = chebyshev_to_monomial(&c, span).unwrap();
        for i in 0..=40 {
            let x = span.x_of(-1.0 + i as f64 / 20.0);
            let horner = monomial.eval(x);
            let direct = clenshaw(&c, span.t_of(x));
            assert!(
                (horner - direct).abs() < 1e-12,
                "x = {x}: {horner} vs {direct}"
            );
        }
    }

    #[test]
    fn solvers_recover_a_known_solution() {
        let a = vec![2.0, 1.0, -1.0, -3.0, -1.0, 2.0, -2.0, 1.0, 2.0];
        let x = solve_dense(a, vec![8.0, -11.0, -3.0]).expect("regular");
        for (got, want) in x.iter().zip([2.0, 3.0, -1.0]) {
            assert!((got - want).abs() < 1e-13);
        }
        let mut ls = GivensLeastSquares::new(2);
        // y = 1 + 2t at t = 0, 1, 2, 3, exactly.
        for t in 0..4 {
            let t = t as f64;
            ls.add_row(&mut [1.0, t], 1.0 + 2.0 * t);
        }
        let c = ls.solve().expect("full rank");
        assert!((c[0] - 1.0).abs() < 1e-13 && (c[1] - 2.0).abs() < 1e-13);
        let mut singular = GivensLeastSquares::new(2);
        singular.add_row(&mut [1.0, 1.0], 1.0);
        singular.add_row(&mut [1.0, 1.0], 1.0);
        assert!(singular.solve().is_none());
    }

    #[test]
    fn maximize_finds_an_interior_peak_and_keeps_the_start() {
        let (x, v) = maximize(|x| -(x - 0.3).powi(2), 0.0, 1.0, 0.25);
        assert!((x - 0.3).abs() < 1e-6 && v.abs() < 1e-12);
        let (x, _) = maximize(|x| x, 0.0, 1.0, 1.0);
        assert!((x - 1.0).abs() < 1e-15);
    }
}

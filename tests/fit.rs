//! Interval fits and error reports, against independent oracles: published reference values,
//! closed forms (minimax of relu, least squares of relu, the Taylor polynomial's error, the
//! minimum of silu), Chebyshev's equioscillation theorem, the Lebesgue-constant bound for
//! Chebyshev interpolation, and invariances (translation, exact reproduction of polynomials).

use std::f64::consts::PI;

use approx::{assert_abs_diff_eq, assert_relative_eq};
use polyact::fit::{self, Fit, Method, ShapeCheck};
use polyact::{
    Activation, Elu, Error, Formula, Gelu, Identity, Mish, Polynomial, Relu, Sigmoid, Silu,
    Softplus, Softsign, Square, Tanh,
};

/// "Within 2%": the tolerance the reference values are published with.
const REFERENCE: f64 = 0.02;
/// Agreement expected from two computations of the same exact quantity.
const TIGHT: f64 = 1e-9;
/// What is left of an exactly representable fit after rounding.
const ROUNDING: f64 = 1e-12;

/// The degree-5 Maclaurin polynomial of sigmoid, `1/2 + x/4 - x³/48 + x⁵/480` (closed form).
fn sigmoid_taylor_5() -> Polynomial {
    Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48), (0, 1), (1, 480)])
}

/// The three interval methods, by name.
fn all_methods(
    f: &dyn Activation<f64>,
    degree: usize,
    interval: std::ops::RangeInclusive<f64>,
) -> [Fit; 3] {
    [
        fit::least_squares(f, degree, interval.clone()).expect("least squares"),
        fit::chebyshev(f, degree, interval.clone()).expect("chebyshev"),
        fit::minimax(f, degree, interval).expect("minimax"),
    ]
}

/// `p(x) - f(x)` on `n + 1` evenly spaced points of `[lo, hi]`.
fn error_samples(
    p: &Polynomial,
    f: &dyn Activation<f64>,
    lo: f64,
    hi: f64,
    n: usize,
) -> Vec<(f64, f64)> {
    (0..=n)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / n as f64;
            (x, p.eval(x) - f.eval(x))
        })
        .collect()
}

/// The extrema of the error that reach `share` of `level`, one per run of constant sign, in
/// order: an independent equioscillation check on a dense grid.
fn alternation_points(samples: &[(f64, f64)], level: f64, share: f64) -> Vec<(f64, f64)> {
    let mut runs: Vec<(f64, f64)> = Vec::new();
    for &(x, e) in samples {
        match runs.last_mut() {
            Some(last) if last.1.signum() == e.signum() => {
                if e.abs() > last.1.abs() {
                    *last = (x, e);
                }
            }
            _ => runs.push((x, e)),
        }
    }
    runs.into_iter()
        .filter(|(_, e)| e.abs() >= share * level)
        .collect()
}

/// sigmoid(x − shift): sigmoid moved right, for the translation invariance test.
struct ShiftedSigmoid(f64);

impl Activation<f64> for ShiftedSigmoid {
    fn name(&self) -> &str {
        "shifted sigmoid"
    }
    fn eval(&self, x: f64) -> f64 {
        Sigmoid.eval(x - self.0)
    }
    fn derivative(&self, x: f64) -> f64 {
        Activation::<f64>::derivative(&Sigmoid, x - self.0)
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(
            format!("1/(1+exp(-(x-({}))))", self.0)
                .parse()
                .expect("the formula parses"),
        )
    }
}

/// A function that is NaN above 1, like a user formula evaluated outside its domain.
struct NanAboveOne;

impl Activation<f64> for NanAboveOne {
    fn name(&self) -> &str {
        "nan above one"
    }
    fn eval(&self, x: f64) -> f64 {
        if x > 1.0 { f64::NAN } else { x }
    }
    fn derivative(&self, _: f64) -> f64 {
        1.0
    }
    fn formula(&self) -> Formula {
        Formula::Analytic("x".parse().expect("the formula parses"))
    }
}

// ----- reference values -----------------------------------------------------------------

#[test]
fn minimax_sigmoid_degree_5_meets_the_reference() {
    let fit = fit::minimax(Sigmoid, 5, -5.0..=5.0).unwrap();
    assert_relative_eq!(fit.report.max_abs, 0.0118, max_relative = REFERENCE);
    assert_eq!(fit.method, Method::Minimax);
    assert_eq!(
        fit.polynomial.domain(),
        Some(polyact::Interval::new(-5.0, 5.0).unwrap())
    );
    assert_eq!(fit.polynomial.degree(), 5);
    // sigmoid − 1/2 is odd: the even coefficients vanish exactly, the constant is 1/2.
    let c = fit.polynomial.coefficients_f64();
    assert_abs_diff_eq!(c[0], 0.5, epsilon = ROUNDING);
    assert!(
        fit.polynomial.coefficients()[2].is_zero() && fit.polynomial.coefficients()[4].is_zero()
    );
    assert!(
        fit.polynomial
            .coefficients()
            .iter()
            .all(|c| c.exact().is_none())
    );
}

#[test]
fn minimax_sigmoid_degree_3_meets_the_reference_value_and_coefficients() {
    let fit = fit::minimax(Sigmoid, 3, -5.0..=5.0).unwrap();
    assert_relative_eq!(fit.report.max_abs, 0.0389, max_relative = REFERENCE);
    let c = fit.polynomial.coefficients_f64();
    assert_eq!(c.len(), 4);
    assert_abs_diff_eq!(c[0], 0.5, epsilon = ROUNDING);
    assert_relative_eq!(c[1], 0.1975, max_relative = REFERENCE);
    assert_abs_diff_eq!(c[2], 0.0, epsilon = ROUNDING);
    assert_relative_eq!(c[3], -0.004265, max_relative = REFERENCE);
}

#[test]
fn minimax_relu_degree_2_is_the_closed_form() {
    // relu = x/2 + |x|/2, and the best quadratic for |x| on [-R, R] is x²/R + R/8 with error
    // R/8: so relu ≈ R/16 + x/2 + x²/(2R), error exactly R/16.
    for r in [1.0, 5.0, 12.0] {
        let fit = fit::minimax(Relu, 2, -r..=r).unwrap();
        assert_relative_eq!(fit.report.max_abs, r / 16.0, max_relative = TIGHT);
        let c = fit.polynomial.coefficients_f64();
        assert_relative_eq!(c[0], r / 16.0, max_relative = 1e-7);
        assert_relative_eq!(c[1], 0.5, max_relative = 1e-7);
        assert_relative_eq!(c[2], 1.0 / (2.0 * r), max_relative = 1e-7);
    }
    let fit = fit::minimax(Relu, 2, -5.0..=5.0).unwrap();
    assert_relative_eq!(fit.report.max_abs, 0.3125, max_relative = REFERENCE);
}

#[test]
fn taylor_sigmoid_degree_5_error_meets_the_reference() {
    let report = fit::error_report(sigmoid_taylor_5(), Sigmoid, -5.0..=5.0).unwrap();
    assert_relative_eq!(report.max_abs, 4.66, max_relative = REFERENCE);
    // Closed form: the error is largest at the ends, p(5) = 181/32 exactly.
    let exact = 181.0 / 32.0 - Sigmoid.eval(5.0_f64);
    assert_relative_eq!(report.max_abs, exact, max_relative = TIGHT);
    assert_relative_eq!(report.at.abs(), 5.0, max_relative = TIGHT);
}

// ----- the theory of best approximation ---------------------------------------------------

#[test]
fn minimax_error_equioscillates_at_degree_plus_two_points() {
    let cases: [(&dyn Activation<f64>, usize, f64); 7] = [
        (&Sigmoid, 3, 5.0),
        (&Sigmoid, 5, 5.0),
        (&Sigmoid, 9, 5.0),
        (&Tanh, 7, 3.0),
        (&Softplus, 6, 4.0),
        (&Gelu, 8, 5.0),
        (&Mish, 5, 4.0),
    ];
    for (f, degree, r) in cases {
        let fit = fit::minimax(f, degree, -r..=r).unwrap();
        let samples = error_samples(&fit.polynomial, f, -r, r, 200_000);
        let grid_max = samples.iter().fold(0.0_f64, |m, s| m.max(s.1.abs()));
        // The report's refined maximum is at least the dense grid's, and hardly more.
        assert!(fit.report.max_abs >= grid_max * (1.0 - 1e-12));
        assert_relative_eq!(fit.report.max_abs, grid_max, max_relative = 1e-6);
        let points = alternation_points(&samples, fit.report.max_abs, 1.0 - 1e-5);
        assert!(
            points.len() >= degree + 2,
            "{} degree {degree}: {} alternation points {points:?}",
            f.name(),
            points.len()
        );
        for pair in points.windows(2) {
            assert!(
                pair[0].1.signum() != pair[1].1.signum(),
                "{} does not alternate",
                f.name()
            );
        }
    }
}

#[test]
fn symmetric_functions_at_the_degree_whose_top_coefficient_vanishes() {
    // sigmoid − 1/2 is odd: degree 6 is degree 5. relu, softplus and gelu are x/2 plus an even
    // function: degree 3 is degree 2, degree 9 is degree 8, and so on.
    let pairs: [(&dyn Activation<f64>, usize); 5] = [
        (&Sigmoid, 5),
        (&Sigmoid, 3),
        (&Relu, 2),
        (&Softplus, 8),
        (&Gelu, 8),
    ];
    for (f, low) in pairs {
        let a = fit::minimax(f, low, -5.0..=5.0).unwrap();
        let b = fit::minimax(f, low + 1, -5.0..=5.0).unwrap();
        assert_relative_eq!(a.report.max_abs, b.report.max_abs, max_relative = 1e-6);
        for x in [-4.0, -1.3, 0.2, 3.7] {
            assert_abs_diff_eq!(a.polynomial.eval(x), b.polynomial.eval(x), epsilon = 1e-6);
        }
    }
    // And the even-degree relu fits whose reference starts out symmetric (degenerate) converge.
    let mut previous = f64::INFINITY;
    for degree in 0..=20 {
        let fit = fit::minimax(Relu, degree, -5.0..=5.0).unwrap();
        assert!(
            fit.report.max_abs <= previous * (1.0 + 1e-9),
            "relu degree {degree}"
        );
        previous = fit.report.max_abs;
    }
    // Degree 0: the midrange of sigmoid, half its range as the error.
    let constant = fit::minimax(Sigmoid, 0, -5.0..=5.0).unwrap();
    assert_abs_diff_eq!(constant.polynomial.eval(1.0), 0.5, epsilon = ROUNDING);
    let half_range = (Sigmoid.eval(5.0_f64) - Sigmoid.eval(-5.0_f64)) / 2.0;
    assert_relative_eq!(constant.report.max_abs, half_range, max_relative = TIGHT);
}

#[test]
fn minimax_beats_chebyshev_which_stays_within_the_lebesgue_bound() {
    let elu = Elu::new(1.0).unwrap();
    let cases: [(&dyn Activation<f64>, usize); 9] = [
        (&Sigmoid, 3),
        (&Sigmoid, 5),
        (&Sigmoid, 9),
        (&Tanh, 5),
        (&Relu, 4),
        (&Softplus, 6),
        (&Gelu, 6),
        (&Softsign, 7),
        (&elu, 5),
    ];
    for (f, degree) in cases {
        let [least, cheb, best] = all_methods(f, degree, -5.0..=5.0);
        // ‖f − Iₙf‖ ≤ (1 + Λₙ) ‖f − p*‖ with Λₙ ≤ 1 + (2/π) ln(n + 1) for Chebyshev nodes.
        let bound = 2.0 + 2.0 / PI * ((degree + 1) as f64).ln();
        let name = f.name();
        assert!(
            best.report.max_abs <= cheb.report.max_abs * (1.0 + 1e-9),
            "{name} {degree}"
        );
        assert!(
            best.report.max_abs <= least.report.max_abs * (1.0 + 1e-9),
            "{name} {degree}"
        );
        assert!(
            cheb.report.max_abs <= bound * best.report.max_abs,
            "{name} {degree}"
        );
    }
}

#[test]
fn least_squares_has_the_smallest_rms_error() {
    let cases: [(&dyn Activation<f64>, usize, f64); 7] = [
        (&Sigmoid, 3, 5.0),
        (&Sigmoid, 9, 5.0),
        (&Tanh, 5, 3.0),
        (&Relu, 2, 5.0),
        (&Relu, 6, 1.0),
        (&Silu, 4, 6.0),
        (&Softsign, 5, 5.0),
    ];
    for (f, degree, r) in cases {
        let [least, cheb, best] = all_methods(f, degree, -r..=r);
        let name = f.name();
        assert!(
            least.report.rms <= cheb.report.rms * (1.0 + 1e-9),
            "{name} {degree}"
        );
        assert!(
            least.report.rms <= best.report.rms * (1.0 + 1e-9),
            "{name} {degree}"
        );
        // Perturbing the L2 optimum in any coefficient makes the RMS error worse.
        for k in 0..=degree {
            let c = least.polynomial.coefficients_f64();
            let mut bumped = c.clone();
            bumped[k] += 1e-3 / r.powi(k as i32);
            let bumped = Polynomial::from_f64(&bumped);
            let rms = fit::error_report(&bumped, f, -r..=r).unwrap().rms;
            assert!(rms > least.report.rms, "{name} {degree}: coefficient {k}");
        }
    }
}

#[test]
fn least_squares_of_relu_on_the_unit_interval_is_the_closed_form() {
    // Projection onto 1, x: mean ∫relu/2 = 1/4, slope (3/2)∫x·relu = 1/2.
    let fit = fit::least_squares(Relu, 1, -1.0..=1.0).unwrap();
    let c = fit.polynomial.coefficients_f64();
    assert_abs_diff_eq!(c[0], 0.25, epsilon = ROUNDING);
    assert_abs_diff_eq!(c[1], 0.5, epsilon = ROUNDING);
    // And the RMS error: ∫(relu − 1/4 − x/2)² over [-1, 1] = 1/24, so rms = √(1/48).
    assert_relative_eq!(
        fit.report.rms,
        (1.0_f64 / 48.0).sqrt(),
        max_relative = TIGHT
    );
}

#[test]
fn polynomials_of_degree_at_most_n_are_reproduced() {
    for fit in all_methods(&Square, 2, -5.0..=5.0) {
        assert!(
            fit.report.max_abs < ROUNDING * 25.0,
            "{}: {}",
            fit.method,
            fit.report
        );
        let c = fit.polynomial.coefficients_f64();
        assert_abs_diff_eq!(c[2], 1.0, epsilon = ROUNDING);
    }
    let cubic = Polynomial::from_f64(&[0.3, -1.2, 0.0, 0.25]);
    for degree in [3, 4, 7] {
        for fit in all_methods(&cubic, degree, -2.0..=3.0) {
            let c = fit.polynomial.coefficients_f64();
            for (k, want) in [0.3, -1.2, 0.0, 0.25].into_iter().enumerate() {
                assert_abs_diff_eq!(c[k], want, epsilon = 1e-10);
            }
            for &extra in &c[4..] {
                assert_abs_diff_eq!(extra, 0.0, epsilon = 1e-10);
            }
            assert!(fit.report.max_abs < 1e-11, "{} degree {degree}", fit.method);
        }
    }
    let line = fit::least_squares_on_samples(Identity, 1, &[-1.0, 0.5, 2.0, 7.0]).unwrap();
    assert!(line.report.max_abs < ROUNDING);
}

#[test]
fn fits_move_with_the_interval() {
    // Fitting sigmoid(x − 5) on [0, 10] is fitting sigmoid on [-5, 5], moved.
    let shifted = ShiftedSigmoid(5.0);
    for (moved, centred) in all_methods(&shifted, 5, 0.0..=10.0)
        .into_iter()
        .zip(all_methods(&Sigmoid, 5, -5.0..=5.0))
    {
        assert_relative_eq!(
            moved.report.max_abs,
            centred.report.max_abs,
            max_relative = 1e-6
        );
        assert_relative_eq!(moved.report.rms, centred.report.rms, max_relative = 1e-6);
        // The maximum may sit at any of several equal extrema; it must be one of them.
        let at = moved.report.at;
        assert_relative_eq!(
            (moved.polynomial.eval(at) - shifted.eval(at)).abs(),
            moved.report.max_abs,
            max_relative = 1e-9
        );
        for x in [0.0, 1.5, 4.9, 8.0, 10.0] {
            assert_abs_diff_eq!(
                moved.polynomial.eval(x),
                centred.polynomial.eval(x - 5.0),
                epsilon = 1e-8
            );
        }
        assert_eq!(
            moved.polynomial.domain(),
            Some(polyact::Interval::new(0.0, 10.0).unwrap())
        );
    }
    // An asymmetric interval around a kink.
    let fit = fit::minimax(Relu, 4, -1.0..=3.0).unwrap();
    let samples = error_samples(&fit.polynomial, &Relu, -1.0, 3.0, 100_000);
    assert!(alternation_points(&samples, fit.report.max_abs, 1.0 - 1e-4).len() >= 6);
}

#[test]
fn the_chebyshev_fit_interpolates_at_the_nodes_and_keeps_its_chebyshev_form() {
    let (lo, hi) = (-3.0, 2.0);
    let degree = 6;
    let fit = fit::chebyshev(Tanh, degree, lo..=hi).unwrap();
    for j in 0..=degree {
        let t = (PI * (j as f64 + 0.5) / (degree + 1) as f64).cos();
        let x = (lo + hi) / 2.0 + (hi - lo) / 2.0 * t;
        assert_abs_diff_eq!(fit.polynomial.eval(x), Tanh.eval(x), epsilon = 1e-13);
    }
    // Σ cₖ Tₖ(t) is the same polynomial as the monomial form.
    for i in 0..=20 {
        let x = lo + (hi - lo) * i as f64 / 20.0;
        let t = (2.0 * x - lo - hi) / (hi - lo);
        let chebyshev: f64 = fit
            .chebyshev
            .iter()
            .enumerate()
            .map(|(k, c)| c * (k as f64 * t.clamp(-1.0, 1.0).acos()).cos())
            .sum();
        assert_abs_diff_eq!(chebyshev, fit.polynomial.eval(x), epsilon = 1e-13);
    }
}

// ----- sampled least squares ----------------------------------------------------------------

#[test]
fn sampled_least_squares_minimises_the_error_on_the_samples() {
    // Inputs concentrated near 0 (a cubic stretch of a uniform grid), out to ±6.
    let samples: Vec<f64> = (-3000..=3000)
        .map(|i| (i as f64 / 500.0).powi(3) / 36.0)
        .collect();
    let sampled = fit::least_squares_on_samples(Sigmoid, 5, &samples).unwrap();
    assert_eq!(sampled.method, Method::SampledLeastSquares);
    assert_eq!(
        sampled.polynomial.domain(),
        Some(polyact::Interval::new(-6.0, 6.0).unwrap())
    );
    assert_eq!(sampled.report.interval.ends(), (-6.0, 6.0));
    let sample_sse = |p: &Polynomial| -> f64 {
        samples
            .iter()
            .map(|&x| (p.eval(x) - Sigmoid.eval(x)).powi(2))
            .sum()
    };
    let own = sample_sse(&sampled.polynomial);
    for other in all_methods(&Sigmoid, 5, -6.0..=6.0) {
        assert!(own < sample_sse(&other.polynomial), "{}", other.method);
    }
    // Uniform samples approach the continuous least-squares fit.
    let uniform: Vec<f64> = (0..=20_000).map(|i| -5.0 + i as f64 / 2000.0).collect();
    let discrete = fit::least_squares_on_samples(Sigmoid, 5, &uniform).unwrap();
    let continuous = fit::least_squares(Sigmoid, 5, -5.0..=5.0).unwrap();
    for (a, b) in discrete
        .polynomial
        .coefficients_f64()
        .iter()
        .zip(continuous.polynomial.coefficients_f64())
    {
        assert_abs_diff_eq!(*a, b, epsilon = 1e-5);
    }
    // Repeating a sample weighs it more: doubling every sample changes nothing.
    let doubled: Vec<f64> = samples.iter().chain(&samples).copied().collect();
    let twice = fit::least_squares_on_samples(Sigmoid, 5, &doubled).unwrap();
    for (a, b) in twice
        .polynomial
        .coefficients_f64()
        .iter()
        .zip(sampled.polynomial.coefficients_f64())
    {
        assert_abs_diff_eq!(*a, b, epsilon = 1e-12);
    }
}

#[test]
fn sampled_least_squares_rejects_unusable_samples() {
    let fails = |samples: &[f64], degree| fit::least_squares_on_samples(Sigmoid, degree, samples);
    assert!(matches!(fails(&[], 1), Err(Error::Fit { .. })));
    assert!(matches!(
        fails(&[0.0, f64::NAN, 1.0], 1),
        Err(Error::Fit { .. })
    ));
    assert!(matches!(
        fails(&[0.0, f64::INFINITY], 1),
        Err(Error::Fit { .. })
    ));
    assert!(matches!(fails(&[2.0, 2.0, 2.0], 0), Err(Error::Fit { .. })));
    assert!(matches!(
        fails(&[0.0, 1.0, 1.0, 2.0, 2.0], 3),
        Err(Error::Degree { requested: 3, .. })
    ));
    assert!(fails(&[0.0, 1.0, 1.0, 2.0, 3.0], 3).is_ok());
    // −0 and 0 are one sample, not two.
    match fails(&[-0.0, 0.0], 1) {
        Err(Error::Fit { reason, .. }) => assert!(reason.contains("all samples equal"), "{reason}"),
        other => panic!("expected Fit, got {:?}", other.err()),
    }
    assert!(matches!(
        fails(&[-0.0, 0.0, 1.0], 2),
        Err(Error::Degree { requested: 2, .. })
    ));
    assert!(matches!(
        fit::least_squares_on_samples(&NanAboveOne, 1, &[0.0, 2.0]),
        Err(Error::Fit { .. })
    ));
}

// ----- the error report ---------------------------------------------------------------------

#[test]
fn a_function_against_itself_has_no_error() {
    let elu = Elu::new(0.5).unwrap();
    let functions: [&dyn Activation<f64>; 6] = [&Sigmoid, &Tanh, &Relu, &Gelu, &elu, &Softsign];
    for f in functions {
        let report = fit::error_report(f, f, -4.0..=3.0).unwrap();
        assert_abs_diff_eq!(report.max_abs, 0.0, epsilon = 1e-300);
        assert_abs_diff_eq!(report.rms, 0.0, epsilon = 1e-300);
        // A function keeps its own shape.
        assert_ne!(report.bounded.holds(), Some(false), "{}", f.name());
        assert_ne!(report.monotone.holds(), Some(false), "{}", f.name());
    }
}

#[test]
fn the_report_finds_the_function_bounds_by_sampling() {
    let bounds = |f: &dyn Activation<f64>| {
        let report = fit::error_report(Identity, f, -1.0..=1.0).unwrap();
        (report.lower_bound, report.upper_bound)
    };
    let (lo, hi) = bounds(&Sigmoid);
    assert_abs_diff_eq!(lo.unwrap(), 0.0, epsilon = ROUNDING);
    assert_abs_diff_eq!(hi.unwrap(), 1.0, epsilon = ROUNDING);
    let (lo, hi) = bounds(&Tanh);
    assert_abs_diff_eq!(lo.unwrap(), -1.0, epsilon = ROUNDING);
    assert_abs_diff_eq!(hi.unwrap(), 1.0, epsilon = ROUNDING);
    let (lo, hi) = bounds(&Relu);
    assert_abs_diff_eq!(lo.unwrap(), 0.0, epsilon = ROUNDING);
    assert!(hi.is_none());
    // silu's minimum: silu' = 0 where σ(x)(1 + x(1 − σ(x))) = 0, i.e. silu(x) = x + 1 there,
    // at x = −1 − W(1/e) = −1.278464542761074 (W the Lambert function).
    let (lo, hi) = bounds(&Silu);
    assert_abs_diff_eq!(lo.unwrap(), -0.278_464_542_761_074, epsilon = TIGHT);
    assert!(hi.is_none());
    assert_eq!(bounds(&Identity), (None, None));
    let (lo, _) = bounds(&Elu::new(2.0).unwrap());
    assert_abs_diff_eq!(lo.unwrap(), -2.0, epsilon = ROUNDING);
}

#[test]
fn the_report_checks_bounds_and_monotonicity() {
    // The Taylor polynomial leaves [0, 1] (p(±5) = 1/2 ± 165/32) but stays increasing:
    // p' = 1/4 − x²/16 + x⁴/96 > 0.
    let taylor = fit::error_report(sigmoid_taylor_5(), Sigmoid, -5.0..=5.0).unwrap();
    match taylor.bounded {
        ShapeCheck::Broken { at, by } => {
            assert_relative_eq!(at.abs(), 5.0, max_relative = TIGHT);
            assert_relative_eq!(by, 181.0 / 32.0 - 1.0, max_relative = TIGHT);
        }
        other => panic!("expected a broken bound, got {other:?}"),
    }
    assert_eq!(taylor.monotone, ShapeCheck::Kept);
    // The degree-3 minimax fit turns back near the ends: p' = 0.1975 − 3·0.004265·x² < 0
    // for |x| > 3.93.
    let cubic = fit::minimax(Sigmoid, 3, -5.0..=5.0).unwrap();
    match cubic.report.monotone {
        ShapeCheck::Broken { at, by } => {
            let c = cubic.polynomial.coefficients_f64();
            let turn = (c[1] / (3.0 * -c[3])).sqrt();
            let fall = cubic.polynomial.eval(-5.0) - cubic.polynomial.eval(-turn);
            assert_relative_eq!(by, fall, max_relative = 1e-4);
            // The fall bottoms out at the left turning point, or (the mirror image) at x = 5.
            assert!(
                (at + turn).abs() < 0.05 || (at - 5.0).abs() < 1e-9,
                "at {at}"
            );
        }
        other => panic!("expected broken monotonicity, got {other:?}"),
    }
    // Degree 9 keeps both.
    let nine = fit::minimax(Sigmoid, 9, -5.0..=5.0).unwrap();
    assert_eq!(
        (nine.report.bounded, nine.report.monotone),
        (ShapeCheck::Kept, ShapeCheck::Kept)
    );
    // gelu is not monotone on [-5, 5] but is on [0, 5]; identity is unbounded.
    let gelu = fit::error_report(Identity, Gelu, -5.0..=5.0).unwrap();
    assert_eq!(gelu.monotone, ShapeCheck::NotApplicable);
    let gelu = fit::error_report(Identity, Gelu, 0.0..=5.0).unwrap();
    assert_eq!(gelu.monotone, ShapeCheck::Kept);
    let identity = fit::error_report(Square, Identity, -1.0..=1.0).unwrap();
    assert_eq!(identity.bounded, ShapeCheck::NotApplicable);
    assert!(matches!(identity.monotone, ShapeCheck::Broken { .. }));
}

#[test]
fn the_report_displays_on_one_line() {
    let report = fit::error_report(sigmoid_taylor_5(), Sigmoid, -5.0..=5.0).unwrap();
    let line = report.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("max |error| 4.663 at x = "), "{line}");
    assert!(
        line.contains("rms ") && line.contains("on [-5, 5]"),
        "{line}"
    );
    assert!(line.contains("leaves [0, 1] by 4.656"), "{line}");
    assert!(line.ends_with("; monotone"), "{line}");
}

#[test]
fn fits_and_reports_round_trip_through_serde() {
    let fit = fit::minimax(Tanh, 5, -2.0..=2.0).unwrap();
    let json = serde_json::to_string(&fit).unwrap();
    let back: Fit = serde_json::from_str(&json).unwrap();
    assert_eq!(back.method, fit.method);
    assert_relative_eq!(
        back.report.max_abs,
        fit.report.max_abs,
        max_relative = 1e-15
    );
    assert_eq!(back.polynomial.degree(), 5);
    assert_abs_diff_eq!(
        back.polynomial.eval(1.3),
        fit.polynomial.eval(1.3),
        epsilon = 1e-15
    );
}

#[test]
fn trait_objects_can_be_fitted() {
    let boxed: Box<dyn Activation<f64>> = Box::new(Tanh);
    let fit = fit::minimax(boxed.as_ref(), 5, -2.0..=2.0).unwrap();
    let direct = fit::minimax(Tanh, 5, -2.0..=2.0).unwrap();
    assert_relative_eq!(
        fit.report.max_abs,
        direct.report.max_abs,
        max_relative = TIGHT
    );
    let report = fit::error_report(&fit.polynomial, boxed.as_ref(), -2.0..=2.0).unwrap();
    assert_relative_eq!(report.max_abs, fit.report.max_abs, max_relative = TIGHT);
}

// ----- validation ---------------------------------------------------------------------------

#[test]
fn invalid_intervals_are_rejected_by_every_entry_point() {
    let bad = [
        5.0..=-5.0,
        1.0..=1.0,
        f64::NAN..=1.0,
        0.0..=f64::INFINITY,
        f64::NEG_INFINITY..=0.0,
        -f64::MAX..=f64::MAX,
    ];
    for interval in bad {
        let expect = |r: polyact::Result<Fit>| {
            assert!(
                matches!(r, Err(Error::InvalidInterval { .. })),
                "{interval:?}: {r:?}"
            )
        };
        expect(fit::least_squares(Sigmoid, 3, interval.clone()));
        expect(fit::chebyshev(Sigmoid, 3, interval.clone()));
        expect(fit::minimax(Sigmoid, 3, interval.clone()));
        assert!(matches!(
            fit::error_report(Sigmoid, Tanh, interval.clone()),
            Err(Error::InvalidInterval { .. })
        ));
    }
}

#[test]
fn degrees_beyond_the_limit_or_beyond_f64_are_rejected() {
    let too_high = fit::MAX_DEGREE + 1;
    for r in [
        fit::least_squares(Sigmoid, too_high, -1.0..=1.0),
        fit::chebyshev(Sigmoid, too_high, -1.0..=1.0),
        fit::minimax(Sigmoid, too_high, -1.0..=1.0),
    ] {
        assert!(matches!(r, Err(Error::Degree { requested, .. }) if requested == too_high));
    }
    // Degree 40 on [0, 10]: the monomial coefficients cannot hold the fit in f64.
    let r = fit::chebyshev(Sigmoid, 40, 0.0..=10.0);
    assert!(
        matches!(r, Err(Error::Degree { requested: 40, .. })),
        "{r:?}"
    );
    // while the same degree centred and on [-1, 1] is fine.
    let fine = fit::chebyshev(Sigmoid, 40, -1.0..=1.0).unwrap();
    assert!(fine.report.max_abs < 1e-13);
}

#[test]
fn functions_that_are_not_finite_are_reported() {
    for r in [
        fit::least_squares(&NanAboveOne, 3, 0.0..=2.0),
        fit::chebyshev(&NanAboveOne, 3, 0.0..=2.0),
        fit::minimax(&NanAboveOne, 3, 0.0..=2.0),
    ] {
        assert!(matches!(r, Err(Error::Fit { .. })), "{r:?}");
    }
    let report = fit::error_report(Identity, &NanAboveOne, 0.0..=2.0);
    assert!(matches!(
        report,
        Err(Error::Fit {
            method: "error report",
            ..
        })
    ));
    // On the part of the line where it is finite, all is well.
    let fit = fit::minimax(&NanAboveOne, 1, 0.0..=1.0).unwrap();
    assert!(fit.report.max_abs < ROUNDING);
}

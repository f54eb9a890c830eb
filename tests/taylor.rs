//! Taylor series against independent oracles: the study's printed series, tanh's
//! Bernoulli-number closed form, sigmoid's relation to tanh, the functions themselves and
//! their finite differences.
#![cfg(feature = "symbolica")]

use approx::{assert_abs_diff_eq, assert_relative_eq};
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use polyact::taylor::MAX_DEGREE;
use polyact::{
    Activation, Elu, Error, Exact, Gelu, LeakyRelu, Mish, Relu, Sigmoid, Silu, Softplus, Softsign,
    Tanh, taylor_poly, taylor_poly_at, taylor_poly_formula, taylor_series, taylor_series_formula,
};

/// Coefficients with an exact rational and a nearest double agree to the last bit or so.
const EXACT_TO_F64: f64 = 1e-15;
/// Finite differences of a smooth function with step 1e-4 (second) or 1e-5 (first).
const FIRST_DIFFERENCE: f64 = 1e-8;
const SECOND_DIFFERENCE: f64 = 1e-6;
/// A degree-12 expansion evaluated 0.05 away from its point: the remainder is far below f64.
const NEAR_POINT: f64 = 1e-13;

fn ratio(n: i64, d: i64) -> BigRational {
    BigRational::new(BigInt::from(n), BigInt::from(d))
}

/// The exact coefficients of `p` up to `x^degree` (a polynomial stores none above its degree, so
/// missing top powers are zeros).
fn rationals_to(p: &polyact::Polynomial, degree: usize) -> Vec<BigRational> {
    let mut r = rationals(p);
    r.resize(r.len().max(degree + 1), BigRational::zero());
    r
}

fn rationals(p: &polyact::Polynomial) -> Vec<BigRational> {
    p.coefficients()
        .iter()
        .map(|c| {
            c.as_rational()
                .unwrap_or_else(|| panic!("{c} is not rational"))
                .clone()
        })
        .collect()
}

#[test]
fn the_studys_sigmoid() {
    let p = taylor_poly(Sigmoid, 5).unwrap();
    assert_eq!(p.to_string(), "1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5");
    assert_eq!(p.coefficients()[3].to_string(), "-1/48");
    assert_relative_eq!(
        p.coefficients()[3].to_f64(),
        -1.0 / 48.0,
        max_relative = EXACT_TO_F64
    );
    assert_eq!(
        rationals(&p),
        [
            ratio(1, 2),
            ratio(1, 4),
            ratio(0, 1),
            ratio(-1, 48),
            ratio(0, 1),
            ratio(1, 480)
        ]
    );
}

#[test]
fn the_studys_tanh() {
    let p = taylor_poly(Tanh, 5).unwrap();
    assert_eq!(p.to_string(), "x - 1/3·x^3 + 2/15·x^5");
}

#[test]
fn the_studys_softplus_with_the_correct_sign() {
    // The study printed log(2) + x/2 + x^2/8 + x^4/192: the quartic term's sign is wrong.
    // softplus''''(0) = -1/8, so the coefficient is -1/8 / 4! = -1/192.
    let p = taylor_poly(Softplus, 4).unwrap();
    assert_eq!(p.to_string(), "log(2) + 1/2·x + 1/8·x^2 - 1/192·x^4");
    let c = p.coefficients();
    assert_eq!(
        c[0].exact(),
        Some(&Exact::Symbolic("log(2)".parse().unwrap()))
    );
    assert_relative_eq!(
        c[0].to_f64(),
        std::f64::consts::LN_2,
        max_relative = EXACT_TO_F64
    );
    assert_eq!(c[4].as_rational(), Some(&ratio(-1, 192)));
}

#[test]
// Passing a reference is what this test is about.
#[allow(clippy::needless_borrows_for_generic_args)]
fn accepts_references_and_trait_objects() {
    let by_value = taylor_poly(Sigmoid, 7).unwrap();
    let by_ref = taylor_poly(&Sigmoid, 7).unwrap();
    let dynamic: &dyn Activation<f64> = &Sigmoid;
    let by_dyn = taylor_poly(dynamic, 7).unwrap();
    let boxed: Box<dyn Activation<f64>> = Box::new(Sigmoid);
    let by_box = taylor_poly(boxed, 7).unwrap();
    assert_eq!(by_value, by_ref);
    assert_eq!(by_value, by_dyn);
    assert_eq!(by_value, by_box);
}

/// Bernoulli numbers B_0..=B_n from Σ_{k=0}^{m} C(m+1, k) B_k = 0.
fn bernoulli(n: usize) -> Vec<BigRational> {
    let mut b: Vec<BigRational> = vec![BigRational::one()];
    for m in 1..=n {
        let mut sum = BigRational::zero();
        let mut binomial = BigInt::one(); // C(m+1, k), starting at k = 0
        for (k, bk) in b.iter().enumerate() {
            sum += bk * BigRational::from_integer(binomial.clone());
            binomial = binomial * BigInt::from(m + 1 - k) / BigInt::from(k + 1);
        }
        b.push(-sum / BigRational::from_integer(BigInt::from(m + 1)));
    }
    b
}

fn factorial(n: usize) -> BigInt {
    (1..=n).fold(BigInt::one(), |acc, k| acc * BigInt::from(k))
}

#[test]
fn tanh_matches_the_bernoulli_closed_form_to_degree_31() {
    // tanh x = Σ_{n≥1} 2^{2n} (2^{2n} - 1) B_{2n} x^{2n-1} / (2n)!
    let degree = 31;
    let b = bernoulli(degree + 1);
    assert_eq!(b[2], ratio(1, 6));
    assert_eq!(b[12], ratio(-691, 2730));
    let p = taylor_poly(Tanh, degree).unwrap();
    let got = rationals(&p);
    for (k, coefficient) in got.iter().enumerate() {
        let expected = if k % 2 == 1 {
            let n = k.div_ceil(2);
            let four_n = BigInt::one() << (2 * n);
            BigRational::from_integer(&four_n * (&four_n - BigInt::one())) * &b[2 * n]
                / BigRational::from_integer(factorial(2 * n))
        } else {
            BigRational::zero()
        };
        assert_eq!(coefficient, &expected, "coefficient of x^{k}");
    }
    // x^31's coefficient, for the record: its denominator is beyond i64.
    assert!(got[31].denom().bits() > 64);
}

#[test]
fn sigmoid_is_half_plus_half_tanh_of_half_x() {
    // σ(x) = 1/2 + tanh(x/2)/2, so σ_k = t_k / 2^(k+1) for k ≥ 1.
    let degree = 30;
    let s = rationals_to(&taylor_poly(Sigmoid, degree).unwrap(), degree);
    let t = rationals_to(&taylor_poly(Tanh, degree).unwrap(), degree);
    assert_eq!(s[0], ratio(1, 2));
    for k in 1..=degree {
        let expected = &t[k] / BigRational::from_integer(BigInt::one() << (k + 1));
        assert_eq!(s[k], expected, "coefficient of x^{k}");
    }
}

/// Checks an expansion at `a` against the function and its finite differences.
fn check_at_point(f: &dyn Activation<f64>, a: f64) {
    let name = f.name().to_owned();
    let s = taylor_series(f, 12, a).unwrap_or_else(|e| panic!("{name} at {a}: {e}"));
    let c = s.about_point();
    let fa = f.eval(a);
    assert_relative_eq!(
        c[0].to_f64(),
        fa,
        max_relative = EXACT_TO_F64,
        epsilon = 1e-300
    );
    assert_relative_eq!(
        c[1].to_f64(),
        f.derivative(a),
        max_relative = 1e-13,
        epsilon = 1e-14
    );
    let h = 1e-5;
    let first = (f.eval(a + h) - f.eval(a - h)) / (2.0 * h);
    assert_abs_diff_eq!(c[1].to_f64(), first, epsilon = FIRST_DIFFERENCE);
    let h = 1e-4;
    let second = (f.eval(a + h) - 2.0 * fa + f.eval(a - h)) / (h * h);
    assert_abs_diff_eq!(2.0 * c[2].to_f64(), second, epsilon = SECOND_DIFFERENCE);
    // The polynomial in powers of x, near the point.
    for delta in [-0.05, 0.03, 0.05] {
        let x = a + delta;
        assert_abs_diff_eq!(s.polynomial().eval(x), f.eval(x), epsilon = NEAR_POINT);
        let about: f64 = c
            .iter()
            .rev()
            .fold(0.0, |acc, ck| acc * delta + ck.to_f64());
        assert_abs_diff_eq!(about, f.eval(x), epsilon = NEAR_POINT);
    }
}

#[test]
fn expansions_away_from_zero_match_the_function_and_its_differences() {
    let elu = Elu::new(1.0).unwrap();
    let leaky = LeakyRelu::new(0.01).unwrap();
    let smooth: [&dyn Activation<f64>; 6] = [&Sigmoid, &Tanh, &Softplus, &Gelu, &Silu, &Mish];
    for f in smooth {
        for a in [0.5, -1.25, 2.0] {
            check_at_point(f, a);
        }
    }
    check_at_point(&elu, -1.0);
    check_at_point(&elu, 0.75);
    check_at_point(&leaky, -3.0);
    check_at_point(&Softsign, 0.5);
    check_at_point(&Softsign, -0.5);
}

#[test]
fn expansions_of_rational_functions_stay_rational_away_from_zero() {
    // The point 0.1 is read as exactly 1/10, so the shift to powers of x is exact.
    let p = taylor_poly_formula("(1+x)^3", 3, 0.1).unwrap();
    assert_eq!(p.to_string(), "1 + 3·x + 3·x^2 + x^3");
    let leaky = LeakyRelu::new(0.01).unwrap();
    let s = taylor_series(leaky, 3, -3.0).unwrap();
    assert_eq!(s.to_string(), "-3/100 + 1/100·(x + 3)");
    assert_eq!(s.polynomial().to_string(), "1/100·x");
    let softsign = rationals(&taylor_poly_at(Softsign, 4, 0.5).unwrap());
    // x/(1+x) at 1/2, expanded and re-collected by hand: d_0 = Σ_k c_k (-1/2)^k with
    // c_k = (-1)^(k+1) (2/3)^(k+1) for k ≥ 1 and c_0 = 1/3.
    let c: Vec<BigRational> = (0..=4i32)
        .map(|k| {
            if k == 0 {
                ratio(1, 3)
            } else {
                let sign = if k % 2 == 1 { 1 } else { -1 };
                ratio(sign, 1) * ratio(2, 3).pow(k + 1)
            }
        })
        .collect();
    let d0: BigRational = c
        .iter()
        .enumerate()
        .map(|(k, ck)| ck * ratio(-1, 2).pow(k as i32))
        .sum();
    assert_eq!(softsign[0], d0);
}

#[test]
fn closed_form_constants_are_kept() {
    let p = taylor_poly(Gelu, 6).unwrap();
    let c = p.coefficients();
    assert!(c[0].is_zero());
    assert_eq!(c[1].as_rational(), Some(&ratio(1, 2)));
    assert_eq!(c[2].to_string(), "1/sqrt(2*pi)");
    let inv_sqrt_2pi = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    assert_relative_eq!(c[2].to_f64(), inv_sqrt_2pi, max_relative = EXACT_TO_F64);
    // x/2 (1 + erf(x/√2)) = x/2 + x²/√(2π) Σ (-1)^n x^(2n) / (2^n n! (2n+1))
    assert_eq!(c[4].to_string(), "-1/(6*sqrt(2*pi))");
    assert_relative_eq!(
        c[4].to_f64(),
        -inv_sqrt_2pi / 6.0,
        max_relative = EXACT_TO_F64
    );
    assert_relative_eq!(
        c[6].to_f64(),
        inv_sqrt_2pi / 40.0,
        max_relative = EXACT_TO_F64
    );
    assert!(c[3].is_zero() && c[5].is_zero());
}

#[test]
fn decimal_literals_are_read_exactly() {
    let p = taylor_poly_formula("0.66 + x/2 + 0.1176*x^2", 2, 0.0).unwrap();
    assert_eq!(p.to_string(), "33/50 + 1/2·x + 147/1250·x^2");
}

#[test]
fn formula_spellings_of_the_same_function_agree() {
    let degree = 10;
    let mish = taylor_poly(Mish, degree).unwrap();
    assert_eq!(
        taylor_poly_formula("x*tanh(softplus(x))", degree, 0.0).unwrap(),
        mish
    );
    assert_eq!(
        taylor_poly_formula("x*tanh(log(1+exp(x)))", degree, 0.0).unwrap(),
        mish
    );
    let tanh = taylor_poly(Tanh, degree).unwrap();
    assert_eq!(taylor_poly_formula("tanh(x)", degree, 0.0).unwrap(), tanh);
    assert_eq!(
        taylor_poly_formula("sinh(x)/cosh(x)", degree, 0.0).unwrap(),
        tanh
    );
    let silu = taylor_poly(Silu, degree).unwrap();
    assert_eq!(
        taylor_poly_formula("x*sigmoid(x)", degree, 0.0).unwrap(),
        silu
    );
    assert_eq!(
        taylor_poly_formula("x/(1+exp(-x))", degree, 0.0).unwrap(),
        silu
    );
}

#[test]
fn degree_thirty_works_for_every_smooth_activation_and_a_formula() {
    let smooth: [&dyn Activation<f64>; 6] = [&Sigmoid, &Tanh, &Softplus, &Gelu, &Silu, &Mish];
    for f in smooth {
        let p = taylor_poly(f, 30).unwrap();
        // Sigmoid and tanh have no x^30 term (odd up to a constant); no trailing zeros are stored.
        let want = if ["sigmoid", "tanh"].contains(&f.name()) {
            30
        } else {
            31
        };
        assert_eq!(p.coefficients().len(), want, "{}", f.name());
        for x in [-0.5, 0.25, 0.5] {
            assert_abs_diff_eq!(p.eval(x), f.eval(x), epsilon = 1e-15);
        }
    }
    let p = taylor_poly_formula("x*erf(x)+cos(x)", 30, 0.0).unwrap();
    let x: f64 = 0.5;
    assert_abs_diff_eq!(
        p.eval(x),
        x * 0.520_499_877_813_046_5 + x.cos(),
        epsilon = 1e-15
    );
    // Rationals beyond i128 are kept exactly: mish's x^30 has a 48-digit denominator.
    let mish = taylor_poly(Mish, 30).unwrap();
    let c30 = mish.coefficients()[30].as_rational().unwrap();
    assert!(c30.denom().bits() > 127, "{c30}");
    assert_eq!(c30.denom().to_string().len(), 48);
}

#[test]
fn relu_at_its_kink_is_not_analytic() {
    let err = taylor_poly(Relu, 3).unwrap_err();
    assert!(
        matches!(err, Error::NotAnalytic { ref function, point } if function == "relu" && point.abs() < 1e-300),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("x = 0"), "{message}");
    assert!(message.contains("softplus"), "{message}");
    assert!(message.contains("fit"), "{message}");

    let elu = Elu::new(1.0).unwrap();
    let leaky = LeakyRelu::new(0.1).unwrap();
    let kinked: [&dyn Activation<f64>; 3] = [&elu, &leaky, &Softsign];
    for f in kinked {
        assert!(
            matches!(taylor_poly(f, 3), Err(Error::NotAnalytic { .. })),
            "{}",
            f.name()
        );
    }
    // Away from the kink, the piece that holds there.
    assert_eq!(taylor_poly_at(Relu, 3, 1.0).unwrap().to_string(), "x");
    assert_eq!(taylor_poly_at(Relu, 3, -1.0).unwrap().to_string(), "0");
}

#[test]
fn singular_formulas_are_not_analytic_at_their_singularity() {
    for formula in ["1/x", "sqrt(x)", "log(x)", "x^(1/3)", "exp(1/x)"] {
        let err = taylor_poly_formula(formula, 3, 0.0).unwrap_err();
        assert!(
            matches!(err, Error::NotAnalytic { .. }),
            "{formula}: {err:?}"
        );
    }
    // ... and fine elsewhere.
    let p = taylor_poly_formula("1/x", 2, 1.0).unwrap();
    assert_eq!(p.to_string(), "3 - 3·x + x^2");
}

#[test]
fn malformed_formulas_are_parse_errors() {
    for formula in [
        "",
        "1/(1+exp(-x)",
        "x)",
        "x^^2",
        "x+",
        "2x",
        "exp()",
        "exp",
        "foo(x)",
        "y*x",
        "abs(x)",
        "x # 2",
        "exp(x,2)",
        "1e99999",
        "x\u{00b2}",
    ] {
        match taylor_poly_formula(formula, 3, 0.0) {
            Err(Error::Parse { formula: f, reason }) => {
                assert_eq!(f, formula);
                assert!(!reason.is_empty());
            }
            other => panic!("{formula:?}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn undefined_or_complex_formulas_are_errors_not_panics() {
    assert!(matches!(
        taylor_poly_formula("1/0", 2, 0.0),
        Err(Error::Parse { .. })
    ));
    assert!(matches!(
        taylor_poly_formula("x/(x-x)", 2, 0.0),
        Err(Error::DivisionByZero { .. })
    ));
    assert!(matches!(
        taylor_poly_formula("log(x)", 2, -1.0),
        Err(Error::Symbolic { .. })
    ));
    assert!(matches!(
        taylor_poly_formula("sqrt(x)", 2, -2.0),
        Err(Error::Symbolic { .. })
    ));
}

#[test]
fn absurd_degrees_and_points_are_refused() {
    assert!(matches!(
        taylor_poly(Sigmoid, MAX_DEGREE + 1),
        Err(Error::Degree { requested, .. }) if requested == MAX_DEGREE + 1
    ));
    assert!(matches!(
        taylor_poly(Sigmoid, usize::MAX),
        Err(Error::Degree { .. })
    ));
    for point in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            taylor_poly_at(Sigmoid, 3, point),
            Err(Error::InvalidParameter {
                parameter: "point",
                ..
            })
        ));
    }
    // Degree 0 is the value at the point.
    assert_eq!(taylor_poly(Sigmoid, 0).unwrap().to_string(), "1/2");
}

#[test]
fn the_series_remembers_how_it_was_made() {
    let s = taylor_series_formula("2*tanh(x/2)", 3, -0.5).unwrap();
    assert_eq!(s.function(), "2*tanh(x/2)");
    assert_eq!(s.formula().to_string(), "2*(exp(2*x/2)-1)/(exp(2*x/2)+1)");
    assert_eq!(s.degree(), 3);
    assert_abs_diff_eq!(s.point(), -0.5, epsilon = 1e-300);
    assert_eq!(s.about_point().len(), 4);
    assert!(s.to_string().contains("(x + 1/2)"), "{s}");
}

/// Times of the first (uncached) and cached calls, printed for the record. Run alone, so the
/// cache and Symbolica start cold:
/// `cargo test --test taylor -- --ignored --exact timings --nocapture`.
#[test]
#[ignore = "prints timings; run alone with --ignored --exact timings --nocapture"]
fn timings() {
    use std::hint::black_box;
    use std::time::Instant;
    let start = Instant::now();
    let p5 = taylor_poly(Sigmoid, 5).unwrap();
    let first5 = start.elapsed();
    let start = Instant::now();
    let p30 = taylor_poly(Sigmoid, 30).unwrap();
    let first30 = start.elapsed();
    let start = Instant::now();
    let gelu = taylor_poly(Gelu, 30).unwrap();
    let gelu30 = start.elapsed();
    let start = Instant::now();
    let mish = taylor_poly(Mish, 30).unwrap();
    let mish30 = start.elapsed();
    let start = Instant::now();
    let away = taylor_poly_at(Sigmoid, 30, 0.5).unwrap();
    let away30 = start.elapsed();
    assert_eq!(p30.clone().truncate(5), p5);
    assert_eq!(gelu.coefficients().len(), 31);
    assert_eq!(mish.coefficients().len(), 31);
    assert_eq!(away.coefficients().len(), 31);

    let rounds = 200_000u32;
    let mut cached = Vec::new();
    for degree in [5, 30] {
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(taylor_series(black_box(Sigmoid), degree, 0.0).unwrap());
        }
        let series = start.elapsed() / rounds;
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(taylor_poly(black_box(Sigmoid), degree).unwrap());
        }
        let poly = start.elapsed() / rounds;
        cached.push((degree, series, poly));
    }
    eprintln!("first call, sigmoid degree 5 (includes starting Symbolica): {first5:?}");
    eprintln!("first call, sigmoid degree 30: {first30:?}");
    eprintln!("first call, gelu degree 30: {gelu30:?}");
    eprintln!("first call, mish degree 30: {mish30:?}");
    eprintln!("first call, sigmoid degree 30 at 0.5: {away30:?}");
    for (degree, series, poly) in cached {
        eprintln!(
            "cached, sigmoid degree {degree}: taylor_series {series:?}, taylor_poly {poly:?}"
        );
    }
}

#[test]
fn exact_zero_coefficients_are_zero() {
    let p = taylor_poly(Tanh, 6).unwrap();
    // x^6 is a trailing zero: not stored, so p(±∞) stays ±∞.
    assert_eq!(p.coefficients().len(), 6);
    for k in [0, 2, 4] {
        assert!(p.coefficients()[k].is_zero());
        assert!(
            p.coefficients()[k]
                .as_rational()
                .is_some_and(|r| !r.is_negative())
        );
    }
    assert_eq!(p.degree(), 5);
}

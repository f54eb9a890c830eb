//! Polynomial and coefficient behaviour against independent oracles: naive power sums,
//! hand-computed exact coefficients, finite differences and serde round trips.

use num_bigint::BigInt;
use num_rational::BigRational;
use polyact::{Activation, Coefficient, Exact, Polynomial, presets};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Horner with FMA and the naive power sum differ by a few rounding errors.
const EVAL_TOLERANCE: f64 = 1e-12;

fn naive(coefficients: &[f64], x: f64) -> f64 {
    coefficients
        .iter()
        .enumerate()
        .map(|(k, c)| c * x.powi(k as i32))
        .sum()
}

fn random_polynomial(rng: &mut StdRng, degree: usize) -> Vec<f64> {
    (0..=degree).map(|_| rng.random_range(-2.0..2.0)).collect()
}

#[test]
fn horner_matches_the_power_sum() {
    let mut rng = StdRng::seed_from_u64(7);
    for degree in 0..12 {
        let c = random_polynomial(&mut rng, degree);
        let p = Polynomial::from_f64(&c);
        for _ in 0..50 {
            let x = rng.random_range(-1.5..1.5);
            let want = naive(&c, x);
            assert!(
                (p.eval(x) - want).abs() < EVAL_TOLERANCE,
                "degree {degree} at {x}"
            );
        }
    }
}

#[test]
fn slice_evaluation_matches_scalar_for_every_length() {
    let p = presets::m_sigmoid();
    // Lengths around the kernel's chunk size exercise the vector body and the remainder.
    for len in [0, 1, 7, 31, 32, 33, 64, 100, 1000, 4099] {
        let xs64: Vec<f64> = (0..len)
            .map(|i| -4.0 + 8.0 * i as f64 / len.max(1) as f64)
            .collect();
        let xs32: Vec<f32> = xs64.iter().map(|&x| x as f32).collect();
        let mut out64 = vec![0.0; len];
        let mut out32 = vec![0.0_f32; len];
        p.eval_slice(&xs64, &mut out64);
        p.eval_slice(&xs32, &mut out32);
        for i in 0..len {
            assert!((out64[i] - p.eval(xs64[i])).abs() < EVAL_TOLERANCE);
            assert!((out32[i] - p.eval(xs32[i])).abs() < 4.0 * f32::EPSILON);
        }
    }
}

#[test]
#[should_panic(expected = "lengths differ")]
fn slice_evaluation_rejects_mismatched_lengths() {
    presets::m_tanh().eval_slice(&[1.0_f64, 2.0], &mut [0.0]);
}

#[test]
fn derivative_is_exact_and_matches_finite_differences() {
    let p = presets::m_sigmoid();
    let d = p.differentiate();
    // d/dx (1/2 + 2161/10800 x - 29/9000 x^3 + 1/2700000 x^5)
    assert_eq!(d.to_string(), "2161/10800 - 29/3000·x^2 + 1/540000·x^4");
    for i in -40..=40 {
        let x = f64::from(i) / 10.0;
        let h = 1e-5;
        let fd = (p.eval(x + h) - p.eval(x - h)) / (2.0 * h);
        assert!((d.eval(x) - fd).abs() < 1e-8);
        assert!((Activation::<f64>::derivative(&p, x) - d.eval(x)).abs() < 1e-14);
    }
}

/// Rescaling (β = 0) keeps an exact coefficient exact beside approximate ones.
#[test]
fn rescaling_keeps_exact_coefficients_exact() {
    let p = Polynomial::new(vec![Coefficient::ratio(1, 2), Coefficient::approx(0.25)]);
    let r = p.rescale_input(&Coefficient::ratio(2, 1)).unwrap();
    assert!(
        matches!(r.coefficients()[0].exact(), Some(Exact::Rational(_))),
        "{r}"
    );
    assert_eq!(r.to_string(), "1/2 + 0.125·x");
}

#[test]
fn display_follows_the_documented_form() {
    let cases = [
        (Polynomial::default(), "0"),
        (Polynomial::from_ratios(&[(0, 1), (0, 1)]), "0"),
        (Polynomial::from_ratios(&[(-1, 2), (1, 1)]), "-1/2 + x"),
        (
            Polynomial::from_ratios(&[(0, 1), (-1, 1), (0, 1), (3, 1)]),
            "-x + 3·x^3",
        ),
        (
            Polynomial::new(vec![
                Coefficient::symbolic("log(2)".parse().unwrap(), std::f64::consts::LN_2),
                Coefficient::ratio(1, 2),
            ]),
            "log(2) + 1/2·x",
        ),
        (Polynomial::from_f64(&[0.25, -1.5]), "0.25 - 1.5·x"),
        (
            Polynomial::new(vec![
                Coefficient::symbolic("-1/(6*sqrt(2*pi))".parse().unwrap(), -0.0665),
                Coefficient::symbolic("-1/(6*sqrt(2*pi))".parse().unwrap(), -0.0665),
                Coefficient::symbolic("log(2)-1".parse().unwrap(), -0.307),
                Coefficient::symbolic("1-log(2)".parse().unwrap(), 0.307),
            ]),
            "-1/(6*sqrt(2*pi)) - 1/(6*sqrt(2*pi))·x - (-(log(2)-1))·x^2 + (1-log(2))·x^3",
        ),
    ];
    for (p, want) in cases {
        assert_eq!(p.to_string(), want);
    }
    // A negative rational too small for an f64 (it is -0.0 there) keeps its sign.
    let tiny = BigRational::new(BigInt::from(-1), BigInt::from(10).pow(400));
    let p = Polynomial::new(vec![Coefficient::ratio(1, 1), Coefficient::rational(tiny)]);
    assert_eq!(p.to_string(), format!("1 - 1/1{}·x", "0".repeat(400)));
}

#[test]
fn adjustments_are_exact() {
    let p = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48), (0, 1), (1, 480)]);
    let q = p
        .clone()
        .with_coefficient(0, Coefficient::from_decimal(0.66).unwrap())
        .unwrap()
        .scale_coefficient(1, &Coefficient::ratio(4, 5))
        .truncate(3);
    assert_eq!(q.to_string(), "33/50 + 1/5·x - 1/48·x^3");
    assert_eq!(q.degree(), 3);

    let s = Coefficient::ratio(5, 2);
    let r = p.rescale_input(&s).unwrap();
    assert_eq!(r.coefficients()[3].to_string(), "-1/750"); // -1/48 / (5/2)^3
    for i in -10..=10 {
        let x = f64::from(i) / 2.0;
        assert!((r.eval(x) - p.eval(x / 2.5)).abs() < EVAL_TOLERANCE);
    }
    assert!(p.rescale_input(&Coefficient::zero()).is_err());
}

#[test]
fn domain_is_validated_and_travels() {
    let p = presets::m_tanh().with_domain(-2.0..=2.0).unwrap();
    assert_eq!(p.domain(), Some(polyact::Interval::new(-2.0, 2.0).unwrap()));
    assert_eq!(
        p.differentiate().domain(),
        Some(polyact::Interval::new(-2.0, 2.0).unwrap())
    );
    let stretched = p.rescale_input(&Coefficient::integer(-3)).unwrap();
    assert_eq!(
        stretched.domain(),
        Some(polyact::Interval::new(-6.0, 6.0).unwrap())
    );
    for (lo, hi) in [
        (1.0, 1.0),
        (2.0, -2.0),
        (f64::NAN, 1.0),
        (0.0, f64::INFINITY),
    ] {
        assert!(
            presets::m_tanh().with_domain(lo..=hi).is_err(),
            "[{lo}, {hi}]"
        );
    }
}

#[test]
fn serde_round_trip_keeps_exact_values() {
    let huge = BigRational::new(
        BigInt::parse_bytes(b"123456789012345678901234567890123456789", 10).unwrap(),
        BigInt::parse_bytes(b"987654321098765432109876543210987654321", 10).unwrap(),
    );
    let p = Polynomial::new(vec![
        Coefficient::symbolic("log(2)".parse().unwrap(), std::f64::consts::LN_2),
        Coefficient::rational(huge.clone()),
        Coefficient::approx(-0.123456789),
        Coefficient::ratio(-1, 192),
    ])
    .with_domain(-3.0..=3.0)
    .unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let back: Polynomial = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.coefficients()[1].exact(), Some(&Exact::Rational(huge)));
    assert!(
        serde_json::from_str::<Polynomial>(r#"{"coefficients":[{"value":1.0,"rational":"x/2"}]}"#)
            .is_err()
    );
}

#[test]
fn encrypted_cost_matches_hand_counts() {
    // (degree, ciphertext products, depth) for the monomial xᵈ, counted by hand: nothing | x² |
    // x², x³ = x²·x | x², x⁴ = x²·x² | x², x³, x⁵ = x³·x² | x², x⁴, x⁸ (repeated squaring).
    let expected = [
        (0, 0, 0),
        (1, 0, 0),
        (2, 1, 1),
        (3, 2, 2),
        (4, 2, 2),
        (5, 3, 3),
        (8, 3, 3),
    ];
    for (degree, multiplications, depth) in expected {
        let mut c = vec![0.0; degree + 1];
        c[degree] = 1.0;
        let cost = Polynomial::from_f64(&c).cost();
        assert_eq!(
            (cost.degree, cost.multiplications, cost.depth),
            (degree, multiplications, depth),
            "degree {degree}"
        );
        assert_eq!(cost.horner_multiplications, degree.saturating_sub(1));
    }
}

#[test]
fn presets_match_the_published_forms() {
    for i in -50..=50 {
        let x = f64::from(i) / 10.0;
        let m_sigmoid = 0.5 + (x.powi(5) - 8700.0 * x.powi(3) + 540250.0 * x) / 2_700_000.0;
        let m_relu = 0.66 + x / 2.0 + 2.0 * x * x / 17.0 + x.powi(4) / 600.0;
        let m_tanh = 23.0 * x / 25.0 - x.powi(3) / 10.0 + 7.0 * x.powi(5) / 25.0;
        assert!((presets::m_sigmoid().eval(x) - m_sigmoid).abs() < EVAL_TOLERANCE);
        assert!((presets::m_relu().eval(x) - m_relu).abs() < EVAL_TOLERANCE);
        assert!((presets::m_tanh().eval(x) - m_tanh).abs() < 1e-10);
    }
}

#[test]
fn decimals_are_read_as_written() {
    let cases = [
        (0.66, "33/50"),
        (-1.25, "-5/4"),
        (1e-7, "1/10000000"),
        (3.0, "3"),
        (0.0, "0"),
    ];
    for (x, want) in cases {
        assert_eq!(Coefficient::from_decimal(x).unwrap().to_string(), want);
    }
    assert!(Coefficient::from_decimal(f64::NAN).is_none());
    assert!(Coefficient::from_decimal(f64::INFINITY).is_none());
}

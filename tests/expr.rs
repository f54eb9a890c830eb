//! `Expr`: parse ⇄ print ⇄ engine round trips, limits, and polynomials with closed-form
//! coefficients expanded again.

use num_bigint::BigInt;
use num_rational::BigRational;
use polyact::expr::{Expr, MAX_DEPTH, Node};
use polyact::{Coefficient, Error, Exact, Formula};

/// Values agree to this relative tolerance (independent f64 evaluations of one expression).
const VALUE_TOLERANCE: f64 = 1e-12;

fn parse(text: &str) -> Expr {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` does not parse: {e}"))
}

#[test]
fn print_and_parse_are_inverse() {
    for text in [
        "1/(1+exp(-x))",
        "x/2*(1+erf(x/sqrt(2)))",
        "x*((1+exp(x))^2-1)/((1+exp(x))^2+1)",
        "-1/(6*sqrt(2*pi))",
        "e^-x^2",
        "x^-1-2*x^(1/3)",
        "log(1+e)-x*(-x)",
        "tanh(softplus(x))*sigmoid(-x)",
        "2^x^2/(x-1/2)^3",
        "-(x*x)+-x*x",
        "sin(x)^2+cos(x)^2-erfc(x)",
    ] {
        let e = parse(text);
        let printed = e.to_string();
        assert_eq!(parse(&printed), e, "{text} printed as {printed}");
        for x in [-1.3, 0.25, 2.0] {
            let (a, b) = (e.eval(x), parse(&printed).eval(x));
            assert!(
                (a - b).abs() <= VALUE_TOLERANCE * a.abs().max(1.0) || (a.is_nan() && b.is_nan()),
                "{text} at {x}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn long_chains_give_a_value_and_deep_nesting_an_error() {
    for op in ["+", "-", "*", "/"] {
        let text = vec!["x"; 5000].join(op);
        let e = parse(&text);
        assert!(e.depth() <= 3);
        assert_eq!(parse(&e.to_string()), e);
    }
    let deep = format!("{}x{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(deep.parse::<Expr>(), Err(Error::Parse { .. })));
    let just_fits = format!(
        "{}x{}",
        "exp(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(parse(&just_fits).depth(), MAX_DEPTH);
}

#[test]
fn error_messages_do_not_echo_huge_inputs() {
    let huge = format!("{}#", "x+".repeat(50_000));
    let message = huge.parse::<Expr>().unwrap_err().to_string();
    assert!(message.len() < 1_000, "{} bytes", message.len());
    assert!(message.contains("unexpected character"), "{message}");
}

#[test]
fn serde_uses_the_text_and_validates() {
    let formula = Formula::Analytic(parse("x/(1+x^2)"));
    let Formula::Analytic(e) = formula else {
        unreachable!()
    };
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(json, r#""x/(1+x^2)""#);
    assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
    let deep = format!("\"{}x{}\"", "(".repeat(1000), ")".repeat(1000));
    assert!(serde_json::from_str::<Expr>(&deep).is_err());
}

#[test]
fn nodes_can_be_inspected() {
    let e = parse("3/4 + x");
    let Node::Sum(terms) = e.node() else {
        panic!("{e:?}")
    };
    assert_eq!(
        terms[0].as_number(),
        Some(&BigRational::new(BigInt::from(3), BigInt::from(4)))
    );
    assert!(matches!(terms[1].node(), Node::X));
}

#[test]
fn coefficients_hold_expressions_and_do_arithmetic() {
    let ln2 = Coefficient::symbolic(parse("log(2)"), std::f64::consts::LN_2);
    let half = Coefficient::ratio(1, 2);
    let sum = &ln2 + &half;
    assert_eq!(sum.to_string(), "log(2)+1/2");
    assert!((sum.to_f64() - (std::f64::consts::LN_2 + 0.5)).abs() < 1e-15);
    let product = &ln2 * &half;
    assert_eq!(product.to_string(), "log(2)*(1/2)");
    assert_eq!((-&ln2).to_string(), "-log(2)");
    assert_eq!((&ln2 - &ln2).to_string(), "log(2)-log(2)");
    assert!(matches!(
        ln2.checked_div(&Coefficient::zero()),
        Err(Error::DivisionByZero { .. })
    ));
    // The expression behind it says the same.
    assert!(matches!(
        Expr::x().checked_div(Expr::integer(0)),
        Err(Error::DivisionByZero { .. })
    ));
    let Some(Exact::Symbolic(e)) = ln2.exact() else {
        panic!("{ln2:?}")
    };
    assert_eq!(e, &parse("log(2)"));
    // Serialised closed forms are read back as expressions.
    let json = serde_json::to_string(&ln2).unwrap();
    assert_eq!(serde_json::from_str::<Coefficient>(&json).unwrap(), ln2);
    let bad = r#"{"value":1.0,"symbolic":"log(x)"}"#;
    assert!(serde_json::from_str::<Coefficient>(bad).is_err());
}

#[test]
fn num_traits_zero_and_one() {
    use num_traits::{One, Zero};
    let sum: Coefficient = [1, 2, 3]
        .into_iter()
        .map(Coefficient::integer)
        .fold(Coefficient::zero(), |a, b| a + b);
    assert_eq!(sum.to_string(), "6");
    assert!(<Coefficient as Zero>::is_zero(&(sum.clone() - sum)));
    assert_eq!(<Coefficient as One>::one().to_string(), "1");
}

#[cfg(feature = "symbolica")]
mod engine {
    use super::*;
    use polyact::{Polynomial, taylor_poly_at, taylor_series, taylor_series_formula};

    /// Closed forms coming out of the engine parse back and evaluate to their values.
    #[test]
    fn engine_output_round_trips() {
        let s = taylor_series_formula("x/2*(1+erf(x/sqrt(2)))", 6, 0.5).unwrap();
        for c in s.about_point().iter().chain(s.polynomial().coefficients()) {
            let e = c.to_expr().unwrap();
            assert_eq!(parse(&e.to_string()), e);
            let value = e.eval(0.0);
            assert!(
                (value - c.to_f64()).abs() <= 1e-9 * c.to_f64().abs().max(1e-12),
                "{e}: {value} vs {}",
                c.to_f64()
            );
        }
    }

    /// A polynomial with closed-form coefficients is itself a formula that expands again to
    /// the same polynomial.
    #[test]
    fn a_polynomial_with_closed_forms_expands_again() {
        let p: Polynomial = taylor_poly_at(polyact::Gelu, 6, 0.0).unwrap();
        assert!(
            p.coefficients()
                .iter()
                .any(|c| matches!(c.exact(), Some(Exact::Symbolic(_))))
        );
        let again = taylor_series(&p, 6, 0.0).unwrap();
        for (a, b) in p
            .coefficients()
            .iter()
            .zip(again.polynomial().coefficients())
        {
            assert!(
                (a.to_f64() - b.to_f64()).abs() <= 1e-15 * a.to_f64().abs().max(1e-300),
                "{a} vs {b}"
            );
        }
        // And at another point, where the closed forms grow.
        let q = taylor_poly_at(polyact::Softplus, 4, 0.5).unwrap();
        let again = taylor_series(&q, 4, 0.5).unwrap();
        for (a, b) in q
            .coefficients()
            .iter()
            .zip(again.polynomial().coefficients())
        {
            assert!(
                (a.to_f64() - b.to_f64()).abs() <= 1e-12 * a.to_f64().abs().max(1e-12),
                "{a} vs {b}"
            );
        }
    }
}

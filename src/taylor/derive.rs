//! One derivation: a formula, a point and a degree in; exact coefficients out.
//!
//! The formula is rewritten for the engine ([`super::formula`]), checked for branch points the
//! engine's power rules would hide (`sqrt(x^2)` is `|x|`, not `x`), and expanded by
//! [`Engine`](super::convert::Engine) on the contained worker thread ([`super::contain`]).

use num_rational::BigRational;
use num_traits::Zero;

use super::convert::{Engine, Failure};
use super::{contain, formula};
use crate::expr::{Expr, Function, Node};
use crate::{Coefficient, Error, Result};

/// Binary precision used to start evaluating closed-form coefficients to `f64`. Away from 0
/// the shift to powers of `x` cancels up to `degree · (log2|a| + 1)` bits, which
/// [`precision_for`] adds; evaluation then doubles it until the value settles.
const EVAL_PRECISION: u32 = 256;

/// A Taylor expansion: coefficients in powers of `(x - a)`, and in ascending powers of `x`.
#[derive(Debug, Clone)]
pub(crate) struct Expansion {
    /// `c_k`, the coefficient of `(x - a)^k`, for `k = 0..=degree`.
    pub(crate) about_point: Vec<Coefficient>,
    /// `d_j`, the coefficient of `x^j` of the same polynomial, for `j = 0..=degree`.
    pub(crate) ascending: Vec<Coefficient>,
}

/// Expands `formula` (already rewritten by [`formula::lower`]) at the exact rational `point`
/// up to `(x - a)^degree`.
///
/// `function` names the function in errors; `point_value` is the point as the caller gave it.
pub(crate) fn expand(
    function: &str,
    formula: &Expr,
    point: &BigRational,
    point_value: f64,
    degree: usize,
) -> Result<Expansion> {
    let request = Request {
        function: function.to_owned(),
        formula: formula.clone(),
        point: point.clone(),
        point_value,
        degree,
    };
    let what = format!(
        "`{}` at x = {point_value} (degree {degree})",
        crate::expr::abbreviate(function)
    );
    contain::contained(&what, move || request.derive())
}

/// One derivation, run on the worker thread.
struct Request {
    function: String,
    formula: Expr,
    point: BigRational,
    point_value: f64,
    degree: usize,
}

impl Request {
    fn not_analytic(&self) -> Error {
        Error::NotAnalytic {
            function: crate::expr::abbreviate(&self.function),
            point: self.point_value,
        }
    }

    fn derive(self) -> Result<Expansion> {
        let text = crate::expr::abbreviate(&self.formula.to_string());
        let mut engine = Engine::new(&self.point, precision_for(&self.point, self.degree), text)?;
        let mut branches = Vec::new();
        branch_arguments(&self.formula, &mut branches);
        for u in branches {
            if engine.vanishes_or_pole(u)? {
                return Err(self.not_analytic());
            }
        }
        match engine.expand(&self.formula, self.degree) {
            Ok((about_point, ascending)) => Ok(Expansion {
                about_point,
                ascending,
            }),
            Err(Failure::NotAnalytic) => Err(self.not_analytic()),
            Err(Failure::Error(e)) => Err(e),
        }
    }
}

/// The arguments at whose zeros `e` branches: of `sqrt` and `log`, and the bases of
/// non-integer or symbolic powers. Recursion is bounded by the depth of `e`.
fn branch_arguments<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e.node() {
        Node::Number(_) | Node::X | Node::Constant(_) => {}
        Node::Neg(u) => branch_arguments(u, out),
        Node::Call(f, u) => {
            if matches!(f, Function::Sqrt | Function::Log) && u.contains_x() {
                out.push(u);
            }
            branch_arguments(u, out);
        }
        Node::Sum(terms) => terms.iter().for_each(|t| branch_arguments(t, out)),
        Node::Product(factors) => factors.iter().for_each(|f| branch_arguments(f.expr(), out)),
        Node::Pow(base, exponent) => {
            let integer = exponent.as_number().is_some_and(|q| q.is_integer());
            if !integer && base.contains_x() {
                out.push(base);
            }
            branch_arguments(base, out);
            branch_arguments(exponent, out);
        }
    }
}

/// Working precision for a point and degree: enough bits to survive the cancellation of
/// `Σ c_k C(k, j) (-a)^(k-j)` and keep more than `f64`'s 53.
fn precision_for(point: &BigRational, degree: usize) -> u32 {
    if point.is_zero() {
        return EVAL_PRECISION;
    }
    let magnitude_bits = point.numer().bits().saturating_sub(point.denom().bits()) + 2;
    let extra = magnitude_bits.saturating_mul(degree as u64);
    EVAL_PRECISION.saturating_add(u32::try_from(extra).unwrap_or(u32::MAX))
}

/// `formula` rewritten for the engine (see [`formula::lower`]).
pub(crate) fn lower(formula: &Expr) -> Result<Expr> {
    formula::lower(formula)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_text(formula: &str, point: (i64, i64), degree: usize) -> Result<Expansion> {
        let point = BigRational::new(point.0.into(), point.1.into());
        let value = num_traits::ToPrimitive::to_f64(&point).unwrap_or(f64::NAN);
        let lowered = lower(&formula.parse()?)?;
        expand(formula, &lowered, &point, value, degree)
    }

    #[test]
    fn sigmoid_at_zero_is_rational() {
        let e = expand_text("1/(1+exp(-x))", (0, 1), 5).unwrap();
        let text: Vec<String> = e.ascending.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["1/2", "1/4", "0", "-1/48", "0", "1/480"]);
    }

    #[test]
    fn gelu_prints_square_roots_readably() {
        let e = expand_text("x/2*(1+erf(x/sqrt(2)))", (0, 1), 4).unwrap();
        assert_eq!(e.ascending[2].to_string(), "1/sqrt(2*pi)");
        assert_eq!(e.ascending[4].to_string(), "-1/(6*sqrt(2*pi))");
        let exact = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((e.ascending[2].to_f64() - exact).abs() < 1e-16);
    }

    /// Closed forms are expressions whose value, computed independently in f64, is the
    /// coefficient's value, and which parse back to themselves.
    #[test]
    fn closed_forms_round_trip() {
        for (formula, point) in [
            ("x/2*(1+erf(x/sqrt(2)))", (0, 1)),
            ("log(1+exp(x))", (0, 1)),
            ("1/(1+exp(-x))", (1, 2)),
            ("x/2*(1+erf(x/sqrt(2)))", (-3, 2)),
        ] {
            let e = expand_text(formula, point, 6).unwrap();
            let closed: Vec<&Coefficient> = e
                .about_point
                .iter()
                .chain(&e.ascending)
                .filter(|c| c.as_rational().is_none())
                .collect();
            assert!(!closed.is_empty());
            for c in closed {
                let expr = c.to_expr().unwrap();
                assert_eq!(expr.to_string().parse::<Expr>().unwrap(), expr);
                let again = expr.eval(0.0);
                assert!(
                    (c.to_f64() - again).abs() <= 1e-9 * c.to_f64().abs().max(1e-300),
                    "{expr}: {} evaluates to {again}",
                    c.to_f64()
                );
            }
        }
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_next_job_runs() {
        let err =
            contain::contained("a test job", || -> Result<()> { panic!("boom") }).unwrap_err();
        assert!(matches!(err, Error::Symbolic { ref reason } if reason.contains("boom")));
        assert!(expand_text("exp(x)", (0, 1), 3).is_ok());
    }

    #[test]
    fn poles_roots_and_logs_are_not_analytic() {
        for formula in [
            "1/x",
            "sqrt(x)",
            "log(x)",
            "x^(1/3)",
            "log(1/x)",
            "sqrt(x^2)",
        ] {
            let err = expand_text(formula, (0, 1), 3).unwrap_err();
            assert!(matches!(err, Error::NotAnalytic { .. }), "{formula}: {err}");
        }
    }

    #[test]
    fn complex_values_are_refused() {
        let err = expand_text("log(x)", (-1, 1), 3).unwrap_err();
        assert!(matches!(err, Error::Symbolic { .. }), "{err}");
    }
}

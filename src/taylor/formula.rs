//! Bringing a formula into the form the series engine expands exactly and quickly, within a
//! size budget.
//!
//! * Functions the engine lacks, or expands slowly or inexactly, become `exp` forms
//!   (`tanh(u)` → `(exp(2*u)-1)/(exp(2*u)+1)`, `sigmoid(u)` → `1/(1+exp(-u))`, …); what is
//!   left uses `exp`, `log`, `sqrt`, `erf`, `sin`, `cos`, `pi` and `e` only.
//! * Powers of numbers are computed when small (`9^9` is `387420489`) and refused when their
//!   result would be huge (`9^9^9`); chains of powers whose exponents multiply beyond
//!   [`MAX_POWER`] (`((x^1000)^1000)^1000`) are refused too: [`Error::TooComplex`].
//! * The rewritten tree obeys the [expression limits](crate::expr#limits).

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::expr::{Constant, Expr, Factor, Function, Node};
use crate::{Error, Result};

/// The largest total exponent of `x` (product of nested exponents) accepted.
pub(crate) const MAX_POWER: f64 = 1.0e6;
/// The largest power of a number computed, in bits of the result.
const MAX_POWER_BITS: f64 = (1 << 20) as f64;

/// `e` rewritten into the engine's functions, with its degree bound.
pub(crate) fn lower(e: &Expr) -> Result<Expr> {
    Ok(Lowered::of(e)?.expr)
}

/// A rewritten expression and a bound on how large a power of `x` it holds (a polynomial of
/// degree `d` has bound `d`).
struct Lowered {
    expr: Expr,
    power: f64,
}

fn too_complex(reason: String) -> Error {
    Error::TooComplex { reason }
}

fn int(n: i64) -> Expr {
    Expr::integer(n)
}

impl Lowered {
    fn plain(expr: Expr) -> Lowered {
        Lowered { expr, power: 1.0 }
    }

    /// Recursion is bounded by the depth of `e`, itself at most [`crate::expr::MAX_DEPTH`].
    fn of(e: &Expr) -> Result<Lowered> {
        match e.node() {
            Node::Number(_) | Node::X | Node::Constant(_) => Ok(Lowered::plain(e.clone())),
            Node::Neg(u) => {
                let u = Lowered::of(u)?;
                Ok(Lowered {
                    expr: u.expr.checked_neg()?,
                    power: u.power,
                })
            }
            Node::Sum(terms) => {
                let mut power: f64 = 1.0;
                let mut lowered = Vec::with_capacity(terms.len());
                for term in terms {
                    let t = Lowered::of(term)?;
                    power = power.max(t.power);
                    lowered.push(t.expr);
                }
                Ok(Lowered {
                    expr: Expr::sum(lowered)?,
                    power,
                })
            }
            Node::Product(factors) => product(factors),
            Node::Pow(base, exponent) => power(base, exponent),
            Node::Call(f, u) => {
                let u = Lowered::of(u)?;
                Ok(Lowered {
                    expr: call(*f, u.expr)?,
                    power: u.power,
                })
            }
        }
    }
}

fn product(factors: &[Factor]) -> Result<Lowered> {
    let mut power: f64 = 0.0;
    let mut product = int(1);
    for factor in factors {
        let f = Lowered::of(factor.expr())?;
        power += f.power;
        product = match factor {
            Factor::Times(_) => product.checked_mul(f.expr)?,
            Factor::Over(_) => product.checked_div(f.expr)?,
        };
    }
    check_power(power)?;
    Ok(Lowered {
        expr: product,
        power,
    })
}

fn check_power(power: f64) -> Result<()> {
    if power > MAX_POWER {
        return Err(too_complex(format!(
            "the formula holds powers of x up to about x^{power:.3e}; at most x^{MAX_POWER:e} \
             are accepted"
        )));
    }
    Ok(())
}

fn power(base: &Expr, exponent: &Expr) -> Result<Lowered> {
    let base = Lowered::of(base)?;
    let exponent = Lowered::of(exponent)?;
    let Some(q) = exponent.expr.as_number().cloned() else {
        // A symbolic exponent (`2^x`, `x^x`): the engine's exp/log forms; no power bound.
        return Ok(Lowered {
            power: base.power.max(exponent.power),
            expr: base.expr.checked_pow(exponent.expr)?,
        });
    };
    let magnitude = q.abs().to_f64().unwrap_or(f64::INFINITY);
    if let Some(b) = base.expr.as_number() {
        return number_power(b, &q, magnitude);
    }
    if q.denom() > &BigInt::from(1000) {
        return Err(too_complex(format!(
            "the exponent {} has a denominator above 1000",
            crate::expr::abbreviate(&q.to_string())
        )));
    }
    let power = base.power * magnitude.max(1.0);
    check_power(power)?;
    Ok(Lowered {
        expr: base.expr.checked_pow(Expr::number(q))?,
        power,
    })
}

/// `b^q` for numbers: computed when `q` is an integer and the result small, kept as a power
/// (a root) otherwise, refused when huge.
fn number_power(b: &BigRational, q: &BigRational, magnitude: f64) -> Result<Lowered> {
    let bits = (b.numer().bits().max(b.denom().bits()).max(1)) as f64;
    if bits * magnitude > MAX_POWER_BITS {
        return Err(too_complex(format!(
            "a power of a number in the formula would have about {:.3e} bits; at most {} are \
             computed",
            bits * magnitude,
            MAX_POWER_BITS
        )));
    }
    if b.is_zero() && q.is_negative() {
        return Err(Error::DivisionByZero {
            operation: "a negative power of 0 in the formula",
        });
    }
    if q.is_integer() {
        let n = q.numer().to_i32().unwrap_or(0);
        let value = if n >= 0 {
            num_traits::pow(b.clone(), n.unsigned_abs() as usize)
        } else {
            num_traits::pow(b.recip(), n.unsigned_abs() as usize)
        };
        return Ok(Lowered::plain(Expr::number(value)));
    }
    let expr = Expr::number(b.clone()).checked_pow(Expr::number(q.clone()))?;
    Ok(Lowered::plain(expr))
}

/// `f(u)` in the engine's functions.
fn call(f: Function, u: Expr) -> Result<Expr> {
    let exp = |u: Expr| Expr::call(Function::Exp, u);
    Ok(match f {
        Function::Exp | Function::Log | Function::Sqrt | Function::Erf => Expr::call(f, u)?,
        Function::Sin | Function::Cos => Expr::call(f, u)?,
        Function::Erfc => int(1).checked_sub(Expr::call(Function::Erf, u)?)?,
        Function::Tan => {
            Expr::call(Function::Sin, u.clone())?.checked_div(Expr::call(Function::Cos, u)?)?
        }
        // The exp forms keep coefficients rational and the expansion fast.
        Function::Tanh => {
            let e2u = exp(int(2).checked_mul(u)?)?;
            e2u.clone()
                .checked_sub(int(1))?
                .checked_div(e2u.checked_add(int(1))?)?
        }
        Function::Sinh => exp(u.clone())?
            .checked_sub(exp(u.checked_neg()?)?)?
            .checked_div(int(2))?,
        Function::Cosh => exp(u.clone())?
            .checked_add(exp(u.checked_neg()?)?)?
            .checked_div(int(2))?,
        Function::Sigmoid => int(1).checked_div(int(1).checked_add(exp(u.checked_neg()?)?)?)?,
        Function::Softplus => Expr::call(Function::Log, int(1).checked_add(exp(u)?)?)?,
        // `Function` is non-exhaustive for users, not for this crate: a new function must be
        // given its form here.
    })
}

/// The exact value of `e` at the rational `a`, when `e` is a rational function of `x` with
/// rational coefficients (no constants or functions), computed within a size budget.
pub(crate) fn rational_value(e: &Expr, a: &BigRational) -> Option<BigRational> {
    const MAX_BITS: u64 = 4096;
    let small = |r: BigRational| (r.numer().bits() + r.denom().bits() <= MAX_BITS).then_some(r);
    match e.node() {
        Node::Number(r) => small(r.clone()),
        Node::X => small(a.clone()),
        Node::Constant(_) | Node::Call(..) => None,
        Node::Neg(u) => rational_value(u, a).map(|r| -r),
        Node::Sum(terms) => terms.iter().try_fold(BigRational::zero(), |acc, t| {
            small(acc + rational_value(t, a)?)
        }),
        Node::Product(factors) => factors.iter().try_fold(BigRational::one(), |acc, f| {
            let v = rational_value(f.expr(), a)?;
            match f {
                Factor::Times(_) => small(acc * v),
                Factor::Over(_) if v.is_zero() => None,
                Factor::Over(_) => small(acc / v),
            }
        }),
        Node::Pow(base, exponent) => {
            let b = rational_value(base, a)?;
            let n = exponent.as_number()?;
            let n = n.is_integer().then(|| n.numer().to_i32()).flatten()?;
            if b.is_zero() && n < 0 {
                return None;
            }
            let bits =
                (b.numer().bits() + b.denom().bits()).saturating_mul(n.unsigned_abs() as u64);
            if bits > MAX_BITS {
                return None;
            }
            let b = if n < 0 { b.recip() } else { b };
            small(num_traits::pow(b, n.unsigned_abs() as usize))
        }
    }
}

/// Whether `e` is the constant `e` (printed `e`), for the engine's `exp(1)`.
pub(crate) fn is_euler(e: &Expr) -> bool {
    matches!(e.node(), Node::Constant(Constant::E))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(text: &str) -> Result<String> {
        Ok(lower(&text.parse()?)?.to_string())
    }

    #[test]
    fn functions_the_engine_lacks_are_rewritten() {
        assert_eq!(lowered("tanh(x)").unwrap(), "(exp(2*x)-1)/(exp(2*x)+1)");
        assert_eq!(lowered("sigmoid(x)").unwrap(), "1/(1+exp(-x))");
        assert_eq!(lowered("softplus(x)").unwrap(), "log(1+exp(x))");
        assert_eq!(lowered("erfc(x)").unwrap(), "1-erf(x)");
        assert_eq!(lowered("2*tanh(0.5*x)").unwrap(), "2*(exp(x)-1)/(exp(x)+1)");
    }

    #[test]
    fn powers_are_budgeted() {
        assert_eq!(lowered("2^10*x").unwrap(), "1024*x");
        assert_eq!(lowered("9^9").unwrap(), "387420489");
        assert!(matches!(lowered("9^9^9"), Err(Error::TooComplex { .. })));
        assert!(matches!(
            lowered("((x^1000)^1000)^1000"),
            Err(Error::TooComplex { .. })
        ));
        assert!(matches!(
            lowered("x^(1/100000)"),
            Err(Error::TooComplex { .. })
        ));
        assert!(matches!(lowered("0^-1"), Err(Error::DivisionByZero { .. })));
        assert_eq!(lowered("2^(1/2)").unwrap(), "2^(1/2)");
    }

    #[test]
    fn rational_values() {
        let e: Expr = "(x^2 - 1)/(2*x) + 3".parse().unwrap();
        let a = BigRational::new(2.into(), 1.into());
        assert_eq!(
            rational_value(&e, &a),
            Some(BigRational::new(15.into(), 4.into()))
        );
        assert_eq!(rational_value(&"exp(x)".parse().unwrap(), &a), None);
        assert_eq!(rational_value(&"1/(x-2)".parse().unwrap(), &a), None);
    }
}

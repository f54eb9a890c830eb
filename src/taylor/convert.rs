//! Expressions to Symbolica atoms and back: the one file of polyact that names Symbolica.
//!
//! [`Engine`] holds one derivation's view of Symbolica: it converts an [`Expr`] into atoms,
//! asks Symbolica for the series, brings it to powers of `x`, and converts every coefficient
//! back into an exact [`Coefficient`] (a rational, or a closed-form [`Expr`] with its `f64`
//! value evaluated to full accuracy). It must run on the contained worker thread
//! ([`super::contain`]).
//!
//! Far from 0, `exp(u)` with `u(a) = q` a rational of magnitude above [`SPLIT_EXPONENT`] is
//! written `exp(u - q) · s^∓1`, where the fresh symbol `s` stands for `exp(-|q|)`: Symbolica
//! then works with rational functions of `s` of low degree instead of polynomials in `e` of
//! degree `|q|` (sigmoid at −300 took over ten minutes that way), and `s` is put back as
//! `exp(-|q|)` in closed forms and evaluated as a number, which may underflow to 0 (sigmoid at
//! −1e20).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use symbolica::atom::{Atom, AtomCore, AtomView, FunctionBuilder, SeriesError, Symbol};
use symbolica::coefficient::Coefficient as SymbolicaNumber;
use symbolica::domains::float::{Float, RealLike};
use symbolica::domains::integer::Integer;
use symbolica::domains::rational::Rational;
use symbolica::{symbol, try_parse};

use super::formula::rational_value;
use crate::expr::{Constant, Expr, Factor, Function, MAX_DEPTH, Node};
use crate::{Coefficient, Error, Result};

/// `exp(u)` is split when `|u(a)|` exceeds this.
pub(crate) const SPLIT_EXPONENT: i64 = 8;
/// The most binary precision spent to evaluate one closed form to `f64` accuracy.
const MAX_PRECISION: u32 = 1 << 16;
/// Below `exp(-this)` the stand-in `s` is evaluated as 0 (far below `f64`'s range).
const UNDERFLOW_EXPONENT: i64 = 1_000_000_000;

/// Whether Symbolica accepts a licence key (from `SYMBOLICA_LICENSE`): only then does it take
/// no per-user permit. A key it rejects leaves it restricted, so the permit must be waited for.
pub(crate) fn is_licensed() -> bool {
    symbolica::license::LicenseManager::is_licensed()
}

/// Keeps Symbolica from installing a global `tracing` subscriber that writes to stdout.
pub(crate) fn keep_logging_off() {
    symbolica::GLOBAL_SETTINGS
        .initialize_tracing
        .store(false, Ordering::Relaxed);
}

/// Makes Symbolica start (and print its banner, if it prints one) now, on this thread.
pub(crate) fn start_symbolica() {
    let _ = symbol!("x");
}

/// Why a series could not be produced.
pub(crate) enum Failure {
    /// No Taylor series at the point (pole, root, logarithm, essential singularity).
    NotAnalytic,
    /// Anything else, as an error.
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

type Attempt<T> = std::result::Result<T, Failure>;

/// One derivation's conversion context (see the module docs).
pub(crate) struct Engine {
    x: Symbol,
    erf: Symbol,
    point: BigRational,
    point_atom: Atom,
    /// `(|q|, s)`: the symbol `s` stands for `exp(-|q|)`.
    stand_ins: Vec<(BigRational, Symbol)>,
    /// Binary precision to start evaluating closed forms with.
    precision: u32,
    /// Text for error messages: the formula as given.
    formula: String,
}

impl Engine {
    /// A context for expansions at `point`. Call on the worker thread only.
    pub(crate) fn new(point: &BigRational, precision: u32, formula: String) -> Result<Engine> {
        let unknown = |reason: String| Error::Symbolic {
            reason: format!("Symbolica does not know the function erf: {reason}"),
        };
        let parsed = try_parse!("erf(x)").map_err(unknown)?;
        let erf = match parsed.as_atom_view() {
            AtomView::Fun(f) => f.get_symbol(),
            other => return Err(unknown(other.to_string())),
        };
        Ok(Engine {
            x: symbol!("x"),
            erf,
            point: point.clone(),
            point_atom: Atom::num(rational(point)),
            stand_ins: Vec::new(),
            precision,
            formula,
        })
    }

    /// `e` as an atom. Recursion is bounded by the depth of `e`.
    fn atom(&mut self, e: &Expr) -> Result<Atom> {
        Ok(match e.node() {
            Node::Number(r) => Atom::num(rational(r)),
            Node::X => Atom::var(self.x),
            Node::Constant(Constant::Pi) => Atom::var(Symbol::PI),
            Node::Constant(Constant::E) => Atom::var(Symbol::E),
            Node::Neg(u) => -self.atom(u)?,
            Node::Sum(terms) => {
                let atoms = terms
                    .iter()
                    .map(|t| self.atom(t))
                    .collect::<Result<Vec<_>>>()?;
                Atom::add_many(atoms.iter())
            }
            Node::Product(factors) => {
                let mut above = Vec::new();
                let mut below = Vec::new();
                for f in factors {
                    match f {
                        Factor::Times(e) => above.push(self.atom(e)?),
                        Factor::Over(e) => below.push(self.atom(e)?),
                    }
                }
                let numerator = Atom::mul_many(above.iter());
                if below.is_empty() {
                    numerator
                } else {
                    let denominator = Atom::mul_many(below.iter());
                    if denominator.is_zero() {
                        return Err(Error::DivisionByZero {
                            operation: "the formula divides by an expression that is 0",
                        });
                    }
                    numerator / denominator
                }
            }
            Node::Pow(base, exponent) => self.atom(base)?.pow(self.atom(exponent)?),
            Node::Call(f, u) => self.call(*f, u)?,
        })
    }

    fn call(&mut self, f: Function, u: &Expr) -> Result<Atom> {
        let symbol = match f {
            Function::Exp => return self.exp(u),
            Function::Log => Symbol::LOG,
            Function::Sqrt => Symbol::SQRT,
            Function::Sin => Symbol::SIN,
            Function::Cos => Symbol::COS,
            Function::Erf => self.erf,
            other => {
                return Err(Error::Symbolic {
                    reason: format!(
                        "internal: `{}` reached the engine unrewritten",
                        other.name()
                    ),
                });
            }
        };
        let argument = self.atom(u)?;
        Ok(FunctionBuilder::new(symbol).add_arg(&argument).finish())
    }

    /// `exp(u)`, split far from 0 (see the module docs).
    fn exp(&mut self, u: &Expr) -> Result<Atom> {
        let argument = self.atom(u)?;
        let exp = |a: &Atom| FunctionBuilder::new(Symbol::EXP).add_arg(a).finish();
        let Some(q) = rational_value(u, &self.point)
            .filter(|q| q.abs() > BigRational::from_integer(SPLIT_EXPONENT.into()))
        else {
            return Ok(exp(&argument));
        };
        let magnitude = q.abs();
        let s = match self.stand_ins.iter().find(|(m, _)| *m == magnitude) {
            Some((_, s)) => *s,
            None => {
                let s = symbol!(format!("polyact_exp_stand_in_{}", self.stand_ins.len()));
                self.stand_ins.push((magnitude, s));
                s
            }
        };
        let shifted = exp(&(argument - Atom::num(rational(&q))));
        let s = Atom::var(s);
        Ok(if q.is_positive() {
            shifted / s
        } else {
            shifted * s
        })
    }

    /// Whether `u` vanishes or has a pole at the point: then `sqrt(u)`, `u^(1/3)`, `log(u)` have
    /// no Taylor series there, whatever the engine's power rules would make of them.
    pub(crate) fn vanishes_or_pole(&mut self, u: &Expr) -> Result<bool> {
        let atom = self.atom(u)?;
        let series = match atom.series(self.x, self.point_atom.as_view(), 0) {
            Ok(s) => s,
            Err(_) => return Ok(true),
        };
        let mut constant = false;
        for (exponent, coefficient) in series.terms() {
            if coefficient.is_zero() {
                continue;
            }
            if exponent.is_negative() || !exponent.is_integer() {
                return Ok(true);
            }
            if exponent.is_zero() {
                constant = true;
            }
        }
        Ok(!constant)
    }

    /// The coefficients `c_k` of `(x - a)^k` and `d_j` of `x^j`, `k, j = 0..=degree`.
    pub(crate) fn expand(
        &mut self,
        formula: &Expr,
        degree: usize,
    ) -> Attempt<(Vec<Coefficient>, Vec<Coefficient>)> {
        let atom = self.atom(formula)?;
        let order = i64::try_from(degree).map_err(|_| Error::Degree {
            requested: degree,
            reason: "too large".into(),
        })?;
        let series = atom
            .series(self.x, self.point_atom.as_view(), order)
            .map_err(|e| self.series_failure(e))?;
        let at_zero = self.point.is_zero();
        let mut about: Vec<Atom> = vec![Atom::num(0); degree + 1];
        for (exponent, coefficient) in series.terms() {
            if coefficient.is_zero() {
                continue;
            }
            // Poles, roots and logarithms: no Taylor series here.
            if !exponent.is_integer() || exponent.is_negative() {
                return Err(Failure::NotAnalytic);
            }
            let Some(k) = exponent
                .numerator()
                .to_i64()
                .and_then(|k| usize::try_from(k).ok())
            else {
                continue;
            };
            if k > degree {
                continue;
            }
            if coefficient.contains_symbol(self.x) {
                return Err(Failure::NotAnalytic);
            }
            about[k] = if at_zero {
                coefficient.clone()
            } else {
                coefficient.together()
            };
        }
        let about_point = self.coefficients(&about)?;
        let ascending = if at_zero {
            about_point.clone()
        } else {
            let shifted = shift_to_powers_of_x(&about, &self.point_atom);
            self.coefficients(&shifted)?
        };
        Ok((about_point, ascending))
    }

    fn series_failure(&self, e: SeriesError) -> Failure {
        match e {
            // Poles inside functions, essential singularities, division by a vanishing
            // series: no Taylor series at this point.
            SeriesError::FunctionArgumentPole { .. }
            | SeriesError::EssentialSingularity { .. }
            | SeriesError::NonRationalPower { .. }
            | SeriesError::MissingLogCoefficient
            | SeriesError::DivisionByZero => Failure::NotAnalytic,
            other => Failure::Error(Error::Symbolic {
                reason: format!(
                    "the series expansion of `{}` failed: {}",
                    self.formula,
                    crate::expr::abbreviate(&other.to_string())
                ),
            }),
        }
    }

    fn coefficients(&self, atoms: &[Atom]) -> Attempt<Vec<Coefficient>> {
        atoms.iter().map(|c| self.coefficient(c)).collect()
    }

    /// Our exact coefficient for a Symbolica constant: a rational, or a closed form with its
    /// value to `f64`. Both must be finite in `f64`.
    fn coefficient(&self, atom: &Atom) -> Attempt<Coefficient> {
        if let AtomView::Num(n) = atom.as_atom_view() {
            return match n.get_coeff_view().to_owned() {
                SymbolicaNumber::Complex(c) if c.im.is_zero() => {
                    let c = Coefficient::rational(to_big_rational(&c.re));
                    self.finite(c, || atom.to_string())
                }
                SymbolicaNumber::Infinity(_) | SymbolicaNumber::Indeterminate => {
                    Err(Failure::NotAnalytic)
                }
                _ => Err(self.not_real(&atom.to_string()).into()),
            };
        }
        let expr = self.expr(atom.as_atom_view(), 0)?;
        let value = self.evaluate(atom, &expr)?;
        self.finite(Coefficient::symbolic(expr.clone(), value), || {
            expr.to_string()
        })
    }

    fn finite(&self, c: Coefficient, text: impl FnOnce() -> String) -> Attempt<Coefficient> {
        if c.is_finite() {
            Ok(c)
        } else {
            Err(Error::Symbolic {
                reason: format!(
                    "`{}` at x = {} has a coefficient beyond the range of f64 ({}); scale the \
                     formula down",
                    self.formula,
                    self.point,
                    crate::expr::abbreviate(&text())
                ),
            }
            .into())
        }
    }

    fn not_real(&self, what: &str) -> Error {
        Error::Symbolic {
            reason: format!(
                "`{}` at x = {} has a coefficient that is not a finite real number ({}); \
                 expand where the formula is real",
                self.formula,
                self.point,
                crate::expr::abbreviate(what)
            ),
        }
    }

    /// The nearest `f64` to a closed form: evaluated at doubling precision until two
    /// successive results round to the same `f64`.
    fn evaluate(&self, atom: &Atom, expr: &Expr) -> Result<f64> {
        let mut precision = self.precision;
        let mut previous: Option<f64> = None;
        while precision <= MAX_PRECISION {
            let values = self.stand_in_values(precision);
            let value = atom
                .evaluate_with_prec::<Atom, Float>(&values, precision)
                .map_err(|e| self.not_real(&format!("{expr}: {e}")))?
                .to_f64();
            if !value.is_finite() {
                return Ok(value);
            }
            if previous.is_some_and(|p| p.to_bits() == value.to_bits()) {
                return Ok(value);
            }
            previous = Some(value);
            precision = precision.saturating_mul(2);
        }
        Err(Error::TooComplex {
            reason: format!(
                "a coefficient of `{}` at x = {} did not settle to f64 accuracy with {} bits \
                 ({})",
                self.formula,
                self.point,
                MAX_PRECISION,
                crate::expr::abbreviate(&expr.to_string())
            ),
        })
    }

    fn stand_in_values(&self, precision: u32) -> HashMap<Atom, Float> {
        self.stand_ins
            .iter()
            .map(|(magnitude, s)| {
                let huge = magnitude > &BigRational::from_integer(UNDERFLOW_EXPONENT.into());
                let value = if huge {
                    Float::with_val(precision, 0)
                } else {
                    let minus = FunctionBuilder::new(Symbol::EXP)
                        .add_arg(Atom::num(rational(&-magnitude)))
                        .finish();
                    minus
                        .evaluate_with_prec::<Atom, Float>(&HashMap::new(), precision)
                        .unwrap_or_else(|_| Float::with_val(precision, 0))
                };
                (Atom::var(*s), value)
            })
            .collect()
    }

    /// A Symbolica constant as an [`Expr`], tidied: `(1/2)^(1/2)*pi^(-1/2)` becomes
    /// `1/sqrt(2*pi)`. Recursion is bounded by [`MAX_DEPTH`].
    fn expr(&self, atom: AtomView<'_>, depth: usize) -> Result<Expr> {
        if depth > MAX_DEPTH {
            return Err(Error::TooComplex {
                reason: format!("a coefficient nests deeper than {MAX_DEPTH} levels"),
            });
        }
        match atom {
            AtomView::Num(_) => match rational_of(atom) {
                Some(r) => Ok(Expr::number(r)),
                None => Err(self.not_real(&atom.to_string())),
            },
            AtomView::Var(v) => self.symbol(v.get_symbol()),
            AtomView::Fun(f) => {
                let symbol = f.get_symbol();
                let function = [
                    (Symbol::EXP, Function::Exp),
                    (Symbol::LOG, Function::Log),
                    (Symbol::SQRT, Function::Sqrt),
                    (Symbol::SIN, Function::Sin),
                    (Symbol::COS, Function::Cos),
                    (self.erf, Function::Erf),
                ]
                .into_iter()
                .find_map(|(s, f)| (s == symbol).then_some(f));
                let mut args = f.iter();
                match (function, args.next(), args.next()) {
                    (Some(function), Some(arg), None) => {
                        Expr::call(function, self.expr(arg, depth + 1)?)
                    }
                    _ => Err(Error::Symbolic {
                        reason: format!(
                            "a coefficient uses `{}`, which polyact does not support",
                            symbol.get_stripped_name()
                        ),
                    }),
                }
            }
            AtomView::Pow(p) => {
                let (base, exponent) = p.get_base_exp();
                self.product(vec![(base, Some(exponent))], BigRational::one(), depth)
            }
            AtomView::Mul(m) => {
                let mut number = BigRational::one();
                let mut powers = Vec::new();
                for factor in m.iter() {
                    match (rational_of(factor), factor) {
                        (Some(r), _) => number *= r,
                        (None, AtomView::Pow(p)) => {
                            let (base, exponent) = p.get_base_exp();
                            powers.push((base, Some(exponent)));
                        }
                        (None, other) => powers.push((other, None)),
                    }
                }
                self.product(powers, number, depth)
            }
            AtomView::Add(a) => {
                let terms = a
                    .iter()
                    .map(|t| self.expr(t, depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                Expr::sum(terms)
            }
        }
    }

    fn symbol(&self, s: Symbol) -> Result<Expr> {
        if s == Symbol::E {
            return Ok(Expr::constant(Constant::E));
        }
        if s == Symbol::PI {
            return Ok(Expr::constant(Constant::Pi));
        }
        if s == self.x {
            return Ok(Expr::x());
        }
        match self.stand_ins.iter().find(|(_, symbol)| *symbol == s) {
            Some((magnitude, _)) => Expr::call(Function::Exp, Expr::number(-magnitude)),
            None => Err(Error::Symbolic {
                reason: format!(
                    "a coefficient holds the unknown symbol `{}`",
                    s.get_stripped_name()
                ),
            }),
        }
    }

    /// `number · Π base^exponent`, written as `p·above/(q·below)` with the half powers of each
    /// side gathered into one `sqrt`.
    fn product(
        &self,
        powers: Vec<(AtomView<'_>, Option<AtomView<'_>>)>,
        number: BigRational,
        depth: usize,
    ) -> Result<Expr> {
        let half = BigRational::new(BigInt::one(), BigInt::from(2));
        let mut sides: [Side; 2] = [Side::default(), Side::default()];
        for (base, exponent) in powers {
            let base_expr = self.expr(base, depth + 1)?;
            let e = match exponent {
                None => BigRational::one(),
                Some(exponent) => match rational_of(exponent) {
                    Some(e) => e,
                    None => {
                        let exponent = self.expr(exponent, depth + 1)?;
                        sides[0].factors.push(power(base_expr, exponent)?);
                        continue;
                    }
                },
            };
            let above = usize::from(e.is_negative());
            let e = e.abs();
            // (p/q)^e = p^e / q^e, so that square roots of numbers merge: 1/sqrt(2*pi).
            let parts = match base_expr.as_number() {
                Some(b) if b.is_positive() => {
                    vec![(b.numer().clone(), above), (b.denom().clone(), 1 - above)]
                        .into_iter()
                        .filter(|(n, _)| !n.is_one())
                        .map(|(n, side)| (Expr::number(BigRational::from_integer(n)), side))
                        .collect()
                }
                _ => vec![(base_expr, above)],
            };
            for (base, side) in parts {
                if e == half && !crate::taylor::formula::is_euler(&base) {
                    sides[side].roots.push(base);
                } else {
                    sides[side]
                        .factors
                        .push(power(base, Expr::number(e.clone()))?);
                }
            }
        }
        let [above, below] = sides;
        let above = above.finish(number.numer().abs())?;
        let below = below.finish(number.denom().clone())?;
        let mut fraction = match below {
            None => above.unwrap_or_else(|| Expr::integer(1)),
            Some(below) => above
                .unwrap_or_else(|| Expr::integer(1))
                .checked_div(below)?,
        };
        if number.is_negative() {
            fraction = fraction.checked_neg()?;
        }
        Ok(fraction)
    }
}

/// One side of a fraction being assembled.
#[derive(Default)]
struct Side {
    factors: Vec<Expr>,
    roots: Vec<Expr>,
}

impl Side {
    /// `n · factors · sqrt(roots)`, `None` when it is 1.
    fn finish(mut self, n: BigInt) -> Result<Option<Expr>> {
        if !self.roots.is_empty() {
            let inside = self
                .roots
                .into_iter()
                .try_fold(Expr::integer(1), Expr::checked_mul)?;
            self.factors.push(Expr::call(Function::Sqrt, inside)?);
        }
        let mut all = Vec::with_capacity(self.factors.len() + 1);
        if !n.is_one() {
            all.push(Expr::number(BigRational::from_integer(n)));
        }
        all.extend(self.factors);
        if all.is_empty() {
            return Ok(None);
        }
        all.into_iter()
            .try_fold(Expr::integer(1), Expr::checked_mul)
            .map(Some)
    }
}

/// `base^exponent`, with `e^u` as `exp(u)` and `u^1` as `u`.
fn power(base: Expr, exponent: Expr) -> Result<Expr> {
    if exponent.as_number().is_some_and(One::is_one) {
        return Ok(base);
    }
    if crate::taylor::formula::is_euler(&base) {
        return Expr::call(Function::Exp, exponent);
    }
    base.checked_pow(exponent)
}

fn rational_of(atom: AtomView<'_>) -> Option<BigRational> {
    match atom {
        AtomView::Num(n) => match n.get_coeff_view().to_owned() {
            SymbolicaNumber::Complex(c) if c.im.is_zero() => Some(to_big_rational(&c.re)),
            _ => None,
        },
        _ => None,
    }
}

/// `d_j = Σ_{k≥j} c_k · C(k, j) · (-a)^(k-j)`: the same polynomial in ascending powers of `x`,
/// each coefficient brought over one denominator.
fn shift_to_powers_of_x(about: &[Atom], point: &Atom) -> Vec<Atom> {
    let n = about.len();
    let minus_a = -point.clone();
    let mut powers = Vec::with_capacity(n);
    powers.push(Atom::num(1));
    for m in 1..n {
        let next = &powers[m - 1] * &minus_a;
        powers.push(next);
    }
    (0..n)
        .map(|j| {
            let terms: Vec<Atom> = (j..n)
                .filter(|&k| !about[k].is_zero())
                .map(|k| {
                    let binomial = Atom::num(Integer::binom(k as i64, j as i64));
                    &(&about[k] * &binomial) * &powers[k - j]
                })
                .collect();
            if terms.is_empty() {
                Atom::num(0)
            } else {
                Atom::add_many(terms.iter()).together()
            }
        })
        .collect()
}

fn integer(i: &BigInt) -> Integer {
    // Both print and read integers in decimal.
    i.to_string()
        .parse()
        .unwrap_or_else(|_| Integer::from(0_i64))
}

fn rational(r: &BigRational) -> (Integer, Integer) {
    (integer(r.numer()), integer(r.denom()))
}

fn to_big_rational(r: &Rational) -> BigRational {
    let parse = |i: Integer| i.to_string().parse::<BigInt>().unwrap_or_default();
    BigRational::new(parse(r.numerator()), parse(r.denominator()))
}

//! Polynomial coefficients that remember their exact value.
//!
//! A [`Coefficient`] always carries an `f64` for evaluation. When the exact value is known it also
//! carries an [`Exact`] form: a rational of any size (`-1/48`, `33/50`) or a closed-form
//! constant as an [`Expr`] (`log(2)`, `1/sqrt(2*pi)`).
//!
//! Coefficients have the std arithmetic operators (for values and references), exact when both
//! operands are:
//!
//! ```
//! use polyact::Coefficient;
//! let a = Coefficient::ratio(1, 2);
//! let b = Coefficient::ratio(1, 3);
//! assert_eq!((&a + &b).to_string(), "5/6");
//! assert_eq!((a.clone() * b.clone()).to_string(), "1/6");
//! assert_eq!((-a.clone()).to_string(), "-1/2");
//! // Division by an exact zero is an error with `checked_div`, a panic with `/`.
//! assert!(a.checked_div(&Coefficient::integer(0)).is_err());
//! assert!(Coefficient::try_ratio(1, 0).is_err());
//! # Ok::<(), polyact::Error>(())
//! ```

use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

use crate::expr::{Combine, Expr, rational_text};
use crate::{Error, Result};

/// The exact form of a coefficient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exact {
    /// A rational number of any size.
    Rational(BigRational),
    /// A closed-form constant, such as `log(2)`: an expression without `x`.
    Symbolic(Expr),
}

/// One polynomial coefficient: an `f64` value, and its exact form when known.
///
/// ```
/// use polyact::Coefficient;
/// let c = Coefficient::ratio(-1, 48);
/// assert_eq!(c.to_string(), "-1/48");
/// assert!((c.to_f64() + 1.0 / 48.0).abs() < 1e-17);
/// // Decimal literals are read as the decimal the user wrote, not as binary floats:
/// assert_eq!(Coefficient::from_decimal(0.66).unwrap().to_string(), "33/50");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CoefficientRepr", into = "CoefficientRepr")]
pub struct Coefficient {
    exact: Option<Exact>,
    value: f64,
}

impl Coefficient {
    /// The exact coefficient 0.
    pub fn zero() -> Self {
        Self::rational(BigRational::zero())
    }

    /// The exact integer `n`.
    pub fn integer(n: i64) -> Self {
        Self::rational(BigRational::from_integer(BigInt::from(n)))
    }

    /// The exact rational `numer / denom`, reduced.
    ///
    /// # Panics
    /// Panics if `denom` is zero; [`try_ratio`](Self::try_ratio) returns an error instead.
    pub fn ratio(numer: i64, denom: i64) -> Self {
        assert!(denom != 0, "Coefficient::ratio: the denominator is zero");
        Self::rational(BigRational::new(BigInt::from(numer), BigInt::from(denom)))
    }

    /// The exact rational `numer / denom`, reduced.
    ///
    /// # Errors
    /// [`Error::DivisionByZero`] if `denom` is zero.
    ///
    /// ```
    /// use polyact::{Coefficient, Error};
    /// assert_eq!(Coefficient::try_ratio(2, -4)?.to_string(), "-1/2");
    /// assert!(matches!(Coefficient::try_ratio(1, 0), Err(Error::DivisionByZero { .. })));
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn try_ratio(numer: i64, denom: i64) -> Result<Self> {
        if denom == 0 {
            return Err(Error::DivisionByZero {
                operation: "Coefficient::try_ratio",
            });
        }
        Ok(Self::ratio(numer, denom))
    }

    /// An exact rational coefficient; its `f64` value is the nearest double (±∞ beyond
    /// `f64`'s range, which [`is_finite`](Self::is_finite) reports).
    pub fn rational(r: BigRational) -> Self {
        let value = rational_to_f64(&r);
        Self {
            exact: Some(Exact::Rational(r)),
            value,
        }
    }

    /// A closed-form constant with its numerical value, e.g. `symbolic("log(2)".parse()?, LN_2)`.
    /// A closed form that is a plain number is kept as [`Exact::Rational`].
    ///
    /// ```
    /// use polyact::Coefficient;
    /// let c = Coefficient::symbolic("log(2)".parse()?, std::f64::consts::LN_2);
    /// assert_eq!(c.to_string(), "log(2)");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn symbolic(expr: Expr, value: f64) -> Self {
        if let Some(r) = expr.as_number() {
            return Self::rational(r.clone());
        }
        Self {
            exact: Some(Exact::Symbolic(expr)),
            value,
        }
    }

    /// A coefficient known only as a floating-point number (the result of a numerical fit).
    pub fn approx(value: f64) -> Self {
        Self { exact: None, value }
    }

    /// The exact rational that the shortest decimal representation of `x` denotes:
    /// `0.66` becomes `33/50`, not the binary double nearest to it. `None` for NaN or infinity.
    pub fn from_decimal(x: f64) -> Option<Self> {
        decimal_to_rational(x).map(Self::rational)
    }

    /// The value as `f64` (the nearest double to the exact value, when there is one).
    pub fn to_f64(&self) -> f64 {
        self.value
    }

    /// Whether the `f64` value is finite (an exact rational beyond `f64`'s range is not).
    pub fn is_finite(&self) -> bool {
        self.value.is_finite()
    }

    /// The exact form, if known.
    pub fn exact(&self) -> Option<&Exact> {
        self.exact.as_ref()
    }

    /// The exact rational, if this coefficient is one.
    pub fn as_rational(&self) -> Option<&BigRational> {
        match &self.exact {
            Some(Exact::Rational(r)) => Some(r),
            _ => None,
        }
    }

    /// The coefficient as an expression: its exact form, or for an approximate coefficient
    /// the decimal its value prints as (`None` if that value is not finite).
    pub fn to_expr(&self) -> Option<Expr> {
        match &self.exact {
            Some(Exact::Rational(r)) => Some(Expr::number(r.clone())),
            Some(Exact::Symbolic(e)) => Some(e.clone()),
            None => decimal_to_rational(self.value).map(Expr::number),
        }
    }

    /// Whether the coefficient is zero (exactly, when the exact form is known).
    pub fn is_zero(&self) -> bool {
        match &self.exact {
            Some(Exact::Rational(r)) => r.is_zero(),
            _ => self.value == 0.0,
        }
    }

    /// Whether the coefficient is negative.
    pub(crate) fn is_negative(&self) -> bool {
        match &self.exact {
            Some(Exact::Rational(r)) => r.is_negative(),
            _ => self.value < 0.0,
        }
    }

    /// `self / other`, exact when both are exact.
    ///
    /// # Errors
    /// [`Error::DivisionByZero`] if `other` is an exact zero.
    pub fn checked_div(&self, other: &Coefficient) -> Result<Coefficient> {
        if other.as_rational().is_some_and(Zero::is_zero) {
            return Err(Error::DivisionByZero {
                operation: "Coefficient::checked_div",
            });
        }
        Ok(self.combine(Combine::Div, other, self.value / other.value))
    }

    /// The exact result of `op` when both forms are known; a closed form when either is one
    /// (an approximate value if the closed form would exceed the expression limits).
    fn combine(&self, op: Combine, other: &Coefficient, value: f64) -> Coefficient {
        match (&self.exact, &other.exact) {
            (Some(Exact::Rational(a)), Some(Exact::Rational(b))) => Self::rational(match op {
                Combine::Add => a + b,
                Combine::Mul => a * b,
                Combine::Div => a / b,
                Combine::Neg => -a,
            }),
            (Some(_), Some(_)) => match (self.to_expr(), other.to_expr()) {
                (Some(a), Some(b)) => Expr::combine(op, a, Some(b))
                    .map_or_else(|| Self::approx(value), |e| Self::symbolic(e, value)),
                _ => Self::approx(value),
            },
            _ => Self::approx(value),
        }
    }

    /// Formats `|self|` (used by polynomial printing, which writes the sign itself).
    pub(crate) fn fmt_abs(&self) -> String {
        if self.is_negative() {
            (-self).to_string()
        } else {
            self.to_string()
        }
    }

    /// Whether `fmt_abs` is the literal 1 (so `1·x` can print as `x`).
    pub(crate) fn is_unit_magnitude(&self) -> bool {
        matches!(&self.exact, Some(Exact::Rational(r)) if r.abs().is_one())
    }
}

impl Neg for &Coefficient {
    type Output = Coefficient;
    /// `-self`, exact when `self` is.
    fn neg(self) -> Coefficient {
        match &self.exact {
            Some(Exact::Rational(r)) => Coefficient::rational(-r),
            Some(Exact::Symbolic(e)) => Expr::combine(Combine::Neg, e.clone(), None).map_or_else(
                || Coefficient::approx(-self.value),
                |e| Coefficient::symbolic(e, -self.value),
            ),
            None => Coefficient::approx(-self.value),
        }
    }
}

impl Neg for Coefficient {
    type Output = Coefficient;
    fn neg(self) -> Coefficient {
        -&self
    }
}

impl Add<&Coefficient> for &Coefficient {
    type Output = Coefficient;
    /// `self + other`, exact when both are.
    fn add(self, other: &Coefficient) -> Coefficient {
        self.combine(Combine::Add, other, self.value + other.value)
    }
}

impl Sub<&Coefficient> for &Coefficient {
    type Output = Coefficient;
    /// `self - other`, exact when both are.
    fn sub(self, other: &Coefficient) -> Coefficient {
        self + &(-other)
    }
}

impl Mul<&Coefficient> for &Coefficient {
    type Output = Coefficient;
    /// `self · other`, exact when both are.
    fn mul(self, other: &Coefficient) -> Coefficient {
        self.combine(Combine::Mul, other, self.value * other.value)
    }
}

impl Div<&Coefficient> for &Coefficient {
    type Output = Coefficient;
    /// `self / other`, exact when both are.
    ///
    /// # Panics
    /// Panics if `other` is an exact zero; [`Coefficient::checked_div`] returns an error.
    fn div(self, other: &Coefficient) -> Coefficient {
        match self.checked_div(other) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The owned and mixed forms of each operator, delegating to `&a op &b`.
macro_rules! forward_binary {
    ($($trait:ident $method:ident),*) => {$(
        impl $trait<Coefficient> for Coefficient {
            type Output = Coefficient;
            fn $method(self, other: Coefficient) -> Coefficient {
                (&self).$method(&other)
            }
        }
        impl $trait<&Coefficient> for Coefficient {
            type Output = Coefficient;
            fn $method(self, other: &Coefficient) -> Coefficient {
                (&self).$method(other)
            }
        }
        impl $trait<Coefficient> for &Coefficient {
            type Output = Coefficient;
            fn $method(self, other: Coefficient) -> Coefficient {
                self.$method(&other)
            }
        }
    )*};
}

forward_binary!(Add add, Sub sub, Mul mul, Div div);

impl Zero for Coefficient {
    fn zero() -> Self {
        Coefficient::zero()
    }
    fn is_zero(&self) -> bool {
        Coefficient::is_zero(self)
    }
}

impl One for Coefficient {
    fn one() -> Self {
        Coefficient::integer(1)
    }
}

impl From<i64> for Coefficient {
    fn from(n: i64) -> Self {
        Self::integer(n)
    }
}

impl From<BigRational> for Coefficient {
    fn from(r: BigRational) -> Self {
        Self::rational(r)
    }
}

impl fmt::Display for Coefficient {
    /// Exact rationals print as `p/q` (or `p`), closed forms as their [`Expr`], and
    /// approximate coefficients as the shortest decimal that round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exact {
            Some(Exact::Rational(r)) => crate::expr::write_rational(f, r),
            Some(Exact::Symbolic(e)) => write!(f, "{e}"),
            None => write!(f, "{}", self.value),
        }
    }
}

/// Whether `text` has a `+` or `-` outside parentheses after its first character, so that it
/// needs parentheses as a factor (`log(2)+1` does, `-1/(6*sqrt(2*pi))` does not).
pub(crate) fn has_top_level_sign(text: &str) -> bool {
    let mut depth = 0_i32;
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            '+' | '-' if depth == 0 && i > 0 => {
                // An exponent sign (`2e-5`, `x^-1`) is not a term separator.
                let mut before = text[..i].chars().rev();
                let exponent = match before.next() {
                    Some('^' | '*' | '/') => true,
                    Some('e' | 'E') => before.next().is_some_and(|c| c.is_ascii_digit()),
                    _ => false,
                };
                if !exponent {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The nearest `f64` to a rational of any size.
pub(crate) fn rational_to_f64(r: &BigRational) -> f64 {
    r.to_f64().unwrap_or_else(|| {
        // Only reachable for magnitudes beyond f64's range.
        if r.is_negative() {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    })
}

/// The rational that the shortest round-trip decimal of `x` denotes.
pub(crate) fn decimal_to_rational(x: f64) -> Option<BigRational> {
    if !x.is_finite() {
        return None;
    }
    // `Display` for f64 gives the shortest round-trip decimal, never in exponent form.
    let text = format!("{x}");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let numer: BigInt = format!("{int_part}{frac_part}").parse().ok()?;
    let denom = num_traits::pow(BigInt::from(10), frac_part.len());
    let r = BigRational::new(numer, denom);
    Some(if negative { -r } else { r })
}

/// The serialised form: the `f64` value plus the exact form as text.
#[derive(Serialize, Deserialize)]
struct CoefficientRepr {
    #[serde(with = "finite_or_text")]
    value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rational: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symbolic: Option<String>,
}

/// `f64` values in formats without NaN and infinities (JSON): finite values as numbers, the
/// others as the text `"NaN"`, `"inf"`, `"-inf"`, so that every coefficient reads back. A `null`
/// (what such formats wrote for NaN before) reads as NaN.
mod finite_or_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
        Null(()),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Null(()) => Ok(f64::NAN),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "a coefficient value is a number, \"NaN\", \"inf\" or \"-inf\", not {:?}",
                    crate::error::shorten(other)
                ))),
            },
        }
    }
}

impl From<Coefficient> for CoefficientRepr {
    fn from(c: Coefficient) -> Self {
        let (rational, symbolic) = match &c.exact {
            Some(Exact::Rational(r)) => (Some(rational_text(r)), None),
            Some(Exact::Symbolic(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        Self {
            value: c.value,
            rational,
            symbolic,
        }
    }
}

impl TryFrom<CoefficientRepr> for Coefficient {
    type Error = String;

    fn try_from(repr: CoefficientRepr) -> Result<Self, Self::Error> {
        match (repr.rational, repr.symbolic) {
            (Some(text), None) => {
                let r: BigRational = text
                    .parse()
                    .map_err(|e| format!("bad rational coefficient `{text}`: {e}"))?;
                Ok(Coefficient::rational(r))
            }
            (None, Some(text)) => {
                let e: Expr = text
                    .parse()
                    .map_err(|e| format!("bad symbolic coefficient: {e}"))?;
                if e.contains_x() {
                    return Err(format!("a symbolic coefficient cannot contain x: `{text}`"));
                }
                Ok(Coefficient::symbolic(e, repr.value))
            }
            (None, None) => Ok(Coefficient::approx(repr.value)),
            (Some(_), Some(_)) => {
                Err("a coefficient is either rational or symbolic, not both".into())
            }
        }
    }
}

//! Polynomial coefficients that remember their exact value.
//!
//! A [`Coefficient`] always carries an `f64` for evaluation. When the exact value is known it also
//! carries an [`Exact`] form: a rational of any size (`-1/48`, `33/50`) or a symbolic constant
//! written in the series engine's syntax (`log(2)`, `1/2*pi^(-1/2)`).

use std::fmt;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

/// The exact form of a coefficient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exact {
    /// A rational number of any size.
    Rational(BigRational),
    /// A closed-form constant, such as `log(2)`, in the series engine's syntax.
    Symbolic(String),
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
    /// Panics if `denom` is zero.
    pub fn ratio(numer: i64, denom: i64) -> Self {
        assert!(denom != 0, "Coefficient::ratio: the denominator is zero");
        Self::rational(BigRational::new(BigInt::from(numer), BigInt::from(denom)))
    }

    /// An exact rational coefficient; its `f64` value is the nearest double.
    pub fn rational(r: BigRational) -> Self {
        let value = rational_to_f64(&r);
        Self {
            exact: Some(Exact::Rational(r)),
            value,
        }
    }

    /// A closed-form constant with its numerical value, e.g. `symbolic("log(2)", LN_2)`.
    pub fn symbolic(expr: impl Into<String>, value: f64) -> Self {
        Self {
            exact: Some(Exact::Symbolic(expr.into())),
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

    /// Whether the coefficient is zero (exactly, when the exact form is known).
    pub fn is_zero(&self) -> bool {
        match &self.exact {
            Some(Exact::Rational(r)) => r.is_zero(),
            _ => self.value == 0.0,
        }
    }

    /// Whether the coefficient is negative.
    fn is_negative(&self) -> bool {
        match &self.exact {
            Some(Exact::Rational(r)) => r.is_negative(),
            _ => self.value < 0.0,
        }
    }

    /// The product `self · other`, exact when both are exact.
    pub fn mul(&self, other: &Coefficient) -> Coefficient {
        let value = self.value * other.value;
        match (&self.exact, &other.exact) {
            (Some(Exact::Rational(a)), Some(Exact::Rational(b))) => Self::rational(a * b),
            (Some(a), Some(b)) => {
                Self::symbolic(format!("({})*({})", exact_text(a), exact_text(b)), value)
            }
            _ => Self::approx(value),
        }
    }

    /// The quotient `self / other`, exact when both are exact.
    ///
    /// # Panics
    /// Panics if `other` is an exact zero.
    pub fn div(&self, other: &Coefficient) -> Coefficient {
        let value = self.value / other.value;
        match (&self.exact, &other.exact) {
            (Some(Exact::Rational(a)), Some(Exact::Rational(b))) => {
                assert!(!b.is_zero(), "Coefficient::div: division by an exact zero");
                Self::rational(a / b)
            }
            (Some(a), Some(b)) => {
                Self::symbolic(format!("({})/({})", exact_text(a), exact_text(b)), value)
            }
            _ => Self::approx(value),
        }
    }

    /// The sum `self + other`, exact when both are exact.
    pub fn add(&self, other: &Coefficient) -> Coefficient {
        let value = self.value + other.value;
        match (&self.exact, &other.exact) {
            (Some(Exact::Rational(a)), Some(Exact::Rational(b))) => Self::rational(a + b),
            (Some(a), Some(b)) => {
                Self::symbolic(format!("{}+{}", exact_text(a), exact_text(b)), value)
            }
            _ => Self::approx(value),
        }
    }

    /// The negation `-self`, exact when `self` is.
    pub fn neg(&self) -> Coefficient {
        match &self.exact {
            Some(Exact::Rational(r)) => Self::rational(-r),
            Some(Exact::Symbolic(s)) => {
                let negated = match s.strip_prefix('-') {
                    Some(rest) if !has_top_level_sign(rest) => rest.to_string(),
                    _ if has_top_level_sign(s) => format!("-({s})"),
                    _ => format!("-{s}"),
                };
                Self::symbolic(negated, -self.value)
            }
            None => Self::approx(-self.value),
        }
    }

    /// Formats `|self|` (used by polynomial printing, which writes the sign itself).
    pub(crate) fn fmt_abs(&self) -> String {
        if self.is_negative() {
            self.neg().to_string()
        } else {
            self.to_string()
        }
    }

    /// Whether `fmt_abs` is the literal 1 (so `1·x` can print as `x`).
    pub(crate) fn is_unit_magnitude(&self) -> bool {
        matches!(&self.exact, Some(Exact::Rational(r)) if r.abs().is_one())
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
    /// Exact rationals print as `p/q` (or `p`), symbolic constants as written, and
    /// approximate coefficients as the shortest decimal that round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exact {
            Some(exact) => f.write_str(&exact_text(exact)),
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

fn exact_text(exact: &Exact) -> String {
    match exact {
        Exact::Rational(r) if r.is_integer() => r.numer().to_string(),
        Exact::Rational(r) => format!("{}/{}", r.numer(), r.denom()),
        Exact::Symbolic(s) => s.clone(),
    }
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
    value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rational: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symbolic: Option<String>,
}

impl From<Coefficient> for CoefficientRepr {
    fn from(c: Coefficient) -> Self {
        let (rational, symbolic) = match &c.exact {
            Some(e @ Exact::Rational(_)) => (Some(exact_text(e)), None),
            Some(Exact::Symbolic(s)) => (None, Some(s.clone())),
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
            (None, Some(s)) => Ok(Coefficient::symbolic(s, repr.value)),
            (None, None) => Ok(Coefficient::approx(repr.value)),
            (Some(_), Some(_)) => {
                Err("a coefficient is either rational or symbolic, not both".into())
            }
        }
    }
}

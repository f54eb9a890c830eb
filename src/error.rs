//! The crate's error type.

/// Everything that can go wrong in polyact, as one typed, non-exhaustive enum.
///
/// Messages say what was wrong and what to do about it. Evaluation never fails (NaN in, NaN out);
/// errors come from construction, symbolic derivation and fitting.
///
/// ```
/// use polyact::{Elu, Error};
/// let err = Elu::new(f64::NAN).unwrap_err();
/// assert!(matches!(err, Error::InvalidParameter { parameter: "alpha", .. }));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A constructor received a parameter outside its valid range.
    #[error("invalid {parameter} = {value:?} for {activation}: {requirement}")]
    InvalidParameter {
        /// The activation being constructed.
        activation: &'static str,
        /// The parameter's name.
        parameter: &'static str,
        /// The value that was rejected.
        value: f64,
        /// What the value must satisfy.
        requirement: &'static str,
    },
    /// A Taylor series was asked for at a point where the function is not analytic.
    #[error(
        "{function} is not analytic at x = {point}, so it has no Taylor series there; \
         expand at another point, use softplus as the smooth stand-in for relu, \
         or fit a polynomial on an interval (polyact::fit)"
    )]
    NotAnalytic {
        /// The function's name.
        function: String,
        /// The expansion point.
        point: f64,
    },
    /// A formula, activation description or interval could not be parsed, or a formula not
    /// understood by the series engine.
    #[error("cannot use `{formula}`: {reason}")]
    Parse {
        /// The text as given (a formula, a description or an interval).
        formula: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A requested polynomial degree is not supported by the operation.
    #[error("degree {requested} is not supported here: {reason}")]
    Degree {
        /// The degree that was asked for.
        requested: usize,
        /// Why it was rejected.
        reason: String,
    },
    /// An interval was empty, reversed or not finite, or its width `hi - lo` overflows.
    #[error(
        "invalid interval [{lo:?}, {hi:?}]: the ends must be finite with lo < hi, and hi - lo \
         must be finite too"
    )]
    InvalidInterval {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
    /// An operation needs the interval a polynomial is meant for, and it has none.
    #[error(
        "{operation} needs the polynomial's domain, and it has none: fit the polynomial on an \
         interval (polyact::fit; fits carry their interval) or set one with with_domain"
    )]
    MissingDomain {
        /// What needed the domain, e.g. `"clamping"`.
        operation: &'static str,
    },
    /// A fitting method could not produce a polynomial.
    #[error("{method} fit failed: {reason}")]
    Fit {
        /// The method (`"least squares"`, `"sampled least squares"`, `"chebyshev"`,
        /// `"minimax"`, or `"error report"` when the error of a fit could not be measured).
        method: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The symbolic engine failed for a reason other than the formula itself.
    #[error("symbolic engine: {reason}")]
    Symbolic {
        /// What went wrong.
        reason: String,
    },
    /// An expression, or a derivation, would exceed polyact's size or time budget (tree depth
    /// or nodes, an exponent tower, a number of too many digits, the derivation time limit).
    #[error("too complex: {reason}")]
    TooComplex {
        /// Which limit, and how to stay within it.
        reason: String,
    },
    /// An exact division by zero.
    #[error("{operation}: division by an exact zero")]
    DivisionByZero {
        /// The operation that divided.
        operation: &'static str,
    },
}

/// `Result` with polyact's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// At most this many characters of a user's input are quoted back in a message.
const QUOTE_LIMIT: usize = 80;

/// `text` as a message quotes it: whole when short, else its start, an ellipsis and its length,
/// so that an error never echoes a 100 kB input.
pub(crate) fn shorten(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= QUOTE_LIMIT {
        text.to_string()
    } else {
        let head: String = text.chars().take(QUOTE_LIMIT - 20).collect();
        format!("{head}… ({chars} characters)")
    }
}

//! Exact Taylor polynomials of activations and formulas, derived with
//! [Symbolica](https://symbolica.io).
//!
//! ```
//! use polyact::{taylor_poly, Sigmoid};
//! let p = taylor_poly(Sigmoid, 5)?;
//! assert_eq!(p.to_string(), "1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5");
//! assert_eq!(p.coefficients()[3].to_string(), "-1/48");
//! assert!((p.coefficients()[3].to_f64() + 1.0 / 48.0).abs() < 1e-17);
//! # Ok::<(), polyact::Error>(())
//! ```
//!
//! | entry point | expands |
//! |---|---|
//! | [`taylor_poly`] | an [`Activation`] at 0 (Maclaurin) |
//! | [`taylor_poly_at`] | an [`Activation`] at any point `a` |
//! | [`taylor_poly_formula`] | a formula in `x`, such as `"x/(1+exp(-x))"`, at any point |
//! | [`taylor_series`], [`taylor_series_formula`] | the same, as a [`TaylorSeries`] that also holds the coefficients in powers of `(x - a)` |
//!
//! # Exactness
//! Coefficients are exact. Rationals are kept at any size, as
//! [`Exact::Rational`](crate::Exact): sigmoid's coefficient of `x^31` has a 36-digit
//! denominator, beyond `i64`, and mish's of `x^30` a 48-digit one, beyond `i128`.
//! Constants that are not rational are kept in closed form as
//! [`Exact::Symbolic`](crate::Exact), an [`Expr`] without `x`, next to
//! their value: softplus starts with `log(2)`, GELU's even coefficients are rationals times
//! `1/sqrt(2*pi)`. Every coefficient also carries its nearest `f64`, which evaluation uses.
//!
//! Away from 0 the polynomial is returned in ascending powers of `x`, expanded exactly from the
//! powers of `(x - a)`, so that [`Polynomial::eval`] works directly; the closed forms are
//! brought over one denominator (they grow with the degree: about 1–2 kB of text per
//! coefficient at degree 30), and their `f64` values are computed with enough working
//! precision to survive the cancellation of the expansion.
//!
//! The point `a` is read as the decimal it prints as: `0.1` is exactly `1/10`, not the binary
//! double nearest to it. Decimal literals in formulas are read the same way (`0.66` is
//! `33/50`): Symbolica itself would turn them into floating-point numbers and lose exactness.
//!
//! # The study's softplus
//! softplus(x) = log(2) + x/2 + x²/8 − x⁴/192 + x⁶/2880 − …: the study we reproduce printed the
//! quartic term as `+x^4/192`. The sign is negative (the fourth derivative of softplus at 0
//! is −1/8), which is what this module returns and its tests check.
//!
//! # Formulas
//! A formula is an [`Expr`], given as text to [`taylor_poly_formula`] or
//! by an activation's [`Formula`]: numbers, `x`, `+ - * / ^` (or `**`), parentheses, the
//! constants `pi` and `e`, and the functions `exp`, `log` (`ln`), `sqrt`, `erf`, `erfc`,
//! `sin`, `cos`, `tan`, `sinh`, `cosh`, `tanh`, `sigmoid` and `softplus`. The hyperbolic and
//! activation functions are rewritten into `exp` forms before expansion: written that way,
//! coefficients stay rational and expansion is fast. The form matters: mish as
//! `x*tanh(log(1+exp(x)))` was once measured at 11.7 s in Symbolica, and Symbolica 3.0's own
//! `tanh` expands it quickly but leaves coefficients such as `tanh(log(2))` and
//! `sech(log(2))^2`; as `x*((1+exp(x))^2-1)/((1+exp(x))^2+1)` it takes 3 ms and gives
//! rationals (3/5, 8/25, …). Anything else (unknown names, `abs`, unbalanced parentheses,
//! trees beyond the [expression limits](crate::expr#limits)) is an [`Error::Parse`], raised
//! before Symbolica sees the formula.
//!
//! A function with a pole, root or logarithm at the point (`1/x`, `sqrt(x)`, `log(x)` at 0),
//! or a [`Formula::Piecewise`] activation such as [`Relu`](crate::Relu) at its kink, gives
//! [`Error::NotAnalytic`], which names the point and suggests softplus or an interval fit
//! ([`fit`](crate::fit)). So does a square root, fractional power or logarithm of anything
//! that vanishes at the point: `sqrt(x^2)` is `|x|`, not `x`, at 0 (this also refuses
//! `sqrt(x^4)`, which happens to be analytic). A piecewise activation expanded away from its
//! kink uses the piece that holds there; that series converges only up to the kink.
//!
//! # Budgets
//! Nothing a caller passes may hang or exhaust the process: towers of powers (`9^9^9`), powers
//! of `x` beyond `x^1000000` and numbers of more than about a million bits are refused at once
//! with [`Error::TooComplex`]; a derivation that runs longer than [`time_limit`] (60 s unless
//! [set](set_time_limit)) returns [`Error::TooComplex`], and waiting for Symbolica is bounded
//! by [`wait_limit`] (120 s unless [set](set_wait_limit)). Far from 0, `exp` of the point is
//! kept as one symbol during the expansion, so sigmoid at −300 or tanh at 150 are as quick as
//! near 0, and sigmoid at −1e20 has coefficients that round to 0.
//!
//! Degrees up to [`MAX_DEGREE`] are accepted. Coefficients of a Taylor polynomial shrink
//! geometrically (sigmoid's by about π per degree), and far from the point the polynomial
//! diverges: for an approximation on an interval, fit one instead.
//!
//! # Symbolica, contained
//! Symbolica is used under its free licence unless `SYMBOLICA_LICENSE` holds a key that
//! Symbolica accepts: for non-commercial use only, and one Symbolica thread per user at a time
//! (a second one makes it abort the process). Hobbyists and students get free keys, others
//! trials or licences, at <https://symbolica.io/license/>. This module keeps Symbolica inside
//! those limits:
//!
//! * Each derivation runs on a fresh short-lived thread, which releases Symbolica's per-user
//!   permit when it ends. Threads of one process take turns, polyact processes of one user
//!   take turns on a file lock beside Symbolica's (in `SYMBOLICA_LOCK_DIR`, or Symbolica's
//!   per-user runtime or cache directory), so none aborts. Each wait ends after
//!   [`wait_limit`] with an [`Error::Symbolic`] that names the holder. Unless Symbolica accepts
//!   the licence key (a key it rejects counts as none), a derivation also waits up to 10 s for
//!   another program of the user that holds Symbolica, then fails with [`Error::Symbolic`]; a
//!   program that takes Symbolica in the instant between that check and the derivation can
//!   still make Symbolica abort, which polyact cannot prevent.
//! * On first use Symbolica would shrink rayon's global thread pool to one thread. polyact
//!   first builds the global pool with rayon's defaults (`RAYON_NUM_THREADS`, else all CPUs),
//!   unless the host has built its own: configure yours before the first derivation.
//! * Symbolica prints a banner to stdout when it starts, and would install a global `tracing`
//!   subscriber on stdout. polyact keeps the subscriber off and, on Unix, starts Symbolica with
//!   stdout pointed at `/dev/null` for that instant (holding Rust's stdout lock, so other
//!   threads' `print!` output waits rather than being lost; bytes written to descriptor 1
//!   directly in that instant are lost). It prints a one-time notice of Symbolica's terms to
//!   stderr instead. To silence both, set `SYMBOLICA_HIDE_BANNER=1` in the environment before
//!   the program starts (polyact never changes the environment itself); a licensed Symbolica
//!   prints no banner and polyact no notice. A program that holds `io::stdout().lock()` while
//!   it asks for its first derivation must set it: the silencing waits for that lock, and the
//!   derivation would end at its time limit.
//! * A panic inside Symbolica comes back as [`Error::Symbolic`].
//!
//! # Memoisation
//! Results are cached for the life of the process, keyed by function, formula, point and
//! degree; a lower degree of a cached expansion at the same point is served from it without
//! Symbolica (except for closed-form coefficients away from 0, which are re-derived). A cached
//! call costs a hash lookup: [`taylor_series`] returns a shared [`Arc`], [`taylor_poly`] a
//! clone of the polynomial. [`clear_cache`] frees the memory.
//!
//! Measured in this crate's test profile (dependencies at `opt-level = 2`, polyact itself
//! unoptimised) on a 2-core x86-64 VM shared with other builds, sigmoid at 0: the first call
//! in a process takes about 11 ms at degree 5 (starting Symbolica included) and 220 ms at
//! degree 30; a cached call about 4 µs for [`taylor_series`] (the activation's formula is
//! cloned and compared for the lookup), and for [`taylor_poly`] 5 µs at degree 5 and 10 µs at
//! degree 30 (the copy of 31 big rationals). Expanding away from 0 costs more (sigmoid,
//! degree 30 at 0.5: about 1 s), as do high degrees (see [`MAX_DEGREE`]). These figures were
//! taken on a loaded machine; re-measure before quoting them.
//! `cargo test --test taylor -- --ignored --exact timings --nocapture` prints these figures.
//!
//! After a panic inside Symbolica (which polyact's checks of the formula are there to
//! prevent), Symbolica's global state may stay poisoned, and later derivations in the same
//! process then fail with [`Error::Symbolic`] rather than abort.

mod contain;
mod convert;
mod derive;
mod formula;

pub use contain::{set_time_limit, set_wait_limit, time_limit, wait_limit};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};

use crate::activation::{Activation, Formula};
use crate::coefficient::decimal_to_rational;
use crate::expr::Expr;
use crate::{Coefficient, Error, Polynomial, Result};

/// The highest degree accepted. Expansion time grows quickly with the degree (sigmoid's first
/// call: about 0.2 s at 30 in the test profile, see the [module docs](self)), and such
/// polynomials are of no use for activations: fit one on an interval instead.
///
/// ```
/// use polyact::{taylor::MAX_DEGREE, taylor_poly, Error, Sigmoid};
/// let err = taylor_poly(Sigmoid, MAX_DEGREE + 1).unwrap_err();
/// assert!(matches!(err, Error::Degree { .. }));
/// ```
pub const MAX_DEGREE: usize = 100;

/// A Taylor expansion at a point `a`, with its coefficients both in powers of `(x - a)`
/// ([`about_point`](Self::about_point)) and in ascending powers of `x`
/// ([`polynomial`](Self::polynomial)).
///
/// Returned shared ([`Arc`]) by [`taylor_series`] and [`taylor_series_formula`], so that
/// cached calls cost no copy.
///
/// ```
/// use polyact::{taylor_series, Softplus};
/// let s = taylor_series(Softplus, 4, 0.0)?;
/// assert_eq!(s.to_string(), "log(2) + 1/2·x + 1/8·x^2 - 1/192·x^4");
/// assert_eq!(s.function(), "softplus");
/// assert_eq!(s.polynomial().coefficients()[0].to_string(), "log(2)");
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaylorSeries {
    function: String,
    formula: Expr,
    point: f64,
    point_exact: BigRational,
    degree: usize,
    about_point: Vec<Coefficient>,
    polynomial: Polynomial,
}

impl TaylorSeries {
    /// The function's name (an activation's [`name`](Activation::name), or the formula as
    /// given).
    ///
    /// ```
    /// let s = polyact::taylor_series_formula("x/(1+exp(-x))", 3, 0.0)?;
    /// assert_eq!(s.function(), "x/(1+exp(-x))");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The formula that was expanded, as the series engine read it (decimals as exact
    /// rationals, hyperbolic functions as `exp` forms; for a piecewise activation, the piece
    /// that holds at the point).
    ///
    /// ```
    /// let s = polyact::taylor_series_formula("tanh(0.5*x)", 3, 0.0)?;
    /// assert_eq!(s.formula().to_string(), "(exp(x)-1)/(exp(x)+1)");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn formula(&self) -> &Expr {
        &self.formula
    }

    /// The expansion point `a`.
    ///
    /// ```
    /// let s = polyact::taylor_series(polyact::Tanh, 3, 0.5)?;
    /// assert!((s.point() - 0.5).abs() < 1e-300);
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn point(&self) -> f64 {
        self.point
    }

    /// The degree asked for: the series holds the powers `0..=degree` (the highest ones may
    /// be zero, as the odd function tanh's even ones are).
    ///
    /// ```
    /// let s = polyact::taylor_series(polyact::Tanh, 4, 0.0)?;
    /// assert_eq!(s.degree(), 4);
    /// assert_eq!(s.polynomial().degree(), 3);
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn degree(&self) -> usize {
        self.degree
    }

    /// The coefficients `c_k` of `(x - a)^k`, `k = 0..=degree`: `c_k = f⁽ᵏ⁾(a) / k!`.
    ///
    /// ```
    /// // exp(x) at 1: every coefficient is e/k!.
    /// let s = polyact::taylor_series_formula("exp(x)", 3, 1.0)?;
    /// let c: Vec<String> = s.about_point().iter().map(ToString::to_string).collect();
    /// assert_eq!(c, ["e", "e", "e/2", "e/6"]);
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn about_point(&self) -> &[Coefficient] {
        &self.about_point
    }

    /// The same polynomial in ascending powers of `x`, ready to evaluate.
    ///
    /// ```
    /// // x^2 expanded at 1 is 1 + 2(x-1) + (x-1)^2, which is x^2 again.
    /// let s = polyact::taylor_series_formula("x^2", 2, 1.0)?;
    /// assert_eq!(s.to_string(), "1 + 2·(x - 1) + (x - 1)^2");
    /// assert_eq!(s.polynomial().to_string(), "x^2");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn polynomial(&self) -> &Polynomial {
        &self.polynomial
    }

    /// The expansion truncated to a lower degree, computed without the series engine when the
    /// coefficients allow (at 0, or when they are all rational).
    fn truncated(&self, function: &str, degree: usize) -> Option<TaylorSeries> {
        if degree > self.degree {
            return None;
        }
        let about_point = self.about_point[..=degree].to_vec();
        let ascending = if self.point_exact.is_zero() {
            about_point.clone()
        } else {
            shift_rational(&about_point, &self.point_exact)?
        };
        Some(TaylorSeries {
            function: function.to_owned(),
            formula: self.formula.clone(),
            point: self.point,
            point_exact: self.point_exact.clone(),
            degree,
            about_point,
            polynomial: Polynomial::new(ascending),
        })
    }
}

impl fmt::Display for TaylorSeries {
    /// Writes the series in powers of `(x - a)`, such as
    /// `1/2 + 1/4·(x - 1) + …` (in powers of `x` when `a = 0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variable = if self.point_exact.is_zero() {
            "x".to_owned()
        } else if self.point_exact.is_negative() {
            format!("(x + {})", -&self.point_exact)
        } else {
            format!("(x - {})", self.point_exact)
        };
        crate::polynomial::write_terms(f, &self.about_point, &variable)
    }
}

/// `Σ c_k (x - a)^k` in ascending powers of `x`, when every `c_k` is rational.
fn shift_rational(about: &[Coefficient], a: &BigRational) -> Option<Vec<Coefficient>> {
    let c: Vec<&BigRational> = about
        .iter()
        .map(Coefficient::as_rational)
        .collect::<Option<_>>()?;
    let n = c.len();
    let minus_a = -a;
    let mut powers = vec![BigRational::one()];
    for m in 1..n {
        let next = &powers[m - 1] * &minus_a;
        powers.push(next);
    }
    // binomials[k] holds C(k, 0..=k)
    let mut binomials: Vec<Vec<BigInt>> = vec![vec![BigInt::one()]];
    for k in 1..n {
        let previous = &binomials[k - 1];
        let mut row = vec![BigInt::one(); k + 1];
        for j in 1..k {
            row[j] = &previous[j - 1] + &previous[j];
        }
        binomials.push(row);
    }
    Some(
        (0..n)
            .map(|j| {
                let mut d = BigRational::zero();
                for k in j..n {
                    if !c[k].is_zero() {
                        d += c[k]
                            * BigRational::from_integer(binomials[k][j].clone())
                            * &powers[k - j];
                    }
                }
                Coefficient::rational(d)
            })
            .collect(),
    )
}

/// The Maclaurin polynomial (expansion at 0) of an activation, exact, of the given degree.
///
/// Accepts an activation by value, by reference, or as `&dyn Activation<f64>`.
///
/// # Errors
/// [`Error::NotAnalytic`] for a piecewise activation whose kink is at 0 (relu, leaky relu,
/// elu, softsign), [`Error::Degree`] above [`MAX_DEGREE`], [`Error::TooComplex`] when the
/// derivation passes its time limit, [`Error::Symbolic`] if the series engine fails (see the
/// [module docs](self)).
///
/// ```
/// use polyact::{taylor_poly, Activation, Error, Relu, Sigmoid, Tanh};
/// assert_eq!(taylor_poly(Sigmoid, 5)?.to_string(), "1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5");
/// assert_eq!(taylor_poly(&Tanh, 5)?.to_string(), "x - 1/3·x^3 + 2/15·x^5");
/// let boxed: Box<dyn Activation<f64>> = Box::new(Tanh);
/// assert_eq!(taylor_poly(boxed.as_ref(), 3)?.to_string(), "x - 1/3·x^3");
/// assert!(matches!(taylor_poly(Relu, 3), Err(Error::NotAnalytic { .. })));
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn taylor_poly<A: Activation<f64>>(f: A, degree: usize) -> Result<Polynomial> {
    taylor_poly_at(f, degree, 0.0)
}

/// The Taylor polynomial of an activation at `point`, exact, in ascending powers of `x`.
///
/// The point is read as the decimal it prints as (`0.1` is `1/10`).
///
/// # Errors
/// As [`taylor_poly`]; [`Error::NotAnalytic`] when `point` is the kink of a piecewise
/// activation; [`Error::InvalidParameter`] for a point that is not finite.
///
/// ```
/// use polyact::{taylor_poly_at, Activation, Relu, Sigmoid};
/// let p = taylor_poly_at(Sigmoid, 6, 1.0)?;
/// // Near the point the polynomial matches the function.
/// assert!((p.eval(1.1_f64) - Sigmoid.eval(1.1_f64)).abs() < 1e-9);
/// // Away from its kink, relu is the piece that holds there.
/// assert_eq!(taylor_poly_at(Relu, 3, 2.0)?.to_string(), "x");
/// assert_eq!(taylor_poly_at(Relu, 3, -2.0)?.to_string(), "0");
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn taylor_poly_at<A: Activation<f64>>(f: A, degree: usize, point: f64) -> Result<Polynomial> {
    Ok(taylor_series(f, degree, point)?.polynomial().clone())
}

/// The Taylor polynomial of a formula in `x` at `point`, exact, in ascending powers of `x`.
/// See the [module docs](self#formulas) for what a formula may contain.
///
/// # Errors
/// [`Error::Parse`] for a malformed formula or an unknown name, [`Error::NotAnalytic`] where
/// the formula has a pole, root or logarithm at the point, [`Error::TooComplex`] for a formula
/// too large to expand (e.g. `9^9^9`), [`Error::DivisionByZero`] where it divides by an
/// expression that is 0, otherwise as [`taylor_poly_at`].
///
/// ```
/// use polyact::{taylor_poly_formula, Error};
/// let silu = taylor_poly_formula("x/(1+exp(-x))", 4, 0.0)?;
/// assert_eq!(silu.to_string(), "1/2·x + 1/4·x^2 - 1/48·x^4");
/// // Decimals are exact:
/// let p = taylor_poly_formula("0.66 + x/2", 1, 0.0)?;
/// assert_eq!(p.to_string(), "33/50 + 1/2·x");
/// assert!(matches!(taylor_poly_formula("1/(1+exp(-x)", 3, 0.0), Err(Error::Parse { .. })));
/// assert!(matches!(taylor_poly_formula("log(x)", 3, 0.0), Err(Error::NotAnalytic { .. })));
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn taylor_poly_formula(formula: &str, degree: usize, point: f64) -> Result<Polynomial> {
    Ok(taylor_series_formula(formula, degree, point)?
        .polynomial()
        .clone())
}

/// The Taylor expansion of an activation at `point`, shared from the cache.
///
/// # Errors
/// As [`taylor_poly_at`].
///
/// ```
/// use polyact::{taylor_series, Sigmoid};
/// let s = taylor_series(&Sigmoid, 3, 0.0)?;
/// assert_eq!(s.to_string(), "1/2 + 1/4·x - 1/48·x^3");
/// // A second call is served from the cache: the very same allocation.
/// assert!(std::sync::Arc::ptr_eq(&s, &taylor_series(&Sigmoid, 3, 0.0)?));
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn taylor_series<A: Activation<f64>>(
    f: A,
    degree: usize,
    point: f64,
) -> Result<Arc<TaylorSeries>> {
    check_request(degree, point)?;
    let piece = |e: Expr| cached_series(f.name(), Source::Expr(e), degree, point);
    match f.formula() {
        Formula::Analytic(formula) => piece(formula),
        Formula::Piecewise { at, below, above } => match point.partial_cmp(&at) {
            Some(std::cmp::Ordering::Less) => piece(below),
            Some(std::cmp::Ordering::Greater) => piece(above),
            _ => Err(Error::NotAnalytic {
                function: f.name().to_owned(),
                point,
            }),
        },
    }
}

/// The Taylor expansion of a formula in `x` at `point`, shared from the cache.
///
/// # Errors
/// As [`taylor_poly_formula`].
///
/// ```
/// let s = polyact::taylor_series_formula("log(1+exp(x))", 2, 1.0)?;
/// assert_eq!(s.about_point()[0].to_string(), "log(1+e)");
/// assert!((s.polynomial().eval(1.0_f64) - (1.0_f64.exp().ln_1p())).abs() < 1e-15);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn taylor_series_formula(
    formula: &str,
    degree: usize,
    point: f64,
) -> Result<Arc<TaylorSeries>> {
    check_request(degree, point)?;
    cached_series(formula, Source::Text(formula.to_owned()), degree, point)
}

/// Empties the cache of derived series (it otherwise lives as long as the process).
///
/// ```
/// let a = polyact::taylor_series(polyact::Tanh, 3, 0.0)?;
/// polyact::taylor::clear_cache();
/// let b = polyact::taylor_series(polyact::Tanh, 3, 0.0)?;
/// assert_eq!(a, b);
/// # Ok::<(), polyact::Error>(())
/// ```
pub fn clear_cache() {
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache.requests.clear();
    cache.highest.clear();
}

fn check_request(degree: usize, point: f64) -> Result<()> {
    if degree > MAX_DEGREE {
        return Err(Error::Degree {
            requested: degree,
            reason: format!(
                "Taylor series are derived up to degree {MAX_DEGREE}; for an approximation on \
                 an interval, fit a polynomial instead (polyact::fit)"
            ),
        });
    }
    if !point.is_finite() {
        return Err(Error::InvalidParameter {
            activation: "taylor series",
            parameter: "point",
            value: point,
            requirement: "the expansion point must be finite",
        });
    }
    Ok(())
}

/// A formula as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// Text, parsed on a cache miss.
    Text(String),
    /// An activation's expression.
    Expr(Expr),
}

/// A call as made: who asked, with which formula, where, to which degree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    function: String,
    formula: Source,
    /// The point's bits, with -0 read as 0.
    point: u64,
    degree: usize,
}

#[derive(Default)]
struct Cache {
    /// Every call made, for the fast path.
    requests: HashMap<RequestKey, Arc<TaylorSeries>>,
    /// The highest-degree expansion of each normalised formula at each exact point.
    highest: HashMap<(Expr, BigRational), Arc<TaylorSeries>>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    // Nothing panics while holding the lock; if something did, the maps are still valid.
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn cached_series(
    function: &str,
    formula: Source,
    degree: usize,
    point: f64,
) -> Result<Arc<TaylorSeries>> {
    // -0 and 0 are the same point.
    let point = if point.abs().to_bits() == 0 {
        0.0
    } else {
        point
    };
    let key = RequestKey {
        function: function.to_owned(),
        formula,
        point: point.to_bits(),
        degree,
    };
    if let Some(hit) = cache().requests.get(&key) {
        return Ok(Arc::clone(hit));
    }

    let normalised = match &key.formula {
        Source::Text(text) => derive::lower(&text.parse()?)?,
        Source::Expr(e) => derive::lower(e)?,
    };
    let exact = decimal_to_rational(point).ok_or(Error::InvalidParameter {
        activation: "taylor series",
        parameter: "point",
        value: point,
        requirement: "the expansion point must be finite",
    })?;
    let highest_key = (normalised, exact);
    let served = cache()
        .highest
        .get(&highest_key)
        .and_then(|s| s.truncated(function, degree));
    let series = match served {
        Some(series) => Arc::new(series),
        None => {
            let (normalised, exact) = &highest_key;
            let expansion = derive::expand(function, normalised, exact, point, degree)?;
            Arc::new(TaylorSeries {
                function: function.to_owned(),
                formula: normalised.clone(),
                point,
                point_exact: exact.clone(),
                degree,
                about_point: expansion.about_point,
                polynomial: Polynomial::new(expansion.ascending),
            })
        }
    };

    let mut cache = cache();
    let keep = cache
        .highest
        .get(&highest_key)
        .is_none_or(|s| s.degree < degree);
    if keep {
        cache.highest.insert(highest_key, Arc::clone(&series));
    }
    // Another thread may have derived the same request meanwhile: its entry stays, so that
    // every caller of one request shares one `Arc`.
    Ok(Arc::clone(cache.requests.entry(key).or_insert(series)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(text: &str) -> Expr {
        derive::lower(&text.parse().unwrap()).unwrap()
    }

    /// The engine's shift to powers of `x` (done in Symbolica) agrees with ours (done with
    /// big rationals) on a formula whose coefficients are rational everywhere.
    #[test]
    fn engine_shift_matches_rational_shift() {
        let formula = "(1+x)^7/(2-x)";
        let point = BigRational::new(3.into(), 2.into());
        let expansion = derive::expand(formula, &lowered(formula), &point, 1.5, 9).unwrap();
        let ours = shift_rational(&expansion.about_point, &point).unwrap();
        assert_eq!(expansion.ascending, ours);
        assert!(ours.iter().all(|c| c.as_rational().is_some()));
    }

    #[test]
    fn lower_degrees_are_served_from_a_higher_one() {
        let formula = "1/(3-x)";
        let high = taylor_series_formula(formula, 12, 0.5).unwrap();
        let low = taylor_series_formula(formula, 5, 0.5).unwrap();
        let point = BigRational::new(1.into(), 2.into());
        let fresh = derive::expand(formula, &lowered(formula), &point, 0.5, 5).unwrap();
        assert_eq!(low.about_point(), &high.about_point()[..=5]);
        assert_eq!(low.polynomial().coefficients(), fresh.ascending.as_slice());
    }

    #[test]
    fn negative_zero_is_zero() {
        let a = taylor_series_formula("exp(x)", 2, 0.0).unwrap();
        let b = taylor_series_formula("exp(x)", 2, -0.0).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}

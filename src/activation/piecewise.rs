//! Activations with a kink at 0: they have no Taylor series there.

use super::{Activation, Formula, builtin};
use crate::coefficient::decimal_to_rational;
use crate::expr::Expr;
use crate::{Error, Real, Result};

/// `value · u` with the parameter read exactly (`0.01` is `1/100`); `value` is finite, as
/// every constructor checks.
fn times_parameter(value: f64, u: &'static str) -> Expr {
    let factor = decimal_to_rational(value).map_or_else(|| Expr::integer(0), Expr::number);
    factor
        .checked_mul(builtin(u))
        .unwrap_or_else(|_| builtin(u))
}

/// Validates a slope-like parameter: finite and non-negative.
fn non_negative(activation: &'static str, parameter: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            activation,
            parameter,
            value,
            requirement: "it must be finite and non-negative",
        })
    }
}

/// The rectifier, `max(x, 0)`.
///
/// Not analytic at 0: expand [`Softplus`](crate::Softplus) instead, or fit a polynomial on an
/// interval with [`fit`](crate::fit). The derivative at 0 is taken as 0.
///
/// ```
/// use polyact::{Activation, Relu};
/// assert!((Relu.eval(-2.0_f64)).abs() < 1e-300);
/// assert!((Relu.eval(3.0_f32) - 3.0).abs() < 1e-7);
/// assert!(Relu.eval(f64::NAN).is_nan());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Relu;

impl<T: Real> Activation<T> for Relu {
    fn name(&self) -> &str {
        "relu"
    }
    fn eval(&self, x: T) -> T {
        if x > T::zero() || x.is_nan() {
            x
        } else {
            T::zero()
        }
    }
    fn derivative(&self, x: T) -> T {
        if x.is_nan() {
            x
        } else if x > T::zero() {
            T::one()
        } else {
            T::zero()
        }
    }
    fn formula(&self) -> Formula {
        Formula::Piecewise {
            at: 0.0,
            below: builtin("0"),
            above: builtin("x"),
        }
    }
}

/// Leaky rectifier: `x` for `x > 0`, `αx` otherwise.
///
/// ```
/// use polyact::{Activation, LeakyRelu};
/// let f = LeakyRelu::new(0.01)?;
/// assert!((f.eval(-2.0_f64) + 0.02).abs() < 1e-15);
/// assert!(LeakyRelu::new(-1.0).is_err());
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    alpha: f64,
}

impl LeakyRelu {
    /// A leaky relu with slope `alpha` for negative inputs.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `alpha` is finite and non-negative.
    pub fn new(alpha: f64) -> Result<Self> {
        non_negative("leaky_relu", "alpha", alpha).map(|alpha| Self { alpha })
    }

    /// The slope for negative inputs.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

impl<T: Real> Activation<T> for LeakyRelu {
    fn name(&self) -> &str {
        "leaky_relu"
    }
    fn eval(&self, x: T) -> T {
        if x > T::zero() || x.is_nan() {
            x
        } else if self.alpha > 0.0 {
            T::of(self.alpha) * x
        } else {
            T::zero()
        }
    }
    fn derivative(&self, x: T) -> T {
        if x.is_nan() {
            x
        } else if x > T::zero() {
            T::one()
        } else {
            T::of(self.alpha)
        }
    }
    fn formula(&self) -> Formula {
        Formula::Piecewise {
            at: 0.0,
            below: times_parameter(self.alpha, "x"),
            above: builtin("x"),
        }
    }
}

/// Exponential linear unit: `x` for `x > 0`, `α(eˣ - 1)` otherwise.
///
/// ```
/// use polyact::{Activation, Elu};
/// let f = Elu::new(1.0)?;
/// assert!((f.eval(f64::NEG_INFINITY) + 1.0).abs() < 1e-15);
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elu {
    alpha: f64,
}

impl Elu {
    /// An ELU with saturation value `-alpha`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `alpha` is finite and non-negative.
    pub fn new(alpha: f64) -> Result<Self> {
        non_negative("elu", "alpha", alpha).map(|alpha| Self { alpha })
    }

    /// The saturation scale.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

impl Default for Elu {
    /// The usual `alpha = 1`.
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

impl<T: Real> Activation<T> for Elu {
    fn name(&self) -> &str {
        "elu"
    }
    fn eval(&self, x: T) -> T {
        if x > T::zero() || x.is_nan() {
            x
        } else {
            T::of(self.alpha) * x.exp_m1()
        }
    }
    fn derivative(&self, x: T) -> T {
        if x.is_nan() {
            x
        } else if x > T::zero() {
            T::one()
        } else {
            T::of(self.alpha) * x.exp()
        }
    }
    fn formula(&self) -> Formula {
        Formula::Piecewise {
            at: 0.0,
            below: times_parameter(self.alpha, "exp(x)-1"),
            above: builtin("x"),
        }
    }
}

/// Softsign, `x / (1 + |x|)`.
///
/// ```
/// use polyact::{Activation, Softsign};
/// assert!((Softsign.eval(1.0_f64) - 0.5).abs() < 1e-15);
/// assert!((Softsign.eval(f32::INFINITY) - 1.0).abs() < 1e-7);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Softsign;

impl<T: Real> Activation<T> for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn eval(&self, x: T) -> T {
        if x.is_infinite() {
            x.signum()
        } else {
            x / (T::one() + x.abs())
        }
    }
    fn derivative(&self, x: T) -> T {
        // (1/d)² rather than 1/d²: d² would overflow while the result is still representable.
        let r = T::one() / (T::one() + x.abs());
        r * r
    }
    fn formula(&self) -> Formula {
        Formula::Piecewise {
            at: 0.0,
            below: builtin("x/(1-x)"),
            above: builtin("x/(1+x)"),
        }
    }
}

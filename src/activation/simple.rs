//! The polynomial activations `x` and `x²`.

use super::{Activation, Formula, builtin};
use crate::Real;

/// The identity, `x` (a linear layer with no activation).
///
/// ```
/// use polyact::{Activation, Identity};
/// assert!((Identity.eval(2.5_f64) - 2.5).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Identity;

impl<T: Real> Activation<T> for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn eval(&self, x: T) -> T {
        x
    }
    fn derivative(&self, x: T) -> T {
        if x.is_nan() { x } else { T::one() }
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("x"))
    }
}

/// The square, `x²`: the cheapest non-linear activation under homomorphic encryption
/// (one multiplication, depth 1).
///
/// ```
/// use polyact::{Activation, Square};
/// assert!((Square.eval(-3.0_f32) - 9.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Square;

impl<T: Real> Activation<T> for Square {
    fn name(&self) -> &str {
        "square"
    }
    fn eval(&self, x: T) -> T {
        x * x
    }
    fn derivative(&self, x: T) -> T {
        x + x
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("x^2"))
    }
}

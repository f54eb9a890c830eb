//! The one floating-point bound used by every generic item in the crate.

use std::fmt::{Debug, Display};

/// A floating-point scalar polyact can evaluate activations and polynomials in.
///
/// This is an alias for [`num_traits::Float`] plus the marker traits the crate needs; it has a
/// blanket implementation, so `f32` and `f64` (and any other type meeting the bounds) qualify
/// without further work.
///
/// ```
/// fn double<T: polyact::Real>(x: T) -> T {
///     x + x
/// }
/// assert_eq!(double(1.5_f32), 3.0);
/// ```
pub trait Real:
    num_traits::Float + num_traits::FloatConst + Default + Debug + Display + Send + Sync + 'static
{
    /// Converts an `f64` constant into `Self`, rounding to the nearest representable value.
    fn of(value: f64) -> Self {
        <Self as num_traits::NumCast>::from(value).unwrap_or_else(Self::nan)
    }

    /// Converts `self` into an `f64` (exact for `f32` and `f64`).
    fn as_f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}

impl<T> Real for T where
    T: num_traits::Float
        + num_traits::FloatConst
        + Default
        + Debug
        + Display
        + Send
        + Sync
        + 'static
{
}

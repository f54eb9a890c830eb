//! Activations that are analytic on the whole real line.

use super::{Activation, Formula, builtin};
use crate::Real;

/// The limit of a function at ±∞, used to avoid `∞ · 0` in products such as `x · σ(x)`.
fn at_infinity<T: Real>(x: T, at_neg: T, at_pos: T) -> Option<T> {
    if x.is_infinite() {
        Some(if x.is_sign_negative() { at_neg } else { at_pos })
    } else {
        None
    }
}

/// `1 / (1 + e^-x)` without overflow: `e^x / (1 + e^x)` for negative `x`.
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `ln(1 + e^x)` without overflow: `max(x, 0) + ln(1 + e^-|x|)`.
pub(crate) fn softplus<T: Real>(x: T) -> T {
    if x.is_nan() {
        return x;
    }
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// The standard normal CDF `Φ(x) = erfc(-x/√2) / 2`, accurate in both tails.
fn normal_cdf<T: Real>(x: T) -> T {
    T::of(0.5 * libm::erfc(-x.as_f64() * std::f64::consts::FRAC_1_SQRT_2))
}

/// The logistic sigmoid, `σ(x) = 1 / (1 + e^-x)`.
///
/// Its Maclaurin series is `1/2 + x/4 - x³/48 + x⁵/480 - …`.
///
/// ```
/// use polyact::{Activation, Sigmoid};
/// assert!((Sigmoid.eval(0.0_f64) - 0.5).abs() < 1e-15);
/// assert!((Sigmoid.eval(-1e4_f32)).abs() < 1e-30); // no overflow
/// assert!((Sigmoid::derivative_from_output(0.5_f64) - 0.25).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Sigmoid;

impl Sigmoid {
    /// The derivative written in terms of the output `y = σ(x)`: `σ'(x) = y (1 - y)`.
    pub fn derivative_from_output<T: Real>(y: T) -> T {
        y * (T::one() - y)
    }
}

impl<T: Real> Activation<T> for Sigmoid {
    fn name(&self) -> &str {
        "sigmoid"
    }
    fn eval(&self, x: T) -> T {
        sigmoid(x)
    }
    /// `σ′(x) = e^{−|x|} / (1 + e^{−|x|})²`: the same as `σ(x)(1 − σ(x))`, without the
    /// cancellation that makes that form 0 for large `x` (σ′(40) ≈ 4.2·10⁻¹⁸ in `f64`).
    fn derivative(&self, x: T) -> T {
        let t = (-x.abs()).exp();
        t / ((T::one() + t) * (T::one() + t))
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("1/(1+exp(-x))"))
    }
}

/// The hyperbolic tangent, `tanh x`.
///
/// Its Maclaurin series is `x - x³/3 + 2x⁵/15 - …`.
///
/// ```
/// use polyact::{Activation, Tanh};
/// assert!((Tanh.eval(1e4_f32) - 1.0).abs() < 1e-7);
/// assert!((Tanh::derivative_from_output(0.0_f64) - 1.0).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tanh;

impl Tanh {
    /// The derivative written in terms of the output `y = tanh x`: `1 - y²`.
    pub fn derivative_from_output<T: Real>(y: T) -> T {
        T::one() - y * y
    }
}

impl<T: Real> Activation<T> for Tanh {
    fn name(&self) -> &str {
        "tanh"
    }
    fn eval(&self, x: T) -> T {
        x.tanh()
    }
    /// `tanh′(x) = sech² x = 4e^{−2|x|} / (1 + e^{−2|x|})²`: the same as `1 − tanh² x`, without
    /// the cancellation that loses every digit of that form in the tails (tanh′(9) in `f32`).
    fn derivative(&self, x: T) -> T {
        let t = (-(x.abs() + x.abs())).exp();
        T::of(4.0) * t / ((T::one() + t) * (T::one() + t))
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("(exp(2*x)-1)/(exp(2*x)+1)"))
    }
}

/// Softplus, `ln(1 + eˣ)`, the smooth stand-in for relu.
///
/// Its Maclaurin series is `ln 2 + x/2 + x²/8 - x⁴/192 + …`. (The study polyact reproduces
/// printed `+x⁴/192`; the coefficient is `-1/192`.)
///
/// ```
/// use polyact::{Activation, Softplus};
/// assert!((Softplus.eval(0.0_f64) - std::f64::consts::LN_2).abs() < 1e-15);
/// assert!((Softplus.eval(1e4_f32) - 1e4).abs() < 1e-3); // no overflow
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Softplus;

impl<T: Real> Activation<T> for Softplus {
    fn name(&self) -> &str {
        "softplus"
    }
    fn eval(&self, x: T) -> T {
        softplus(x)
    }
    fn derivative(&self, x: T) -> T {
        sigmoid(x)
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("log(1+exp(x))"))
    }
}

/// GELU in its exact (erf) form, `x/2 · (1 + erf(x/√2)) = x · Φ(x)`.
///
/// Evaluated through `erfc`, so it stays accurate for large negative inputs.
///
/// ```
/// use polyact::{Activation, Gelu};
/// assert!((Gelu.eval(1.0_f64) - 0.841_344_746_068_542_9).abs() < 1e-14);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Gelu;

impl<T: Real> Activation<T> for Gelu {
    fn name(&self) -> &str {
        "gelu"
    }
    fn eval(&self, x: T) -> T {
        at_infinity(x, T::zero(), x).unwrap_or_else(|| x * normal_cdf(x))
    }
    fn derivative(&self, x: T) -> T {
        at_infinity(x, T::zero(), T::one()).unwrap_or_else(|| {
            let density = (-(x * x) / T::of(2.0)).exp() * T::of(0.398_942_280_401_432_7);
            normal_cdf(x) + x * density
        })
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("x/2*(1+erf(x/sqrt(2)))"))
    }
}

/// SiLU (swish), `x · σ(x)`.
///
/// ```
/// use polyact::{Activation, Silu};
/// assert!((Silu.eval(0.0_f64)).abs() < 1e-15);
/// assert!(Silu.eval(f64::NEG_INFINITY).abs() < 1e-300);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Silu;

impl<T: Real> Activation<T> for Silu {
    fn name(&self) -> &str {
        "silu"
    }
    fn eval(&self, x: T) -> T {
        at_infinity(x, T::zero(), x).unwrap_or_else(|| x * sigmoid(x))
    }
    fn derivative(&self, x: T) -> T {
        at_infinity(x, T::zero(), T::one()).unwrap_or_else(|| {
            // 1 − σ(x) as σ(−x): no cancellation where σ(x) is close to 1.
            let s = sigmoid(x);
            s + x * s * sigmoid(-x)
        })
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("x/(1+exp(-x))"))
    }
}

/// Mish, `x · tanh(softplus(x))`.
///
/// Its formula for the series engine is the equivalent rational form in `eˣ`,
/// `x((1+eˣ)² - 1)/((1+eˣ)² + 1)`, which expands orders of magnitude faster than the nested one.
///
/// ```
/// use polyact::{Activation, Mish};
/// assert!((Mish.eval(1.0_f64) - 0.865_098_388_267_310_3).abs() < 1e-14);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Mish;

impl<T: Real> Activation<T> for Mish {
    fn name(&self) -> &str {
        "mish"
    }
    fn eval(&self, x: T) -> T {
        at_infinity(x, T::zero(), x).unwrap_or_else(|| x * softplus(x).tanh())
    }
    fn derivative(&self, x: T) -> T {
        at_infinity(x, T::zero(), T::one()).unwrap_or_else(|| {
            // sech² of softplus(x) as tanh′ computes it, without the cancellation of 1 − t².
            let sp = softplus(x);
            sp.tanh() + x * Activation::<T>::derivative(&Tanh, sp) * sigmoid(x)
        })
    }
    fn formula(&self) -> Formula {
        Formula::Analytic(builtin("x*((1+exp(x))^2-1)/((1+exp(x))^2+1)"))
    }
}

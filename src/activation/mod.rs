//! The [`Activation`] trait and the built-in exact activations.
//!
//! Every activation is its own type, holding its own parameters, validated at construction.
//! All of them are numerically stable in `f32` and `f64` for inputs of any magnitude
//! (no overflow in `exp`), and map NaN to NaN.
//!
//! | type | f(x) | Taylor series at 0 |
//! |---|---|---|
//! | [`Sigmoid`] | 1 / (1 + e^-x) | yes |
//! | [`Tanh`] | tanh x | yes |
//! | [`Softplus`] | ln(1 + e^x) | yes |
//! | [`Gelu`] | x/2 · (1 + erf(x/√2)) | yes |
//! | [`Silu`] | x · sigmoid(x) | yes |
//! | [`Mish`] | x · tanh(softplus(x)) | yes |
//! | [`Softsign`] | x / (1 + \|x\|) | no (kink at 0) |
//! | [`Relu`] | max(x, 0) | no (kink at 0) |
//! | [`LeakyRelu`] | x if x > 0, αx otherwise | no (kink at 0) |
//! | [`Elu`] | x if x > 0, α(e^x − 1) otherwise | no (kink at 0) |
//! | [`Identity`] | x | yes |
//! | [`Square`] | x² | yes |

mod piecewise;
mod simple;
mod smooth;

pub use piecewise::{Elu, LeakyRelu, Relu, Softsign};
pub use simple::{Identity, Square};
pub use smooth::{Gelu, Mish, Sigmoid, Silu, Softplus, Tanh};

use crate::Real;
use crate::expr::Expr;

/// The symbolic definition of an activation: [`Expr`]essions in `x`, which the series engine
/// expands.
///
/// ```
/// use polyact::{Activation, Formula, Relu, Sigmoid};
/// assert_eq!(Activation::<f64>::formula(&Sigmoid), Formula::Analytic("1/(1+exp(-x))".parse()?));
/// assert!(matches!(Activation::<f64>::formula(&Relu), Formula::Piecewise { .. }));
/// // A formula of your own:
/// let own = Formula::Analytic("x/(1+x^2)".parse()?);
/// assert_eq!(own.to_string(), "x/(1+x^2)");
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Formula {
    /// One expression in `x`, analytic on the whole real line.
    Analytic(Expr),
    /// Two analytic pieces meeting at `at`, where the function is not analytic:
    /// `below` holds for `x < at`, `above` for `x > at`.
    Piecewise {
        /// Where the pieces meet.
        at: f64,
        /// The expression for `x < at`.
        below: Expr,
        /// The expression for `x > at`.
        above: Expr,
    },
}

impl std::fmt::Display for Formula {
    /// The expression, or `below if x < at, above if x > at` for a piecewise formula.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Formula::Analytic(e) => write!(f, "{e}"),
            Formula::Piecewise { at, below, above } => {
                write!(f, "{below} if x < {at}, {above} if x > {at}")
            }
        }
    }
}

/// A built-in activation's formula, written in this crate and checked by its tests; parsed
/// once per process.
pub(crate) fn builtin(text: &'static str) -> Expr {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    static PARSED: LazyLock<Mutex<HashMap<&'static str, Expr>>> = LazyLock::new(Mutex::default);
    let mut parsed = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    parsed
        .entry(text)
        .or_insert_with(|| match text.parse() {
            Ok(e) => e,
            // Unreachable: every built-in text parses (see `tests::builtin_formulas_parse`).
            Err(e) => panic!("built-in formula `{text}` does not parse: {e}"),
        })
        .clone()
}

/// A scalar activation function.
///
/// Implementors provide the value, the derivative, a name and a symbolic formula; slice and
/// in-place evaluation are provided and may be overridden for speed. The trait is object safe:
/// `Box<dyn Activation<f32>>` works.
///
/// # Conventions
/// * [`derivative`](Activation::derivative) takes the **input** `x` and returns `f'(x)`.
///   Output-based forms (`σ' = σ(1 − σ)`) have their own names on the types that offer them,
///   such as [`Sigmoid::derivative_from_output`].
/// * At a kink (relu at 0) the derivative is the left one, as in most frameworks.
/// * Evaluation never fails: NaN in gives NaN out, and ±∞ give the function's limits.
///
/// ```
/// use polyact::{Activation, Sigmoid, Tanh};
/// let acts: Vec<Box<dyn Activation<f32>>> = vec![Box::new(Sigmoid), Box::new(Tanh)];
/// let xs = [-1.0_f32, 0.0, 1.0];
/// let mut out = [0.0_f32; 3];
/// for act in &acts {
///     act.eval_slice(&xs, &mut out);
///     assert!((out[1] - act.eval(0.0)).abs() < 1e-7);
/// }
/// assert!((Sigmoid.eval(0.0_f64) - 0.5).abs() < 1e-15);
/// assert!((Activation::<f64>::derivative(&Sigmoid, 0.0) - 0.25).abs() < 1e-15);
/// ```
pub trait Activation<T: Real>: Send + Sync {
    /// A short lower-case name, e.g. `"sigmoid"`.
    fn name(&self) -> &str;

    /// The value `f(x)`.
    fn eval(&self, x: T) -> T;

    /// The derivative `f'(x)`, taking the input `x`.
    fn derivative(&self, x: T) -> T;

    /// The symbolic definition that the series engine expands.
    fn formula(&self) -> Formula;

    /// Writes `f(xs[i])` into `out[i]`.
    ///
    /// # Panics
    /// Panics if `xs` and `out` differ in length.
    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        assert_eq!(
            xs.len(),
            out.len(),
            "eval_slice: input and output lengths differ"
        );
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = self.eval(x);
        }
    }

    /// Replaces every `x` in `xs` by `f(x)`.
    fn eval_in_place(&self, xs: &mut [T]) {
        for x in xs.iter_mut() {
            *x = self.eval(*x);
        }
    }

    /// Writes `f'(xs[i])` into `out[i]`.
    ///
    /// # Panics
    /// Panics if `xs` and `out` differ in length.
    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        assert_eq!(
            xs.len(),
            out.len(),
            "derivative_slice: input and output lengths differ"
        );
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = self.derivative(x);
        }
    }
}

impl<T: Real, A: Activation<T> + ?Sized> Activation<T> for &A {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn eval(&self, x: T) -> T {
        (**self).eval(x)
    }
    fn derivative(&self, x: T) -> T {
        (**self).derivative(x)
    }
    fn formula(&self) -> Formula {
        (**self).formula()
    }
    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        (**self).eval_slice(xs, out)
    }
    fn eval_in_place(&self, xs: &mut [T]) {
        (**self).eval_in_place(xs)
    }
    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        (**self).derivative_slice(xs, out)
    }
}

impl<T: Real, A: Activation<T> + ?Sized> Activation<T> for Box<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn eval(&self, x: T) -> T {
        (**self).eval(x)
    }
    fn derivative(&self, x: T) -> T {
        (**self).derivative(x)
    }
    fn formula(&self) -> Formula {
        (**self).formula()
    }
    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        (**self).eval_slice(xs, out)
    }
    fn eval_in_place(&self, xs: &mut [T]) {
        (**self).eval_in_place(xs)
    }
    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        (**self).derivative_slice(xs, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Elu, Gelu, Identity, LeakyRelu, Mish, Relu, Sigmoid, Silu, Softplus, Softsign};
    use crate::{Square, Tanh};

    #[test]
    fn builtin_formulas_parse() {
        let all: Vec<Box<dyn Activation<f64>>> = vec![
            Box::new(Sigmoid),
            Box::new(Tanh),
            Box::new(Softplus),
            Box::new(Gelu),
            Box::new(Silu),
            Box::new(Mish),
            Box::new(Softsign),
            Box::new(Relu),
            Box::new(LeakyRelu::new(0.01).unwrap()),
            Box::new(Elu::new(1.5).unwrap()),
            Box::new(Identity),
            Box::new(Square),
        ];
        for act in &all {
            let text = act.formula().to_string();
            assert!(!text.is_empty(), "{}", act.name());
        }
        assert_eq!(
            LeakyRelu::new(0.01).unwrap().formula_text(),
            "1/100*x if x < 0, x if x > 0"
        );
    }

    trait FormulaText {
        fn formula_text(&self) -> String;
    }
    impl<A: Activation<f64>> FormulaText for A {
        fn formula_text(&self) -> String {
            self.formula().to_string()
        }
    }
}

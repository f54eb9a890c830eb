//! Neural-network activation functions and their polynomial replacements.
//!
//! Homomorphic encryption evaluates additions and multiplications only, so a network that must
//! run on encrypted data needs polynomial activations. polyact derives them and measures them:
//!
//! * [`Activation`]: one small trait, generic over the float type, with a type per built-in
//!   function ([`Sigmoid`], [`Tanh`], [`Relu`], [`Softplus`], [`Gelu`], [`Silu`], [`Mish`],
//!   [`Elu`], [`LeakyRelu`], [`Softsign`], [`Identity`], [`Square`]), all numerically stable.
//! * [`Polynomial`]: ascending coefficients that keep their exact value ([`Coefficient`]),
//!   Horner evaluation with fused multiply-add, a vectorised slice kernel, exact derivative and
//!   adjustments, and the [cost](Polynomial::cost) of evaluating it under encryption.
//! * [`taylor`] (feature `symbolica`): exact Taylor and Maclaurin polynomials of any activation
//!   or formula, derived symbolically.
//! * [`fit`]: least-squares, Chebyshev and minimax (Remez) polynomials on an interval, and an
//!   [error report](fit::ErrorReport) for any polynomial against any activation.
//! * [`presets`]: the hand-adjusted polynomials of the study polyact reproduces.
//! * `nn` (feature `candle`): candle layers for every activation, a fused polynomial op that
//!   trains, and learnable polynomial activations.
//!
//! # Quick start
//!
//! ```
//! # #[cfg(feature = "symbolica")] {
//! use polyact::{Activation, Sigmoid, fit, taylor_poly};
//!
//! let p = taylor_poly(Sigmoid, 5)?;
//! assert_eq!(p.to_string(), "1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5");
//! assert_eq!(p.coefficients()[3].to_string(), "-1/48");
//! assert!((p.eval(0.5_f32) - Sigmoid.eval(0.5_f32)).abs() < 1e-4);
//!
//! // The series is exact at 0 and useless far from it; a minimax fit spreads the error evenly.
//! let taylor_error = fit::error_report(&p, &Sigmoid, -5.0..=5.0)?;
//! let minimax = fit::minimax(&Sigmoid, 5, -5.0..=5.0)?;
//! assert!(taylor_error.max_abs > 4.0);
//! assert!(minimax.report.max_abs < 0.012);
//! # }
//! # Ok::<(), polyact::Error>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `symbolica` | yes | the [`taylor`] module (Symbolica computer algebra; see its licence terms) |
//! | `candle` | yes | the `nn` module: candle 0.11 layers |
//! | `cuda` | no | candle's `cuda` feature plus polyact's fused CUDA kernels (needs nvcc: `scripts/cuda-toolkit.sh`; compiled, not yet run on a GPU) |
//! | `he` | no | the `he` module: encrypted evaluation of polynomials and dense heads (BFV, pure Rust, fhe.rs) |
//!
//! Without default features the crate is pure Rust numerics: activations, polynomials, fits.
//!
//! # Accuracy and domain
//!
//! A polynomial is only close to its activation on some interval, and always diverges outside
//! it. Taylor polynomials are exact at the expansion point and degrade quickly away from it;
//! fitted polynomials carry their interval as [`Polynomial::domain`], and the candle layers can
//! report or clamp inputs that leave it. Use [`fit::error_report`] to see how far any polynomial
//! strays on the inputs your network actually sees.
//!
//! # Conventions
//!
//! * Coefficients are in **ascending** powers: `coefficients()[k]` multiplies `x^k`.
//! * [`Activation::derivative`] takes the **input** `x`; output-based forms have their own names
//!   ([`Sigmoid::derivative_from_output`]).
//! * Evaluation never fails: NaN in gives NaN out. Construction, derivation and fitting return
//!   [`Error`].
#![warn(missing_docs)]
#![deny(clippy::float_cmp)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod activation;
mod coefficient;
mod error;
pub mod expr;
pub mod fit;
#[cfg(feature = "he")]
#[cfg_attr(docsrs, doc(cfg(feature = "he")))]
pub mod he;
mod interval;
#[cfg(feature = "candle")]
#[cfg_attr(docsrs, doc(cfg(feature = "candle")))]
pub mod nn;
mod polynomial;
pub mod presets;
mod real;
pub mod registry;
#[cfg(feature = "symbolica")]
#[cfg_attr(docsrs, doc(cfg(feature = "symbolica")))]
pub mod taylor;

pub use activation::{
    Activation, Elu, Formula, Gelu, Identity, LeakyRelu, Mish, Relu, Sigmoid, Silu, Softplus,
    Softsign, Square, Tanh,
};
pub use coefficient::{Coefficient, Exact};
pub use error::{Error, Result};
pub use interval::Interval;
pub use polynomial::{EncryptedCost, Polynomial};
pub use polynomial::{kernel, plan};
pub use real::Real;
#[cfg(feature = "symbolica")]
pub use taylor::{
    TaylorSeries, taylor_poly, taylor_poly_at, taylor_poly_formula, taylor_series,
    taylor_series_formula,
};

// The README's Rust examples run as doctests, so they cannot drift from the API. They use the
// default features (the derivation and the candle layers).
#[cfg(all(doctest, feature = "symbolica", feature = "candle"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

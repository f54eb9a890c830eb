//! Candle layers: every activation of the crate, a fused polynomial op that trains at full
//! speed, and polynomial activations with learnable coefficients (feature `candle`).
//!
//! | layer | what it computes | parameters |
//! |---|---|---|
//! | [`Act`] | any [`TensorActivation`]: the built-ins, a [`Polynomial`](crate::Polynomial), your own through [`Elementwise`] | none |
//! | [`PolyAct`] | a fixed polynomial, as one fused op, with a [`RangeGuard`] | none |
//! | [`LearnablePoly`] | a polynomial whose coefficients are [`Var`](candle_core::Var)s, fused, with a [`RangeGuard`] | `c0 … cN` |
//!
//! All three implement [`candle_nn::Module`] and take their device and dtype from the input.
//!
//! # Dropping a polynomial activation into a candle model
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{Linear, VarBuilder, VarMap, linear};
//! use polyact::nn::{LearnablePoly, PolyAct};
//!
//! /// A two-layer perceptron whose hidden activation is the study's adjusted sigmoid
//! /// polynomial, trained along with the weights.
//! struct Mlp {
//!     hidden: Linear,
//!     act: LearnablePoly,
//!     out: Linear,
//! }
//!
//! impl Mlp {
//!     fn new(vb: VarBuilder) -> candle_core::Result<Self> {
//!         Ok(Self {
//!             hidden: linear(4, 16, vb.pp("hidden"))?,
//!             act: LearnablePoly::new(&polyact::presets::m_sigmoid(), vb.pp("act"))?,
//!             out: linear(16, 3, vb.pp("out"))?,
//!         })
//!     }
//! }
//!
//! impl Module for Mlp {
//!     fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
//!         self.out.forward(&self.act.forward(&self.hidden.forward(xs)?)?)
//!     }
//! }
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let model = Mlp::new(vb)?;
//! let xs = Tensor::zeros((8, 4), DType::F32, &Device::Cpu)?;
//! assert_eq!(model.forward(&xs)?.dims(), &[8, 3]);
//!
//! // A fixed polynomial works the same way, e.g. in a `Sequential`:
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let seq = candle_nn::seq()
//!     .add(linear(4, 16, vb.pp("a"))?)
//!     .add(PolyAct::new(&polyact::presets::m_tanh()))
//!     .add(linear(16, 3, vb.pp("b"))?);
//! assert_eq!(seq.forward(&xs)?.dims(), &[8, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Devices: what was and was not tested
//!
//! * **CPU**: everything here is tested on the CPU, in `f32`, `f64`, `f16` and `bf16`, against
//!   the scalar [`Activation`](crate::Activation) trait, the unfused tensor-op composite and
//!   finite differences. The fused kernels run in parallel over the cores (rayon) and use
//!   hardware FMA when the CPU has it.
//! * **CUDA** (polyact's `cuda` feature, which turns on candle's): the fused ops of [`PolyAct`]
//!   and [`LearnablePoly`] (forward, input gradient, coefficient gradients, clamping) have CUDA
//!   kernels (`kernels/polyact.cu`, compiled to PTX at build time), in the same four dtypes,
//!   for contiguous and strided tensors. They compile, but have not yet run on a GPU: see
//!   `docs/cuda.md` for the build recipe and what remains unverified; `tests/cuda.rs` compares
//!   them with the CPU where a GPU is present. [`Elementwise`] stays CPU only (it calls a Rust
//!   function on host memory) and refuses tensors elsewhere.
//! * **Metal**: the layers evaluate Horner's rule as ordinary tensor ops, and the built-in
//!   activations of [`Act`] use candle's ops, so they should work, more slowly; untested.
//!
//! # Range guard
//!
//! A polynomial only tracks the function it replaces on the interval it was fitted on, and its
//! top power takes over outside: the usual cause of NaN in polynomial networks. The polynomial
//! layers carry that interval ([`RangeGuard`]), report the fraction of inputs outside it and can
//! clamp to it; [`out_of_range`] measures any tensor.

mod act;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod guard;
mod kernels;
mod learnable;
mod poly_act;

pub use act::{Act, Elementwise, NoEquivalent, TensorActivation};
pub use guard::{Guarded, RangeGuard, RangeReport, out_of_range};
pub use learnable::LearnablePoly;
pub use poly_act::PolyAct;

/// Fails unless the two operands of a binary op (CPU or CUDA) agree in shape and dtype.
pub(crate) fn check_pair(
    dx: candle_core::DType,
    lx: &candle_core::Layout,
    dg: candle_core::DType,
    lg: &candle_core::Layout,
    op: &'static str,
) -> candle_core::Result<()> {
    if lx.shape() != lg.shape() {
        return Err(candle_core::Error::ShapeMismatchBinaryOp {
            lhs: lx.shape().clone(),
            rhs: lg.shape().clone(),
            op,
        }
        .bt());
    }
    if dx != dg {
        return Err(candle_core::Error::DTypeMismatchBinaryOp {
            lhs: dx,
            rhs: dg,
            op,
        }
        .bt());
    }
    Ok(())
}

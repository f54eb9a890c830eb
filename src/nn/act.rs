//! Any activation of the crate as a candle layer.

use std::fmt;
use std::sync::Arc;

use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, Layout, Module, Result, Shape, Tensor,
};

use super::cpu::{self, Compute, Map1, Map2};
use super::poly_act::poly_forward;
use crate::{
    Activation, Elu, Gelu, Identity, LeakyRelu, Mish, Polynomial, Relu, Sigmoid, Silu, Softplus,
    Softsign, Square, Tanh,
};

/// An activation that can be applied to a candle tensor, elementwise and differentiably.
///
/// Each built-in activation implements it once, in terms of candle's own ops where candle has
/// the exact function (`tanh`, `relu`, `gelu_erf`, `silu`, `elu`, `candle_nn::ops::sigmoid`), as
/// a numerically stable composition of tensor ops where it has not (softplus, mish, softsign,
/// leaky relu, square), and [`Polynomial`] as polyact's fused op (CPU, and CUDA with the `cuda`
/// feature; tensor ops elsewhere). Those all work on any device and dtype candle supports for
/// the ops involved.
///
/// An activation of your own gets a tensor form by implementing this trait with tensor ops, or
/// without writing any tensor code through [`Elementwise`], which evaluates its scalar
/// [`Activation::eval`] and [`Activation::derivative`] in a fused elementwise op (CPU only).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use polyact::nn::TensorActivation;
/// use polyact::{Activation, Tanh};
/// let xs = Tensor::new(&[-1.0_f64, 0.5], &Device::Cpu)?;
/// let ys = Tanh.forward(&xs)?.to_vec1::<f64>()?;
/// assert!((ys[1] - Tanh.eval(0.5_f64)).abs() < 1e-12);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub trait TensorActivation: Activation<f32> + Activation<f64> + 'static {
    /// `f(xs)` elementwise, on `xs`'s device and in its dtype, tracked for autograd.
    ///
    /// # Errors
    /// Candle's, if a tensor op fails (an unsupported dtype or device, for example).
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use polyact::nn::TensorActivation;
    /// let xs = Tensor::new(&[-1.0_f32, 3.0], &Device::Cpu)?.to_dtype(DType::BF16)?;
    /// let ys = polyact::Relu.forward(&xs)?;
    /// assert_eq!(ys.dtype(), DType::BF16);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;
}

impl TensorActivation for Sigmoid {
    /// `candle_nn::ops::sigmoid`, exact `1 / (1 + e^-x)`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(xs)
    }
}

impl TensorActivation for Tanh {
    /// candle's `tanh`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.tanh()
    }
}

impl TensorActivation for Relu {
    /// candle's `relu`. Its gradient at exactly 0 is candle's (1), not polyact's left one (0).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.relu()
    }
}

impl TensorActivation for Gelu {
    /// candle's `gelu_erf`, the exact GELU (candle's `gelu` is the tanh approximation).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.gelu_erf()
    }
}

impl TensorActivation for Silu {
    /// candle's `silu`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.silu()
    }
}

impl TensorActivation for Elu {
    /// candle's `elu` with this `alpha`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.elu(self.alpha())
    }
}

/// `ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)`: no overflow, and every intermediate gradient
/// is finite. (Without a tensor `log1p`, the result is exact to a few units in the last place of
/// 1 in absolute terms; far in the negative tail, where softplus is below the precision of 1,
/// its relative accuracy drops.)
fn stable_softplus(xs: &Tensor) -> Result<Tensor> {
    let tail = (xs.abs()?.neg()?.exp()? + 1.0)?.log()?;
    xs.relu()? + tail
}

impl TensorActivation for Softplus {
    /// `max(x, 0) + ln(1 + e^-|x|)` as tensor ops.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        stable_softplus(xs)
    }
}

impl TensorActivation for Mish {
    /// `x · tanh(softplus(x))` with the stable softplus.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs * stable_softplus(xs)?.tanh()?
    }
}

impl TensorActivation for Softsign {
    /// `x / (1 + |x|)` as tensor ops.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs / (xs.abs()? + 1.0)?
    }
}

impl TensorActivation for LeakyRelu {
    /// `candle_nn::ops::leaky_relu`, `max(x, 0) + α·min(x, 0)`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::leaky_relu(xs, self.alpha())
    }
}

impl TensorActivation for Identity {
    /// The input itself (same tensor, gradient passes through).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.clone())
    }
}

impl TensorActivation for Square {
    /// candle's `sqr`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.sqr()
    }
}

impl TensorActivation for Polynomial {
    /// polyact's fused op on the CPU and, with the `cuda` feature, on CUDA devices (see
    /// [`PolyAct`](super::PolyAct), which adds a range guard); Horner's rule as tensor ops
    /// elsewhere.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        poly_forward(&self.coefficients_f64(), None, xs)
    }
}

/// Any scalar [`Activation`] as a fused elementwise tensor op, so that activations defined
/// outside polyact work, and train, in candle without tensor code.
///
/// Forward calls the activation's `eval_slice`, backward its `derivative_slice` times the
/// incoming gradient, each in one parallel pass; `f32` and `f64` tensors use the activation's
/// own precision, `f16` and `bf16` are evaluated in `f32`. CPU only: on another device the
/// forward pass returns an error saying so.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use polyact::nn::{Act, Elementwise};
/// use polyact::{Activation, Formula, Real};
///
/// /// x / (1 + x²): not one of polyact's built-ins.
/// struct Bump;
/// impl<T: Real> Activation<T> for Bump {
///     fn name(&self) -> &str { "bump" }
///     fn eval(&self, x: T) -> T { x / (T::one() + x * x) }
///     fn derivative(&self, x: T) -> T {
///         let d = T::one() + x * x;
///         (T::one() - x * x) / (d * d)
///     }
///     fn formula(&self) -> Formula { Formula::Analytic("x/(1+x^2)".parse().expect("parses")) }
/// }
///
/// let layer = Act::new(Elementwise::new(Bump));
/// let xs = Tensor::new(&[2.0_f32], &Device::Cpu)?;
/// let ys = layer.forward(&xs)?.to_vec1::<f32>()?;
/// assert!((ys[0] - 0.4).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub struct Elementwise<A>(Arc<A>);

impl<A> Elementwise<A> {
    /// Wraps `activation`.
    ///
    /// ```
    /// let e = polyact::nn::Elementwise::new(polyact::Sigmoid);
    /// assert_eq!(polyact::Activation::<f32>::name(&e), "sigmoid");
    /// ```
    pub fn new(activation: A) -> Self {
        Self(Arc::new(activation))
    }
}

impl<A> Clone for Elementwise<A> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<A: Activation<f32> + Activation<f64>> fmt::Debug for Elementwise<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Elementwise")
            .field(&Activation::<f32>::name(&*self.0))
            .finish()
    }
}

impl<T: crate::Real, A: Activation<T>> Activation<T> for Elementwise<A> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn eval(&self, x: T) -> T {
        self.0.eval(x)
    }
    fn derivative(&self, x: T) -> T {
        self.0.derivative(x)
    }
    fn formula(&self) -> crate::Formula {
        self.0.formula()
    }
    fn eval_slice(&self, xs: &[T], out: &mut [T]) {
        self.0.eval_slice(xs, out)
    }
    fn eval_in_place(&self, xs: &mut [T]) {
        self.0.eval_in_place(xs)
    }
    fn derivative_slice(&self, xs: &[T], out: &mut [T]) {
        self.0.derivative_slice(xs, out)
    }
}

impl<A: Activation<f32> + Activation<f64> + 'static> TensorActivation for Elementwise<A> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() {
            candle_core::bail!(
                "polyact::nn::Elementwise({}) runs on the CPU only, and the tensor is on {:?}; \
                 implement TensorActivation with tensor ops for other devices",
                Activation::<f32>::name(&*self.0),
                xs.device().location()
            );
        }
        xs.apply_op1(ElementwiseOp(Arc::clone(&self.0)))
    }
}

/// The error for [`Elementwise`]'s ops on a GPU: they call a Rust function on host memory, and
/// a Rust function cannot be compiled into a CUDA kernel at run time.
fn host_only(op: &str) -> candle_core::Error {
    candle_core::Error::Cuda(
        format!(
            "polyact's {op} evaluates a Rust Activation on the host and has no GPU kernel \
             (a Rust function cannot run on the GPU); implement TensorActivation with tensor \
             ops for other devices"
        )
        .into(),
    )
}

/// The fused op behind [`Elementwise`].
struct ElementwiseOp<A>(Arc<A>);

impl<A: Activation<f32> + Activation<f64>> Map1 for ElementwiseOp<A> {
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], out: &mut [C]) {
        C::eval(&*self.0, x, out);
    }
}

impl<A: Activation<f32> + Activation<f64>> Map2 for ElementwiseOp<A> {
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], g: &[C], out: &mut [C]) {
        C::derivative(&*self.0, x, out);
        for (o, &g) in out.iter_mut().zip(g) {
            *o = *o * g;
        }
    }
}

impl<A: Activation<f32> + Activation<f64> + 'static> CustomOp1 for ElementwiseOp<A> {
    fn name(&self) -> &'static str {
        "polyact-elementwise"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = cpu::map1(self, storage, layout, self.name())?;
        Ok((out, layout.shape().clone()))
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        Err(host_only("elementwise activation op"))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        arg.apply_op2_no_bwd(grad_res, &ElementwiseGradOp(Arc::clone(&self.0)))
            .map(Some)
    }
}

/// The backward pass of [`ElementwiseOp`]: `(x, g) ↦ g · f'(x)`.
struct ElementwiseGradOp<A>(Arc<A>);

impl<A: Activation<f32> + Activation<f64> + 'static> CustomOp2 for ElementwiseGradOp<A> {
    fn name(&self) -> &'static str {
        "polyact-elementwise-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let kernel = ElementwiseOp(Arc::clone(&self.0));
        let out = cpu::map2(&kernel, x, lx, g, lg, self.name())?;
        Ok((out, lx.shape().clone()))
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Err(host_only("elementwise activation gradient op"))
    }
}

/// Any activation of the crate as a candle layer ([`candle_nn::Module`]).
///
/// `Act::new(Sigmoid)` applies the activation's [`TensorActivation`] form: candle's own exact
/// op where there is one, a stable tensor-op composition otherwise, polyact's fused op for a
/// [`Polynomial`] (use [`PolyAct`](super::PolyAct) for its range guard). Wrap an activation of
/// your own in [`Elementwise`] to use it without tensor code. `Act` is cheap to clone and has
/// no parameters; the activation can be chosen at run time.
///
/// Candle's [`candle_nn::Activation`] converts with `Act::try_from` where polyact has the same
/// function.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use polyact::nn::Act;
/// use polyact::{Activation, Sigmoid};
/// let layer = Act::new(Sigmoid);
/// assert_eq!(layer.name(), "sigmoid");
/// let xs = Tensor::new(&[-30.0_f32, 0.0, 2.0], &Device::Cpu)?;
/// let ys = layer.forward(&xs)?.to_vec1::<f32>()?;
/// for (y, x) in ys.iter().zip([-30.0_f32, 0.0, 2.0]) {
///     assert!((y - Sigmoid.eval(x)).abs() < 1e-6);
/// }
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Act {
    activation: Arc<dyn TensorActivation>,
}

impl Act {
    /// The layer applying `activation`.
    ///
    /// ```
    /// let layers = [polyact::nn::Act::new(polyact::Relu), polyact::nn::Act::new(polyact::Mish)];
    /// assert_eq!(layers[1].name(), "mish");
    /// ```
    pub fn new(activation: impl TensorActivation) -> Self {
        Self {
            activation: Arc::new(activation),
        }
    }

    /// The activation's name, e.g. `"sigmoid"`.
    ///
    /// ```
    /// assert_eq!(polyact::nn::Act::new(polyact::Gelu).name(), "gelu");
    /// ```
    pub fn name(&self) -> &str {
        Activation::<f32>::name(&*self.activation)
    }

    /// The activation, as its scalar form in `f64` (for example to compare against).
    ///
    /// ```
    /// let layer = polyact::nn::Act::new(polyact::Tanh);
    /// assert!((layer.scalar().eval(0.0)).abs() < 1e-15);
    /// ```
    pub fn scalar(&self) -> &dyn Activation<f64> {
        // Upcast from `dyn TensorActivation` to its supertrait.
        &*self.activation
    }
}

impl fmt::Debug for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Act")
            .field("activation", &self.name())
            .finish()
    }
}

impl Module for Act {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.activation.forward(xs)
    }
}

impl From<crate::registry::Builtin> for Act {
    /// The layer for a built-in activation named in the [registry](crate::registry).
    ///
    /// ```
    /// use polyact::registry::Builtin;
    /// let layer = polyact::nn::Act::from("leaky_relu:0.2".parse::<Builtin>()?);
    /// assert_eq!(layer.name(), "leaky_relu");
    /// # Ok::<(), polyact::Error>(())
    /// ```
    fn from(builtin: crate::registry::Builtin) -> Self {
        use crate::registry::Builtin as B;
        match builtin {
            B::Sigmoid => Act::new(Sigmoid),
            B::Relu => Act::new(Relu),
            B::Tanh => Act::new(Tanh),
            B::Softplus => Act::new(Softplus),
            B::Gelu => Act::new(Gelu),
            B::Silu => Act::new(Silu),
            B::Mish => Act::new(Mish),
            B::Softsign => Act::new(Softsign),
            B::Identity => Act::new(Identity),
            B::Square => Act::new(Square),
            B::Elu(a) => Act::new(a),
            B::LeakyRelu(a) => Act::new(a),
        }
    }
}

/// A [`candle_nn::Activation`] that polyact has no equivalent for.
///
/// ```
/// use polyact::nn::{Act, NoEquivalent};
/// let err = Act::try_from(candle_nn::Activation::NewGelu).unwrap_err();
/// assert_eq!(err.activation, candle_nn::Activation::NewGelu);
/// assert!(err.to_string().contains("tanh approximation"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("candle activation {activation:?} has no polyact equivalent: {reason}")]
#[non_exhaustive]
pub struct NoEquivalent {
    /// The activation that was given.
    pub activation: candle_nn::Activation,
    /// Why there is no equivalent, and what to use instead.
    pub reason: String,
}

impl TryFrom<candle_nn::Activation> for Act {
    type Error = NoEquivalent;

    /// The polyact activation computing the same function as candle's:
    ///
    /// | candle | polyact |
    /// |---|---|
    /// | `Gelu` (erf form, `gelu_erf`) | [`Gelu`] |
    /// | `Relu` | [`Relu`] |
    /// | `Silu`, `Swish` | [`Silu`] |
    /// | `Sigmoid` | [`Sigmoid`] |
    /// | `Mish` | [`Mish`] |
    /// | `Elu(α)`, `LeakyRelu(α)` | [`Elu`], [`LeakyRelu`] (α finite and ≥ 0) |
    ///
    /// # Errors
    /// [`NoEquivalent`] for `NewGelu` and `GeluPytorchTanh` (the tanh approximation of GELU),
    /// `Relu2`, `Relu6`, `HardSigmoid`, `HardSwish`, `Swiglu` (which halves its input), and for
    /// `Elu` or `LeakyRelu` with a negative or non-finite α.
    ///
    /// ```
    /// use polyact::nn::Act;
    /// let act = Act::try_from(candle_nn::Activation::Gelu)?;
    /// assert_eq!(act.name(), "gelu");
    /// assert_eq!(Act::try_from(candle_nn::Activation::Swish)?.name(), "silu");
    /// assert!(Act::try_from(candle_nn::Activation::Elu(-1.0)).is_err());
    /// # Ok::<(), polyact::nn::NoEquivalent>(())
    /// ```
    fn try_from(activation: candle_nn::Activation) -> std::result::Result<Self, NoEquivalent> {
        use candle_nn::Activation as C;
        let none = |reason: &str| NoEquivalent {
            activation,
            reason: reason.into(),
        };
        let invalid = |err: crate::Error| NoEquivalent {
            activation,
            reason: err.to_string(),
        };
        Ok(match activation {
            C::Gelu => Act::new(Gelu),
            C::Relu => Act::new(Relu),
            C::Silu | C::Swish => Act::new(Silu),
            C::Sigmoid => Act::new(Sigmoid),
            C::Mish => Act::new(Mish),
            C::Elu(alpha) => Act::new(Elu::new(alpha).map_err(invalid)?),
            C::LeakyRelu(alpha) => Act::new(LeakyRelu::new(alpha).map_err(invalid)?),
            C::NewGelu | C::GeluPytorchTanh => Err(none(
                "it is the tanh approximation of GELU; polyact's Gelu is the exact erf form \
                 (candle_nn::Activation::Gelu)",
            ))?,
            C::Swiglu => Err(none(
                "swiglu is not elementwise (it halves the last dimension)",
            ))?,
            C::Relu2 | C::Relu6 | C::HardSigmoid | C::HardSwish => {
                Err(none("polyact has no such activation; keep candle's"))?
            }
        })
    }
}

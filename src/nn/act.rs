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
/// Each built-in activation implements it once. Sigmoid, tanh and relu are candle's own ops
/// (`candle_nn::ops::sigmoid`, `tanh`, `relu`), identity and square trivially exact. GELU,
/// SiLU, ELU, softplus, mish, softsign and leaky relu are, on the CPU, polyact's fused
/// elementwise op evaluating their scalar [`Activation::eval`] and [`Activation::derivative`]
/// (accurate everywhere, one parallel pass each way), and on other devices numerically stable
/// compositions of tensor ops that keep the tails and give the limits, with finite gradients,
/// at ±∞; each implementation's documentation states its accuracy. [`Polynomial`] is polyact's
/// fused polynomial op (CPU, and CUDA with the `cuda` feature; tensor ops elsewhere). NaN gives
/// NaN, except candle's relu (0 in `f32` and `f64`). The fused ops take `f32`, `f64`, `f16` and `bf16` (the half
/// types evaluated in `f32`), and have no gradients of gradients.
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
    /// `candle_nn::ops::sigmoid`, `1 / (1 + e^-x)`: accurate values, 0 and 1 at ∓∞ with
    /// gradient 0. The gradient is candle's `y(1 − y)` from the output `y`, which is 0 where `y`
    /// rounds to 1 (x above about 17 in `f32`, 37 in `f64`): an absolute error below `ε`, no
    /// relative accuracy there.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(xs)
    }
}

impl TensorActivation for Tanh {
    /// candle's `tanh`: accurate values, ±1 at ±∞ with gradient 0. The gradient is candle's
    /// `1 − y²` from the output `y`, which is 0 where `y` rounds to ±1 (|x| above about 9 in
    /// `f32`, 19 in `f64`): an absolute error below `2ε`, no relative accuracy there.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.tanh()
    }
}

impl TensorActivation for Relu {
    /// candle's `relu`: exact, 0 at −∞ and +∞ at +∞. Its gradient at exactly 0 is candle's (1),
    /// not polyact's left one (0), and `relu(NaN)` is 0 (candle's `max(x, 0)` drops NaN on
    /// the CPU, and on CUDA in `f32` and `f64`; CUDA's half-type `max` keeps it).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.relu()
    }
}

impl TensorActivation for Gelu {
    /// The CPU: polyact's fused op, `x·Φ(x)` through `erfc` ([`Gelu`]'s scalar `eval` and
    /// `derivative`): accurate to a few ulp everywhere, the negative tail included, 0 at −∞
    /// with gradient 0, `x` at +∞ with gradient 1.
    ///
    /// Other devices: candle's `gelu_erf` where `|x| < 1000` (0 below −1000), `x` itself from
    /// 1000 on, so that ±∞ give the limits with finite gradients (candle's alone gives NaN at
    /// −∞ and NaN gradients at ±∞). Its accuracy is candle's: on CUDA the value is
    /// `x·normcdf(x)`, accurate in the tails (candle's CPU kernel, `½x(1 + erf(x/√2))`, is not
    /// below about −5); the gradient is candle's composite
    /// `½ + ½·erf(x/√2) + 0.398942·x·e^{−x²/2}`, good to about 2e-7 in absolute terms (its
    /// six-digit constant), with no relative accuracy in the negative tail.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused_on_cpu(*self, xs, forms::gelu)
    }
}

impl TensorActivation for Silu {
    /// The CPU: polyact's fused op ([`Silu`]'s scalar `eval` and `derivative`), accurate
    /// everywhere; 0 at −∞ with gradient 0, `x` at +∞ with gradient 1.
    ///
    /// Other devices: `x·σ(x)` with `σ` computed from `e^{−|x|}` (no overflow), where
    /// `|x| < 1000` (0 below −1000), `x` itself from 1000 on. Value and gradient are accurate
    /// to a few ulp, the tails included. (candle's `silu` alone is NaN at −∞, its gradient NaN
    /// at ±∞ and 0 instead of 1 above 2²⁴ in `f32`, 2⁵³ in `f64`, and both are 0 where `e^{−x}`
    /// overflows, from about −88.7 in `f32`.)
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused_on_cpu(*self, xs, forms::silu)
    }
}

impl TensorActivation for Elu {
    /// The CPU: polyact's fused op, `α·expm1(x)` for `x ≤ 0` ([`Elu`]'s scalar `eval` and
    /// `derivative`), accurate everywhere; `−α` at −∞ with gradient 0, `x` at +∞ with
    /// gradient 1, gradient `α` at 0.
    ///
    /// Other devices: `x` for `x > 0`; for `x ≤ 0`, `α(eˣ − 1)` below −1 and
    /// `α·2t/(1 − t)` with `t = tanh(x/2)` (the same number, without the cancellation of
    /// `eˣ − 1` near 0) from −1 to 0. Accurate to a few ulp in value and gradient, tiny inputs
    /// and the tail included. (candle's `elu` loses tiny negative inputs to that cancellation,
    /// its gradient `elu(x) + α` loses the tail, and it is NaN at +∞.)
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let alpha = self.alpha();
        fused_on_cpu(*self, xs, |xs| forms::elu(xs, alpha))
    }
}

impl TensorActivation for Softplus {
    /// The CPU: polyact's fused op, `max(x, 0) + ln_1p(e^{−|x|})` ([`Softplus`]'s scalar `eval`
    /// and `derivative`), accurate everywhere; 0 at −∞, `x` at +∞.
    ///
    /// Other devices: `max(x, 0) + ln(1 + u)` with `u = e^{−|x|}`, the logarithm corrected
    /// for the rounding of `w = 1 + u` as `ln w + (u − (w − 1))` (candle has no `log1p`):
    /// no overflow, a few ulp in value and gradient, and the negative tail kept (`≈ eˣ`,
    /// where `ln(1 + eˣ)` alone gives 0 below about −37 in `f64`, −17 in `f32`). Finite
    /// gradients everywhere, ±∞ included.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused_on_cpu(*self, xs, forms::softplus)
    }
}

impl TensorActivation for Mish {
    /// The CPU: polyact's fused op ([`Mish`]'s scalar `eval` and `derivative`), accurate
    /// everywhere; 0 at −∞ with gradient 0, `x` at +∞ with gradient 1.
    ///
    /// Other devices: `x · tanh(softplus(x))` with the tail-preserving softplus of
    /// [`Softplus`], where `|x| < 1000` (0 below −1000), `x` itself from 1000 on (so no `∞ · 0`,
    /// which made it NaN at −∞ and its gradient NaN at ±∞): a few ulp in value and gradient,
    /// the negative tail included.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused_on_cpu(*self, xs, forms::mish)
    }
}

impl TensorActivation for Softsign {
    /// The CPU: polyact's fused op ([`Softsign`]'s scalar `eval` and `derivative`), accurate
    /// everywhere; ±1 at ±∞ with gradient 0.
    ///
    /// Other devices: with `r = 1/(1 + |x|)`, `x·r` for `|x| < 1` and `sign(x)·(1 − r)`
    /// otherwise, whose gradient `r²` has none of the cancellation of `x·r`'s (a relative error
    /// of about `ε·|x|`); ±1 at ±∞ with gradient 0 (`x·r` alone is NaN there). A few ulp in
    /// value and gradient.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused_on_cpu(*self, xs, forms::softsign)
    }
}

impl TensorActivation for LeakyRelu {
    /// The CPU: polyact's fused op ([`LeakyRelu`]'s scalar `eval` and `derivative`).
    ///
    /// Other devices: `αx` where `x ≤ 0`, `x` elsewhere (NaN included), one comparison and one
    /// selection.
    ///
    /// Both exact, with gradient `α` at 0 as in the scalar form, `−∞` at −∞ (0 when `α = 0`,
    /// where `candle_nn::ops::leaky_relu` gives NaN) and `+∞` at +∞.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let alpha = self.alpha();
        fused_on_cpu(*self, xs, |xs| forms::leaky_relu(xs, alpha))
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

/// `activation` on `xs`: on the CPU in polyact's fused elementwise op (its scalar
/// [`Activation::eval`] and [`Activation::derivative`], one parallel pass each way, `f16` and
/// `bf16` in `f32`), on any other device as the tensor-op form `ops`.
fn fused_on_cpu<A: Activation<f32> + Activation<f64> + 'static>(
    activation: A,
    xs: &Tensor,
    ops: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if xs.device().is_cpu() {
        xs.apply_op1(ElementwiseOp(Arc::new(activation)))
    } else {
        ops(xs)
    }
}

/// The tensor-op forms of the built-in activations, for devices without polyact's fused op.
///
/// Every form is finite with finite gradients at every finite input and at ±∞. candle's
/// `where_cond` passes a zero gradient into the branch it did not take, and `0·∞` would turn
/// that into NaN, so no op whose backward multiplies by a function of its input (`·`, `/`,
/// `x·σ(x)`, `erf`) ever sees an infinite input; those that do (`exp`, `tanh`, `recip`, `abs`)
/// take their gradient from a finite output or divide by an infinity. Each gives NaN for NaN whatever the
/// device's `min`/`max` do with NaN (CUDA's drop it), and is accurate to a few ulp in value and
/// gradient, the tails included, except where candle's own op is not (`gelu`).
mod forms {
    use candle_core::{Result, Tensor};

    /// Past ±`BOUND` `x·σ(x)`, `x·Φ(x)` and mish equal `x` (above) or have underflowed to 0
    /// (below, in `f64` too), with their gradients; it is exact in every float dtype.
    const BOUND: f64 = 1000.0;

    /// `f(x)` for `|x| < BOUND`; `x` itself from `BOUND` on and for NaN; `f(0) = 0` below
    /// `−BOUND`, where the functions this serves have underflowed to 0 with their gradients.
    /// `f` never sees an infinite input. (A selection rather than a clamp: the clamp's
    /// backward pass costs twice as many ops, and halves the gradient at its ends.)
    fn saturating(xs: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let inside = xs.abs()?.lt(BOUND)?;
        let inner = f(&inside.where_cond(xs, &xs.zeros_like()?)?)?;
        xs.lt(BOUND)?.where_cond(&inner, xs)
    }

    /// `x·σ(x)` with `σ` from `s = e^{−|x|}`, which never overflows: `1/(1 + s)` for
    /// `x ≥ 0`, `s/(1 + s)` below; saturated. (candle's `silu`, `x/(1 + e^{−x})`, gives 0 in
    /// value and gradient where `e^{−x}` overflows: below about −88.7 in `f32`, −11.1 in
    /// `f16`, −709.8 in `f64`, where the true values are still normal numbers.)
    pub(super) fn silu(xs: &Tensor) -> Result<Tensor> {
        saturating(xs, |x| {
            let s = x.abs()?.neg()?.exp()?;
            let r = (&s + 1.0)?.recip()?;
            let sigma = x.ge(0.0)?.where_cond(&r, &(&s * &r)?)?;
            x * sigma
        })
    }

    /// candle's `gelu_erf`, saturated.
    pub(super) fn gelu(xs: &Tensor) -> Result<Tensor> {
        saturating(xs, Tensor::gelu_erf)
    }

    /// `max(x, 0) + ln(1 + u)`, `u = e^{−|x|}`, with `ln(1 + u) = ln w + (u − (w − 1))` for
    /// `w = 1 + u` rounded: `u − (w − 1)` is that rounding's error, exactly, and `ln(1 + u) −
    /// ln w` is it to first order. Where `w` rounds to 1 (the far tails) the result is `u`.
    /// Autograd gives the logarithm the gradient `1/w − 1 + 1`, which rounds to `1/w`.
    pub(super) fn softplus(xs: &Tensor) -> Result<Tensor> {
        let u = xs.abs()?.neg()?.exp()?;
        let w = (&u + 1.0)?;
        let log1p = (w.log()? + (&u - (&w - 1.0)?)?)?;
        xs.relu()? + log1p
    }

    /// `x · tanh(softplus(x))`, saturated.
    pub(super) fn mish(xs: &Tensor) -> Result<Tensor> {
        saturating(xs, |x| x * softplus(x)?.tanh()?)
    }

    /// `x·r` for `|x| < 1`, `sign(x)·(1 − r)` elsewhere, with `r = 1/(1 + |x|)`. The second
    /// form's gradient is `r²` as such; `x·r`'s is `r − |x|r²`, which cancels for large `|x|`.
    /// `sign(NaN)` is 0 in candle, and `0·NaN` is NaN.
    pub(super) fn softsign(xs: &Tensor) -> Result<Tensor> {
        let abs = xs.abs()?;
        let r = (&abs + 1.0)?.recip()?;
        let is_small = abs.lt(1.0)?;
        // x where |x| < 1, else 0: finite where the other form is taken.
        let small = (is_small.where_cond(xs, &xs.zeros_like()?)? * &r)?;
        let large = (xs.sign()? * (1.0 - &r)?)?;
        is_small.where_cond(&small, &large)
    }

    /// `x` for `x > 0` (and NaN); for `x ≤ 0`, `α(eˣ − 1)` below −1, where it has no
    /// cancellation and its gradient `α·eˣ` keeps the tail, and `α·2t/(1 − t)` with
    /// `t = tanh(x/2)` from −1 to 0, the same number without the cancellation near 0.
    pub(super) fn elu(xs: &Tensor, alpha: f64) -> Result<Tensor> {
        let non_positive = xs.le(0.0)?;
        // x where x ≤ 0 (−∞ included), else 0: finite wherever the other branch is taken.
        let neg = non_positive.where_cond(xs, &xs.zeros_like()?)?;
        let exp_form = neg.exp()?.affine(alpha, -alpha)?;
        let t = neg.affine(0.5, 0.0)?.tanh()?;
        let tanh_form = (t.affine(2.0 * alpha, 0.0)? / t.affine(-1.0, 1.0)?)?;
        let negative = neg.lt(-1.0)?.where_cond(&exp_form, &tanh_form)?;
        non_positive.where_cond(&negative, xs)
    }

    /// `αx` where `x ≤ 0`, `x` elsewhere and for NaN; 0 rather than `0·(−∞)` when `α = 0`.
    pub(super) fn leaky_relu(xs: &Tensor, alpha: f64) -> Result<Tensor> {
        let negative = if alpha > 0.0 {
            xs.affine(alpha, 0.0)?
        } else {
            xs.zeros_like()?
        };
        xs.le(0.0)?.where_cond(&negative, xs)
    }
}

/// Any activation of the crate as a candle layer ([`candle_nn::Module`]).
///
/// `Act::new(Sigmoid)` applies the activation's [`TensorActivation`] form: candle's own op
/// for sigmoid, tanh and relu; for the other smooth and piecewise built-ins polyact's fused
/// scalar op on the CPU and a stable tensor-op composition elsewhere; polyact's fused
/// polynomial op for a [`Polynomial`] (use [`PolyAct`](super::PolyAct) for its range guard).
/// Wrap an activation of your own in [`Elementwise`] to use it without tensor code. `Act` is
/// cheap to clone and has no parameters; the activation can be chosen at run time.
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

/// The tensor-op forms, which the CPU does not use, evaluated on the CPU against the scalar
/// forms (the oracle) at the inputs where tensor formulations break.
#[cfg(test)]
mod tests {
    use approx::relative_eq;
    use candle_core::{DType, Device, Result, Tensor, Var};

    use super::forms;
    use crate::{Activation, Elu, Gelu, LeakyRelu, Mish, Silu, Softplus, Softsign};

    /// `|a − b| ≤ abs` or `|a − b| ≤ rel · max(|a|, |b|)`; NaN matches NaN only.
    #[derive(Debug, Clone, Copy)]
    struct Tol {
        abs: f64,
        rel: f64,
    }

    /// A handful of rounded `f64` ops on well-conditioned inputs; the floor is the smallest
    /// normal `f64` (below it results are subnormal and have no relative accuracy).
    const F64_TOL: Tol = Tol {
        abs: f64::MIN_POSITIVE,
        rel: 1e-12,
    };
    /// The same in `f32` (ε = 1.2e-7): about 32 ulp.
    const F32_TOL: Tol = Tol {
        abs: f32::MIN_POSITIVE as f64,
        rel: 4e-6,
    };
    /// `f16` (ε = 9.8e-4) through a handful of ops rounded in `f16`; the floor is its smallest
    /// normal number.
    const F16_TOL: Tol = Tol {
        abs: 6.2e-5,
        rel: 8e-3,
    };
    /// `bf16` (ε = 7.8e-3), with `f32`'s range.
    const BF16_TOL: Tol = Tol {
        abs: f32::MIN_POSITIVE as f64,
        rel: 6e-2,
    };
    /// The GELU form is candle's `gelu_erf`: on the CPU `½x(1 + erf(x/√2))`, which cancels in
    /// the negative tail (absolute error about ε·|x|), and a gradient whose 1/√(2π) is written
    /// 0.398942 (absolute error up to about 2e-7 in every dtype).
    const CANDLE_GELU: Tol = Tol {
        abs: 2e-6,
        rel: 2e-6,
    };

    const POINTS: [f64; 34] = [
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NAN,
        // Where e^-x overflows in f16, f32, f64 while silu(x) is still a normal number.
        -11.5,
        -90.0,
        -710.0,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e-7,
        -1e-7,
        0.5,
        -0.5,
        -1.0,
        -1.5,
        2.5,
        -2.5,
        -6.0,
        -10.0,
        -20.0,
        -40.0,
        -100.0,
        -700.0,
        -999.0,
        -1e4,
        10.0,
        40.0,
        999.0,
        1000.0,
        1e4,
        3e7,
        1e30,
        -1e30,
    ];

    type Form = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

    fn forms() -> Vec<(Box<dyn super::TensorActivation>, Form)> {
        let elu = |alpha| Elu::new(alpha).expect("a valid alpha");
        let leaky = |alpha| LeakyRelu::new(alpha).expect("a valid alpha");
        vec![
            (Box::new(Silu), Box::new(forms::silu)),
            (Box::new(Gelu), Box::new(forms::gelu)),
            (Box::new(Softplus), Box::new(forms::softplus)),
            (Box::new(Mish), Box::new(forms::mish)),
            (Box::new(Softsign), Box::new(forms::softsign)),
            (Box::new(elu(1.0)), Box::new(|x| forms::elu(x, 1.0))),
            (Box::new(elu(0.3)), Box::new(|x| forms::elu(x, 0.3))),
            (Box::new(elu(0.0)), Box::new(|x| forms::elu(x, 0.0))),
            (
                Box::new(leaky(0.01)),
                Box::new(|x| forms::leaky_relu(x, 0.01)),
            ),
            (
                Box::new(leaky(0.0)),
                Box::new(|x| forms::leaky_relu(x, 0.0)),
            ),
        ]
    }

    fn close(actual: f64, expected: f64, tol: Tol) -> bool {
        if expected.is_nan() || actual.is_nan() {
            return expected.is_nan() && actual.is_nan();
        }
        relative_eq!(actual, expected, epsilon = tol.abs, max_relative = tol.rel)
    }

    /// Every form in every float dtype against the scalar `eval` and `derivative` in `f64`
    /// rounded to the dtype; gradients by candle's autograd, except at NaN (where the value is
    /// compared).
    #[test]
    fn tensor_forms_match_the_scalar_forms_at_the_edges() -> Result<()> {
        let mut failures = Vec::new();
        for (act, form) in forms() {
            let name = Activation::<f64>::name(act.as_ref());
            for (dtype, tol) in [
                (DType::F64, F64_TOL),
                (DType::F32, F32_TOL),
                (DType::F16, F16_TOL),
                (DType::BF16, BF16_TOL),
            ] {
                let tol = if name == "gelu" {
                    Tol {
                        abs: tol.abs.max(CANDLE_GELU.abs),
                        rel: tol.rel.max(CANDLE_GELU.rel),
                    }
                } else {
                    tol
                };
                let x = Tensor::new(&POINTS, &Device::Cpu)?.to_dtype(dtype)?;
                let var = Var::from_tensor(&x)?;
                let y = form(var.as_tensor())?;
                let grads = y.sum_all()?.backward()?;
                let dy = grads.get(&var).expect("the input is a variable");
                let inputs: Vec<f64> = x.to_dtype(DType::F64)?.to_vec1()?;
                let ys: Vec<f64> = y.to_dtype(DType::F64)?.to_vec1()?;
                let dys: Vec<f64> = dy.to_dtype(DType::F64)?.to_vec1()?;
                // The oracle rounded to the dtype, so that it overflows and underflows alike.
                let round = |v: f64| -> Result<f64> {
                    Tensor::new(&[v], &Device::Cpu)?
                        .to_dtype(dtype)?
                        .to_dtype(DType::F64)?
                        .to_vec1::<f64>()
                        .map(|v| v[0])
                };
                for (i, &xi) in inputs.iter().enumerate() {
                    let value = round(Activation::<f64>::eval(act.as_ref(), xi))?;
                    if !close(ys[i], value, tol) {
                        failures.push(format!(
                            "{name} {dtype:?} value at {xi:e}: {:e}, expected {value:e}",
                            ys[i]
                        ));
                    }
                    let slope = round(Activation::<f64>::derivative(act.as_ref(), xi))?;
                    if !xi.is_nan() && !close(dys[i], slope, tol) {
                        failures.push(format!(
                            "{name} {dtype:?} gradient at {xi:e}: {:e}, expected {slope:e}",
                            dys[i]
                        ));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        Ok(())
    }
}

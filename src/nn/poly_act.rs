//! The fused polynomial op and the [`PolyAct`] layer built on it.

use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, Device, Layout, Module, Result, Shape, Tensor,
};

use super::cpu;
use super::guard::{Guarded, RangeGuard, clamp_tensor};
use super::kernels::{Backward, Coeffs, Forward};
use crate::{Interval, Polynomial};

/// The error for a fused op reached with CUDA storage in a build without polyact's `cuda`
/// feature (candle has no CUDA devices then, so the layers never get here).
#[cfg(not(feature = "cuda"))]
pub(crate) fn no_gpu_kernel(op: &str) -> candle_core::Error {
    candle_core::Error::Cuda(
        format!(
            "polyact's {op} has its CUDA kernel only in builds with polyact's `cuda` feature; \
             without it, polyact's layers evaluate polynomials with ordinary tensor ops off the CPU"
        )
        .into(),
    )
}

/// Whether the fused ops run on `device`: the CPU always, CUDA devices in builds with
/// polyact's `cuda` feature. Elsewhere the layers use ordinary tensor ops.
pub(crate) fn has_fused_kernels(device: &Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// Fails unless `xs` holds floating-point values: a polynomial of integers would silently
/// truncate its coefficients.
pub(crate) fn require_float(xs: &Tensor, op: &'static str) -> Result<()> {
    if xs.dtype().is_float() {
        Ok(())
    } else {
        Err(candle_core::Error::UnsupportedDTypeForOp(xs.dtype(), op).bt())
    }
}

/// The fused polynomial op: forward `p(x)`, backward `g · p'(x)`, one pass each.
#[derive(Debug, Clone)]
pub(crate) struct PolyOp {
    coeffs: Coeffs,
    derivative: Coeffs,
    clamp: Option<(f64, f64)>,
}

impl PolyOp {
    pub(crate) fn new(coefficients: Vec<f64>, clamp: Option<(f64, f64)>) -> Self {
        let coeffs = Coeffs::new(coefficients);
        Self {
            derivative: coeffs.derivative(),
            coeffs,
            clamp,
        }
    }
}

impl CustomOp1 for PolyOp {
    fn name(&self) -> &'static str {
        "polyact-poly"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let kernel = Forward {
            coeffs: &self.coeffs,
            clamp: self.clamp,
        };
        let out = cpu::map1(&kernel, storage, layout, self.name())?;
        Ok((out, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, x: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        use super::cuda::{DeviceCoeffs, poly};
        use candle_core::backend::BackendStorage;
        let coeffs = DeviceCoeffs::upload(&x.device, &self.coeffs, x.dtype())?;
        let out = poly(x, layout, &coeffs, self.clamp, self.name())?;
        Ok((out, layout.shape().clone()))
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        Err(no_gpu_kernel("fused polynomial op"))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(
            grad_res,
            &PolyGradOp {
                derivative: self.derivative.clone(),
                clamp: self.clamp,
            },
        )?;
        Ok(Some(grad))
    }
}

/// The backward pass of the fused op as an op of its own: `(x, g) ↦ g · p'(x)`.
#[derive(Debug, Clone)]
pub(crate) struct PolyGradOp {
    pub(crate) derivative: Coeffs,
    pub(crate) clamp: Option<(f64, f64)>,
}

impl CustomOp2 for PolyGradOp {
    fn name(&self) -> &'static str {
        "polyact-poly-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let kernel = Backward {
            derivative: &self.derivative,
            clamp: self.clamp,
        };
        let out = cpu::map2(&kernel, x, lx, g, lg, self.name())?;
        Ok((out, lx.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        use super::cuda::{DeviceCoeffs, poly_grad};
        use candle_core::backend::BackendStorage;
        let derivative = DeviceCoeffs::upload(&x.device, &self.derivative, x.dtype())?;
        let out = poly_grad(x, lx, g, lg, &derivative, false, self.clamp, self.name())?;
        Ok((out, lx.shape().clone()))
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Err(no_gpu_kernel("fused polynomial gradient op"))
    }
}

/// `p(x)` by Horner's rule written as ordinary tensor ops (`2d − 1` ops for degree `d`), with
/// the clamp of the fused kernels (`clamp_tensor`: gradient 1 at the ends, where candle's own
/// `clamp` gives ½): what runs on devices without a fused kernel.
pub(crate) fn horner_tensor_ops(
    coefficients: &[f64],
    clamp: Option<Interval>,
    xs: &Tensor,
) -> Result<Tensor> {
    require_float(xs, "polynomial layer")?;
    let xs = clamp_tensor(xs, clamp)?;
    let Some((&top, rest)) = coefficients.split_last() else {
        return xs.zeros_like();
    };
    let Some((&next, rest)) = rest.split_last() else {
        return xs.zeros_like()? + top;
    };
    let mut acc = xs.affine(top, next)?;
    for &c in rest.iter().rev() {
        acc = acc.mul(&xs)?.affine(1.0, c)?;
    }
    Ok(acc)
}

/// A polynomial activation as one fused op: forward is one pass of Horner's rule per element,
/// backward one pass of the derivative polynomial, `grad_in = grad_out · p'(x)`.
///
/// On the CPU, for `f32`, `f64`, `f16` and `bf16` tensors (the half types are evaluated in `f32`
/// and rounded once), contiguous or strided, in parallel over the cores for tensors of more than
/// 32K elements, with hardware FMA when the CPU has it. It takes part in autograd (first
/// derivatives; the backward pass itself is not differentiable again).
///
/// On CUDA devices, with polyact's `cuda` feature, the same op runs as CUDA kernels (compiled,
/// not yet run on a GPU: see `docs/cuda.md`). On other devices the layer evaluates the same
/// polynomial as ordinary tensor ops ([`forward_unfused`](PolyAct::forward_unfused)): correct,
/// differentiable, slower; that path is tested on the CPU only.
///
/// The layer has a [`RangeGuard`]: its domain is the polynomial's (set by a fit) or
/// [`with_domain`](PolyAct::with_domain)'s, and it can report and clamp inputs outside it.
///
/// ```
/// use candle_core::{Device, Module, Tensor, Var};
/// use polyact::nn::PolyAct;
/// let poly = polyact::presets::m_sigmoid();
/// let layer = PolyAct::new(&poly);
/// let x = Var::new(&[-2.0_f32, 0.0, 3.0], &Device::Cpu)?;
/// let y = layer.forward(x.as_tensor())?;
/// let ys = y.to_vec1::<f32>()?;
/// assert!((ys[2] - poly.eval(3.0_f32)).abs() < 1e-6);
///
/// let grads = y.sum_all()?.backward()?;
/// let dx = grads.get(&x).expect("x is a variable").to_vec1::<f32>()?;
/// let dp = poly.differentiate();
/// assert!((dx[0] - dp.eval(-2.0_f32)).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PolyAct {
    polynomial: Polynomial,
    coefficients: Vec<f64>,
    guard: RangeGuard,
}

impl PolyAct {
    /// The layer for `poly`; its guard's domain is `poly`'s (if any), with clamping and
    /// monitoring off (configure them with [`Guarded`]).
    ///
    /// ```
    /// use polyact::nn::Guarded;
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_relu());
    /// assert!(!layer.guard().is_clamped());
    /// ```
    pub fn new(poly: &Polynomial) -> Self {
        Self {
            polynomial: poly.clone(),
            coefficients: poly.coefficients_f64(),
            guard: RangeGuard::new(poly.domain()),
        }
    }

    /// The polynomial this layer evaluates.
    ///
    /// ```
    /// let p = polyact::presets::m_tanh();
    /// assert_eq!(polyact::nn::PolyAct::new(&p).polynomial(), &p);
    /// ```
    pub fn polynomial(&self) -> &Polynomial {
        &self.polynomial
    }

    /// The same function as [`forward`](Module::forward), written as ordinary tensor ops:
    /// Horner's rule as `2d − 1` candle ops for degree `d` (after a `clamp` when clamping).
    /// This is what runs on devices without a fused kernel, and the reference the fused op is
    /// measured against.
    ///
    /// # Errors
    /// Candle's, if a tensor op fails.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_sigmoid());
    /// let xs = Tensor::new(&[-1.0_f64, 0.5, 2.0], &Device::Cpu)?;
    /// let fused = layer.forward(&xs)?;
    /// let unfused = layer.forward_unfused(&xs)?;
    /// let diff = (fused - unfused)?.abs()?.max_all()?.to_scalar::<f64>()?;
    /// assert!(diff < 1e-15);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn forward_unfused(&self, xs: &Tensor) -> Result<Tensor> {
        self.guard.observe(xs)?;
        horner_tensor_ops(&self.coefficients, self.guard.clamp_bounds(), xs)
    }
}

impl Guarded for PolyAct {
    fn guard(&self) -> &RangeGuard {
        &self.guard
    }

    fn guard_mut(&mut self) -> &mut RangeGuard {
        &mut self.guard
    }
}

impl Module for PolyAct {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.guard.observe(xs)?;
        poly_forward(&self.coefficients, self.guard.clamp_bounds(), xs)
    }
}

/// The fused op where it has kernels, tensor ops elsewhere.
pub(crate) fn poly_forward(
    coefficients: &[f64],
    clamp: Option<Interval>,
    xs: &Tensor,
) -> Result<Tensor> {
    if has_fused_kernels(xs.device()) {
        xs.apply_op1(PolyOp::new(coefficients.to_vec(), clamp.map(|c| c.ends())))
    } else {
        horner_tensor_ops(coefficients, clamp, xs)
    }
}

//! A polynomial activation whose coefficients are trained with the network.

use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, DType, Layout, Module, Result, Shape, Tensor,
};
#[cfg(feature = "cuda")]
use candle_core::{CustomOp3, backend::BackendStorage};
use candle_nn::{Init, VarBuilder};

use super::cpu;
use super::guard::{Guarded, RangeGuard, clamp_tensor};
#[cfg(feature = "cuda")]
use super::kernels::Backward;
use super::kernels::{Coeffs, Forward, PowerSums};
#[cfg(not(feature = "cuda"))]
use super::poly_act::no_gpu_kernel;
use super::poly_act::{PolyGradOp, has_fused_kernels, require_float};
use crate::{Interval, Polynomial};

/// A polynomial activation with learnable coefficients.
///
/// The coefficient of `x^k` is the scalar variable `c{k}` (shape `[1]`) under the
/// [`VarBuilder`]'s prefix, initialised from the polynomial given, so a layer starts as any
/// polynomial you have (a Taylor series, a preset such as
/// [`m_sigmoid`](crate::presets::m_sigmoid), a fit) and is saved and loaded with the rest of a
/// [`VarMap`](candle_nn::VarMap). The degree is fixed at construction: a polynomial with zero
/// coefficients (as `m_sigmoid`'s even powers) still gets a variable for each of them.
///
/// On the CPU, and on CUDA devices with the `cuda` feature, the forward pass is one fused Horner
/// pass (as [`PolyAct`](super::PolyAct)); the backward pass computes the input gradient
/// `g · p'(x)` in one fused pass and the coefficient gradients `Σ g · x^k` in one fused
/// reduction (on CUDA: per-block partial sums, then a second pass). On other devices it runs as
/// tensor ops. The CUDA kernels are compiled but not yet run on a GPU (see `docs/cuda.md`). The
/// layer has a [`RangeGuard`] like `PolyAct`.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use polyact::nn::LearnablePoly;
///
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let poly = polyact::presets::m_sigmoid();
/// let act = LearnablePoly::new(&poly, vb.pp("act"))?;
/// assert_eq!(varmap.all_vars().len(), 6); // c0 … c5
///
/// let xs = Tensor::new(&[0.0_f32, 1.0, 2.0], &Device::Cpu)?;
/// let ys = act.forward(&xs)?.to_vec1::<f32>()?;
/// assert!((ys[2] - poly.eval(2.0_f32)).abs() < 1e-6);
///
/// // Coefficient gradients: ∂(Σ p(x))/∂c_k = Σ x^k.
/// let grads = act.forward(&xs)?.sum_all()?.backward()?;
/// let c2 = varmap.data().lock().unwrap()["act.c2"].clone();
/// let g2 = grads.get(c2.as_tensor()).expect("c2 is trained").to_vec1::<f32>()?;
/// assert!((g2[0] - 5.0).abs() < 1e-5); // 0 + 1 + 4
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LearnablePoly {
    coefficients: Vec<Tensor>,
    guard: RangeGuard,
}

impl LearnablePoly {
    /// A layer whose coefficient variables `c0 … cN` (under `vb`'s prefix) start at `poly`'s
    /// coefficients, and whose guard's domain is `poly`'s. The zero polynomial gets one
    /// coefficient, `c0 = 0`.
    ///
    /// When `vb` already holds the variables (loading a trained model), their stored values
    /// are used instead.
    ///
    /// # Errors
    /// Candle's, if the variable builder fails (a stored variable of another shape, for example).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use candle_nn::{VarBuilder, VarMap};
    /// let varmap = VarMap::new();
    /// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    /// let act = polyact::nn::LearnablePoly::new(&polyact::presets::m_tanh(), vb.pp("act"))?;
    /// let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    /// names.sort();
    /// assert_eq!(names, ["act.c0", "act.c1", "act.c2", "act.c3", "act.c4", "act.c5"]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn new(poly: &Polynomial, vb: VarBuilder) -> Result<Self> {
        let mut values = poly.coefficients_f64();
        if values.is_empty() {
            values.push(0.0);
        }
        let coefficients = values
            .iter()
            .enumerate()
            .map(|(k, &c)| vb.get_with_hints(1, &format!("c{k}"), Init::Const(c)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            coefficients,
            guard: RangeGuard::new(poly.domain()),
        })
    }

    /// The current coefficients as one tensor of shape `[N + 1]`, ascending powers, tracked for
    /// autograd.
    ///
    /// # Errors
    /// Candle's, if concatenation fails.
    ///
    /// ```
    /// # use candle_core::{DType, Device};
    /// # use candle_nn::{VarBuilder, VarMap};
    /// # let varmap = VarMap::new();
    /// # let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    /// let act = polyact::nn::LearnablePoly::new(&polyact::Polynomial::from_f64(&[1.0, 2.0]), vb)?;
    /// assert_eq!(act.coefficients()?.to_vec1::<f64>()?, vec![1.0, 2.0]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn coefficients(&self) -> Result<Tensor> {
        Tensor::cat(&self.coefficients, 0)
    }

    /// The current coefficients as a [`Polynomial`] (approximate `f64` values, the guard's
    /// domain), for instance to evaluate the trained activation elsewhere or to price it with
    /// [`Polynomial::cost`].
    ///
    /// # Errors
    /// Candle's, if the coefficients cannot be read.
    ///
    /// ```
    /// # use candle_core::{DType, Device};
    /// # use candle_nn::{VarBuilder, VarMap};
    /// # let varmap = VarMap::new();
    /// # let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    /// let poly = polyact::presets::m_tanh();
    /// let act = polyact::nn::LearnablePoly::new(&poly, vb)?;
    /// let trained = act.polynomial()?;
    /// assert!((trained.eval(0.7_f64) - poly.eval(0.7_f64)).abs() < 1e-15);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn polynomial(&self) -> Result<Polynomial> {
        let values = self
            .coefficients()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let poly = Polynomial::from_f64(&values);
        Ok(match self.guard.domain() {
            Some(d) => poly.with_domain(d).map_err(candle_core::Error::wrap)?,
            None => poly,
        })
    }
}

impl Guarded for LearnablePoly {
    fn guard(&self) -> &RangeGuard {
        &self.guard
    }

    fn guard_mut(&mut self) -> &mut RangeGuard {
        &mut self.guard
    }
}

impl Module for LearnablePoly {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.guard.observe(xs)?;
        let clamp = self.guard.clamp_bounds();
        let coefficients = self.coefficients()?;
        if has_fused_kernels(xs.device()) {
            let clamp = clamp.map(|c| c.ends());
            xs.apply_op2(&coefficients, LearnableOp { clamp })
        } else {
            learnable_tensor_ops(&coefficients, clamp, xs)
        }
    }
}

/// Horner's rule as tensor ops with tensor coefficients (every op tracked, so the coefficients
/// get gradients from candle's autograd): what runs on devices without a fused kernel.
fn learnable_tensor_ops(
    coefficients: &Tensor,
    clamp: Option<Interval>,
    xs: &Tensor,
) -> Result<Tensor> {
    require_float(xs, "learnable polynomial layer")?;
    let xs = clamp_tensor(xs, clamp)?;
    let coefficients = coefficients.to_dtype(xs.dtype())?;
    let n = coefficients.dim(0)?;
    let mut acc = xs.zeros_like()?.broadcast_add(&coefficients.get(n - 1)?)?;
    for k in (0..n - 1).rev() {
        acc = acc.mul(&xs)?.broadcast_add(&coefficients.get(k)?)?;
    }
    Ok(acc)
}

/// `(x, c) ↦ p_c(x)` fused, differentiable in both arguments.
#[derive(Debug, Clone, Copy)]
struct LearnableOp {
    clamp: Option<(f64, f64)>,
}

impl CustomOp2 for LearnableOp {
    fn name(&self) -> &'static str {
        "polyact-learnable-poly"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        c: &CpuStorage,
        lc: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let coeffs = Coeffs::new(cpu::to_f64(c, lc, self.name())?);
        let kernel = Forward {
            coeffs: &coeffs,
            clamp: self.clamp,
        };
        let out = cpu::map1(&kernel, x, lx, self.name())?;
        Ok((out, lx.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        c: &CudaStorage,
        lc: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        use super::cuda::{DeviceCoeffs, poly};
        let coeffs = DeviceCoeffs::convert(c, lc, x.dtype())?;
        let out = poly(x, lx, &coeffs, self.clamp, self.name())?;
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
        Err(no_gpu_kernel("learnable polynomial op"))
    }

    fn bwd(
        &self,
        x: &Tensor,
        c: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            // The coefficients stay on the device: no copy to the host per step.
            let grad_x = x.apply_op3_no_bwd(grad, c, &LearnableGradOp { clamp: self.clamp })?;
            let sums = PowerSumsOp {
                len: c.dim(0)?,
                clamp: self.clamp,
            };
            let grad_c = x.apply_op2_no_bwd(grad, &sums)?.to_dtype(c.dtype())?;
            return Ok((Some(grad_x), Some(grad_c)));
        }
        let values = c.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let grad_x = x.apply_op2_no_bwd(
            grad,
            &PolyGradOp {
                derivative: Coeffs::new(values.clone()).derivative(),
                clamp: self.clamp,
            },
        )?;
        let grad_c = x
            .apply_op2_no_bwd(
                grad,
                &PowerSumsOp {
                    len: values.len(),
                    clamp: self.clamp,
                },
            )?
            .to_dtype(c.dtype())?;
        Ok((Some(grad_x), Some(grad_c)))
    }
}

/// `(x, g) ↦ [Σ g·x^k]_k` as an `f64` tensor of shape `[len]`.
#[derive(Debug, Clone, Copy)]
struct PowerSumsOp {
    len: usize,
    clamp: Option<(f64, f64)>,
}

impl CustomOp2 for PowerSumsOp {
    fn name(&self) -> &'static str {
        "polyact-power-sums"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let kernel = PowerSums {
            len: self.len,
            clamp: self.clamp,
        };
        let sums = cpu::reduce2(&kernel, x, lx, g, lg, self.name())?;
        Ok((CpuStorage::F64(sums), Shape::from(self.len)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        g: &CudaStorage,
        lg: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let sums = super::cuda::power_sums_f64(x, lx, g, lg, self.len, self.clamp, self.name())?;
        Ok((sums, Shape::from(self.len)))
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Err(no_gpu_kernel("polynomial coefficient gradient op"))
    }
}

/// `(x, g, c) ↦ g · p_c'(clamp(x))` with the coefficients as a tensor: the input gradient of
/// [`LearnableOp`] on CUDA, where the kernel differentiates `p_c` as it goes, so the
/// coefficients need not be read back to the host.
#[cfg(feature = "cuda")]
#[derive(Debug, Clone, Copy)]
struct LearnableGradOp {
    clamp: Option<(f64, f64)>,
}

#[cfg(feature = "cuda")]
impl CustomOp3 for LearnableGradOp {
    fn name(&self) -> &'static str {
        "polyact-learnable-poly-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        g: &CpuStorage,
        lg: &Layout,
        c: &CpuStorage,
        lc: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let derivative = Coeffs::new(cpu::to_f64(c, lc, self.name())?).derivative();
        let kernel = Backward {
            derivative: &derivative,
            clamp: self.clamp,
        };
        let out = cpu::map2(&kernel, x, lx, g, lg, self.name())?;
        Ok((out, lx.shape().clone()))
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        lx: &Layout,
        g: &CudaStorage,
        lg: &Layout,
        c: &CudaStorage,
        lc: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        use super::cuda::{DeviceCoeffs, poly_grad};
        let coeffs = DeviceCoeffs::convert(c, lc, x.dtype())?;
        let out = poly_grad(x, lx, g, lg, &coeffs, true, self.clamp, self.name())?;
        Ok((out, lx.shape().clone()))
    }
}

//! The fused polynomial op and the [`PolyAct`] layer built on it.

use std::mem::MaybeUninit;
use std::ops::RangeInclusive;

use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, Layout, Module, Result, Shape, Tensor,
};

use super::cpu::{self, Compute, LANES, Map1, Map2, Reduce2, step};
use super::guard::RangeGuard;
use crate::Polynomial;

/// Coefficients in ascending powers, kept in both compute precisions.
#[derive(Debug, Clone)]
pub(crate) struct Coeffs {
    single: Vec<f32>,
    double: Vec<f64>,
}

impl Coeffs {
    pub(crate) fn new(double: Vec<f64>) -> Self {
        Self {
            single: double.iter().map(|&c| c as f32).collect(),
            double,
        }
    }

    /// The coefficients of the derivative polynomial.
    pub(crate) fn derivative(&self) -> Self {
        Self::new(
            self.double
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, &c)| c * k as f64)
                .collect(),
        )
    }

    fn get<C: Compute>(&self) -> &[C] {
        C::pick(&self.single, &self.double)
    }
}

/// `clamp(x)` lane by lane; NaN stays NaN.
#[inline(always)]
fn clamp_lanes<C: Compute>(x: &mut [C; LANES], (lo, hi): (C, C)) {
    for v in x.iter_mut() {
        *v = if *v < lo {
            lo
        } else if *v > hi {
            hi
        } else {
            *v
        };
    }
}

/// Horner's rule on `LANES` independent inputs (the loop over lanes vectorises).
#[inline(always)]
fn horner_lanes<C: Compute, const FMA: bool>(coeffs: &[C], x: &[C; LANES]) -> [C; LANES] {
    let Some((&top, rest)) = coeffs.split_last() else {
        return [C::zero(); LANES];
    };
    let mut acc = [top; LANES];
    for &c in rest.iter().rev() {
        for (a, &x) in acc.iter_mut().zip(x) {
            *a = step::<C, FMA>(*a, x, c);
        }
    }
    acc
}

/// An operation on `LANES` consecutive elements, from `at`, of each of `N` inputs.
trait LaneOp<C, const N: usize> {
    fn lanes<const FMA: bool>(&self, inputs: [&[C]; N], at: usize) -> [C; LANES];
}

/// The `LANES` elements of `input` from `at`, as an array reference (no copy).
#[inline(always)]
fn lanes_at<C>(input: &[C], at: usize) -> &[C; LANES] {
    input[at..at + LANES]
        .try_into()
        .expect("a full group of lanes")
}

/// Applies a [`LaneOp`] over a block, `LANES` elements at a time, reading the inputs in place
/// and writing the output directly; the ragged end goes through zero-padded copies.
/// (Everything here is `inline(always)`, so that it is compiled inside the AVX2 + FMA
/// instantiation of the driver.)
#[inline(always)]
fn for_lanes<C: Compute, const N: usize, const FMA: bool>(
    op: &impl LaneOp<C, N>,
    inputs: [&[C]; N],
    out: &mut [MaybeUninit<C>],
) {
    let n = out.len();
    let full = n - n % LANES;
    for (i, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
        let result = op.lanes::<FMA>(inputs, i * LANES);
        for (o, &r) in o.iter_mut().zip(&result) {
            o.write(r);
        }
    }
    if full < n {
        let mut padded = [[C::zero(); LANES]; N];
        for (p, input) in padded.iter_mut().zip(inputs) {
            p[..n - full].copy_from_slice(&input[full..n]);
        }
        let mut refs: [&[C]; N] = [&[]; N];
        for (r, p) in refs.iter_mut().zip(&padded) {
            *r = p;
        }
        let result = op.lanes::<FMA>(refs, 0);
        for (o, &r) in out[full..].iter_mut().zip(&result) {
            o.write(r);
        }
    }
}

fn bounds<C: Compute>(clamp: Option<(f64, f64)>) -> Option<(C, C)> {
    clamp.map(|(lo, hi)| (C::of(lo), C::of(hi)))
}

/// `out = p(clamp(x))`.
pub(crate) struct Forward<'a> {
    pub(crate) coeffs: &'a Coeffs,
    pub(crate) clamp: Option<(f64, f64)>,
}

struct ForwardLanes<'a, C> {
    coeffs: &'a [C],
    bounds: Option<(C, C)>,
}

impl<C: Compute> LaneOp<C, 1> for ForwardLanes<'_, C> {
    #[inline(always)]
    fn lanes<const FMA: bool>(&self, [x]: [&[C]; 1], at: usize) -> [C; LANES] {
        let x = lanes_at(x, at);
        match self.bounds {
            None => horner_lanes::<C, FMA>(self.coeffs, x),
            Some(bounds) => {
                let mut x = *x;
                clamp_lanes(&mut x, bounds);
                horner_lanes::<C, FMA>(self.coeffs, &x)
            }
        }
    }
}

impl Map1 for Forward<'_> {
    #[inline(always)]
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], out: &mut [MaybeUninit<C>]) {
        let op = ForwardLanes {
            coeffs: self.coeffs.get::<C>(),
            bounds: bounds::<C>(self.clamp),
        };
        for_lanes::<C, 1, FMA>(&op, [x], out);
    }
}

/// `out = g · p'(clamp(x))`, zero where `x` is outside the clamp interval.
pub(crate) struct Backward<'a> {
    pub(crate) derivative: &'a Coeffs,
    pub(crate) clamp: Option<(f64, f64)>,
}

struct BackwardLanes<'a, C> {
    derivative: &'a [C],
    bounds: Option<(C, C)>,
}

impl<C: Compute> LaneOp<C, 2> for BackwardLanes<'_, C> {
    #[inline(always)]
    fn lanes<const FMA: bool>(&self, [x, g]: [&[C]; 2], at: usize) -> [C; LANES] {
        let (x, g) = (lanes_at(x, at), lanes_at(g, at));
        match self.bounds {
            None => {
                let mut d = horner_lanes::<C, FMA>(self.derivative, x);
                for (d, &g) in d.iter_mut().zip(g) {
                    *d = *d * g;
                }
                d
            }
            Some(bounds @ (lo, hi)) => {
                let mut clamped = *x;
                clamp_lanes(&mut clamped, bounds);
                let mut d = horner_lanes::<C, FMA>(self.derivative, &clamped);
                for ((d, &g), &x) in d.iter_mut().zip(g).zip(x) {
                    *d = if x < lo || x > hi { C::zero() } else { *d * g };
                }
                d
            }
        }
    }
}

impl Map2 for Backward<'_> {
    #[inline(always)]
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], g: &[C], out: &mut [MaybeUninit<C>]) {
        let op = BackwardLanes {
            derivative: self.derivative.get::<C>(),
            bounds: bounds::<C>(self.clamp),
        };
        for_lanes::<C, 2, FMA>(&op, [x, g], out);
    }
}

/// `sums[k] = Σ g · clamp(x)^k` for `k = 0..len`: the gradient of the coefficients.
pub(crate) struct PowerSums {
    pub(crate) len: usize,
    pub(crate) clamp: Option<(f64, f64)>,
}

impl Reduce2 for PowerSums {
    fn len(&self) -> usize {
        self.len
    }

    /// Accumulates in `LANES` partial sums of the compute type over one block (at most 1024
    /// elements, 32 terms per lane), then adds the block's total to the `f64` sums.
    #[inline(always)]
    fn block<C: Compute, const FMA: bool>(
        &self,
        x: &[C],
        g: &[C],
        lanes: &mut [[C; LANES]],
        sums: &mut [f64],
    ) {
        let bounds = bounds::<C>(self.clamp);
        lanes.iter_mut().for_each(|l| *l = [C::zero(); LANES]);
        for (x, g) in x.chunks(LANES).zip(g.chunks(LANES)) {
            let mut xv = [C::zero(); LANES];
            let mut power = [C::zero(); LANES];
            xv[..x.len()].copy_from_slice(x);
            power[..g.len()].copy_from_slice(g);
            if let Some(bounds) = bounds {
                clamp_lanes(&mut xv, bounds);
            }
            for (k, acc) in lanes.iter_mut().enumerate() {
                if k > 0 {
                    for (p, &x) in power.iter_mut().zip(&xv) {
                        *p = *p * x;
                    }
                }
                for (a, &p) in acc.iter_mut().zip(&power) {
                    *a = *a + p;
                }
            }
        }
        for (sum, acc) in sums.iter_mut().zip(lanes.iter()) {
            *sum += acc.iter().map(|v| v.as_f64()).sum::<f64>();
        }
    }
}

/// The error for a device the fused kernels do not run on.
pub(crate) fn no_gpu_kernel(op: &str) -> candle_core::Error {
    candle_core::Error::Cuda(
        format!(
            "polyact's {op} has no CUDA kernel yet (only the CPU kernels exist and were tested); \
             polyact's layers evaluate polynomials with ordinary tensor ops on other devices"
        )
        .into(),
    )
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
/// the clamp as candle's `clamp`: what runs on devices without a fused kernel.
pub(crate) fn horner_tensor_ops(
    coefficients: &[f64],
    clamp: Option<(f64, f64)>,
    xs: &Tensor,
) -> Result<Tensor> {
    let xs = match clamp {
        Some((lo, hi)) => xs.clamp(lo, hi)?,
        None => xs.clone(),
    };
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
/// On other devices the layer evaluates the same polynomial as ordinary tensor ops
/// ([`forward_unfused`](PolyAct::forward_unfused)): correct, differentiable, slower. That path is
/// tested on the CPU only: no GPU build of candle was available.
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
/// let dp = poly.derivative();
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
    /// monitoring off.
    ///
    /// ```
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_relu());
    /// assert!(!layer.guard().is_clamped());
    /// ```
    pub fn new(poly: &Polynomial) -> Self {
        Self {
            polynomial: poly.clone(),
            coefficients: poly.coefficients_f64(),
            guard: RangeGuard::new(poly.domain().cloned()),
        }
    }

    /// The same layer with its guard's domain set to `domain`.
    ///
    /// # Errors
    /// [`Error::InvalidInterval`](crate::Error::InvalidInterval) unless the ends are finite and
    /// `lo < hi`.
    ///
    /// ```
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_tanh()).with_domain(-2.0..=2.0)?;
    /// assert_eq!(layer.guard().domain(), Some(&(-2.0..=2.0)));
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn with_domain(mut self, domain: RangeInclusive<f64>) -> crate::Result<Self> {
        self.guard.set_domain(domain)?;
        Ok(self)
    }

    /// The same layer clamping its inputs to the domain: `p(clamp(x))`, gradient zero outside.
    ///
    /// # Errors
    /// [`Error::MissingDomain`](crate::Error::MissingDomain) if the layer has no domain.
    ///
    /// ```
    /// use polyact::nn::PolyAct;
    /// let poly = polyact::presets::m_sigmoid();
    /// assert!(PolyAct::new(&poly).with_clamp().is_err()); // no domain to clamp to
    /// let layer = PolyAct::new(&poly).with_domain(-5.0..=5.0)?.with_clamp()?;
    /// assert!(layer.guard().is_clamped());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn with_clamp(mut self) -> crate::Result<Self> {
        self.guard.set_clamp()?;
        Ok(self)
    }

    /// The same layer counting, on every forward pass, how many inputs fall outside its domain
    /// (read with [`RangeGuard::report`]). Costs a few extra passes of tensor ops per forward
    /// (comparisons and a sum).
    ///
    /// ```
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_relu()).with_monitor();
    /// assert_eq!(layer.guard().report().map(|r| r.inputs), Some(0));
    /// ```
    pub fn with_monitor(mut self) -> Self {
        self.guard.set_monitor();
        self
    }

    /// The range guard: domain, clamping, counters.
    ///
    /// ```
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_tanh());
    /// assert!(layer.guard().domain().is_none());
    /// ```
    pub fn guard(&self) -> &RangeGuard {
        &self.guard
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

impl Module for PolyAct {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.guard.observe(xs)?;
        poly_forward(&self.coefficients, self.guard.clamp_bounds(), xs)
    }
}

/// The fused op on the CPU, tensor ops elsewhere.
pub(crate) fn poly_forward(
    coefficients: &[f64],
    clamp: Option<(f64, f64)>,
    xs: &Tensor,
) -> Result<Tensor> {
    if xs.device().is_cpu() {
        xs.apply_op1(PolyOp::new(coefficients.to_vec(), clamp))
    } else {
        horner_tensor_ops(coefficients, clamp, xs)
    }
}

//! The range guard: the interval a polynomial layer's inputs should stay in, its one builder
//! ([`Guarded`]) shared by every layer that has one, counting and clamping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Result, Tensor};

use crate::{Error, Interval};

/// The fraction of the elements of `xs` that lie outside `domain` (the closed interval), NaN
/// counted as outside; 0 for an empty tensor.
///
/// A polynomial is only close to the function it replaces on the interval it was fitted on;
/// outside, its highest power takes over and activations grow until the network produces NaN.
/// This is the quantity to watch. It runs as ordinary tensor ops, on any device.
///
/// # Errors
/// Candle's, if a tensor op fails (a dtype without comparisons, for example).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let xs = Tensor::new(&[-3.0_f32, -1.0, 0.0, 1.0, 2.0, 5.0, f32::NAN, 1.5], &Device::Cpu)?;
/// let domain = polyact::Interval::new(-1.0, 2.0)?;
/// let fraction = polyact::nn::out_of_range(&xs, Some(domain))?;
/// assert!((fraction - 3.0 / 8.0).abs() < 1e-12); // -3, 5 and NaN
/// // Integer tensors are compared exactly, not against bounds cast to their type:
/// let bytes = Tensor::new(&[0_u8, 1, 2, 3], &Device::Cpu)?;
/// let half = polyact::Interval::new(0.5, 2.5)?;
/// assert!((polyact::nn::out_of_range(&bytes, Some(half))? - 0.5).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn out_of_range(xs: &Tensor, domain: Option<Interval>) -> Result<f64> {
    let total = xs.elem_count();
    if total == 0 {
        return Ok(0.0);
    }
    Ok(count_outside(xs, domain)? as f64 / total as f64)
}

/// `xs` in the type its elements are compared with the domain's ends in: `f32` for `f16` and
/// `bf16` (the fused kernels' compute type; candle's comparisons would round the ends to the
/// half type, moving them), `f64` for integers (so fractional ends keep their value), else
/// `xs` itself. Detached: only the comparison's result is used.
fn comparable(xs: &Tensor) -> Result<Tensor> {
    let xs = xs.detach();
    match xs.dtype() {
        DType::F16 | DType::BF16 => xs.to_dtype(DType::F32),
        dt if dt.is_float() => Ok(xs),
        _ => xs.to_dtype(DType::F64),
    }
}

/// How many elements of `xs` are outside `domain` (the whole line when `None`), NaN counted as
/// outside, compared as [`comparable`] says.
fn count_outside(xs: &Tensor, domain: Option<Interval>) -> Result<u64> {
    let xs = comparable(xs)?;
    let (lo, hi) = domain.map_or((f64::NEG_INFINITY, f64::INFINITY), |d| d.ends());
    let inside = xs.ge(lo)?.mul(&xs.le(hi)?)?;
    let inside = inside.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
    Ok(xs.elem_count() as u64 - u64::from(inside))
}

/// `clamp(x)` to `bounds` as tensor ops, with the gradient of the fused kernels: 1 on the closed
/// interval (its ends included), 0 outside. (candle's own `clamp` halves the gradient at the
/// ends, where `max`/`min` see a tie.)
pub(crate) fn clamp_tensor(xs: &Tensor, bounds: Option<Interval>) -> Result<Tensor> {
    let Some(bounds) = bounds else {
        return Ok(xs.clone());
    };
    let (lo, hi) = bounds.ends();
    let c = comparable(xs)?;
    let inside = c.ge(lo)?.mul(&c.le(hi)?)?;
    inside.where_cond(xs, &xs.clamp(lo, hi)?.detach())
}

/// Counts of inputs seen by a monitored polynomial layer.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use polyact::nn::{Guarded, PolyAct};
/// let layer = PolyAct::new(&polyact::presets::m_tanh()).with_domain(-1.0..=1.0)?.with_monitor();
/// layer.forward(&Tensor::new(&[0.0_f32, 0.5, 2.0, -3.0, 0.1, 0.2, 0.3, 0.4], &Device::Cpu)?)?;
/// let report = layer.guard().report().expect("monitored");
/// assert_eq!((report.inputs, report.outside), (8, 2));
/// assert!((report.fraction() - 0.25).abs() < 1e-15);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RangeReport {
    /// Input elements seen since the counters were last reset.
    pub inputs: u64,
    /// How many of them lay outside the domain (NaN included).
    pub outside: u64,
}

impl RangeReport {
    /// `outside / inputs`, or 0 when nothing was seen.
    ///
    /// ```
    /// assert!(polyact::nn::RangeReport::default().fraction().abs() < 1e-300);
    /// ```
    pub fn fraction(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            self.outside as f64 / self.inputs as f64
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    inputs: AtomicU64,
    outside: AtomicU64,
}

/// The interval a polynomial layer's inputs should stay in, and what the layer does about
/// inputs outside it.
///
/// Every polynomial layer ([`PolyAct`](super::PolyAct), [`LearnablePoly`](super::LearnablePoly))
/// has one, reached with `layer.guard()` and configured through the [`Guarded`] builder
/// (`with_domain`, `with_clamp`, `with_monitor`). Its domain starts as the polynomial's own
/// ([`Polynomial::domain`](crate::Polynomial::domain), set by a fit). Your own layers can hold
/// one too: build it with [`RangeGuard::new`], call [`observe`](RangeGuard::observe) on every
/// forward pass and clamp to [`clamp_bounds`](RangeGuard::clamp_bounds).
///
/// * **Report**: [`out_of_range`](RangeGuard::out_of_range) measures a tensor; with monitoring
///   on, every forward pass adds its inputs to counters read by [`report`](RangeGuard::report)
///   (a few extra passes of tensor ops per forward, so it is off by default).
/// * **Clamp**: with clamping on, inputs are clamped to the domain before the polynomial is
///   evaluated, and the gradient with respect to an input outside it is zero (that of the
///   clamp); coefficient gradients use the clamped inputs.
///
/// Clones of a layer share its counters.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use polyact::nn::{Guarded, PolyAct};
/// let poly = polyact::presets::m_sigmoid().with_domain(-4.0..=4.0)?;
/// let layer = PolyAct::new(&poly).with_clamp()?.with_monitor();
/// let xs = Tensor::new(&[-8.0_f32, 0.0, 2.0, 9.0], &Device::Cpu)?;
/// let ys = layer.forward(&xs)?.to_vec1::<f32>()?;
/// assert!((ys[0] - poly.eval(-4.0_f32)).abs() < 1e-6); // clamped to the domain
/// assert_eq!(layer.guard().report().map(|r| r.outside), Some(2));
/// assert!((layer.guard().out_of_range(&xs)? - 0.5).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RangeGuard {
    domain: Option<Interval>,
    clamp: bool,
    counters: Option<Arc<Counters>>,
}

impl RangeGuard {
    /// A guard for `domain` (none: the whole real line), not clamping, not counting.
    ///
    /// ```
    /// use polyact::nn::RangeGuard;
    /// let guard = RangeGuard::new(Some(polyact::Interval::new(-3.0, 3.0)?)).with_monitor();
    /// assert!(guard.report().is_some() && !guard.is_clamped());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn new(domain: Option<Interval>) -> Self {
        Self {
            domain,
            clamp: false,
            counters: None,
        }
    }

    /// The same guard for `domain` (an [`Interval`] or a range `a..=b`).
    ///
    /// # Errors
    /// [`Error::InvalidInterval`](crate::Error::InvalidInterval) unless the ends are finite and
    /// `lo < hi`.
    pub fn with_domain<I>(mut self, domain: I) -> crate::Result<Self>
    where
        I: TryInto<Interval, Error: Into<Error>>,
    {
        self.domain = Some(domain.try_into().map_err(Into::into)?);
        Ok(self)
    }

    /// The same guard clamping inputs to its domain.
    ///
    /// # Errors
    /// [`Error::MissingDomain`](crate::Error::MissingDomain) if it has no domain.
    pub fn with_clamp(mut self) -> crate::Result<Self> {
        if self.domain.is_none() {
            return Err(Error::MissingDomain {
                operation: "clamping",
            });
        }
        self.clamp = true;
        Ok(self)
    }

    /// The same guard counting, on every [`observe`](Self::observe), the inputs outside its
    /// domain (read with [`report`](Self::report)).
    pub fn with_monitor(mut self) -> Self {
        self.counters.get_or_insert_with(Default::default);
        self
    }

    /// The interval, if any: the polynomial's domain unless the layer was given another.
    ///
    /// ```
    /// use polyact::nn::Guarded;
    /// let poly = polyact::presets::m_tanh().with_domain(-2.0..=2.0)?;
    /// let layer = polyact::nn::PolyAct::new(&poly);
    /// assert_eq!(layer.guard().domain(), poly.domain());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn domain(&self) -> Option<Interval> {
        self.domain
    }

    /// Whether inputs are clamped to the domain.
    ///
    /// ```
    /// let poly = polyact::presets::m_tanh().with_domain(-2.0..=2.0)?;
    /// use polyact::nn::Guarded;
    /// assert!(!polyact::nn::PolyAct::new(&poly).guard().is_clamped());
    /// assert!(polyact::nn::PolyAct::new(&poly).with_clamp()?.guard().is_clamped());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn is_clamped(&self) -> bool {
        self.clamp
    }

    /// The interval to clamp inputs to, when clamping is on.
    pub fn clamp_bounds(&self) -> Option<Interval> {
        self.domain.filter(|_| self.clamp)
    }

    /// The fraction of the elements of `xs` outside the domain, NaN counted as outside.
    /// Without a domain the whole real line is the domain, so only NaN counts.
    ///
    /// # Errors
    /// Candle's, if a tensor op fails.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use polyact::nn::Guarded;
    /// let poly = polyact::presets::m_sigmoid().with_domain(-5.0..=5.0)?;
    /// let layer = polyact::nn::PolyAct::new(&poly);
    /// let xs = Tensor::new(&[-6.0_f32, 0.0, 1.0, 7.0], &Device::Cpu)?;
    /// assert!((layer.guard().out_of_range(&xs)? - 0.5).abs() < 1e-12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn out_of_range(&self, xs: &Tensor) -> Result<f64> {
        out_of_range(xs, self.domain)
    }

    /// The counts since the last [`reset`](RangeGuard::reset), or `None` when monitoring is off.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// let poly = polyact::presets::m_sigmoid().with_domain(-5.0..=5.0)?;
    /// use polyact::nn::Guarded;
    /// let layer = polyact::nn::PolyAct::new(&poly).with_monitor();
    /// layer.forward(&Tensor::new(&[-6.0_f32, 0.0, 1.0, 7.0], &Device::Cpu)?)?;
    /// let report = layer.guard().report().expect("monitoring is on");
    /// assert_eq!((report.inputs, report.outside), (4, 2));
    /// assert!(polyact::nn::PolyAct::new(&poly).guard().report().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn report(&self) -> Option<RangeReport> {
        self.counters.as_ref().map(|c| RangeReport {
            inputs: c.inputs.load(Ordering::Relaxed),
            outside: c.outside.load(Ordering::Relaxed),
        })
    }

    /// Sets the counters back to zero.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// use polyact::nn::Guarded;
    /// let layer = polyact::nn::PolyAct::new(&polyact::presets::m_relu()).with_monitor();
    /// layer.forward(&Tensor::new(&[1.0_f32, 2.0], &Device::Cpu)?)?;
    /// layer.guard().reset();
    /// assert_eq!(layer.guard().report().map(|r| r.inputs), Some(0));
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn reset(&self) {
        if let Some(c) = &self.counters {
            c.inputs.store(0, Ordering::Relaxed);
            c.outside.store(0, Ordering::Relaxed);
        }
    }

    /// Counts the inputs `xs` when monitoring (a layer calls it on every forward pass); does
    /// nothing otherwise.
    ///
    /// # Errors
    /// Candle's, if a tensor op fails.
    pub fn observe(&self, xs: &Tensor) -> Result<()> {
        if let Some(c) = &self.counters {
            let outside = count_outside(xs, self.domain)?;
            c.inputs
                .fetch_add(xs.elem_count() as u64, Ordering::Relaxed);
            c.outside.fetch_add(outside, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A layer with a [`RangeGuard`]: the one builder for domain, clamping and monitoring, shared by
/// [`PolyAct`](super::PolyAct), [`LearnablePoly`](super::LearnablePoly) and any layer of yours
/// that implements the two accessors.
///
/// ```
/// use polyact::nn::{Guarded, PolyAct};
/// let layer = PolyAct::new(&polyact::presets::m_tanh())
///     .with_domain(-2.0..=2.0)?
///     .with_clamp()?
///     .with_monitor();
/// assert!(layer.guard().is_clamped() && layer.guard().report().is_some());
/// assert!(PolyAct::new(&polyact::presets::m_tanh()).with_clamp().is_err()); // no domain
/// # Ok::<(), polyact::Error>(())
/// ```
pub trait Guarded: Sized {
    /// The guard.
    fn guard(&self) -> &RangeGuard;

    /// The guard, to configure it.
    fn guard_mut(&mut self) -> &mut RangeGuard;

    /// The same layer with its guard's domain set to `domain`.
    ///
    /// # Errors
    /// [`Error::InvalidInterval`](crate::Error::InvalidInterval) unless the ends are finite and
    /// `lo < hi`.
    fn with_domain<I>(mut self, domain: I) -> crate::Result<Self>
    where
        I: TryInto<Interval, Error: Into<Error>>,
    {
        let guard = std::mem::take(self.guard_mut());
        *self.guard_mut() = guard.with_domain(domain)?;
        Ok(self)
    }

    /// The same layer clamping its inputs to the domain: `p(clamp(x))`, input gradient zero
    /// outside the closed domain; coefficient gradients (where there are any) use the clamped
    /// inputs.
    ///
    /// # Errors
    /// [`Error::MissingDomain`](crate::Error::MissingDomain) if the layer has no domain.
    fn with_clamp(mut self) -> crate::Result<Self> {
        let guard = std::mem::take(self.guard_mut());
        *self.guard_mut() = guard.with_clamp()?;
        Ok(self)
    }

    /// The same layer counting, on every forward pass, how many inputs fall outside its domain
    /// (read with [`RangeGuard::report`]). Costs a few extra passes of tensor ops per forward.
    fn with_monitor(mut self) -> Self {
        let guard = std::mem::take(self.guard_mut());
        *self.guard_mut() = guard.with_monitor();
        self
    }
}

//! The range guard of the polynomial layers: the interval their inputs should stay in.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Result, Tensor};

use crate::polynomial::check_interval;

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
/// let fraction = polyact::nn::out_of_range(&xs, &(-1.0..=2.0))?;
/// assert!((fraction - 3.0 / 8.0).abs() < 1e-12); // -3, 5 and NaN
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn out_of_range(xs: &Tensor, domain: &RangeInclusive<f64>) -> Result<f64> {
    let total = xs.elem_count();
    if total == 0 {
        return Ok(0.0);
    }
    Ok(count_outside(xs, domain)? as f64 / total as f64)
}

/// How many elements of `xs` are outside `domain` (NaN counted as outside).
fn count_outside(xs: &Tensor, domain: &RangeInclusive<f64>) -> Result<u64> {
    let xs = xs.detach();
    let inside = xs.ge(*domain.start())?.mul(&xs.le(*domain.end())?)?;
    let inside = inside.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
    Ok(xs.elem_count() as u64 - u64::from(inside))
}

/// Counts of inputs seen by a monitored polynomial layer.
///
/// ```
/// let report = polyact::nn::RangeReport { inputs: 8, outside: 2 };
/// assert!((report.fraction() - 0.25).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
/// has one, reached with `layer.guard()` and configured with the layer's `with_domain`,
/// `with_clamp` and `with_monitor`. Its domain starts as the polynomial's own
/// ([`Polynomial::domain`](crate::Polynomial::domain), set by a fit).
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
/// use polyact::nn::PolyAct;
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
    domain: Option<RangeInclusive<f64>>,
    clamp: bool,
    counters: Option<Arc<Counters>>,
}

impl RangeGuard {
    pub(crate) fn new(domain: Option<RangeInclusive<f64>>) -> Self {
        Self {
            domain,
            clamp: false,
            counters: None,
        }
    }

    pub(crate) fn set_domain(&mut self, domain: RangeInclusive<f64>) -> crate::Result<()> {
        check_interval(&domain)?;
        self.domain = Some(domain);
        Ok(())
    }

    pub(crate) fn set_clamp(&mut self) -> crate::Result<()> {
        if self.domain.is_none() {
            return Err(crate::Error::MissingDomain {
                operation: "clamping",
            });
        }
        self.clamp = true;
        Ok(())
    }

    pub(crate) fn set_monitor(&mut self) {
        self.counters.get_or_insert_with(Default::default);
    }

    /// The interval, if any: the polynomial's domain unless the layer was given another.
    ///
    /// ```
    /// let poly = polyact::presets::m_tanh().with_domain(-2.0..=2.0)?;
    /// let layer = polyact::nn::PolyAct::new(&poly);
    /// assert_eq!(layer.guard().domain(), Some(&(-2.0..=2.0)));
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn domain(&self) -> Option<&RangeInclusive<f64>> {
        self.domain.as_ref()
    }

    /// Whether inputs are clamped to the domain.
    ///
    /// ```
    /// let poly = polyact::presets::m_tanh().with_domain(-2.0..=2.0)?;
    /// assert!(!polyact::nn::PolyAct::new(&poly).guard().is_clamped());
    /// assert!(polyact::nn::PolyAct::new(&poly).with_clamp()?.guard().is_clamped());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn is_clamped(&self) -> bool {
        self.clamp
    }

    /// The bounds to clamp to, when clamping is on.
    pub(crate) fn clamp_bounds(&self) -> Option<(f64, f64)> {
        self.domain
            .as_ref()
            .filter(|_| self.clamp)
            .map(|d| (*d.start(), *d.end()))
    }

    /// The fraction of the elements of `xs` outside the domain, NaN counted as outside.
    /// Without a domain the whole real line is the domain, so only NaN counts.
    ///
    /// # Errors
    /// Candle's, if a tensor op fails.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// let poly = polyact::presets::m_sigmoid().with_domain(-5.0..=5.0)?;
    /// let layer = polyact::nn::PolyAct::new(&poly);
    /// let xs = Tensor::new(&[-6.0_f32, 0.0, 1.0, 7.0], &Device::Cpu)?;
    /// assert!((layer.guard().out_of_range(&xs)? - 0.5).abs() < 1e-12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn out_of_range(&self, xs: &Tensor) -> Result<f64> {
        out_of_range(xs, &self.whole_domain())
    }

    fn whole_domain(&self) -> RangeInclusive<f64> {
        self.domain
            .clone()
            .unwrap_or(f64::NEG_INFINITY..=f64::INFINITY)
    }

    /// The counts since the last [`reset`](RangeGuard::reset), or `None` when monitoring is off.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// let poly = polyact::presets::m_sigmoid().with_domain(-5.0..=5.0)?;
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

    /// Called by the layers on every forward pass: counts the inputs when monitoring.
    pub(crate) fn observe(&self, xs: &Tensor) -> Result<()> {
        if let Some(c) = &self.counters {
            let outside = count_outside(xs, &self.whole_domain())?;
            c.inputs
                .fetch_add(xs.elem_count() as u64, Ordering::Relaxed);
            c.outside.fetch_add(outside, Ordering::Relaxed);
        }
        Ok(())
    }
}

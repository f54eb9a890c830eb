//! The CPU kernels of the polynomial ops: forward `p(clamp(x))`, backward `g · p′(clamp(x))`,
//! and the coefficient gradients `Σ g · clamp(x)ᵏ`, written once over [`LANES`] elements.

use super::cpu::{Compute, LANES, Map1, Map2, Reduce2};
use crate::kernel::{self, horner_lanes};

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
        Self::new(kernel::differentiate(&self.double, |&c, k| c * k as f64).collect())
    }

    fn get<C: Compute>(&self) -> &[C] {
        C::pick(&self.single, &self.double)
    }

    /// The coefficients rounded to `f32`, for the GPU kernels.
    #[cfg(feature = "cuda")]
    pub(crate) fn single(&self) -> &[f32] {
        &self.single
    }

    /// The coefficients in `f64`, for the GPU kernels.
    #[cfg(feature = "cuda")]
    pub(crate) fn double(&self) -> &[f64] {
        &self.double
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
    out: &mut [C],
) {
    let n = out.len();
    let full = n - n % LANES;
    for (i, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
        let result = op.lanes::<FMA>(inputs, i * LANES);
        o.copy_from_slice(&result);
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
        out[full..].copy_from_slice(&result[..n - full]);
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
            None => horner_lanes::<C, FMA, LANES>(self.coeffs, x),
            Some(bounds) => {
                let mut x = *x;
                clamp_lanes(&mut x, bounds);
                horner_lanes::<C, FMA, LANES>(self.coeffs, &x)
            }
        }
    }
}

impl Map1 for Forward<'_> {
    #[inline(always)]
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], out: &mut [C]) {
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
                let mut d = horner_lanes::<C, FMA, LANES>(self.derivative, x);
                for (d, &g) in d.iter_mut().zip(g) {
                    *d = *d * g;
                }
                d
            }
            Some(bounds @ (lo, hi)) => {
                let mut clamped = *x;
                clamp_lanes(&mut clamped, bounds);
                let mut d = horner_lanes::<C, FMA, LANES>(self.derivative, &clamped);
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
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], g: &[C], out: &mut [C]) {
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

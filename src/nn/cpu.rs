//! The CPU side of polyact's custom ops: dtype dispatch, strided gathering, and a parallel block
//! loop that evaluates in `f32` (for `f32`, `f16` and `bf16` storage) or `f64`.
//!
//! A kernel sees blocks of at most [`BLOCK`] elements already converted to its compute type; the
//! driver splits the tensor into tasks of [`CHUNK`] elements run in parallel by rayon, each
//! compiled for the CPU's best instruction set by [`kernel::dispatch`](crate::kernel::dispatch).

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, WithDType};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use num_traits::Zero;

use crate::kernel::{self, Kernel};
use crate::{Activation, Real};

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
pub(crate) const CHUNK: usize = 32 * 1024;
/// Elements per block: the unit of dtype conversion for the half types (a few KiB of stack).
pub(crate) const BLOCK: usize = 1024;
/// Elements evaluated side by side in the kernels: enough independent chains to hide the
/// latency of a fused multiply-add, and a multiple of every vector width.
pub(crate) const LANES: usize = 32;

/// A type kernels compute in: `f32` or `f64`.
pub(crate) trait Compute: Real {
    /// Picks this type's copy of a coefficient list kept in both precisions.
    fn pick<'a>(single: &'a [f32], double: &'a [f64]) -> &'a [Self];
    /// `Activation::eval_slice` in this precision.
    fn eval<A: Activation<f32> + Activation<f64> + ?Sized>(a: &A, xs: &[Self], out: &mut [Self]);
    /// `Activation::derivative_slice` in this precision.
    fn derivative<A: Activation<f32> + Activation<f64> + ?Sized>(
        a: &A,
        xs: &[Self],
        out: &mut [Self],
    );
}

impl Compute for f32 {
    fn pick<'a>(single: &'a [f32], _: &'a [f64]) -> &'a [f32] {
        single
    }
    fn eval<A: Activation<f32> + Activation<f64> + ?Sized>(a: &A, xs: &[f32], out: &mut [f32]) {
        Activation::<f32>::eval_slice(a, xs, out)
    }
    fn derivative<A: Activation<f32> + Activation<f64> + ?Sized>(
        a: &A,
        xs: &[f32],
        out: &mut [f32],
    ) {
        Activation::<f32>::derivative_slice(a, xs, out)
    }
}

impl Compute for f64 {
    fn pick<'a>(_: &'a [f32], double: &'a [f64]) -> &'a [f64] {
        double
    }
    fn eval<A: Activation<f32> + Activation<f64> + ?Sized>(a: &A, xs: &[f64], out: &mut [f64]) {
        Activation::<f64>::eval_slice(a, xs, out)
    }
    fn derivative<A: Activation<f32> + Activation<f64> + ?Sized>(
        a: &A,
        xs: &[f64],
        out: &mut [f64],
    ) {
        Activation::<f64>::derivative_slice(a, xs, out)
    }
}

/// A storage element type and the type it is computed in.
pub(crate) trait Elem: WithDType {
    /// The compute type: `f32` for `f32`, `f16` and `bf16`; `f64` for `f64`.
    type C: Compute;
    /// A block in the compute type: `src` itself when the types agree, else converted into `buf`.
    fn input<'a>(src: &'a [Self], buf: &'a mut [Self::C; BLOCK]) -> &'a [Self::C];
    /// Lets `fill` write a block of results into `dst`: directly when the types agree, else
    /// through `buf` and a conversion.
    fn output(dst: &mut [Self], buf: &mut [Self::C; BLOCK], fill: impl FnOnce(&mut [Self::C]));
}

macro_rules! native_elem {
    ($t:ty) => {
        impl Elem for $t {
            type C = $t;
            #[inline(always)]
            fn input<'a>(src: &'a [$t], _: &'a mut [$t; BLOCK]) -> &'a [$t] {
                src
            }
            #[inline(always)]
            fn output(dst: &mut [$t], _: &mut [$t; BLOCK], fill: impl FnOnce(&mut [$t])) {
                fill(dst)
            }
        }
    };
}
native_elem!(f32);
native_elem!(f64);

macro_rules! half_elem {
    ($t:ty) => {
        impl Elem for $t {
            type C = f32;
            #[inline(always)]
            fn input<'a>(src: &'a [$t], buf: &'a mut [f32; BLOCK]) -> &'a [f32] {
                let buf = &mut buf[..src.len()];
                src.convert_to_f32_slice(buf);
                buf
            }
            #[inline(always)]
            fn output(dst: &mut [$t], buf: &mut [f32; BLOCK], fill: impl FnOnce(&mut [f32])) {
                let n = dst.len();
                fill(&mut buf[..n]);
                dst.convert_from_f32_slice(&buf[..n]);
            }
        }
    };
}
half_elem!(f16);
half_elem!(bf16);

/// An elementwise map of one tensor: `out = f(x)`.
pub(crate) trait Map1: Sync {
    /// Evaluates one block of at most `BLOCK` elements into `out`.
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], out: &mut [C]);
}

/// An elementwise map of two tensors of the same shape: `out = f(x, g)`.
pub(crate) trait Map2: Sync {
    /// Evaluates one block of at most `BLOCK` elements into `out`.
    fn block<C: Compute, const FMA: bool>(&self, x: &[C], g: &[C], out: &mut [C]);
}

/// A reduction of two tensors of the same shape into a few `f64` sums.
pub(crate) trait Reduce2: Sync {
    /// The number of sums.
    fn len(&self) -> usize;
    /// Adds one block's contributions to `sums`; `lanes` is scratch space of `len()` rows.
    fn block<C: Compute, const FMA: bool>(
        &self,
        x: &[C],
        g: &[C],
        lanes: &mut [[C; LANES]],
        sums: &mut [f64],
    );
}

/// The elements of a tensor in logical (row-major) order: borrowed when the layout is
/// contiguous, gathered otherwise, one contiguous run of the innermost dimensions at a time.
fn logical<'a, T: Copy>(data: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return Cow::Borrowed(&data[start..end]);
    }
    if layout.shape().elem_count() == 0 {
        return Cow::Owned(Vec::new());
    }
    let (dims, strides) = (layout.dims(), layout.stride());
    // The innermost dimensions that are laid out contiguously form one run.
    let mut outer = dims.len();
    let mut run = 1;
    while outer > 0 && (dims[outer - 1] == 1 || strides[outer - 1] == run) {
        run *= dims[outer - 1];
        outer -= 1;
    }
    let (dims, strides) = (&dims[..outer], &strides[..outer]);
    let mut out = Vec::with_capacity(layout.shape().elem_count());
    let mut index = vec![0_usize; outer];
    let mut start = layout.start_offset();
    loop {
        out.extend_from_slice(&data[start..start + run]);
        // Advance the multi-index of the outer dimensions like an odometer.
        let mut d = outer;
        loop {
            if d == 0 {
                return Cow::Owned(out);
            }
            d -= 1;
            index[d] += 1;
            start += strides[d];
            if index[d] < dims[d] {
                break;
            }
            start -= strides[d] * dims[d];
            index[d] = 0;
        }
    }
}

/// Runs `task(start, chunk)` over consecutive chunks of `out`, in parallel when there is more
/// than one.
fn for_chunks<S: Send>(out: &mut [S], task: impl Fn(usize, &mut [S]) + Sync) {
    if out.len() <= CHUNK {
        task(0, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| task(i * CHUNK, chunk));
    }
}

/// One chunk of a [`Map1`], run by [`kernel::dispatch`].
struct Map1Chunk<'a, S, K> {
    kernel: &'a K,
    x: &'a [S],
    out: &'a mut [S],
}

impl<S: Elem, K: Map1> Kernel for Map1Chunk<'_, S, K> {
    type Output = ();

    #[inline(always)]
    fn run<const FMA: bool, const L: usize>(self) {
        let mut xb = [S::C::zero(); BLOCK];
        let mut ob = [S::C::zero(); BLOCK];
        for (x, o) in self.x.chunks(BLOCK).zip(self.out.chunks_mut(BLOCK)) {
            let x = S::input(x, &mut xb);
            S::output(o, &mut ob, |o| self.kernel.block::<S::C, FMA>(x, o));
        }
    }
}

/// One chunk of a [`Map2`], run by [`kernel::dispatch`].
struct Map2Chunk<'a, S, K> {
    kernel: &'a K,
    x: &'a [S],
    g: &'a [S],
    out: &'a mut [S],
}

impl<S: Elem, K: Map2> Kernel for Map2Chunk<'_, S, K> {
    type Output = ();

    #[inline(always)]
    fn run<const FMA: bool, const L: usize>(self) {
        let mut xb = [S::C::zero(); BLOCK];
        let mut gb = [S::C::zero(); BLOCK];
        let mut ob = [S::C::zero(); BLOCK];
        let blocks = self.x.chunks(BLOCK).zip(self.g.chunks(BLOCK));
        for ((x, g), o) in blocks.zip(self.out.chunks_mut(BLOCK)) {
            let x = S::input(x, &mut xb);
            let g = S::input(g, &mut gb);
            S::output(o, &mut ob, |o| self.kernel.block::<S::C, FMA>(x, g, o));
        }
    }
}

/// One chunk of a [`Reduce2`], run by [`kernel::dispatch`].
struct Reduce2Chunk<'a, S, K> {
    kernel: &'a K,
    x: &'a [S],
    g: &'a [S],
}

impl<S: Elem, K: Reduce2> Kernel for Reduce2Chunk<'_, S, K> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn run<const FMA: bool, const L: usize>(self) -> Vec<f64> {
        let mut sums = vec![0.0; self.kernel.len()];
        let mut lanes = vec![[S::C::zero(); LANES]; self.kernel.len()];
        let mut xb = [S::C::zero(); BLOCK];
        let mut gb = [S::C::zero(); BLOCK];
        for (x, g) in self.x.chunks(BLOCK).zip(self.g.chunks(BLOCK)) {
            let x = S::input(x, &mut xb);
            let g = S::input(g, &mut gb);
            self.kernel.block::<S::C, FMA>(x, g, &mut lanes, &mut sums);
        }
        sums
    }
}

/// A zeroed output of `n` elements, which the kernels then overwrite (safe code only: no
/// uninitialised memory relies on every kernel writing every element).
fn zeroed<S: Elem>(n: usize) -> Vec<S> {
    vec![S::zero(); n]
}

fn run_map1<S: Elem>(kernel: &impl Map1, x: &[S]) -> Vec<S> {
    let mut out = zeroed(x.len());
    for_chunks(&mut out, |start, chunk| {
        let x = &x[start..start + chunk.len()];
        kernel::dispatch(Map1Chunk {
            kernel,
            x,
            out: chunk,
        })
    });
    out
}

fn run_map2<S: Elem>(kernel: &impl Map2, x: &[S], g: &[S]) -> Vec<S> {
    let mut out = zeroed(x.len());
    for_chunks(&mut out, |start, chunk| {
        let range = start..start + chunk.len();
        let (x, g) = (&x[range.clone()], &g[range]);
        kernel::dispatch(Map2Chunk {
            kernel,
            x,
            g,
            out: chunk,
        })
    });
    out
}

fn run_reduce2<S: Elem>(kernel: &impl Reduce2, x: &[S], g: &[S]) -> Vec<f64> {
    let n = x.len();
    if n <= CHUNK {
        return kernel::dispatch(Reduce2Chunk { kernel, x, g });
    }
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|i| {
            let range = i * CHUNK..((i + 1) * CHUNK).min(n);
            let (x, g) = (&x[range.clone()], &g[range]);
            kernel::dispatch(Reduce2Chunk { kernel, x, g })
        })
        .reduce(
            || vec![0.0; kernel.len()],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// Applies a [`Map1`] to a CPU tensor of any float dtype and layout; the result is contiguous.
pub(crate) fn map1(
    kernel: &impl Map1,
    x: &CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> Result<CpuStorage> {
    Ok(match x {
        CpuStorage::F32(x) => CpuStorage::F32(run_map1(kernel, &logical(x, layout))),
        CpuStorage::F64(x) => CpuStorage::F64(run_map1(kernel, &logical(x, layout))),
        CpuStorage::F16(x) => CpuStorage::F16(run_map1(kernel, &logical(x, layout))),
        CpuStorage::BF16(x) => CpuStorage::BF16(run_map1(kernel, &logical(x, layout))),
        other => Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), op))?,
    })
}

/// Applies a [`Map2`] to two CPU tensors of the same shape and float dtype, any layouts.
pub(crate) fn map2(
    kernel: &impl Map2,
    x: &CpuStorage,
    lx: &Layout,
    g: &CpuStorage,
    lg: &Layout,
    op: &'static str,
) -> Result<CpuStorage> {
    super::check_pair(x.dtype(), lx, g.dtype(), lg, op)?;
    Ok(match (x, g) {
        (CpuStorage::F32(x), CpuStorage::F32(g)) => {
            CpuStorage::F32(run_map2(kernel, &logical(x, lx), &logical(g, lg)))
        }
        (CpuStorage::F64(x), CpuStorage::F64(g)) => {
            CpuStorage::F64(run_map2(kernel, &logical(x, lx), &logical(g, lg)))
        }
        (CpuStorage::F16(x), CpuStorage::F16(g)) => {
            CpuStorage::F16(run_map2(kernel, &logical(x, lx), &logical(g, lg)))
        }
        (CpuStorage::BF16(x), CpuStorage::BF16(g)) => {
            CpuStorage::BF16(run_map2(kernel, &logical(x, lx), &logical(g, lg)))
        }
        (other, _) => Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), op))?,
    })
}

/// Applies a [`Reduce2`] to two CPU tensors of the same shape and float dtype, any layouts.
pub(crate) fn reduce2(
    kernel: &impl Reduce2,
    x: &CpuStorage,
    lx: &Layout,
    g: &CpuStorage,
    lg: &Layout,
    op: &'static str,
) -> Result<Vec<f64>> {
    super::check_pair(x.dtype(), lx, g.dtype(), lg, op)?;
    Ok(match (x, g) {
        (CpuStorage::F32(x), CpuStorage::F32(g)) => {
            run_reduce2(kernel, &logical(x, lx), &logical(g, lg))
        }
        (CpuStorage::F64(x), CpuStorage::F64(g)) => {
            run_reduce2(kernel, &logical(x, lx), &logical(g, lg))
        }
        (CpuStorage::F16(x), CpuStorage::F16(g)) => {
            run_reduce2(kernel, &logical(x, lx), &logical(g, lg))
        }
        (CpuStorage::BF16(x), CpuStorage::BF16(g)) => {
            run_reduce2(kernel, &logical(x, lx), &logical(g, lg))
        }
        (other, _) => Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), op))?,
    })
}

/// The values of a small CPU tensor (polynomial coefficients) as `f64`, in logical order.
pub(crate) fn to_f64(s: &CpuStorage, layout: &Layout, op: &'static str) -> Result<Vec<f64>> {
    fn convert<T: WithDType>(data: &[T], layout: &Layout) -> Vec<f64> {
        logical(data, layout).iter().map(|v| v.to_f64()).collect()
    }
    Ok(match s {
        CpuStorage::F32(v) => convert(v, layout),
        CpuStorage::F64(v) => convert(v, layout),
        CpuStorage::F16(v) => convert(v, layout),
        CpuStorage::BF16(v) => convert(v, layout),
        other => Err(candle_core::Error::UnsupportedDTypeForOp(other.dtype(), op))?,
    })
}

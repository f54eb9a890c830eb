//! The convolution blocks of the study's CNN: Conv2D ('same', stride 1) + bias + ReLU + MaxPool 2x2,
//! or, for a network of additions and multiplications only, a polynomial activation
//! ([`ConvAct::Poly`]) and/or average pooling ([`Pooling::Avg`]).
//!
//! Two implementations of the same function, NHWC in and out, weights in Keras' HWIO layout
//! flattened to `[kh * kw * cin, cout]`:
//!
//! - [`ConvBlock`], a fused candle `CustomOp3` for the CPU: per chunk of a few images it builds
//!   the im2col matrix, multiplies it with `gemm` into a cache-sized buffer, and applies ReLU and
//!   the pooling at once, keeping only the winning index of every pooling window (for another
//!   activation or pooling, the derivative factor of every pre-activation). Its backward
//!   pass recomputes the im2col chunk instead of storing it, and computes the input gradient only
//!   when the input takes part in autograd (never for the first layer, whose input is the data).
//!   Chunks run in parallel on the current rayon pool.
//! - [`candle_block`], the same block from candle's own ops (NCHW `conv2d`, then the pooling as
//!   a reshape and two `max`es), used on devices other than the CPU and as the oracle the other
//!   two are tested against.
//! - [`gemm_block`], the same block as one matrix product of a patch matrix built from shifted
//!   views, NHWC throughout, from candle's ops (any device; `--conv gemm`).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Keras 'same' padding along one axis: `(before, after)`, the extra pixel going after.
///
/// The output has `ceil(input / stride)` pixels; the padding needed for that is split with the
/// smaller half before, which for an even kernel (2x2, stride 1) means one row/column at the
/// bottom/right only.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// The activation of a convolution block.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ConvAct {
    /// `max(z, 0)` (the study's network).
    #[default]
    Relu,
    /// A polynomial, coefficients of `z^0, z^1, ...` (f32, evaluated by Horner).
    Poly(Vec<f32>),
}

impl ConvAct {
    /// The value and the derivative at `z`.
    #[inline(always)]
    pub fn eval(&self, z: f32) -> (f32, f32) {
        match self {
            ConvAct::Relu => {
                if z > 0.0 {
                    (z, 1.0)
                } else if z.is_nan() {
                    (z, 0.0)
                } else {
                    (0.0, 0.0)
                }
            }
            ConvAct::Poly(c) => polyact::kernel::horner_with_derivative::<f32, true>(c, z),
        }
    }
}

/// The 2x2, stride-2 pooling of a convolution block.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The window's maximum (the study's network).
    #[default]
    Max,
    /// The window's mean: additions and one multiplication by a constant 1/4, so the block is
    /// a polynomial of its input when its activation is one.
    Avg,
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Max => "max",
            Pooling::Avg => "avg",
        })
    }
}

/// What a convolution block computes after the convolution and its bias.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockKind {
    /// The activation.
    pub act: ConvAct,
    /// The pooling.
    pub pool: Pooling,
}

impl BlockKind {
    /// ReLU and max-pooling, the fused op's fast path.
    fn is_relu_max(&self) -> bool {
        self.act == ConvAct::Relu && self.pool == Pooling::Max
    }
}

/// Shape of one convolution block: input `h × w × cin`, a `k × k` kernel with `cout` filters,
/// 'same' padding, output `h/2 × w/2 × cout` after the 2x2 pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub cin: usize,
    /// Kernel side.
    pub k: usize,
    /// Filters.
    pub cout: usize,
}

impl ConvGeom {
    /// Rows of the im2col matrix (and the weight matrix): `k * k * cin`.
    pub fn patch(&self) -> usize {
        self.k * self.k * self.cin
    }
    /// Pooled output height.
    pub fn ph(&self) -> usize {
        self.h / 2
    }
    /// Pooled output width.
    pub fn pw(&self) -> usize {
        self.w / 2
    }
    /// Keras 'same' padding: `((top, bottom), (left, right))`.
    fn padding(&self) -> ((usize, usize), (usize, usize)) {
        (
            same_padding(self.h, self.k, 1),
            same_padding(self.w, self.k, 1),
        )
    }
    /// Padding before the first row/column (Keras 'same').
    fn pad(&self) -> (usize, usize) {
        let ((top, _), (left, _)) = self.padding();
        (top, left)
    }
    fn in_len(&self) -> usize {
        self.h * self.w * self.cin
    }
    fn out_len(&self) -> usize {
        self.ph() * self.pw() * self.cout
    }
    /// Number of weights plus biases.
    pub fn params(&self) -> usize {
        self.patch() * self.cout + self.cout
    }

    /// im2col of `nb` images: `col[(img * h * w + oy * w + ox) * patch + (ky * k + kx) * cin + ci]`.
    ///
    /// A kernel row lies contiguously in the NHWC input, so it is one copy when it is inside.
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let (pt, pl) = self.pad();
        let (h, w, cin, k, patch) = (
            self.h as isize,
            self.w as isize,
            self.cin,
            self.k,
            self.patch(),
        );
        let krow = k * cin;
        for (img, xi) in x.chunks_exact(self.in_len()).enumerate() {
            let base = img * self.h * self.w;
            for oy in 0..h {
                for ox in 0..w {
                    let row = &mut col[(base + (oy * w + ox) as usize) * patch..][..patch];
                    let x0 = ox - pl as isize;
                    for (ky, dst) in row.chunks_exact_mut(krow).enumerate() {
                        let iy = oy + ky as isize - pt as isize;
                        if iy < 0 || iy >= h {
                            dst.fill(0.0);
                        } else if x0 >= 0 && x0 + k as isize <= w {
                            let s = ((iy * w + x0) as usize) * cin;
                            dst.copy_from_slice(&xi[s..s + krow]);
                        } else {
                            for (kx, d) in dst.chunks_exact_mut(cin).enumerate() {
                                let ix = x0 + kx as isize;
                                if ix < 0 || ix >= w {
                                    d.fill(0.0);
                                } else {
                                    let s = ((iy * w + ix) as usize) * cin;
                                    d.copy_from_slice(&xi[s..s + cin]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the patches of `dcol` back onto the input gradient (the adjoint of [`Self::im2col`]).
    fn col2im(&self, dcol: &[f32], dx: &mut [f32]) {
        let (pt, pl) = self.pad();
        let (h, w, cin, k, patch) = (
            self.h as isize,
            self.w as isize,
            self.cin,
            self.k,
            self.patch(),
        );
        let krow = k * cin;
        for (img, dxi) in dx.chunks_exact_mut(self.in_len()).enumerate() {
            let base = img * self.h * self.w;
            for oy in 0..h {
                for ox in 0..w {
                    let row = &dcol[(base + (oy * w + ox) as usize) * patch..][..patch];
                    let x0 = ox - pl as isize;
                    for (ky, src) in row.chunks_exact(krow).enumerate() {
                        let iy = oy + ky as isize - pt as isize;
                        if iy < 0 || iy >= h {
                            continue;
                        }
                        if x0 >= 0 && x0 + k as isize <= w {
                            let s = ((iy * w + x0) as usize) * cin;
                            for (d, v) in dxi[s..s + krow].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (kx, sv) in src.chunks_exact(cin).enumerate() {
                                let ix = x0 + kx as isize;
                                if ix < 0 || ix >= w {
                                    continue;
                                }
                                let s = ((iy * w + ix) as usize) * cin;
                                for (d, v) in dxi[s..s + cin].iter_mut().zip(sv) {
                                    *d += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ReLU + 2x2 max pooling of `nb` pre-activations `z` (`[nb, h, w, cout]`): writes the pooled
    /// values and, per output, the index in `z` of the window's winner (`u32::MAX` when the ReLU
    /// is inactive, i.e. the window's maximum is not positive). Ties go to the first corner.
    #[inline(always)]
    fn relu_pool_generic(&self, z: &[f32], out: &mut [f32], arg: &mut [u32]) {
        let (w, c, ph, pw) = (self.w, self.cout, self.ph(), self.pw());
        let zlen = self.h * w * c;
        for (img, (zi, (oi, ai))) in z
            .chunks_exact(zlen)
            .zip(
                out.chunks_exact_mut(self.out_len())
                    .zip(arg.chunks_exact_mut(self.out_len())),
            )
            .enumerate()
        {
            let zbase = (img * zlen) as u32;
            for py in 0..ph {
                for px in 0..pw {
                    let o = (py * pw + px) * c;
                    let p00 = ((2 * py) * w + 2 * px) * c;
                    let p10 = p00 + w * c;
                    let offsets = [p00 as u32, (p00 + c) as u32, p10 as u32, (p10 + c) as u32];
                    let (z0, z1) = (&zi[p00..p00 + c], &zi[p00 + c..p00 + 2 * c]);
                    let (z2, z3) = (&zi[p10..p10 + c], &zi[p10 + c..p10 + 2 * c]);
                    let (oo, aa) = (&mut oi[o..o + c], &mut ai[o..o + c]);
                    for ch in 0..c {
                        let (mut best, mut corner) = (z0[ch], 0);
                        if z1[ch] > best {
                            (best, corner) = (z1[ch], 1);
                        }
                        if z2[ch] > best {
                            (best, corner) = (z2[ch], 2);
                        }
                        if z3[ch] > best {
                            (best, corner) = (z3[ch], 3);
                        }
                        if best > 0.0 {
                            oo[ch] = best;
                            aa[ch] = zbase + offsets[corner] + ch as u32;
                        } else {
                            // NaN lands here too (kept, to be seen): no gradient flows back.
                            oo[ch] = if best.is_nan() { best } else { 0.0 };
                            aa[ch] = u32::MAX;
                        }
                    }
                }
            }
        }
    }

    /// Any activation and pooling of `nb` pre-activations `z` (`[nb, h, w, cout]`): writes the
    /// pooled values, and in `deriv` (same shape as `z`, zeroed) the factor by which a pooled
    /// output's gradient reaches each pre-activation: `act'(z)` at a max-pool window's winner
    /// (the first maximum) and 0 elsewhere, `act'(z)/4` everywhere for average pooling.
    fn act_pool(&self, kind: &BlockKind, z: &[f32], out: &mut [f32], deriv: &mut [f32]) {
        let (w, c, ph, pw) = (self.w, self.cout, self.ph(), self.pw());
        let zlen = self.h * w * c;
        for (zi, (oi, di)) in z.chunks_exact(zlen).zip(
            out.chunks_exact_mut(self.out_len())
                .zip(deriv.chunks_exact_mut(zlen)),
        ) {
            for py in 0..ph {
                for px in 0..pw {
                    let o = (py * pw + px) * c;
                    let p00 = ((2 * py) * w + 2 * px) * c;
                    let p10 = p00 + w * c;
                    let corners = [p00, p00 + c, p10, p10 + c];
                    for ch in 0..c {
                        let v = corners.map(|p| kind.act.eval(zi[p + ch]));
                        match kind.pool {
                            Pooling::Max => {
                                let mut best = 0;
                                for (i, (a, _)) in v.iter().enumerate().skip(1) {
                                    if *a > v[best].0 {
                                        best = i;
                                    }
                                }
                                oi[o + ch] = v[best].0;
                                di[corners[best] + ch] = v[best].1;
                            }
                            Pooling::Avg => {
                                oi[o + ch] = 0.25 * (v[0].0 + v[1].0 + v[2].0 + v[3].0);
                                for (p, (_, d)) in corners.iter().zip(v) {
                                    di[p + ch] = 0.25 * d;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`relu_pool_generic`](Self::relu_pool_generic) compiled for the CPU's best instruction
    /// set, through the library's one dispatch.
    fn relu_pool(&self, z: &[f32], out: &mut [f32], arg: &mut [u32]) {
        polyact::kernel::dispatch(ReluPool {
            geom: self,
            z,
            out,
            arg,
        })
    }
}

/// One activation + pooling pass, as a kernel for [`polyact::kernel::dispatch`].
struct ReluPool<'a> {
    geom: &'a ConvGeom,
    z: &'a [f32],
    out: &'a mut [f32],
    arg: &'a mut [u32],
}

impl polyact::kernel::Kernel for ReluPool<'_> {
    type Output = ();

    #[inline(always)]
    fn run<const FMA: bool, const LANES: usize>(self) {
        self.geom.relu_pool_generic(self.z, self.out, self.arg)
    }
}

/// `dst (+)= lhs × rhs` with explicit row/column strides, single-threaded.
#[allow(clippy::too_many_arguments)]
fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |r: usize, c: usize, rs: usize, cs: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(
        last(m, n, dst_rs, dst_cs) < dst.len(),
        "gemm: dst too short"
    );
    if k > 0 {
        assert!(
            last(m, k, lhs_rs, lhs_cs) < lhs.len(),
            "gemm: lhs too short"
        );
        assert!(
            last(k, n, rhs_rs, rhs_cs) < rhs.len(),
            "gemm: rhs too short"
        );
    }
    // SAFETY: the asserts above keep every index the kernel reads or writes inside the slices,
    // and `dst` is borrowed mutably so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Images per chunk: keeps the im2col and pre-activation buffers of a chunk in L2.
const CHUNK: usize = 4;

/// Runs `f` on a contiguous CPU f32 tensor's data.
fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the fused conv block runs on the CPU only")
    };
    let (start, end) = layout
        .contiguous_offsets()
        .expect("made contiguous just above");
    f(&cpu.as_slice::<f32>()?[start..end])
}

fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("conv block: {what} must be contiguous")
    };
    Ok(&s.as_slice::<f32>()?[start..end])
}

/// The fused conv + bias + activation + 2x2 pooling op (see the module docs).
///
/// Inputs: `x` `[b, h, w, cin]`, `weight` `[k*k*cin, cout]`, `bias` `[cout]`, all f32 and
/// contiguous. Output `[b, h/2, w/2, cout]`.
pub struct ConvBlock {
    geom: ConvGeom,
    kind: BlockKind,
    /// Whether to keep what the backward pass needs.
    keep: bool,
    /// Kept by the forward pass for the backward pass.
    saved: Mutex<Option<Saved>>,
}

/// What the backward pass needs from the forward pass.
enum Saved {
    /// ReLU + max-pool: the index in the pre-activations of every pooled output's winner
    /// (`u32::MAX` when the ReLU is inactive).
    Winners(Vec<u32>),
    /// Any other block: the factor from each pooled gradient to each pre-activation (see
    /// [`ConvGeom::act_pool`]).
    Deriv(Vec<f32>),
}

impl ConvBlock {
    /// A fresh op for one forward call.
    pub fn new(geom: ConvGeom, kind: BlockKind, keep: bool) -> Self {
        Self {
            geom,
            kind,
            keep,
            saved: Mutex::new(None),
        }
    }

    /// Forward pass of the block, with autograd when `train` is true.
    pub fn forward(
        geom: ConvGeom,
        kind: &BlockKind,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let x = x.contiguous()?;
        if train {
            x.apply_op3(w, b, Self::new(geom, kind.clone(), true))
        } else {
            x.apply_op3_no_bwd(w, b, &Self::new(geom, kind.clone(), false))
        }
    }

    /// The pre-activations `z = conv(x) + bias` of the `nb` images `xc`.
    fn preactivations(&self, xc: &[f32], wt: &[f32], bias: &[f32]) -> Vec<f32> {
        let g = self.geom;
        let (rows, patch) = (g.h * g.w, g.patch());
        let nb = xc.len() / g.in_len();
        let mut col = vec![0f32; nb * rows * patch];
        g.im2col(xc, &mut col);
        let mut z = vec![0f32; nb * rows * g.cout];
        z.chunks_exact_mut(g.cout)
            .for_each(|r| r.copy_from_slice(bias));
        gemm(
            (nb * rows, g.cout, patch),
            &mut z,
            (g.cout, 1),
            true,
            &col,
            (patch, 1),
            wt,
            (g.cout, 1),
        );
        z
    }

    /// ReLU + max-pool forward, keeping the winners.
    fn forward_relu_max(&self, x: &[f32], wt: &[f32], bias: &[f32], out: &mut [f32]) -> Vec<u32> {
        let g = self.geom;
        let rows = g.h * g.w;
        let mut winners = vec![0u32; out.len()];
        x.par_chunks(CHUNK * g.in_len())
            .zip(out.par_chunks_mut(CHUNK * g.out_len()))
            .zip(winners.par_chunks_mut(CHUNK * g.out_len()))
            .enumerate()
            .for_each(|(i, ((xc, oc), ac))| {
                let z = self.preactivations(xc, wt, bias);
                g.relu_pool(&z, oc, ac);
                // Make the winner indices global to the batch.
                let shift = (i * CHUNK * rows * g.cout) as u32;
                ac.iter_mut()
                    .filter(|a| **a != u32::MAX)
                    .for_each(|a| *a += shift);
            });
        winners
    }

    /// Any other block's forward; returns the derivative factors when they are kept.
    fn forward_generic(
        &self,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) -> Option<Vec<f32>> {
        let g = self.geom;
        let zlen = g.h * g.w * g.cout;
        let nimg = x.len() / g.in_len();
        let mut deriv = if self.keep {
            vec![0f32; nimg * zlen]
        } else {
            Vec::new()
        };
        let mut slots: Vec<&mut [f32]> = if self.keep {
            deriv.chunks_mut(CHUNK * zlen).collect()
        } else {
            (0..nimg.div_ceil(CHUNK))
                .map(|_| <&mut [f32]>::default())
                .collect()
        };
        x.par_chunks(CHUNK * g.in_len())
            .zip(out.par_chunks_mut(CHUNK * g.out_len()))
            .zip(slots.par_iter_mut())
            .for_each(|((xc, oc), dc)| {
                let z = self.preactivations(xc, wt, bias);
                if dc.is_empty() {
                    let mut scratch = vec![0f32; z.len()];
                    g.act_pool(&self.kind, &z, oc, &mut scratch);
                } else {
                    g.act_pool(&self.kind, &z, oc, dc);
                }
            });
        self.keep.then_some(deriv)
    }
}

impl CustomOp3 for ConvBlock {
    fn name(&self) -> &'static str {
        "conv-act-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom;
        let (x, wt, bias) = (
            cpu_slice(s1, l1, "input")?,
            cpu_slice(s2, l2, "weight")?,
            cpu_slice(s3, l3, "bias")?,
        );
        if x.len() % g.in_len() != 0 || wt.len() != g.patch() * g.cout || bias.len() != g.cout {
            candle_core::bail!(
                "conv block {g:?}: got input {:?}, weight {:?}, bias {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        let nimg = x.len() / g.in_len();
        let mut out = vec![0f32; nimg * g.out_len()];
        let saved = if self.kind.is_relu_max() {
            Some(Saved::Winners(self.forward_relu_max(x, wt, bias, &mut out)))
        } else {
            self.forward_generic(x, wt, bias, &mut out)
                .map(Saved::Deriv)
        };
        if self.keep {
            *self.saved.lock().expect("poisoned") = saved;
        }
        let shape = Shape::from((nimg, g.ph(), g.pw(), g.cout));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom;
        let saved = self.saved.lock().expect("poisoned").take();
        let Some(saved) = saved else {
            candle_core::bail!("conv block: backward called twice or without forward")
        };
        if grad_res.dtype() != DType::F32 {
            candle_core::bail!("conv block: f32 only")
        }
        let need_dx = x.track_op();
        let (rows, patch, cout) = (g.h * g.w, g.patch(), g.cout);
        let nimg = x.elem_count() / g.in_len();
        let zlen = rows * cout;
        let mut dx = if need_dx {
            vec![0f32; nimg * g.in_len()]
        } else {
            Vec::new()
        };
        let dx_chunk = if need_dx { CHUNK * g.in_len() } else { 0 };
        let (dw, db) = with_slice(x, |xs| {
            with_slice(w, |wt| {
                with_slice(grad_res, |gr| {
                    let chunks: Vec<(usize, &mut [f32])> = if need_dx {
                        dx.chunks_mut(dx_chunk).enumerate().collect()
                    } else {
                        (0..nimg.div_ceil(CHUNK))
                            .map(|i| (i, <&mut [f32]>::default()))
                            .collect()
                    };
                    // Per-chunk partial sums, added in chunk order: the result does not depend
                    // on how rayon schedules the chunks (runs are reproducible from their seed).
                    let partials: Vec<(Vec<f32>, Vec<f32>)> = chunks
                        .into_par_iter()
                        .map(|(i, dxc)| {
                            let (mut dw, mut db) = (vec![0f32; patch * cout], vec![0f32; cout]);
                            let first = i * CHUNK;
                            let nb = CHUNK.min(nimg - first);
                            let olen = g.out_len();
                            let span = first * olen..(first + nb) * olen;
                            let dz = match &saved {
                                Saved::Winners(winners) => {
                                    scatter_winners(g, first, nb, &winners[span.clone()], &gr[span])
                                }
                                Saved::Deriv(deriv) => scatter_deriv(
                                    g,
                                    &deriv[first * zlen..(first + nb) * zlen],
                                    &gr[span],
                                ),
                            };
                            for row in dz.chunks_exact(cout) {
                                db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                            }
                            let xc = &xs[first * g.in_len()..(first + nb) * g.in_len()];
                            let mut col = vec![0f32; nb * rows * patch];
                            g.im2col(xc, &mut col);
                            // dW = colᵀ · dz
                            gemm(
                                (patch, cout, nb * rows),
                                &mut dw,
                                (cout, 1),
                                false,
                                &col,
                                (1, patch),
                                &dz,
                                (cout, 1),
                            );
                            if need_dx {
                                // dcol = dz · Wᵀ, reusing the im2col buffer.
                                gemm(
                                    (nb * rows, patch, cout),
                                    &mut col,
                                    (patch, 1),
                                    false,
                                    &dz,
                                    (cout, 1),
                                    wt,
                                    (1, cout),
                                );
                                g.col2im(&col, dxc);
                            }
                            (dw, db)
                        })
                        .collect();
                    let (mut dw, mut db) = (vec![0f32; patch * cout], vec![0f32; cout]);
                    for (pw, pb) in &partials {
                        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
                        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
                    }
                    Ok((dw, db))
                })
            })
        })?;
        let dev = x.device();
        let dx = if need_dx {
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

/// The pre-activation gradient of images `first..first + nb` under ReLU + max-pool: each
/// pooled gradient goes to its window's winner, none where the ReLU is inactive.
fn scatter_winners(
    g: ConvGeom,
    first: usize,
    nb: usize,
    winners: &[u32],
    grad: &[f32],
) -> Vec<f32> {
    let zlen = g.h * g.w * g.cout;
    let base = first * zlen;
    let mut dz = vec![0f32; nb * zlen];
    for (&a, &gv) in winners.iter().zip(grad) {
        if a != u32::MAX {
            dz[a as usize - base] = gv;
        }
    }
    dz
}

/// The pre-activation gradient of `nb` images from the kept factors: `dz = deriv · grad` of
/// the pooled output whose window holds the position (0 outside every window).
fn scatter_deriv(g: ConvGeom, deriv: &[f32], grad: &[f32]) -> Vec<f32> {
    let (w, c, ph, pw) = (g.w, g.cout, g.ph(), g.pw());
    let mut dz = vec![0f32; deriv.len()];
    for ((dzi, di), gi) in dz
        .chunks_exact_mut(g.h * w * c)
        .zip(deriv.chunks_exact(g.h * w * c))
        .zip(grad.chunks_exact(g.out_len()))
    {
        for y in 0..2 * ph {
            for x in 0..2 * pw {
                let p = (y * w + x) * c;
                let o = ((y / 2) * pw + x / 2) * c;
                for ch in 0..c {
                    dzi[p + ch] = di[p + ch] * gi[o + ch];
                }
            }
        }
    }
    dz
}

/// The same block from candle's generic ops (any device): NHWC in, NHWC out.
///
/// The pooling picks one winner per window of a `[b, h/2, 2, w/2, 2, c]` view rather than
/// using candle's `max_pool2d`, whose backward pass in candle 0.11 multiplies the gradient by the
/// fraction of window entries equal to the maximum instead of dividing by their count (a quarter
/// of the true gradient for a unique maximum).
pub fn candle_block(
    g: ConvGeom,
    kind: &BlockKind,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    let ((top, bottom), (left, right)) = g.padding();
    let x = x.permute((0, 3, 1, 2))?; // NCHW
    let x = x
        .pad_with_zeros(2, top, bottom)?
        .pad_with_zeros(3, left, right)?;
    // HWIO [k*k*cin, cout] -> OIHW
    let kernel = w
        .reshape((g.k, g.k, g.cin, g.cout))?
        .permute((3, 2, 0, 1))?
        .contiguous()?;
    let z = x.contiguous()?.conv2d(&kernel, 0, 1, 1, 1)?;
    let z = z.broadcast_add(&b.reshape((1, g.cout, 1, 1))?)?;
    act_pool(g, kind, &z.permute((0, 2, 3, 1))?)
}

/// The same block with the convolution as one matrix product, in NHWC throughout, from
/// candle's tensor ops (any device): the patch matrix is the `k·k` shifted views of the padded
/// input side by side along the channels (the order of the HWIO weight rows), so multiplying it
/// by the `[k·k·cin, cout]` weights is the convolution. Its backward pass is two matrix
/// products and the views' adjoints, where candle's `conv2d` backward runs a transposed
/// convolution and a convolution of transposed tensors; the first layer's input takes no
/// gradient at all.
pub fn gemm_block(
    g: ConvGeom,
    kind: &BlockKind,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    let ((top, bottom), (left, right)) = g.padding();
    let n = x.dim(0)?;
    let padded = x
        .pad_with_zeros(1, top, bottom)?
        .pad_with_zeros(2, left, right)?;
    let mut views = Vec::with_capacity(g.k * g.k);
    for ky in 0..g.k {
        for kx in 0..g.k {
            views.push(padded.narrow(1, ky, g.h)?.narrow(2, kx, g.w)?);
        }
    }
    let patches = Tensor::cat(&views, 3)?.reshape((n * g.h * g.w, g.patch()))?;
    let z = patches
        .matmul(w)?
        .broadcast_add(b)?
        .reshape((n, g.h, g.w, g.cout))?;
    act_pool(g, kind, &z)
}

/// The activation and the 2x2 pooling of a block, on its NHWC pre-activations `z` (any
/// layout): the odd last row and column, if any, are dropped, as Keras' 'valid' pooling does.
fn act_pool(g: ConvGeom, kind: &BlockKind, z: &Tensor) -> Result<Tensor> {
    let z = match &kind.act {
        // z · [z > 0]: as TensorFlow's relu (and the fused op), no gradient at z = 0, where
        // candle's `relu` passes it. Zero pre-activations are common: blank image regions.
        ConvAct::Relu => (z * z.gt(0.0)?.to_dtype(z.dtype())?)?,
        ConvAct::Poly(c) => {
            // Horner: ((c_n z + c_{n-1}) z + ...) z + c_0.
            let mut acc = z.affine(0.0, f64::from(*c.last().unwrap_or(&0.0)))?;
            for &ck in c.iter().rev().skip(1) {
                acc = (acc * z)?.affine(1.0, f64::from(ck))?;
            }
            acc
        }
    };
    let (ph, pw) = (g.ph(), g.pw());
    let z = z.narrow(1, 0, 2 * ph)?.narrow(2, 0, 2 * pw)?;
    let n = z.dim(0)?;
    let windows = z.contiguous()?.reshape((n, ph, 2, pw, 2, g.cout))?;
    match kind.pool {
        // One winner per window, the first largest corner in row-major order, as TensorFlow's
        // max-pool and the fused op: candle's `max` passes the gradient to every tied corner.
        Pooling::Max => {
            let corners = windows
                .permute((0, 1, 3, 5, 2, 4))?
                .contiguous()?
                .reshape((n, ph, pw, g.cout, 4))?;
            corners.gather(&corners.argmax_keepdim(4)?, 4)?.squeeze(4)
        }
        Pooling::Avg => windows.mean(4)?.mean(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    /// Tolerance between the fused op and candle's composite (different summation orders).
    const FUSED_VS_CANDLE: f32 = 1e-4;

    #[test]
    fn keras_same_padding() {
        // 5x5 on 28: two on each side.
        assert_eq!(same_padding(28, 5, 1), (2, 2));
        // 2x2 on 14: Keras pads bottom/right by one, nothing before.
        assert_eq!(same_padding(14, 2, 1), (0, 1));
        assert_eq!(same_padding(7, 3, 1), (1, 1));
        assert_eq!(same_padding(7, 4, 1), (1, 2));
        // Stride 2 on an odd input (TensorFlow's rule: out = ceil(in / stride)).
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(8, 3, 2), (0, 1));
        assert_eq!(same_padding(5, 1, 1), (0, 0));
    }

    fn max_abs(t: &Tensor) -> f32 {
        let a = t.abs().unwrap().flatten_all().unwrap();
        a.max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }

    fn random(shape: &[usize], scale: f32, rng: &mut impl Rng) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused op against candle's conv2d/activation/pooling: values and all three gradients,
    /// for both blocks of the model, with every activation and pooling the model offers (odd
    /// batch size to exercise a partial chunk).
    #[test]
    fn fused_block_matches_candle_ops() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for g in [
            ConvGeom {
                h: 28,
                w: 28,
                cin: 1,
                k: 5,
                cout: 8,
            },
            ConvGeom {
                h: 14,
                w: 14,
                cin: 6,
                k: 2,
                cout: 5,
            },
            ConvGeom {
                h: 7,
                w: 9,
                cin: 3,
                k: 3,
                cout: 4,
            },
        ] {
            let x =
                Var::from_tensor(&random(&[CHUNK + 3, g.h, g.w, g.cin], 1.0, &mut rng)).unwrap();
            let w = Var::from_tensor(&random(&[g.patch(), g.cout], 0.5, &mut rng)).unwrap();
            let b = Var::from_tensor(&random(&[g.cout], 0.1, &mut rng)).unwrap();
            let upstream = random(&[CHUNK + 3, g.ph(), g.pw(), g.cout], 1.0, &mut rng);

            for kind in kinds() {
                assert_blocks_agree(g, &kind, &x, &w, &b, &upstream);
            }
        }
    }

    /// Blank image regions and zero biases make whole pooling windows tie (at 0, or at the
    /// bias): the candle and gemm blocks must then send the gradient where the fused op does,
    /// to one corner and not through a relu at 0.
    #[test]
    fn tied_windows_take_the_fused_ops_gradient() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let g = ConvGeom {
            h: 12,
            w: 12,
            cin: 2,
            k: 5,
            cout: 4,
        };
        // The left half of every image is blank.
        let x = random(&[3, g.h, g.w, g.cin], 1.0, &mut rng);
        let mask: Vec<f32> = (0..3 * g.h * g.w * g.cin)
            .map(|i| {
                if (i / g.cin) % g.w < g.w / 2 {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let blank = Tensor::from_vec(mask, x.shape(), &Device::Cpu).unwrap();
        let x = (x * blank).unwrap();
        let x = Var::from_tensor(&x).unwrap();
        let w = Var::from_tensor(&random(&[g.patch(), g.cout], 0.5, &mut rng)).unwrap();
        // Zero, positive and negative biases: ties at 0, above 0 and below.
        let b = Var::from_tensor(&Tensor::new(&[0.0f32, 0.05, -0.05, 0.0], &Device::Cpu).unwrap())
            .unwrap();
        let upstream = random(&[3, g.ph(), g.pw(), g.cout], 1.0, &mut rng);
        for kind in kinds() {
            assert_blocks_agree(g, &kind, &x, &w, &b, &upstream);
        }
    }

    /// The fused block, the gemm block and candle's block give the same values and the same
    /// gradients for `x`, `w` and `b` under the loss `Σ upstream · block`.
    fn assert_blocks_agree(
        g: ConvGeom,
        kind: &BlockKind,
        x: &Var,
        w: &Var,
        b: &Var,
        upstream: &Tensor,
    ) {
        let reference = candle_block(g, kind, x, w, b).unwrap();
        let gr = (&reference * upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for gemm in [false, true] {
            let fused = if gemm {
                gemm_block(g, kind, x, w, b).unwrap()
            } else {
                ConvBlock::forward(g, kind, x, w, b, true).unwrap()
            };
            assert_eq!(fused.dims(), reference.dims());
            assert!(
                max_abs_diff(&fused, &reference) < FUSED_VS_CANDLE,
                "{g:?} {kind:?} gemm {gemm}"
            );
            let gf = (fused * upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("x", x), ("w", w), ("b", b)] {
                let (a, c) = (gf.get(v).unwrap(), gr.get(v).unwrap());
                let scale = 1.0 + max_abs(c);
                assert!(
                    max_abs_diff(a, c) < FUSED_VS_CANDLE * scale,
                    "{g:?} {kind:?} gemm {gemm} d{name}"
                );
            }
        }
    }

    /// The blocks the model can use: the study's, and the polynomial ones of `--conv-activation`
    /// and `--pool avg`.
    fn kinds() -> [BlockKind; 4] {
        let poly = ConvAct::Poly(vec![0.1, 0.5, 0.3, -0.05]);
        [
            BlockKind::default(),
            BlockKind {
                act: ConvAct::Relu,
                pool: Pooling::Avg,
            },
            BlockKind {
                act: poly.clone(),
                pool: Pooling::Max,
            },
            BlockKind {
                act: poly,
                pool: Pooling::Avg,
            },
        ]
    }

    /// Horner's value and derivative against the expanded polynomial.
    #[test]
    fn conv_polynomial_value_and_derivative() {
        let act = ConvAct::Poly(vec![0.1, 0.5, 0.3, -0.05]);
        for z in [-2.0f32, -0.5, 0.0, 0.7, 3.0] {
            let (v, d) = act.eval(z);
            approx::assert_abs_diff_eq!(
                v,
                0.1 + 0.5 * z + 0.3 * z * z - 0.05 * z * z * z,
                epsilon = 1e-5
            );
            approx::assert_abs_diff_eq!(d, 0.5 + 0.6 * z - 0.15 * z * z, epsilon = 1e-5);
        }
        assert_eq!(ConvAct::Relu.eval(-1.0).1.to_bits(), 0.0f32.to_bits());
    }

    /// The input gradient is skipped for data that autograd does not track.
    #[test]
    fn no_input_gradient_for_data() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let g = ConvGeom {
            h: 8,
            w: 8,
            cin: 1,
            k: 5,
            cout: 3,
        };
        let x = random(&[2, 8, 8, 1], 1.0, &mut rng);
        let w = Var::from_tensor(&random(&[g.patch(), g.cout], 0.5, &mut rng)).unwrap();
        let b = Var::from_tensor(&random(&[g.cout], 0.1, &mut rng)).unwrap();
        let grads = ConvBlock::forward(g, &BlockKind::default(), &x, &w, &b, true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&w).is_some());
    }

    /// The input and weight gradients against central finite differences of the fused forward.
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let g = ConvGeom {
            h: 6,
            w: 6,
            cin: 2,
            k: 2,
            cout: 3,
        };
        let x0: Vec<f32> = (0..72).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w0: Vec<f32> = (0..g.patch() * 3)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect();
        let up = random(&[1, 3, 3, 3], 1.0, &mut rng);
        let b = Tensor::new(&[0.05f32, -0.02, 0.0], &Device::Cpu).unwrap();
        let loss = |x: &Tensor, w: &Tensor| {
            (ConvBlock::forward(g, &BlockKind::default(), x, w, &b, true).unwrap() * &up)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let x =
            Var::from_tensor(&Tensor::from_vec(x0.clone(), (1, 6, 6, 2), &Device::Cpu).unwrap())
                .unwrap();
        let w =
            Var::from_tensor(&Tensor::from_vec(w0.clone(), (g.patch(), 3), &Device::Cpu).unwrap())
                .unwrap();
        let grads = loss(&x, &w).backward().unwrap();
        let dx = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let dw = grads
            .get(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let h = 2e-3f32;
        let eval = |xv: &[f32], wv: &[f32]| {
            let x = Tensor::from_vec(xv.to_vec(), (1, 6, 6, 2), &Device::Cpu).unwrap();
            let w = Tensor::from_vec(wv.to_vec(), (g.patch(), 3), &Device::Cpu).unwrap();
            loss(&x, &w).to_scalar::<f32>().unwrap()
        };
        let f0 = eval(&x0, &w0);
        // The block is piecewise linear: where both one-sided differences agree no kink (ReLU
        // or pooling switch) lies within the step, and the central difference is exact up to
        // f32 rounding. Points next to a kink are skipped, and must be few.
        const FD: f32 = 3e-3;
        let mut checked = 0;
        let mut check = |plus: f32, minus: f32, analytic: f32, what: String| {
            let (right, left) = ((plus - f0) / h, (f0 - minus) / h);
            if (right - left).abs() < FD {
                checked += 1;
                let central = (plus - minus) / (2.0 * h);
                assert!(
                    (central - analytic).abs() < FD,
                    "{what}: {central} vs {analytic}"
                );
            }
        };
        for i in 0..x0.len() {
            let (mut p, mut m) = (x0.clone(), x0.clone());
            p[i] += h;
            m[i] -= h;
            check(eval(&p, &w0), eval(&m, &w0), dx[i], format!("dx[{i}]"));
        }
        for i in 0..w0.len() {
            let (mut p, mut m) = (w0.clone(), w0.clone());
            p[i] += h;
            m[i] -= h;
            check(eval(&x0, &p), eval(&x0, &m), dw[i], format!("dw[{i}]"));
        }
        assert!(
            checked > (x0.len() + w0.len()) * 9 / 10,
            "only {checked} points away from kinks"
        );
    }
}

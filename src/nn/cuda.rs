//! The CUDA side of polyact's custom ops (feature `cuda`): loads the PTX of
//! `kernels/polyact.cu` (compiled by `build.rs`) and launches its kernels on candle's CUDA
//! storage, with the semantics of the CPU kernels.
//!
//! Storage `f32`, `f16` and `bf16` is computed in `f32`, `f64` in `f64`, as on the CPU. Strided
//! inputs pass their dims and strides to the kernel (as candle's own unary kernels do); empty
//! tensors launch nothing.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg,
};
use candle_core::cuda::{CudaStorageSlice as S, SlicePtrOrNull, WrapErr, kernel_name};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, WithDType};

use super::kernels::Coeffs;

/// The PTX of `kernels/polyact.cu`, for the compute capability it was built for.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/polyact.ptx"));
/// The name candle caches the loaded module under.
const MODULE: &str = "polyact";
/// Threads per block: `POLYACT_BLOCK` in the kernels, which size their shared memory by it.
const BLOCK: u32 = 256;
/// Coefficient gradients per launch of the power-sum kernel: `POLYACT_KCHUNK`.
const KCHUNK: usize = 32;
/// Elements each thread adds in the compute type before the block adds in `f64` (as the CPU
/// kernel's 32 terms per lane).
const SUM_ITEMS: usize = 32;
/// Upper bound on blocks per launch (the kernels loop grid-stride over the rest).
const MAX_GRID: usize = 1 << 20;

/// Polynomial coefficients on the device, in the compute type of the data they apply to.
pub(crate) enum DeviceCoeffs {
    /// For `f32`, `f16` and `bf16` data.
    Single(CudaSlice<f32>),
    /// For `f64` data.
    Double(CudaSlice<f64>),
}

impl DeviceCoeffs {
    /// Uploads host coefficients in the compute type of `dtype`. The zero polynomial (no
    /// coefficients, e.g. the derivative of a constant) goes up as `[0]`, the same function,
    /// so that no zero-length buffer is allocated.
    pub(crate) fn upload(dev: &CudaDevice, coeffs: &Coeffs, dtype: DType) -> Result<Self> {
        fn nonempty<T: Copy + Default>(c: &[T]) -> Vec<T> {
            if c.is_empty() {
                vec![T::default()]
            } else {
                c.to_vec()
            }
        }
        Ok(match dtype {
            DType::F64 => Self::Double(dev.clone_htod(&nonempty(coeffs.double()))?),
            _ => Self::Single(dev.clone_htod(&nonempty(coeffs.single()))?),
        })
    }

    /// Converts coefficients already on the device (a tensor's storage, any float dtype and
    /// layout) to the compute type of `dtype`, on the device (no copy to the host).
    pub(crate) fn convert(c: &CudaStorage, layout: &Layout, dtype: DType) -> Result<Self> {
        let compute = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let converted = c.to_dtype(layout, compute)?;
        let got = converted.dtype();
        match converted.slice {
            S::F32(s) => Ok(Self::Single(s)),
            S::F64(s) => Ok(Self::Double(s)),
            _ => candle_core::bail!(
                "polyact: converting coefficients to {compute:?} on the GPU gave {got:?}"
            ),
        }
    }
}

/// The launch grid for `n` elements, at least one block.
fn grid(n: usize, per_thread: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize * per_thread).clamp(1, MAX_GRID);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The clamp as kernel arguments: flag, lower end, upper end.
fn clamp_args(clamp: Option<(f64, f64)>) -> (i32, f64, f64) {
    clamp.map_or((0, 0.0, 0.0), |(lo, hi)| (1, lo, hi))
}

/// An input of a kernel: its data from the layout's start offset, and its dims and strides
/// when it is not contiguous.
struct Operand<'a, T> {
    data: CudaView<'a, T>,
    info: SlicePtrOrNull<usize>,
}

impl<'a, T> Operand<'a, T> {
    fn new(dev: &CudaDevice, slice: &'a CudaSlice<T>, layout: &Layout) -> Result<Self> {
        Ok(Self {
            data: slice.slice(layout.start_offset()..),
            info: SlicePtrOrNull::params_from_layout(dev, layout)?,
        })
    }

    /// Pushes `info, data` (the order of every kernel's operands).
    fn push<'b>(&'b self, builder: &mut LaunchArgs<'b>) {
        self.info.builder_arg(builder);
        builder.arg(&self.data);
    }
}

/// `out = p(clamp(x))` for one storage type `T` with compute type `C`.
fn fwd<T: WithDType + DeviceRepr, C: DeviceRepr>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    lx: &Layout,
    coeffs: &CudaSlice<C>,
    clamp: Option<(f64, f64)>,
) -> Result<CudaSlice<T>> {
    let n = lx.shape().elem_count();
    // SAFETY: the kernel writes every one of the `n` elements.
    let mut out = unsafe { dev.alloc::<T>(n)? };
    if n == 0 {
        return Ok(out);
    }
    let func = dev.get_or_load_custom_func(&kernel_name::<T>("polyact_fwd"), MODULE, PTX)?;
    let x = Operand::new(dev, x, lx)?;
    let (num_dims, ncoeffs) = (lx.dims().len(), coeffs.len());
    let (flag, lo, hi) = clamp_args(clamp);
    let mut b = func.builder();
    b.arg(&n).arg(&num_dims);
    x.push(&mut b);
    b.arg(coeffs)
        .arg(&ncoeffs)
        .arg(&flag)
        .arg(&lo)
        .arg(&hi)
        .arg(&mut out);
    // SAFETY: the arguments match polyact_fwd_<T>'s parameters in kernels/polyact.cu.
    unsafe { b.launch(grid(n, 1)) }.w()?;
    Ok(out)
}

/// `out = g · p'(clamp(x))`, zero outside the clamp; `coeffs` holds `p'`, or `p` when `scaled`.
#[allow(clippy::too_many_arguments)]
fn bwd<T: WithDType + DeviceRepr, C: DeviceRepr>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    lx: &Layout,
    g: &CudaSlice<T>,
    lg: &Layout,
    coeffs: &CudaSlice<C>,
    scaled: bool,
    clamp: Option<(f64, f64)>,
) -> Result<CudaSlice<T>> {
    let n = lx.shape().elem_count();
    // SAFETY: the kernel writes every one of the `n` elements.
    let mut out = unsafe { dev.alloc::<T>(n)? };
    if n == 0 {
        return Ok(out);
    }
    let root = if scaled {
        "polyact_bwd_poly"
    } else {
        "polyact_bwd"
    };
    let func = dev.get_or_load_custom_func(&kernel_name::<T>(root), MODULE, PTX)?;
    let (x, g) = (Operand::new(dev, x, lx)?, Operand::new(dev, g, lg)?);
    let (num_dims, ncoeffs) = (lx.dims().len(), coeffs.len());
    let (flag, lo, hi) = clamp_args(clamp);
    let mut b = func.builder();
    b.arg(&n).arg(&num_dims);
    x.push(&mut b);
    g.push(&mut b);
    b.arg(coeffs)
        .arg(&ncoeffs)
        .arg(&flag)
        .arg(&lo)
        .arg(&hi)
        .arg(&mut out);
    // SAFETY: the arguments match polyact_bwd[_poly]_<T>'s parameters in kernels/polyact.cu.
    unsafe { b.launch(grid(n, 1)) }.w()?;
    Ok(out)
}

/// `sums[k] = Σ g · clamp(x)^k` for `k < len`, in two passes: per-block partial sums (each
/// thread adds up to [`SUM_ITEMS`] terms in the compute type, the block adds its threads in
/// `f64`), then one block per `k` adding the partial sums in a fixed order. No atomics, so the
/// result is the same on every run.
fn power_sums<T: WithDType + DeviceRepr>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    lx: &Layout,
    g: &CudaSlice<T>,
    lg: &Layout,
    len: usize,
    clamp: Option<(f64, f64)>,
) -> Result<CudaSlice<f64>> {
    let n = lx.shape().elem_count();
    let mut sums = dev.alloc_zeros::<f64>(len)?;
    if n == 0 || len == 0 {
        return Ok(sums);
    }
    let first =
        dev.get_or_load_custom_func(&kernel_name::<T>("polyact_power_sums"), MODULE, PTX)?;
    let finish = dev.get_or_load_custom_func("polyact_power_sums_finish", MODULE, PTX)?;
    let cfg = grid(n, SUM_ITEMS);
    let blocks = cfg.grid_dim.0 as usize;
    // SAFETY: every launch of the first pass writes the `blocks · kcount` values the second reads.
    let mut partial = unsafe { dev.alloc::<f64>(blocks * len.min(KCHUNK))? };
    let (x, g) = (Operand::new(dev, x, lx)?, Operand::new(dev, g, lg)?);
    let num_dims = lx.dims().len();
    let (flag, lo, hi) = clamp_args(clamp);
    for k0 in (0..len).step_by(KCHUNK) {
        let kcount = (len - k0).min(KCHUNK);
        {
            let mut b = first.builder();
            b.arg(&n).arg(&num_dims);
            x.push(&mut b);
            g.push(&mut b);
            b.arg(&k0).arg(&kcount).arg(&flag).arg(&lo).arg(&hi);
            b.arg(&mut partial);
            // SAFETY: the arguments match polyact_power_sums_<T>'s parameters.
            unsafe { b.launch(cfg) }.w()?;
        }
        let per_k = LaunchConfig {
            grid_dim: (kcount as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = finish.builder();
        b.arg(&blocks)
            .arg(&kcount)
            .arg(&partial)
            .arg(&k0)
            .arg(&mut sums);
        // SAFETY: the arguments match polyact_power_sums_finish's parameters.
        unsafe { b.launch(per_k) }.w()?;
    }
    Ok(sums)
}

fn unsupported(dtype: DType, op: &'static str) -> candle_core::Error {
    candle_core::Error::UnsupportedDTypeForOp(dtype, op).bt()
}

/// `p(clamp(x))` of a CUDA tensor of any float dtype and layout; the result is contiguous.
pub(crate) fn poly(
    x: &CudaStorage,
    lx: &Layout,
    coeffs: &DeviceCoeffs,
    clamp: Option<(f64, f64)>,
    op: &'static str,
) -> Result<CudaStorage> {
    let dev = &x.device;
    let slice = match (&x.slice, coeffs) {
        (S::F32(x), DeviceCoeffs::Single(c)) => S::F32(fwd(dev, x, lx, c, clamp)?),
        (S::F16(x), DeviceCoeffs::Single(c)) => S::F16(fwd(dev, x, lx, c, clamp)?),
        (S::BF16(x), DeviceCoeffs::Single(c)) => S::BF16(fwd(dev, x, lx, c, clamp)?),
        (S::F64(x), DeviceCoeffs::Double(c)) => S::F64(fwd(dev, x, lx, c, clamp)?),
        _ => return Err(unsupported(x.dtype(), op)),
    };
    Ok(CudaStorage {
        slice,
        device: dev.clone(),
    })
}

/// `g · p'(clamp(x))`, zero where `x` is outside the clamp interval, for CUDA tensors of the
/// same shape and float dtype, any layouts. `coeffs` holds `p'`, or `p` itself when `scaled`
/// (the kernel then takes the derivative as it goes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn poly_grad(
    x: &CudaStorage,
    lx: &Layout,
    g: &CudaStorage,
    lg: &Layout,
    coeffs: &DeviceCoeffs,
    scaled: bool,
    clamp: Option<(f64, f64)>,
    op: &'static str,
) -> Result<CudaStorage> {
    super::check_pair(x.dtype(), lx, g.dtype(), lg, op)?;
    let dev = &x.device;
    let slice = match (&x.slice, &g.slice, coeffs) {
        (S::F32(x), S::F32(g), DeviceCoeffs::Single(c)) => {
            S::F32(bwd(dev, x, lx, g, lg, c, scaled, clamp)?)
        }
        (S::F16(x), S::F16(g), DeviceCoeffs::Single(c)) => {
            S::F16(bwd(dev, x, lx, g, lg, c, scaled, clamp)?)
        }
        (S::BF16(x), S::BF16(g), DeviceCoeffs::Single(c)) => {
            S::BF16(bwd(dev, x, lx, g, lg, c, scaled, clamp)?)
        }
        (S::F64(x), S::F64(g), DeviceCoeffs::Double(c)) => {
            S::F64(bwd(dev, x, lx, g, lg, c, scaled, clamp)?)
        }
        _ => return Err(unsupported(x.dtype(), op)),
    };
    Ok(CudaStorage {
        slice,
        device: dev.clone(),
    })
}

/// `[Σ g · clamp(x)^k]_{k < len}` as `f64` storage of `len` elements, for CUDA tensors of the
/// same shape and float dtype, any layouts.
pub(crate) fn power_sums_f64(
    x: &CudaStorage,
    lx: &Layout,
    g: &CudaStorage,
    lg: &Layout,
    len: usize,
    clamp: Option<(f64, f64)>,
    op: &'static str,
) -> Result<CudaStorage> {
    super::check_pair(x.dtype(), lx, g.dtype(), lg, op)?;
    let dev = &x.device;
    let sums = match (&x.slice, &g.slice) {
        (S::F32(x), S::F32(g)) => power_sums(dev, x, lx, g, lg, len, clamp)?,
        (S::F16(x), S::F16(g)) => power_sums(dev, x, lx, g, lg, len, clamp)?,
        (S::BF16(x), S::BF16(g)) => power_sums(dev, x, lx, g, lg, len, clamp)?,
        (S::F64(x), S::F64(g)) => power_sums(dev, x, lx, g, lg, len, clamp)?,
        _ => return Err(unsupported(x.dtype(), op)),
    };
    Ok(CudaStorage {
        slice: S::F64(sums),
        device: dev.clone(),
    })
}

//! The example's own CUDA code (feature `cuda`): the fused Adam update of train.rs on the GPU,
//! from `kernels.cu` (compiled to PTX by the package's build.rs).

use candle_core::cuda::WrapErr;
use candle_core::cuda::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::{CudaDevice, CudaStorage, Layout, Result};

use crate::train::{AdamCoef, adam_ranges};

/// The PTX of `examples/mnist/kernels.cu`.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/mnist.ptx"));
/// The name candle caches the loaded module under.
const MODULE: &str = "polyact_mnist";
/// Threads per block (`MNIST_BLOCK` in the kernels).
const BLOCK: u32 = 256;
/// Upper bound on blocks per launch (the kernel loops grid-stride over the rest).
const MAX_GRID: usize = 4096;

/// Adam's first and second moments of one variable, on the GPU.
pub struct Moments {
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    /// Elements of the variable (the buffers hold one at least).
    len: usize,
}

impl Moments {
    /// Zero moments for a variable of `n` elements (buffers of one element at least: an empty
    /// variable launches nothing, and a zero-sized allocation is a special case not worth having).
    pub fn zeros(dev: &CudaDevice, n: usize) -> Result<Self> {
        Ok(Self {
            m: dev.alloc_zeros::<f32>(n.max(1))?,
            v: dev.alloc_zeros::<f32>(n.max(1))?,
            len: n,
        })
    }
}

/// `θ ← θ − lr·m̂/(√v̂ + ε)` after updating the moments with the gradient `g`, in one launch.
/// `θ` and `g` must be contiguous `f32` with as many elements as the moments hold.
pub fn adam(
    c: AdamCoef,
    theta: &mut CudaStorage,
    lt: &Layout,
    g: &CudaStorage,
    lg: &Layout,
    moments: &mut Moments,
) -> Result<()> {
    let (t, gr) = adam_ranges(lt, lg, moments.len)?;
    let n = t.len();
    if n == 0 {
        return Ok(());
    }
    let dev = theta.device.clone();
    let func = dev.get_or_load_custom_func("mnist_adam_f32", MODULE, PTX)?;
    let g = g.as_cuda_slice::<f32>()?.slice(gr);
    let mut theta = theta.as_cuda_slice_mut::<f32>()?.slice_mut(t);
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_GRID) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = func.builder();
    b.arg(&n)
        .arg(&mut theta)
        .arg(&g)
        .arg(&mut moments.m)
        .arg(&mut moments.v)
        .arg(&c.b1)
        .arg(&c.b2)
        .arg(&c.scale_m)
        .arg(&c.scale_v)
        .arg(&c.lr)
        .arg(&c.eps);
    // SAFETY: the arguments match mnist_adam_f32's parameters in kernels.cu, and every buffer
    // holds the `n` elements the kernel touches.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

//! The example's own CUDA code (feature `cuda`): the fused Adam update of train.rs on the GPU,
//! from `kernels.cu` (compiled to PTX by the package's build.rs).

use candle_core::cuda::WrapErr;
use candle_core::cuda::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::{CudaDevice, CudaStorage, Layout, Result};

use crate::train::AdamCoef;

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
}

impl Moments {
    /// Zero moments for a variable of `n` elements.
    pub fn zeros(dev: &CudaDevice, n: usize) -> Result<Self> {
        // One element at least: cudarc refuses nothing, but a zero-sized allocation is a
        // special case not worth having (an empty variable launches nothing anyway).
        let n = n.max(1);
        Ok(Self {
            m: dev.alloc_zeros::<f32>(n)?,
            v: dev.alloc_zeros::<f32>(n)?,
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
    let (Some((t0, t1)), Some((g0, g1))) = (lt.contiguous_offsets(), lg.contiguous_offsets())
    else {
        candle_core::bail!("fused Adam: contiguous tensors only")
    };
    let n = t1 - t0;
    if g1 - g0 != n || (n > 0 && moments.m.len() != n) {
        candle_core::bail!("fused Adam: shape mismatch")
    }
    if n == 0 {
        return Ok(());
    }
    let dev = theta.device.clone();
    let func = dev.get_or_load_custom_func("mnist_adam_f32", MODULE, PTX)?;
    let g = g.as_cuda_slice::<f32>()?.slice(g0..g1);
    let mut theta = theta.as_cuda_slice_mut::<f32>()?.slice_mut(t0..t1);
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

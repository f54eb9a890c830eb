//! How many large buffers one training step of an activation allocates: the fused polynomial op
//! against `candle_nn::ops::sigmoid`, forward and backward on 1M `f32` values.
//!
//! Under glibc's malloc every fresh multi-megabyte buffer is returned to the operating system when
//! it is freed and page-faulted in again when the next one is made, which costs more than the
//! arithmetic (see benches/README.md). The count of such buffers therefore bounds how much faster
//! any kernel can make a training step; this test pins polyact's share of it.
#![cfg(feature = "candle")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Module, Result, Tensor, Var};
use polyact::nn::PolyAct;

/// Counts the allocations of at least [`LARGE`] bytes, then defers to the system allocator.
struct Counting;

const LARGE: usize = 1 << 20;
static LARGE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `layout` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count(size: usize) {
    if size >= LARGE {
        LARGE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ELEMENTS: usize = 1 << 20;

/// The large allocations made by one forward and backward pass of `f` on a 1M-element variable.
fn large_allocations_per_step(f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<usize> {
    let values: Vec<f32> = (0..ELEMENTS)
        .map(|i| ((i * 7919) % 8192) as f32 / 1024.0 - 4.0)
        .collect();
    let x = Var::from_vec(values, ELEMENTS, &Device::Cpu)?;
    // One step first: lazily built state (thread pools, dispatch) is not part of a step.
    f(x.as_tensor())?.backward()?;
    let before = LARGE_ALLOCATIONS.load(Ordering::Relaxed);
    let grads = f(x.as_tensor())?.backward()?;
    let after = LARGE_ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        grads.get(x.as_tensor()).is_some(),
        "the input got no gradient"
    );
    Ok(after - before)
}

/// The fused op adds one buffer per pass (its output, then the input gradient) to what candle's
/// autograd itself needs (the seed gradient of ones, a zero accumulator and the sum into it):
/// five in all, against eight for candle's sigmoid, whose backward is four tensor ops.
#[test]
fn fused_op_allocates_one_buffer_per_pass() -> Result<()> {
    let fused = PolyAct::new(&polyact::presets::m_sigmoid());
    let fused = large_allocations_per_step(&|x| fused.forward(x))?;
    let sigmoid = large_allocations_per_step(&candle_nn::ops::sigmoid)?;
    eprintln!(
        "large buffers per forward+backward step: polyact fused {fused}, candle sigmoid {sigmoid}"
    );
    assert_eq!(
        fused, 5,
        "fused op: seed, output, gradient, accumulator, sum"
    );
    assert_eq!(
        sigmoid, 8,
        "candle 0.11's sigmoid (this test documents the comparison's floor)"
    );
    Ok(())
}

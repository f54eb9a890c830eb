//! Activations on candle tensors (CPU): 1M-element `f32` tensors, forward and forward+backward,
//! with the **system allocator** (what a library's users get by default).
//!
//! Subjects: candle's exact `sigmoid` (`candle_nn::ops::sigmoid`), `tanh`, `relu` and `gelu_erf`;
//! a degree-5 polynomial (the study's adjusted sigmoid) as the unfused Horner composite of tensor
//! ops and as polyact's fused op (on all cores, and on one through a one-thread rayon pool); and
//! a tensor copy as the memory floor.
//!
//! Forward+backward is `f(x).backward()` with `x` a variable: candle's autograd seeds the
//! gradient with ones and accumulates every node's gradient, as in training. That allocates 4-8
//! fresh 4 MiB tensors per call; glibc's malloc returns them to the OS at every step and
//! page-faults them in again, which costs about as much as the arithmetic. `tensor_mimalloc`
//! runs the same groups with mimalloc, which keeps them.
//!
//! Run: `cargo bench --bench tensor` (`-- --quick` for a fast pass).

#[path = "tensor/common.rs"]
mod common;

criterion::criterion_group!(benches, common::forward, common::forward_backward);
criterion::criterion_main!(benches);

//! The `tensor` benchmarks with mimalloc as the global allocator, as in the MNIST example: the
//! same subjects and groups, without glibc's page faults on candle's fresh 4 MiB tensors.
//!
//! Run: `cargo bench --bench tensor_mimalloc` (`-- --quick` for a fast pass).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "tensor/common.rs"]
mod common;

criterion::criterion_group!(benches, common::forward, common::forward_backward);
criterion::criterion_main!(benches);

//! The subjects and groups of the tensor benchmarks, shared by `tensor` (the system allocator)
//! and `tensor_mimalloc` (mimalloc), which differ only in their global allocator.

use std::hint::black_box;

use candle_core::{Device, Module, Result, Tensor, Var};
use criterion::{Criterion, Throughput};
use polyact::nn::PolyAct;

const ELEMENTS: usize = 1 << 20;

type Subject = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

fn subjects() -> Vec<(&'static str, Subject)> {
    let poly = polyact::presets::m_sigmoid();
    let fused = PolyAct::new(&poly);
    let unfused = fused.clone();
    let single = fused.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    vec![
        ("copy", Box::new(|x: &Tensor| x.copy())),
        ("candle_sigmoid", Box::new(candle_nn::ops::sigmoid)),
        ("candle_tanh", Box::new(|x: &Tensor| x.tanh())),
        ("candle_relu", Box::new(|x: &Tensor| x.relu())),
        ("candle_gelu_erf", Box::new(|x: &Tensor| x.gelu_erf())),
        (
            "horner_unfused_deg5",
            Box::new(move |x: &Tensor| unfused.forward_unfused(x)),
        ),
        (
            "polyact_fused_deg5",
            Box::new(move |x: &Tensor| fused.forward(x)),
        ),
        (
            "polyact_fused_deg5_1thread",
            Box::new(move |x: &Tensor| pool.install(|| single.forward(x))),
        ),
    ]
}

fn input() -> Tensor {
    // Deterministic values in [-4, 4), where the polynomial is meant to be used.
    let values: Vec<f32> = (0..ELEMENTS)
        .map(|i| ((i * 7919) % 8192) as f32 / 1024.0 - 4.0)
        .collect();
    Tensor::from_vec(values, ELEMENTS, &Device::Cpu).expect("a tensor")
}

pub fn forward(c: &mut Criterion) {
    let x = input();
    let mut group = c.benchmark_group("tensor_forward_f32_1M");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    for (name, f) in subjects() {
        group.bench_function(name, |b| b.iter(|| f(black_box(&x)).expect("forward")));
    }
    group.finish();
}

pub fn forward_backward(c: &mut Criterion) {
    let x = Var::from_tensor(&input()).expect("a variable");
    let mut group = c.benchmark_group("tensor_forward_backward_f32_1M");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    for (name, f) in subjects() {
        group.bench_function(name, |b| {
            b.iter(|| {
                let y = f(black_box(x.as_tensor())).expect("forward");
                y.backward().expect("backward")
            })
        });
    }
    group.finish();
}

//! The subjects and groups of the tensor benchmarks, shared by `tensor` (the system allocator)
//! and `tensor_mimalloc` (mimalloc), which differ only in their global allocator.

use std::hint::black_box;

use candle_core::{Device, Module, Result, Tensor, Var};
use criterion::{Criterion, Throughput};
use polyact::nn::PolyAct;

const ELEMENTS: usize = 1 << 20;

type Forward = Box<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// One benchmarked subject: its forward pass, and the pool it runs in (the global one when
/// `None`). Forward and backward both run in that pool.
struct Subject {
    name: &'static str,
    forward: Forward,
    pool: Option<rayon::ThreadPool>,
}

impl Subject {
    fn new(
        name: &'static str,
        forward: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            forward: Box::new(forward),
            pool: None,
        }
    }

    /// Runs `work` in this subject's pool.
    fn within<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}

fn subjects() -> Vec<Subject> {
    let poly = polyact::presets::m_sigmoid();
    let fused = PolyAct::new(&poly);
    let unfused = fused.clone();
    let single = fused.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    vec![
        Subject::new("copy", |x| x.copy()),
        Subject::new("candle_sigmoid", candle_nn::ops::sigmoid),
        Subject::new("candle_tanh", |x| x.tanh()),
        Subject::new("candle_relu", |x| x.relu()),
        Subject::new("candle_gelu_erf", |x| x.gelu_erf()),
        Subject::new("horner_unfused_deg5", move |x| unfused.forward_unfused(x)),
        Subject::new("polyact_fused_deg5", move |x| fused.forward(x)),
        Subject {
            pool: Some(pool),
            ..Subject::new("polyact_fused_deg5_1thread", move |x| single.forward(x))
        },
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
    for s in subjects() {
        group.bench_function(s.name, |b| {
            b.iter(|| s.within(|| (s.forward)(black_box(&x)).expect("forward")))
        });
    }
    group.finish();
}

pub fn forward_backward(c: &mut Criterion) {
    let x = Var::from_tensor(&input()).expect("a variable");
    let mut group = c.benchmark_group("tensor_forward_backward_f32_1M");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    for s in subjects() {
        group.bench_function(s.name, |b| {
            b.iter(|| {
                s.within(|| {
                    let y = (s.forward)(black_box(x.as_tensor())).expect("forward");
                    y.backward().expect("backward")
                })
            })
        });
    }
    group.finish();
}

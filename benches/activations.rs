//! Scalar and slice evaluation: every built-in exact activation against degree-5 polynomials
//! (Taylor, the study's adjusted ones, minimax fits), with a plain slice copy as the
//! memory-bandwidth floor. Single-threaded.
//!
//! `cargo bench --bench activations` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use polyact::{
    Activation, Elu, Gelu, Identity, LeakyRelu, Mish, Polynomial, Real, Relu, Sigmoid, Silu,
    Softplus, Softsign, Square, Tanh, fit, presets, taylor_poly,
};

const SIZES: [usize; 3] = [1 << 10, 1 << 16, 1 << 20];

fn exact<T: Real>() -> Vec<Box<dyn Activation<T>>> {
    vec![
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(Relu),
        Box::new(Softplus),
        Box::new(Gelu),
        Box::new(Silu),
        Box::new(Mish),
        Box::new(Elu::default()),
        Box::new(LeakyRelu::new(0.01).expect("valid slope")),
        Box::new(Softsign),
        Box::new(Identity),
        Box::new(Square),
    ]
}

/// Degree-5 polynomials, named as in the tables: `taylor5_*`, the study's `m_*`, `minimax5_*`.
fn polynomials() -> Vec<(String, Polynomial)> {
    let mut out = Vec::new();
    let smooth: [&dyn Activation<f64>; 4] = [&Sigmoid, &Tanh, &Softplus, &Gelu];
    for f in smooth {
        let p = taylor_poly(f, 5).expect("analytic at 0");
        out.push((format!("taylor5_{}", f.name()), p));
    }
    out.push(("m_sigmoid".into(), presets::m_sigmoid()));
    out.push(("m_relu".into(), presets::m_relu()));
    out.push(("m_tanh".into(), presets::m_tanh()));
    let fitted: [&dyn Activation<f64>; 3] = [&Sigmoid, &Tanh, &Relu];
    for f in fitted {
        let p = fit::minimax(f, 5, -5.0..=5.0)
            .expect("minimax fit")
            .polynomial;
        out.push((format!("minimax5_{}", f.name()), p));
    }
    out
}

fn inputs<T: Real>(n: usize) -> Vec<T> {
    (0..n)
        .map(|i| T::of(-6.0 + 12.0 * (i as f64) / (n as f64)))
        .collect()
}

fn slice_group<T: Real>(c: &mut Criterion, dtype: &str) {
    let polys = polynomials();
    for n in SIZES {
        let mut group = c.benchmark_group(format!("slice_{dtype}_{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
        let xs = inputs::<T>(n);
        let mut out = vec![T::zero(); n];
        group.bench_function("copy", |b| {
            b.iter(|| out.copy_from_slice(black_box(&xs)));
        });
        for f in exact::<T>() {
            group.bench_function(BenchmarkId::new("exact", f.name()), |b| {
                b.iter(|| f.eval_slice(black_box(&xs), &mut out));
            });
        }
        for (name, p) in &polys {
            group.bench_function(BenchmarkId::new("poly", name), |b| {
                b.iter(|| p.eval_slice(black_box(&xs), &mut out));
            });
        }
        group.finish();
    }
}

fn scalar_group<T: Real>(c: &mut Criterion, dtype: &str) {
    let n = 1 << 10;
    let mut group = c.benchmark_group(format!("scalar_{dtype}"));
    group.throughput(Throughput::Elements(n as u64));
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    let xs = inputs::<T>(n);
    for f in exact::<T>() {
        group.bench_function(BenchmarkId::new("exact", f.name()), |b| {
            b.iter(|| {
                for &x in black_box(&xs) {
                    black_box(f.eval(x));
                }
            });
        });
    }
    // Called through `dyn Activation` like the exact functions, so that both pay one virtual
    // call per element.
    let p: Box<dyn Activation<T>> = Box::new(presets::m_sigmoid());
    group.bench_function(BenchmarkId::new("poly", "m_sigmoid"), |b| {
        b.iter(|| {
            for &x in black_box(&xs) {
                black_box(p.eval(x));
            }
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    scalar_group::<f32>(c, "f32");
    scalar_group::<f64>(c, "f64");
    slice_group::<f32>(c, "f32");
    slice_group::<f64>(c, "f64");
}

criterion_group!(activations, benches);
criterion_main!(activations);

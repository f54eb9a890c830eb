//! Symbolic derivation and interval fits: `taylor_poly` for sigmoid, tanh, softplus and gelu at
//! degrees 5, 15 and 30 (the first call, which runs the symbolic engine, and a cached call), and
//! least squares, Chebyshev and minimax fits of sigmoid at degrees 5 and 9.
//!
//! `cargo bench --bench derivation` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use polyact::{Activation, Gelu, Sigmoid, Softplus, Tanh, fit, taylor};

fn derivation(c: &mut Criterion) {
    let functions: [&dyn Activation<f64>; 4] = [&Sigmoid, &Tanh, &Softplus, &Gelu];
    let mut group = c.benchmark_group("taylor_poly");
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(10);
    for f in functions {
        for degree in [5, 15, 30] {
            let id = format!("{}/{degree}", f.name());
            group.bench_function(BenchmarkId::new("first_call", &id), |b| {
                b.iter_batched(
                    taylor::clear_cache,
                    |()| taylor::taylor_poly(black_box(f), black_box(degree)),
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("taylor_poly_cached");
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(1));
    for f in functions {
        for degree in [5, 15, 30] {
            taylor::taylor_poly(f, degree).expect("analytic at 0");
            let id = format!("{}/{degree}", f.name());
            group.bench_function(BenchmarkId::new("cached", &id), |b| {
                b.iter(|| taylor::taylor_poly(black_box(f), black_box(degree)));
            });
        }
    }
    group.finish();
}

fn fits(c: &mut Criterion) {
    let mut group = c.benchmark_group("fit_sigmoid");
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(1));
    for degree in [5, 9] {
        group.bench_function(BenchmarkId::new("least_squares", degree), |b| {
            b.iter(|| fit::least_squares(Sigmoid, black_box(degree), -5.0..=5.0));
        });
        group.bench_function(BenchmarkId::new("chebyshev", degree), |b| {
            b.iter(|| fit::chebyshev(Sigmoid, black_box(degree), -5.0..=5.0));
        });
        group.bench_function(BenchmarkId::new("minimax", degree), |b| {
            b.iter(|| fit::minimax(Sigmoid, black_box(degree), -5.0..=5.0));
        });
    }
    group.finish();
}

criterion_group!(derivation_benches, derivation, fits);
criterion_main!(derivation_benches);

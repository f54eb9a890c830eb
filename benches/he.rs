//! Encrypted evaluation (feature `he`): BFV primitives and the polynomial activation at the
//! 128-bit ring N = 16384 (one plaintext prime of 40 bits), all slots at once.
//!
//! `cargo bench --no-default-features --features he --bench he`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use polyact::he::fixed::IntPolynomial;
use polyact::he::{Backend, Bfv, ExactBackend};

fn bfv(c: &mut Criterion) {
    let degree = 16384;
    let t = polyact::he::bfv::plaintext_primes(40, degree, 1).expect("prime")[0];
    let b = Bfv::secure(degree, t).expect("parameters");
    let sk = b.secret_key().expect("key");
    let pk = b.public_key(&sk).expect("key");
    let ek = b.eval_key(&sk, 0, &[1], true).expect("keys");
    let values: Vec<u64> = (0..degree as u64).map(|v| v % 1000).collect();
    let pt = b.encode(&values, 0).expect("encode");
    let x = b.encrypt(&pk, &pt).expect("encrypt");
    let mut g = c.benchmark_group("bfv_n16384");
    g.sample_size(10);
    g.throughput(Throughput::Elements(degree as u64));
    g.bench_function("ct_x_pt", |bench| {
        bench.iter(|| b.mul_plain(&x, &pt).expect("mul"))
    });
    g.bench_function("ct_x_ct_relin", |bench| {
        bench.iter(|| b.mul(&ek, &x, &x).expect("mul"))
    });
    g.bench_function("rotate", |bench| {
        bench.iter(|| b.rotate(&ek, &x, 1).expect("rot"))
    });
    let ip = IntPolynomial::new(&polyact::presets::m_sigmoid(), 4).expect("exact");
    let tm = b.plaintext_modulus();
    g.bench_function("m_sigmoid_all_slots", |bench| {
        bench.iter(|| ip.evaluate(&b, &ek, &x, tm).expect("poly"))
    });
    g.finish();
}

criterion_group!(benches, bfv);
criterion_main!(benches);

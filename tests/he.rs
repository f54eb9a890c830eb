//! Encrypted evaluation against its exact integer simulation.
//!
//! Every test here but one uses small, **insecure** parameters (ring degree 2048 and below) and
//! tiny layers so the file runs in seconds; the whole head at 128-bit parameters is exercised by
//! `examples/encrypted_mnist`. The exception checks the noise model operation by operation at
//! the 128-bit ring the example uses.
#![cfg(feature = "he")]

use num_bigint::BigInt;
use polyact::Polynomial;
use polyact::he::fixed::{IntPolynomial, NoiseModel, crt, residue, residue_i64};
use polyact::he::head::{Dense, EncryptedHead, Head, QuantizedHead, Scales, argmax};
use polyact::he::{Backend, Bfv, ExactBackend, HeError};
use polyact::plan::Plan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Insecure toy ring: N = 2048, six 60-bit ciphertext moduli.
const N: usize = 2048;
const MODULI: [usize; 6] = [60, 60, 60, 60, 60, 60];

fn toy(prime_bits: usize, count: usize) -> Vec<Bfv> {
    polyact::he::bfv::plaintext_primes(prime_bits, N, count)
        .unwrap()
        .into_iter()
        .map(|t| Bfv::insecure_with_plaintext(N, &MODULI, t).unwrap())
        .collect()
}

fn keys(
    b: &Bfv,
) -> (
    polyact::he::bfv::BfvSecretKey,
    polyact::he::bfv::BfvPublicKey,
) {
    let sk = b.secret_key().unwrap();
    let pk = b.public_key(&sk).unwrap();
    (sk, pk)
}

#[test]
fn rotations_turn_each_row_left_and_swap_exchanges_rows() {
    let b = Bfv::insecure(1024, &[50, 50, 50], 20).unwrap();
    let (sk, pk) = keys(&b);
    let ek = b.eval_key(&sk, 0, &[1, 5], true).unwrap();
    let v: Vec<u64> = (0..1024).collect();
    let x = b.encrypt(&pk, &b.encode(&v, 0).unwrap()).unwrap();
    let r = b.decrypt(&sk, &b.rotate(&ek, &x, 5).unwrap()).unwrap();
    for (p, &got) in r.iter().enumerate() {
        let (row, col) = (p / 512, p % 512);
        assert_eq!(got, (row * 512 + (col + 5) % 512) as u64, "slot {p}");
    }
    let s = b.decrypt(&sk, &b.swap_rows(&ek, &x).unwrap()).unwrap();
    assert_eq!((s[0], s[512]), (512, 0));
    assert!(matches!(
        b.rotate(&ek, &x, 2),
        Err(HeError::MissingRotationKey { rotation: 2 })
    ));
}

#[test]
fn encrypted_polynomials_equal_the_integer_simulation() {
    let b = &toy(40, 1)[0];
    let t = b.plaintext_modulus();
    let (sk, pk) = keys(b);
    let ek = b.eval_key(&sk, 0, &[], false).unwrap();
    let polys = [
        polyact::presets::m_sigmoid(),
        polyact::presets::m_relu(),
        Polynomial::from_ratios(&[(1, 3), (-2, 7), (5, 11), (0, 1), (1, 13), (-1, 17)]),
    ];
    let z: Vec<i64> = (-40..40).map(|k| k * 7).collect();
    let zr: Vec<u64> = z.iter().map(|&v| residue_i64(v, t)).collect();
    let x = b.encrypt(&pk, &b.encode(&zr, 0).unwrap()).unwrap();
    for p in polys {
        let ip = IntPolynomial::new(&p, 4).unwrap();
        let (out, used) = ip.evaluate(b, &ek, &x, t).unwrap();
        let got = b.decrypt(&sk, &out).unwrap();
        for (k, &zk) in z.iter().enumerate() {
            assert_eq!(got[k], residue(&ip.eval_int(zk), t), "{p} at z = {zk}");
        }
        // The plan is what ran, and it agrees with the core's cost model on these.
        assert_eq!(
            (used.products, used.depth),
            (ip.plan().products, ip.plan().depth)
        );
        let cost = p.cost();
        assert_eq!(
            (used.products, used.depth),
            (cost.multiplications, cost.depth),
            "{p}"
        );
        assert!(b.noise_budget(&sk, &out).unwrap() > 0.0);
    }
}

#[test]
fn the_core_cost_counts_the_plan_that_runs() {
    // `Polynomial::cost()` is computed from the plan the evaluator runs, for dense polynomials
    // of every degree (from degree 13 on the least depth, 4, costs 7 or 8 products: the old
    // closed-form count of 6 paired two different plans) and for sparse ones.
    for degree in 1..=16usize {
        let p = Polynomial::from_f64(&vec![0.5; degree + 1]);
        let plan = Plan::new(&vec![true; degree + 1]);
        let cost = p.cost();
        assert_eq!(
            (plan.products, plan.depth),
            (cost.multiplications, cost.depth),
            "degree {degree}"
        );
    }
    for (degree, products) in [(13usize, 7usize), (14, 7), (15, 8), (16, 8)] {
        let cost = Polynomial::from_f64(&vec![0.5; degree + 1]).cost();
        assert_eq!(
            (cost.multiplications, cost.depth),
            (products, 4),
            "degree {degree}"
        );
    }
    let m_sigmoid = polyact::presets::m_sigmoid();
    let plan = m_sigmoid.evaluation_plan();
    assert_eq!(
        (plan.products, plan.depth),
        (m_sigmoid.cost().multiplications, m_sigmoid.cost().depth)
    );
}

#[test]
fn plans_reach_minimal_depth() {
    // Full degree-5: 3 products at depth 3 (Paterson–Stockmeyer k = 2 or 3).
    let p = Plan::new(&[true; 6]);
    assert_eq!((p.products, p.depth), (3, 3));
    let p = Plan::new(&[false, false, true]);
    assert_eq!((p.products, p.depth), (1, 1));
}

/// A tiny random head `inputs → hidden → 3` with the activation `1/2 + x/4 − x³/48`.
fn tiny_head(seed: u64, inputs: usize, hidden: usize) -> Head {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v =
        |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-s..s)).collect() };
    let d1 = Dense::new(v(inputs * hidden, 0.3), v(hidden, 0.2), inputs).unwrap();
    let d2 = Dense::new(v(hidden * 3, 0.5), v(3, 0.2), hidden).unwrap();
    let act = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48)]);
    Head::new(d1, act, d2).unwrap()
}

const SCALES: Scales = Scales {
    input_bits: 4,
    weight_bits: 5,
    output_weight_bits: 5,
};

#[test]
fn encrypted_head_equals_the_simulation_bit_for_bit() {
    let head = tiny_head(1, 50, 12);
    let q = QuantizedHead::new(&head, SCALES, 0.0, 2.0).unwrap();
    let eh = EncryptedHead::new(&q, toy(30, 3), None).unwrap();
    let (client, server) = eh.keygen(&|| {}).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..2 {
        let x: Vec<f32> = (0..50).map(|_| rng.random_range(0.0..2.0)).collect();
        let xq = q.quantize(&x).unwrap();
        let expected = q.simulate(&xq);
        let ct = eh.encrypt(&client, &x).unwrap();
        let (out, used) = eh.evaluate(&server, &ct, &|| {}).unwrap();
        let dec = eh.decrypt(&client, &out).unwrap();
        assert_eq!(dec.logits, expected);
        assert_eq!(dec.residues, eh.expected_residues(&expected));
        assert_eq!(used.depth, 2);
        // The noise estimate is conservative: the measured budget is at least the estimate.
        for &nb in &dec.noise_budget {
            assert!(
                nb >= eh.estimate().budget_left(),
                "{nb} < {:?}",
                eh.estimate()
            );
        }
        // Quantisation keeps the float head's decision on these inputs, and the logits close.
        let float = head.forward(&x);
        let fixed = q.dequantize(&expected);
        for (a, b) in float.iter().zip(&fixed) {
            assert!((a - b).abs() < 0.25, "{float:?} vs {fixed:?}");
        }
        let _ = argmax(&fixed);
    }
}

#[test]
fn overflow_noise_keys_parameters_and_range_are_refused_with_numbers() {
    let head = tiny_head(3, 20, 8);
    let q = QuantizedHead::new(&head, SCALES, 0.0, 2.0).unwrap();
    // One 20-bit prime cannot hold the logits.
    match EncryptedHead::new(&q, toy(20, 1), None) {
        Err(HeError::PlaintextOverflow {
            needed_bits,
            available_bits,
        }) => assert!(needed_bits > available_bits && available_bits < 20.0),
        other => panic!("expected PlaintextOverflow, got {:?}", other.err()),
    }
    // Two short ciphertext moduli cannot hold the depth.
    let small: Vec<Bfv> = polyact::he::bfv::plaintext_primes(30, N, 3)
        .unwrap()
        .into_iter()
        .map(|t| Bfv::insecure_with_plaintext(N, &[50, 50], t).unwrap())
        .collect();
    match EncryptedHead::new(&q, small, Some(0)) {
        Err(HeError::NoiseBudget {
            needed_bits,
            available_bits,
        }) => assert!(needed_bits > available_bits),
        other => panic!("expected NoiseBudget, got {:?}", other.err()),
    }
    // The same prime twice: the CRT could not recover the logits (they would decrypt to 0).
    let twice = toy(30, 3);
    let same = vec![twice[0].clone(), twice[1].clone(), twice[0].clone()];
    match EncryptedHead::new(&q, same, None) {
        Err(HeError::Unsupported(why)) => assert!(why.contains("distinct"), "{why}"),
        other => panic!("expected Unsupported, got {:?}", other.err()),
    }
    // A level the backends do not have.
    match EncryptedHead::new(&q, toy(30, 3), Some(MODULI.len())) {
        Err(HeError::Unsupported(why)) => assert!(why.contains("beyond"), "{why}"),
        other => panic!("expected Unsupported, got {:?}", other.err()),
    }
    let eh = EncryptedHead::new(&q, toy(30, 3), None).unwrap();
    let (client_a, _) = eh.keygen(&|| {}).unwrap();
    let (_, server_b) = eh.keygen(&|| {}).unwrap();
    let x = vec![1.0f32; 20];
    let ct = eh.encrypt(&client_a, &x).unwrap();
    assert!(matches!(
        eh.evaluate(&server_b, &ct, &|| {}),
        Err(HeError::KeyMismatch { .. })
    ));
    // A ciphertext from other parameters (other primes).
    let other = EncryptedHead::new(&q, toy(31, 3), None).unwrap();
    let (client_c, _) = other.keygen(&|| {}).unwrap();
    let ct_c = other.encrypt(&client_c, &x).unwrap();
    let (_, server_a) = eh.keygen(&|| {}).unwrap();
    assert!(matches!(
        eh.evaluate(&server_a, &ct_c, &|| {}),
        Err(HeError::ParameterMismatch { .. })
    ));
    // Values outside the declared input range.
    let mut bad = x.clone();
    bad[7] = 2.5;
    match eh.encrypt(&client_a, &bad) {
        Err(HeError::OutOfRange { index, value, .. }) => {
            assert_eq!(index, 7);
            assert!((value - 2.5).abs() < 1e-9);
        }
        other => panic!(
            "expected OutOfRange, got {:?}",
            other.err().map(|e| e.to_string())
        ),
    }
    // An already quantised input is held to the same range: -2.0 is as large as the upper end
    // 2.0 but lies outside [0, 2], where the worst-case bounds were computed.
    let mut xq = q.quantize(&x).unwrap();
    xq[3] = -q.quantizer().quantized_range().1;
    match eh.encrypt_quantized(&client_a, &xq) {
        Err(HeError::OutOfRange { index, value, .. }) => {
            assert_eq!(index, 3);
            assert!((value + 2.0).abs() < 1e-9, "{value}");
        }
        other => panic!(
            "expected OutOfRange, got {:?}",
            other.err().map(|e| e.to_string())
        ),
    }
}

#[test]
fn crt_recovers_signed_values() {
    let primes = polyact::he::bfv::plaintext_primes(30, N, 3).unwrap();
    for v in ["-123456789012345678901234", "0", "98765432109876543210987"] {
        let x: BigInt = v.parse().unwrap();
        let r: Vec<u64> = primes.iter().map(|&p| residue(&x, p)).collect();
        assert_eq!(crt(&r, &primes), x);
    }
}

/// The noise model bounds every operation the head uses, at the example's 128-bit ring
/// (N = 16384, log Q = 438, a 30-bit plaintext prime) on the full modulus and one level down:
/// each step's noise as fhe.rs measures it (the independent oracle) stays at or below the
/// model's figure for the same chain. The printed slack shows where the model is loose.
#[test]
fn the_noise_model_bounds_each_operation_at_128_bit_parameters() {
    let degree = 16384;
    let t = polyact::he::bfv::plaintext_primes(30, degree, 1).unwrap()[0];
    let b = Bfv::secure(degree, t).unwrap();
    let (sk, pk) = keys(&b);
    let mut rng = StdRng::seed_from_u64(5);
    let random_slots =
        |rng: &mut StdRng| -> Vec<u64> { (0..b.slots()).map(|_| rng.random_range(0..t)).collect() };
    for level in [0, 1] {
        let m = NoiseModel::for_backend(&b, level);
        let room = b.modulus_bits(level) - b.plaintext_bits() - 1.0;
        let ek = b.eval_key(&sk, level, &[1], false).unwrap();
        let check = |step: &str, ct: &polyact::he::bfv::BfvCiphertext, model: f64| {
            let measured = room - b.noise_budget(&sk, ct).unwrap();
            println!("level {level}, {step}: measured {measured:.0} bits, model {model:.1}");
            assert!(
                measured <= model,
                "level {level}, {step}: measured noise {measured} bits above the model's {model}"
            );
        };
        let x = b
            .encrypt(&pk, &b.encode(&random_slots(&mut rng), level).unwrap())
            .unwrap();
        let mut v = m.fresh();
        check("fresh", &x, v);
        let x = b.rotate(&ek, &x, 1).unwrap();
        v = m.key_switched(v);
        check("rotation", &x, v);
        // Baby steps: one ciphertext times 64 different plaintexts, summed.
        let mut s = b
            .mul_plain(&x, &b.encode(&random_slots(&mut rng), level).unwrap())
            .unwrap();
        check("plaintext product", &s, m.plain_product(v));
        for _ in 1..64 {
            let p = b
                .mul_plain(&x, &b.encode(&random_slots(&mut rng), level).unwrap())
                .unwrap();
            b.add_assign(&mut s, &p).unwrap();
        }
        v = m.sum(m.plain_product(v), 64);
        check("sum of 64 products", &s, v);
        let s = b.rotate(&ek, &s, 1).unwrap();
        v = m.key_switched(v);
        check("rotation of the sum", &s, v);
        let sq = b.mul(&ek, &s, &s).unwrap();
        let vsq = m.product(v, v);
        check("square", &sq, vsq);
        let c = b
            .mul_scalar(
                &sq,
                &b.encode_scalar(rng.random_range(0..t), level).unwrap(),
            )
            .unwrap();
        check("constant product", &c, m.scalar_product(vsq, m.log_t));
        let q4 = b.mul(&ek, &sq, &sq).unwrap();
        let v4 = m.product(vsq, vsq);
        check("fourth power", &q4, v4);
        let out = b
            .mul_plain(&q4, &b.encode(&random_slots(&mut rng), level).unwrap())
            .unwrap();
        check("plaintext product of it", &out, m.plain_product(v4));
    }
}

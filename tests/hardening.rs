//! Regression tests for inputs that used to panic or give silently wrong results (polynomials,
//! intervals, derivatives, candle layers). Each names the case it guards.

use approx::relative_eq;
use polyact::{
    Activation, Coefficient, Interval, Mish, Polynomial, Sigmoid, Silu, Softsign, Tanh, fit,
};

/// Relative tolerance for a derivative in the tails, in `f64` and `f32`.
const TAIL_F64: f64 = 1e-13;
const TAIL_F32: f64 = 1e-5;

/// A polynomial whose top stored coefficient is an exact zero: `x − x³/3 + 0·x⁴`.
fn trailing_zero() -> Polynomial {
    Polynomial::from_ratios(&[(0, 1), (1, 1), (0, 1), (-1, 3), (0, 1)])
}

#[test]
fn huge_powers_are_refused_or_harmless() {
    // Case 6: `truncate(usize::MAX)` and `with_coefficient(usize::MAX, _)` overflowed.
    let p = polyact::presets::m_sigmoid();
    assert_eq!(p.clone().truncate(usize::MAX), p);
    let err = p
        .clone()
        .with_coefficient(usize::MAX, Coefficient::integer(1))
        .unwrap_err();
    assert!(matches!(err, polyact::Error::Degree { .. }), "{err}");
    assert!(
        p.with_coefficient(Polynomial::MAX_POWER + 1, Coefficient::zero())
            .is_err()
    );
}

#[test]
fn trailing_zeros_do_not_turn_infinity_into_nan() {
    // Case 8: p(±∞) was NaN (0·∞) in eval, eval_slice, derivative and the layers.
    let p = trailing_zero();
    assert_eq!(p.degree(), 3);
    assert_eq!(p.coefficients().len(), 4);
    for (x, want) in [
        (f64::INFINITY, f64::NEG_INFINITY),
        (f64::NEG_INFINITY, f64::INFINITY),
    ] {
        assert_eq!(p.eval(x), want);
        let mut out = [0.0];
        p.eval_slice(&[x], &mut out);
        assert_eq!(out[0], want);
        assert_eq!(Activation::<f64>::derivative(&p, x), f64::NEG_INFINITY);
    }
    // Read back from JSON that still carries the zero.
    let json = r#"{"coefficients":[{"value":0.0},{"value":1.0},{"value":0.0},{"value":-0.5},{"value":0.0}]}"#;
    let read: Polynomial = serde_json::from_str(json).unwrap();
    assert_eq!(read.eval(f64::INFINITY), f64::NEG_INFINITY);
}

#[test]
fn minimax_of_even_degree_keeps_finite_limits() {
    // Case 8 (fits): a degree-6 fit of an odd-symmetric function has a zero x⁶ term.
    let fit = fit::minimax(Sigmoid, 6, -5.0..=5.0).unwrap();
    assert!(fit.polynomial.eval(f64::INFINITY).is_infinite());
}

#[test]
fn rescaling_by_a_tiny_scale_is_an_error() {
    // Case 10: rescale_input by 1e-100 or 5e-324 returned NaN/inf coefficients.
    let p = polyact::presets::m_tanh().with_domain(-2.0..=2.0).unwrap();
    for s in [1e-100, 5e-324] {
        let err = p.rescale_input(&Coefficient::approx(s)).unwrap_err();
        assert!(err.to_string().contains("f64"), "{err}");
    }
    let q = p.rescale_input(&Coefficient::integer(3)).unwrap();
    assert_eq!(q.domain().map(|d| d.ends()), Some((-6.0, 6.0)));
}

#[test]
fn reversed_domains_do_not_load() {
    // Case 12: a deserialised polynomial skipped domain validation.
    let json = r#"{"coefficients":[{"value":1.0}],"domain":{"start":2.0,"end":-2.0}}"#;
    assert!(serde_json::from_str::<Polynomial>(json).is_err());
    let json = r#"{"coefficients":[{"value":1.0}],"domain":{"lo":-2.0,"hi":2.0}}"#;
    let p: Polynomial = serde_json::from_str(json).unwrap();
    assert_eq!(p.domain(), Some(Interval::new(-2.0, 2.0).unwrap()));
}

#[test]
fn non_finite_coefficients_read_back() {
    // Case 12: a NaN/inf coefficient serialised as `null` and could not be read back.
    let p = Polynomial::from_f64(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0]);
    let json = serde_json::to_string(&p).unwrap();
    let back: Polynomial = serde_json::from_str(&json).unwrap();
    let c = back.coefficients_f64();
    assert!(c[0].is_nan(), "{json}");
    assert_eq!((c[1], c[2]), (f64::INFINITY, f64::NEG_INFINITY), "{json}");
    let old: Polynomial = serde_json::from_str(r#"{"coefficients":[{"value":null}]}"#).unwrap();
    assert!(old.coefficients_f64()[0].is_nan());
}

/// `σ′(x) = 1/(eˣ + 2 + e⁻ˣ)` and `tanh′(x) = 1/cosh² x`: forms without cancellation, computed
/// in `f64`, as oracles for the tails.
fn sigmoid_prime(x: f64) -> f64 {
    1.0 / (x.exp() + 2.0 + (-x).exp())
}
fn tanh_prime(x: f64) -> f64 {
    1.0 / x.cosh().powi(2)
}

#[test]
fn derivatives_are_accurate_in_the_tails() {
    // Case 14: σ′(40) was 0 in f64 and tanh′(9) in f32 was off by 2x.
    for x in [
        -300.0, -80.0, -40.0, -20.0, -9.0, 9.0, 20.0, 40.0, 80.0, 300.0,
    ] {
        let (s, t) = (sigmoid_prime(x), tanh_prime(x));
        let got = Activation::<f64>::derivative(&Sigmoid, x);
        assert!(
            relative_eq!(got, s, max_relative = TAIL_F64),
            "σ′({x}) = {got}, want {s}"
        );
        if x.abs() < 350.0 {
            let got = Activation::<f64>::derivative(&Tanh, x);
            assert!(
                relative_eq!(got, t, max_relative = TAIL_F64),
                "tanh′({x}) = {got}, want {t}"
            );
        }
        if x.abs() <= 40.0 {
            let got = f64::from(Activation::<f32>::derivative(&Sigmoid, x as f32));
            assert!(
                relative_eq!(got, s, max_relative = TAIL_F32),
                "f32 σ′({x}) = {got}"
            );
            let got = f64::from(Activation::<f32>::derivative(&Tanh, x as f32));
            assert!(
                relative_eq!(got, t, max_relative = TAIL_F32),
                "f32 tanh′({x}) = {got}"
            );
        }
    }
}

/// silu′ and mish′ near 1 and softsign′ far out keep their last digits: no `1 − σ`, `1 − t²`
/// or `d²` that cancels or overflows. Oracles in `f64`: for large `x`, with `u = e⁻ˣ`,
/// silu′ = `1 + (x − 1)u + O(x u²)` and mish′ = `1 + (4x − 2)u² + O(x u³)`; softsign′ =
/// `(1/(1 + |x|))²`, a subnormal here.
#[test]
fn silu_mish_and_softsign_derivatives_keep_their_last_digits() {
    let ulp64 = f64::EPSILON;
    for x in [25.0_f64, 30.0, 36.7] {
        let want = 1.0 + (x - 1.0) * (-x).exp();
        let got = Activation::<f64>::derivative(&Silu, x);
        assert!(
            (got - want).abs() <= 2.0 * ulp64,
            "silu′({x}) = {got}, want {want}"
        );
    }
    for x in [15.0_f64, 17.0, 19.0] {
        let want = 1.0 + (4.0 * x - 2.0) * (-2.0 * x).exp();
        let got = Activation::<f64>::derivative(&Mish, x);
        assert!(
            (got - want).abs() <= 3.0 * ulp64,
            "mish′({x}) = {got}, want {want}"
        );
    }
    let x = 9.01_f32;
    let want = 1.0 + (4.0 * f64::from(x) - 2.0) * (-2.0 * f64::from(x)).exp();
    let got = f64::from(Activation::<f32>::derivative(&Mish, x));
    let ulp32 = f64::from(f32::EPSILON);
    assert!(
        (got - want).abs() <= 1.5 * ulp32,
        "f32 mish′({x}) = {got}, want {want}"
    );
    let got = Activation::<f64>::derivative(&Softsign, 1e155);
    assert!(relative_eq!(got, 1e-310, max_relative = 1e-9), "{got}");
    let got = f64::from(Activation::<f32>::derivative(&Softsign, 2e19_f32));
    let want = (1.0 / (1.0 + f64::from(2e19_f32))).powi(2);
    assert!(
        relative_eq!(got, want, max_relative = 1e-5),
        "{got} vs {want}"
    );
}

/// The candle layers on the same cases (feature `candle`).
#[cfg(feature = "candle")]
mod layers {
    use approx::relative_eq;
    use candle_core::{DType, Device, Module, Tensor, Var};
    use candle_nn::{VarBuilder, VarMap};
    use polyact::Interval;
    use polyact::nn::{Guarded, LearnablePoly, PolyAct};

    use super::trailing_zero;

    #[test]
    fn trailing_zeros_do_not_turn_infinity_into_nan_in_the_layers() {
        // Case 8, in the fused and the learnable layer.
        let p = trailing_zero();
        let xs = Tensor::new(&[f32::INFINITY, f32::NEG_INFINITY], &Device::Cpu).unwrap();
        let fused = PolyAct::new(&p)
            .forward(&xs)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(fused, [f32::NEG_INFINITY, f32::INFINITY]);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let learnable = LearnablePoly::new(&p, vb).unwrap();
        let ys = learnable.forward(&xs).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(ys, [f32::NEG_INFINITY, f32::INFINITY]);
    }

    #[test]
    fn integer_tensors_are_refused_or_compared_exactly() {
        // Case 13: forward_unfused on integers returned zeros; out_of_range on u8 cast the bounds.
        let layer = PolyAct::new(&polyact::presets::m_sigmoid());
        let ints = Tensor::new(&[1_u32, 2, 3], &Device::Cpu).unwrap();
        assert!(layer.forward_unfused(&ints).is_err());
        assert!(layer.forward(&ints).is_err());
        let bytes = Tensor::new(&[0_u8, 1, 2, 3], &Device::Cpu).unwrap();
        let fraction =
            polyact::nn::out_of_range(&bytes, Some(Interval::new(0.5, 2.5).unwrap())).unwrap();
        assert!(relative_eq!(fraction, 0.5, max_relative = 1e-15));
    }

    #[test]
    fn clamped_gradients_agree_at_the_bounds() {
        // Case 13: at exactly the clamp bounds the fused and unfused gradients differed by 2x.
        let poly = polyact::presets::m_relu().with_domain(-1.5..=2.0).unwrap();
        let layer = PolyAct::new(&poly).with_clamp().unwrap();
        let x = Var::new(&[-1.5_f64, 2.0, -3.0, 0.5], &Device::Cpu).unwrap();
        let gradient = |y: Tensor| {
            let grads = y.sum_all().unwrap().backward().unwrap();
            grads.get(&x).unwrap().to_vec1::<f64>().unwrap()
        };
        let fused = gradient(layer.forward(x.as_tensor()).unwrap());
        let unfused = gradient(layer.forward_unfused(x.as_tensor()).unwrap());
        let dp = poly.differentiate();
        let want = [dp.eval(-1.5), dp.eval(2.0), 0.0, dp.eval(0.5)];
        for (got, want) in fused.iter().chain(&unfused).zip(want.iter().cycle()) {
            assert!(
                relative_eq!(*got, *want, max_relative = 1e-12),
                "{got} vs {want}"
            );
        }
    }
}

//! The candle layers against their oracles: the scalar `Activation` trait, the unfused tensor-op
//! composite, finite differences and candle's own activations.
#![cfg(feature = "candle")]

use approx::relative_eq;
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use polyact::nn::{Act, Elementwise, Guarded, LearnablePoly, PolyAct, TensorActivation};
use polyact::{
    Activation, Elu, Formula, Gelu, Identity, LeakyRelu, Mish, Polynomial, Real, Relu, Sigmoid,
    Silu, Softplus, Softsign, Square, Tanh,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An absolute-plus-relative tolerance:
/// `|a − b| ≤ abs` or `|a − b| ≤ rel · max(|a|, |b|)`.
#[derive(Debug, Clone, Copy)]
struct Tol {
    abs: f64,
    rel: f64,
}

/// `f64` arithmetic through a handful of ops.
const F64_TOL: Tol = Tol {
    abs: 1e-12,
    rel: 1e-12,
};
/// `f32` arithmetic through a handful of ops (ε = 1.2e-7), values up to ~40.
const F32_TOL: Tol = Tol {
    abs: 2e-6,
    rel: 2e-6,
};
/// `f16` (ε = 9.8e-4): the fused ops round once, candle's composites a few times.
const F16_TOL: Tol = Tol {
    abs: 8e-3,
    rel: 8e-3,
};
/// `bf16` (ε = 7.8e-3).
const BF16_TOL: Tol = Tol {
    abs: 6e-2,
    rel: 6e-2,
};
/// The fused ops evaluate the half types in `f32` and round once: within an ulp of `f16`
/// (ε = 9.8e-4; a half-ulp rounding plus the `f32` error).
const FUSED_F16_TOL: Tol = Tol {
    abs: 1e-3,
    rel: 1e-3,
};
/// The same for `bf16` (ε = 7.8e-3).
const FUSED_BF16_TOL: Tol = Tol {
    abs: 8e-3,
    rel: 8e-3,
};
/// Central finite differences with step 1e-5 in `f64` on polynomials of moderate size:
/// truncation ~h² · p''' and rounding ~ε/h.
const FINITE_DIFF_TOL: Tol = Tol {
    abs: 1e-7,
    rel: 1e-7,
};

/// The same computation on the same values (a strided view and its contiguous copy, a model
/// and its reloaded copy): bit-for-bit equal.
const EXACT: Tol = Tol { abs: 0.0, rel: 0.0 };

/// Every float dtype with the tolerance for a few rounded ops (candle's ops and compositions).
const DTYPES: [(DType, Tol); 4] = [
    (DType::F64, F64_TOL),
    (DType::F32, F32_TOL),
    (DType::F16, F16_TOL),
    (DType::BF16, BF16_TOL),
];

/// Every float dtype with the tolerance for polyact's fused ops.
const FUSED_DTYPES: [(DType, Tol); 4] = [
    (DType::F64, F64_TOL),
    (DType::F32, F32_TOL),
    (DType::F16, FUSED_F16_TOL),
    (DType::BF16, FUSED_BF16_TOL),
];

fn assert_close(actual: &[f64], expected: &[f64], tol: Tol, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = (a.is_nan() && e.is_nan())
            || relative_eq!(a, e, epsilon = tol.abs, max_relative = tol.rel);
        assert!(
            ok,
            "{what}: element {i}: got {a}, expected {e} (tolerance {tol:?})"
        );
    }
}

fn uniform(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn tensor(values: &[f64], dtype: DType) -> Result<Tensor> {
    Tensor::new(values, &Device::Cpu)?.to_dtype(dtype)
}

/// The elements of any float tensor as `f64`, in logical order.
fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

/// `f(x)` and `∂(Σ w·f(x))/∂x = w·f'(x)` through a layer, with random weights `w`.
fn value_and_grad(layer: &dyn Module, x: &Tensor, seed: u64) -> Result<(Tensor, Tensor, Tensor)> {
    let var = Var::from_tensor(x)?;
    let w = tensor(&uniform(x.elem_count(), -2.0, 2.0, seed), x.dtype())?.reshape(x.shape())?;
    let y = layer.forward(var.as_tensor())?;
    let grads = (&y * &w)?.sum_all()?.backward()?;
    let dx = grads.get(&var).expect("the input is a variable").clone();
    Ok((y, dx, w))
}

/// x / (1 + x²): an activation defined outside polyact.
struct Bump;

impl<T: Real> Activation<T> for Bump {
    fn name(&self) -> &str {
        "bump"
    }
    fn eval(&self, x: T) -> T {
        x / (T::one() + x * x)
    }
    fn derivative(&self, x: T) -> T {
        let d = T::one() + x * x;
        (T::one() - x * x) / (d * d)
    }
    fn formula(&self) -> Formula {
        Formula::Analytic("x/(1+x^2)".parse().expect("the formula parses"))
    }
}

fn every_activation() -> Vec<Act> {
    vec![
        Act::new(Sigmoid),
        Act::new(Tanh),
        Act::new(Relu),
        Act::new(Softplus),
        Act::new(Gelu),
        Act::new(Silu),
        Act::new(Mish),
        Act::new(Elu::new(1.0).unwrap()),
        Act::new(Elu::new(0.5).unwrap()),
        Act::new(LeakyRelu::new(0.01).unwrap()),
        Act::new(Softsign),
        Act::new(Identity),
        Act::new(Square),
        Act::new(polyact::presets::m_sigmoid()),
        Act::new(Elementwise::new(Bump)),
        Act::new(Elementwise::new(Softplus)),
    ]
}

#[test]
fn every_layer_matches_the_scalar_trait_per_dtype() -> Result<()> {
    let xs = uniform(517, -6.0, 6.0, 1);
    for act in every_activation() {
        for (dtype, tol) in DTYPES {
            let x = tensor(&xs, dtype)?;
            let exact_inputs = values(&x)?;
            let (y, dx, w) = value_and_grad(&act, &x, 2)?;
            assert_eq!(y.dtype(), dtype);
            let expected: Vec<f64> = exact_inputs.iter().map(|&v| act.scalar().eval(v)).collect();
            assert_close(
                &values(&y)?,
                &expected,
                tol,
                &format!("{} {dtype:?} value", act.name()),
            );

            let expected: Vec<f64> = exact_inputs
                .iter()
                .zip(values(&w)?)
                .map(|(&v, w)| w * act.scalar().derivative(v))
                .collect();
            assert_close(
                &values(&dx)?,
                &expected,
                tol,
                &format!("{} {dtype:?} gradient", act.name()),
            );
        }
    }
    Ok(())
}

#[test]
fn stable_compositions_do_not_overflow() -> Result<()> {
    let xs = [-200.0, -60.0, 60.0, 200.0];
    for act in [
        Act::new(Softplus),
        Act::new(Mish),
        Act::new(Softsign),
        Act::new(Sigmoid),
    ] {
        let x = tensor(&xs, DType::F32)?;
        let (y, dx, _) = value_and_grad(&act, &x, 3)?;
        for (v, d) in values(&y)?.into_iter().zip(values(&dx)?) {
            assert!(v.is_finite() && d.is_finite(), "{}: {v}, {d}", act.name());
        }
        let expected: Vec<f64> = xs.iter().map(|&v| act.scalar().eval(v)).collect();
        assert_close(&values(&y)?, &expected, F32_TOL, act.name());
    }
    Ok(())
}

#[test]
fn conversions_from_candle_compute_candles_function() -> Result<()> {
    use candle_nn::Activation as C;
    let x = tensor(&uniform(300, -6.0, 6.0, 4), DType::F32)?;
    let convertible = [
        (C::Gelu, "gelu"),
        (C::Relu, "relu"),
        (C::Silu, "silu"),
        (C::Swish, "silu"),
        (C::Sigmoid, "sigmoid"),
        (C::Mish, "mish"),
        (C::Elu(0.7), "elu"),
        (C::LeakyRelu(0.1), "leaky_relu"),
    ];
    for (candle, name) in convertible {
        let act = Act::try_from(candle).expect("has an equivalent");
        assert_eq!(act.name(), name);
        assert_close(
            &values(&act.forward(&x)?)?,
            &values(&candle.forward(&x)?)?,
            F32_TOL,
            &format!("{candle:?}"),
        );
    }
    for candle in [
        C::NewGelu,
        C::GeluPytorchTanh,
        C::Relu2,
        C::Relu6,
        C::HardSigmoid,
        C::HardSwish,
        C::Swiglu,
        C::Elu(-1.0),
        C::LeakyRelu(f64::NAN),
    ] {
        let err = Act::try_from(candle).expect_err("no equivalent");
        assert!(!err.reason.is_empty());
    }
    Ok(())
}

/// The unfused oracle: Horner's rule written out as candle tensor ops.
fn horner_composite(coefficients: &[f64], x: &Tensor) -> Result<Tensor> {
    let mut acc = (x.zeros_like()? + coefficients[coefficients.len() - 1])?;
    for &c in coefficients.iter().rev().skip(1) {
        acc = ((acc * x)? + c)?;
    }
    Ok(acc)
}

fn test_polynomials() -> Vec<Polynomial> {
    vec![
        polyact::presets::m_sigmoid(),
        polyact::presets::m_relu(),
        polyact::presets::m_tanh(),
        Polynomial::from_f64(&[0.3, -1.2, 0.7, 0.05, -0.02, 0.003, 1e-4, -2e-5, 3e-7]),
        Polynomial::from_f64(&[2.5]),
        Polynomial::from_f64(&[]),
    ]
}

#[test]
fn fused_op_matches_the_unfused_composite_per_dtype() -> Result<()> {
    let xs = uniform(1000, -4.0, 4.0, 5);
    for poly in test_polynomials() {
        let coefficients = {
            let mut c = poly.coefficients_f64();
            if c.is_empty() {
                c.push(0.0);
            }
            c
        };
        let layer = PolyAct::new(&poly);
        for (dtype, tol) in FUSED_DTYPES {
            let x = tensor(&xs, dtype)?;
            let (y, dx, w) = value_and_grad(&layer, &x, 6)?;
            // The composite in f64 from the same (rounded) inputs is the reference: it rounds at
            // every op, the fused op once.
            let x64 = x.to_dtype(DType::F64)?;
            let var = Var::from_tensor(&x64)?;
            let y_ref = horner_composite(&coefficients, var.as_tensor())?;
            let grads = (&y_ref * w.to_dtype(DType::F64)?)?.sum_all()?.backward()?;
            // A constant polynomial does not depend on x: no gradient is recorded, it is zero.
            let dx_ref = match grads.get(&var) {
                Some(g) => values(g)?,
                None => vec![0.0; xs.len()],
            };
            let what = format!("{poly} {dtype:?}");
            assert_close(
                &values(&y)?,
                &values(&y_ref)?,
                tol,
                &format!("{what} value"),
            );
            assert_close(&values(&dx)?, &dx_ref, tol, &format!("{what} gradient"));
            // And the scalar trait.
            let expected: Vec<f64> = values(&x)?.iter().map(|&v| poly.eval(v)).collect();
            assert_close(&values(&y)?, &expected, tol, &format!("{what} scalar"));
        }
    }
    Ok(())
}

#[test]
fn fused_op_in_f32_matches_the_f32_composite() -> Result<()> {
    let poly = polyact::presets::m_sigmoid();
    let x = tensor(&uniform(4096, -5.0, 5.0, 7), DType::F32)?;
    let layer = PolyAct::new(&poly);
    let (y, dx, w) = value_and_grad(&layer, &x, 8)?;
    let var = Var::from_tensor(&x)?;
    let y_ref = horner_composite(&poly.coefficients_f64(), var.as_tensor())?;
    let dx_ref = (&y_ref * &w)?
        .sum_all()?
        .backward()?
        .get(&var)
        .expect("variable")
        .clone();
    assert_close(&values(&y)?, &values(&y_ref)?, F32_TOL, "value");
    assert_close(&values(&dx)?, &values(&dx_ref)?, F32_TOL, "gradient");
    let unfused = layer.forward_unfused(&x)?;
    assert_close(&values(&y)?, &values(&unfused)?, F32_TOL, "forward_unfused");
    Ok(())
}

#[test]
fn fused_gradient_matches_finite_differences() -> Result<()> {
    let h = 1e-5;
    let xs = uniform(300, -3.0, 3.0, 9);
    for poly in test_polynomials() {
        let layer = PolyAct::new(&poly);
        let x = tensor(&xs, DType::F64)?;
        let (_, dx, w) = value_and_grad(&layer, &x, 10)?;
        let plus = layer.forward(&(&x + h)?)?;
        let minus = layer.forward(&(&x - h)?)?;
        let fd = (((plus - minus)? / (2.0 * h))? * w)?;
        assert_close(
            &values(&dx)?,
            &values(&fd)?,
            FINITE_DIFF_TOL,
            &poly.to_string(),
        );
    }
    Ok(())
}

#[test]
fn strided_inputs_give_the_result_of_their_contiguous_copy() -> Result<()> {
    let poly = polyact::presets::m_tanh();
    let layer = PolyAct::new(&poly);
    let base = uniform(40 * 30, -2.0, 2.0, 11);
    for (dtype, _) in DTYPES {
        let x = tensor(&base, dtype)?.reshape((40, 30))?;
        let views = [
            x.t()?,
            x.narrow(1, 3, 20)?,
            x.narrow(0, 5, 7)?.t()?,
            x.narrow(0, 2, 1)?.broadcast_as((6, 30))?,
            x.reshape((4, 10, 30))?
                .permute((2, 0, 1))?
                .narrow(2, 1, 8)?,
        ];
        for (i, view) in views.iter().enumerate() {
            assert!(!view.is_contiguous(), "view {i} should be strided");
            let strided = layer.forward(view)?;
            let contiguous = layer.forward(&view.contiguous()?)?;
            assert_eq!(strided.dims(), view.dims());
            // Same kernel on the same values: identical results.
            assert_close(
                &values(&strided)?,
                &values(&contiguous)?,
                EXACT,
                &format!("view {i} {dtype:?}"),
            );
        }
        // Gradients flow back through the view to the base tensor.
        let var = Var::from_tensor(&x)?;
        let w = tensor(&uniform(30 * 40, -1.0, 1.0, 12), dtype)?.reshape((30, 40))?;
        let grad_of = |input: &Tensor| -> Result<Vec<f64>> {
            let grads = (layer.forward(input)? * &w)?.sum_all()?.backward()?;
            values(grads.get(&var).expect("variable"))
        };
        let strided = grad_of(&var.as_tensor().t()?)?;
        let contiguous = grad_of(&var.as_tensor().t()?.contiguous()?)?;
        assert_close(&strided, &contiguous, EXACT, &format!("gradient {dtype:?}"));
    }
    Ok(())
}

#[test]
fn large_tensors_are_evaluated_in_parallel_chunks_correctly() -> Result<()> {
    // More than a few 32K-element chunks, and a ragged end.
    let poly = polyact::presets::m_sigmoid();
    let xs = uniform(200_003, -6.0, 6.0, 13);
    let x = tensor(&xs, DType::F32)?;
    let (y, dx, w) = value_and_grad(&PolyAct::new(&poly), &x, 14)?;
    let inputs = values(&x)?;
    let expected: Vec<f64> = inputs.iter().map(|&v| poly.eval(v)).collect();
    assert_close(&values(&y)?, &expected, F32_TOL, "value");
    let dp = poly.differentiate();
    let expected: Vec<f64> = inputs
        .iter()
        .zip(values(&w)?)
        .map(|(&v, w)| w * dp.eval(v))
        .collect();
    assert_close(&values(&dx)?, &expected, F32_TOL, "gradient");
    Ok(())
}

#[test]
fn odd_shapes_and_dtypes() -> Result<()> {
    let layer = PolyAct::new(&polyact::presets::m_relu());
    let empty = Tensor::zeros((0, 3), DType::F32, &Device::Cpu)?;
    assert_eq!(layer.forward(&empty)?.dims(), &[0, 3]);
    let scalar = Tensor::new(2.0_f64, &Device::Cpu)?;
    let y = layer.forward(&scalar)?.to_scalar::<f64>()?;
    assert!(relative_eq!(
        y,
        polyact::presets::m_relu().eval(2.0_f64),
        max_relative = 1e-15
    ));
    let ints = Tensor::new(&[1_u32, 2], &Device::Cpu)?;
    assert!(layer.forward(&ints).is_err());
    assert!(Act::new(Elementwise::new(Bump)).forward(&ints).is_err());
    let nan = Tensor::new(&[f32::NAN], &Device::Cpu)?;
    assert!(values(&layer.forward(&nan)?)?[0].is_nan());
    Ok(())
}

/// `Σ w · p_c(x)` for a learnable layer in f64.
fn weighted_loss(layer: &LearnablePoly, x: &Tensor, w: &Tensor) -> Result<f64> {
    (layer.forward(x)? * w)?.sum_all()?.to_scalar::<f64>()
}

fn var_named(varmap: &VarMap, name: &str) -> Var {
    varmap.data().lock().unwrap()[name].clone()
}

#[test]
fn learnable_layer_matches_the_scalar_polynomial_per_dtype() -> Result<()> {
    let poly = polyact::presets::m_sigmoid();
    let xs = uniform(700, -5.0, 5.0, 15);
    for (dtype, tol) in FUSED_DTYPES {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
        let layer = LearnablePoly::new(&poly, vb)?;
        let x = tensor(&xs, dtype)?;
        let (y, dx, w) = value_and_grad(&layer, &x, 16)?;
        // The reference uses the coefficients as stored in this dtype.
        let stored = layer.polynomial()?;
        let inputs = values(&x)?;
        let expected: Vec<f64> = inputs.iter().map(|&v| stored.eval(v)).collect();
        assert_close(&values(&y)?, &expected, tol, &format!("{dtype:?} value"));
        let dp = stored.differentiate();
        let expected: Vec<f64> = inputs
            .iter()
            .zip(values(&w)?)
            .map(|(&v, w)| w * dp.eval(v))
            .collect();
        assert_close(
            &values(&dx)?,
            &expected,
            tol,
            &format!("{dtype:?} gradient"),
        );
    }
    Ok(())
}

#[test]
fn coefficient_gradients_match_closed_form_and_finite_differences() -> Result<()> {
    let h = 1e-6;
    let poly = Polynomial::from_f64(&[0.1, 0.9, -0.3, 0.05, 0.02]);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let layer = LearnablePoly::new(&poly, vb.pp("act"))?;
    let xs = uniform(5000, -2.0, 2.0, 17);
    let x = tensor(&xs, DType::F64)?;
    let ws = uniform(5000, -1.0, 1.0, 18);
    let w = tensor(&ws, DType::F64)?;
    let grads = (layer.forward(&x)? * &w)?.sum_all()?.backward()?;
    for k in 0..5 {
        let var = var_named(&varmap, &format!("act.c{k}"));
        let grad = grads
            .get(var.as_tensor())
            .expect("coefficient is trained")
            .to_vec1::<f64>()?[0];
        let closed: f64 = xs.iter().zip(&ws).map(|(x, w)| w * x.powi(k)).sum();
        assert!(
            relative_eq!(grad, closed, epsilon = 1e-10, max_relative = 1e-12),
            "c{k}: {grad} vs {closed}"
        );

        let c = var.to_vec1::<f64>()?[0];
        var.set(&Tensor::new(&[c + h], &Device::Cpu)?)?;
        let plus = weighted_loss(&layer, &x, &w)?;
        var.set(&Tensor::new(&[c - h], &Device::Cpu)?)?;
        let minus = weighted_loss(&layer, &x, &w)?;
        var.set(&Tensor::new(&[c], &Device::Cpu)?)?;
        let fd = (plus - minus) / (2.0 * h);
        assert!(
            relative_eq!(grad, fd, epsilon = 1e-6, max_relative = 1e-7),
            "c{k}: {grad} vs {fd}"
        );
    }
    Ok(())
}

#[test]
fn coefficient_gradients_in_f32_are_accumulated_accurately() -> Result<()> {
    // A million terms: naive f32 accumulation would be off in the fourth digit.
    let poly = polyact::presets::m_tanh();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let layer = LearnablePoly::new(&poly, vb)?;
    let xs = uniform(1 << 20, -1.5, 1.5, 19);
    let x = tensor(&xs, DType::F32)?;
    let exact_inputs = values(&x)?;
    let grads = layer.forward(&x)?.sum_all()?.backward()?;
    for k in 0..6 {
        let var = var_named(&varmap, &format!("c{k}"));
        let grad = grads
            .get(var.as_tensor())
            .expect("trained")
            .to_vec1::<f32>()?[0] as f64;
        let closed: f64 = exact_inputs.iter().map(|x| x.powi(k)).sum();
        assert!(
            relative_eq!(grad, closed, epsilon = 1e-2, max_relative = 1e-6),
            "c{k}: {grad} vs {closed}"
        );
    }
    Ok(())
}

#[test]
fn learnable_input_gradient_matches_finite_differences() -> Result<()> {
    let h = 1e-5;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let layer = LearnablePoly::new(&polyact::presets::m_relu(), vb)?;
    let x = tensor(&uniform(400, -3.0, 3.0, 20), DType::F64)?;
    let (_, dx, w) = value_and_grad(&layer, &x, 21)?;
    let fd = (((layer.forward(&(&x + h)?)? - layer.forward(&(&x - h)?)?)? / (2.0 * h))? * w)?;
    assert_close(
        &values(&dx)?,
        &values(&fd)?,
        FINITE_DIFF_TOL,
        "input gradient",
    );
    Ok(())
}

#[test]
fn range_guard_fraction_is_exact() -> Result<()> {
    // 600 inside [-2, 3] (ends included), 250 below, 140 above, 10 NaN: 400 of 1000 outside.
    let mut xs = Vec::new();
    xs.extend((0..598).map(|i| -2.0 + 5.0 * i as f64 / 598.0));
    xs.extend([-2.0, 3.0]);
    xs.extend((0..250).map(|i| -2.001 - i as f64));
    xs.extend((0..140).map(|i| 3.0001 + i as f64 * 0.5));
    xs.extend([f64::NAN; 10]);
    let poly = polyact::presets::m_sigmoid()
        .with_domain(-2.0..=3.0)
        .unwrap();
    let layer = PolyAct::new(&poly).with_monitor();
    for dtype in [DType::F32, DType::F64] {
        let x = tensor(&xs, dtype)?;
        assert!(relative_eq!(
            layer.guard().out_of_range(&x)?,
            0.4,
            max_relative = 1e-15
        ));
        assert!(relative_eq!(
            polyact::nn::out_of_range(&x, poly.domain())?,
            0.4,
            max_relative = 1e-15
        ));
        layer.forward(&x)?;
    }
    let report = layer.guard().report().expect("monitored");
    assert_eq!((report.inputs, report.outside), (2000, 800));
    layer.guard().reset();
    assert_eq!(layer.guard().report().map(|r| r.inputs), Some(0));
    // Without a domain only NaN is out of range.
    let unguarded = PolyAct::new(&polyact::presets::m_sigmoid());
    let x = tensor(&xs, DType::F32)?;
    assert!(relative_eq!(
        unguarded.guard().out_of_range(&x)?,
        0.01,
        max_relative = 1e-15
    ));
    Ok(())
}

#[test]
fn clamping_holds_values_and_zeroes_gradients_outside() -> Result<()> {
    let poly = polyact::presets::m_relu().with_domain(-1.5..=2.0).unwrap();
    let xs = [-4.0, -1.5, -0.3, 1.0, 2.0, 2.5, 10.0];
    let dp = poly.differentiate();
    let expected_value: Vec<f64> = xs
        .iter()
        .map(|&x: &f64| poly.eval(x.clamp(-1.5, 2.0)))
        .collect();
    let expected_grad: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if (-1.5..=2.0).contains(&x) {
                dp.eval(x)
            } else {
                0.0
            }
        })
        .collect();
    let fixed = PolyAct::new(&poly).with_clamp().unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let learnable = LearnablePoly::new(&poly, vb)?.with_clamp().unwrap();
    let x = tensor(&xs, DType::F64)?;
    for layer in [&fixed as &dyn Module, &learnable] {
        let var = Var::from_tensor(&x)?;
        let y = layer.forward(var.as_tensor())?;
        let grads = y.sum_all()?.backward()?;
        assert_close(&values(&y)?, &expected_value, F64_TOL, "clamped value");
        assert_close(
            &values(grads.get(&var).expect("variable"))?,
            &expected_grad,
            F64_TOL,
            "clamped gradient",
        );
    }
    // The unfused path clamps the same way.
    assert_close(
        &values(&fixed.forward_unfused(&x)?)?,
        &expected_value,
        F64_TOL,
        "unfused clamp",
    );
    // Coefficient gradients see the clamped inputs: ∂/∂c₁ Σ p = Σ clamp(x).
    let grads = learnable.forward(&x)?.sum_all()?.backward()?;
    let c1 = var_named(&varmap, "c1");
    let g1 = grads
        .get(c1.as_tensor())
        .expect("trained")
        .to_vec1::<f64>()?[0];
    let closed: f64 = xs.iter().map(|x| x.clamp(-1.5, 2.0)).sum();
    assert!(relative_eq!(g1, closed, max_relative = 1e-14));
    // NaN is not hidden by the clamp.
    assert!(values(&fixed.forward(&tensor(&[f64::NAN], DType::F64)?)?)?[0].is_nan());
    Ok(())
}

/// In `bf16`, 3.703125 is the nearest value to 3.7 but lies above it. The fused op compares in
/// `f32` and so clamps it (gradient 0); the range guard and the unfused path must agree, not
/// compare against the end rounded to `bf16` (which is 3.703125 itself). Likewise in `f16` for
/// 2.30078125 against 2.3.
#[test]
fn half_types_are_compared_with_the_exact_ends() -> Result<()> {
    for (dtype, end, above) in [(DType::BF16, 3.7, 3.703125), (DType::F16, 2.3, 2.30078125)] {
        let poly = polyact::presets::m_tanh().with_domain(-end..=end).unwrap();
        let layer = PolyAct::new(&poly).with_clamp().unwrap();
        let x = tensor(&[above, 0.5], dtype)?;
        assert!(
            values(&x)?[0] > end,
            "{dtype:?}: the test value must lie above the end"
        );
        let fraction =
            polyact::nn::out_of_range(&x, Some(polyact::Interval::new(-end, end).unwrap()))
                .unwrap();
        assert!((fraction - 0.5).abs() < 1e-12, "{dtype:?}: {fraction}");
        for unfused in [false, true] {
            let var = Var::from_tensor(&x)?;
            let y = if unfused {
                layer.forward_unfused(var.as_tensor())?
            } else {
                layer.forward(var.as_tensor())?
            };
            let grads = y.sum_all()?.backward()?;
            let g = values(grads.get(&var).expect("variable"))?;
            assert!(
                g[0].abs() < 1e-300,
                "{dtype:?} unfused {unfused}: gradient {g:?}"
            );
            assert!(
                g[1].abs() > 0.1,
                "{dtype:?} unfused {unfused}: gradient {g:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn guard_configuration_errors() {
    let poly = polyact::presets::m_sigmoid();
    assert!(PolyAct::new(&poly).with_clamp().is_err());
    assert!(PolyAct::new(&poly).with_domain(1.0..=-1.0).is_err());
    assert!(
        PolyAct::new(&poly)
            .with_domain(0.0..=f64::INFINITY)
            .is_err()
    );
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let layer = LearnablePoly::new(&poly, vb).unwrap();
    assert!(layer.with_clamp().is_err());
}

/// A 2 → 16 → 1 perceptron with a learnable polynomial activation.
struct Mlp {
    hidden: Linear,
    act: LearnablePoly,
    out: Linear,
}

impl Mlp {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            hidden: candle_nn::linear(2, 16, vb.pp("hidden"))?,
            act: LearnablePoly::new(&polyact::presets::m_sigmoid(), vb.pp("act"))?,
            out: candle_nn::linear(16, 1, vb.pp("out"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.out
            .forward(&self.act.forward(&self.hidden.forward(xs)?)?)
    }
}

/// Overwrites the linear layers' random initialisation (candle's CPU generator cannot be seeded)
/// with seeded values, so the test is deterministic.
fn seed_linear_weights(varmap: &mut VarMap, seed: u64) -> Result<()> {
    let shapes = [
        ("hidden.weight", vec![16, 2], 0.7),
        ("hidden.bias", vec![16], 0.7),
        ("out.weight", vec![1, 16], 0.25),
        ("out.bias", vec![1], 0.25),
    ];
    for (i, (name, shape, bound)) in shapes.into_iter().enumerate() {
        let n = shape.iter().product();
        let t = Tensor::new(uniform(n, -bound, bound, seed + i as u64), &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape(shape)?;
        varmap.set_one(name, t)?;
    }
    Ok(())
}

fn toy_regression() -> Result<(Tensor, Tensor)> {
    let n = 256;
    let a = uniform(n, -2.0, 2.0, 30);
    let b = uniform(n, -2.0, 2.0, 31);
    let inputs: Vec<f64> = a.iter().zip(&b).flat_map(|(&a, &b)| [a, b]).collect();
    let targets: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&a, &b)| a.sin() + 0.5 * b * b)
        .collect();
    let x = Tensor::new(inputs, &Device::Cpu)?
        .to_dtype(DType::F32)?
        .reshape((n, 2))?;
    let y = Tensor::new(targets, &Device::Cpu)?
        .to_dtype(DType::F32)?
        .reshape((n, 1))?;
    Ok((x, y))
}

fn mse(model: &Mlp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    (model.forward(x)? - y)?.sqr()?.mean_all()
}

#[test]
fn a_model_with_a_learnable_polynomial_trains_and_round_trips_through_a_varmap() -> Result<()> {
    let (x, y) = toy_regression()?;
    let mut varmap = VarMap::new();
    let model = Mlp::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    seed_linear_weights(&mut varmap, 40)?;
    let initial_coefficients = model.act.coefficients()?.to_vec1::<f32>()?;

    let params = ParamsAdamW {
        lr: 0.02,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let initial = mse(&model, &x, &y)?.to_scalar::<f32>()?;
    for _ in 0..50 {
        opt.backward_step(&mse(&model, &x, &y)?)?;
    }
    let last = mse(&model, &x, &y)?.to_scalar::<f32>()?;
    assert!(last.is_finite());
    assert!(last < 0.25 * initial, "loss {initial} -> {last}");
    let trained = model.act.coefficients()?.to_vec1::<f32>()?;
    let moved = trained
        .iter()
        .zip(&initial_coefficients)
        .filter(|(a, b)| (**a - **b).abs() > 1e-4)
        .count();
    assert_eq!(
        moved,
        trained.len(),
        "every coefficient should be trained: {trained:?}"
    );

    // Save, load into a fresh VarMap, same outputs.
    let path = std::env::temp_dir().join(format!(
        "polyact-nn-test-{}.safetensors",
        std::process::id()
    ));
    varmap.save(&path)?;
    let mut fresh = VarMap::new();
    let reloaded = Mlp::new(VarBuilder::from_varmap(&fresh, DType::F32, &Device::Cpu))?;
    let before = values(&reloaded.forward(&x)?)?;
    fresh.load(&path)?;
    std::fs::remove_file(&path).ok();
    let expected = values(&model.forward(&x)?)?;
    assert!(
        before
            .iter()
            .zip(&expected)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "the fresh model should differ before loading"
    );
    assert_close(
        &values(&reloaded.forward(&x)?)?,
        &expected,
        EXACT,
        "reloaded model",
    );
    let reloaded_coefficients = values(&reloaded.act.coefficients()?)?;
    let trained: Vec<f64> = trained.iter().map(|&c| f64::from(c)).collect();
    assert_close(
        &reloaded_coefficients,
        &trained,
        EXACT,
        "reloaded coefficients",
    );
    Ok(())
}

#[test]
fn tensor_activation_is_usable_directly_and_boxed() -> Result<()> {
    let x = tensor(&[-1.0, 0.5, 2.0], DType::F64)?;
    let boxed: Vec<Box<dyn TensorActivation>> =
        vec![Box::new(Tanh), Box::new(Elementwise::new(Bump))];
    for act in &boxed {
        let y = values(&act.forward(&x)?)?;
        let expected: Vec<f64> = [-1.0, 0.5, 2.0]
            .iter()
            .map(|&v| Activation::<f64>::eval(act.as_ref(), v))
            .collect();
        assert_close(
            &y,
            &expected,
            F64_TOL,
            Activation::<f64>::name(act.as_ref()),
        );
    }
    Ok(())
}

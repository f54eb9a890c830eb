//! Every built-in `TensorActivation` against the scalar `Activation` trait (the oracle) where
//! tensor formulations usually break: ±∞, NaN, signed zeros, tiny inputs, the far negative tails
//! and large positive inputs; values and autograd gradients, in `f32` and `f64` on the CPU.
#![cfg(feature = "candle")]

use approx::relative_eq;
use candle_core::{DType, Device, Result, Tensor, Var};
use polyact::nn::{Act, Elementwise, TensorActivation};
use polyact::registry::Builtin;
use polyact::{
    Activation, Gelu, Identity, Mish, Relu, Sigmoid, Silu, Softplus, Softsign, Square, Tanh,
};

/// `|a − b| ≤ abs` or `|a − b| ≤ rel · max(|a|, |b|)`; NaN matches NaN only, ±∞ its own sign.
#[derive(Debug, Clone, Copy)]
struct Tol {
    abs: f64,
    rel: f64,
}

/// `f64` through a handful of rounded ops, each input well conditioned (ε = 2.2e-16): 1e-12
/// relative. The absolute floor is the smallest normal `f64`: below it the oracle's and the
/// tensor's results are subnormal or flushed, and have no relative accuracy to compare.
const F64_TOL: Tol = Tol {
    abs: f64::MIN_POSITIVE,
    rel: 1e-12,
};
/// `f32` through a handful of rounded ops (ε = 1.2e-7): 4e-6 relative (about 32 ulp); the
/// absolute floor is the smallest normal `f32`, for the same reason.
const F32_TOL: Tol = Tol {
    abs: f32::MIN_POSITIVE as f64,
    rel: 4e-6,
};

/// candle's own sigmoid and tanh (kept as they are: the MNIST study trains with them)
/// differentiate through their output, `y(1 − y)` and `1 − y²`. Where `y` rounds to ±1 that is
/// 0 instead of a tiny positive number: an absolute error of at most a few ε of the dtype,
/// not a relative one.
const fn output_based_gradient(dtype_eps: f64) -> Tol {
    Tol {
        abs: 4.0 * dtype_eps,
        rel: 4.0 * dtype_eps,
    }
}

/// The inputs: every special value, both zeros, tiny, moderate, the negative tails down to
/// where every function has underflowed, and large positives.
const POINTS: [f64; 38] = [
    f64::NEG_INFINITY,
    f64::INFINITY,
    f64::NAN,
    // Where e^-x overflows in f16, f32, f64 while silu(x) is still a normal number.
    -11.5,
    -90.0,
    -710.0,
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-7,
    -1e-7,
    0.5,
    -0.5,
    1.0,
    -1.0,
    2.5,
    -2.5,
    -4.0,
    -6.0,
    -8.0,
    -10.0,
    -15.0,
    -20.0,
    -30.0,
    -40.0,
    -100.0,
    -700.0,
    -1e4,
    5.0,
    10.0,
    20.0,
    40.0,
    100.0,
    700.0,
    1e4,
    1e30,
    -1e30,
];

/// Every built-in activation, by its registry text, as its typed value (both precisions).
fn builtins() -> Vec<(String, Box<dyn TensorActivation>)> {
    let texts = [
        "sigmoid",
        "relu",
        "tanh",
        "softplus",
        "gelu",
        "silu",
        "mish",
        "softsign",
        "identity",
        "square",
        "elu",
        "elu:0.5",
        "elu:0",
        "leaky_relu",
        "leaky_relu:0.2",
        "leaky_relu:0",
    ];
    texts
        .iter()
        .map(|&text| {
            let builtin: Builtin = text.parse().expect("a registry name");
            let typed: Box<dyn TensorActivation> = match builtin {
                Builtin::Sigmoid => Box::new(Sigmoid),
                Builtin::Relu => Box::new(Relu),
                Builtin::Tanh => Box::new(Tanh),
                Builtin::Softplus => Box::new(Softplus),
                Builtin::Gelu => Box::new(Gelu),
                Builtin::Silu => Box::new(Silu),
                Builtin::Mish => Box::new(Mish),
                Builtin::Softsign => Box::new(Softsign),
                Builtin::Identity => Box::new(Identity),
                Builtin::Square => Box::new(Square),
                Builtin::Elu(a) => Box::new(a),
                Builtin::LeakyRelu(a) => Box::new(a),
                other => panic!("a new built-in activation, {other}: add it to this test"),
            };
            // The layer the registry builds is this activation.
            assert_eq!(
                Act::from(builtin).name(),
                Activation::<f64>::name(typed.as_ref())
            );
            (text.to_string(), typed)
        })
        .collect()
}

/// Every other `TensorActivation` polyact provides: the fused scalar wrapper.
fn wrappers() -> Vec<(String, Box<dyn TensorActivation>)> {
    vec![
        (
            "elementwise(softplus)".into(),
            Box::new(Elementwise::new(Softplus)),
        ),
        ("elementwise(gelu)".into(), Box::new(Elementwise::new(Gelu))),
    ]
}

/// candle's `gelu_erf`, which GELU's tensor-op form (devices other than the CPU) uses: its
/// gradient is candle's composite `½ + ½·erf(x/√2) + 0.398942·x·e^{−x²/2}`, whose six-digit
/// constant costs up to about 2e-7 in absolute terms in every dtype, and which has no relative
/// accuracy in the negative tail.
const CANDLE_GELU_GRADIENT: Tol = Tol {
    abs: 2e-6,
    rel: 2e-6,
};

/// The tolerance for `what` ("value" or "gradient") of `name` in `dtype` on `device`.
fn tolerance(name: &str, dtype: DType, what: &str, device: &Device) -> Tol {
    let (tol, eps) = match dtype {
        DType::F64 => (F64_TOL, f64::EPSILON),
        _ => (F32_TOL, f64::from(f32::EPSILON)),
    };
    match (name, what) {
        ("sigmoid" | "tanh", "gradient") => output_based_gradient(eps),
        ("gelu", "gradient") if !device.is_cpu() => CANDLE_GELU_GRADIENT,
        _ => tol,
    }
}

fn close(actual: f64, expected: f64, tol: Tol) -> bool {
    if expected.is_nan() || actual.is_nan() {
        return expected.is_nan() && actual.is_nan();
    }
    relative_eq!(actual, expected, epsilon = tol.abs, max_relative = tol.rel)
}

/// `f(x)` and `f'(x)` (by autograd) for every point, as `f64`.
fn value_and_gradient(act: &dyn TensorActivation, x: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    let var = Var::from_tensor(x)?;
    let y = act.forward(var.as_tensor())?;
    let grads = y.sum_all()?.backward()?;
    let dx = grads.get(&var).expect("the input is a variable");
    Ok((
        y.to_dtype(DType::F64)?.to_vec1()?,
        dx.to_dtype(DType::F64)?.to_vec1()?,
    ))
}

/// The oracle in `dtype`: the `f64` scalar result at the (exactly representable) input,
/// rounded to `dtype`, so overflow to ∞ and underflow to 0 happen as in that dtype.
fn oracle(f: impl Fn(f64) -> f64, x: f64, dtype: DType) -> f64 {
    let y = f(x);
    match dtype {
        DType::F32 => f64::from(y as f32),
        _ => y,
    }
}

/// Where a built-in knowingly differs from its scalar form, and why; `None` elsewhere.
///
/// Relu is candle's own op, kept as it is (the MNIST study trains with it): candle computes it
/// as `max(x, 0)` with the NaN-dropping max of Rust and CUDA, and takes its gradient at 0 as 1
/// (polyact's scalar form takes the left derivative, 0).
fn known_deviation(name: &str, x: f64, what: &str) -> Option<&'static str> {
    match (name, what) {
        ("relu", "value") if x.is_nan() => Some("candle's relu(NaN) is 0"),
        ("relu", "gradient") if x.abs() < f64::MIN_POSITIVE => {
            Some("candle's relu has gradient 1 at 0")
        }
        _ => None,
    }
}

/// The mismatches of one activation in one dtype, one line each. The gradient at a NaN input
/// is not compared: the value is NaN (which is compared), and so is any loss built on it.
fn mismatches(
    name: &str,
    act: &dyn TensorActivation,
    dtype: DType,
    device: &Device,
) -> Result<Vec<String>> {
    let x = Tensor::new(&POINTS, device)?.to_dtype(dtype)?;
    let inputs: Vec<f64> = x.to_dtype(DType::F64)?.to_vec1()?;
    let (ys, dys) = value_and_gradient(act, &x)?;
    let mut out = Vec::new();
    for (i, &xi) in inputs.iter().enumerate() {
        let checks = [
            (
                "value",
                ys[i],
                oracle(|v| Activation::<f64>::eval(act, v), xi, dtype),
            ),
            (
                "gradient",
                dys[i],
                oracle(|v| Activation::<f64>::derivative(act, v), xi, dtype),
            ),
        ];
        for (what, got, expected) in checks {
            if (what == "gradient" && xi.is_nan()) || known_deviation(name, xi, what).is_some() {
                continue;
            }
            let tol = tolerance(name, dtype, what, device);
            if !close(got, expected, tol) {
                out.push(format!(
                    "{name} {dtype:?} {what} at {xi:e}: got {got:e}, expected {expected:e}"
                ));
            }
        }
    }
    Ok(out)
}

#[test]
fn every_builtin_matches_the_scalar_oracle_at_the_edges() -> Result<()> {
    let mut failures = Vec::new();
    for (name, act) in builtins().into_iter().chain(wrappers()) {
        let base = name.split(':').next().unwrap_or(&name).to_string();
        for dtype in [DType::F64, DType::F32] {
            failures.extend(mismatches(&base, act.as_ref(), dtype, &Device::Cpu)?);
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// The built-ins on strided views, empty tensors, the half types and integer tensors: a view
/// gives its contiguous copy's result (the same arithmetic), an empty tensor an empty one, the
/// half types their dtype back, integers an error rather than a panic (polyact's own forms).
#[test]
fn every_builtin_takes_any_layout_and_refuses_integers() -> Result<()> {
    let base: Vec<f64> = (0..60).map(|i| -30.0 + f64::from(i)).collect();
    let x = Tensor::new(base.as_slice(), &Device::Cpu)?.reshape((6, 10))?;
    let views = [
        x.t()?,
        x.narrow(1, 2, 5)?,
        x.narrow(0, 1, 1)?.broadcast_as((4, 10))?,
    ];
    let empty = Tensor::zeros((0, 3), DType::F32, &Device::Cpu)?;
    let ints = Tensor::new(&[1_u32, 2], &Device::Cpu)?;
    for (name, act) in builtins().into_iter().chain(wrappers()) {
        for view in &views {
            assert!(!view.is_contiguous());
            let strided: Vec<f64> = act.forward(view)?.flatten_all()?.to_vec1()?;
            let contiguous: Vec<f64> =
                act.forward(&view.contiguous()?)?.flatten_all()?.to_vec1()?;
            for (s, c) in strided.iter().zip(&contiguous) {
                assert!(
                    close(*s, *c, Tol { abs: 0.0, rel: 0.0 }),
                    "{name}: {s} vs {c}"
                );
            }
        }
        assert_eq!(act.forward(&empty)?.dims(), &[0, 3], "{name}");
        for dtype in [DType::F16, DType::BF16] {
            assert_eq!(act.forward(&x.to_dtype(dtype)?)?.dtype(), dtype, "{name}");
        }
        // candle's own tanh panics on integers (`todo!` in candle 0.11), its relu is the
        // identity there, and identity and square are defined on integers.
        if !matches!(name.as_str(), "tanh" | "relu" | "identity" | "square") {
            assert!(act.forward(&ints).is_err(), "{name} on u32");
        }
    }
    Ok(())
}

/// The same checks on a CUDA device, where the built-ins run their tensor-op forms rather than
/// the CPU's fused op. `tests/cuda.rs` includes this file, so the GPU check runs it; where no
/// device opens it prints why and checks nothing.
#[cfg(feature = "cuda")]
#[test]
fn every_builtin_matches_the_scalar_oracle_on_a_gpu() -> Result<()> {
    let device = match Device::new_cuda(0) {
        Ok(device) => device,
        Err(e) => {
            eprintln!(
                "SKIPPED every_builtin_matches_the_scalar_oracle_on_a_gpu: no CUDA device ({e})"
            );
            return Ok(());
        }
    };
    let mut failures = Vec::new();
    // `Elementwise` calls Rust code on the host and refuses CUDA tensors: built-ins only.
    for (name, act) in builtins() {
        let base = name.split(':').next().unwrap_or(&name).to_string();
        for dtype in [DType::F64, DType::F32] {
            failures.extend(mismatches(&base, act.as_ref(), dtype, &device)?);
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches on the GPU:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

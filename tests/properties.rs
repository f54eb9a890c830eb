//! One property checker run over every built-in activation (and a polynomial): derivative against
//! finite differences, f32 against f64, stability for large inputs, ±∞ and NaN behaviour, slice
//! evaluation against scalar evaluation, and values against independent closed forms.

use polyact::{
    Activation, Elu, Gelu, Identity, LeakyRelu, Mish, Real, Relu, Sigmoid, Silu, Softplus,
    Softsign, Square, Tanh, presets,
};

/// Relative tolerance of the central finite difference with step `FD_STEP` in f64.
const FD_TOLERANCE: f64 = 1e-6;
const FD_STEP: f64 = 1e-5;
/// f32 results may differ from f64 by a few units in the last place of f32.
const F32_ULPS: f64 = 8.0 * f32::EPSILON as f64;

/// Every activation under test, with whether it has a kink at 0.
fn activations<T: Real>() -> Vec<(Box<dyn Activation<T>>, bool)> {
    vec![
        (Box::new(Sigmoid), false),
        (Box::new(Tanh), false),
        (Box::new(Softplus), false),
        (Box::new(Gelu), false),
        (Box::new(Silu), false),
        (Box::new(Mish), false),
        (Box::new(Identity), false),
        (Box::new(Square), false),
        (Box::new(Relu), true),
        (Box::new(LeakyRelu::new(0.01).unwrap()), true),
        (Box::new(Elu::new(1.0).unwrap()), true),
        (Box::new(Elu::new(0.5).unwrap()), true),
        (Box::new(Softsign), true),
        (Box::new(presets::m_sigmoid()), false),
    ]
}

fn grid(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    (0..=n).map(move |i| lo + (hi - lo) * i as f64 / n as f64)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn derivative_matches_central_finite_difference() {
    for (f, kink) in activations::<f64>() {
        for x in grid(-6.0, 6.0, 240) {
            if kink && x.abs() < 1e-3 {
                continue;
            }
            let fd = (f.eval(x + FD_STEP) - f.eval(x - FD_STEP)) / (2.0 * FD_STEP);
            let d = f.derivative(x);
            assert!(
                close(d, fd, FD_TOLERANCE),
                "{}: f'({x}) = {d}, finite difference {fd}",
                f.name()
            );
        }
    }
}

#[test]
fn f32_agrees_with_f64() {
    let f32s = activations::<f32>();
    let f64s = activations::<f64>();
    for ((a, _), (b, _)) in f32s.iter().zip(&f64s) {
        for x in grid(-20.0, 20.0, 400).chain([-1e4, -300.0, 300.0, 1e4]) {
            let x32 = x as f32;
            let want = b.eval(f64::from(x32));
            let got = f64::from(a.eval(x32));
            assert!(
                close(got, want, F32_ULPS) || (got - want).abs() < 1e-30,
                "{}({x}): f32 {got}, f64 {want}",
                a.name()
            );
            let want = b.derivative(f64::from(x32));
            let got = f64::from(a.derivative(x32));
            assert!(
                close(got, want, F32_ULPS) || (got - want).abs() < 1e-30,
                "{}'({x}): f32 {got}, f64 {want}",
                a.name()
            );
        }
    }
}

fn large_inputs_stay_finite<T: Real>() {
    for (f, _) in activations::<T>() {
        if matches!(f.name(), "square" | "polynomial") {
            continue; // grow without bound by design; f32 overflows for x⁵ at 1e4
        }
        for x in [-1e4, -1e3, -100.0, 100.0, 1e3, 1e4] {
            let y = f.eval(T::of(x));
            let d = f.derivative(T::of(x));
            assert!(y.is_finite(), "{}({x}) = {y} is not finite", f.name());
            assert!(d.is_finite(), "{}'({x}) = {d} is not finite", f.name());
        }
    }
}

#[test]
fn large_inputs_stay_finite_f32() {
    large_inputs_stay_finite::<f32>();
}

#[test]
fn large_inputs_stay_finite_f64() {
    large_inputs_stay_finite::<f64>();
}

fn nan_in_nan_out<T: Real>() {
    for (f, _) in activations::<T>() {
        assert!(f.eval(T::nan()).is_nan(), "{}(NaN) is not NaN", f.name());
        assert!(
            f.derivative(T::nan()).is_nan(),
            "{}'(NaN) is not NaN",
            f.name()
        );
    }
}

#[test]
fn nan_in_nan_out_f32() {
    nan_in_nan_out::<f32>();
}

#[test]
fn nan_in_nan_out_f64() {
    nan_in_nan_out::<f64>();
}

#[test]
fn infinities_give_the_limits() {
    for (f, _) in activations::<f64>() {
        for (inf, far) in [(f64::INFINITY, 1e150), (f64::NEG_INFINITY, -1e150)] {
            let y = f.eval(inf);
            assert!(!y.is_nan(), "{}({inf}) is NaN", f.name());
            let limit = f.eval(far);
            if limit.abs() < 1e100 {
                assert!(
                    close(y, limit, 1e-12),
                    "{}({inf}) = {y}, limit {limit}",
                    f.name()
                );
            } else {
                assert!(
                    y.is_infinite() && y.signum() == limit.signum(),
                    "{}({inf}) = {y}",
                    f.name()
                );
            }
        }
    }
}

#[test]
fn values_match_closed_forms() {
    // Reference values computed independently with Python's math module (erfc, log1p, tanh).
    let cases: [(&dyn Activation<f64>, f64, f64); 12] = [
        (&Sigmoid, 1.0, 0.7310585786300049),
        (&Sigmoid, -30.0, 9.357622968839299e-14),
        (&Tanh, 0.5, 0.46211715726000974),
        (&Softplus, 1.0, 1.3132616875182228),
        (&Softplus, -40.0, 4.248354255291589e-18),
        (&Gelu, 1.0, 0.8413447460685429),
        (&Gelu, -10.0, -7.619853024160527e-23),
        (&Silu, 1.0, 0.7310585786300049),
        (&Mish, 1.0, 0.8650983882673103),
        (&Softsign, -3.0, -0.75),
        (&Relu, -3.0, 0.0),
        (&Identity, -3.0, -3.0),
    ];
    for (f, x, want) in cases {
        let got = f.eval(x);
        assert!(
            (got - want).abs() <= 1e-14 * want.abs().max(1e-300) || (got - want).abs() < 1e-300,
            "{}({x}) = {got:e}, want {want:e}",
            f.name()
        );
    }
    let elu = Elu::new(1.0).unwrap();
    assert!((Activation::<f64>::eval(&elu, -1.0) - (-0.6321205588285577)).abs() < 1e-15);
}

fn slices_match_scalars<T: Real>() {
    let xs: Vec<T> = grid(-5.0, 5.0, 1030).map(T::of).collect();
    let mut out = vec![T::zero(); xs.len()];
    for (f, _) in activations::<T>() {
        f.eval_slice(&xs, &mut out);
        for (&x, &y) in xs.iter().zip(&out) {
            let want = f.eval(x);
            assert!(
                (y - want).abs() <= T::of(1e-6) * want.abs().max(T::one()),
                "{} slice({x}) = {y}, scalar {want}",
                f.name()
            );
        }
        let mut in_place = xs.clone();
        f.eval_in_place(&mut in_place);
        for (a, b) in in_place.iter().zip(&out) {
            assert!(
                (*a - *b).abs() <= T::of(1e-6) * b.abs().max(T::one()),
                "{}",
                f.name()
            );
        }
        f.derivative_slice(&xs, &mut out);
        for (&x, &d) in xs.iter().zip(&out) {
            let want = f.derivative(x);
            assert!(
                (d - want).abs() <= T::of(1e-6) * want.abs().max(T::one()),
                "{} derivative slice({x})",
                f.name()
            );
        }
    }
}

#[test]
fn slices_match_scalars_f32() {
    slices_match_scalars::<f32>();
}

#[test]
fn slices_match_scalars_f64() {
    slices_match_scalars::<f64>();
}

#[test]
fn output_based_derivatives_agree_with_input_based() {
    for x in grid(-8.0, 8.0, 64) {
        let d = Activation::<f64>::derivative(&Sigmoid, x);
        assert!((Sigmoid::derivative_from_output(Sigmoid.eval(x)) - d).abs() < 1e-15);
        let d = Activation::<f64>::derivative(&Tanh, x);
        assert!((Tanh::derivative_from_output(Tanh.eval(x)) - d).abs() < 1e-15);
    }
}

#[test]
fn parameters_are_validated_at_construction() {
    for bad in [f64::NAN, f64::INFINITY, -0.5] {
        assert!(Elu::new(bad).is_err(), "Elu::new({bad})");
        assert!(LeakyRelu::new(bad).is_err(), "LeakyRelu::new({bad})");
    }
    let message = Elu::new(-1.0).unwrap_err().to_string();
    assert!(
        message.contains("alpha") && message.contains("non-negative"),
        "{message}"
    );
    assert!(LeakyRelu::new(0.0).is_ok());
}

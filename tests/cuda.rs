//! polyact's CUDA ops against the same ops on the CPU: values and gradients (through candle's
//! autograd), every dtype, contiguous, strided and empty tensors, with and without clamping.
//!
//! Feature `cuda` only; where no CUDA device can be opened every test prints why on stderr and
//! passes without checking anything, so builds without a GPU stay green. One ignored test is the
//! GPU benchmark of `docs/cuda.md`: `cargo test --features cuda --test cuda -- --ignored
//! --nocapture bench_` (it prints timings and asserts nothing).
#![cfg(feature = "cuda")]

use std::time::Instant;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use polyact::Polynomial;
use polyact::nn::{Guarded, LearnablePoly, PolyAct, out_of_range};

/// The built-in activations against their scalar forms, on the CPU and (its last test) on the
/// GPU, where they run as tensor-op forms: included here so that the GPU check runs them.
#[path = "nn_tails.rs"]
mod nn_tails;

/// The GPU, or `None` after printing why the calling test checks nothing.
fn gpu(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("SKIPPED {test}: no CUDA device could be opened ({e})");
            None
        }
    }
}

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

/// Relative tolerance between the CPU and the GPU kernels, against the size of the terms added
/// (see [`assert_close`]): both compute in the same precision with fused multiply-adds, so only
/// a few roundings differ (the derivative's coefficients, the order of a sum, the final
/// rounding to a half type).
fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 2e-5,
        DType::F16 => 4e-3,
        _ => 3e-2,
    }
}

/// The values of `t` (any float dtype, any device) as `f64`, in logical order.
fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()
}

/// `Σ_k |c_k|·|x|^k` for each `x` (with `derivative`, `Σ_k k·|c_k|·|x|^(k−1)`): the size of the
/// terms Horner's rule adds, which bounds its rounding error (times the weights, all `≤ 1`).
fn term_bound(coefficients: &[f64], xs: &[f64], derivative: bool) -> Vec<f64> {
    xs.iter()
        .map(|x| {
            let mut sum = 0.0;
            for (k, c) in coefficients.iter().enumerate() {
                sum += match (derivative, k) {
                    (false, _) => c.abs() * x.abs().powi(k as i32),
                    (true, 0) => 0.0,
                    (true, _) => k as f64 * c.abs() * x.abs().powi(k as i32 - 1),
                };
            }
            sum
        })
        .collect()
}

/// Fails unless `gpu` matches `cpu` elementwise within `tol · max(1, |cpu|, scale)`, NaN
/// matching NaN and infinities matching infinities of the same sign; `scale` holds one bound
/// per element, or one for all.
fn assert_close(cpu: &Tensor, gpu: &Tensor, tol: f64, scale: &[f64], what: &str) -> Result<()> {
    assert_eq!(cpu.dims(), gpu.dims(), "{what}: shapes differ");
    assert!(
        gpu.device().is_cuda(),
        "{what}: the GPU result is not on the GPU"
    );
    let (c, g) = (values(cpu)?, values(gpu)?);
    for (i, (c, g)) in c.iter().zip(&g).enumerate() {
        let bound = if scale.len() == 1 { scale[0] } else { scale[i] };
        let ok = if c.is_nan() || g.is_nan() {
            c.is_nan() && g.is_nan()
        } else if c.is_infinite() || g.is_infinite() {
            // An overflow of a half type (a sum of x⁴ in f16) must happen on both devices.
            c.is_infinite() && g.is_infinite() && (*c > 0.0) == (*g > 0.0)
        } else {
            (c - g).abs() <= tol * c.abs().max(bound).max(1.0)
        };
        assert!(
            ok,
            "{what}: element {i}: cpu {c}, gpu {g} (tolerance {tol})"
        );
    }
    Ok(())
}

/// `n` points evenly spaced on `[lo, hi]`, both ends included.
fn grid(n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

/// A tensor of `values` in `dtype` on the CPU and the same (rounded) values on `gpu`.
fn pair(values: Vec<f64>, shape: &[usize], dtype: DType, gpu: &Device) -> Result<[Tensor; 2]> {
    let cpu = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?;
    let on_gpu = cpu.to_device(gpu)?;
    Ok([cpu, on_gpu])
}

/// The ways the tests present an input to a layer, from a variable `base` of shape `[33, 64]`.
#[derive(Debug, Clone, Copy)]
enum View {
    /// `base` itself.
    Contiguous,
    /// `base.t()`: strides `[1, 64]`.
    Transposed,
    /// `base.t().narrow(1, 3, 20)`: strided with a start offset.
    Narrowed,
}

const VIEWS: [View; 3] = [View::Contiguous, View::Transposed, View::Narrowed];

fn view(base: &Tensor, v: View) -> Result<Tensor> {
    match v {
        View::Contiguous => Ok(base.clone()),
        View::Transposed => base.t(),
        View::Narrowed => base.t()?.narrow(1, 3, 20),
    }
}

/// The two losses: `Σ y` (candle hands the op a broadcast, stride-0 gradient) and `Σ w · y`
/// (a contiguous gradient that differs per element).
fn losses(y: &Tensor) -> Result<[Tensor; 2]> {
    let n = y.elem_count();
    let w: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).cos()).collect();
    let w = Tensor::from_vec(w, y.dims(), &Device::Cpu)?
        .to_dtype(y.dtype())?
        .to_device(y.device())?;
    Ok([y.sum_all()?, (y * w)?.sum_all()?])
}

/// Forward value and, per loss, the gradient with respect to the base variable.
fn run(layer: &dyn Module, base: &Var, v: View) -> Result<(Tensor, Vec<Tensor>)> {
    let y = layer.forward(&view(base.as_tensor(), v)?)?;
    let mut grads = Vec::new();
    for loss in losses(&y)? {
        let store = loss.backward()?;
        let grad = store.get(base.as_tensor()).expect("the base is a variable");
        grads.push(grad.clone());
    }
    Ok((y, grads))
}

/// A `[33, 64]` input: 2112 points on `[-8, 8]` (not a multiple of a block of 256), none exactly
/// on `±4`, so that no value sits on a clamp boundary by accident; the boundaries themselves are
/// checked by `clamp_ends_and_nan_match_the_cpu`.
fn base_values() -> Vec<f64> {
    grid(33 * 64, -8.0, 8.0)
}

fn poly_layers() -> Result<Vec<(&'static str, PolyAct)>> {
    let poly = polyact::presets::m_sigmoid()
        .with_domain(-4.0..=4.0)
        .map_err(candle_core::Error::wrap)?;
    let clamped = PolyAct::new(&poly)
        .with_clamp()
        .map_err(candle_core::Error::wrap)?;
    Ok(vec![
        ("unclamped", PolyAct::new(&poly)),
        ("clamped", clamped),
    ])
}

#[test]
fn poly_act_matches_the_cpu_per_dtype_layout_and_clamp() -> Result<()> {
    let Some(gpu) = gpu("poly_act_matches_the_cpu_per_dtype_layout_and_clamp") else {
        return Ok(());
    };
    for dtype in DTYPES {
        let [xc, xg] = pair(base_values(), &[33, 64], dtype, &gpu)?;
        let (bc, bg) = (Var::from_tensor(&xc)?, Var::from_tensor(&xg)?);
        for (name, layer) in poly_layers()? {
            let coefficients = layer.polynomial().coefficients_f64();
            let grad_bound = term_bound(&coefficients, &values(&xc)?, true);
            for v in VIEWS {
                let what = format!("PolyAct {name} {dtype:?} {v:?}");
                let value_bound = term_bound(&coefficients, &values(&view(&xc, v)?)?, false);
                let (yc, gc) = run(&layer, &bc, v)?;
                let (yg, gg) = run(&layer, &bg, v)?;
                let tol = tolerance(dtype);
                assert_close(&yc, &yg, tol, &value_bound, &format!("{what} value"))?;
                for (k, (gc, gg)) in gc.iter().zip(&gg).enumerate() {
                    assert_close(gc, gg, tol, &grad_bound, &format!("{what} gradient {k}"))?;
                }
            }
        }
    }
    Ok(())
}

/// A learnable layer and its variable map on `device`, coefficients in `dtype`.
fn learnable(poly: &Polynomial, dtype: DType, device: &Device) -> Result<(LearnablePoly, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    Ok((LearnablePoly::new(poly, vb.pp("act"))?, varmap))
}

/// The coefficient gradients of `loss` for the variables of `varmap`, in order `c0, c1, …`.
fn coefficient_grads(
    varmap: &VarMap,
    store: &candle_core::backprop::GradStore,
) -> Result<Vec<Tensor>> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort_by_key(|n| {
        n.trim_start_matches("act.c")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    Ok(names
        .into_iter()
        .map(|n| {
            let var = &data[n];
            store.get(var.as_tensor()).expect("trained").clone()
        })
        .collect())
}

/// Compares a learnable layer's value, input gradients and coefficient gradients.
fn compare_learnable(poly: &Polynomial, clamp: bool, inputs: Vec<f64>, what: &str) -> Result<()> {
    let Some(gpu) = gpu(what) else {
        return Ok(());
    };
    for dtype in DTYPES {
        let (lc, mc) = learnable(poly, dtype, &Device::Cpu)?;
        let (lg, mg) = learnable(poly, dtype, &gpu)?;
        let (lc, lg) = if clamp {
            let c = |l: LearnablePoly| l.with_clamp().map_err(candle_core::Error::wrap);
            (c(lc)?, c(lg)?)
        } else {
            (lc, lg)
        };
        let [xc, xg] = pair(inputs.clone(), &[33, 64], dtype, &gpu)?;
        let (bc, bg) = (Var::from_tensor(&xc)?, Var::from_tensor(&xg)?);
        let coefficients = poly.coefficients_f64();
        let xs = values(&xc)?;
        let grad_bound = term_bound(&coefficients, &xs, true);
        // Coefficient k's gradient adds up terms of size at most |x|^k.
        let sum_bounds: Vec<f64> = (0..coefficients.len().max(1))
            .map(|k| xs.iter().map(|x| x.abs().powi(k as i32)).sum())
            .collect();
        let tol = tolerance(dtype);
        for v in VIEWS {
            let what = format!("{what} {dtype:?} {v:?}");
            let value_bound = term_bound(&coefficients, &values(&view(&xc, v)?)?, false);
            let (yc, yg) = (
                lc.forward(&view(bc.as_tensor(), v)?)?,
                lg.forward(&view(bg.as_tensor(), v)?)?,
            );
            assert_close(&yc, &yg, tol, &value_bound, &format!("{what} value"))?;
            for (k, (sc, sg)) in losses(&yc)?.iter().zip(losses(&yg)?).enumerate() {
                let (sc, sg) = (sc.backward()?, sg.backward()?);
                let (dc, dg) = (sc.get(bc.as_tensor()), sg.get(bg.as_tensor()));
                let (dc, dg) = (dc.expect("input grad"), dg.expect("input grad"));
                assert_close(dc, dg, tol, &grad_bound, &format!("{what} dx {k}"))?;
                let (cc, cg) = (coefficient_grads(&mc, &sc)?, coefficient_grads(&mg, &sg)?);
                assert_eq!(cc.len(), poly.coefficients_f64().len().max(1));
                for (j, (cc, cg)) in cc.iter().zip(&cg).enumerate() {
                    let bound = [sum_bounds[j]];
                    assert_close(cc, cg, tol, &bound, &format!("{what} dc{j} loss {k}"))?;
                }
            }
        }
    }
    Ok(())
}

#[test]
fn learnable_poly_matches_the_cpu_per_dtype_layout_and_clamp() -> Result<()> {
    let poly = polyact::presets::m_tanh()
        .with_domain(-4.0..=4.0)
        .map_err(candle_core::Error::wrap)?;
    compare_learnable(&poly, false, base_values(), "learnable unclamped")?;
    compare_learnable(&poly, true, base_values(), "learnable clamped")
}

#[test]
fn learnable_poly_of_degree_above_one_launch_chunk_matches_the_cpu() -> Result<()> {
    // 40 coefficients: the coefficient gradients take two launches of 32 and 8.
    let coefficients: Vec<f64> = (0..40).map(|k| 1.0 / (k as f64 + 1.0)).collect();
    let poly = Polynomial::from_f64(&coefficients);
    compare_learnable(
        &poly,
        false,
        grid(33 * 64, -1.0, 1.0),
        "learnable degree 39",
    )
}

#[test]
fn clamp_ends_and_nan_match_the_cpu() -> Result<()> {
    let Some(gpu) = gpu("clamp_ends_and_nan_match_the_cpu") else {
        return Ok(());
    };
    let poly = polyact::presets::m_relu()
        .with_domain(-1.5..=2.0)
        .map_err(candle_core::Error::wrap)?;
    let layer = PolyAct::new(&poly)
        .with_clamp()
        .map_err(candle_core::Error::wrap)?;
    let xs = vec![-3.0, -1.5, -1.0, 0.0, 2.0, 2.5, f64::NAN, f64::INFINITY];
    for dtype in DTYPES {
        let [xc, xg] = pair(xs.clone(), &[8], dtype, &gpu)?;
        let (bc, bg) = (Var::from_tensor(&xc)?, Var::from_tensor(&xg)?);
        let (yc, gc) = run(&layer, &bc, View::Contiguous)?;
        let (yg, gg) = run(&layer, &bg, View::Contiguous)?;
        let what = format!("clamp ends {dtype:?}");
        let coefficients = poly.coefficients_f64();
        let clamped: Vec<f64> = xs.iter().map(|x| x.clamp(-1.5, 2.0)).collect();
        let (value_bound, grad_bound) = (
            term_bound(&coefficients, &clamped, false),
            term_bound(&coefficients, &clamped, true),
        );
        let tol = tolerance(dtype);
        assert_close(&yc, &yg, tol, &value_bound, &format!("{what} value"))?;
        assert_close(
            &gc[0],
            &gg[0],
            tol,
            &grad_bound,
            &format!("{what} gradient"),
        )?;
        // The ends are inside (gradient kept), the outside has gradient zero: as on the CPU.
        let g = values(&gg[0])?;
        assert!(
            g[1].abs() > 0.0 && g[4].abs() > 0.0,
            "{what}: ends keep their gradient"
        );
        assert!(
            g[0].abs() < 1e-300 && g[5].abs() < 1e-300,
            "{what}: outside is zero"
        );
    }
    Ok(())
}

#[test]
fn empty_tensors_launch_nothing_and_keep_their_shape() -> Result<()> {
    let Some(gpu) = gpu("empty_tensors_launch_nothing_and_keep_their_shape") else {
        return Ok(());
    };
    let poly = polyact::presets::m_sigmoid();
    for dtype in DTYPES {
        let x = Var::from_tensor(&Tensor::zeros((0, 5), dtype, &gpu)?)?;
        let y = PolyAct::new(&poly).forward(x.as_tensor())?;
        assert_eq!(y.dims(), [0, 5]);
        let grads = y.sum_all()?.backward()?;
        assert_eq!(
            grads.get(x.as_tensor()).expect("x is a variable").dims(),
            [0, 5]
        );

        let (layer, varmap) = learnable(&poly, dtype, &gpu)?;
        let y = layer.forward(x.as_tensor())?;
        assert_eq!(y.dims(), [0, 5]);
        let store = y.sum_all()?.backward()?;
        for g in coefficient_grads(&varmap, &store)? {
            let g = values(&g)?;
            assert!(
                g.iter().all(|v| v.abs() < 1e-300),
                "{dtype:?}: empty sums are 0"
            );
        }
    }
    Ok(())
}

#[test]
fn range_guard_counts_the_same_on_the_gpu() -> Result<()> {
    let Some(gpu) = gpu("range_guard_counts_the_same_on_the_gpu") else {
        return Ok(());
    };
    let domain = polyact::Interval::new(-4.0, 4.0).map_err(candle_core::Error::wrap)?;
    let poly = polyact::presets::m_sigmoid()
        .with_domain(-4.0..=4.0)
        .map_err(candle_core::Error::wrap)?;
    for dtype in DTYPES {
        let [xc, xg] = pair(base_values(), &[33, 64], dtype, &gpu)?;
        let (fc, fg) = (
            out_of_range(&xc, Some(domain))?,
            out_of_range(&xg, Some(domain))?,
        );
        assert!((fc - fg).abs() < 1e-12, "{dtype:?}: cpu {fc}, gpu {fg}");
        let layer = PolyAct::new(&poly).with_monitor();
        layer.forward(&xg.t()?)?;
        let report = layer.guard().report().expect("monitored");
        assert_eq!(report.inputs, 33 * 64);
        assert!(
            (report.fraction() - fc).abs() < 1e-12,
            "{dtype:?}: monitor on the gpu"
        );
    }
    Ok(())
}

/// Seconds per call of `f`, after warming up, with the device synchronised around the loop.
fn time(device: &Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    device.synchronize()?;
    let iterations = 20;
    let start = Instant::now();
    for _ in 0..iterations {
        f()?;
    }
    device.synchronize()?;
    Ok(start.elapsed().as_secs_f64() / f64::from(iterations))
}

#[test]
#[ignore = "GPU benchmark: prints timings, asserts nothing; run with --ignored --nocapture"]
fn bench_fused_poly_vs_sigmoid_vs_copy_16m_f32() -> Result<()> {
    let Some(gpu) = gpu("bench_fused_poly_vs_sigmoid_vs_copy_16m_f32") else {
        return Ok(());
    };
    let n = 16 * 1024 * 1024;
    let x = Var::from_tensor(&Tensor::randn(0_f32, 2.0, n, &gpu)?)?;
    let layer = PolyAct::new(&polyact::presets::m_sigmoid());
    let mb = (n * 4) as f64 / 1e6;
    let report = |what: &str, s: f64, passes: f64| {
        println!(
            "{what:<40} {:8.3} ms  {:7.1} GB/s effective ({passes} passes of {mb:.0} MB)",
            s * 1e3,
            passes * mb / 1e3 / s
        )
    };
    println!("16M f32 on {:?}", gpu.location());
    let copy = time(&gpu, || x.as_tensor().copy().map(drop))?;
    report("device-to-device copy", copy, 2.0);
    let fused = time(&gpu, || layer.forward(x.as_tensor()).map(drop))?;
    report("PolyAct (m_sigmoid) forward", fused, 2.0);
    let sigmoid = time(&gpu, || candle_nn::ops::sigmoid(x.as_tensor()).map(drop))?;
    report("candle_nn::ops::sigmoid forward", sigmoid, 2.0);
    // Forward + backward through autograd: backward() seeds a tensor of ones (one more write).
    let fused_fb = time(&gpu, || layer.forward(x.as_tensor())?.backward().map(drop))?;
    report("PolyAct forward + backward", fused_fb, 6.0);
    let sigmoid_fb = time(&gpu, || {
        candle_nn::ops::sigmoid(x.as_tensor())?.backward().map(drop)
    })?;
    report("sigmoid forward + backward", sigmoid_fb, 6.0);
    println!(
        "ratios: sigmoid/PolyAct fwd+bwd {:.2}x (target >= 2), PolyAct fwd+bwd / copy {:.2}x, \
         PolyAct fwd / copy {:.2}x (target <= 1.5)",
        sigmoid_fb / fused_fb,
        fused_fb / copy,
        fused / copy
    );
    Ok(())
}

//! Compiles the CUDA kernels to PTX with nvcc when the `cuda` feature is on: the library's
//! (`kernels/polyact.cu`) and the MNIST example's (`examples/mnist/kernels.cu`, Adam and the
//! training loop's helpers; cargo gives examples the package's `OUT_DIR`). Does nothing otherwise
//! (CPU builds need no CUDA toolkit).
//!
//! nvcc is `$NVCC`, else `$CUDA_HOME/bin/nvcc`, else `nvcc` on the `PATH`; the target is
//! `sm_$CUDA_COMPUTE_CAP` (e.g. `90` for an H100/H200), else the first GPU `nvidia-smi` reports.
//! `scripts/cuda-toolkit.sh` sets all three on a machine without a GPU.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Each CUDA source and the PTX file it becomes in `OUT_DIR`.
const KERNELS: [(&str, &str); 2] = [
    ("kernels/polyact.cu", "polyact.ptx"),
    ("examples/mnist/kernels.cu", "mnist.ptx"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (source, _) in KERNELS {
        println!("cargo::rerun-if-changed={source}");
    }
    for var in ["NVCC", "CUDA_HOME", "CUDA_COMPUTE_CAP"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    for (source, ptx) in KERNELS {
        // A package without its examples (trimmed by a packager) builds the library alone.
        if source.starts_with("examples/") && !std::path::Path::new(source).exists() {
            continue;
        }
        if let Err(message) = compile_ptx(source, ptx) {
            panic!("polyact's build script, feature `cuda`: {message}");
        }
    }
}

fn nvcc() -> PathBuf {
    if let Some(nvcc) = env::var_os("NVCC") {
        return nvcc.into();
    }
    if let Some(home) = env::var_os("CUDA_HOME") {
        return PathBuf::from(home).join("bin").join("nvcc");
    }
    "nvcc".into()
}

/// The compute capability as digits (`90`): `$CUDA_COMPUTE_CAP`, else nvidia-smi's first GPU.
fn compute_cap() -> Result<String, String> {
    if let Ok(cap) = env::var("CUDA_COMPUTE_CAP") {
        let digits = cap.replace('.', "");
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "CUDA_COMPUTE_CAP={cap:?} is not a compute capability like 90"
            ));
        }
        return Ok(digits);
    }
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .map_err(|e| {
            format!(
                "CUDA_COMPUTE_CAP is not set and nvidia-smi could not run ({e}); \
                 set it, e.g. CUDA_COMPUTE_CAP=90 for an H100/H200"
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.lines().next().map(|l| l.trim().replace('.', "")) {
        Some(cap) if output.status.success() && !cap.is_empty() => Ok(cap),
        _ => Err(
            "CUDA_COMPUTE_CAP is not set and nvidia-smi reported no GPU; set it, \
                  e.g. CUDA_COMPUTE_CAP=90"
                .into(),
        ),
    }
}

/// Compiles `source` to `$OUT_DIR/ptx`.
fn compile_ptx(source: &str, ptx: &str) -> Result<(), String> {
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?).join(ptx);
    let cap = compute_cap()?;
    let nvcc = nvcc();
    let output = Command::new(&nvcc)
        .args(["-ptx", "-O3", "--std=c++17", "-Werror", "all-warnings"])
        .arg(format!("-arch=sm_{cap}"))
        .arg(source)
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| {
            format!(
                "could not run {} ({e}); set NVCC or CUDA_HOME (scripts/cuda-toolkit.sh \
                 installs a toolkit)",
                nvcc.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "{} failed on {source}:\n{}{}",
            nvcc.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

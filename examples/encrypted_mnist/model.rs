//! The MNIST example's saved model (safetensors, format `polyact-mnist-cnn/1`) and the client's
//! clear-text feature extractor (the two convolution blocks).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polyact::Polynomial;
use polyact::he::head::{Dense, Head};
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};

/// The format string the MNIST example writes.
pub const FORMAT: &str = "polyact-mnist-cnn/1";
/// Flattened features after the second convolution block (7·7·64).
pub const FLAT: usize = 3136;
/// Units of the hidden dense layer.
pub const HIDDEN: usize = 1000;
/// Classes.
pub const CLASSES: usize = 10;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No file at the path.
    #[error(
        "no model file at {path}: train one with `cargo run --release --example mnist` (it saves the model)"
    )]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file exists but cannot be read (permissions, a directory, ...).
    #[error("cannot read the model file {path}: {source}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is shorter than its header says, or its header is unreadable.
    #[error("{path} is truncated or not a safetensors file ({reason})")]
    Truncated {
        /// The path.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A tensor or metadata entry of another architecture.
    #[error("{path} is not the study's CNN ({FORMAT}): {what}")]
    WrongArchitecture {
        /// The path.
        path: PathBuf,
        /// What differs.
        what: String,
    },
}

/// One convolution block's weights: kernel `[k·k·cin, cout]` in Keras HWIO order and bias.
#[derive(Debug, Clone)]
pub struct Conv {
    /// Input height (= width).
    pub h: usize,
    /// Input channels.
    pub cin: usize,
    /// Kernel side.
    pub k: usize,
    /// Filters.
    pub cout: usize,
    /// `[(ky·k + kx)·cin + ci][co]`.
    pub kernel: Vec<f32>,
    /// `[co]`.
    pub bias: Vec<f32>,
}

/// The loaded network.
#[derive(Debug, Clone)]
pub struct Model {
    /// First convolution block (28x28x1 → 32, 5x5).
    pub conv1: Conv,
    /// Second convolution block (14x14x32 → 64, 2x2).
    pub conv2: Conv,
    /// The dense head with its polynomial activation.
    pub head: Head,
    /// Metadata entries as saved.
    pub metadata: HashMap<String, String>,
}

impl Model {
    /// Test accuracy recorded by the trainer, if any.
    pub fn saved_accuracy(&self) -> Option<f64> {
        self.metadata.get("test_accuracy")?.parse().ok()
    }
}

/// Loads a model saved by the MNIST example, checking its format and every shape.
pub fn load(path: &Path) -> Result<Model, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::Missing {
            path: path.to_path_buf(),
        },
        _ => ModelError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    parse(&bytes, path)
}

fn parse(bytes: &[u8], path: &Path) -> Result<Model, ModelError> {
    let wrong = |what: String| ModelError::WrongArchitecture {
        path: path.to_path_buf(),
        what,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Truncated {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Truncated {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    match metadata.get("format") {
        Some(f) if f == FORMAT => {}
        other => return Err(wrong(format!("format is {other:?}, expected {FORMAT:?}"))),
    }
    for (key, want) in [("conv_activation", "relu"), ("pooling", "max")] {
        if metadata.get(key).map(String::as_str) != Some(want) {
            return Err(wrong(format!(
                "{key} is {:?}; this head expects {want:?}",
                metadata.get(key)
            )));
        }
    }
    // Written by the trainer since 2026-12-06; older files did not record it.
    if metadata.get("clamp").map(String::as_str) == Some("true") {
        return Err(wrong(
            "it was trained with --clamp: clamping is not a polynomial, so the encrypted head \
             would compute another function than the one trained"
                .into(),
        ));
    }
    let poly_json = metadata.get("polynomial").ok_or_else(|| {
        wrong(format!(
            "activation {:?} is not a polynomial (no `polynomial` entry): only a polynomial \
             activation can run encrypted",
            metadata.get("activation")
        ))
    })?;
    let activation: Polynomial = serde_json::from_str(poly_json)
        .map_err(|e| wrong(format!("unreadable polynomial: {e}")))?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelError> {
        let t = st
            .tensor(name)
            .map_err(|_| wrong(format!("no tensor {name}")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(wrong(format!(
                "{name} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let conv1 = Conv {
        h: 28,
        cin: 1,
        k: 5,
        cout: 32,
        kernel: tensor("conv2d.kernel", &[25, 32])?,
        bias: tensor("conv2d.bias", &[32])?,
    };
    let conv2 = Conv {
        h: 14,
        cin: 32,
        k: 2,
        cout: 64,
        kernel: tensor("conv2d_1.kernel", &[128, 64])?,
        bias: tensor("conv2d_1.bias", &[64])?,
    };
    let err = |e: polyact::he::HeError| wrong(e.to_string());
    let d1 = Dense::new(
        tensor("dense.kernel", &[FLAT, HIDDEN])?,
        tensor("dense.bias", &[HIDDEN])?,
        FLAT,
    )
    .map_err(err)?;
    let d2 = Dense::new(
        tensor("dense_1.kernel", &[HIDDEN, CLASSES])?,
        tensor("dense_1.bias", &[CLASSES])?,
        HIDDEN,
    )
    .map_err(err)?;
    Ok(Model {
        conv1,
        conv2,
        head: Head::new(d1, activation, d2).map_err(err)?,
        metadata,
    })
}

/// Keras 'same' padding before the first row/column: `(k − 1) / 2` (5x5: 2; 2x2: 0, the extra
/// row/column goes after).
fn pad_before(k: usize) -> usize {
    (k - 1) / 2
}

/// Conv 'same' + bias + ReLU + max-pool 2x2 on an NHWC image `h × h × cin`.
fn block(c: &Conv, x: &[f32]) -> Vec<f32> {
    let (h, k, cin, cout) = (c.h, c.k, c.cin, c.cout);
    let pad = pad_before(k) as isize;
    let mut y = vec![0f32; h * h * cout];
    for oy in 0..h {
        for ox in 0..h {
            let out = &mut y[(oy * h + ox) * cout..(oy * h + ox + 1) * cout];
            out.copy_from_slice(&c.bias);
            for ky in 0..k {
                let iy = oy as isize + ky as isize - pad;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                for kx in 0..k {
                    let ix = ox as isize + kx as isize - pad;
                    if ix < 0 || ix >= h as isize {
                        continue;
                    }
                    for ci in 0..cin {
                        let v = x[(iy as usize * h + ix as usize) * cin + ci];
                        if v == 0.0 {
                            continue;
                        }
                        let w = &c.kernel[((ky * k + kx) * cin + ci) * cout..][..cout];
                        for (o, &wv) in out.iter_mut().zip(w) {
                            *o += v * wv;
                        }
                    }
                }
            }
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
    let p = h / 2;
    let mut pooled = vec![0f32; p * p * cout];
    for py in 0..p {
        for px in 0..p {
            for co in 0..cout {
                let at = |dy: usize, dx: usize| y[((2 * py + dy) * h + 2 * px + dx) * cout + co];
                pooled[(py * p + px) * cout + co] =
                    at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    pooled
}

impl Model {
    /// The client's clear-text features of one 28x28 image (pixels in [0, 1]): 3136 values,
    /// flattened NHWC like Keras.
    pub fn features(&self, image: &[f32]) -> Vec<f32> {
        block(&self.conv2, &block(&self.conv1, image))
    }

    /// Features of many images, in parallel.
    pub fn features_all(&self, images: &[Vec<f32>]) -> Vec<Vec<f32>> {
        images.par_iter().map(|im| self.features(im)).collect()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// Writes a synthetic model in the MNIST example's format (random weights).
    pub fn synthetic(path: &Path, seed: u64, overrides: &[(&str, &[usize])]) {
        synthetic_with(path, seed, overrides, &[]);
    }

    /// [`synthetic`] with extra metadata entries.
    pub fn synthetic_with(
        path: &Path,
        seed: u64,
        overrides: &[(&str, &[usize])],
        extra: &[(&str, &str)],
    ) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let shapes: Vec<(&str, Vec<usize>)> = [
            ("conv2d.kernel", vec![25, 32]),
            ("conv2d.bias", vec![32]),
            ("conv2d_1.kernel", vec![128, 64]),
            ("conv2d_1.bias", vec![64]),
            ("dense.kernel", vec![FLAT, HIDDEN]),
            ("dense.bias", vec![HIDDEN]),
            ("dense_1.kernel", vec![HIDDEN, CLASSES]),
            ("dense_1.bias", vec![CLASSES]),
        ]
        .into_iter()
        .map(|(n, s)| {
            let s = overrides
                .iter()
                .find(|(o, _)| *o == n)
                .map_or(s, |(_, s)| s.to_vec());
            (n, s)
        })
        .collect();
        let data: Vec<Vec<u8>> = shapes
            .iter()
            .map(|(_, s)| {
                (0..s.iter().product::<usize>())
                    .flat_map(|_| rng.random_range(-0.05f32..0.05).to_le_bytes())
                    .collect()
            })
            .collect();
        let views: Vec<(&str, TensorView)> = shapes
            .iter()
            .zip(&data)
            .map(|((n, s), d)| (*n, TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
            .collect();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("activation".to_string(), "m_sigmoid".to_string());
        meta.insert(
            "polynomial".to_string(),
            serde_json::to_string(&polyact::presets::m_sigmoid()).unwrap(),
        );
        meta.insert("conv_activation".to_string(), "relu".to_string());
        meta.insert("pooling".to_string(), "max".to_string());
        meta.insert("seed".to_string(), seed.to_string());
        meta.insert("test_accuracy".to_string(), "0.1".to_string());
        for (k, v) in extra {
            meta.insert(k.to_string(), v.to_string());
        }
        safetensors::serialize_to_file(views, Some(meta), path).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("polyact-he-{}-{name}", std::process::id()))
    }

    #[test]
    fn loads_a_model_in_the_savers_format() {
        let path = tmp("ok.safetensors");
        synthetic(&path, 1, &[]);
        let m = load(&path).unwrap();
        assert_eq!(m.head.activation, polyact::presets::m_sigmoid());
        assert_eq!(m.head.dense1.inputs, FLAT);
        assert_eq!(m.features(&[0.5; 784]).len(), FLAT);
        assert!((m.saved_accuracy().unwrap() - 0.1).abs() < 1e-12);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn missing_truncated_and_foreign_files_are_typed_errors() {
        assert!(matches!(
            load(Path::new("/nonexistent/model.safetensors")),
            Err(ModelError::Missing { .. })
        ));
        let path = tmp("cut.safetensors");
        synthetic(&path, 2, &[]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(load(&path), Err(ModelError::Truncated { .. })));
        synthetic(
            &path,
            3,
            &[("dense.kernel", &[FLAT, 128]), ("dense.bias", &[128])],
        );
        match load(&path) {
            Err(ModelError::WrongArchitecture { what, .. }) => {
                assert!(what.contains("dense.kernel"), "{what}")
            }
            other => panic!("expected WrongArchitecture, got {other:?}"),
        }
        // Trained with --clamp: not a polynomial network.
        synthetic_with(&path, 4, &[], &[("clamp", "true")]);
        match load(&path) {
            Err(ModelError::WrongArchitecture { what, .. }) => {
                assert!(what.contains("--clamp"), "{what}")
            }
            other => panic!("expected WrongArchitecture, got {other:?}"),
        }
        synthetic_with(&path, 4, &[], &[("clamp", "false")]);
        assert!(load(&path).is_ok());
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn convolution_matches_a_direct_formula_at_one_pixel() {
        let path = tmp("conv.safetensors");
        synthetic(&path, 4, &[]);
        let m = load(&path).unwrap();
        std::fs::remove_file(path).ok();
        let img: Vec<f32> = (0..784).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let c = &m.conv1;
        // Output (y, x) = (0, 0), filter 3: rows/cols −2..=2 around it, zero outside.
        let direct = |oy: isize, ox: isize, co: usize| -> f32 {
            let mut s = c.bias[co];
            for ky in 0..5isize {
                for kx in 0..5isize {
                    let (iy, ix) = (oy + ky - 2, ox + kx - 2);
                    if (0..28).contains(&iy) && (0..28).contains(&ix) {
                        s += img[(iy * 28 + ix) as usize]
                            * c.kernel[((ky * 5 + kx) as usize) * 32 + co];
                    }
                }
            }
            s.max(0.0)
        };
        let pooled = block(c, &img);
        let want = direct(0, 0, 3)
            .max(direct(0, 1, 3))
            .max(direct(1, 0, 3))
            .max(direct(1, 1, 3));
        assert!((pooled[3] - want).abs() < 1e-5);
        // The second block pads only after (2x2 'same'): its last row sees zeros below.
        assert_eq!(pad_before(2), 0);
        assert_eq!(pad_before(5), 2);
    }
}

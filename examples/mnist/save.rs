//! The trained model on disk: one safetensors file per run,
//! `<out>/models/<activation-label>-seed<seed>.safetensors`.
//!
//! # Format `polyact-mnist-cnn/1`
//!
//! A [safetensors](https://huggingface.co/docs/safetensors) file (8-byte little-endian header
//! length, JSON header, raw little-endian data). Every tensor is `F32`; names and shapes are
//! those of the model's variables, in Keras' layer names:
//!
//! | name | shape | meaning |
//! |---|---|---|
//! | `conv2d.kernel` | `[5*5*1, 32]` = `[25, 32]` | first convolution, Keras HWIO `[kh, kw, cin, cout]` flattened row-major to `[kh*kw*cin, cout]` |
//! | `conv2d.bias` | `[32]` | its bias |
//! | `conv2d_1.kernel` | `[2*2*32, 64]` = `[128, 64]` | second convolution, same layout |
//! | `conv2d_1.bias` | `[64]` | its bias |
//! | `dense.kernel` | `[3136, 1000]` | hidden dense layer, `y = x·W + b`, `x` the NHWC flatten of the `[7, 7, 64]` features (index `(row*7 + col)*64 + channel`) |
//! | `dense.bias` | `[1000]` | its bias |
//! | `dense_1.kernel` | `[1000, 10]` | output layer, `logits = h·W + b` (softmax gives the class probabilities) |
//! | `dense_1.bias` | `[10]` | its bias |
//! | `hidden_activation.c0` … `hidden_activation.cN` | `[1]` each | only for a learnable polynomial (`learn:SPEC`): its trained coefficient of `x^k` |
//!
//! Convolutions are 'same' padded with stride 1 (Keras: for the even 2x2 kernel the extra row
//! and column of zeros go after, at the bottom and right), followed by the conv activation and
//! 2x2 pooling with stride 2. Dropout is not part of inference.
//!
//! Metadata (the safetensors string map):
//!
//! | key | value |
//! |---|---|
//! | `format` | `polyact-mnist-cnn/1` |
//! | `activation` | the hidden activation's spec string (`m_sigmoid`, `relu`, `taylor:tanh:5`, `learn:m_sigmoid`, …) |
//! | `polynomial` | only for a polynomial hidden activation: `serde_json` of the `polyact::Polynomial` (the trained one for `learn:`), as that crate serialises it |
//! | `conv_activation` | `relu`, or the spec string of the convolutions' polynomial (`--conv-activation`) |
//! | `conv_polynomial` | only when `conv_activation` is a polynomial: `serde_json` of it, as for `polynomial` |
//! | `pooling` | `max` or `avg` (`--pool`; average pooling is the mean of each 2x2 window) |
//! | `seed` | the run's seed, decimal |
//! | `test_accuracy` | final test accuracy, decimal (`NaN` when the run diverged) |
//!
//! A reader must check `format` first; a change of names or layout gets a new format string.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::model::Model;

/// The `format` metadata value of this layout.
pub const FORMAT: &str = "polyact-mnist-cnn/1";

/// `label` made safe as a file name: ASCII letters, digits, `_`, `-` and `.` are kept, `:` and
/// every other character become `_` (so `minimax:sigmoid:5:-5:5` → `minimax_sigmoid_5_-5_5`).
pub fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Never a hidden file or a path component like `..`.
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Where the model of a run is saved.
pub fn model_path(out: &Path, label: &str, seed: u64) -> PathBuf {
    out.join("models")
        .join(format!("{}-seed{seed}.safetensors", sanitize(label)))
}

/// What the metadata says about a run.
#[derive(Debug, Clone)]
pub struct SaveInfo<'a> {
    /// The hidden activation's spec string.
    pub activation: &'a str,
    /// The run's seed.
    pub seed: u64,
    /// Final test accuracy (NaN when it diverged).
    pub test_accuracy: f64,
    /// The data set it was trained on.
    pub dataset: &'a str,
    /// Whether the polynomial's inputs were clamped to its domain (`--clamp`): then the
    /// network is not a polynomial, which the encrypted example must know.
    pub clamp: bool,
}

/// Writes `model` in the format above to `path` (creating its folder; an existing file is
/// replaced through a temporary name, so a reader never sees half a file).
pub fn save(model: &Model, info: &SaveInfo<'_>, path: &Path) -> anyhow::Result<()> {
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("activation".to_string(), info.activation.to_string());
    if let Some(p) = model.hidden_polynomial() {
        meta.insert("polynomial".to_string(), serde_json::to_string(&p)?);
    }
    let blocks = model.blocks();
    meta.insert("conv_activation".to_string(), blocks.label.clone());
    if let Some(p) = &blocks.polynomial {
        meta.insert("conv_polynomial".to_string(), serde_json::to_string(p)?);
    }
    meta.insert("pooling".to_string(), blocks.kind.pool.to_string());
    meta.insert("seed".to_string(), info.seed.to_string());
    meta.insert("dataset".to_string(), info.dataset.to_string());
    meta.insert("clamp".to_string(), info.clamp.to_string());
    meta.insert("test_accuracy".to_string(), info.test_accuracy.to_string());

    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, var) in model.named_variables() {
        let t = var.as_tensor().to_dtype(candle_core::DType::F32)?;
        let shape = t.dims().to_vec();
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, shape, bytes));
    }
    let views = tensors
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{}: no folder", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let tmp = path.with_extension("safetensors.part");
    safetensors::tensor::serialize_to_file(views, Some(meta), &tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("moving {} to {}: {e}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConvImpl, ConvSpec, RangePolicy};
    use candle_core::Device;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use safetensors::SafeTensors;

    #[test]
    fn labels_become_safe_file_names() {
        assert_eq!(sanitize("m_sigmoid"), "m_sigmoid");
        assert_eq!(sanitize("minimax:sigmoid:5:-5:5"), "minimax_sigmoid_5_-5_5");
        assert_eq!(sanitize("learn:../../x"), "learn_.._.._x");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(
            model_path(Path::new("o"), "taylor:tanh:5", 3),
            Path::new("o/models/taylor_tanh_5-seed3.safetensors")
        );
    }

    /// Saved, read back with the safetensors crate alone: every variable bit for bit, with the
    /// documented names, shapes and metadata.
    #[test]
    fn save_then_reload_gives_the_same_model() {
        let dir = crate::results::tests::tmp("save");
        for label in ["learn:m_sigmoid", "relu"] {
            let spec: crate::spec::ActSpec = label.parse().unwrap();
            let mut rng = StdRng::seed_from_u64(7);
            let model = Model::new(
                &spec,
                &RangePolicy::default(),
                &ConvSpec::default(),
                ConvImpl::Fused,
                &Device::Cpu,
                &mut rng,
            )
            .unwrap();
            let path = model_path(&dir, label, 7);
            let info = SaveInfo {
                activation: label,
                seed: 7,
                test_accuracy: 0.9925,
                dataset: "mnist",
                clamp: false,
            };
            save(&model, &info, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let vars = model.named_variables();
            assert_eq!(st.names().len(), vars.len());
            for (name, var) in &vars {
                let t = st.tensor(name).unwrap();
                assert_eq!(t.dtype(), Dtype::F32);
                assert_eq!(t.shape(), var.dims(), "{name}");
                let back: Vec<f32> = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let orig = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(back == orig, "{name} differs");
            }
            let shapes: HashMap<&str, Vec<usize>> = [
                ("conv2d.kernel", vec![25, 32]),
                ("conv2d.bias", vec![32]),
                ("conv2d_1.kernel", vec![128, 64]),
                ("conv2d_1.bias", vec![64]),
                ("dense.kernel", vec![3136, 1000]),
                ("dense.bias", vec![1000]),
                ("dense_1.kernel", vec![1000, 10]),
                ("dense_1.bias", vec![10]),
            ]
            .into_iter()
            .collect();
            for (name, shape) in &shapes {
                assert_eq!(st.tensor(name).unwrap().shape(), shape.as_slice(), "{name}");
            }
            let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
            let meta = header.metadata().clone().unwrap();
            assert_eq!(meta["format"], FORMAT);
            assert_eq!(meta["activation"], label);
            assert_eq!(meta["seed"], "7");
            assert_eq!(meta["conv_activation"], "relu");
            assert_eq!(meta["pooling"], "max");
            assert_eq!(
                (meta["dataset"].as_str(), meta["clamp"].as_str()),
                ("mnist", "false")
            );
            approx::assert_abs_diff_eq!(meta["test_accuracy"].parse::<f64>().unwrap(), 0.9925);
            if label == "relu" {
                assert!(!meta.contains_key("polynomial"));
                assert_eq!(st.names().len(), 8);
            } else {
                let p: polyact::Polynomial = serde_json::from_str(&meta["polynomial"]).unwrap();
                let c = p.coefficients_f64();
                let m = polyact::presets::m_sigmoid().coefficients_f64();
                assert_eq!(c.len(), m.len());
                for (a, b) in c.iter().zip(&m) {
                    approx::assert_abs_diff_eq!(a, b, epsilon = 1e-6);
                }
                assert!(st.tensor("hidden_activation.c0").is_ok());
                assert_eq!(st.names().len(), 8 + m.len());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

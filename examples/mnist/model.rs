//! The study's CNN (Keras semantics) with the activation under test in its 1000-unit dense layer.
//!
//! ```text
//! Input 28x28x1 → Conv2D 32 5x5 'same' ReLU → MaxPool 2x2 → Conv2D 64 2x2 'same' ReLU
//! → MaxPool 2x2 → Dropout 0.25 → Flatten 3136 → Dense 1000 (activation under test)
//! → Dropout 0.5 → Dense 10 softmax
//! ```
//!
//! Tensors are NHWC like Keras' `channels_last`, so the flatten order is Keras' too. Weights are
//! Glorot-uniform and biases zero (Keras defaults), drawn from the run's seed.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::VarMap;
use polyact::nn::Guarded;
use rand::Rng;
use rand::rngs::StdRng;

use crate::conv::{BlockKind, ConvAct, ConvBlock, ConvGeom, Pooling, candle_block, gemm_block};
use crate::spec::{ActKind, ActSpec};

/// First convolution block: 28x28x1 → 32 filters 5x5 → 14x14x32.
pub const CONV1: ConvGeom = ConvGeom {
    h: 28,
    w: 28,
    cin: 1,
    k: 5,
    cout: 32,
};
/// Second convolution block: 14x14x32 → 64 filters 2x2 → 7x7x64.
pub const CONV2: ConvGeom = ConvGeom {
    h: 14,
    w: 14,
    cin: 32,
    k: 2,
    cout: 64,
};
/// Flattened features after the second block.
pub const FLAT: usize = 7 * 7 * 64;
/// Units of the hidden dense layer (the one with the activation under test).
pub const HIDDEN: usize = 1000;
/// Output classes.
pub const CLASSES: usize = 10;
/// Dropout rate after the convolutions.
pub const DROPOUT_CONV: f32 = 0.25;
/// Dropout rate after the hidden dense layer.
pub const DROPOUT_DENSE: f32 = 0.5;

/// Which implementation of the convolution blocks to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConvImpl {
    /// The fused im2col + gemm op of `conv.rs` (CPU only).
    Fused,
    /// candle's own `conv2d`, pooling as a reshape and `max` (any device).
    Candle,
    /// One matrix product of a patch matrix built from shifted views, NHWC throughout (any
    /// device; `conv::gemm_block`).
    Gemm,
}

/// The convolution blocks' activation and pooling (`--conv-activation`, `--pool`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    /// The activation's spec string (`relu`, or a polynomial spec such as `m_relu`).
    pub label: String,
    /// What the blocks compute.
    pub kind: BlockKind,
    /// The activation's polynomial (`None` for relu).
    pub polynomial: Option<polyact::Polynomial>,
}

impl Default for ConvSpec {
    /// The study's ReLU and max-pooling.
    fn default() -> Self {
        Self {
            label: "relu".into(),
            kind: BlockKind::default(),
            polynomial: None,
        }
    }
}

impl ConvSpec {
    /// `relu` or a fixed polynomial (learnable and other exact activations are refused), with
    /// `pool`.
    pub fn new(act: &ActSpec, pool: Pooling) -> anyhow::Result<Self> {
        let (conv_act, polynomial) = match &act.kind {
            ActKind::Exact(polyact::registry::Builtin::Relu) => (ConvAct::Relu, None),
            ActKind::Poly(p) => (
                ConvAct::Poly(p.coefficients_f64().iter().map(|&c| c as f32).collect()),
                Some(p.clone()),
            ),
            _ => anyhow::bail!(
                "--conv-activation {}: the convolutions take relu or a fixed polynomial \
                 (m_relu, t_softplus, taylor:FN:DEG, minimax:FN:DEG:LO:HI)",
                act.label
            ),
        };
        Ok(Self {
            label: act.label.clone(),
            kind: BlockKind {
                act: conv_act,
                pool,
            },
            polynomial,
        })
    }
}

/// How polynomial hidden layers treat their inputs' range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangePolicy {
    /// Domain to give every polynomial (a fit keeps its own interval when this is `None`).
    pub domain: Option<(f64, f64)>,
    /// Clamp inputs to the domain before evaluating the polynomial.
    pub clamp: bool,
}

/// The hidden layer's activation: the exact activation (candle's own op where there is one),
/// a polynomial as polyact's fused op, or a learnable polynomial whose coefficients join the
/// model's variables. Polynomials with a domain count the inputs that fall outside it.
enum Hidden {
    Exact(polyact::nn::Act),
    Poly(polyact::nn::PolyAct, polyact::Polynomial),
    Learn(polyact::nn::LearnablePoly),
}

impl Hidden {
    fn new(
        spec: &ActSpec,
        range: &RangePolicy,
        varmap: &VarMap,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let with_domain = |p: &polyact::Polynomial| -> anyhow::Result<polyact::Polynomial> {
            Ok(match range.domain {
                Some((lo, hi)) => p.clone().with_domain(lo..=hi)?,
                None => p.clone(),
            })
        };
        Ok(match &spec.kind {
            ActKind::Exact(exact) => Hidden::Exact(polyact::nn::Act::from(*exact)),
            ActKind::Poly(poly) => {
                let poly = with_domain(poly)?;
                let mut layer = polyact::nn::PolyAct::new(&poly);
                if poly.domain().is_some() {
                    layer = layer.with_monitor();
                    if range.clamp {
                        layer = layer.with_clamp()?;
                    }
                }
                Hidden::Poly(layer, poly)
            }
            ActKind::Learn(poly) => {
                let poly = with_domain(poly)?;
                let vb = candle_nn::VarBuilder::from_varmap(varmap, DType::F32, device);
                let mut layer = polyact::nn::LearnablePoly::new(&poly, vb.pp("hidden_activation"))?;
                if poly.domain().is_some() {
                    layer = layer.with_monitor();
                    if range.clamp {
                        layer = layer.with_clamp()?;
                    }
                }
                Hidden::Learn(layer)
            }
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Hidden::Exact(l) => l.forward(x),
            Hidden::Poly(l, _) => l.forward(x),
            Hidden::Learn(l) => l.forward(x),
        }
    }

    fn guard(&self) -> Option<&polyact::nn::RangeGuard> {
        match self {
            Hidden::Exact(_) => None,
            Hidden::Poly(l, _) => Some(l.guard()),
            Hidden::Learn(l) => Some(l.guard()),
        }
    }
}

/// Glorot-uniform values: `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`.
fn glorot(n: usize, fan_in: usize, fan_out: usize, rng: &mut StdRng) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..n).map(|_| rng.random_range(-limit..limit)).collect()
}

/// The network.
pub struct Model {
    conv1: (Var, Var),
    conv2: (Var, Var),
    dense1: (Var, Var),
    dense2: (Var, Var),
    hidden: Hidden,
    /// Every trainable variable, named.
    pub varmap: VarMap,
    conv: ConvImpl,
    blocks: ConvSpec,
    device: Device,
}

impl Model {
    /// Builds the model with Glorot-uniform weights from `rng` and zero biases.
    pub fn new(
        spec: &ActSpec,
        range: &RangePolicy,
        blocks: &ConvSpec,
        conv: ConvImpl,
        device: &Device,
        rng: &mut StdRng,
    ) -> anyhow::Result<Self> {
        if conv == ConvImpl::Fused && !device.is_cpu() {
            anyhow::bail!(
                "the fused convolution runs on the CPU only; use --conv candle on {device:?}"
            );
        }
        let varmap = VarMap::new();
        let add = |name: &str, shape: &[usize], values: Vec<f32>| -> anyhow::Result<Var> {
            let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?;
            varmap
                .data()
                .lock()
                .expect("poisoned")
                .insert(name.to_string(), var.clone());
            Ok(var)
        };
        // A kernel of shape [rows, cols] (Glorot-uniform with the given fan-out) and a zero bias.
        let layer = |name: &str, rows: usize, cols: usize, fan_out: usize, rng: &mut StdRng| {
            anyhow::Ok((
                add(
                    &format!("{name}.kernel"),
                    &[rows, cols],
                    glorot(rows * cols, rows, fan_out, rng),
                )?,
                add(&format!("{name}.bias"), &[cols], vec![0.0; cols])?,
            ))
        };
        // A convolution's fan-out is k·k·cout, as in Keras.
        let conv_layer = |name: &str, g: ConvGeom, rng: &mut StdRng| {
            layer(name, g.patch(), g.cout, g.k * g.k * g.cout, rng)
        };
        let conv1 = conv_layer("conv2d", CONV1, rng)?;
        let conv2 = conv_layer("conv2d_1", CONV2, rng)?;
        let dense1 = layer("dense", FLAT, HIDDEN, HIDDEN, rng)?;
        let dense2 = layer("dense_1", HIDDEN, CLASSES, CLASSES, rng)?;
        let hidden = Hidden::new(spec, range, &varmap, device)?;
        Ok(Self {
            conv1,
            conv2,
            dense1,
            dense2,
            hidden,
            varmap,
            conv,
            blocks: blocks.clone(),
            device: device.clone(),
        })
    }

    /// Fraction of the hidden polynomial's inputs outside its domain since the last call
    /// (`None` without a domain); resets the counters.
    pub fn take_out_of_range(&self) -> Option<f64> {
        let guard = self.hidden.guard()?;
        let report = guard.report()?;
        guard.reset();
        Some(report.fraction())
    }

    /// The learnable activation's polynomial as trained so far (`None` for fixed activations).
    pub fn learned_polynomial(&self) -> Option<polyact::Polynomial> {
        match &self.hidden {
            Hidden::Learn(l) => l.polynomial().ok(),
            _ => None,
        }
    }

    /// The hidden layer's polynomial as it computes now (the trained one for a learnable
    /// activation, with the domain it was given); `None` for an exact activation.
    pub fn hidden_polynomial(&self) -> Option<polyact::Polynomial> {
        match &self.hidden {
            Hidden::Exact(_) => None,
            Hidden::Poly(_, p) => Some(p.clone()),
            Hidden::Learn(l) => l.polynomial().ok(),
        }
    }

    /// Every trainable variable with its name, sorted by name.
    pub fn named_variables(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = self
            .varmap
            .data()
            .lock()
            .expect("poisoned")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters of the study's network (the four layers with weights).
    pub fn base_parameters(&self) -> usize {
        [&self.conv1, &self.conv2, &self.dense1, &self.dense2]
            .iter()
            .map(|(w, b)| w.elem_count() + b.elem_count())
            .sum()
    }

    /// All trainable parameters, including a learnable activation's coefficients.
    pub fn parameters(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    fn block(&self, g: ConvGeom, x: &Tensor, (w, b): &(Var, Var), train: bool) -> Result<Tensor> {
        match self.conv {
            ConvImpl::Fused => ConvBlock::forward(g, &self.blocks.kind, x, w, b, train),
            ConvImpl::Candle => candle_block(g, &self.blocks.kind, x, w, b),
            ConvImpl::Gemm => gemm_block(g, &self.blocks.kind, x, w, b),
        }
    }

    /// Logits for a batch `x` of shape `[b, 28, 28, 1]` (pixels in [0, 1]).
    ///
    /// With `dropout = Some(masks)` the model is in training mode and multiplies by the masks
    /// (inverted dropout, as Keras). With `None` it is in inference mode and builds no graph
    /// for the convolutions.
    pub fn forward(&self, x: &Tensor, dropout: Option<Masks>) -> Result<Tensor> {
        let train = dropout.is_some();
        let h = self.block(CONV1, x, &self.conv1, train)?;
        let h = self.block(CONV2, &h, &self.conv2, train)?;
        let b = h.dim(0)?;
        let mut h = h.reshape((b, FLAT))?;
        let mut dense_mask = None;
        if let Some(Masks { conv, dense }) = dropout {
            h = h.mul(&Tensor::from_vec(conv, (b, FLAT), &self.device)?)?;
            dense_mask = Some(Tensor::from_vec(dense, (b, HIDDEN), &self.device)?);
        }
        let h = h.matmul(&self.dense1.0)?.broadcast_add(&self.dense1.1)?;
        let mut h = self.hidden.forward(&h)?;
        if let Some(mask) = dense_mask {
            h = h.mul(&mask)?;
        }
        h.matmul(&self.dense2.0)?.broadcast_add(&self.dense2.1)
    }

    /// The convolution blocks' activation and pooling.
    pub fn blocks(&self) -> &ConvSpec {
        &self.blocks
    }

    /// The multiplicative depth of each layer under homomorphic encryption (encrypted input,
    /// plaintext weights), and in total when every layer is a polynomial.
    ///
    /// A convolution or dense layer multiplies ciphertexts by plaintext weights: one level. A
    /// polynomial activation of degree `d` needs `⌈log₂ d⌉` levels (its powers by repeated
    /// squaring: degree 5 uses x², x⁴ and x⁴·x, 3 levels; `Polynomial::cost`). Average pooling
    /// is a sum whose 1/4 is folded into the next layer's weights: no level. ReLU and
    /// max-pooling are not polynomials and cannot run under such encryption.
    pub fn depth_report(&self, activation: &str) -> String {
        let poly_depth = |p: Option<polyact::Polynomial>| p.map(|p| p.cost().depth);
        let conv_act = poly_depth(self.blocks.polynomial.clone());
        let pool = match self.blocks.kind.pool {
            Pooling::Avg => Some(0),
            Pooling::Max => None,
        };
        let hidden = poly_depth(self.hidden_polynomial());
        let rows: [(String, Option<u32>); 10] = [
            ("conv2d (ct x pt)".into(), Some(1)),
            (format!("conv activation {}", self.blocks.label), conv_act),
            (format!("{} pooling", self.blocks.kind.pool), pool),
            ("conv2d_1 (ct x pt)".into(), Some(1)),
            (format!("conv activation {}", self.blocks.label), conv_act),
            (format!("{} pooling", self.blocks.kind.pool), pool),
            ("dense (ct x pt)".into(), Some(1)),
            (format!("hidden activation {activation}"), hidden),
            ("dense_1 (ct x pt)".into(), Some(1)),
            ("softmax (argmax on the client)".into(), Some(0)),
        ];
        let mut s = String::from("Multiplicative depth per layer (encrypted evaluation):\n");
        let mut total = Some(0u32);
        for (name, d) in &rows {
            total = total.zip(*d).map(|(t, d)| t + d);
            s += &format!(
                "  {name:<40} {}\n",
                d.map_or("not a polynomial".into(), |d| format!("{d} level(s)"))
            );
        }
        s += &match total {
            Some(t) => format!("  total: {t} levels (the whole network is a polynomial)\n"),
            None => "  total: - (relu or max-pooling left: use --conv-activation SPEC --pool avg \
                     and a polynomial hidden activation)\n"
                .into(),
        };
        s
    }

    /// A Keras-style summary of the layers and their parameter counts.
    pub fn summary(&self, activation: &str) -> String {
        let conv_name = |n: &str| format!("{n} (Conv2D, {})", self.blocks.label);
        let pool_name = |suffix: &str| match self.blocks.kind.pool {
            Pooling::Max => format!("max_pooling2d{suffix} (MaxPooling2D)"),
            Pooling::Avg => format!("average_pooling2d{suffix} (AveragePooling2D)"),
        };
        let rows: [(&str, String, usize); 10] = [
            (
                &conv_name("conv2d"),
                "(None, 28, 28, 32)".into(),
                CONV1.params(),
            ),
            (&pool_name(""), "(None, 14, 14, 32)".into(), 0),
            (
                &conv_name("conv2d_1"),
                "(None, 14, 14, 64)".into(),
                CONV2.params(),
            ),
            (&pool_name("_1"), "(None, 7, 7, 64)".into(), 0),
            ("dropout (Dropout 0.25)", "(None, 7, 7, 64)".into(), 0),
            ("flatten (Flatten)", "(None, 3136)".into(), 0),
            (
                "dense (Dense)",
                "(None, 1000)".into(),
                FLAT * HIDDEN + HIDDEN,
            ),
            (
                "activation (Activation)",
                format!("(None, 1000)  {activation}"),
                self.parameters() - self.base_parameters(),
            ),
            ("dropout_1 (Dropout 0.5)", "(None, 1000)".into(), 0),
            (
                "dense_1 (Dense, softmax)",
                "(None, 10)".into(),
                HIDDEN * CLASSES + CLASSES,
            ),
        ];
        let line = "_".repeat(88);
        let mut s = format!(
            "Model: \"sequential\"\n{line}\n {:<38}{:<36}{:>12}\n{}\n",
            "Layer (type)",
            "Output Shape",
            "Param #",
            "=".repeat(88)
        );
        for (i, (name, shape, n)) in rows.iter().enumerate() {
            s += &format!(" {name:<38}{shape:<36}{:>12}\n", group(*n));
            if i + 1 < rows.len() {
                s += "\n";
            }
        }
        let total = self.parameters();
        s += &format!(
            "{}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: 0\n{line}\n",
            "=".repeat(88),
            group(total),
            group(total)
        );
        s
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Inverted-dropout mask: each entry `1 / (1 - rate)` with probability `1 - rate`, else 0.
/// The dropout masks of one training step: after the flattened convolutions (`[b, 3136]`,
/// rate 0.25) and after the hidden activation (`[b, 1000]`, rate 0.5), each entry `1/keep`
/// with probability `keep`, else 0.
pub struct Masks {
    conv: Vec<f32>,
    dense: Vec<f32>,
}

impl Masks {
    /// The masks of a batch of `batch` examples, drawn from `rng` (the conv mask first): a
    /// run's masks depend on its seed only, whether drawn during the step or ahead of it.
    pub fn draw(batch: usize, rng: &mut StdRng) -> Self {
        Self {
            conv: mask(batch * FLAT, DROPOUT_CONV, rng),
            dense: mask(batch * HIDDEN, DROPOUT_DENSE, rng),
        }
    }
}

/// `n` inverted-dropout factors for `rate`.
fn mask(n: usize, rate: f32, rng: &mut StdRng) -> Vec<f32> {
    let keep = 1.0 - rate;
    let scale = 1.0 / keep;
    (0..n)
        .map(|_| {
            if rng.random::<f32>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spec(s: &str) -> ActSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parameter_count_is_the_studys() {
        let mut rng = StdRng::seed_from_u64(0);
        let m = Model::new(
            &spec("relu"),
            &RangePolicy::default(),
            &ConvSpec::default(),
            ConvImpl::Fused,
            &Device::Cpu,
            &mut rng,
        )
        .unwrap();
        assert_eq!(m.parameters(), 3_156_098);
        assert_eq!(m.base_parameters(), 3_156_098);
        let text = m.summary("relu");
        assert!(text.contains("Total params: 3,156,098"), "{text}");
        assert!(text.contains("3,137,000"), "{text}");
        // A learnable degree-5 polynomial adds its six coefficients.
        let m = Model::new(
            &spec("learn:m_sigmoid"),
            &RangePolicy::default(),
            &ConvSpec::default(),
            ConvImpl::Fused,
            &Device::Cpu,
            &mut rng,
        )
        .unwrap();
        assert_eq!(m.parameters(), 3_156_098 + 6);
    }

    #[test]
    fn glorot_limits_and_zero_biases() {
        let mut rng = StdRng::seed_from_u64(0);
        let m = Model::new(
            &spec("relu"),
            &RangePolicy::default(),
            &ConvSpec::default(),
            ConvImpl::Fused,
            &Device::Cpu,
            &mut rng,
        )
        .unwrap();
        let max = |v: &Var| {
            v.abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let limit = (6.0f32 / (3136.0 + 1000.0)).sqrt();
        assert!(max(&m.dense1.0) <= limit && max(&m.dense1.0) > 0.9 * limit);
        let limit1 = (6.0f32 / (25.0 + 25.0 * 32.0)).sqrt();
        assert!(max(&m.conv1.0) <= limit1 && max(&m.conv1.0) > 0.9 * limit1);
        assert!(max(&m.dense1.1) < f32::EPSILON);
    }

    #[test]
    fn fused_and_candle_convolutions_give_the_same_logits() {
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<f32> = (0..3 * 784).map(|_| rng.random()).collect();
        let x = Tensor::from_vec(x, (3, 28, 28, 1), &Device::Cpu).unwrap();
        let mut r1 = StdRng::seed_from_u64(5);
        let mut m = Model::new(
            &spec("m_sigmoid"),
            &RangePolicy::default(),
            &ConvSpec::default(),
            ConvImpl::Fused,
            &Device::Cpu,
            &mut r1,
        )
        .unwrap();
        let a = m.forward(&x, None).unwrap();
        m.conv = ConvImpl::Candle;
        let b = m.forward(&x, None).unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// Runs of one seed are paired: whatever the hidden activation, they start from the same
    /// weights and draw the same dropout masks and batch orders (the activation draws nothing
    /// from the run's generator), so paired differences compare activations, not luck.
    #[test]
    fn runs_of_one_seed_share_weights_and_random_stream() {
        let x = Tensor::from_vec(vec![0.5f32; 2 * 784], (2, 28, 28, 1), &Device::Cpu).unwrap();
        let mut states = Vec::new();
        let mut weights: Vec<Vec<f32>> = Vec::new();
        for name in ["sigmoid", "m_sigmoid", "t_softplus", "learn:m_tanh"] {
            let mut rng = StdRng::seed_from_u64(42);
            let m = Model::new(
                &spec(name),
                &RangePolicy::default(),
                &ConvSpec::default(),
                ConvImpl::Fused,
                &Device::Cpu,
                &mut rng,
            )
            .unwrap();
            let w: Vec<f32> = [&m.conv1, &m.conv2, &m.dense1, &m.dense2]
                .iter()
                .flat_map(|(w, _)| w.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect();
            m.forward(&x, Some(Masks::draw(x.dim(0).unwrap(), &mut rng)))
                .unwrap();
            states.push(rng.random::<u64>());
            match weights.first() {
                Some(first) => assert!(first == &w, "{name}: other initial weights"),
                None => weights.push(w),
            }
        }
        assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");
    }
}

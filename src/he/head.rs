//! A network head `dense → polynomial → dense` quantised to integers, its exact simulation,
//! and its evaluation on BFV ciphertexts with packed dense layers.
//!
//! # Packing
//!
//! A ciphertext has 2 rows of `n = slots/2` columns; rotations turn both rows. The first dense
//! layer (`n_in → n_hidden`) uses output blocks of `B` slots (a power of two with
//! `n_hidden + K − 1 ≤ B`), `n/B` blocks per row, and `K = ⌈n_in / (2n/B)⌉` generalised
//! diagonals: the client lays its input out so that block `c` of row `r` holds inputs
//! `(r·(n/B) + c)·K + (v mod K)` at offset `v`, and then
//! `y = Σ_{k<K} D_k ⊙ rot(x, k)` gives, in slot `j` of every block, the partial dot product of
//! output `j` over that block's `K` inputs. The sum over `k` is split baby-step/giant-step
//! (`k = g·a + b`, `g ≈ √K`: `g − 1` baby rotations of the input, `⌈K/g⌉ − 1` giant rotations
//! of partial sums, with the diagonals pre-rotated in the clear), then `log₂(n/B)` rotations and
//! one row swap add the blocks: every block then holds the whole pre-activation. The polynomial
//! runs slot-wise by its [plan](crate::plan). The second layer (`n_hidden → n_out`, small
//! `n_out`) multiplies by one weight plaintext per phase and sums windows of `S` slots with
//! `log₂ S` rotations; output `o` lands at the start of window `o`.
//!
//! For the MNIST head (3136 → 1000 → 10) at N = 16384: `B = 2048`, `K = 392`, `g = 20`: 392
//! ciphertext × plaintext products and 19 + 19 + 2 + 1 rotations for the first layer, instead
//! of one rotation per input.

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive};
use rayon::prelude::*;

use super::backend::{Backend, ExactBackend};
use super::fixed::{
    IntPolynomial, NoiseModel, OpCount, Quantizer, crt, log2, residue, residue_i64,
};
use super::{HeError, Result};
use crate::Polynomial;
use crate::plan::Step;

/// A dense layer in floating point: `y = x · W + b` with `W` stored row-major as
/// `[inputs][outputs]` (Keras' kernel layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `inputs × outputs` weights, row-major.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub bias: Vec<f32>,
    /// Number of inputs.
    pub inputs: usize,
    /// Number of outputs.
    pub outputs: usize,
}

impl Dense {
    /// A layer from its kernel (`inputs × outputs`, row-major) and bias, with the shapes checked.
    pub fn new(weights: Vec<f32>, bias: Vec<f32>, inputs: usize) -> Result<Self> {
        let outputs = bias.len();
        if weights.len() != inputs * outputs {
            return Err(HeError::Shape {
                what: "dense kernel elements (inputs × outputs)",
                expected: inputs * outputs,
                found: weights.len(),
            });
        }
        Ok(Self {
            weights,
            bias,
            inputs,
            outputs,
        })
    }

    fn forward(&self, x: &[f64]) -> Vec<f64> {
        let mut y: Vec<f64> = self.bias.iter().map(|&b| f64::from(b)).collect();
        for (i, &xi) in x.iter().enumerate() {
            if xi != 0.0 {
                let row = &self.weights[i * self.outputs..(i + 1) * self.outputs];
                for (yj, &w) in y.iter_mut().zip(row) {
                    *yj += xi * f64::from(w);
                }
            }
        }
        y
    }
}

/// The head `dense → polynomial → dense` in floating point.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// First layer.
    pub dense1: Dense,
    /// The activation between the layers (exact coefficients).
    pub activation: Polynomial,
    /// Second layer.
    pub dense2: Dense,
}

impl Head {
    /// A head, with the layer shapes checked against each other.
    pub fn new(dense1: Dense, activation: Polynomial, dense2: Dense) -> Result<Self> {
        if dense2.inputs != dense1.outputs {
            return Err(HeError::Shape {
                what: "second layer inputs (first layer outputs)",
                expected: dense1.outputs,
                found: dense2.inputs,
            });
        }
        Ok(Self {
            dense1,
            activation,
            dense2,
        })
    }

    /// Logits in floating point (f64 arithmetic, f32 weights).
    pub fn forward(&self, x: &[f32]) -> Vec<f64> {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let h: Vec<f64> = self
            .dense1
            .forward(&x)
            .iter()
            .map(|&z| self.activation.eval(z))
            .collect();
        self.dense2.forward(&h)
    }
}

/// Fixed-point scales (fractional bits) of a quantised head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    /// Inputs are `round(x · 2^input_bits)`.
    pub input_bits: u32,
    /// First-layer weights are `round(w · 2^weight_bits)`.
    pub weight_bits: u32,
    /// Second-layer weights are `round(w · 2^output_weight_bits)`.
    pub output_weight_bits: u32,
}

/// A head quantised to integers; [`simulate`](Self::simulate) is the exact oracle every
/// encrypted evaluation must reproduce.
///
/// Pre-activations are `z = Σ round(w·2^b)·round(x·2^a) + round(bias·2^{a+b})` (scale
/// `2^{a+b}`), the activation is the exact [`IntPolynomial`] for that scale, and the logits are
/// `Σ round(w₂·2^c)·P(z) + round(b₂·2^c)·L·2^{(a+b)d}`, all integers.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedHead {
    n_in: usize,
    n_hidden: usize,
    n_out: usize,
    /// `[hidden][input]` (transposed for the dot products).
    w1: Vec<i64>,
    b1: Vec<i64>,
    poly: IntPolynomial,
    /// `[output][hidden]`.
    w2: Vec<i64>,
    b2: Vec<BigInt>,
    quantizer: Quantizer,
    scales: Scales,
    z_bound: Vec<i64>,
    out_bound: BigInt,
}

fn q(v: f32, bits: u32) -> i64 {
    (f64::from(v) * f64::from(bits).exp2()).round() as i64
}

impl QuantizedHead {
    /// Quantises `head` for inputs in `[lo, hi]` with the given scales and computes worst-case
    /// bounds of every intermediate value.
    pub fn new(head: &Head, scales: Scales, lo: f64, hi: f64) -> Result<Self> {
        let (n_in, n_hidden, n_out) =
            (head.dense1.inputs, head.dense1.outputs, head.dense2.outputs);
        let quantizer = Quantizer::new(scales.input_bits, lo, hi);
        let s1 = scales.input_bits + scales.weight_bits;
        let mut w1 = vec![0i64; n_in * n_hidden];
        for i in 0..n_in {
            for j in 0..n_hidden {
                w1[j * n_in + i] = q(head.dense1.weights[i * n_hidden + j], scales.weight_bits);
            }
        }
        let b1: Vec<i64> = head.dense1.bias.iter().map(|&b| q(b, s1)).collect();
        let poly = IntPolynomial::new(&head.activation, s1)?;
        let mut w2 = vec![0i64; n_out * n_hidden];
        for j in 0..n_hidden {
            for o in 0..n_out {
                w2[o * n_hidden + j] = q(
                    head.dense2.weights[j * n_out + o],
                    scales.output_weight_bits,
                );
            }
        }
        let out_scale = poly.denominator_lcm().clone() << (s1 as usize * poly.degree());
        let b2: Vec<BigInt> = head
            .dense2
            .bias
            .iter()
            .map(|&b| BigInt::from(q(b, scales.output_weight_bits)) * &out_scale)
            .collect();
        let (lo_q, hi_q) = quantizer.quantized_range();
        let (lo_q, hi_q) = (i128::from(lo_q), i128::from(hi_q));
        let z_bound: Vec<i64> = (0..n_hidden)
            .map(|j| {
                let row = &w1[j * n_in..(j + 1) * n_in];
                let (mut mn, mut mx) = (i128::from(b1[j]), i128::from(b1[j]));
                for &w in row {
                    let (a, b) = (i128::from(w) * lo_q, i128::from(w) * hi_q);
                    mn += a.min(b);
                    mx += a.max(b);
                }
                let m = mn.abs().max(mx.abs());
                i64::try_from(m).map_err(|_| HeError::PlaintextOverflow {
                    needed_bits: (m as f64).log2(),
                    available_bits: 63.0,
                })
            })
            .collect::<Result<_>>()?;
        let h_bound: Vec<BigInt> = z_bound
            .iter()
            .map(|&z| poly.abs_bound(&BigInt::from(z)))
            .collect();
        let out_bound = (0..n_out)
            .map(|o| {
                let mut s = b2[o].abs();
                for j in 0..n_hidden {
                    s += &h_bound[j] * w2[o * n_hidden + j].abs();
                }
                s
            })
            .max()
            .unwrap_or_default();
        Ok(Self {
            n_in,
            n_hidden,
            n_out,
            w1,
            b1,
            poly,
            w2,
            b2,
            quantizer,
            scales,
            z_bound,
            out_bound,
        })
    }

    /// Input, hidden and output sizes.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.n_in, self.n_hidden, self.n_out)
    }

    /// The scales.
    pub fn scales(&self) -> Scales {
        self.scales
    }

    /// The input quantiser.
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// The integer activation polynomial.
    pub fn polynomial(&self) -> &IntPolynomial {
        &self.poly
    }

    /// log₂ of the worst-case absolute logit over all inputs in the declared range.
    pub fn output_bound_bits(&self) -> f64 {
        log2(&self.out_bound)
    }

    /// log₂ of the largest worst-case absolute pre-activation (integer units).
    pub fn preactivation_bound_bits(&self) -> f64 {
        self.z_bound
            .iter()
            .map(|&z| (z as f64).log2())
            .fold(0.0, f64::max)
    }

    /// The factor from integer logits to real logits.
    pub fn logit_scale(&self) -> f64 {
        self.poly.output_scale() * f64::from(self.scales.output_weight_bits).exp2()
    }

    /// Quantises an input vector (typed error for a value outside the range or a wrong length).
    pub fn quantize(&self, x: &[f32]) -> Result<Vec<i64>> {
        if x.len() != self.n_in {
            return Err(HeError::Shape {
                what: "input length",
                expected: self.n_in,
                found: x.len(),
            });
        }
        self.quantizer.quantize(x)
    }

    /// The integer pre-activations of a quantised input.
    ///
    /// # Panics
    /// If `xq` lies so far outside the quantised range that a pre-activation leaves the `i64`
    /// range (inputs from [`quantize`](Self::quantize) never do).
    pub fn preactivations(&self, xq: &[i64]) -> Vec<i64> {
        (0..self.n_hidden)
            .map(|j| {
                let row = &self.w1[j * self.n_in..(j + 1) * self.n_in];
                // In i128: a partial sum may pass the i64 range even where the bound
                // (`z_bound`, which fits an i64) holds for the whole sum.
                let z = row
                    .iter()
                    .zip(xq)
                    .map(|(&w, &x)| i128::from(w) * i128::from(x))
                    .sum::<i128>()
                    + i128::from(self.b1[j]);
                i64::try_from(z).expect("within the worst-case bound, which fits an i64")
            })
            .collect()
    }

    /// The exact integer logits of a quantised input: what every encrypted evaluation decrypts
    /// to.
    pub fn simulate(&self, xq: &[i64]) -> Vec<BigInt> {
        let h: Vec<BigInt> = self
            .preactivations(xq)
            .iter()
            .map(|&z| self.poly.eval_int(z))
            .collect();
        (0..self.n_out)
            .map(|o| {
                let mut s = self.b2[o].clone();
                for (j, hj) in h.iter().enumerate() {
                    let w = self.w2[o * self.n_hidden + j];
                    if w != 0 {
                        s += hj * w;
                    }
                }
                s
            })
            .collect()
    }

    /// Real-valued logits from integer logits.
    pub fn dequantize(&self, logits: &[BigInt]) -> Vec<f64> {
        let scale = self.logit_scale();
        logits
            .iter()
            .map(|l| l.to_f64().unwrap_or(f64::NAN) / scale)
            .collect()
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax<T: PartialOrd>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if x > &v[best] {
            best = i;
        }
    }
    best
}

/// Slot layout of the packed head (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Columns per row (`slots / 2`).
    pub row: usize,
    /// Output block size `B` of the first layer.
    pub block: usize,
    /// Blocks per row.
    pub blocks: usize,
    /// Diagonals of the first layer.
    pub diagonals: usize,
    /// Baby-step size.
    pub baby: usize,
    /// Giant steps.
    pub giant: usize,
    /// Window size `S` of the second layer.
    pub window: usize,
    /// Copies of the hidden vector the second layer needs (`B / S`).
    pub phases: usize,
}

impl Layout {
    /// The layout for `n_in → n_hidden → n_out` with `slots` slots in 2 rows.
    pub fn new(slots: usize, n_in: usize, n_hidden: usize, n_out: usize) -> Result<Self> {
        let row = slots / 2;
        let mut block = n_hidden.next_power_of_two();
        while block <= row {
            let blocks = row / block;
            let diagonals = n_in.div_ceil(2 * blocks);
            if n_hidden + diagonals - 1 <= block {
                let baby = (diagonals as f64).sqrt().ceil() as usize;
                let giant = diagonals.div_ceil(baby);
                let window = n_hidden.next_power_of_two();
                let phases = block / window;
                if n_out > 2 * (row / window) {
                    return Err(HeError::Unsupported(format!(
                        "{n_out} outputs do not fit {} windows of {window} slots",
                        2 * (row / window)
                    )));
                }
                return Ok(Self {
                    row,
                    block,
                    blocks,
                    diagonals,
                    baby,
                    giant,
                    window,
                    phases,
                });
            }
            block *= 2;
        }
        Err(HeError::Unsupported(format!(
            "a {n_in} → {n_hidden} layer does not fit {slots} slots; use a larger ring"
        )))
    }

    /// Every left rotation the evaluation uses.
    pub fn rotations(&self) -> Vec<usize> {
        let mut r: Vec<usize> = (1..self.baby).collect();
        r.extend((1..self.giant).map(|a| a * self.baby));
        let mut s = self.block;
        while s < self.row {
            r.push(s);
            s *= 2;
        }
        r.extend((1..self.phases).map(|p| self.row - p * self.window));
        let mut s = 1;
        while s < self.window {
            r.push(s);
            s *= 2;
        }
        r.retain(|&k| k % self.row != 0);
        r.iter_mut().for_each(|k| *k %= self.row);
        r.sort_unstable();
        r.dedup();
        r
    }

    /// Input index at slot `(r, p)`, if any.
    fn input_at(&self, r: usize, p: usize, n_in: usize) -> Option<usize> {
        let (c, v) = (p / self.block, p % self.block);
        let i = (r * self.blocks + c) * self.diagonals + v % self.diagonals;
        (i < n_in).then_some(i)
    }

    /// Slot of output `o` of the second layer.
    pub fn output_slot(&self, o: usize) -> usize {
        let per_row = self.row / self.window;
        (o / per_row) * self.row + (o % per_row) * self.window
    }
}

/// The noise estimate of an evaluation plan at one level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseEstimate {
    /// Estimated noise bits at the end (before the margin).
    pub final_noise: f64,
    /// Bits of room a ciphertext has at this level: `log₂ Q − log₂ t − 1`.
    pub room: f64,
    /// Safety margin required.
    pub margin: f64,
}

impl NoiseEstimate {
    /// Estimated budget left at the end.
    pub fn budget_left(&self) -> f64 {
        self.room - self.final_noise
    }
}

struct PrimeHead<B: ExactBackend> {
    backend: B,
    t: u64,
    /// Pre-rotated diagonals, `[giant][baby]`.
    diagonals: Vec<Vec<B::Plaintext>>,
    bias1: B::Plaintext,
    w2: Vec<B::Plaintext>,
    bias2: B::Plaintext,
}

/// The client's keys: secret and public keys, one per plaintext prime. Never sent.
pub struct ClientKeys<B: Backend> {
    secret: Vec<B::SecretKey>,
    public: Vec<B::PublicKey>,
}

/// The server's keys: evaluation keys only (relinearisation and rotations), one per prime.
/// Nothing in them decrypts.
pub struct ServerKeys<B: Backend> {
    eval: Vec<B::EvalKey>,
}

impl<B: Backend> ServerKeys<B> {
    /// Serialised size in bytes (all primes).
    pub fn bytes(&self, head: &EncryptedHead<B>) -> usize
    where
        B: ExactBackend,
    {
        self.eval
            .iter()
            .zip(&head.primes)
            .map(|(k, p)| p.backend.eval_key_bytes(k))
            .sum()
    }
}

/// An encrypted input or output: one ciphertext per plaintext prime.
#[derive(Clone)]
pub struct Encrypted<B: Backend> {
    cts: Vec<B::Ciphertext>,
}

impl<B: ExactBackend> Encrypted<B> {
    /// Serialised size in bytes (all primes).
    pub fn bytes(&self, head: &EncryptedHead<B>) -> usize {
        self.cts
            .iter()
            .zip(&head.primes)
            .map(|(c, p)| p.backend.ciphertext_bytes(c))
            .sum()
    }
}

/// What the client gets back from decryption.
#[derive(Debug, Clone, PartialEq)]
pub struct Decrypted {
    /// The integer logits (CRT over the primes).
    pub logits: Vec<BigInt>,
    /// The residues per prime, `[prime][output]`.
    pub residues: Vec<Vec<u64>>,
    /// Noise budget left per prime (bits).
    pub noise_budget: Vec<f64>,
}

/// The head ready for encrypted evaluation: plaintext weights encoded for each prime, the slot
/// layout, and the checks that its parameters hold the computation.
pub struct EncryptedHead<B: ExactBackend> {
    head: QuantizedHead,
    layout: Layout,
    primes: Vec<PrimeHead<B>>,
    level: usize,
    estimate: NoiseEstimate,
}

/// Required noise-budget margin (bits) above the estimate.
pub const NOISE_MARGIN: f64 = 10.0;

impl<B: ExactBackend> EncryptedHead<B> {
    /// Prepares `head` for the backends (one per plaintext prime, same ring) at ciphertext
    /// `level` (`None`: the deepest level the noise estimate allows, which is the fastest).
    ///
    /// Refused before anything runs: [`HeError::Unsupported`] for no backends, ring sizes that
    /// differ, a plaintext prime given twice (the CRT needs distinct primes) or a `level` that a
    /// backend does not have; [`HeError::PlaintextOverflow`] when the product of the plaintext
    /// primes cannot hold the worst-case logit; [`HeError::NoiseBudget`] when the noise estimate
    /// does not fit.
    pub fn new(head: &QuantizedHead, backends: Vec<B>, level: Option<usize>) -> Result<Self> {
        let slots = backends.first().map_or(0, |b| b.slots());
        if backends.iter().any(|b| b.slots() != slots) || backends.is_empty() {
            return Err(HeError::Unsupported(
                "give one or more backends with the same ring size".into(),
            ));
        }
        let mut primes: Vec<u64> = backends.iter().map(|b| b.plaintext_modulus()).collect();
        primes.sort_unstable();
        if primes.windows(2).any(|w| w[0] == w[1]) {
            return Err(HeError::Unsupported(format!(
                "the plaintext primes must be distinct (the CRT cannot recover the logits from a \
                 prime given twice); got {primes:?}"
            )));
        }
        let deepest = backends
            .iter()
            .map(|b| b.max_level())
            .min()
            .expect("non-empty");
        if let Some(l) = level.filter(|&l| l > deepest) {
            return Err(HeError::Unsupported(format!(
                "level {l} is beyond the deepest level {deepest} of the backends"
            )));
        }
        let available_bits = backends.iter().map(|b| b.plaintext_bits()).sum::<f64>() - 1.0;
        let needed_bits = head.output_bound_bits() + 1.0;
        if needed_bits > available_bits {
            return Err(HeError::PlaintextOverflow {
                needed_bits,
                available_bits,
            });
        }
        let (n_in, n_hidden, n_out) = head.shape();
        let layout = Layout::new(slots, n_in, n_hidden, n_out)?;
        let fits = |l: usize| -> NoiseEstimate {
            backends
                .iter()
                .map(|b| estimate(b, l, &layout, head))
                .min_by(|a, b| a.budget_left().total_cmp(&b.budget_left()))
                .expect("non-empty")
        };
        let level = match level {
            Some(l) => l,
            None => (0..=deepest)
                .rev()
                .find(|&l| fits(l).budget_left() >= NOISE_MARGIN)
                .unwrap_or(0),
        };
        let estimate = fits(level);
        if estimate.budget_left() < NOISE_MARGIN {
            return Err(HeError::NoiseBudget {
                needed_bits: estimate.final_noise + NOISE_MARGIN,
                available_bits: estimate.room,
            });
        }
        let primes = backends
            .into_par_iter()
            .map(|b| encode_weights(b, head, &layout, level))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            head: head.clone(),
            layout,
            primes,
            level,
            estimate,
        })
    }

    /// The quantised head this evaluates.
    pub fn quantized(&self) -> &QuantizedHead {
        &self.head
    }

    /// The slot layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The ciphertext level evaluation runs at.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The plaintext primes.
    pub fn primes(&self) -> Vec<u64> {
        self.primes.iter().map(|p| p.t).collect()
    }

    /// The noise estimate checked before running (the tightest prime).
    pub fn estimate(&self) -> NoiseEstimate {
        self.estimate
    }

    /// Units of work of [`keygen`](Self::keygen) (for a progress bar).
    pub fn keygen_steps(&self) -> u64 {
        2 * self.primes.len() as u64
    }

    /// Units of work of [`evaluate`](Self::evaluate) (for a progress bar).
    pub fn evaluate_steps(&self) -> u64 {
        (self.layout.giant as u64 + 2) * self.primes.len() as u64
    }

    /// Generates the client's keys and the server's evaluation keys; `step` is called after
    /// each unit of work.
    pub fn keygen(&self, step: &(dyn Fn() + Sync)) -> Result<(ClientKeys<B>, ServerKeys<B>)> {
        let rotations = self.layout.rotations();
        let keys = self
            .primes
            .par_iter()
            .map(|p| {
                let sk = p.backend.secret_key()?;
                let pk = p.backend.public_key(&sk)?;
                step();
                let ek = p.backend.eval_key(&sk, self.level, &rotations, true)?;
                step();
                Ok((sk, pk, ek))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut client = ClientKeys {
            secret: Vec::new(),
            public: Vec::new(),
        };
        let mut server = ServerKeys { eval: Vec::new() };
        for (sk, pk, ek) in keys {
            client.secret.push(sk);
            client.public.push(pk);
            server.eval.push(ek);
        }
        Ok((client, server))
    }

    /// Client: quantises, lays out and encrypts an input.
    pub fn encrypt(&self, keys: &ClientKeys<B>, x: &[f32]) -> Result<Encrypted<B>> {
        let xq = self.head.quantize(x)?;
        self.encrypt_quantized(keys, &xq)
    }

    /// Client: lays out and encrypts an already quantised input.
    pub fn encrypt_quantized(&self, keys: &ClientKeys<B>, xq: &[i64]) -> Result<Encrypted<B>> {
        let (n_in, _, _) = self.head.shape();
        if xq.len() != n_in {
            return Err(HeError::Shape {
                what: "input length",
                expected: n_in,
                found: xq.len(),
            });
        }
        // The worst-case bounds hold for inputs in the quantised range, not for any value of
        // that size: with the range [0, 2], a negative input could make the logits wrap.
        let (lo_q, hi_q) = self.head.quantizer.quantized_range();
        if let Some((index, &v)) = xq
            .iter()
            .enumerate()
            .find(|(_, v)| !(lo_q..=hi_q).contains(*v))
        {
            return Err(HeError::OutOfRange {
                index,
                value: v as f64 / self.head.quantizer.scale(),
                lo: self.head.quantizer.lo,
                hi: self.head.quantizer.hi,
            });
        }
        let l = &self.layout;
        let cts = self
            .primes
            .par_iter()
            .zip(&keys.public)
            .map(|(p, pk)| {
                let mut slots = vec![0u64; 2 * l.row];
                for r in 0..2 {
                    for pos in 0..l.row {
                        if let Some(i) = l.input_at(r, pos, n_in) {
                            slots[r * l.row + pos] = residue_i64(xq[i], p.t);
                        }
                    }
                }
                p.backend
                    .encrypt(pk, &p.backend.encode(&slots, self.level)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encrypted { cts })
    }

    /// Server: evaluates the head on an encrypted input with evaluation keys only. Returns the
    /// encrypted logits and the operations used (per prime).
    pub fn evaluate(
        &self,
        keys: &ServerKeys<B>,
        input: &Encrypted<B>,
        step: &(dyn Fn() + Sync),
    ) -> Result<(Encrypted<B>, OpCount)> {
        if input.cts.len() != self.primes.len() || keys.eval.len() != self.primes.len() {
            return Err(HeError::Shape {
                what: "ciphertexts / evaluation keys per plaintext prime",
                expected: self.primes.len(),
                found: input.cts.len().min(keys.eval.len()),
            });
        }
        let results = self
            .primes
            .par_iter()
            .zip(&keys.eval)
            .zip(&input.cts)
            .map(|((p, ek), x)| self.evaluate_prime(p, ek, x, step))
            .collect::<Result<Vec<_>>>()?;
        let count = results[0].1;
        Ok((
            Encrypted {
                cts: results.into_iter().map(|(c, _)| c).collect(),
            },
            count,
        ))
    }

    fn evaluate_prime(
        &self,
        p: &PrimeHead<B>,
        ek: &B::EvalKey,
        x: &B::Ciphertext,
        step: &(dyn Fn() + Sync),
    ) -> Result<(B::Ciphertext, OpCount)> {
        let b = &p.backend;
        let l = &self.layout;
        let mut count = OpCount::default();
        if b.level(x) != self.level {
            return Err(HeError::LevelMismatch {
                left: self.level,
                right: b.level(x),
            });
        }
        // Baby steps: rot(x, j) for j < g.
        let mut baby = vec![x.clone()];
        for j in 1..l.baby.min(l.diagonals) {
            baby.push(b.rotate(ek, x, j)?);
            count.rotations += 1;
        }
        let mut acc: Option<B::Ciphertext> = None;
        for (a, diags) in p.diagonals.iter().enumerate() {
            let mut inner: Option<B::Ciphertext> = None;
            for (j, d) in diags.iter().enumerate() {
                let term = b.mul_plain(&baby[j], d)?;
                count.plain_products += 1;
                match inner.as_mut() {
                    Some(s) => b.add_assign(s, &term)?,
                    None => inner = Some(term),
                }
            }
            let mut inner = inner.expect("every giant step has a diagonal");
            if a > 0 {
                inner = b.rotate(ek, &inner, a * l.baby)?;
                count.rotations += 1;
            }
            match acc.as_mut() {
                Some(s) => b.add_assign(s, &inner)?,
                None => acc = Some(inner),
            }
            step();
        }
        let mut acc = acc.expect("at least one diagonal");
        let mut s = l.block;
        while s < l.row {
            let r = b.rotate(ek, &acc, s)?;
            b.add_assign(&mut acc, &r)?;
            count.rotations += 1;
            s *= 2;
        }
        let r = b.swap_rows(ek, &acc)?;
        b.add_assign(&mut acc, &r)?;
        count.rotations += 1;
        let z = b.add_plain(&acc, &p.bias1)?;
        // Activation.
        let (h, poly_count) = self.head.poly.evaluate(b, ek, &z, p.t)?;
        count.products += poly_count.products;
        count.scalar_products += poly_count.scalar_products;
        count.depth = poly_count.depth;
        step();
        // Second layer.
        let mut out = b.mul_plain(&h, &p.w2[0])?;
        count.plain_products += 1;
        for (ph, w) in p.w2.iter().enumerate().skip(1) {
            let shifted = b.rotate(ek, &h, l.row - ph * l.window)?;
            count.rotations += 1;
            let term = b.mul_plain(&shifted, w)?;
            count.plain_products += 1;
            b.add_assign(&mut out, &term)?;
        }
        let mut s = 1;
        while s < l.window {
            let r = b.rotate(ek, &out, s)?;
            b.add_assign(&mut out, &r)?;
            count.rotations += 1;
            s *= 2;
        }
        let out = b.add_plain(&out, &p.bias2)?;
        step();
        Ok((out, count))
    }

    /// Client: decrypts the logits (CRT over the primes) and measures the noise budget left.
    pub fn decrypt(&self, keys: &ClientKeys<B>, out: &Encrypted<B>) -> Result<Decrypted> {
        let (_, _, n_out) = self.head.shape();
        let per_prime = self
            .primes
            .iter()
            .zip(&keys.secret)
            .zip(&out.cts)
            .map(|((p, sk), ct)| {
                let slots = p.backend.decrypt(sk, ct)?;
                let res: Vec<u64> = (0..n_out)
                    .map(|o| slots[self.layout.output_slot(o)])
                    .collect();
                Ok((res, p.backend.noise_budget(sk, ct)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let primes = self.primes();
        let logits = (0..n_out)
            .map(|o| {
                let r: Vec<u64> = per_prime.iter().map(|(res, _)| res[o]).collect();
                crt(&r, &primes)
            })
            .collect();
        Ok(Decrypted {
            logits,
            residues: per_prime.iter().map(|(r, _)| r.clone()).collect(),
            noise_budget: per_prime.iter().map(|(_, n)| *n).collect(),
        })
    }

    /// The residues the simulation predicts, `[prime][output]`, for a bit-for-bit comparison
    /// with [`Decrypted::residues`].
    pub fn expected_residues(&self, logits: &[BigInt]) -> Vec<Vec<u64>> {
        self.primes
            .iter()
            .map(|p| logits.iter().map(|l| residue(l, p.t)).collect())
            .collect()
    }
}

fn encode_weights<B: ExactBackend>(
    backend: B,
    head: &QuantizedHead,
    l: &Layout,
    level: usize,
) -> Result<PrimeHead<B>> {
    let t = backend.plaintext_modulus();
    let (n_in, n_hidden, n_out) = head.shape();
    let n = 2 * l.row;
    let mut diagonals = Vec::with_capacity(l.giant);
    for a in 0..l.giant {
        let mut row = Vec::with_capacity(l.baby);
        for j in 0..l.baby {
            let k = a * l.baby + j;
            if k >= l.diagonals {
                break;
            }
            let mut v = vec![0u64; n];
            for r in 0..2 {
                for c in 0..l.blocks {
                    for o in 0..n_hidden {
                        let i = (r * l.blocks + c) * l.diagonals + (o + k) % l.diagonals;
                        if i < n_in {
                            // D_k at p = c·B + o, pre-rotated right by a·g.
                            let p = (c * l.block + o + a * l.baby) % l.row;
                            v[r * l.row + p] = residue_i64(head.w1[o * n_in + i], t);
                        }
                    }
                }
            }
            row.push(backend.encode(&v, level)?);
        }
        diagonals.push(row);
    }
    let mut b1 = vec![0u64; n];
    for r in 0..2 {
        for c in 0..l.blocks {
            for o in 0..n_hidden {
                b1[r * l.row + c * l.block + o] = residue_i64(head.b1[o], t);
            }
        }
    }
    let per_row = l.row / l.window;
    let mut w2 = vec![vec![0u64; n]; l.phases];
    let mut b2 = vec![0u64; n];
    for o in 0..n_out {
        let slot = l.output_slot(o);
        let (r, u) = (o / per_row, o % per_row);
        let phase = u % l.phases;
        for j in 0..n_hidden {
            w2[phase][r * l.row + u * l.window + j] = residue_i64(head.w2[o * n_hidden + j], t);
        }
        b2[slot] = residue(&head.b2[o], t);
    }
    Ok(PrimeHead {
        diagonals,
        bias1: backend.encode(&b1, level)?,
        w2: w2
            .iter()
            .map(|v| backend.encode(v, level))
            .collect::<Result<_>>()?,
        bias2: backend.encode(&b2, level)?,
        t,
        backend,
    })
}

fn estimate<B: ExactBackend>(
    b: &B,
    level: usize,
    l: &Layout,
    head: &QuantizedHead,
) -> NoiseEstimate {
    let m = NoiseModel::for_backend(b, level);
    let mut v = m.fresh();
    // First layer: baby rotations, products, sum, giant rotations, folds.
    v = m.key_switched(v);
    v = m.sum(m.plain_product(v), l.baby);
    v = m.sum(m.key_switched(v), l.giant);
    let folds = (l.row / l.block).trailing_zeros() as usize + 1;
    for _ in 0..folds {
        v = m.sum(m.key_switched(v), 2);
    }
    // Activation, by its plan.
    let plan = head.poly.plan();
    let mut regs = vec![v];
    for s in &plan.steps {
        let nv = match s {
            Step::Product { lhs, rhs } => m.product(regs[*lhs], regs[*rhs]),
            Step::Combine { terms, plus, .. } => {
                let worst = terms
                    .iter()
                    .map(|&(r, _)| m.scalar_product(regs[r], m.log_t))
                    .chain(plus.map(|r| regs[r]))
                    .fold(0.0, f64::max);
                m.sum(worst, terms.len() + 2)
            }
        };
        regs.push(nv);
    }
    v = *regs.last().expect("input register");
    // Second layer.
    v = m.sum(m.plain_product(m.key_switched(v)), l.phases);
    for _ in 0..l.window.trailing_zeros() {
        v = m.sum(m.key_switched(v), 2);
    }
    NoiseEstimate {
        final_noise: v,
        room: b.modulus_bits(level) - b.plaintext_bits() - 1.0,
        margin: NOISE_MARGIN,
    }
}

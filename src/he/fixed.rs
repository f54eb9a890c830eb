//! Fixed point for exact (BFV) evaluation: quantisation, integer polynomials from exact
//! coefficients, worst-case bounds, CRT reconstruction, and the noise estimate.
//!
//! A real `x` is carried as the integer `z = round(x · 2^s)`. A polynomial `p(x) = Σ cₖ xᵏ` of
//! degree `d` with rational coefficients becomes the integer polynomial
//! `P(z) = Σ Aₖ zᵏ` with `Aₖ = cₖ · L · 2^{s(d−k)}` and `L` the least common multiple of the
//! coefficients' denominators, so that `P(z) = L · 2^{sd} · p(z / 2^s)` **exactly**: no rounding
//! of coefficients, and BFV (integers modulo `t`) computes `P(z) mod t` without error. The
//! result is recovered from several plaintext primes by the Chinese remainder theorem, which is
//! exact as long as `|result| < (Π tᵢ)/2`. Worst-case bounds ([`IntPolynomial::abs_bound`])
//! tell whether it is; [`EncryptedHead::new`](crate::he::head::EncryptedHead::new) refuses
//! primes too small for them before anything runs ([`IntPolynomial::evaluate`] itself checks
//! neither the bound nor the noise).

use num_bigint::{BigInt, BigUint, Sign};
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::backend::{Backend, ExactBackend};
use super::{HeError, Result};
use crate::Polynomial;
use crate::plan::Plan;

/// The exact rational coefficients of `p`, ascending powers.
///
/// This is the one place the encrypted evaluator reads a [`Polynomial`]'s coefficients (through
/// `coefficients()` and `Coefficient::as_rational()`): adapt it here if that API changes.
pub fn exact_coefficients(p: &Polynomial) -> Result<Vec<BigRational>> {
    p.coefficients()
        .iter()
        .enumerate()
        .map(|(power, c)| {
            c.as_rational()
                .cloned()
                .ok_or(HeError::InexactCoefficient { power })
        })
        .collect()
}

/// `x mod t` as a residue in `0..t`.
pub fn residue(x: &BigInt, t: u64) -> u64 {
    let r = x % BigInt::from(t);
    let r = if r.sign() == Sign::Minus {
        r + BigInt::from(t)
    } else {
        r
    };
    r.to_u64().expect("a residue below t fits in u64")
}

/// `x mod t` for a machine integer.
pub fn residue_i64(x: i64, t: u64) -> u64 {
    x.rem_euclid(t as i64) as u64
}

/// The integer congruent to `residues[i]` modulo `primes[i]` for every `i`, in the centred range
/// `(−M/2, M/2]` with `M = Π primes` (exact when the true value lies there).
pub fn crt(residues: &[u64], primes: &[u64]) -> BigInt {
    let m: BigInt = primes.iter().map(|&p| BigInt::from(p)).product();
    let mut x = BigInt::zero();
    for (&r, &p) in residues.iter().zip(primes) {
        let p_big = BigInt::from(p);
        let mi = &m / &p_big;
        // inverse of mi mod p by Fermat (p prime)
        let mi_mod = residue(&mi, p);
        let inv = BigUint::from(mi_mod).modpow(&BigUint::from(p - 2), &BigUint::from(p));
        x += BigInt::from(r) * &mi * BigInt::from(inv);
    }
    let mut x = x % &m;
    if x.sign() == Sign::Minus {
        x += &m;
    }
    if &x * 2 > m { x - m } else { x }
}

/// log₂ of a non-negative big integer (`−∞` for zero).
pub fn log2(x: &BigInt) -> f64 {
    let x = x.abs();
    if x.is_zero() {
        return f64::NEG_INFINITY;
    }
    let bits = x.bits();
    let shift = bits.saturating_sub(60);
    let top = (&x >> shift).to_f64().expect("60 bits fit");
    top.log2() + shift as f64
}

/// Uniform quantiser of reals in `[lo, hi]` to integers `round(x · 2^bits)`.
///
/// ```
/// use polyact::he::fixed::Quantizer;
/// let q = Quantizer::new(4, 0.0, 2.0);
/// assert_eq!(q.quantize(&[0.0, 0.5, 1.97])?, vec![0, 8, 32]);
/// assert!(q.quantize(&[2.5]).is_err()); // outside the declared range: a typed error
/// # Ok::<(), polyact::he::HeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    /// Fractional bits: the scale is `2^bits`.
    pub bits: u32,
    /// Smallest value accepted.
    pub lo: f64,
    /// Largest value accepted.
    pub hi: f64,
}

impl Quantizer {
    /// A quantiser with scale `2^bits` accepting values in `[lo, hi]`.
    pub fn new(bits: u32, lo: f64, hi: f64) -> Self {
        Self { bits, lo, hi }
    }

    /// The scale `2^bits`.
    pub fn scale(&self) -> f64 {
        (self.bits as f64).exp2()
    }

    /// Quantises every value, or names the first one outside `[lo, hi]` (NaN included).
    pub fn quantize(&self, x: &[f32]) -> Result<Vec<i64>> {
        x.iter()
            .enumerate()
            .map(|(index, &v)| {
                let v = f64::from(v);
                if v >= self.lo && v <= self.hi {
                    Ok((v * self.scale()).round() as i64)
                } else {
                    Err(HeError::OutOfRange {
                        index,
                        value: v,
                        lo: self.lo,
                        hi: self.hi,
                    })
                }
            })
            .collect()
    }

    /// The quantised range: `[lo, hi]` times the scale, rounded as [`quantize`](Self::quantize)
    /// rounds. Every quantised input lies in it, and the head's worst-case bounds assume so.
    pub fn quantized_range(&self) -> (i64, i64) {
        (
            (self.lo * self.scale()).round() as i64,
            (self.hi * self.scale()).round() as i64,
        )
    }

    /// Largest absolute quantised value.
    ///
    /// ```
    /// use polyact::he::fixed::Quantizer;
    /// let q = Quantizer::new(4, -2.5, 1.0);
    /// assert_eq!(q.quantized_range(), (-40, 16));
    /// assert_eq!(q.max_abs(), 40);
    /// ```
    pub fn max_abs(&self) -> i64 {
        let (lo, hi) = self.quantized_range();
        lo.abs().max(hi.abs())
    }
}

/// What an encrypted evaluation actually did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpCount {
    /// Ciphertext × ciphertext products (with relinearisation).
    pub products: usize,
    /// Multiplicative depth (ciphertext products on the longest path).
    pub depth: u32,
    /// Ciphertext × plaintext products (vectors, not constants).
    pub plain_products: usize,
    /// Ciphertext × constant products.
    pub scalar_products: usize,
    /// Rotations (including row swaps).
    pub rotations: usize,
}

impl std::ops::AddAssign for OpCount {
    fn add_assign(&mut self, o: OpCount) {
        self.products += o.products;
        self.depth += o.depth;
        self.plain_products += o.plain_products;
        self.scalar_products += o.scalar_products;
        self.rotations += o.rotations;
    }
}

/// A polynomial with exact rational coefficients turned into an integer polynomial for inputs
/// in fixed point with `s` fractional bits: `P(z) = Σ Aₖ zᵏ = L · 2^{sd} · p(z / 2^s)`.
///
/// ```
/// use polyact::he::fixed::IntPolynomial;
/// let p = polyact::presets::m_sigmoid(); // 1/2 + 2161/10800·x − 29/9000·x³ + 1/2700000·x⁵
/// let ip = IntPolynomial::new(&p, 4)?;
/// assert_eq!(ip.denominator_lcm().to_string(), "2700000");
/// // z = 32 stands for x = 2: P(32) / (L · 2^(4·5)) = p(2) exactly.
/// let exact = ip.eval_int(32);
/// let value = exact.to_string().parse::<f64>().unwrap() / ip.output_scale();
/// assert!((value - p.eval(2.0_f64)).abs() < 1e-12);
/// assert_eq!((ip.plan().products, ip.plan().depth), (3, 3));
/// # Ok::<(), polyact::he::HeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IntPolynomial {
    coefficients: Vec<BigInt>,
    lcm: BigInt,
    input_bits: u32,
    plan: Plan,
}

impl IntPolynomial {
    /// The integer polynomial of `p` for inputs with `input_bits` fractional bits.
    pub fn new(p: &Polynomial, input_bits: u32) -> Result<Self> {
        let c = exact_coefficients(p)?;
        let degree = c.iter().rposition(|v| !v.is_zero()).unwrap_or(0);
        let c = &c[..(degree + 1).min(c.len())];
        let lcm = c
            .iter()
            .fold(BigInt::one(), |l, v| num_integer_lcm(&l, v.denom()));
        let coefficients = c
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let a = v * BigRational::from_integer(lcm.clone());
                debug_assert!(a.is_integer());
                a.to_integer() << (input_bits as usize * (degree - k))
            })
            .collect::<Vec<_>>();
        let nonzero: Vec<bool> = coefficients.iter().map(|a| !a.is_zero()).collect();
        Ok(Self {
            plan: Plan::new(&nonzero),
            coefficients,
            lcm,
            input_bits,
        })
    }

    /// The integer coefficients `Aₖ`, ascending.
    pub fn coefficients(&self) -> &[BigInt] {
        &self.coefficients
    }

    /// `L`, the least common multiple of the coefficients' denominators.
    pub fn denominator_lcm(&self) -> &BigInt {
        &self.lcm
    }

    /// The degree.
    pub fn degree(&self) -> usize {
        self.coefficients.len().saturating_sub(1)
    }

    /// `L · 2^{sd}`: the output's scale (as a float, for display).
    pub fn output_scale(&self) -> f64 {
        self.lcm.to_f64().unwrap_or(f64::INFINITY)
            * ((self.input_bits as usize * self.degree()) as f64).exp2()
    }

    /// The evaluation plan (products and depth that [`evaluate`](Self::evaluate) uses).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// `P(z)` exactly (by the same plan that runs encrypted).
    pub fn eval_int(&self, z: i64) -> BigInt {
        self.eval_big(&BigInt::from(z))
    }

    /// `P(z)` exactly for a big integer input.
    pub fn eval_big(&self, z: &BigInt) -> BigInt {
        let a = &self.coefficients;
        self.plan
            .run::<BigInt, ()>(
                z.clone(),
                |x, y| Ok(x * y),
                |terms, c, plus| {
                    let mut s = c.map_or_else(BigInt::zero, |i| a[i].clone());
                    for (v, i) in terms {
                        s += *v * &a[*i];
                    }
                    if let Some(p) = plus {
                        s += p;
                    }
                    Ok(s)
                },
            )
            .expect("infallible")
    }

    /// The worst case of `|P(z)|` for `|z| ≤ bound`: `Σ |Aₖ| boundᵏ`.
    pub fn abs_bound(&self, bound: &BigInt) -> BigInt {
        let mut pow = BigInt::one();
        let mut s = BigInt::zero();
        for a in &self.coefficients {
            s += a.abs() * &pow;
            pow *= bound;
        }
        s
    }

    /// Evaluates `P` slot-wise on `x` (slots hold residues of `z` modulo the backend's prime `t`)
    /// by the [plan](Self::plan); returns the result and the operations used.
    pub fn evaluate<B: ExactBackend>(
        &self,
        backend: &B,
        ek: &B::EvalKey,
        x: &B::Ciphertext,
        t: u64,
    ) -> Result<(B::Ciphertext, OpCount)> {
        let level = backend.level(x);
        let mut count = OpCount::default();
        let a = &self.coefficients;
        // Track depth per register alongside the ciphertexts.
        let out = self.plan.run::<(B::Ciphertext, u32), HeError>(
            (x.clone(), 0),
            |(u, du), (v, dv)| {
                count.products += 1;
                Ok((backend.mul(ek, u, v)?, du.max(dv) + 1))
            },
            |terms, c, plus| {
                let mut acc: Option<B::Ciphertext> = plus.map(|(p, _)| p.clone());
                let mut depth = plus.map_or(0, |(_, d)| *d);
                for ((v, dv), i) in terms {
                    depth = depth.max(*dv);
                    let r = residue(&a[*i], t);
                    count.scalar_products += 1;
                    let term = backend.mul_scalar(v, &backend.encode_scalar(r, level)?)?;
                    match acc.as_mut() {
                        Some(s) => backend.add_assign(s, &term)?,
                        None => acc = Some(term),
                    }
                }
                let mut acc = match acc {
                    Some(s) => s,
                    None => backend.mul_scalar(x, &backend.encode_scalar(0, level)?)?,
                };
                if let Some(i) = c {
                    acc = backend
                        .add_plain(&acc, &backend.encode_scalar(residue(&a[i], t), level)?)?;
                }
                Ok((acc, depth))
            },
        )?;
        count.depth = out.1;
        Ok((out.0, count))
    }
}

fn num_integer_lcm(a: &BigInt, b: &BigInt) -> BigInt {
    let (a, b) = (a.abs(), b.abs());
    if a.is_zero() || b.is_zero() {
        return BigInt::zero();
    }
    let g = gcd(a.clone(), b.clone());
    a / g * b
}

fn gcd(mut a: BigInt, mut b: BigInt) -> BigInt {
    while !b.is_zero() {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}

/// A conservative estimate of BFV noise growth, in bits of the noise's infinity norm.
///
/// Decryption is correct while the noise stays below `Q / (2t)`; the budget is
/// `log₂ Q − log₂ t − 1 − noise`. The constants are upper estimates checked against fhe.rs'
/// measured noise in the tests and the example (the measured budget must stay above the
/// estimate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseModel {
    /// log₂ N.
    pub log_n: f64,
    /// log₂ t.
    pub log_t: f64,
    /// Bits of noise a key switch (relinearisation, rotation) adds: about
    /// `log₂(levels · N · q_max · σ)` for fhe.rs' RNS gadget without a special prime.
    pub key_switch: f64,
}

impl NoiseModel {
    /// The model for a backend at `level`.
    pub fn for_backend<B: Backend>(backend: &B, level: usize) -> Self {
        let log_n = (backend.slots() as f64).log2();
        let kept = backend.max_level() + 1 - level;
        let q_max = backend.modulus_bits(level) / kept as f64;
        Self {
            log_n,
            log_t: backend.plaintext_bits(),
            key_switch: (kept as f64).log2() + log_n + q_max + 6.0,
        }
    }

    /// Noise of a fresh encryption (after switching down to the working level).
    pub fn fresh(&self) -> f64 {
        self.log_n + self.log_t + 8.0
    }

    /// After a key switch (rotation or relinearisation) of noise `v`.
    pub fn key_switched(&self, v: f64) -> f64 {
        v.max(self.key_switch) + 1.0
    }

    /// After a product with a vector plaintext (coefficients up to t/2).
    pub fn plain_product(&self, v: f64) -> f64 {
        v + self.log_n + self.log_t
    }

    /// After a product with a constant of `bits` bits.
    pub fn scalar_product(&self, v: f64, bits: f64) -> f64 {
        v + bits.min(self.log_t)
    }

    /// After summing `n` values of noise `v`.
    pub fn sum(&self, v: f64, n: usize) -> f64 {
        v + (n.max(1) as f64).log2()
    }

    /// After a ciphertext product (with relinearisation) of noises `u`, `v`.
    pub fn product(&self, u: f64, v: f64) -> f64 {
        self.key_switched(u.max(v) + self.log_t + self.log_n + 4.0)
    }
}

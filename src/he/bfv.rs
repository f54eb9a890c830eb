//! [`Backend`] on fhe.rs 0.1.1 (BFV, RNS, pure Rust; never independently audited).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use fhe::bfv::{
    BfvParameters, BfvParametersBuilder, Ciphertext, Encoding, EvaluationKey, EvaluationKeyBuilder,
    Plaintext, PublicKey, RelinearizationKey, SecretKey,
};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter, Serialize};
use rand::RngCore;

use super::backend::{Backend, ExactBackend};
use super::{HeError, Result};

fn lib(e: fhe::Error) -> HeError {
    HeError::Backend(e.to_string())
}

/// Which published parameter table a [`Bfv`] instance follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Ring degree and ciphertext moduli from `BfvParameters::default_parameters_128`:
    /// about 128-bit security for a ternary secret by the homomorphicencryption.org standard
    /// (N = 16384: 438-bit modulus; N = 8192: 218 bits).
    Bits128,
    /// Small parameters for tests and demonstrations. **Not secure.**
    Insecure,
}

/// BFV on fhe.rs with one plaintext prime `t ≡ 1 (mod 2N)` (SIMD slots: 2 rows of N/2).
///
/// Each instance gets an identifier from its parameters; ciphertexts, plaintexts and keys carry
/// the identifiers of the instance and key set that made them, and every operation checks them
/// ([`HeError::ParameterMismatch`], [`HeError::KeyMismatch`]) instead of computing garbage.
///
/// ```
/// use polyact::he::{Backend, Bfv};
/// // Insecure toy parameters: N = 1024, plaintext prime of 20 bits.
/// let bfv = Bfv::insecure(1024, &[50, 50, 50], 20)?;
/// let sk = bfv.secret_key()?;
/// let pk = bfv.public_key(&sk)?;
/// let ek = bfv.eval_key(&sk, 0, &[1], false)?;
/// let x = bfv.encrypt(&pk, &bfv.encode(&[1, 2, 3], 0)?)?;
/// let y = bfv.mul(&ek, &x, &x)?; // 1, 4, 9, 0, ...
/// let y = bfv.rotate(&ek, &y, 1)?; // 4, 9, 0, ...
/// assert_eq!(&bfv.decrypt(&sk, &y)?[..3], &[4, 9, 0]);
/// assert!(bfv.noise_budget(&sk, &y)? > 0.0);
/// # Ok::<(), polyact::he::HeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Bfv {
    par: Arc<BfvParameters>,
    id: u64,
    security: Security,
}

/// A BFV secret key with the identifiers it was made under.
pub struct BfvSecretKey {
    sk: SecretKey,
    key_id: u64,
    par_id: u64,
}

/// A BFV public key.
pub struct BfvPublicKey {
    pk: PublicKey,
    key_id: u64,
    par_id: u64,
}

/// BFV evaluation keys: relinearisation and rotations, for ciphertexts at one level.
pub struct BfvEvalKey {
    ek: EvaluationKey,
    rk: RelinearizationKey,
    level: usize,
    key_id: u64,
    par_id: u64,
}

/// An encoded BFV plaintext.
pub struct BfvPlaintext {
    pt: Plaintext,
    level: usize,
    par_id: u64,
}

/// A BFV ciphertext.
#[derive(Clone)]
pub struct BfvCiphertext {
    ct: Ciphertext,
    level: usize,
    key_id: u64,
    par_id: u64,
}

impl Bfv {
    /// 128-bit parameters (homomorphicencryption.org table, as in
    /// `BfvParameters::default_parameters_128`) of ring degree `degree` (8192 or 16384 here)
    /// with the plaintext prime `plaintext` (prime, `≡ 1 mod 2·degree`, below the first
    /// ciphertext modulus).
    pub fn secure(degree: usize, plaintext: u64) -> Result<Self> {
        let moduli: &[u64] = match degree {
            8192 => &[
                0x7fffffd8001,
                0x7fffffc8001,
                0xfffffffc001,
                0xffffff6c001,
                0xfffffebc001,
            ],
            16384 => &[
                0xfffffffd8001,
                0xfffffffa0001,
                0xfffffff00001,
                0x1fffffff68001,
                0x1fffffff50001,
                0x1ffffffee8001,
                0x1ffffffea0001,
                0x1ffffffe88001,
                0x1ffffffe48001,
            ],
            _ => {
                return Err(HeError::Unsupported(format!(
                    "no 128-bit parameter set for ring degree {degree} (use 8192 or 16384)"
                )));
            }
        };
        let par = BfvParametersBuilder::new()
            .set_degree(degree)
            .set_plaintext_modulus(plaintext)
            .set_moduli(moduli)
            .build_arc()
            .map_err(lib)?;
        Ok(Self::from_parameters(par, Security::Bits128))
    }

    /// Small, fast, **insecure** parameters for tests: ring degree `degree`, ciphertext moduli of
    /// the given bit sizes, and the largest prime plaintext modulus of `plaintext_bits` bits with
    /// SIMD slots.
    pub fn insecure(degree: usize, moduli_bits: &[usize], plaintext_bits: usize) -> Result<Self> {
        let t = plaintext_primes(plaintext_bits, degree, 1)?[0];
        Self::insecure_with_plaintext(degree, moduli_bits, t)
    }

    /// Like [`insecure`](Self::insecure) with a given plaintext prime.
    pub fn insecure_with_plaintext(degree: usize, moduli_bits: &[usize], t: u64) -> Result<Self> {
        let par = BfvParametersBuilder::new()
            .set_degree(degree)
            .set_plaintext_modulus(t)
            .set_moduli_sizes(moduli_bits)
            .build_arc()
            .map_err(lib)?;
        Ok(Self::from_parameters(par, Security::Insecure))
    }

    fn from_parameters(par: Arc<BfvParameters>, security: Security) -> Self {
        let mut h = DefaultHasher::new();
        par.degree().hash(&mut h);
        par.moduli().hash(&mut h);
        par.plaintext().hash(&mut h);
        Self {
            id: h.finish(),
            par,
            security,
        }
    }

    /// The ring degree `N`.
    pub fn degree(&self) -> usize {
        self.par.degree()
    }

    /// Which parameter table these parameters follow.
    pub fn security(&self) -> Security {
        self.security
    }

    fn check_par(&self, par_id: u64) -> Result<()> {
        if par_id == self.id {
            Ok(())
        } else {
            Err(HeError::ParameterMismatch {
                expected: self.id,
                found: par_id,
            })
        }
    }

    fn check_ct(&self, ct: &BfvCiphertext, key_id: u64) -> Result<()> {
        self.check_par(ct.par_id)?;
        if ct.key_id == key_id {
            Ok(())
        } else {
            Err(HeError::KeyMismatch {
                expected: key_id,
                found: ct.key_id,
            })
        }
    }

    fn check_pair(&self, a: &BfvCiphertext, b: &BfvCiphertext) -> Result<()> {
        self.check_ct(b, a.key_id)?;
        self.check_par(a.par_id)?;
        same_level(a.level, b.level)
    }

    fn check_plain(&self, a: &BfvCiphertext, pt: &BfvPlaintext) -> Result<()> {
        self.check_par(a.par_id)?;
        self.check_par(pt.par_id)?;
        same_level(a.level, pt.level)
    }

    fn check_eval(&self, ek: &BfvEvalKey, a: &BfvCiphertext) -> Result<()> {
        self.check_par(ek.par_id)?;
        self.check_ct(a, ek.key_id)?;
        same_level(ek.level, a.level)
    }

    fn check_level(&self, level: usize) -> Result<()> {
        if level <= self.par.max_level() {
            Ok(())
        } else {
            Err(HeError::Unsupported(format!(
                "level {level} is beyond the deepest level {}",
                self.par.max_level()
            )))
        }
    }
}

fn same_level(a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(HeError::LevelMismatch { left: a, right: b })
    }
}

/// `count` distinct primes of `bits` bits, each `≡ 1 (mod 2·degree)` (so BFV has SIMD slots),
/// largest first.
pub fn plaintext_primes(bits: usize, degree: usize, count: usize) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(count);
    let mut upper = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    while out.len() < count {
        match fhe_math::zq::primes::generate_prime(bits, 2 * degree as u64, upper) {
            Some(p) => {
                out.push(p);
                upper = p - 1;
            }
            None => {
                return Err(HeError::Unsupported(format!(
                    "only {} primes of {bits} bits are 1 mod {}",
                    out.len(),
                    2 * degree
                )));
            }
        }
    }
    Ok(out)
}

impl Backend for Bfv {
    type Value = u64;
    type SecretKey = BfvSecretKey;
    type PublicKey = BfvPublicKey;
    type EvalKey = BfvEvalKey;
    type Plaintext = BfvPlaintext;
    type Ciphertext = BfvCiphertext;

    fn slots(&self) -> usize {
        self.par.degree()
    }

    fn rows(&self) -> usize {
        2
    }

    fn modulus_bits(&self, level: usize) -> f64 {
        let kept = self.par.moduli().len().saturating_sub(level);
        self.par.moduli()[..kept]
            .iter()
            .map(|&q| (q as f64).log2())
            .sum()
    }

    fn plaintext_bits(&self) -> f64 {
        (self.par.plaintext() as f64).log2()
    }

    fn max_level(&self) -> usize {
        self.par.max_level()
    }

    fn secret_key(&self) -> Result<BfvSecretKey> {
        let mut rng = rand::rng();
        Ok(BfvSecretKey {
            sk: SecretKey::random(&self.par, &mut rng),
            key_id: rng.next_u64(),
            par_id: self.id,
        })
    }

    fn public_key(&self, sk: &BfvSecretKey) -> Result<BfvPublicKey> {
        self.check_par(sk.par_id)?;
        Ok(BfvPublicKey {
            pk: PublicKey::new(&sk.sk, &mut rand::rng()),
            key_id: sk.key_id,
            par_id: self.id,
        })
    }

    fn eval_key(
        &self,
        sk: &BfvSecretKey,
        level: usize,
        rotations: &[usize],
        row_swap: bool,
    ) -> Result<BfvEvalKey> {
        self.check_par(sk.par_id)?;
        self.check_level(level)?;
        let mut rng = rand::rng();
        let mut builder = EvaluationKeyBuilder::new_leveled(&sk.sk, level, level).map_err(lib)?;
        for &k in rotations {
            if k == 0 || k >= self.par.degree() / 2 {
                return Err(HeError::Unsupported(format!(
                    "rotation by {k}: rotations must be in 1..{}",
                    self.par.degree() / 2
                )));
            }
            builder.enable_column_rotation(k).map_err(lib)?;
        }
        if row_swap {
            builder.enable_row_rotation().map_err(lib)?;
        }
        Ok(BfvEvalKey {
            ek: builder.build(&mut rng).map_err(lib)?,
            rk: RelinearizationKey::new_leveled(&sk.sk, level, level, &mut rng).map_err(lib)?,
            level,
            key_id: sk.key_id,
            par_id: self.id,
        })
    }

    fn eval_key_bytes(&self, ek: &BfvEvalKey) -> usize {
        ek.ek.to_bytes().len() + ek.rk.to_bytes().len()
    }

    fn encode(&self, values: &[u64], level: usize) -> Result<BfvPlaintext> {
        self.check_level(level)?;
        let t = self.par.plaintext();
        if let Some(&v) = values.iter().find(|&&v| v >= t) {
            return Err(HeError::Unsupported(format!(
                "value {v} is not a residue modulo the plaintext modulus {t}"
            )));
        }
        Ok(BfvPlaintext {
            pt: Plaintext::try_encode(values, Encoding::simd_at_level(level), &self.par)
                .map_err(lib)?,
            level,
            par_id: self.id,
        })
    }

    fn encode_scalar(&self, value: u64, level: usize) -> Result<BfvPlaintext> {
        self.check_level(level)?;
        let value = value % self.par.plaintext();
        Ok(BfvPlaintext {
            pt: Plaintext::try_encode(&[value][..], Encoding::poly_at_level(level), &self.par)
                .map_err(lib)?,
            level,
            par_id: self.id,
        })
    }

    fn encrypt(&self, pk: &BfvPublicKey, pt: &BfvPlaintext) -> Result<BfvCiphertext> {
        self.check_par(pk.par_id)?;
        self.check_par(pt.par_id)?;
        Ok(BfvCiphertext {
            ct: pk.pk.try_encrypt(&pt.pt, &mut rand::rng()).map_err(lib)?,
            level: pt.level,
            key_id: pk.key_id,
            par_id: self.id,
        })
    }

    fn decrypt(&self, sk: &BfvSecretKey, ct: &BfvCiphertext) -> Result<Vec<u64>> {
        self.check_par(sk.par_id)?;
        self.check_ct(ct, sk.key_id)?;
        let pt = sk.sk.try_decrypt(&ct.ct).map_err(lib)?;
        Vec::<u64>::try_decode(&pt, Encoding::simd_at_level(ct.level)).map_err(lib)
    }

    fn noise_budget(&self, sk: &BfvSecretKey, ct: &BfvCiphertext) -> Result<f64> {
        self.check_par(sk.par_id)?;
        self.check_ct(ct, sk.key_id)?;
        // SAFETY: `measure_noise` is unsafe only because its running time depends on the noise
        // (a side channel); it is a client-side diagnostic here, never run by the server.
        let noise = unsafe { sk.sk.measure_noise(&ct.ct) }.map_err(lib)? as f64;
        let room = self.modulus_bits(ct.level) - self.plaintext_bits() - 1.0;
        Ok((room - noise).max(0.0))
    }

    fn ciphertext_bytes(&self, ct: &BfvCiphertext) -> usize {
        ct.ct.to_bytes().len()
    }

    fn level(&self, ct: &BfvCiphertext) -> usize {
        ct.level
    }

    fn add(&self, a: &BfvCiphertext, b: &BfvCiphertext) -> Result<BfvCiphertext> {
        self.check_pair(a, b)?;
        Ok(a.with(&a.ct + &b.ct))
    }

    fn add_assign(&self, a: &mut BfvCiphertext, b: &BfvCiphertext) -> Result<()> {
        self.check_pair(a, b)?;
        a.ct += &b.ct;
        Ok(())
    }

    fn add_plain(&self, a: &BfvCiphertext, pt: &BfvPlaintext) -> Result<BfvCiphertext> {
        self.check_plain(a, pt)?;
        Ok(a.with(&a.ct + &pt.pt))
    }

    fn mul_plain(&self, a: &BfvCiphertext, pt: &BfvPlaintext) -> Result<BfvCiphertext> {
        self.check_plain(a, pt)?;
        Ok(a.with(&a.ct * &pt.pt))
    }

    fn mul_scalar(&self, a: &BfvCiphertext, c: &BfvPlaintext) -> Result<BfvCiphertext> {
        self.mul_plain(a, c)
    }

    fn mul(&self, ek: &BfvEvalKey, a: &BfvCiphertext, b: &BfvCiphertext) -> Result<BfvCiphertext> {
        self.check_pair(a, b)?;
        self.check_eval(ek, a)?;
        let mut ct = &a.ct * &b.ct;
        ek.rk.relinearizes(&mut ct).map_err(lib)?;
        Ok(a.with(ct))
    }

    fn rotate(&self, ek: &BfvEvalKey, a: &BfvCiphertext, k: usize) -> Result<BfvCiphertext> {
        self.check_eval(ek, a)?;
        if !ek.ek.supports_column_rotation_by(k) {
            return Err(HeError::MissingRotationKey { rotation: k });
        }
        Ok(a.with(ek.ek.rotates_columns_by(&a.ct, k).map_err(lib)?))
    }

    fn swap_rows(&self, ek: &BfvEvalKey, a: &BfvCiphertext) -> Result<BfvCiphertext> {
        self.check_eval(ek, a)?;
        if !ek.ek.supports_row_rotation() {
            return Err(HeError::MissingRotationKey { rotation: 0 });
        }
        Ok(a.with(ek.ek.rotates_rows(&a.ct).map_err(lib)?))
    }

    fn mod_switch(&self, a: &mut BfvCiphertext, level: usize) -> Result<()> {
        self.check_par(a.par_id)?;
        self.check_level(level)?;
        if level < a.level {
            return Err(HeError::Unsupported(format!(
                "cannot switch a ciphertext up from level {} to {level}",
                a.level
            )));
        }
        a.ct.switch_to_level(level).map_err(lib)?;
        a.level = level;
        Ok(())
    }
}

impl BfvCiphertext {
    /// A ciphertext with the same identifiers and level as `self`.
    fn with(&self, ct: Ciphertext) -> BfvCiphertext {
        BfvCiphertext {
            ct,
            level: self.level,
            key_id: self.key_id,
            par_id: self.par_id,
        }
    }
}

impl ExactBackend for Bfv {
    fn plaintext_modulus(&self) -> u64 {
        self.par.plaintext()
    }
}

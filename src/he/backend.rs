//! The small interface between polyact's encrypted evaluation and an HE library.
//!
//! Everything above this trait (the polynomial evaluator, the packed dense layers, the encrypted
//! head) is written against [`Backend`] only, so another scheme (CKKS, a GPU library) can be
//! added as a second implementation without touching its callers. The one implementation today
//! is [`Bfv`](super::Bfv) on fhe.rs.
//!
//! Slots: a ciphertext holds [`slots`](Backend::slots) values arranged as
//! [`rows`](Backend::rows) rows of `slots / rows` columns; [`rotate`](Backend::rotate) turns
//! every row left by the same amount (slot `p` receives slot `p + k` of its row) and
//! [`swap_rows`](Backend::swap_rows) exchanges the rows.

use super::Result;

/// An HE scheme with SIMD slots, as far as polyact needs one.
///
/// Keys are split by role: the client holds the [`SecretKey`](Backend::SecretKey) and the
/// [`PublicKey`](Backend::PublicKey); the server receives only the
/// [`EvalKey`](Backend::EvalKey) (relinearisation and rotations), so no server-side method can
/// decrypt.
pub trait Backend: Send + Sync {
    /// A value in one slot (a residue modulo the plaintext modulus for BFV).
    type Value: Copy + Send + Sync;
    /// Secret key (client only).
    type SecretKey: Send + Sync;
    /// Public encryption key.
    type PublicKey: Send + Sync;
    /// Evaluation keys: relinearisation and the enabled rotations (server).
    type EvalKey: Send + Sync;
    /// An encoded plaintext, ready to multiply or add.
    type Plaintext: Send + Sync;
    /// A ciphertext.
    type Ciphertext: Clone + Send + Sync;

    /// Number of slots of one ciphertext.
    fn slots(&self) -> usize;
    /// Number of rows the slots are arranged in (rotations act on each row).
    fn rows(&self) -> usize;
    /// Bits of the ciphertext modulus at `level` (level 0 is the full modulus).
    fn modulus_bits(&self, level: usize) -> f64;
    /// Bits of the plaintext modulus.
    fn plaintext_bits(&self) -> f64;
    /// Deepest level a ciphertext can be switched to.
    fn max_level(&self) -> usize;

    /// A fresh secret key.
    fn secret_key(&self) -> Result<Self::SecretKey>;
    /// The public key of `sk`.
    fn public_key(&self, sk: &Self::SecretKey) -> Result<Self::PublicKey>;
    /// Evaluation keys for ciphertexts at `level`: relinearisation, the left rotations by each of
    /// `rotations` (each in `1..slots/rows`), and the row swap when `row_swap`.
    fn eval_key(
        &self,
        sk: &Self::SecretKey,
        level: usize,
        rotations: &[usize],
        row_swap: bool,
    ) -> Result<Self::EvalKey>;
    /// Serialised size of evaluation keys, in bytes.
    fn eval_key_bytes(&self, ek: &Self::EvalKey) -> usize;

    /// Encodes one value per slot (fewer values are padded with zeros) at `level`.
    fn encode(&self, values: &[Self::Value], level: usize) -> Result<Self::Plaintext>;
    /// Encodes a constant for [`mul_scalar`](Backend::mul_scalar) / [`add_plain`](Backend::add_plain).
    fn encode_scalar(&self, value: Self::Value, level: usize) -> Result<Self::Plaintext>;
    /// Encrypts a plaintext with the public key.
    fn encrypt(&self, pk: &Self::PublicKey, pt: &Self::Plaintext) -> Result<Self::Ciphertext>;
    /// Decrypts and decodes all slots.
    fn decrypt(&self, sk: &Self::SecretKey, ct: &Self::Ciphertext) -> Result<Vec<Self::Value>>;
    /// Bits of noise budget left in `ct` (needs the secret key: a client-side diagnostic).
    fn noise_budget(&self, sk: &Self::SecretKey, ct: &Self::Ciphertext) -> Result<f64>;
    /// Serialised size of a ciphertext, in bytes.
    fn ciphertext_bytes(&self, ct: &Self::Ciphertext) -> usize;
    /// The level a ciphertext is at.
    fn level(&self, ct: &Self::Ciphertext) -> usize;

    /// `a + b`.
    fn add(&self, a: &Self::Ciphertext, b: &Self::Ciphertext) -> Result<Self::Ciphertext>;
    /// `a += b`.
    fn add_assign(&self, a: &mut Self::Ciphertext, b: &Self::Ciphertext) -> Result<()>;
    /// `a + pt` slot-wise (or plus a constant encoded by `encode_scalar`).
    fn add_plain(&self, a: &Self::Ciphertext, pt: &Self::Plaintext) -> Result<Self::Ciphertext>;
    /// `a · pt` slot-wise.
    fn mul_plain(&self, a: &Self::Ciphertext, pt: &Self::Plaintext) -> Result<Self::Ciphertext>;
    /// `a · c` for a constant encoded by [`encode_scalar`](Backend::encode_scalar).
    fn mul_scalar(&self, a: &Self::Ciphertext, c: &Self::Plaintext) -> Result<Self::Ciphertext>;
    /// `a · b` slot-wise, relinearised.
    fn mul(
        &self,
        ek: &Self::EvalKey,
        a: &Self::Ciphertext,
        b: &Self::Ciphertext,
    ) -> Result<Self::Ciphertext>;
    /// Rotates every row left by `k` (needs the key for `k`).
    fn rotate(
        &self,
        ek: &Self::EvalKey,
        a: &Self::Ciphertext,
        k: usize,
    ) -> Result<Self::Ciphertext>;
    /// Exchanges the rows (needs the row-swap key).
    fn swap_rows(&self, ek: &Self::EvalKey, a: &Self::Ciphertext) -> Result<Self::Ciphertext>;
    /// Switches a ciphertext down to `level` (modulus switching; never up).
    fn mod_switch(&self, a: &mut Self::Ciphertext, level: usize) -> Result<()>;
}

/// A backend that computes exactly on integers modulo a plaintext modulus (BFV, BGV): what the
/// fixed-point evaluator and its bit-for-bit simulation need.
pub trait ExactBackend: Backend<Value = u64> {
    /// The plaintext modulus `t`: slot values are residues in `0..t`.
    fn plaintext_modulus(&self) -> u64;
}

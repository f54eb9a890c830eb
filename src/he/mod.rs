//! Encrypted evaluation (feature `he`): polynomials and dense layers on BFV ciphertexts.
//!
//! Homomorphic encryption computes additions and multiplications on encrypted data; this module
//! evaluates a [`Polynomial`](crate::Polynomial) and a small dense network head
//! (dense → polynomial → dense) on encrypted vectors, exactly, in fixed point:
//!
//! * [`Backend`]: the small interface to an HE library (encode, encrypt, ciphertext × plaintext,
//!   ciphertext × ciphertext with relinearisation, rotations, modulus switching, decrypt, noise
//!   budget). [`Bfv`] implements it on fhe.rs 0.1.1 (pure Rust, MIT, **never independently
//!   audited**); a CKKS backend can be added beside it without changing the callers.
//! * [`plan`](crate::plan): the straight-line program a polynomial is evaluated by (products, depth), pure
//!   Rust, so the cost model can use exactly what runs.
//! * [`fixed`]: fixed-point quantisation, exact integer polynomials from exact coefficients,
//!   worst-case bounds, CRT plaintext primes and a noise estimate. These compute; the refusing is
//!   done by [`EncryptedHead::new`](head::EncryptedHead::new): parameters that could wrap or run
//!   out of noise budget are refused before anything runs ([`HeError::PlaintextOverflow`],
//!   [`HeError::NoiseBudget`]), and inputs outside the declared range when they are encrypted
//!   ([`HeError::OutOfRange`]).
//! * [`head`]: the quantised head, its exact integer simulation, and its encrypted evaluation
//!   with packed (baby-step/giant-step diagonal) dense layers. Client and server keys are
//!   different types: the server's API takes [`head::ServerKeys`] only and cannot decrypt.
//!
//! BFV is exact: an encrypted evaluation decrypts to the very integers of the simulation, which
//! the tests check bit for bit.
//!
//! # Example
//!
//! ```
//! use polyact::he::{Backend, Bfv, ExactBackend, fixed, fixed::IntPolynomial};
//! use polyact::Polynomial;
//!
//! // p(x) = 1/2 + x/4 - x³/48 on x = k/8: the integer polynomial P(z) = 48·8³·p(z/8).
//! let p = Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48)]);
//! let ip = IntPolynomial::new(&p, 3)?;
//! let bfv = Bfv::insecure(2048, &[60, 60, 60, 60], 30)?; // toy parameters, NOT secure
//! let (sk, pk) = { let sk = bfv.secret_key()?; let pk = bfv.public_key(&sk)?; (sk, pk) };
//! let ek = bfv.eval_key(&sk, 0, &[], false)?;
//! let t = bfv.plaintext_modulus();
//! let z: Vec<i64> = vec![-8, 0, 4, 16]; // x = -1, 0, 0.5, 2
//! let residues: Vec<u64> = z.iter().map(|&v| v.rem_euclid(t as i64) as u64).collect();
//! let ct = bfv.encrypt(&pk, &bfv.encode(&residues, 0)?)?;
//! let (out, used) = ip.evaluate(&bfv, &ek, &ct, t)?;
//! let got = bfv.decrypt(&sk, &out)?;
//! for (k, &zk) in z.iter().enumerate() {
//!     let exact = ip.eval_int(zk); // the integer simulation, P(z) = 48·8³·p(z/8)
//!     assert_eq!(got[k], fixed::residue(&exact, t));
//! }
//! assert_eq!((used.products, used.depth), (2, 2));
//! # Ok::<(), polyact::he::HeError>(())
//! ```

pub mod backend;
pub mod bfv;
pub mod fixed;
pub mod head;

pub use backend::{Backend, ExactBackend};
pub use bfv::{Bfv, Security};

/// What can go wrong in encrypted evaluation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HeError {
    /// The HE library reported an error.
    #[error("HE library: {0}")]
    Backend(String),
    /// A ciphertext, plaintext or key made under other encryption parameters.
    #[error(
        "made under other encryption parameters (id {found:#x}, expected {expected:#x}); \
         encrypt and evaluate with the same parameters"
    )]
    ParameterMismatch {
        /// Identifier of the parameters in use.
        expected: u64,
        /// Identifier of the parameters the value was made under.
        found: u64,
    },
    /// A ciphertext encrypted under another key set than the keys used on it.
    #[error(
        "ciphertext from another key set (key id {found:#x}, expected {expected:#x}); \
         evaluate with the server keys of the client that encrypted it"
    )]
    KeyMismatch {
        /// Key set of the keys in use.
        expected: u64,
        /// Key set the ciphertext was encrypted under.
        found: u64,
    },
    /// Two operands at different levels (modulus-switched differently).
    #[error("operands at levels {left} and {right}; switch them to the same level first")]
    LevelMismatch {
        /// Level of the first operand.
        left: usize,
        /// Level of the second operand.
        right: usize,
    },
    /// The evaluation keys lack a rotation.
    #[error("no evaluation key for rotation by {rotation} (0 = row swap)")]
    MissingRotationKey {
        /// The rotation asked for.
        rotation: usize,
    },
    /// A value outside the declared quantisation range.
    #[error(
        "input {index} = {value} is outside the quantisation range [{lo}, {hi}]; \
         clamp it or declare a wider range"
    )]
    OutOfRange {
        /// Position of the value.
        index: usize,
        /// The value.
        value: f64,
        /// Lower end of the range.
        lo: f64,
        /// Upper end of the range.
        hi: f64,
    },
    /// The plaintext space (product of the CRT primes) cannot hold the worst-case result; also
    /// returned by [`QuantizedHead::new`](head::QuantizedHead::new) when a worst-case
    /// pre-activation does not fit an `i64` (`available_bits` is then 63, and only lower scales
    /// help).
    #[error(
        "the result can reach 2^{needed_bits:.1} in absolute value but the plaintext primes hold \
         only ±2^{available_bits:.1}; add plaintext primes or lower the scales"
    )]
    PlaintextOverflow {
        /// log₂ of the worst-case absolute value of the result, plus one bit of margin where
        /// [`EncryptedHead::new`](head::EncryptedHead::new) checks it.
        needed_bits: f64,
        /// log₂ of half the product of the plaintext primes.
        available_bits: f64,
    },
    /// The noise estimate for the computation exceeds the ciphertext modulus' room.
    #[error(
        "the computation needs about {needed_bits:.0} bits of noise budget but the parameters \
         have {available_bits:.0}; use a larger ring, fewer levels or smaller plaintext primes"
    )]
    NoiseBudget {
        /// Estimated bits of noise budget consumed (with the safety margin).
        needed_bits: f64,
        /// Bits of budget a fresh ciphertext has at the chosen level.
        available_bits: f64,
    },
    /// A polynomial coefficient without an exact rational value.
    #[error("coefficient {power} has no exact rational value; encrypted evaluation needs one")]
    InexactCoefficient {
        /// The power the coefficient multiplies.
        power: usize,
    },
    /// Shapes that do not fit together.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// What was checked.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size found.
        found: usize,
    },
    /// A request the implementation does not support (with the reason).
    #[error("{0}")]
    Unsupported(String),
}

/// Result of encrypted evaluation.
pub type Result<T> = std::result::Result<T, HeError>;

//! The study's hand-adjusted polynomials, exactly as published.
//!
//! The study replaced the activations of a Keras MNIST CNN by degree-5 Maclaurin polynomials and
//! then adjusted their coefficients by hand until test accuracy recovered. These are its three
//! adjusted polynomials, with the study's names:
//!
//! | name | polynomial | replaces | study's test accuracy |
//! |---|---|---|---|
//! | [`m_sigmoid`] | 1/2 + (x⁵ − 8700x³ + 540250x)/2700000 | sigmoid | 0.9923 |
//! | [`m_relu`] | 0.66 + x/2 + 2x²/17 + x⁴/600 | relu, via softplus's series | 0.9913 |
//! | [`m_tanh`] | 23x/25 − x³/10 + 7x⁵/25 | tanh | 0.9918 |
//!
//! The coefficients are exact rationals (0.66 is 33/50). Compare with the plain series from
//! `taylor_poly` (feature `symbolica`) and with the fits in [`fit`](crate::fit).

use crate::Polynomial;

/// The study's adjusted sigmoid: `1/2 + (x⁵ − 8700x³ + 540250x)/2700000`.
///
/// ```
/// let p = polyact::presets::m_sigmoid();
/// assert_eq!(p.to_string(), "1/2 + 2161/10800·x - 29/9000·x^3 + 1/2700000·x^5");
/// assert!((p.eval(0.0_f64) - 0.5).abs() < 1e-15);
/// ```
pub fn m_sigmoid() -> Polynomial {
    Polynomial::from_ratios(&[
        (1, 2),
        (540_250, 2_700_000),
        (0, 1),
        (-8_700, 2_700_000),
        (0, 1),
        (1, 2_700_000),
    ])
}

/// The study's adjusted softplus series, which it used in place of relu:
/// `0.66 + x/2 + 2x²/17 + x⁴/600`.
///
/// ```
/// let p = polyact::presets::m_relu();
/// assert_eq!(p.to_string(), "33/50 + 1/2·x + 2/17·x^2 + 1/600·x^4");
/// ```
pub fn m_relu() -> Polynomial {
    Polynomial::from_ratios(&[(33, 50), (1, 2), (2, 17), (0, 1), (1, 600)])
}

/// The study's adjusted tanh: `23x/25 − x³/10 + 7x⁵/25`.
///
/// ```
/// let p = polyact::presets::m_tanh();
/// assert_eq!(p.to_string(), "23/25·x - 1/10·x^3 + 7/25·x^5");
/// ```
pub fn m_tanh() -> Polynomial {
    Polynomial::from_ratios(&[(0, 1), (23, 25), (0, 1), (-1, 10), (0, 1), (7, 25)])
}

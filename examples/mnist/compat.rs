//! The library's series and fits, as the example uses them.
//!
//! Temporary: until `polyact::taylor` and `polyact::fit` land, the three Maclaurin polynomials of
//! the study are written out here and minimax fits are refused.

use polyact::{Coefficient, Polynomial};

use crate::spec::Exact;

/// The Maclaurin polynomial of `f` of degree `degree`.
pub fn taylor(f: Exact, degree: usize) -> anyhow::Result<Polynomial> {
    let full = match f {
        Exact::Sigmoid => Polynomial::from_ratios(&[(1, 2), (1, 4), (0, 1), (-1, 48), (0, 1), (1, 480)]),
        Exact::Tanh => Polynomial::from_ratios(&[(0, 1), (1, 1), (0, 1), (-1, 3), (0, 1), (2, 15)]),
        Exact::Softplus => Polynomial::new(vec![
            Coefficient::symbolic("log(2)", std::f64::consts::LN_2),
            Coefficient::ratio(1, 2),
            Coefficient::ratio(1, 8),
            Coefficient::ratio(0, 1),
            Coefficient::ratio(-1, 192),
            Coefficient::ratio(0, 1),
        ]),
        other => anyhow::bail!("the Taylor series of {} needs polyact::taylor", other.name()),
    };
    if degree > 5 {
        anyhow::bail!("degree {degree} needs polyact::taylor");
    }
    Ok(full.truncate(degree))
}

/// The minimax polynomial of `f` of degree `degree` on `[lo, hi]`.
pub fn minimax(f: Exact, degree: usize, lo: f64, hi: f64) -> anyhow::Result<Polynomial> {
    anyhow::bail!("minimax:{}:{degree}:{lo}:{hi} needs polyact::fit", f.name())
}

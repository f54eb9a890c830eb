//! The library's series and fits, as the example names them.

use polyact::Polynomial;

use crate::spec::Exact;

/// The Maclaurin polynomial of `f` of degree `degree` (exact coefficients).
pub fn taylor(f: Exact, degree: usize) -> anyhow::Result<Polynomial> {
    Ok(polyact::taylor_poly(f.scalar().as_ref(), degree)?)
}

/// The minimax polynomial of `f` of degree `degree` on `[lo, hi]` (its domain set to it).
pub fn minimax(f: Exact, degree: usize, lo: f64, hi: f64) -> anyhow::Result<Polynomial> {
    Ok(polyact::fit::minimax(f.scalar().as_ref(), degree, lo..=hi)?.polynomial)
}

//! `--activations` entries: the library's [registry](polyact::registry) text, resolved once into
//! what the model needs (a candle layer, a polynomial, or a learnable polynomial).
//!
//! Every form the registry knows works here: `sigmoid`, `relu`, `tanh`, …, `m_sigmoid`,
//! `m_relu`, `m_tanh`, `t_sigmoid`, `t_softplus`, `t_tanh`, `taylor:FN:DEG`,
//! `minimax:FN:DEG:LO:HI`, `learn:SPEC`.

use std::fmt;
use std::str::FromStr;

use polyact::Polynomial;
use polyact::registry::{Builtin, Spec};

/// What the hidden layer computes.
#[derive(Debug, Clone)]
pub enum ActKind {
    /// An exact activation.
    Exact(Builtin),
    /// A fixed polynomial.
    Poly(Polynomial),
    /// A polynomial whose coefficients are trained with the network, from this start.
    Learn(Polynomial),
}

/// One parsed `--activations` entry.
#[derive(Debug, Clone)]
pub struct ActSpec {
    /// The registry's canonical text (the run's name in results and plots).
    pub label: String,
    /// What it computes.
    pub kind: ActKind,
    /// The exact function it stands for (itself for an exact one): sigmoid for `m_sigmoid`.
    pub family: Builtin,
}

impl fmt::Display for ActSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// The study's six, in its order.
pub const STUDY: [&str; 6] = ["sigmoid", "relu", "tanh", "m_sigmoid", "m_relu", "m_tanh"];

/// The study's test accuracy for `label`, if it reported one.
pub fn study_accuracy(label: &str) -> Option<f64> {
    match label {
        "sigmoid" => Some(0.9929),
        "relu" => Some(0.9927),
        "tanh" => Some(0.9905),
        "m_sigmoid" => Some(0.9923),
        "m_relu" => Some(0.9913),
        "m_tanh" => Some(0.9918),
        _ => None,
    }
}

impl FromStr for ActSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let spec: Spec = s.parse()?;
        let family = spec
            .replaces()
            .ok_or_else(|| anyhow::anyhow!("{spec}: no exact function to compare it with"))?;
        let kind = match (spec.polynomial()?, &spec) {
            (None, Spec::Builtin(b)) => ActKind::Exact(*b),
            (Some(p), s) if s.is_learnable() => ActKind::Learn(p),
            (Some(p), _) => ActKind::Poly(p),
            (None, other) => anyhow::bail!("{other} builds neither a function nor a polynomial"),
        };
        Ok(Self {
            label: spec.to_string(),
            kind,
            family,
        })
    }
}

impl ActSpec {
    /// The polynomial, for polynomial and learnable specs.
    pub fn polynomial(&self) -> Option<&Polynomial> {
        match &self.kind {
            ActKind::Poly(p) | ActKind::Learn(p) => Some(p),
            ActKind::Exact(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Exact coefficients, read back as `f64`.
    const COEFF: f64 = 1e-12;

    #[test]
    fn study_names_parse() {
        for name in STUDY {
            let s: ActSpec = name.parse().unwrap();
            assert_eq!(s.label, name);
            assert!(study_accuracy(name).is_some());
        }
        let s: ActSpec = "m_relu".parse().unwrap();
        assert_eq!(s.family, Builtin::Relu);
        assert_abs_diff_eq!(s.polynomial().unwrap().eval(0.0_f64), 0.66, epsilon = COEFF);
    }

    #[test]
    fn taylor_and_learnable_specs() {
        let t: ActSpec = "taylor:sigmoid:5".parse().unwrap();
        assert_eq!(t.label, "t_sigmoid");
        let c = t.polynomial().unwrap().coefficients_f64();
        assert_abs_diff_eq!(c[1], 0.25, epsilon = COEFF);
        assert_abs_diff_eq!(c[3], -1.0 / 48.0, epsilon = COEFF);
        assert_abs_diff_eq!(c[5], 1.0 / 480.0, epsilon = COEFF);
        let l: ActSpec = "learn:m_tanh".parse().unwrap();
        assert!(matches!(l.kind, ActKind::Learn(_)));
        assert_eq!(l.family, Builtin::Tanh);
    }

    #[test]
    fn bad_specs_are_explained() {
        for bad in [
            "sigmod",
            "minimax:sigmoid:x:-5:5",
            "learn:relu",
            "taylor:nope:3",
            "a:b",
        ] {
            let err = bad.parse::<ActSpec>().unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = "sigmod".parse::<ActSpec>().unwrap_err().to_string();
        assert!(err.contains("m_sigmoid"), "{err}");
    }
}

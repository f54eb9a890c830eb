//! `--activations` entries: parsing them (at the edge, here) into an exact activation or a polynomial.
//!
//! | spec | meaning |
//! |---|---|
//! | `sigmoid`, `relu`, `tanh`, `softplus`, `gelu`, `silu`, `mish`, `softsign`, `elu`, `leaky_relu`, `identity`, `square` | the exact built-in activation |
//! | `m_sigmoid`, `m_relu`, `m_tanh` | the study's adjusted polynomials |
//! | `t_sigmoid`, `t_softplus`, `t_tanh` | plain degree-5 Maclaurin polynomials |
//! | `taylor:FN:DEG` | the Maclaurin polynomial of FN of degree DEG |
//! | `minimax:FN:DEG:LO:HI` | the minimax polynomial of FN on `[LO, HI]` |
//! | `learn:SPEC` | a learnable polynomial initialised from the polynomial SPEC |

use std::fmt;
use std::str::FromStr;

use polyact::{Activation, Polynomial};

/// The exact activations of the crate that a spec can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exact {
    /// [`polyact::Sigmoid`].
    Sigmoid,
    /// [`polyact::Relu`].
    Relu,
    /// [`polyact::Tanh`].
    Tanh,
    /// [`polyact::Softplus`].
    Softplus,
    /// [`polyact::Gelu`].
    Gelu,
    /// [`polyact::Silu`].
    Silu,
    /// [`polyact::Mish`].
    Mish,
    /// [`polyact::Softsign`].
    Softsign,
    /// [`polyact::Elu`] with α = 1.
    Elu,
    /// [`polyact::LeakyRelu`] with α = 0.01.
    LeakyRelu,
    /// [`polyact::Identity`].
    Identity,
    /// [`polyact::Square`].
    Square,
}

impl Exact {
    const ALL: [(&'static str, Exact); 12] = [
        ("sigmoid", Exact::Sigmoid),
        ("relu", Exact::Relu),
        ("tanh", Exact::Tanh),
        ("softplus", Exact::Softplus),
        ("gelu", Exact::Gelu),
        ("silu", Exact::Silu),
        ("mish", Exact::Mish),
        ("softsign", Exact::Softsign),
        ("elu", Exact::Elu),
        ("leaky_relu", Exact::LeakyRelu),
        ("identity", Exact::Identity),
        ("square", Exact::Square),
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, e)| *e == self)
            .map(|(n, _)| *n)
            .expect("listed")
    }

    fn parse(s: &str) -> Option<Exact> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, e)| *e)
    }

    /// The crate's candle layer for it.
    pub fn layer(self) -> polyact::nn::Act {
        use polyact::nn::Act;
        match self {
            Exact::Sigmoid => Act::new(polyact::Sigmoid),
            Exact::Relu => Act::new(polyact::Relu),
            Exact::Tanh => Act::new(polyact::Tanh),
            Exact::Softplus => Act::new(polyact::Softplus),
            Exact::Gelu => Act::new(polyact::Gelu),
            Exact::Silu => Act::new(polyact::Silu),
            Exact::Mish => Act::new(polyact::Mish),
            Exact::Softsign => Act::new(polyact::Softsign),
            Exact::Elu => Act::new(polyact::Elu::new(1.0).expect("alpha 1 is valid")),
            Exact::LeakyRelu => {
                Act::new(polyact::LeakyRelu::new(0.01).expect("alpha 0.01 is valid"))
            }
            Exact::Identity => Act::new(polyact::Identity),
            Exact::Square => Act::new(polyact::Square),
        }
    }

    /// The scalar activation of the crate.
    pub fn scalar(self) -> Box<dyn Activation<f64>> {
        match self {
            Exact::Sigmoid => Box::new(polyact::Sigmoid),
            Exact::Relu => Box::new(polyact::Relu),
            Exact::Tanh => Box::new(polyact::Tanh),
            Exact::Softplus => Box::new(polyact::Softplus),
            Exact::Gelu => Box::new(polyact::Gelu),
            Exact::Silu => Box::new(polyact::Silu),
            Exact::Mish => Box::new(polyact::Mish),
            Exact::Softsign => Box::new(polyact::Softsign),
            Exact::Elu => Box::new(polyact::Elu::new(1.0).expect("alpha 1 is valid")),
            Exact::LeakyRelu => {
                Box::new(polyact::LeakyRelu::new(0.01).expect("alpha 0.01 is valid"))
            }
            Exact::Identity => Box::new(polyact::Identity),
            Exact::Square => Box::new(polyact::Square),
        }
    }
}

/// What the hidden layer computes.
#[derive(Debug, Clone)]
pub enum ActKind {
    /// An exact activation.
    Exact(Exact),
    /// A fixed polynomial.
    Poly(Polynomial),
    /// A polynomial whose coefficients are trained with the network, from this start.
    Learn(Polynomial),
}

/// One parsed `--activations` entry.
#[derive(Debug, Clone)]
pub struct ActSpec {
    /// The text it was parsed from (the run's name in results and plots).
    pub label: String,
    /// What it computes.
    pub kind: ActKind,
    /// The exact function it stands for (itself for an exact one): sigmoid for `m_sigmoid`.
    pub family: Exact,
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

fn taylor(f: Exact, degree: usize) -> anyhow::Result<Polynomial> {
    crate::series::taylor(f, degree)
}

fn number<T: FromStr>(text: &str, what: &str, spec: &str) -> anyhow::Result<T> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("{spec}: {what} {text:?} is not a number"))
}

fn exact_in(name: &str, spec: &str) -> anyhow::Result<Exact> {
    Exact::parse(name).ok_or_else(|| {
        anyhow::anyhow!(
            "{spec}: unknown function {name:?}; known: {}",
            Exact::ALL.map(|(n, _)| n).join(", ")
        )
    })
}

impl FromStr for ActSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let label = s.trim().to_string();
        let parts: Vec<&str> = label.split(':').collect();
        let (kind, family) = match parts.as_slice() {
            [name] => match *name {
                "m_sigmoid" => (ActKind::Poly(polyact::presets::m_sigmoid()), Exact::Sigmoid),
                "m_relu" => (ActKind::Poly(polyact::presets::m_relu()), Exact::Relu),
                "m_tanh" => (ActKind::Poly(polyact::presets::m_tanh()), Exact::Tanh),
                "t_sigmoid" => (ActKind::Poly(taylor(Exact::Sigmoid, 5)?), Exact::Sigmoid),
                "t_softplus" => (ActKind::Poly(taylor(Exact::Softplus, 5)?), Exact::Softplus),
                "t_tanh" => (ActKind::Poly(taylor(Exact::Tanh, 5)?), Exact::Tanh),
                other => {
                    let e = Exact::parse(other).ok_or_else(|| {
                        anyhow::anyhow!(
                            "unknown activation {other:?}; use one of {}, m_sigmoid, m_relu, m_tanh, \
                             t_sigmoid, t_softplus, t_tanh, taylor:FN:DEG, minimax:FN:DEG:LO:HI, learn:SPEC",
                            Exact::ALL.map(|(n, _)| n).join(", ")
                        )
                    })?;
                    (ActKind::Exact(e), e)
                }
            },
            ["taylor", f, deg] => {
                let f = exact_in(f, &label)?;
                (ActKind::Poly(taylor(f, number(deg, "degree", &label)?)?), f)
            }
            ["minimax", f, deg, lo, hi] => {
                let f = exact_in(f, &label)?;
                let deg: usize = number(deg, "degree", &label)?;
                let (lo, hi): (f64, f64) =
                    (number(lo, "bound", &label)?, number(hi, "bound", &label)?);
                (ActKind::Poly(crate::series::minimax(f, deg, lo, hi)?), f)
            }
            ["learn", ..] => {
                let inner: ActSpec = label["learn:".len()..].parse()?;
                match inner.kind {
                    ActKind::Poly(p) => (ActKind::Learn(p), inner.family),
                    _ => anyhow::bail!("{label}: learn: needs a polynomial, e.g. learn:m_sigmoid"),
                }
            }
            _ => anyhow::bail!("cannot parse activation {label:?}"),
        };
        Ok(Self {
            label,
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

    /// Coefficients are printed with 4 decimals in the study.
    const COEFF: f64 = 1e-12;

    #[test]
    fn study_names_parse() {
        for name in STUDY {
            let s: ActSpec = name.parse().unwrap();
            assert_eq!(s.label, name);
            assert!(study_accuracy(name).is_some());
        }
        let s: ActSpec = "m_relu".parse().unwrap();
        assert_eq!(s.family, Exact::Relu);
        assert_abs_diff_eq!(s.polynomial().unwrap().eval(0.0_f64), 0.66, epsilon = COEFF);
    }

    #[test]
    fn taylor_and_learnable_specs() {
        let t: ActSpec = "t_sigmoid".parse().unwrap();
        let c = t.polynomial().unwrap().coefficients_f64();
        assert_abs_diff_eq!(c[1], 0.25, epsilon = COEFF);
        assert_abs_diff_eq!(c[3], -1.0 / 48.0, epsilon = COEFF);
        assert_abs_diff_eq!(c[5], 1.0 / 480.0, epsilon = COEFF);
        let l: ActSpec = "learn:m_tanh".parse().unwrap();
        assert!(matches!(l.kind, ActKind::Learn(_)));
        assert_eq!(l.family, Exact::Tanh);
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

//! Every activation polyact can build, as one parseable, printable, serialisable description.
//!
//! Configuration files and command lines name activations as text; this module is where that
//! text becomes a typed [`Spec`] (parse at the edge, once), and the only place that knows the
//! names. Everything else takes the typed value.
//!
//! | text | meaning |
//! |---|---|
//! | `sigmoid`, `relu`, `tanh`, `softplus`, `gelu`, `silu`, `mish`, `softsign`, `identity`, `square` | the exact built-in activation |
//! | `elu`, `elu:A`, `leaky_relu`, `leaky_relu:A` | with α = A (default 1 and 0.01) |
//! | `m_sigmoid`, `m_relu`, `m_tanh` | the study's hand-adjusted polynomials ([`presets`](crate::presets)) |
//! | `taylor:FN:DEG` | the Maclaurin polynomial of FN (feature `symbolica`); `t_sigmoid`, `t_softplus`, `t_tanh` are degree 5 |
//! | `minimax:FN:DEG:LO:HI` | the minimax polynomial of FN on `[LO, HI]` ([`fit::minimax`](crate::fit::minimax)) |
//! | `learn:SPEC` | a polynomial SPEC whose coefficients a network trains |
//!
//! ```
//! use polyact::registry::{Builtin, Spec};
//! let spec: Spec = "minimax:sigmoid:5:-5:5".parse()?;
//! assert_eq!(spec.to_string(), "minimax:sigmoid:5:-5:5");
//! assert_eq!(spec.replaces(), Some(Builtin::Sigmoid));
//! let p = spec.polynomial()?.expect("a fit is a polynomial");
//! assert!(p.domain().is_some());
//!
//! let learn: Spec = "learn:m_sigmoid".parse()?;
//! assert!(learn.is_learnable() && learn.polynomial()?.is_some());
//! assert_eq!(serde_json::to_string(&learn).unwrap(), r#""learn:m_sigmoid""#);
//! assert!("sigmoidd".parse::<Spec>().is_err());
//! # Ok::<(), polyact::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::shorten;
use crate::{
    Activation, Elu, Error, Gelu, Identity, Interval, LeakyRelu, Mish, Polynomial, Relu, Result,
    Sigmoid, Silu, Softplus, Softsign, Square, Tanh,
};

/// One of polyact's exact activation types, with its parameter where it has one.
///
/// ```
/// use polyact::registry::Builtin;
/// let b: Builtin = "leaky_relu:0.2".parse()?;
/// assert_eq!(b.to_string(), "leaky_relu:0.2");
/// assert!((b.activation().eval(-1.0) + 0.2).abs() < 1e-15);
/// assert_eq!("elu".parse::<Builtin>()?.to_string(), "elu");
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Builtin {
    /// [`Sigmoid`].
    Sigmoid,
    /// [`Relu`].
    Relu,
    /// [`Tanh`].
    Tanh,
    /// [`Softplus`].
    Softplus,
    /// [`Gelu`].
    Gelu,
    /// [`Silu`].
    Silu,
    /// [`Mish`].
    Mish,
    /// [`Softsign`].
    Softsign,
    /// [`Identity`].
    Identity,
    /// [`Square`].
    Square,
    /// [`Elu`] with its α (validated).
    Elu(Elu),
    /// [`LeakyRelu`] with its α (validated).
    LeakyRelu(LeakyRelu),
}

/// The names of the parameterless built-ins.
const PLAIN: [(&str, Builtin); 10] = [
    ("sigmoid", Builtin::Sigmoid),
    ("relu", Builtin::Relu),
    ("tanh", Builtin::Tanh),
    ("softplus", Builtin::Softplus),
    ("gelu", Builtin::Gelu),
    ("silu", Builtin::Silu),
    ("mish", Builtin::Mish),
    ("softsign", Builtin::Softsign),
    ("identity", Builtin::Identity),
    ("square", Builtin::Square),
];

/// Default α of `elu` and `leaky_relu` when the text gives none.
const ELU_ALPHA: f64 = 1.0;
const LEAKY_RELU_ALPHA: f64 = 0.01;

impl Builtin {
    /// The activation as a trait object in `f64`.
    pub fn activation(self) -> Box<dyn Activation<f64>> {
        match self {
            Builtin::Sigmoid => Box::new(Sigmoid),
            Builtin::Relu => Box::new(Relu),
            Builtin::Tanh => Box::new(Tanh),
            Builtin::Softplus => Box::new(Softplus),
            Builtin::Gelu => Box::new(Gelu),
            Builtin::Silu => Box::new(Silu),
            Builtin::Mish => Box::new(Mish),
            Builtin::Softsign => Box::new(Softsign),
            Builtin::Identity => Box::new(Identity),
            Builtin::Square => Box::new(Square),
            Builtin::Elu(a) => Box::new(a),
            Builtin::LeakyRelu(a) => Box::new(a),
        }
    }

    /// The name without parameter (`"elu"` for every α).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Elu(_) => "elu",
            Builtin::LeakyRelu(_) => "leaky_relu",
            plain => PLAIN
                .iter()
                .find(|(_, b)| *b == plain)
                .map_or("activation", |(n, _)| n),
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Builtin::Elu(a) if a.alpha() != ELU_ALPHA => write!(f, "elu:{}", a.alpha()),
            Builtin::LeakyRelu(a) if a.alpha() != LEAKY_RELU_ALPHA => {
                write!(f, "leaky_relu:{}", a.alpha())
            }
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Builtin {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, parameter) = match text.split_once(':') {
            Some((n, p)) => (n.trim(), Some(p)),
            None => (text.trim(), None),
        };
        let alpha = |default: f64| -> Result<f64> {
            parameter.map_or(Ok(default), |p| number(p, "α", text))
        };
        match name {
            "elu" => Ok(Builtin::Elu(Elu::new(alpha(ELU_ALPHA)?)?)),
            "leaky_relu" => Ok(Builtin::LeakyRelu(LeakyRelu::new(alpha(
                LEAKY_RELU_ALPHA,
            )?)?)),
            _ if parameter.is_some() => {
                Err(unknown(text, "only elu and leaky_relu take a parameter"))
            }
            _ => PLAIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| *b)
                .ok_or_else(|| unknown(text, &format!("known functions: {}", known_builtins()))),
        }
    }
}

fn known_builtins() -> String {
    let mut names: Vec<&str> = PLAIN.iter().map(|(n, _)| *n).collect();
    names.extend(["elu", "leaky_relu"]);
    names.join(", ")
}

fn unknown(text: &str, hint: &str) -> Error {
    Error::Parse {
        formula: shorten(text),
        reason: format!("not an activation polyact knows; {hint}"),
    }
}

fn number(field: &str, what: &str, text: &str) -> Result<f64> {
    field.trim().parse().map_err(|_| Error::Parse {
        formula: shorten(text),
        reason: format!("{what} must be a number, got {:?}", shorten(field)),
    })
}

fn degree(field: &str, text: &str) -> Result<usize> {
    field.trim().parse().map_err(|_| Error::Parse {
        formula: shorten(text),
        reason: format!(
            "the degree must be a whole number, 0 or more, got {:?}",
            shorten(field)
        ),
    })
}

/// The FN of a `taylor:` or `minimax:` description (its fields re-joined: FN may carry its own
/// `:A`); errors name the whole description `text`.
fn function_in(fields: &[&str], text: &str) -> Result<Builtin> {
    fields.join(":").parse().map_err(|e| match e {
        Error::Parse { reason, .. } => Error::Parse {
            formula: shorten(text),
            reason,
        },
        other => other,
    })
}

/// The study's hand-adjusted polynomials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// [`presets::m_sigmoid`](crate::presets::m_sigmoid).
    MSigmoid,
    /// [`presets::m_relu`](crate::presets::m_relu).
    MRelu,
    /// [`presets::m_tanh`](crate::presets::m_tanh).
    MTanh,
}

const PRESETS: [(&str, Preset, Builtin); 3] = [
    ("m_sigmoid", Preset::MSigmoid, Builtin::Sigmoid),
    ("m_relu", Preset::MRelu, Builtin::Relu),
    ("m_tanh", Preset::MTanh, Builtin::Tanh),
];

/// Short names for common longer descriptions.
const ALIASES: [(&str, &str); 3] = [
    ("t_sigmoid", "taylor:sigmoid:5"),
    ("t_softplus", "taylor:softplus:5"),
    ("t_tanh", "taylor:tanh:5"),
];

/// A description of an activation polyact can build: parse it from text, print it back, and
/// build the function, its polynomial or (feature `candle`) its layer from it.
///
/// Display prints the canonical text, which parses back to an equal value for every `Spec`
/// that parsing can give (a `Learnable` of an exact activation or of another `Learnable`, which
/// parsing refuses, prints as `learn:…` but does not read back); serde uses that text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Spec {
    /// An exact activation.
    Builtin(Builtin),
    /// One of the study's adjusted polynomials.
    Preset(Preset),
    /// The Maclaurin polynomial of a built-in function (needs feature `symbolica` to build).
    Taylor {
        /// The function expanded.
        function: Builtin,
        /// The degree.
        degree: usize,
    },
    /// The minimax polynomial of a built-in function on an interval.
    Minimax {
        /// The function fitted.
        function: Builtin,
        /// The degree.
        degree: usize,
        /// The fit interval (also the polynomial's domain).
        interval: Interval,
    },
    /// A polynomial whose coefficients a network trains, starting from the inner polynomial.
    Learnable(Box<Spec>),
}

impl Spec {
    /// The exact function this description stands for or replaces: itself for a built-in, the
    /// function expanded or fitted, and for the study's presets the function the study replaced
    /// (`m_relu` replaces relu, through softplus's series).
    pub fn replaces(&self) -> Option<Builtin> {
        match self {
            Spec::Builtin(b) => Some(*b),
            Spec::Preset(p) => PRESETS.iter().find(|(_, q, _)| q == p).map(|(_, _, b)| *b),
            Spec::Taylor { function, .. } | Spec::Minimax { function, .. } => Some(*function),
            Spec::Learnable(inner) => inner.replaces(),
        }
    }

    /// Whether the coefficients are meant to be trained.
    pub fn is_learnable(&self) -> bool {
        matches!(self, Spec::Learnable(_))
    }

    /// The polynomial this description builds (`None` for an exact activation).
    ///
    /// # Errors
    /// What deriving or fitting it returns; [`Error::Symbolic`] for `taylor:` without the
    /// `symbolica` feature.
    pub fn polynomial(&self) -> Result<Option<Polynomial>> {
        Ok(Some(match self {
            Spec::Builtin(_) => return Ok(None),
            Spec::Preset(Preset::MSigmoid) => crate::presets::m_sigmoid(),
            Spec::Preset(Preset::MRelu) => crate::presets::m_relu(),
            Spec::Preset(Preset::MTanh) => crate::presets::m_tanh(),
            Spec::Taylor { function, degree } => taylor(*function, *degree)?,
            Spec::Minimax {
                function,
                degree,
                interval,
            } => crate::fit::minimax(&*function.activation(), *degree, *interval)?.polynomial,
            Spec::Learnable(inner) => return inner.polynomial(),
        }))
    }

    /// The function as a trait object in `f64`: the exact activation, or its polynomial.
    ///
    /// # Errors
    /// As [`polynomial`](Self::polynomial).
    pub fn activation(&self) -> Result<Box<dyn Activation<f64>>> {
        Ok(match (self, self.polynomial()?) {
            (_, Some(p)) => Box::new(p),
            (Spec::Builtin(b), None) => b.activation(),
            (other, None) => {
                return Err(Error::Parse {
                    formula: shorten(&other.to_string()),
                    reason: "learn: needs a polynomial to start from, e.g. learn:m_sigmoid".into(),
                });
            }
        })
    }
}

#[cfg(feature = "symbolica")]
fn taylor(function: Builtin, degree: usize) -> Result<Polynomial> {
    crate::taylor::taylor_poly(&*function.activation(), degree)
}

#[cfg(not(feature = "symbolica"))]
fn taylor(function: Builtin, degree: usize) -> Result<Polynomial> {
    Err(Error::Symbolic {
        reason: format!(
            "taylor:{function}:{degree} needs polyact's `symbolica` feature; \
             use a fit (minimax:…) or enable the feature"
        ),
    })
}

impl From<Builtin> for Spec {
    fn from(b: Builtin) -> Self {
        Spec::Builtin(b)
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let long = match self {
            Spec::Builtin(b) => return b.fmt(f),
            Spec::Preset(p) => {
                let name = PRESETS.iter().find(|(_, q, _)| q == p).map(|(n, _, _)| *n);
                return f.write_str(name.unwrap_or("preset"));
            }
            Spec::Learnable(inner) => return write!(f, "learn:{inner}"),
            Spec::Taylor { function, degree } => format!("taylor:{function}:{degree}"),
            Spec::Minimax {
                function,
                degree,
                interval,
            } => format!(
                "minimax:{function}:{degree}:{}:{}",
                interval.lo(),
                interval.hi()
            ),
        };
        let short = ALIASES.iter().find(|(_, l)| *l == long).map(|(s, _)| *s);
        f.write_str(short.unwrap_or(&long))
    }
}

impl FromStr for Spec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(inner) = text.strip_prefix("learn:") {
            let inner: Spec = inner.parse()?;
            return match inner {
                Spec::Builtin(_) | Spec::Learnable(_) => Err(Error::Parse {
                    formula: shorten(text),
                    reason: "learn: needs a polynomial to start from, e.g. learn:m_sigmoid".into(),
                }),
                polynomial => Ok(Spec::Learnable(Box::new(polynomial))),
            };
        }
        if let Some((_, long)) = ALIASES.iter().find(|(s, _)| *s == text) {
            return long.parse();
        }
        if let Some((_, p, _)) = PRESETS.iter().find(|(n, _, _)| *n == text) {
            return Ok(Spec::Preset(*p));
        }
        // FN may carry its own parameter (`elu:0.5`), so the numbers are split off the right.
        let fields: Vec<&str> = text.split(':').collect();
        match fields.as_slice() {
            ["taylor", function @ .., degree] if !function.is_empty() => Ok(Spec::Taylor {
                function: function_in(function, text)?,
                degree: self::degree(degree, text)?,
            }),
            ["minimax", function @ .., degree, lo, hi] if !function.is_empty() => {
                Ok(Spec::Minimax {
                    function: function_in(function, text)?,
                    degree: self::degree(degree, text)?,
                    interval: Interval::new(number(lo, "LO", text)?, number(hi, "HI", text)?)?,
                })
            }
            ["taylor" | "minimax", ..] => Err(Error::Parse {
                formula: shorten(text),
                reason: "expected taylor:FN:DEG or minimax:FN:DEG:LO:HI".into(),
            }),
            [name, ..] if known_builtins().split(", ").any(|k| k == *name) => {
                text.parse::<Builtin>().map(Spec::Builtin)
            }
            _ => text.parse::<Builtin>().map(Spec::Builtin).map_err(|_| {
                unknown(
                    text,
                    &format!(
                        "use a function ({}), m_sigmoid, m_relu, m_tanh, t_sigmoid, t_softplus, \
                         t_tanh, taylor:FN:DEG, minimax:FN:DEG:LO:HI or learn:SPEC",
                        known_builtins()
                    ),
                )
            }),
        }
    }
}

impl TryFrom<String> for Spec {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<Spec> for String {
    fn from(spec: Spec) -> String {
        spec.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_prints_back_to_what_parses_to_it() {
        for text in [
            "sigmoid",
            "relu",
            "elu",
            "elu:0.5",
            "leaky_relu",
            "leaky_relu:0.2",
            "m_sigmoid",
            "m_relu",
            "m_tanh",
            "t_sigmoid",
            "t_softplus",
            "taylor:gelu:7",
            "minimax:tanh:5:-3:3",
            // A function with its own parameter inside the longer forms.
            "minimax:elu:0.5:5:-1:1",
            "taylor:leaky_relu:0.2:3",
            "learn:minimax:elu:0.5:3:-2:2",
            "learn:m_sigmoid",
            "learn:minimax:sigmoid:3:-5:5",
        ] {
            let spec: Spec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            assert_eq!(spec.to_string().parse::<Spec>().unwrap(), spec);
        }
        assert_eq!(
            "taylor:sigmoid:5".parse::<Spec>().unwrap().to_string(),
            "t_sigmoid"
        );
    }

    #[test]
    fn bad_text_is_explained() {
        for (text, needle) in [
            ("sigmoidd", "not an activation"),
            ("elu:-1", "alpha"),
            ("elu:x", "number"),
            ("sigmoid:2", "only elu and leaky_relu"),
            ("taylor:sigmoid", "taylor:FN:DEG"),
            ("taylor:5", "taylor:FN:DEG"),
            ("minimax:5:-1:1", "minimax:FN:DEG:LO:HI"),
            ("minimax:elu:0.5:5:-1", "the degree must be a whole number"),
            ("minimax:tanh:5:3:-3", "interval"),
            ("learn:relu", "needs a polynomial"),
        ] {
            let err = text.parse::<Spec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        // Built directly, not parsed: still an error, not a panic.
        let direct = Spec::Learnable(Box::new(Spec::Builtin(Builtin::Relu)));
        assert!(direct.activation().is_err());
        let long = "x".repeat(100_000);
        assert!(long.parse::<Spec>().unwrap_err().to_string().len() < 1_000);
    }

    #[test]
    fn presets_replace_what_the_study_replaced() {
        let replaced: Vec<_> = ["m_sigmoid", "m_relu", "t_softplus", "learn:m_tanh"]
            .iter()
            .map(|t| t.parse::<Spec>().unwrap().replaces())
            .collect();
        assert_eq!(
            replaced,
            [
                Some(Builtin::Sigmoid),
                Some(Builtin::Relu),
                Some(Builtin::Softplus),
                Some(Builtin::Tanh)
            ]
        );
    }

    /// A space after a colon was accepted before a number but not before a name; a degree of
    /// -1 was "not a number"; an empty function quoted only itself (an empty string).
    #[test]
    fn fields_are_trimmed_and_errors_name_the_description() {
        assert_eq!(
            "taylor: sigmoid:5".parse::<Spec>().unwrap(),
            "taylor:sigmoid:5".parse::<Spec>().unwrap()
        );
        assert_eq!(
            " elu : 0.5".parse::<Builtin>().unwrap(),
            Builtin::Elu(Elu::new(0.5).unwrap())
        );
        for text in [
            "taylor:sigmoid:-1",
            "taylor:sigmoid:5.0",
            "minimax:tanh:2.5:-1:1",
        ] {
            let err = text.parse::<Spec>().unwrap_err().to_string();
            assert!(err.contains("whole number, 0 or more"), "{text}: {err}");
        }
        for text in ["taylor::5", "minimax::5:-1:1", "taylor:sigmoidd:5"] {
            let err = text.parse::<Spec>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("cannot use `{text}`")),
                "{text}: {err}"
            );
        }
    }
}

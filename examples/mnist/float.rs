//! Floats in `results.jsonl` that always read back.
//!
//! JSON has no NaN or infinity: `serde_json` writes them as `null`, which an `f64` field then
//! refuses to read, so one NaN made a whole finished run unreadable. Every float of a record is
//! written through these codecs instead: a finite value as a JSON number, a non-finite one as the
//! text `"NaN"`, `"inf"` or `"-inf"`. Reading accepts numbers, those texts, and `null` (written by
//! older versions) as NaN.
//!
//! Use with `#[serde(with = "crate::float")]` on an `f64`, `crate::float::opt` on an
//! `Option<f64>`, `crate::float::opt_vec` on an `Option<Vec<f64>>`, `crate::float::opt_pair`
//! on an `Option<(f64, f64)>`.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One float as written: a finite number, or the text of a non-finite one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lossless(pub f64);

impl Serialize for Lossless {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            s.serialize_f64(x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

struct LosslessVisitor;

impl Visitor<'_> for LosslessVisitor {
    type Value = Lossless;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\", \"-inf\" or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Lossless, E> {
        Ok(Lossless(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lossless, E> {
        Ok(Lossless(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lossless, E> {
        Ok(Lossless(v as f64))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Lossless, E> {
        Ok(Lossless(f64::NAN))
    }
    fn visit_none<E: de::Error>(self) -> Result<Lossless, E> {
        Ok(Lossless(f64::NAN))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Lossless, E> {
        match v {
            "NaN" | "nan" => Ok(Lossless(f64::NAN)),
            "inf" | "+inf" | "Infinity" => Ok(Lossless(f64::INFINITY)),
            "-inf" | "-Infinity" => Ok(Lossless(f64::NEG_INFINITY)),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Lossless {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LosslessVisitor)
    }
}

/// Codec for an `f64` field.
pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    Lossless(*x).serialize(s)
}

/// Codec for an `f64` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Lossless::deserialize(d)?.0)
}

/// Codec for an `Option<f64>` field (`None` is `null`; a NaN inside `Some` is `"NaN"`).
pub mod opt {
    use super::*;

    /// Writes `None` as `null`, `Some(x)` as [`Lossless`].
    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(v) => s.serialize_some(&Lossless(*v)),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<Lossless>::deserialize(d)?.map(|v| v.0))
    }
}

/// Each element as [`Lossless`].
fn serialize_slice<S: Serializer>(x: &[f64], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(x.len()))?;
    for v in x {
        seq.serialize_element(&Lossless(*v))?;
    }
    seq.end()
}

/// Codec for an `Option<Vec<f64>>` field.
pub mod opt_vec {
    use super::*;

    struct Wrap<'a>(&'a [f64]);
    impl Serialize for Wrap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize_slice(self.0, s)
        }
    }

    /// `None` as `null`, else the elements as [`Lossless`].
    pub fn serialize<S: Serializer>(x: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(v) => s.serialize_some(&Wrap(v)),
            None => s.serialize_none(),
        }
    }

    /// `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        Ok(Option::<Vec<Lossless>>::deserialize(d)?.map(|v| v.into_iter().map(|x| x.0).collect()))
    }
}

/// Codec for an `Option<(f64, f64)>` field (a domain).
pub mod opt_pair {
    use super::*;

    /// `None` as `null`, else `[lo, hi]` as [`Lossless`].
    pub fn serialize<S: Serializer>(x: &Option<(f64, f64)>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some((a, b)) => s.serialize_some(&(Lossless(*a), Lossless(*b))),
            None => s.serialize_none(),
        }
    }

    /// `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(f64, f64)>, D::Error> {
        Ok(Option::<(Lossless, Lossless)>::deserialize(d)?.map(|(a, b)| (a.0, b.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Rec {
        #[serde(with = "crate::float")]
        x: f64,
        #[serde(with = "crate::float::opt")]
        o: Option<f64>,
        #[serde(with = "crate::float::opt_vec")]
        ov: Option<Vec<f64>>,
        #[serde(with = "crate::float::opt_pair")]
        p: Option<(f64, f64)>,
    }

    /// Issue 9 item 16: serde_json writes NaN as `null`, which an `f64` does not read back.
    #[test]
    fn non_finite_floats_round_trip() {
        let r = Rec {
            x: f64::NAN,
            o: Some(f64::INFINITY),
            ov: Some(vec![1.5, f64::NEG_INFINITY, f64::NAN]),
            p: Some((f64::NEG_INFINITY, 2.0)),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("null"), "{text}");
        let back: Rec = serde_json::from_str(&text).unwrap();
        assert!(back.x.is_nan());
        assert!(back.o.is_some_and(|v| v.is_infinite() && v > 0.0));
        let v = back.ov.unwrap();
        approx::assert_abs_diff_eq!(v[0], 1.5);
        assert!(v[1].is_infinite() && v[1] < 0.0);
        assert!(v[2].is_nan());
        let (lo, hi) = back.p.unwrap();
        assert!(lo.is_infinite() && lo < 0.0);
        approx::assert_abs_diff_eq!(hi, 2.0);
        // Finite values stay plain JSON numbers; old `null`s read as NaN.
        let old: Rec =
            serde_json::from_str(r#"{"x":null,"o":null,"ov":[0.25,null],"p":null}"#).unwrap();
        let ov = old.ov.unwrap();
        assert!(old.x.is_nan() && old.o.is_none() && ov[1].is_nan() && old.p.is_none());
        assert_eq!(serde_json::to_string(&Lossless(0.5)).unwrap(), "0.5");
        assert!(serde_json::from_str::<Lossless>("\"nope\"").is_err());
    }
}

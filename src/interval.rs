//! The one interval type: where a polynomial is meant to be used, fitted or clamped.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A closed interval `[lo, hi]` of real numbers with finite ends, `lo < hi`, and a finite width.
///
/// Every interval in polyact is one of these: a fit's interval, a polynomial's
/// [domain](crate::Polynomial::domain), a layer's clamp range. It is validated when it is made,
/// also when it is deserialised, so holding one means holding a usable interval.
///
/// `a..=b` converts into it (fallibly), so functions that take an interval accept ranges:
///
/// ```
/// use polyact::Interval;
/// let i = Interval::try_from(-5.0..=5.0)?;
/// assert_eq!((i.lo(), i.hi(), i.width()), (-5.0, 5.0, 10.0));
/// assert!(i.contains(4.5) && !i.contains(5.5));
/// assert_eq!(i.to_string(), "[-5, 5]");
/// assert!(Interval::new(1.0, -1.0).is_err()); // reversed
/// assert!(Interval::new(-f64::MAX, f64::MAX).is_err()); // width overflows
/// assert_eq!("-4,4".parse::<Interval>()?, Interval::new(-4.0, 4.0)?);
/// # Ok::<(), polyact::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "IntervalRepr", into = "IntervalRepr")]
pub struct Interval {
    lo: f64,
    hi: f64,
}

impl Interval {
    /// The interval `[lo, hi]`.
    ///
    /// # Errors
    /// [`Error::InvalidInterval`] unless both ends are finite, `lo < hi`, and `hi - lo` is finite.
    pub fn new(lo: f64, hi: f64) -> Result<Self> {
        if lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite() {
            Ok(Self { lo, hi })
        } else {
            Err(Error::InvalidInterval { lo, hi })
        }
    }

    /// The lower end.
    pub fn lo(&self) -> f64 {
        self.lo
    }

    /// The upper end.
    pub fn hi(&self) -> f64 {
        self.hi
    }

    /// `hi − lo` (always finite and positive).
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }

    /// The midpoint `(lo + hi) / 2`.
    pub fn midpoint(&self) -> f64 {
        0.5 * self.lo + 0.5 * self.hi
    }

    /// Whether `lo ≤ x ≤ hi` (false for NaN).
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// `x` moved into the interval; NaN stays NaN.
    ///
    /// ```
    /// let i = polyact::Interval::new(-1.0, 2.0)?;
    /// assert_eq!((i.clamp(-3.0), i.clamp(0.5), i.clamp(9.0)), (-1.0, 0.5, 2.0));
    /// assert!(i.clamp(f64::NAN).is_nan());
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn clamp(&self, x: f64) -> f64 {
        x.clamp(self.lo, self.hi)
    }

    /// The ends as a pair `(lo, hi)`.
    pub fn ends(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// The point `x ∈ [lo, hi]` that `t ∈ [-1, 1]` stands for; `t = ±1` map exactly to the ends.
    pub(crate) fn x_of(self, t: f64) -> f64 {
        // Weights in [0, 1] that sum to 1: no overflow, even for ends near f64::MAX.
        let x = (0.5 * (1.0 - t)) * self.lo + (0.5 * (1.0 + t)) * self.hi;
        x.clamp(self.lo, self.hi)
    }

    /// The `t ∈ [-1, 1]` that stands for `x ∈ [lo, hi]`.
    pub(crate) fn t_of(self, x: f64) -> f64 {
        // Both differences lie within the (finite) width for x in the interval: no overflow.
        (((x - self.lo) - (self.hi - x)) / self.width()).clamp(-1.0, 1.0)
    }
}

impl TryFrom<RangeInclusive<f64>> for Interval {
    type Error = Error;

    fn try_from(range: RangeInclusive<f64>) -> Result<Self> {
        Self::new(*range.start(), *range.end())
    }
}

impl TryFrom<&RangeInclusive<f64>> for Interval {
    type Error = Error;

    fn try_from(range: &RangeInclusive<f64>) -> Result<Self> {
        Self::new(*range.start(), *range.end())
    }
}

impl TryFrom<(f64, f64)> for Interval {
    type Error = Error;

    fn try_from((lo, hi): (f64, f64)) -> Result<Self> {
        Self::new(lo, hi)
    }
}

impl From<Interval> for RangeInclusive<f64> {
    fn from(i: Interval) -> Self {
        i.lo..=i.hi
    }
}

impl fmt::Display for Interval {
    /// Writes `[lo, hi]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.lo, self.hi)
    }
}

impl FromStr for Interval {
    type Err = Error;

    /// Reads `LO,HI` (as command lines write it), also with brackets: `[LO, HI]`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::Parse {
            formula: crate::error::shorten(text),
            reason: "expected an interval LO,HI with finite LO < HI, e.g. -4,4".into(),
        };
        let inner = text.trim();
        let inner = inner
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(inner);
        let (lo, hi) = inner.split_once(',').ok_or_else(bad)?;
        let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
        let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
        Self::new(lo, hi)
    }
}

/// The serialised form: `{"lo": …, "hi": …}`; `start`/`end` (a serialised range) are read too.
#[derive(Serialize, Deserialize)]
struct IntervalRepr {
    #[serde(alias = "start")]
    lo: f64,
    #[serde(alias = "end")]
    hi: f64,
}

impl From<Interval> for IntervalRepr {
    fn from(i: Interval) -> Self {
        Self { lo: i.lo, hi: i.hi }
    }
}

impl TryFrom<IntervalRepr> for Interval {
    type Error = Error;

    fn try_from(r: IntervalRepr) -> Result<Self> {
        Self::new(r.lo, r.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ends_also_when_deserialised() {
        for (lo, hi) in [
            (1.0, 1.0),
            (2.0, 1.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
        ] {
            assert!(Interval::new(lo, hi).is_err(), "[{lo}, {hi}]");
        }
        let reversed: std::result::Result<Interval, _> =
            serde_json::from_str(r#"{"start": 2.0, "end": -2.0}"#);
        assert!(reversed.is_err());
        let ok: Interval = serde_json::from_str(r#"{"start": -2.0, "end": 2.0}"#).unwrap();
        assert_eq!(ok.ends(), (-2.0, 2.0));
        let back: Interval = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
    }

    #[test]
    fn maps_the_unit_interval_onto_the_ends() {
        let i = Interval::new(-5.0, 3.0).unwrap();
        assert_eq!((i.x_of(-1.0), i.x_of(1.0)), (-5.0, 3.0));
        assert!((i.t_of(i.x_of(0.25)) - 0.25).abs() < 1e-15);
    }

    /// Near `f64::MAX` the mapping overflowed: the midpoint came out as `hi`, `lo` as `t = 1`.
    #[test]
    fn maps_huge_intervals_without_overflow() {
        let (lo, hi) = (1e308, 1.7e308);
        let i = Interval::new(lo, hi).unwrap();
        assert_eq!((i.x_of(-1.0), i.x_of(1.0)), (lo, hi));
        let mid = i.x_of(0.0);
        assert!((mid - 1.35e308).abs() <= 1e-15 * 1.35e308, "{mid:e}");
        assert!((i.t_of(lo) + 1.0).abs() < 1e-15);
        assert!((i.t_of(hi) - 1.0).abs() < 1e-15);
        assert!(i.t_of(mid).abs() < 1e-15);
    }

    /// An overflowing width was reported as if the ends were bad, with 309-digit ends.
    #[test]
    fn an_overflowing_width_is_named_briefly() {
        let text = Interval::new(-1e308, 1e308).unwrap_err().to_string();
        assert!(text.contains("hi - lo"), "{text}");
        assert!(text.contains("[-1e308, 1e308]"), "{text}");
    }
}

//! The algebra of polynomials: sums, differences, scalar multiples, affine substitution.

use std::ops::{Add, Mul, Neg, Sub};

use super::Polynomial;
use crate::{Coefficient, Error, Interval, Result};

impl Polynomial {
    /// `q(x) = p(αx + β)`, exact when the coefficients, `α` and `β` are.
    ///
    /// This one substitution is behind stretching an input ([`rescale_input`](Self::rescale_input)),
    /// mapping a fit from `[-1, 1]` to its interval, and moving an expansion point. The domain,
    /// if any, becomes the set of `x` with `αx + β` in the old domain.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `α` is zero or either is not finite, or if a coefficient
    /// of `q` or an end of its domain cannot be held in `f64`.
    ///
    /// ```
    /// use polyact::{Coefficient, Polynomial};
    /// // p(x) = x², so p(2x + 1) = 1 + 4x + 4x².
    /// let p = Polynomial::from_ratios(&[(0, 1), (0, 1), (1, 1)]).with_domain(-1.0..=3.0)?;
    /// let q = p.compose_affine(&Coefficient::integer(2), &Coefficient::integer(1))?;
    /// assert_eq!(q.to_string(), "1 + 4·x + 4·x^2");
    /// assert_eq!(q.domain().map(|d| d.ends()), Some((-1.0, 1.0)));
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn compose_affine(&self, alpha: &Coefficient, beta: &Coefficient) -> Result<Polynomial> {
        let bad = |parameter: &'static str, value: f64, requirement: &'static str| {
            Error::InvalidParameter {
                activation: "polynomial",
                parameter,
                value,
                requirement,
            }
        };
        let (a, b) = (alpha.to_f64(), beta.to_f64());
        if alpha.is_zero() || !a.is_finite() {
            return Err(bad("α of p(αx + β)", a, "it must be finite and non-zero"));
        }
        if !b.is_finite() {
            return Err(bad("β of p(αx + β)", b, "it must be finite"));
        }
        // Horner's rule on polynomials: q ← q·(αx + β) + cₖ, from the top coefficient down.
        let mut q: Vec<Coefficient> = Vec::with_capacity(self.coefficients.len());
        for c in self.coefficients.iter().rev() {
            let mut next = Vec::with_capacity(q.len() + 1);
            for j in 0..=q.len() {
                // β = 0 adds nothing; skipped, so that an approximate qⱼ · 0 does not make an
                // exact coefficient approximate.
                let from_beta = if beta.is_zero() {
                    None
                } else {
                    q.get(j).map(|qj| qj * beta)
                };
                let from_alpha = j.checked_sub(1).map(|i| &q[i] * alpha);
                next.push(match (from_beta, from_alpha) {
                    (Some(x), Some(y)) => x + y,
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => Coefficient::zero(),
                });
            }
            next[0] = &next[0] + c;
            q = next;
        }
        if let Some(c) = q.iter().find(|c| !c.to_f64().is_finite()) {
            return Err(bad(
                "coefficient of p(αx + β)",
                c.to_f64(),
                "the substituted polynomial's coefficients must fit in f64; use a milder α",
            ));
        }
        let domain = match self.domain {
            None => None,
            Some(d) => {
                let (x1, x2) = ((d.lo() - b) / a, (d.hi() - b) / a);
                Some(Interval::new(x1.min(x2), x1.max(x2)).map_err(|_| {
                    bad(
                        "domain of p(αx + β)",
                        x1,
                        "the substituted domain must be a finite interval of positive width",
                    )
                })?)
            }
        };
        Ok(Polynomial {
            domain,
            ..Polynomial::new(q)
        })
    }

    /// The domain of a combination of `self` and `other`: the overlap of their domains, the one
    /// domain when only one has one, and none when they do not overlap.
    fn common_domain(&self, other: &Polynomial) -> Option<Interval> {
        match (self.domain, other.domain) {
            (Some(a), Some(b)) => Interval::new(a.lo().max(b.lo()), a.hi().min(b.hi())).ok(),
            (a, b) => a.or(b),
        }
    }

    /// Coefficient-wise combination, longer list padded with zeros.
    fn zip_with(
        &self,
        other: &Polynomial,
        f: impl Fn(&Coefficient, &Coefficient) -> Coefficient,
    ) -> Polynomial {
        let zero = Coefficient::zero();
        let n = self.coefficients.len().max(other.coefficients.len());
        let coefficients = (0..n)
            .map(|k| {
                let a = self.coefficients.get(k).unwrap_or(&zero);
                let b = other.coefficients.get(k).unwrap_or(&zero);
                f(a, b)
            })
            .collect();
        Polynomial {
            domain: self.common_domain(other),
            ..Polynomial::new(coefficients)
        }
    }
}

/// `p + q`, exact where both are; the domain is the overlap of the two domains (the one domain
/// when only one has one, none when they do not overlap).
///
/// ```
/// use polyact::Polynomial;
/// let p = Polynomial::from_ratios(&[(1, 2), (1, 4)]);
/// let q = Polynomial::from_ratios(&[(0, 1), (-1, 4), (1, 3)]);
/// assert_eq!((&p + &q).to_string(), "1/2 + 1/3·x^2");
/// assert_eq!((&p - &p).to_string(), "0");
/// assert_eq!((-&p).to_string(), "-1/2 - 1/4·x");
/// assert_eq!((&p * &polyact::Coefficient::integer(4)).to_string(), "2 + x");
/// ```
impl Add for &Polynomial {
    type Output = Polynomial;
    fn add(self, other: &Polynomial) -> Polynomial {
        self.zip_with(other, |a, b| a + b)
    }
}

/// `p − q`, exact where both are.
impl Sub for &Polynomial {
    type Output = Polynomial;
    fn sub(self, other: &Polynomial) -> Polynomial {
        self.zip_with(other, |a, b| a - b)
    }
}

/// `−p`.
impl Neg for &Polynomial {
    type Output = Polynomial;
    fn neg(self) -> Polynomial {
        Polynomial {
            domain: self.domain,
            ..Polynomial::new(self.coefficients.iter().map(|c| -c).collect())
        }
    }
}

/// `s · p` for a scalar `s`, exact where both are.
impl Mul<&Coefficient> for &Polynomial {
    type Output = Polynomial;
    fn mul(self, s: &Coefficient) -> Polynomial {
        Polynomial {
            domain: self.domain,
            ..Polynomial::new(self.coefficients.iter().map(|c| c * s).collect())
        }
    }
}

macro_rules! by_value {
    ($($tr:ident $method:ident ($rhs:ty, $rhs_ref:ty)),*) => {$(
        impl $tr<$rhs> for Polynomial {
            type Output = Polynomial;
            fn $method(self, other: $rhs) -> Polynomial {
                $tr::<$rhs_ref>::$method(&self, &other)
            }
        }
    )*};
}
by_value!(Add add (Polynomial, &Polynomial), Sub sub (Polynomial, &Polynomial), Mul mul (Coefficient, &Coefficient));

impl Neg for Polynomial {
    type Output = Polynomial;
    fn neg(self) -> Polynomial {
        -&self
    }
}

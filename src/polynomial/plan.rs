//! How a polynomial is evaluated on ciphertexts: a straight-line program of ciphertext products
//! and linear combinations with constant coefficients. Pure Rust, no HE types: the core's
//! [`Polynomial::cost`](crate::Polynomial::cost) counts the very plan the `he` module runs.
//!
//! # The rule
//!
//! For a polynomial of degree `d` with coefficients `a₀ … a_d`, two families of plans are built
//! and the one with the **smallest depth, then the fewest ciphertext products** is kept (ties go
//! to Paterson–Stockmeyer):
//!
//! * **Paterson–Stockmeyer, Horner in `xᵏ`** for every baby-step size `k` in `1..=d`: the powers
//!   `x², …, xᵏ` each by one product (`xʲ = x^⌈j/2⌉ · x^⌊j/2⌋`, depth `⌈log₂ j⌉`), blocks
//!   `Bᵢ = Σ_{j<k} a_{ik+j} xʲ` (constants only: free), then `acc = B_m`,
//!   `acc = acc · xᵏ + Bᵢ` for `i = m−1 … 0` with `m = ⌈(d+1)/k⌉ − 1`; when the top block is a
//!   constant the first product is a constant multiple of `xᵏ` (free). Products: `(k−1) + m`
//!   (minus one for a constant top block); depth: `⌈log₂ k⌉ + (giant products)`.
//! * **Powers**: every power `xʲ` whose coefficient is not zero, and the powers they are built
//!   from (`xʲ = x^⌈j/2⌉ · x^⌊j/2⌋`), then one linear combination. Products: the number of
//!   distinct powers `≥ 2` needed; depth `⌈log₂ d⌉`, the least possible.
//!
//! Zero coefficients are skipped, so an odd polynomial such as the study's `m_sigmoid` needs only
//! `x², x³, x⁵` (3 products, depth 3).

/// A value of the straight-line program: the input `x` is register 0, and each step appends one
/// register.
pub type Register = usize;

/// One step of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `r_lhs · r_rhs`: a ciphertext product (with relinearisation).
    Product {
        /// Left factor.
        lhs: Register,
        /// Right factor.
        rhs: Register,
    },
    /// `Σ a_power · r` over `terms`, plus `a_constant` when given: constant multiples and sums
    /// only (no level used). `terms` pairs a register with the index of the polynomial
    /// coefficient it is multiplied by.
    Combine {
        /// `(register, coefficient index)` pairs.
        terms: Vec<(Register, usize)>,
        /// Index of a coefficient added as a constant.
        constant: Option<usize>,
        /// A register added with factor one (the Horner accumulator), if any.
        plus: Option<Register>,
    },
}

/// A straight-line program that evaluates `Σ aⱼ xʲ` given the coefficients by index; the last
/// register holds the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps; step `i` defines register `i + 1`.
    pub steps: Vec<Step>,
    /// Ciphertext products (each consumes a level).
    pub products: usize,
    /// Multiplicative depth of the result.
    pub depth: u32,
    /// Degree of the polynomial the plan was made for.
    pub degree: usize,
    /// Which family the plan comes from.
    pub kind: PlanKind,
}

/// The family a [`Plan`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Paterson–Stockmeyer with baby-step size `k` (Horner in `xᵏ`).
    PatersonStockmeyer {
        /// Baby-step size.
        k: usize,
    },
    /// Every needed power, then one linear combination.
    Powers,
}

impl Plan {
    /// The plan for a polynomial whose coefficient `j` is non-zero exactly when `nonzero[j]`
    /// (the degree is the last non-zero index; an empty or all-zero pattern gives the constant
    /// zero plan).
    ///
    /// ```
    /// use polyact::plan::Plan;
    /// // m_sigmoid: 1/2 + c₁x + c₃x³ + c₅x⁵.
    /// let plan = Plan::new(&[true, true, false, true, false, true]);
    /// assert_eq!((plan.products, plan.depth), (3, 3));
    /// // A full degree-7 polynomial: depth 3 needs 4 products.
    /// let plan = Plan::new(&[true; 8]);
    /// assert_eq!((plan.products, plan.depth), (4, 3));
    /// ```
    pub fn new(nonzero: &[bool]) -> Plan {
        let degree = nonzero.iter().rposition(|&z| z).unwrap_or(0);
        let nonzero = &nonzero[..(degree + 1).min(nonzero.len())];
        let mut best = powers_plan(nonzero, degree);
        for k in 1..=degree.max(1) {
            let p = ps_plan(nonzero, degree, k);
            if (p.depth, p.products) <= (best.depth, best.products) {
                best = p;
            }
        }
        best
    }

    /// Evaluates the plan over any ring: `mul` multiplies two values, `combine` forms
    /// `Σ coefficient(index) · value (+ constant coefficient) (+ accumulator)`.
    ///
    /// This is how both the encrypted evaluator and the exact simulation run the same plan.
    pub fn run<V: Clone, E>(
        &self,
        x: V,
        mut mul: impl FnMut(&V, &V) -> Result<V, E>,
        mut combine: impl FnMut(&[(&V, usize)], Option<usize>, Option<&V>) -> Result<V, E>,
    ) -> Result<V, E> {
        let mut regs: Vec<V> = vec![x];
        for step in &self.steps {
            let v = match step {
                Step::Product { lhs, rhs } => mul(&regs[*lhs], &regs[*rhs])?,
                Step::Combine {
                    terms,
                    constant,
                    plus,
                } => {
                    let terms: Vec<(&V, usize)> =
                        terms.iter().map(|&(r, i)| (&regs[r], i)).collect();
                    combine(&terms, *constant, plus.map(|r| &regs[r]))?
                }
            };
            regs.push(v);
        }
        Ok(regs.pop().expect("at least the input register"))
    }
}

#[cfg(test)]
fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// Appends products computing `x^j` for every `j` in `wanted` (and what they need); returns the
/// register of each power (index = exponent, register 0 = x) and the number of products.
fn build_powers(
    steps: &mut Vec<Step>,
    wanted: &[usize],
    depth: &mut Vec<u32>,
) -> Vec<Option<Register>> {
    let max = wanted.iter().copied().max().unwrap_or(1).max(1);
    let mut need = vec![false; max + 1];
    let mut stack: Vec<usize> = wanted.to_vec();
    while let Some(j) = stack.pop() {
        if j >= 1 && !need[j] {
            need[j] = true;
            if j >= 2 {
                stack.push(j.div_ceil(2));
                stack.push(j / 2);
            }
        }
    }
    let mut reg: Vec<Option<Register>> = vec![None; max + 1];
    reg[1] = Some(0);
    for j in 2..=max {
        if need[j] {
            let (a, b) = (
                reg[j.div_ceil(2)].expect("built"),
                reg[j / 2].expect("built"),
            );
            steps.push(Step::Product { lhs: a, rhs: b });
            depth.push(depth[a].max(depth[b]) + 1);
            reg[j] = Some(steps.len());
        }
    }
    reg
}

fn finish(steps: Vec<Step>, depth: &[u32], degree: usize, kind: PlanKind) -> Plan {
    let products = steps
        .iter()
        .filter(|s| matches!(s, Step::Product { .. }))
        .count();
    Plan {
        depth: *depth.last().expect("input register"),
        steps,
        products,
        degree,
        kind,
    }
}

fn powers_plan(nonzero: &[bool], degree: usize) -> Plan {
    let mut steps = Vec::new();
    let mut depth = vec![0u32];
    let wanted: Vec<usize> = (1..=degree).filter(|&j| nonzero[j]).collect();
    let reg = build_powers(&mut steps, &wanted, &mut depth);
    let terms: Vec<(Register, usize)> = wanted
        .iter()
        .map(|&j| (reg[j].expect("built"), j))
        .collect();
    let d = terms.iter().map(|&(r, _)| depth[r]).max().unwrap_or(0);
    steps.push(Step::Combine {
        terms,
        constant: nonzero.first().copied().unwrap_or(false).then_some(0),
        plus: None,
    });
    depth.push(d);
    finish(steps, &depth, degree, PlanKind::Powers)
}

fn ps_plan(nonzero: &[bool], degree: usize, k: usize) -> Plan {
    let mut steps = Vec::new();
    let mut depth = vec![0u32];
    let nz = |j: usize| j < nonzero.len() && nonzero[j];
    let m = (degree + 1).div_ceil(k) - 1;
    // Baby powers actually used by some block, and the giant power x^k when m ≥ 1.
    let mut wanted: Vec<usize> = (1..k).filter(|&j| (0..=m).any(|i| nz(i * k + j))).collect();
    if m >= 1 {
        wanted.push(k);
    }
    let reg = build_powers(&mut steps, &wanted, &mut depth);
    let block = |i: usize, steps: &mut Vec<Step>, depth: &mut Vec<u32>, plus: Option<Register>| {
        let terms: Vec<(Register, usize)> = (1..k)
            .filter(|&j| nz(i * k + j))
            .map(|j| (reg[j].expect("built"), i * k + j))
            .collect();
        let d = terms
            .iter()
            .map(|&(r, _)| depth[r])
            .chain(plus.map(|r| depth[r]))
            .max()
            .unwrap_or(0);
        steps.push(Step::Combine {
            terms,
            constant: nz(i * k).then_some(i * k),
            plus,
        });
        depth.push(d);
        steps.len()
    };
    if m == 0 {
        block(0, &mut steps, &mut depth, None);
        return finish(steps, &depth, degree, PlanKind::PatersonStockmeyer { k });
    }
    let giant = reg[k].expect("built");
    // Top block: a constant a_{mk} (then a_{mk}·x^k is free) or a combination.
    let top_is_constant = (1..k).all(|j| !nz(m * k + j));
    let mut acc = if top_is_constant {
        steps.push(Step::Combine {
            terms: vec![(giant, m * k)],
            constant: None,
            plus: None,
        });
        depth.push(depth[giant]);
        let r = steps.len();
        block(m - 1, &mut steps, &mut depth, Some(r))
    } else {
        let top = block(m, &mut steps, &mut depth, None);
        steps.push(Step::Product {
            lhs: top,
            rhs: giant,
        });
        depth.push(depth[top].max(depth[giant]) + 1);
        let r = steps.len();
        block(m - 1, &mut steps, &mut depth, Some(r))
    };
    for i in (0..m - 1).rev() {
        steps.push(Step::Product {
            lhs: acc,
            rhs: giant,
        });
        depth.push(depth[acc].max(depth[giant]) + 1);
        let r = steps.len();
        acc = block(i, &mut steps, &mut depth, Some(r));
    }
    finish(steps, &depth, degree, PlanKind::PatersonStockmeyer { k })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a plan on integers with the given coefficients.
    fn eval(plan: &Plan, coeffs: &[i128], x: i128) -> i128 {
        plan.run::<i128, ()>(
            x,
            |a, b| Ok(a * b),
            |terms, c, plus| {
                Ok(terms.iter().map(|(v, i)| **v * coeffs[*i]).sum::<i128>()
                    + c.map_or(0, |i| coeffs[i])
                    + plus.copied().unwrap_or(0))
            },
        )
        .unwrap()
    }

    #[test]
    fn every_plan_computes_the_polynomial() {
        for degree in 0..=12 {
            for pattern in [0b1u32, 0b101010, 0xffff, 0b100101, 0b1001] {
                let nonzero: Vec<bool> = (0..=degree)
                    .map(|j| (pattern >> (j % 16)) & 1 == 1 || j == degree)
                    .collect();
                let coeffs: Vec<i128> = (0..=degree as i128)
                    .map(|j| if nonzero[j as usize] { 3 * j - 7 } else { 0 })
                    .collect();
                let mut plans = vec![Plan::new(&nonzero), powers_plan(&nonzero, degree)];
                for k in 1..=degree.max(1) {
                    plans.push(ps_plan(&nonzero, degree, k));
                }
                for plan in plans {
                    for x in [-3i128, 0, 2, 5] {
                        let horner = coeffs.iter().rev().fold(0i128, |acc, c| acc * x + c);
                        assert_eq!(eval(&plan, &coeffs, x), horner, "{plan:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn depth_is_minimal() {
        for degree in 1..=16 {
            let plan = Plan::new(&vec![true; degree + 1]);
            assert_eq!(plan.depth, ceil_log2(degree), "degree {degree}");
        }
    }
}

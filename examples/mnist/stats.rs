//! Statistics of the final test accuracies: per activation the mean, the sample standard
//! deviation, a 95 % Student-t confidence interval of the mean, min and max; per polynomial the
//! difference to its exact function paired by seed, with its interval; and a verdict on the
//! study's claims.
//!
//! The interval of a mean of `n` values with sample standard deviation `s` is
//! `mean ± t₀.₉₇₅(n−1) · s / √n`, where `t₀.₉₇₅(ν)` is the 97.5 % quantile of Student's t with
//! `ν` degrees of freedom (12.706 for ν = 1, 2.262 for ν = 9). Paired differences use the same
//! formula on the per-seed differences: runs of one seed share initial weights, batch order and
//! dropout masks, so pairing removes most of the seed-to-seed spread.

use std::collections::BTreeMap;

use crate::train::RunResult;

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// Accuracy the study's claim "polynomials stay above 0.99" refers to.
pub const CLAIM_FLOOR: f64 = 0.99;

/// The density ratio `Γ((ν+1)/2) / Γ(ν/2)` by the recurrence `c(ν+2) = c(ν)·(ν+1)/ν` from
/// `c(1) = 1/√π` and `c(2) = √π/2` (exact, no log-gamma needed).
fn gamma_ratio(df: usize) -> f64 {
    let sqrt_pi = std::f64::consts::PI.sqrt();
    let (mut c, mut nu) = if df % 2 == 1 {
        (1.0 / sqrt_pi, 1usize)
    } else {
        (sqrt_pi / 2.0, 2usize)
    };
    while nu < df {
        c *= (nu as f64 + 1.0) / nu as f64;
        nu += 2;
    }
    c
}

/// Student's t density with `df` degrees of freedom.
fn t_density(t: f64, df: usize) -> f64 {
    let nu = df as f64;
    gamma_ratio(df) / (nu * std::f64::consts::PI).sqrt()
        * (1.0 + t * t / nu).powf(-(nu + 1.0) / 2.0)
}

/// `P(0 ≤ T ≤ t)` for `t ≥ 0`, by composite Simpson's rule (the density is smooth and bounded).
fn t_mass_from_zero(t: f64, df: usize) -> f64 {
    const INTERVALS: usize = 4000;
    let h = t / INTERVALS as f64;
    let mut sum = t_density(0.0, df) + t_density(t, df);
    for i in 1..INTERVALS {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * t_density(i as f64 * h, df);
    }
    sum * h / 3.0
}

/// The quantile `t_p(df)` of Student's t for `p` in `(0.5, 1)`, `df ≥ 1`, to about 1e-9
/// (Newton's method on the CDF from 0, monotone because the CDF is concave on `t > 0`).
///
/// # Panics
/// When `df` is 0 or `p` is outside `(0.5, 1)` (callers pass constants).
pub fn t_quantile(p: f64, df: usize) -> f64 {
    assert!(df >= 1 && p > 0.5 && p < 1.0, "t_quantile({p}, {df})");
    let target = p - 0.5;
    let mut t = 0.0;
    for _ in 0..200 {
        let step = (t_mass_from_zero(t, df) - target) / t_density(t, df);
        t -= step;
        if step.abs() < 1e-12 * t.max(1.0) {
            break;
        }
    }
    t
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Sample size.
    pub n: usize,
    /// Mean (NaN when empty).
    pub mean: f64,
    /// Sample standard deviation, `n − 1` in the denominator (NaN below 2 values).
    pub std: f64,
    /// 95 % confidence interval of the mean (Student t; `None` below 2 values).
    pub ci: Option<(f64, f64)>,
    /// Lowest value (NaN when empty).
    pub min: f64,
    /// Highest value (NaN when empty).
    pub max: f64,
}

impl Stats {
    /// The statistics of `xs`.
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                std: f64::NAN,
                ci: None,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let (std, ci) = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let std = var.sqrt();
            let half = t_quantile(0.5 + LEVEL / 2.0, n - 1) * std / (n as f64).sqrt();
            (std, Some((mean - half, mean + half)))
        } else {
            (f64::NAN, None)
        };
        Self {
            n,
            mean,
            std,
            ci,
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The exact activation a polynomial of the study is compared with, by label:
/// `m_sigmoid`/`t_sigmoid` → sigmoid, `m_relu` → relu, `m_tanh`/`t_tanh` → tanh, and
/// `t_softplus` → relu (the study's pairing: it replaces relu by softplus' Taylor polynomial);
/// `taylor:FN:…` and `minimax:FN:…` → FN; `learn:SPEC` → SPEC's partner. `None` for an exact
/// activation or an unknown label.
pub fn partner(label: &str) -> Option<String> {
    let fixed = match label {
        "m_sigmoid" | "t_sigmoid" => Some("sigmoid"),
        "m_relu" | "t_softplus" => Some("relu"),
        "m_tanh" | "t_tanh" => Some("tanh"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    if let Some(inner) = label.strip_prefix("learn:") {
        return partner(inner);
    }
    let mut parts = label.split(':');
    match (parts.next(), parts.next()) {
        (Some("taylor" | "minimax"), Some(f)) if !f.is_empty() => Some(f.to_string()),
        _ => None,
    }
}

/// A polynomial against its exact function, paired by seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// The polynomial's label.
    pub poly: String,
    /// The exact function's label.
    pub exact: String,
    /// Statistics of `accuracy(poly, seed) − accuracy(exact, seed)` over the seeds where both
    /// finished.
    pub diff: Stats,
    /// Seeds with both runs recorded where at least one diverged (left out of `diff`).
    pub unpaired_diverged: usize,
}

/// Final test accuracy per `(activation, seed)` of finished runs (the last record wins when a
/// run was made twice).
fn by_seed(runs: &[RunResult]) -> BTreeMap<(&str, u64), Option<f64>> {
    runs.iter()
        .map(|r| {
            let acc = if r.diverged.is_some() {
                None
            } else {
                r.test_accuracy.filter(|a| a.is_finite())
            };
            ((r.activation.as_str(), r.seed), acc)
        })
        .collect()
}

/// The paired comparisons for every label of `order` that has a [`partner`] among the runs.
pub fn paired(runs: &[RunResult], order: &[String]) -> Vec<Paired> {
    let acc = by_seed(runs);
    let mut out = Vec::new();
    for poly in order {
        let Some(exact) = partner(poly) else { continue };
        if !acc.keys().any(|(a, _)| *a == exact) {
            continue;
        }
        let (mut diffs, mut unpaired) = (Vec::new(), 0);
        for ((a, seed), p) in &acc {
            if a != poly {
                continue;
            }
            match (p, acc.get(&(exact.as_str(), *seed))) {
                (Some(p), Some(Some(e))) => diffs.push(p - e),
                (_, Some(_)) => unpaired += 1,
                (_, None) => {}
            }
        }
        out.push(Paired {
            poly: poly.clone(),
            exact,
            diff: Stats::of(&diffs),
            unpaired_diverged: unpaired,
        });
    }
    out
}

/// The statistics of every activation of `order` (finished runs' final test accuracy), and how
/// many of its runs did not finish. A seed recorded twice counts once (the last record wins,
/// as in [`paired`]).
pub fn per_activation(runs: &[RunResult], order: &[String]) -> Vec<(String, Stats, usize)> {
    let by_seed = by_seed(runs);
    order
        .iter()
        .map(|a| {
            let mine: Vec<Option<f64>> = by_seed
                .iter()
                .filter(|((name, _), _)| name == a)
                .map(|(_, acc)| *acc)
                .collect();
            let acc: Vec<f64> = mine.iter().flatten().copied().collect();
            let diverged = mine.len() - acc.len();
            (a.clone(), Stats::of(&acc), diverged)
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:+.2}", 100.0 * x)
}

/// One paragraph: which of the study's claims hold at 95 % confidence and which are within
/// noise, from the per-activation statistics and the paired differences.
pub fn verdict(acts: &[(String, Stats, usize)], pairs: &[Paired]) -> String {
    let v: Vec<String> = [
        claim_above_floor(acts),
        claim_tanh_improved(pairs),
        pairs_against_noise(pairs),
    ]
    .into_iter()
    .flatten()
    .collect();
    if v.is_empty() {
        "No verdict: no polynomial with finished runs.".into()
    } else {
        v.join(" ")
    }
}

/// The study's claim that the polynomials stay above 0.99: per polynomial, whether its
/// interval lies above, below, or across 0.99.
fn claim_above_floor(acts: &[(String, Stats, usize)]) -> Option<String> {
    let (mut above, mut below, mut unclear) = (Vec::new(), Vec::new(), Vec::new());
    for (a, s, d) in acts
        .iter()
        .filter(|(a, s, d)| partner(a).is_some() && (s.n > 0 || *d > 0))
    {
        if s.n == 0 {
            below.push(format!("{a} (every one of its {d} runs diverged)"));
            continue;
        }
        let diverged = if *d > 0 {
            format!(", {d} diverged")
        } else {
            String::new()
        };
        let txt = format!(
            "{a} (mean {:.4}, min {:.4}, n = {}{diverged})",
            s.mean, s.min, s.n
        );
        match s.ci {
            Some((lo, _)) if lo > CLAIM_FLOOR && *d == 0 => above.push(txt),
            Some((_, hi)) if hi < CLAIM_FLOOR => below.push(txt),
            _ => unclear.push(txt),
        }
    }
    let mut parts = Vec::new();
    if !above.is_empty() {
        parts.push(format!(
            "holds for {} (95 % interval of the mean entirely above 0.99)",
            above.join(", ")
        ));
    }
    if !below.is_empty() {
        parts.push(format!(
            "fails for {} (interval entirely below 0.99)",
            below.join(", ")
        ));
    }
    if !unclear.is_empty() {
        parts.push(format!(
            "is not settled for {} (interval reaches 0.99, a run diverged, or too few seeds)",
            unclear.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "Claim \"the polynomials stay above 0.99\": {}.",
            parts.join("; ")
        )
    })
}

/// The study's claim "tanh improved": m_tanh above tanh, paired by seed.
fn claim_tanh_improved(pairs: &[Paired]) -> Option<String> {
    let p = pairs
        .iter()
        .find(|p| p.poly == "m_tanh" && p.exact == "tanh")?;
    let (mean, n) = (pct(p.diff.mean), p.diff.n);
    Some(match p.diff.ci {
        Some((lo, _)) if lo > 0.0 && p.unpaired_diverged > 0 => format!(
            "Claim \"tanh improved\" is not settled: m_tanh − tanh = {mean} points over {n} \
             seeds, but {} more seed(s) diverged.",
            p.unpaired_diverged
        ),
        Some((lo, hi)) if lo > 0.0 => format!(
            "Claim \"tanh improved\" (m_tanh above tanh) holds: paired by seed, m_tanh − tanh = \
             {mean} points (95 % CI {} to {}, {n} seeds).",
            pct(lo),
            pct(hi)
        ),
        Some((lo, hi)) if hi < 0.0 => format!(
            "Claim \"tanh improved\" is reversed: m_tanh − tanh = {mean} points (95 % CI {} to \
             {}, {n} seeds).",
            pct(lo),
            pct(hi)
        ),
        Some((lo, hi)) => format!(
            "Claim \"tanh improved\" is within noise: m_tanh − tanh = {mean} points, 95 % CI {} \
             to {} contains 0 ({n} seeds).",
            pct(lo),
            pct(hi)
        ),
        None => format!("Claim \"tanh improved\" cannot be judged with {n} paired seed(s)."),
    })
}

/// Every pairing: significantly above or below its exact function, or within noise.
fn pairs_against_noise(pairs: &[Paired]) -> Option<String> {
    let (mut noise, mut worse, mut better) = (Vec::new(), Vec::new(), Vec::new());
    let mut unsettled = Vec::new();
    for p in pairs {
        let name = format!("{} vs {}", p.poly, p.exact);
        match p.diff.ci {
            // A diverged seed does not count against "above" silently: it is named instead.
            Some((lo, _)) if lo > 0.0 && p.unpaired_diverged > 0 => unsettled.push(format!(
                "{name} (above over the finished seeds, but {} diverged)",
                p.unpaired_diverged
            )),
            Some((lo, _)) if lo > 0.0 => better.push(format!("{name} ({})", pct(p.diff.mean))),
            Some((_, hi)) if hi < 0.0 => worse.push(format!("{name} ({})", pct(p.diff.mean))),
            Some(_) => noise.push(name),
            None => {}
        }
    }
    let mut parts = Vec::new();
    if !worse.is_empty() {
        parts.push(format!(
            " significantly below their exact function: {}",
            worse.join(", ")
        ));
    }
    if !better.is_empty() {
        parts.push(format!(" significantly above: {}", better.join(", ")));
    }
    if !noise.is_empty() {
        parts.push(format!(
            " within noise (interval contains 0): {}",
            noise.join(", ")
        ));
    }
    if !unsettled.is_empty() {
        parts.push(format!(" not settled: {}", unsettled.join(", ")));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "Paired by seed,{} (differences in accuracy points).",
            parts.join(";")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::result;
    use approx::assert_abs_diff_eq;

    /// Published t-table values are rounded to 3 decimals.
    const TABLE: f64 = 5e-4;
    /// Closed forms.
    const CLOSED: f64 = 1e-7;
    /// Sums of a few accuracies.
    const SUM: f64 = 1e-12;

    #[test]
    fn t_quantiles_match_closed_forms_and_tables() {
        // ν = 1 is Cauchy: tan(π (p − 1/2)); ν = 2: (2p − 1) / √(2p(1 − p)).
        assert_abs_diff_eq!(
            t_quantile(0.975, 1),
            (std::f64::consts::PI * 0.475).tan(),
            epsilon = CLOSED
        );
        assert_abs_diff_eq!(
            t_quantile(0.975, 2),
            0.95 / (2.0f64 * 0.975 * 0.025).sqrt(),
            epsilon = CLOSED
        );
        for (df, t) in [
            (4, 2.776),
            (9, 2.262),
            (14, 2.145),
            (29, 2.045),
            (120, 1.980),
        ] {
            assert_abs_diff_eq!(t_quantile(0.975, df), t, epsilon = TABLE);
        }
    }

    #[test]
    fn stats_against_hand_computed_values() {
        // 0.990, 0.992, 0.994, 0.996: mean 0.993, s = √(2e-5/3) = 0.0025820,
        // t(3) = 3.182446, half width = 3.182446 · 0.0025820 / 2 = 0.0041086.
        let s = Stats::of(&[0.990, 0.992, 0.994, 0.996]);
        assert_eq!(s.n, 4);
        assert_abs_diff_eq!(s.mean, 0.993, epsilon = SUM);
        assert_abs_diff_eq!(s.std, (2e-5f64 / 3.0).sqrt(), epsilon = SUM);
        let (lo, hi) = s.ci.unwrap();
        assert_abs_diff_eq!(hi - s.mean, 0.0041086, epsilon = 1e-6);
        assert_abs_diff_eq!(s.mean - lo, 0.0041086, epsilon = 1e-6);
        assert_abs_diff_eq!(s.min, 0.990, epsilon = SUM);
        assert_abs_diff_eq!(s.max, 0.996, epsilon = SUM);
        let one = Stats::of(&[0.5]);
        assert!(one.std.is_nan() && one.ci.is_none());
        assert!(Stats::of(&[]).mean.is_nan());
    }

    #[test]
    fn partners_follow_the_study() {
        assert_eq!(partner("m_sigmoid").as_deref(), Some("sigmoid"));
        assert_eq!(partner("t_softplus").as_deref(), Some("relu"));
        assert_eq!(partner("t_tanh").as_deref(), Some("tanh"));
        assert_eq!(partner("learn:m_relu").as_deref(), Some("relu"));
        assert_eq!(partner("minimax:gelu:5:-4:4").as_deref(), Some("gelu"));
        assert_eq!(partner("relu"), None);
    }

    #[test]
    fn paired_differences_by_seed() {
        // Seeds 0..3: tanh 0.990, 0.991, 0.992, 0.993; m_tanh +0.001, +0.002, +0.003 and a
        // diverged seed 3. Differences 0.001, 0.002, 0.003: mean 0.002, s = 0.001,
        // t(2) = 4.302653, half width = 4.302653 · 0.001 / √3 = 0.0024841.
        let mut runs = Vec::new();
        for seed in 0..4u64 {
            runs.push(result("tanh", seed, 0.990 + 0.001 * seed as f64, false));
            let d = 0.001 * (seed + 1) as f64;
            runs.push(result(
                "m_tanh",
                seed,
                0.990 + 0.001 * seed as f64 + d,
                seed == 3,
            ));
        }
        let order = ["tanh", "m_tanh"].map(String::from).to_vec();
        let p = paired(&runs, &order);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].poly.as_str(), p[0].exact.as_str()),
            ("m_tanh", "tanh")
        );
        assert_eq!((p[0].diff.n, p[0].unpaired_diverged), (3, 1));
        assert_abs_diff_eq!(p[0].diff.mean, 0.002, epsilon = SUM);
        assert_abs_diff_eq!(p[0].diff.std, 0.001, epsilon = 1e-12);
        let (lo, hi) = p[0].diff.ci.unwrap();
        assert_abs_diff_eq!(lo, 0.002 - 0.0024841, epsilon = 1e-6);
        assert_abs_diff_eq!(hi, 0.002 + 0.0024841, epsilon = 1e-6);
        let acts = per_activation(&runs, &order);
        assert_eq!((acts[1].1.n, acts[1].2), (3, 1));
        let v = verdict(&acts, &p);
        assert!(v.contains("\"tanh improved\" is within noise"), "{v}");
        assert!(v.contains("m_tanh"), "{v}");
    }

    /// Diverged runs are not dropped from the verdict: a polynomial whose every run diverged
    /// fails the 0.99 claim, an "above" that a diverged seed would spoil is not settled, and a
    /// seed recorded twice counts once.
    #[test]
    fn diverged_and_repeated_runs_are_not_lost_in_the_verdict() {
        let mut runs = Vec::new();
        for seed in 0..4u64 {
            let e = 0.9900 + 0.0002 * seed as f64;
            runs.push(result("tanh", seed, e, false));
            // Above tanh on the first three seeds, diverged on the fourth.
            runs.push(result("m_tanh", seed, e + 0.0010, seed == 3));
            runs.push(result("t_tanh", seed, 0.5, true));
        }
        // tanh's seed 0 recorded again: the last record wins, and n stays 4.
        runs.push(result("tanh", 0, 0.9900, false));
        let order = ["tanh", "m_tanh", "t_tanh"].map(String::from).to_vec();
        let acts = per_activation(&runs, &order);
        assert_eq!((acts[0].1.n, acts[0].2), (4, 0));
        assert_eq!((acts[2].1.n, acts[2].2), (0, 4));
        let v = verdict(&acts, &paired(&runs, &order));
        assert!(
            v.contains("fails for t_tanh (every one of its 4 runs diverged)"),
            "{v}"
        );
        assert!(v.contains("\"tanh improved\" is not settled"), "{v}");
        assert!(v.contains("not settled: m_tanh vs tanh"), "{v}");
        assert!(!v.contains("significantly above"), "{v}");
    }

    #[test]
    fn verdict_names_claims_that_hold() {
        let mut runs = Vec::new();
        for seed in 0..5u64 {
            let e = 0.9900 + 0.0002 * seed as f64;
            runs.push(result("tanh", seed, e, false));
            runs.push(result(
                "m_tanh",
                seed,
                e + 0.0010 + 0.0001 * (seed % 2) as f64,
                false,
            ));
            runs.push(result("m_relu", seed, 0.9800 + 0.0001 * seed as f64, false));
            runs.push(result("relu", seed, 0.9930, false));
        }
        let order = ["relu", "tanh", "m_relu", "m_tanh"]
            .map(String::from)
            .to_vec();
        let acts = per_activation(&runs, &order);
        let v = verdict(&acts, &paired(&runs, &order));
        assert!(
            v.contains("\"tanh improved\" (m_tanh above tanh) holds"),
            "{v}"
        );
        assert!(v.contains("holds for m_tanh"), "{v}");
        assert!(v.contains("fails for m_relu"), "{v}");
        assert!(
            v.contains("significantly below their exact function: m_relu vs relu"),
            "{v}"
        );
    }
}

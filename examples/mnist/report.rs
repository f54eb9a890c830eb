//! The final tables beside the study's figures (terminal and `summary.md`, with confidence
//! intervals, paired differences and a verdict) and the PNG plots.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::spec::{ActSpec, study_accuracy};
use crate::stats::{self, Paired, Stats};
use crate::train::{RunConfig, RunResult};

/// Summary of one activation's runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Activation spec.
    pub activation: String,
    /// Statistics of the finished runs' final test accuracy.
    pub stats: Stats,
    /// Runs that diverged.
    pub diverged: usize,
}

/// Per activation (in `order`), the statistics of its finished runs.
pub fn summarize(runs: &[RunResult], order: &[String]) -> Vec<Summary> {
    stats::per_activation(runs, order)
        .into_iter()
        .map(|(activation, stats, diverged)| Summary {
            activation,
            stats,
            diverged,
        })
        .collect()
}

fn f4(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "-".into()
    }
}

fn interval(ci: Option<(f64, f64)>, digits: usize, scale: f64) -> String {
    ci.map_or("-".into(), |(lo, hi)| {
        format!("[{:.*}, {:.*}]", digits, scale * lo, digits, scale * hi)
    })
}

/// The final table for the terminal, with the study's single-run figures beside.
pub fn table(summaries: &[Summary]) -> String {
    let mut s = format!(
        "{:<22} {:>5} {:>8} {:>17} {:>18} {:>8} {:>8} {:>8} {:>9}\n",
        "activation",
        "runs",
        "diverged",
        "test acc mean±std",
        "95% CI",
        "min",
        "max",
        "study",
        "Δ study"
    );
    for r in summaries {
        let st = &r.stats;
        let study = study_accuracy(&r.activation);
        let delta = study
            .filter(|_| st.n > 0)
            .map_or("-".into(), |s| format!("{:+.4}", st.mean - s));
        let pm = if st.std.is_finite() {
            format!("{}±{:.4}", f4(st.mean), st.std)
        } else {
            f4(st.mean)
        };
        s += &format!(
            "{:<22} {:>5} {:>8} {:>17} {:>18} {:>8} {:>8} {:>8} {:>9}\n",
            r.activation,
            st.n,
            r.diverged,
            pm,
            interval(st.ci, 4, 1.0),
            f4(st.min),
            f4(st.max),
            study.map_or("-".into(), |x| format!("{x:.4}")),
            delta
        );
    }
    s
}

/// The paired differences for the terminal.
pub fn paired_table(pairs: &[Paired]) -> String {
    let mut s = format!(
        "{:<22} {:<10} {:>6} {:>14} {:>18}\n",
        "polynomial", "vs exact", "pairs", "mean Δ (pts)", "95% CI (pts)"
    );
    for p in pairs {
        s += &format!(
            "{:<22} {:<10} {:>6} {:>14} {:>18}\n",
            p.poly,
            p.exact,
            p.diff.n,
            if p.diff.n > 0 {
                format!("{:+.3}", 100.0 * p.diff.mean)
            } else {
                "-".into()
            },
            interval(p.diff.ci, 3, 100.0)
        );
    }
    s
}

/// The settings of a group of runs, in words.
pub fn describe(cfg: &RunConfig) -> String {
    let mut s = format!(
        "{}, {} epochs, batch {}, lr {}, ",
        cfg.dataset, cfg.epochs, cfg.batch_size, cfg.lr
    );
    s += &match cfg.limit_train {
        Some(l) => format!("first {l} training images"),
        None => "all training images".into(),
    };
    s += &if cfg.val_split > 0 {
        format!(" minus {} held out for validation", cfg.val_split)
    } else {
        " (no hold-out; the study's setting)".into()
    };
    if let Some((lo, hi)) = cfg.domain {
        s += &format!(", domain [{lo}, {hi}]");
    }
    if cfg.clamp {
        s += ", clamped";
    }
    if cfg.conv_activation != "relu" || cfg.pooling != crate::conv::Pooling::Max {
        s += &format!(
            ", convolutions {} with {} pooling",
            cfg.conv_activation, cfg.pooling
        );
    }
    s
}

/// `summary.md`: for one group of runs with equal settings, the per-activation table, the
/// paired differences and the verdict, in Markdown.
pub fn markdown(cfg: &RunConfig, runs: &[RunResult], order: &[String]) -> String {
    let sums = summarize(runs, order);
    let pairs = stats::paired(runs, order);
    let mut devices: Vec<String> = runs
        .iter()
        .map(|r| r.device.clone().unwrap_or_else(|| "unrecorded".into()))
        .collect();
    devices.sort();
    devices.dedup();
    let mut s = format!(
        "## {}\n\n{} runs (devices: {}). Final test accuracy after the last epoch; 95 % \
         confidence intervals of the mean (Student t, n − 1 degrees of freedom).\n\n",
        describe(cfg),
        runs.len(),
        devices.join(", ")
    );
    s += "| activation | runs | diverged | mean | std | 95 % CI | min | max | study |\n";
    s += "|---|---:|---:|---:|---:|---|---:|---:|---:|\n";
    for r in &sums {
        let st = &r.stats;
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.activation,
            st.n,
            r.diverged,
            f4(st.mean),
            f4(st.std),
            interval(st.ci, 4, 1.0),
            f4(st.min),
            f4(st.max),
            study_accuracy(&r.activation).map_or("-".into(), |x| format!("{x:.4}")),
        );
    }
    if !pairs.is_empty() {
        s += "\nPaired by seed (same initial weights, batch order and dropout masks), in \
              accuracy points; `t_softplus` is compared with relu, as in the study.\n\n";
        s += "| polynomial | exact | pairs | mean difference | 95 % CI | left out (diverged) |\n";
        s += "|---|---|---:|---:|---|---:|\n";
        for p in &pairs {
            s += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                p.poly,
                p.exact,
                p.diff.n,
                if p.diff.n > 0 {
                    format!("{:+.3}", 100.0 * p.diff.mean)
                } else {
                    "-".into()
                },
                interval(p.diff.ci, 3, 100.0),
                p.unpaired_diverged
            );
        }
    }
    s += &format!(
        "\n**Verdict.** {}\n",
        stats::verdict(&stats::per_activation(runs, order), &pairs)
    );
    s
}

/// The runs grouped by settings, the largest group first.
pub fn groups(runs: &[RunResult]) -> Vec<(RunConfig, Vec<RunResult>)> {
    let mut g: Vec<(RunConfig, Vec<RunResult>)> = Vec::new();
    for r in runs {
        match g.iter_mut().find(|(c, _)| *c == r.config) {
            Some((_, v)) => v.push(r.clone()),
            None => g.push((r.config.clone(), vec![r.clone()])),
        }
    }
    g.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    g
}

/// Activation labels in a sensible order: `preferred` first, then the others in order of
/// first appearance in `runs`.
pub fn label_order(preferred: &[String], runs: &[RunResult]) -> Vec<String> {
    let mut order: Vec<String> = preferred
        .iter()
        .filter(|l| runs.iter().any(|r| &r.activation == *l))
        .cloned()
        .collect();
    for r in runs {
        if !order.contains(&r.activation) {
            order.push(r.activation.clone());
        }
    }
    order
}

/// How many settings [`facets`] names.
const FACETS: usize = 10;

/// The settings of `cfg` one by one, each in a few words, in the order a series tag names them.
fn facets(cfg: &RunConfig) -> [String; FACETS] {
    // Destructured so that a new setting cannot be forgotten here.
    let RunConfig {
        dataset,
        epochs,
        batch_size,
        lr,
        val_split,
        limit_train,
        domain,
        clamp,
        conv_activation,
        pooling,
    } = cfg;
    [
        format!("conv {conv_activation}"),
        format!("{pooling} pooling"),
        dataset.clone(),
        format!("{epochs} epochs"),
        format!("batch {batch_size}"),
        format!("lr {lr}"),
        format!("hold-out {val_split}"),
        limit_train.map_or("all images".into(), |l| format!("first {l} images")),
        domain.map_or("no domain".into(), |(lo, hi)| {
            format!("domain [{lo}, {hi}]")
        }),
        if *clamp { "clamped" } else { "unclamped" }.into(),
    ]
}

/// Per group, a short tag naming its values of the settings that differ between the groups
/// (`conv taylor:square:2`, `conv relu, 3 epochs`, ...); empty tags for a single group.
pub fn tags(groups: &[(RunConfig, Vec<RunResult>)]) -> Vec<String> {
    let facets: Vec<[String; FACETS]> = groups.iter().map(|(c, _)| facets(c)).collect();
    let differ: Vec<usize> = (0..FACETS)
        .filter(|&i| facets.iter().any(|f| f[i] != facets[0][i]))
        .collect();
    facets
        .iter()
        .map(|f| {
            let named: Vec<&str> = differ.iter().map(|&i| f[i].as_str()).collect();
            named.join(", ")
        })
        .collect()
}

/// `label`, followed by `tag` when there is one.
fn tagged(label: &str, tag: &str) -> String {
    if tag.is_empty() {
        label.to_string()
    } else {
        format!("{label}, {tag}")
    }
}

/// One plotted series: the runs of one activation in one group of settings.
#[derive(Debug, Clone)]
pub struct Series {
    /// The activation (its label is the plain activation, as in the records).
    pub spec: ActSpec,
    /// The group's [`tags`] entry, empty for a single group.
    pub tag: String,
    /// The group's runs of this activation.
    pub runs: Vec<RunResult>,
}

impl Series {
    /// The name in legends and on axes: the activation, with the tag when there is one.
    pub fn label(&self) -> String {
        tagged(&self.spec.label, &self.tag)
    }
}

/// What the plots show: per group of settings (the largest first), each activation in
/// [`label_order`]; labels that no longer parse are left out (plots need the activations).
pub fn series(runs: &[RunResult], preferred: &[String]) -> Vec<Series> {
    let groups = groups(runs);
    let mut out = Vec::new();
    for ((_, rs), tag) in groups.iter().zip(tags(&groups)) {
        for label in label_order(preferred, rs) {
            let Ok(spec) = label.parse::<ActSpec>() else {
                continue;
            };
            let runs = rs
                .iter()
                .filter(|r| r.activation == spec.label)
                .cloned()
                .collect();
            out.push(Series {
                spec,
                tag: tag.clone(),
                runs,
            });
        }
    }
    out
}

/// The paired comparisons of every group, each formed within its group, with its tag.
fn paired_by_group(
    groups: &[(RunConfig, Vec<RunResult>)],
    preferred: &[String],
) -> Vec<(String, Paired)> {
    groups
        .iter()
        .zip(tags(groups))
        .flat_map(|((_, rs), tag)| {
            stats::paired(rs, &label_order(preferred, rs))
                .into_iter()
                .map(move |p| (tag.clone(), p))
        })
        .collect()
}

/// Writes `summary.md` (one section per group of settings, the largest first) and
/// `paired_differences.png` (the pairs of every group) into `out`; returns the files written.
pub fn write_summary(
    out: &Path,
    runs: &[RunResult],
    preferred: &[String],
    plots: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut text = String::from(
        "# MNIST study: summary\n\nRegenerated from `results.jsonl` alone by \
         `cargo run --release --example mnist -- --report-only --out <this folder>`.\n\n",
    );
    let groups = groups(runs);
    if groups.is_empty() {
        text += "No finished runs yet.\n";
    }
    for (cfg, rs) in &groups {
        text += &markdown(cfg, rs, &label_order(preferred, rs));
        text += "\n";
    }
    let path = out.join("summary.md");
    fs::write(&path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    let mut written = vec![path];
    if plots {
        let p = out.join("paired_differences.png");
        match plot_paired(&p, &paired_by_group(&groups, preferred), register_font()) {
            Ok(true) => written.push(p),
            Ok(false) => {}
            Err(e) => anyhow::bail!("plot {}: {e}", p.display()),
        }
    }
    Ok(written)
}

/// Registers a system sans-serif font for plot text; `false` when none was found (plots are
/// then drawn without text).
fn register_font() -> bool {
    use std::sync::OnceLock;
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates = std::env::var_os("POLYACT_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                [
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/TTF/DejaVuSans.ttf",
                    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
                    "/Library/Fonts/Arial.ttf",
                    "/System/Library/Fonts/Supplemental/Arial.ttf",
                    "C:\\Windows\\Fonts\\arial.ttf",
                ]
                .map(PathBuf::from),
            );
        for path in candidates {
            if let Ok(bytes) = fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!(
            "no TrueType font found (install fonts-dejavu-core or set POLYACT_FONT=/path/font.ttf): \
             plots are drawn without text"
        );
        false
    })
}

/// Pixels added to a bar's width per character of the longest tag, so tagged axis labels fit.
const TAG_WIDTH: usize = 7;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes the plots of `series` into `out` (activations, accuracy per epoch, final accuracy,
/// and with a validation hold-out the training/validation curves); returns their paths.
pub fn plots(out: &Path, series: &[Series]) -> anyhow::Result<Vec<PathBuf>> {
    let text = register_font();
    let mut written = Vec::new();
    let files = [
        ("activations.png", 0),
        ("accuracy_per_epoch.png", 1),
        ("final_accuracy.png", 2),
        ("overfitting.png", 3),
    ];
    for (name, which) in files {
        let path = out.join(name);
        let r = match which {
            0 => plot_activations(&path, series, text),
            1 => plot_epochs(&path, series, text),
            2 => plot_final(&path, series, text),
            _ => plot_overfitting(&path, series, text),
        };
        match r {
            Ok(true) => written.push(path),
            Ok(false) => {}
            Err(e) => anyhow::bail!("plot {}: {e}", path.display()),
        }
    }
    Ok(written)
}

/// Each exact function (of the families present) against its polynomials on [-4, 4], with a
/// learnable polynomial's trained form (first finished seed of each series) beside its start.
fn plot_activations(
    path: &Path,
    series: &[Series],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut specs: Vec<&ActSpec> = Vec::new();
    for s in series {
        if !specs.iter().any(|k| k.label == s.spec.label) {
            specs.push(&s.spec);
        }
    }
    let mut families: Vec<polyact::registry::Builtin> = Vec::new();
    for s in &specs {
        if s.polynomial().is_some() && !families.contains(&s.family) {
            families.push(s.family);
        }
    }
    if families.is_empty() {
        return Ok(false);
    }
    let root = BitMapBackend::new(path, (480 * families.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, families.len()));
    for (panel, fam) in panels.iter().zip(&families) {
        let exact = fam.activation();
        let xs: Vec<f64> = (0..=400).map(|i| -4.0 + 8.0 * i as f64 / 400.0).collect();
        let mut curves: Vec<(String, Vec<(f64, f64)>)> = vec![(
            fam.name().to_string(),
            xs.iter().map(|&x| (x, exact.eval(x))).collect(),
        )];
        for s in specs.iter().filter(|s| s.family == *fam) {
            if let Some(p) = s.polynomial() {
                curves.push((
                    s.label.clone(),
                    xs.iter().map(|&x| (x, p.eval(x))).collect(),
                ));
            }
            for one in series.iter().filter(|one| one.spec.label == s.label) {
                let trained = one
                    .runs
                    .iter()
                    .find_map(|r| r.learned_coefficients.as_ref().map(|c| (r.seed, c)));
                if let Some((seed, c)) = trained {
                    let p = polyact::Polynomial::from_f64(c);
                    curves.push((
                        format!("{} trained (seed {seed})", one.label()),
                        xs.iter().map(|&x| (x, p.eval(x))).collect(),
                    ));
                }
            }
        }
        let (lo, hi) = curves
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
                (a.min(y), b.max(y))
            });
        let (lo, hi) = (lo.max(-6.0), hi.min(6.0));
        let pad = 0.05 * (hi - lo).max(1e-6);
        let mut b = ChartBuilder::on(panel);
        b.margin(12);
        if text {
            b.caption(
                format!("{} and its polynomials", fam.name()),
                ("sans-serif", 20),
            )
            .x_label_area_size(30)
            .y_label_area_size(40);
        }
        let mut chart = b.build_cartesian_2d(-4.0..4.0, (lo - pad)..(hi + pad))?;
        let mut mesh = chart.configure_mesh();
        if !text {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw()?;
        for (i, (label, pts)) in curves.into_iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let style = if i == 0 {
                color.stroke_width(3)
            } else {
                color.stroke_width(2)
            };
            let series = chart.draw_series(LineSeries::new(
                pts.into_iter()
                    .filter(|p| p.1 >= lo - pad && p.1 <= hi + pad),
                style,
            ))?;
            if text {
                series.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }
    }
    root.present()?;
    Ok(true)
}

/// Mean test accuracy per epoch for each series.
fn plot_epochs(
    path: &Path,
    all: &[Series],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in all {
        let mut per_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in &s.runs {
            for h in &r.history {
                per_epoch.entry(h.epoch).or_default().push(h.test_accuracy);
            }
        }
        let pts: Vec<(f64, f64)> = per_epoch
            .into_iter()
            .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        if !pts.is_empty() {
            series.push((s.label(), pts));
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let max_epoch = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0, f64::max);
    let lo = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(1.0, f64::min);
    let lo = (lo - 0.005).clamp(0.0, 0.99);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "Test accuracy per epoch (mean over seeds)",
            ("sans-serif", 22),
        )
        .x_label_area_size(35)
        .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(0.5..max_epoch + 0.5, lo..1.0)?;
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch")
            .y_desc("test accuracy")
            .x_labels(max_epoch as usize + 2)
            .x_label_formatter(&whole);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let s = chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        if text {
            s.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(true)
}

/// Final test accuracy per series: mean with its 95 % interval (min–max below two runs), and
/// the study's figure for its activation (cross).
fn plot_final(
    path: &Path,
    series: &[Series],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let sums: Vec<(&Series, Summary)> = series
        .iter()
        .flat_map(|s| {
            summarize(&s.runs, std::slice::from_ref(&s.spec.label))
                .into_iter()
                .map(move |sum| (s, sum))
        })
        .filter(|(_, sum)| sum.stats.n > 0)
        .collect();
    if sums.is_empty() {
        return Ok(false);
    }
    let bar = |s: &Stats| s.ci.unwrap_or((s.min, s.max));
    let lo = sums
        .iter()
        .map(|(_, s)| bar(&s.stats).0)
        .chain(
            sums.iter()
                .filter_map(|(_, s)| study_accuracy(&s.activation)),
        )
        .fold(1.0, f64::min);
    let lo = (lo - 0.003).clamp(0.0, 0.99);
    let step = 110 + TAG_WIDTH * sums.iter().map(|(s, _)| s.tag.len()).max().unwrap_or(0);
    let root =
        BitMapBackend::new(path, (160 + step as u32 * sums.len() as u32, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "Final test accuracy: mean, 95% CI (x = study)",
            ("sans-serif", 20),
        )
        .x_label_area_size(40)
        .y_label_area_size(55);
    }
    let n = sums.len();
    let mut chart = b.build_cartesian_2d(-0.5..n as f64 - 0.5, lo..1.0)?;
    let labels: Vec<String> = sums.iter().map(|(s, _)| s.label()).collect();
    let name_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_labels(n)
            .x_label_formatter(&name_of)
            .y_desc("test accuracy")
            .disable_x_mesh();
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, (_, s)) in sums.iter().enumerate() {
        let x = i as f64;
        let color = PALETTE[i % PALETTE.len()];
        let (lo, hi) = bar(&s.stats);
        let mean = s.stats.mean;
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            x,
            lo.max(0.0),
            mean,
            hi.min(1.0),
            color.stroke_width(2),
            16,
        )))?;
        chart.draw_series(std::iter::once(Circle::new((x, mean), 5, color.filled())))?;
        if let Some(st) = study_accuracy(&s.activation) {
            chart.draw_series(std::iter::once(Cross::new(
                (x + 0.25, st),
                6,
                BLACK.stroke_width(2),
            )))?;
        }
    }
    root.present()?;
    Ok(true)
}

/// Each polynomial's accuracy minus its exact function's, paired by seed, in points: mean and
/// 95 % interval, with the zero line (an interval across it is within noise). Each pair comes
/// with its group's tag.
fn plot_paired(
    path: &Path,
    pairs: &[(String, Paired)],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let pairs: Vec<&(String, Paired)> = pairs.iter().filter(|(_, p)| p.diff.n > 0).collect();
    if pairs.is_empty() {
        return Ok(false);
    }
    let pts = |x: f64| 100.0 * x;
    let bar = |p: &Paired| {
        p.diff
            .ci
            .map_or((p.diff.mean, p.diff.mean), |(lo, hi)| (lo, hi))
    };
    let (lo, hi) = pairs.iter().fold((0.0f64, 0.0f64), |(a, b), (_, p)| {
        let (l, h) = bar(p);
        (a.min(pts(l)), b.max(pts(h)))
    });
    let pad = 0.1 * (hi - lo).max(0.05);
    let n = pairs.len();
    let step = 130 + TAG_WIDTH * pairs.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    let root = BitMapBackend::new(path, (200 + (step * n) as u32, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "Polynomial minus exact function, paired by seed (95% CI)",
            ("sans-serif", 20),
        )
        .x_label_area_size(40)
        .y_label_area_size(60);
    }
    let mut chart = b.build_cartesian_2d(-0.5..n as f64 - 0.5, (lo - pad)..(hi + pad))?;
    let labels: Vec<String> = pairs
        .iter()
        .map(|(tag, p)| tagged(&format!("{} - {}", p.poly, p.exact), tag))
        .collect();
    let name_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_labels(n)
            .x_label_formatter(&name_of)
            .y_desc("difference in test accuracy (points)")
            .disable_x_mesh();
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    chart.draw_series(LineSeries::new(
        [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
        BLACK.stroke_width(1),
    ))?;
    for (i, (_, p)) in pairs.iter().enumerate() {
        let x = i as f64;
        let color = PALETTE[i % PALETTE.len()];
        let (l, h) = bar(p);
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            x,
            pts(l),
            pts(p.diff.mean),
            pts(h),
            color.stroke_width(2),
            16,
        )))?;
        chart.draw_series(std::iter::once(Circle::new(
            (x, pts(p.diff.mean)),
            5,
            color.filled(),
        )))?;
    }
    root.present()?;
    Ok(true)
}

/// With a validation hold-out: mean training accuracy (thin) and validation accuracy (thick)
/// per epoch for each series, the study's overfitting question. `false` without one.
fn plot_overfitting(
    path: &Path,
    all: &[Series],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    type Curve = Vec<(f64, f64)>;
    let mut series: Vec<(String, Curve, Curve)> = Vec::new();
    for s in all {
        let mut train: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut val: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in &s.runs {
            for h in &r.history {
                if let Some(v) = h.val_accuracy.filter(|v| v.is_finite()) {
                    val.entry(h.epoch).or_default().push(v);
                    train.entry(h.epoch).or_default().push(h.train_accuracy);
                }
            }
        }
        let mean = |m: BTreeMap<usize, Vec<f64>>| -> Curve {
            m.into_iter()
                .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
                .collect()
        };
        if !val.is_empty() {
            series.push((s.label(), mean(train), mean(val)));
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let all = || series.iter().flat_map(|(_, t, v)| t.iter().chain(v));
    let max_epoch = all().map(|p| p.0).fold(1.0, f64::max);
    let lo = (all().map(|p| p.1).fold(1.0, f64::min) - 0.005).clamp(0.0, 0.99);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "Training (thin) vs validation (thick) accuracy per epoch",
            ("sans-serif", 22),
        )
        .x_label_area_size(35)
        .y_label_area_size(55);
    }
    let mut chart = b.build_cartesian_2d(0.5..max_epoch + 0.5, lo..1.0)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch").y_desc("accuracy");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, (label, train, val)) in series.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart.draw_series(LineSeries::new(train, color.stroke_width(1)))?;
        let s = chart.draw_series(LineSeries::new(val, color.stroke_width(3)))?;
        if text {
            s.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{result, tmp};

    #[test]
    fn summary_statistics_and_table() {
        let runs = vec![
            result("relu", 0, 0.990, false),
            result("relu", 1, 0.994, false),
            result("m_relu", 0, 0.0, true),
        ];
        let s = summarize(&runs, &["relu".into(), "m_relu".into()]);
        approx::assert_abs_diff_eq!(s[0].stats.mean, 0.992, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(s[0].stats.std, 0.004 / 2f64.sqrt(), epsilon = 1e-12);
        assert_eq!((s[1].stats.n, s[1].diverged), (0, 1));
        let t = table(&s);
        assert!(t.contains("0.9927"), "{t}");
        assert!(t.contains("-0.0007"), "{t}");
        // 0.992 ± 12.7062 · 0.0028284 / √2 = 0.992 ± 0.025412.
        assert!(t.contains("[0.9666, 1.0174]"), "{t}");
    }

    #[test]
    fn plots_are_written() {
        let out = tmp("plots");
        fs::create_dir_all(&out).unwrap();
        let labels: Vec<String> = ["sigmoid", "m_sigmoid", "t_sigmoid", "relu", "m_relu"]
            .map(String::from)
            .to_vec();
        let runs = vec![
            result("relu", 0, 0.99, false),
            result("m_sigmoid", 0, 0.985, false),
        ];
        let files = plots(&out, &series(&runs, &labels)).unwrap();
        // The records hold a validation accuracy: the overfitting curves are drawn too.
        assert_eq!(files.len(), 4);
        for f in files {
            let bytes = fs::read(&f).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{}", f.display());
        }
        fs::remove_dir_all(&out).unwrap();
    }

    /// Seed-0 runs of `(activation, accuracy)` whose convolutions use `conv` and average
    /// pooling.
    fn with_conv(conv: &str, runs: &[(&str, f64)]) -> Vec<RunResult> {
        runs.iter()
            .map(|&(a, acc)| {
                let mut r = result(a, 0, acc, false);
                r.config.conv_activation = conv.into();
                r.config.pooling = crate::conv::Pooling::Avg;
                r
            })
            .collect()
    }

    #[test]
    fn series_of_several_settings_are_told_apart() {
        let mut runs = with_conv("taylor:square:2", &[("sigmoid", 0.99), ("m_sigmoid", 0.98)]);
        runs.extend(with_conv("taylor:softplus:2", &[("m_sigmoid", 0.97)]));
        let labels = |s: &[Series]| s.iter().map(Series::label).collect::<Vec<_>>();
        let all = series(&runs, &[]);
        assert_eq!(
            labels(&all),
            [
                "sigmoid, conv taylor:square:2",
                "m_sigmoid, conv taylor:square:2",
                "m_sigmoid, conv taylor:softplus:2",
            ]
        );
        // Each series holds its own group's runs, and its activation finds the study's figure.
        for s in &all {
            assert_eq!(s.runs.len(), 1);
            assert!(s.label().ends_with(&s.runs[0].config.conv_activation));
        }
        approx::assert_abs_diff_eq!(all[2].runs[0].test_accuracy.unwrap(), 0.97);
        assert_eq!(study_accuracy(&all[2].spec.label), Some(0.9923));
        // One group: the plain labels, as before.
        assert_eq!(labels(&series(&runs[..2], &[])), ["sigmoid", "m_sigmoid"]);
        // A second setting that differs is named too, and only those that differ.
        let mut three = runs.clone();
        three.push({
            let mut r = result("m_sigmoid", 0, 0.9, false);
            r.config.pooling = crate::conv::Pooling::Avg;
            r.config.epochs = 3;
            r
        });
        assert_eq!(
            tags(&groups(&three)),
            [
                "conv taylor:square:2, 2 epochs",
                "conv taylor:softplus:2, 2 epochs",
                "conv relu, 3 epochs",
            ]
        );
    }

    #[test]
    fn pairs_are_formed_within_each_group() {
        let mut runs = with_conv("taylor:square:2", &[("m_sigmoid", 0.95), ("sigmoid", 0.99)]);
        runs.extend(with_conv(
            "taylor:softplus:2",
            &[("m_sigmoid", 0.90), ("sigmoid", 0.98)],
        ));
        // A polynomial whose exact function was run with other settings only: no pair.
        runs.extend(with_conv("relu", &[("m_sigmoid", 0.97)]));
        let pairs = paired_by_group(&groups(&runs), &[]);
        let got: Vec<(&str, &str, f64)> = pairs
            .iter()
            .map(|(t, p)| (t.as_str(), p.poly.as_str(), p.diff.mean))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].0, got[0].1), ("conv taylor:square:2", "m_sigmoid"));
        approx::assert_abs_diff_eq!(got[0].2, -0.04, epsilon = 1e-12);
        assert_eq!(
            (got[1].0, got[1].1),
            ("conv taylor:softplus:2", "m_sigmoid")
        );
        approx::assert_abs_diff_eq!(got[1].2, -0.08, epsilon = 1e-12);
    }
}

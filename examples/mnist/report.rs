//! Results on disk (`results.jsonl`, one run per line, appended as runs finish), the final table
//! beside the study's figures, and the PNG plots.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::spec::{ActSpec, study_accuracy};
use crate::train::{RunConfig, RunResult};

/// The results file in `out`.
pub fn results_path(out: &Path) -> PathBuf {
    out.join("results.jsonl")
}

/// Appends one finished run as a JSON line and flushes it to disk.
pub fn append(out: &Path, result: &RunResult) -> anyhow::Result<()> {
    fs::create_dir_all(out)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(results_path(out))?;
    let mut line = serde_json::to_string(result)?;
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// Every run recorded in `out`; a line that does not parse (a run cut off while writing) is
/// reported and skipped.
pub fn read(out: &Path) -> anyhow::Result<Vec<RunResult>> {
    let path = results_path(out);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut runs = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(r) => runs.push(r),
            Err(e) => eprintln!(
                "{}:{}: skipping unreadable line ({e})",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(runs)
}

/// The runs of the plan `(activation, seed)` not yet in `done` with the same settings.
pub fn pending(plan: &[(String, u64)], done: &[RunResult], cfg: &RunConfig) -> Vec<(String, u64)> {
    plan.iter()
        .filter(|(a, s)| {
            !done
                .iter()
                .any(|r| &r.activation == a && r.seed == *s && &r.config == cfg)
        })
        .cloned()
        .collect()
}

/// Summary of one activation's runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Activation spec.
    pub activation: String,
    /// Runs that finished.
    pub finished: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Mean final test accuracy of the finished runs.
    pub mean: f64,
    /// Sample standard deviation (NaN for a single run).
    pub std: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
}

/// Per activation (in `order`), the statistics of its finished runs.
pub fn summarize(runs: &[RunResult], order: &[String]) -> Vec<Summary> {
    order
        .iter()
        .map(|a| {
            let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.activation == a).collect();
            let acc: Vec<f64> = mine.iter().filter_map(|r| r.test_accuracy).collect();
            let n = acc.len() as f64;
            let mean = acc.iter().sum::<f64>() / n;
            let std = if acc.len() > 1 {
                (acc.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                f64::NAN
            };
            Summary {
                activation: a.clone(),
                finished: acc.len(),
                diverged: mine.iter().filter(|r| r.diverged.is_some()).count(),
                mean,
                std,
                min: acc.iter().copied().fold(f64::INFINITY, f64::min),
                max: acc.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect()
}

/// The final table, with the study's single-run figures beside.
pub fn table(summaries: &[Summary]) -> String {
    let mut s = format!(
        "{:<22} {:>5} {:>8} {:>17} {:>8} {:>8} {:>8} {:>9}\n",
        "activation", "runs", "diverged", "test acc mean±std", "min", "max", "study", "Δ study"
    );
    for r in summaries {
        let f = |x: f64| {
            if x.is_finite() {
                format!("{x:.4}")
            } else {
                "-".into()
            }
        };
        let study = study_accuracy(&r.activation);
        let delta = study
            .filter(|_| r.finished > 0)
            .map_or("-".into(), |s| format!("{:+.4}", r.mean - s));
        let pm = if r.std.is_finite() {
            format!("{}±{:.4}", f(r.mean), r.std)
        } else {
            f(r.mean)
        };
        s += &format!(
            "{:<22} {:>5} {:>8} {:>17} {:>8} {:>8} {:>8} {:>9}\n",
            r.activation,
            r.finished,
            r.diverged,
            pm,
            f(r.min),
            f(r.max),
            study.map_or("-".into(), |x| format!("{x:.4}")),
            delta
        );
    }
    s
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

/// Writes the three plots into `out`; returns their paths.
pub fn plots(out: &Path, specs: &[ActSpec], runs: &[RunResult]) -> anyhow::Result<Vec<PathBuf>> {
    let text = register_font();
    let mut written = Vec::new();
    let files = [
        ("activations.png", 0),
        ("accuracy_per_epoch.png", 1),
        ("final_accuracy.png", 2),
    ];
    for (name, which) in files {
        let path = out.join(name);
        let r = match which {
            0 => plot_activations(&path, specs, runs, text),
            1 => plot_epochs(&path, specs, runs, text),
            _ => plot_final(&path, specs, runs, text),
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
/// learnable polynomial's trained form (first finished seed) beside its start.
fn plot_activations(
    path: &Path,
    specs: &[ActSpec],
    runs: &[RunResult],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut families: Vec<crate::spec::Exact> = Vec::new();
    for s in specs {
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
        let exact = fam.scalar();
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
            let trained = runs
                .iter()
                .filter(|r| r.activation == s.label)
                .find_map(|r| r.learned_coefficients.as_ref().map(|c| (r.seed, c)));
            if let Some((seed, c)) = trained {
                let p = polyact::Polynomial::from_f64(c);
                curves.push((
                    format!("{} trained (seed {seed})", s.label),
                    xs.iter().map(|&x| (x, p.eval(x))).collect(),
                ));
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

/// Mean test accuracy per epoch for each activation.
fn plot_epochs(
    path: &Path,
    specs: &[ActSpec],
    runs: &[RunResult],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in specs {
        let mut per_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.activation == s.label) {
            for h in &r.history {
                per_epoch.entry(h.epoch).or_default().push(h.test_accuracy);
            }
        }
        let pts: Vec<(f64, f64)> = per_epoch
            .into_iter()
            .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        if !pts.is_empty() {
            series.push((s.label.clone(), pts));
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

/// Final test accuracy per activation: mean with min–max bars, and the study's figure (cross).
fn plot_final(
    path: &Path,
    specs: &[ActSpec],
    runs: &[RunResult],
    text: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let order: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
    let sums: Vec<_> = summarize(runs, &order)
        .into_iter()
        .filter(|s| s.finished > 0)
        .collect();
    if sums.is_empty() {
        return Ok(false);
    }
    let lo = sums
        .iter()
        .map(|s| s.min)
        .chain(sums.iter().filter_map(|s| study_accuracy(&s.activation)))
        .fold(1.0, f64::min);
    let lo = (lo - 0.003).clamp(0.0, 0.99);
    let root = BitMapBackend::new(path, (160 + 110 * sums.len() as u32, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "Final test accuracy: mean, min-max (x = study)",
            ("sans-serif", 20),
        )
        .x_label_area_size(40)
        .y_label_area_size(55);
    }
    let n = sums.len();
    let mut chart = b.build_cartesian_2d(-0.5..n as f64 - 0.5, lo..1.0)?;
    let labels: Vec<String> = sums.iter().map(|s| s.activation.clone()).collect();
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
    for (i, s) in sums.iter().enumerate() {
        let x = i as f64;
        let color = PALETTE[i % PALETTE.len()];
        chart.draw_series(std::iter::once(ErrorBar::new_vertical(
            x,
            s.min,
            s.mean,
            s.max,
            color.stroke_width(2),
            16,
        )))?;
        chart.draw_series(std::iter::once(Circle::new((x, s.mean), 5, color.filled())))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{Divergence, EpochRecord};

    fn cfg(epochs: usize) -> RunConfig {
        RunConfig {
            dataset: "mnist".into(),
            epochs,
            batch_size: 128,
            lr: 1e-3,
            val_split: 5000,
            limit_train: None,
        }
    }

    fn result(a: &str, seed: u64, acc: f64, diverged: bool) -> RunResult {
        RunResult {
            activation: a.into(),
            seed,
            test_accuracy: (!diverged).then_some(acc),
            diverged: diverged.then(|| Divergence {
                epoch: 2,
                step: 17,
                loss: "NaN".into(),
            }),
            history: vec![EpochRecord {
                epoch: 1,
                train_loss: 0.3,
                train_accuracy: 0.9,
                val_accuracy: Some(0.97),
                test_accuracy: acc,
                seconds: 30.0,
                images_per_second: 1800.0,
                out_of_domain: None,
            }],
            parameters: 3_156_098,
            config: cfg(2),
            wall_seconds: 40.0,
            learned_coefficients: None,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("polyact-mnist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn results_round_trip_and_resume_skips_finished_runs() {
        let out = tmp("resume");
        assert!(read(&out).unwrap().is_empty());
        let r1 = result("relu", 0, 0.99, false);
        let r2 = result("m_tanh", 0, 0.0, true);
        append(&out, &r1).unwrap();
        append(&out, &r2).unwrap();
        // A line cut off mid-write is skipped, not fatal.
        let mut f = OpenOptions::new()
            .append(true)
            .open(results_path(&out))
            .unwrap();
        f.write_all(b"{\"activation\":\"sig").unwrap();
        drop(f);
        let back = read(&out).unwrap();
        assert_eq!(back, vec![r1, r2]);

        let plan: Vec<(String, u64)> = ["relu", "m_tanh", "sigmoid"]
            .iter()
            .flat_map(|a| (0..2).map(move |s| (a.to_string(), s)))
            .collect();
        let todo = pending(&plan, &back, &cfg(2));
        assert_eq!(
            todo,
            vec![
                ("relu".to_string(), 1),
                ("m_tanh".to_string(), 1),
                ("sigmoid".to_string(), 0),
                ("sigmoid".to_string(), 1)
            ]
        );
        // Other settings: nothing is reused.
        assert_eq!(pending(&plan, &back, &cfg(12)).len(), plan.len());
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn summary_statistics_and_table() {
        let runs = vec![
            result("relu", 0, 0.990, false),
            result("relu", 1, 0.994, false),
            result("m_relu", 0, 0.0, true),
        ];
        let s = summarize(&runs, &["relu".into(), "m_relu".into()]);
        approx::assert_abs_diff_eq!(s[0].mean, 0.992, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(s[0].std, 0.004 / 2f64.sqrt(), epsilon = 1e-12);
        assert_eq!((s[1].finished, s[1].diverged), (0, 1));
        let t = table(&s);
        assert!(t.contains("0.9927"), "{t}");
        assert!(t.contains("-0.0007"), "{t}");
    }

    #[test]
    fn plots_are_written() {
        let out = tmp("plots");
        fs::create_dir_all(&out).unwrap();
        let specs: Vec<ActSpec> = ["sigmoid", "m_sigmoid", "t_sigmoid", "relu", "m_relu"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let runs = vec![
            result("relu", 0, 0.99, false),
            result("m_sigmoid", 0, 0.985, false),
        ];
        let files = plots(&out, &specs, &runs).unwrap();
        assert_eq!(files.len(), 3);
        for f in files {
            let bytes = fs::read(&f).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{}", f.display());
        }
        fs::remove_dir_all(&out).unwrap();
    }
}

//! The study's MNIST experiment: a Keras-style CNN whose 1000-unit dense layer uses an exact
//! activation or a polynomial replacement, trained with Adam for 12 epochs on all 60,000
//! training images (the study's setting), with the test accuracy reported every epoch.
//!
//! ```text
//! cargo run --release --example mnist                      # the study's six activations, one seed
//! cargo run --release --example mnist -- --quick           # about two minutes on 2 cores
//! cargo run --release --example mnist -- --activations relu,m_relu,t_softplus --seeds 3 --jobs 2
//! cargo run --release --example mnist -- --activations minimax:sigmoid:5:-5:5,learn:m_sigmoid
//! cargo run --release --example mnist -- --val-split 5000  # hold 5,000 out: overfitting curves
//! cargo run --release --example mnist -- --report-only --out runs/mnist   # tables from results
//! ```
//!
//! Data: the four IDX files (raw or .gz) in `--data-dir`, else `$MNIST_DIR`, else
//! `data/<dataset>`; missing files are downloaded from `--mirror` and checked against their
//! published SHA-256. Output in `--out` (default `runs/<dataset>`): `results.jsonl` (one line
//! per finished run; `--resume` skips the runs it holds with the same settings), `summary.md`
//! (per activation mean, standard deviation, 95 % confidence interval, min and max; each
//! polynomial against its exact function paired by seed; a verdict on the study's claims),
//! `paired_differences.png`, `activations.png`, `accuracy_per_epoch.png`,
//! `final_accuracy.png`, with `--val-split` also `overfitting.png`, and the tables on stdout.
//! A training run holds its output folder (a lock on `.mnist-run.lock` there, released when
//! it ends): a second run into the same folder is refused, `--report-only` is not.
//! Runs are made seed-major (seed 0 of every activation, then seed 1, ...), and runs of one
//! seed share their initial weights, batch order and dropout masks.
//!
//! Expected result: every activation of the study reaches about 0.99 test accuracy after 12
//! epochs (the study: sigmoid 0.9929, relu 0.9927, tanh 0.9905, m_sigmoid 0.9923, m_relu 0.9913,
//! m_tanh 0.9918); differences of 0.1 points between single runs are within seed-to-seed noise.

// glibc malloc returns the large activation buffers to the OS and page-faults them back in at
// every step; mimalloc keeps them (measured on stock candle 0.11: about 1.65x faster training).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod conv;
mod data;
mod float;
#[cfg(feature = "cuda")]
mod gpu;
mod idx;
mod model;
mod report;
mod results;
mod save;
mod spec;
mod stats;
mod train;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::conv::Pooling;
use crate::data::DatasetKind;
use crate::model::ConvImpl;
use crate::spec::{ActSpec, STUDY};
use crate::train::{Engine, OptimizerKind, Prepared, RunConfig};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceKind {
    /// The CPU (fused convolution and Adam).
    Cpu,
    /// The first CUDA GPU (needs the crate's `cuda` feature): candle's convolutions, polyact's
    /// fused activation kernels, the example's fused Adam kernel, the data set kept on the GPU.
    Cuda,
}

/// Reproduce the study's MNIST CNN with exact and polynomial activations.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Activations to compare: exact (sigmoid, relu, tanh, softplus, gelu, silu, mish, softsign,
    /// elu, leaky_relu, identity, square), the study's m_sigmoid/m_relu/m_tanh, Taylor
    /// t_sigmoid/t_softplus/t_tanh or taylor:FN:DEG, minimax:FN:DEG:LO:HI, learn:SPEC.
    #[arg(long, value_delimiter = ',', default_values_t = STUDY.map(String::from))]
    activations: Vec<String>,
    /// Runs per activation (seeds first-seed, first-seed + 1, ...), made seed-major: seed 0 of
    /// every activation, then seed 1, ... (partial results stay balanced and paired).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=results::MAX_SEEDS))]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Passes over the training set.
    #[arg(long, default_value_t = 12, value_parser = positive)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 128, value_parser = positive)]
    batch_size: usize,
    /// Adam's learning rate (finite, positive).
    #[arg(long, default_value_t = 1e-3, value_parser = parse_lr)]
    lr: f64,
    /// Train on the first N training examples only (after the validation hold-out).
    #[arg(long, value_parser = positive)]
    limit_train: Option<usize>,
    /// Training examples held out (the last ones) for validation, whose accuracy is then
    /// reported every epoch beside the training accuracy (`overfitting.png`). The default 0 is
    /// the study's setting: train on all 60,000 images and report the test accuracy per epoch.
    #[arg(long, default_value_t = 0)]
    val_split: usize,
    /// A quick look: one epoch per activation, two runs side by side (about two minutes for the
    /// default six on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Independent runs side by side; the cores are split between them [default: 1, with
    /// --quick 2].
    #[arg(long, value_parser = positive)]
    jobs: Option<usize>,
    /// Data set (same IDX format).
    #[arg(long, value_enum, default_value_t = DatasetKind::Mnist)]
    dataset: DatasetKind,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// Folder with the IDX files (default: $MNIST_DIR, else data/<dataset>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder URL to download missing files from (default: $MNIST_MIRROR, else the data set's
    /// usual mirror).
    #[arg(long)]
    mirror: Option<String>,
    /// Never download; fail with the list of files to put in place.
    #[arg(long)]
    offline: bool,
    /// Output folder (default runs/<dataset>, with --quick runs/<dataset>-quick, so that a quick
    /// look never replaces the study's results or saved models). One training run at a time.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep results.jsonl and skip the runs it already holds (same settings).
    #[arg(long)]
    resume: bool,
    /// Convolution implementation.
    #[arg(long, value_enum, default_value_t = ConvImpl::Fused)]
    conv: ConvImpl,
    /// Adam implementation.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Fused)]
    optimizer: OptimizerKind,
    /// Give every polynomial activation this domain, as LO,HI (fits keep their interval
    /// otherwise); the fraction of inputs outside it is reported every epoch.
    #[arg(long, value_parser = parse_domain, allow_hyphen_values = true)]
    domain: Option<(f64, f64)>,
    /// Clamp a polynomial activation's inputs to its domain.
    #[arg(long)]
    clamp: bool,
    /// Skip the PNG plots.
    #[arg(long)]
    no_plots: bool,
    /// The convolutions' activation: relu (the study's), or a polynomial spec (m_relu,
    /// t_softplus, taylor:FN:DEG, minimax:FN:DEG:LO:HI) for a network of additions and
    /// multiplications only (with --pool avg).
    #[arg(long, default_value = "relu")]
    conv_activation: String,
    /// The convolutions' 2x2 pooling: max (the study's) or avg.
    #[arg(long, value_enum, default_value_t = Pooling::Max)]
    pool: Pooling,
    /// Do not save the trained models (default: `<out>/models/<activation>-seed<seed>.safetensors`,
    /// format in save.rs).
    #[arg(long)]
    no_save: bool,
    /// Train nothing: time N training steps of the first activation phase by phase (batch,
    /// forward, loss, backward, update; waiting for the device after each), then N steps
    /// straight, and print milliseconds per step. Nothing is written.
    #[arg(long, value_parser = positive)]
    profile_steps: Option<usize>,
    /// Train nothing: regenerate the tables, `summary.md` and the plots from `results.jsonl`
    /// in `--out` alone (runs of several machines or sessions may be combined in it).
    #[arg(long)]
    report_only: bool,
}

/// A whole number of at least 1.
fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, got {text:?}"
        )),
    }
}

/// A finite, positive learning rate.
fn parse_lr(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "expected a finite learning rate above 0, e.g. 1e-3, got {text:?}"
        )),
    }
}

/// `LO,HI` with finite `LO < HI`.
fn parse_domain(text: &str) -> Result<(f64, f64), String> {
    let bad = || format!("expected LO,HI with LO < HI, e.g. -4,4; got {text:?}");
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok((lo, hi))
    } else {
        Err(bad())
    }
}

fn device(kind: DeviceKind) -> anyhow::Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        DeviceKind::Cuda => anyhow::bail!("--device cuda needs a build with `--features cuda`"),
    }
}

impl Args {
    /// Applies `--quick`, checks what clap cannot check alone, and returns the run plan
    /// (seed-major); every refusal happens here, before any data is loaded.
    fn resolve(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        if self.quick {
            self.epochs = 1;
            self.jobs.get_or_insert(2);
        }
        let labels: Vec<String> = self
            .activations
            .iter()
            .map(|a| a.trim().to_string())
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = labels.iter().find(|l| !seen.insert(l.as_str())) {
            anyhow::bail!("--activations names {dup:?} twice");
        }
        results::plan(&labels, self.first_seed, self.seeds)
    }

    /// The output folder.
    fn out_dir(&self) -> PathBuf {
        let suffix = if self.quick { "-quick" } else { "" };
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}{suffix}", self.dataset)))
    }

    /// The settings that make a run's identity.
    fn run_config(&self) -> RunConfig {
        RunConfig {
            dataset: self.dataset.to_string(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            val_split: self.val_split,
            limit_train: self.limit_train,
            domain: self.domain,
            clamp: self.clamp,
            conv_activation: self.conv_activation.trim().to_string(),
            pooling: self.pool,
        }
    }

    /// How runs are executed, saving models in `out/models/` unless `--no-save`.
    fn engine(&self, out: &Path) -> anyhow::Result<Engine> {
        let conv_act: ActSpec = self.conv_activation.parse()?;
        let blocks = model::ConvSpec::new(&conv_act, self.pool)?;
        let device = device(self.device)?;
        let conv = conv_for(self.conv, device.is_cpu());
        let optimizer = self.optimizer;
        let pacing = train::Pacing::for_device(&device);
        Ok(Engine {
            device,
            conv,
            optimizer,
            range: model::RangePolicy {
                domain: self.domain,
                clamp: self.clamp,
            },
            blocks,
            pacing,
            models: (!self.no_save).then(|| out.to_path_buf()),
        })
    }

    /// Finds (or downloads) the data set and splits it.
    fn data(&self) -> anyhow::Result<Prepared> {
        let dir = data::data_dir(self.data_dir.as_deref(), self.dataset);
        let mirror = (!self.offline).then(|| {
            self.mirror
                .clone()
                .or_else(|| std::env::var("MNIST_MIRROR").ok())
                .unwrap_or_else(|| self.dataset.default_mirror().to_string())
        });
        let dataset = data::load(&dir, self.dataset, mirror.as_deref())?;
        Prepared::new(
            &dataset.train,
            dataset.test,
            self.val_split,
            self.limit_train,
        )
    }
}

/// candle 0.11 runs large elementwise ops on one global pool of spinning threads behind a
/// lock: side-by-side --jobs queue on it (measured: 1.34x slower with 2 jobs). The heavy work
/// here (fused convolutions, matrix products, Adam) runs on each job's rayon pool, so candle's
/// own elementwise ops stay on the calling thread unless the user says otherwise.
fn keep_candle_on_the_calling_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, when no other thread exists yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// Without `--resume`, moves an existing `results.jsonl` aside (never over another backup).
/// Takes the folder's [`results::Claim`]: only the one run that holds the folder may do this.
fn start_results(claim: &results::Claim, resume: bool) -> anyhow::Result<()> {
    let out = claim.dir();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if !resume && results::results_path(out).exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let old = results::backup(out, stamp)?;
        println!(
            "previous results moved to {} (use --resume to continue them)",
            old.display()
        );
    }
    Ok(())
}

/// Parses every `--activations` entry (all errors at once would hide the first: stop there).
fn parse_specs(labels: &[String]) -> anyhow::Result<Vec<ActSpec>> {
    labels.iter().map(|s| s.parse()).collect()
}

/// Trains the runs of `todo` on `jobs` threads of `threads` cores each, appending each result
/// to `out` as it finishes; returns the number of runs that failed.
fn run_all(
    todo: Vec<(String, u64)>,
    specs: &[ActSpec],
    prepared: &Prepared,
    cfg: &RunConfig,
    engine: &Engine,
    out: &Path,
    (jobs, threads): (usize, usize),
) -> anyhow::Result<usize> {
    let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
    let multi = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg} ETA {eta}")?
            .progress_chars("=> ");
    let (tx, rx) = mpsc::channel();
    let mut failures = 0;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let (tx, queue, multi, style) = (tx.clone(), &queue, &multi, &style);
            scope.spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("thread pool: {e}")));
                        return;
                    }
                };
                let engine = match engine.for_job() {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("device for a job: {e}")));
                        return;
                    }
                };
                let engine = &engine;
                loop {
                    let next = queue.lock().expect("poisoned").pop_front();
                    let Some((label, seed)) = next else { break };
                    let spec = specs
                        .iter()
                        .find(|s| s.label == label)
                        .expect("planned from specs");
                    let bar = multi.add(
                        ProgressBar::new(0)
                            .with_style(style.clone())
                            .with_prefix(format!("{label} s{seed}")),
                    );
                    let r = pool.install(|| train::run(spec, seed, prepared, cfg, engine, &bar));
                    bar.finish_and_clear();
                    let r = r.with_context(|| format!("{label} seed {seed}"));
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for r in rx {
            match r {
                Ok(r) => {
                    results::append(out, &r)?;
                    say(&multi, finished_line(&r));
                }
                Err(e) => {
                    failures += 1;
                    say(&multi, format!("error: {e:#}"));
                }
            }
        }
        Ok(())
    })?;
    Ok(failures)
}

fn finished_line(r: &train::RunResult) -> String {
    format!(
        "finished {} seed {}: test accuracy {} in {:.0} s",
        r.activation,
        r.seed,
        r.test_accuracy
            .map_or("diverged".into(), |a| format!("{a:.4}")),
        r.wall_seconds
    )
}

/// The tables and the verdict for the runs of `out` made with `cfg`, then `summary.md` and the
/// plots for every run of `out` (as `--report-only` makes them); returns the runs made with
/// `cfg`.
fn final_report(
    out: &Path,
    specs: &[ActSpec],
    cfg: &RunConfig,
    plots: bool,
) -> anyhow::Result<Vec<train::RunResult>> {
    let everything = results::read_reporting(out)?;
    let all: Vec<_> = everything
        .iter()
        .filter(|r| &r.config == cfg)
        .cloned()
        .collect();
    let order = report::label_order(
        &specs.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
        &all,
    );
    println!("\n{}", report::table(&report::summarize(&all, &order)));
    let pairs = stats::paired(&all, &order);
    if !pairs.is_empty() {
        println!("{}", report::paired_table(&pairs));
    }
    println!(
        "{}\n",
        stats::verdict(&stats::per_activation(&all, &order), &pairs)
    );
    println!("results: {}", results::results_path(out).display());
    for p in report::write_summary(out, &everything, &order, plots)? {
        println!("summary: {}", p.display());
    }
    if plots {
        for p in report::plots(out, &report::series(&everything, &order))? {
            println!("plot: {}", p.display());
        }
    }
    Ok(all)
}

/// The convolution that runs: the fused one is CPU code, so elsewhere candle's stands in for
/// it; the gemm block and candle's run on any device, as asked.
fn conv_for(chosen: ConvImpl, cpu: bool) -> ConvImpl {
    match chosen {
        ConvImpl::Fused if !cpu => ConvImpl::Candle,
        chosen => chosen,
    }
}

/// `--report-only`: every table and plot from `results.jsonl` alone.
fn report_only(out: &Path, preferred: &[String], plots: bool) -> anyhow::Result<()> {
    let runs = results::read_reporting(out)?;
    anyhow::ensure!(
        !runs.is_empty(),
        "no readable runs in {}",
        results::results_path(out).display()
    );
    let groups = report::groups(&runs);
    for (cfg, rs) in &groups {
        let order = report::label_order(preferred, rs);
        println!("{}\n", report::describe(cfg));
        println!("{}", report::table(&report::summarize(rs, &order)));
        println!("{}", report::paired_table(&stats::paired(rs, &order)));
    }
    for p in report::write_summary(out, &runs, preferred, plots)? {
        println!("summary: {}", p.display());
    }
    if plots {
        for p in report::plots(out, &report::series(&runs, preferred))? {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

/// The Keras-style summary and the multiplicative depth per layer of the first activation's
/// model.
fn print_model(spec: &ActSpec, engine: &Engine) -> anyhow::Result<()> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let m = model::Model::new(
        spec,
        &engine.range,
        &engine.blocks,
        engine.conv,
        &engine.device,
        &mut rng,
    )?;
    println!("{}", m.summary(&spec.label));
    println!("{}", m.depth_report(&spec.label));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    keep_candle_on_the_calling_thread();
    let mut args = Args::parse();
    let plan = args.resolve()?;
    let out = args.out_dir();
    if args.report_only {
        return report_only(&out, &args.activations, !args.no_plots);
    }
    let specs = parse_specs(&args.activations)?;
    if let Some(steps) = args.profile_steps {
        // Writes nothing in `out`: no claim on it (see below).
        let (engine, prepared) = (args.engine(&out)?, args.data()?);
        let cfg = args.run_config();
        println!(
            "{}",
            train::profile(&specs[0], &prepared, &cfg, &engine, steps)?
        );
        return Ok(());
    }
    // A training run holds `out` until `main` returns, so that a second one (which would move
    // results.jsonl aside, or make the same pending runs again) is refused before any work.
    // `--report-only` (above) takes no claim: it only reads results.jsonl and rewrites the
    // summary and plots (which the run rewrites at its end), so it can show a run's progress.
    let claim = results::claim(&out)?;
    let engine = args.engine(&out)?;
    let prepared = args.data()?;
    let cfg = args.run_config();
    start_results(&claim, args.resume)?;
    print_model(&specs[0], &engine)?;
    let done = if args.resume {
        results::read_reporting(&out)?
    } else {
        Vec::new()
    };
    let todo = results::pending(&plan, &done, &cfg);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(1).min(todo.len().max(1));
    let threads = (cores / jobs).max(1);
    println!(
        "{} runs to do ({} already in {}), {} train / {} validation / {} test images, {jobs} job(s) x {threads} thread(s)",
        todo.len(),
        plan.len() - todo.len(),
        results::results_path(&out).display(),
        prepared.train.len(),
        prepared.val.len(),
        prepared.test.len()
    );
    let started = Instant::now();
    let failures = run_all(
        todo,
        &specs,
        &prepared,
        &cfg,
        &engine,
        &out,
        (jobs, threads),
    )?;
    let all = final_report(&out, &specs, &cfg, !args.no_plots)?;
    let rates: Vec<f64> = all
        .iter()
        .flat_map(|r| r.history.iter().map(|h| h.images_per_second))
        .collect();
    if !rates.is_empty() {
        println!(
            "training throughput: {:.0} images/s per run on average ({jobs} job(s) x {threads} thread(s)); wall time {:.0} s",
            rates.iter().sum::<f64>() / rates.len() as f64,
            started.elapsed().as_secs_f64()
        );
    }
    anyhow::ensure!(failures == 0, "{failures} run(s) failed");
    Ok(())
}

/// Prints above the progress bars, or plainly when they are hidden (no terminal).
fn say(multi: &MultiProgress, line: String) {
    if multi.is_hidden() {
        println!("{line}");
    } else {
        let _ = multi.println(line);
    }
}

#[cfg(test)]
mod tests_support {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// Set to `1` to let the tests that need the real MNIST skip (visibly) when it is absent.
    pub const ALLOW_MISSING: &str = "POLYACT_ALLOW_MISSING_MNIST";

    /// Where the real MNIST is looked for: `$MNIST_DIR`, else `../shared/data/mnist` beside
    /// the repository.
    fn candidates() -> Vec<PathBuf> {
        std::env::var_os("MNIST_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")])
            .collect()
    }

    /// The first candidate folder holding the training images; when none does, `Err` with the
    /// reason unless `allow_missing`, in which case `Ok(None)` (a skip).
    pub fn locate(candidates: &[PathBuf], allow_missing: bool) -> Result<Option<PathBuf>, String> {
        let found = candidates
            .iter()
            .find(|d| crate::data::find_file(d, "train-images-idx3-ubyte").is_some());
        match found {
            Some(d) => Ok(Some(d.clone())),
            None if allow_missing => Ok(None),
            None => Err(format!(
                "real MNIST not found in {}: put the four IDX files there (or set MNIST_DIR), \
                 or set {ALLOW_MISSING}=1 to skip the tests that need it",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The real MNIST for a test. Absent, the test fails, unless `POLYACT_ALLOW_MISSING_MNIST=1`
    /// says a skip is wanted: then `None`, and the skip is written straight to the terminal's
    /// stderr (past the test harness' capture) with its reason.
    pub fn real_mnist(test: &str) -> Option<PathBuf> {
        let allow = std::env::var(ALLOW_MISSING).is_ok_and(|v| v == "1");
        match locate(&candidates(), allow) {
            Ok(Some(d)) => Some(d),
            Ok(None) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: real MNIST not found in {:?} and {ALLOW_MISSING}=1",
                    candidates()
                );
                None
            }
            Err(reason) => panic!("{test}: {reason}"),
        }
    }

    /// Issue 9 item 19: a missing data folder used to make the tests return early and pass.
    #[test]
    fn missing_data_fails_unless_a_skip_is_asked_for() {
        let nowhere = vec![std::env::temp_dir().join("polyact-no-mnist-here")];
        let err = locate(&nowhere, false).unwrap_err();
        assert!(
            err.contains("polyact-no-mnist-here") && err.contains(ALLOW_MISSING),
            "{err}"
        );
        assert_eq!(locate(&nowhere, true), Ok(None));
        // A folder with the training images is found.
        let dir = std::env::temp_dir().join(format!("polyact-mnist-here-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        let mut both = nowhere.clone();
        both.push(dir.clone());
        assert_eq!(locate(&both, false), Ok(Some(dir.clone())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults_are_the_studys() {
        let a = Args::try_parse_from(["mnist"]).unwrap();
        assert_eq!(a.activations, STUDY.map(String::from).to_vec());
        assert_eq!(
            (a.epochs, a.batch_size, a.seeds, a.val_split, a.limit_train),
            (12, 128, 1, 0, None)
        );
        approx::assert_abs_diff_eq!(a.lr, 1e-3);
        let a = Args::try_parse_from([
            "mnist",
            "--activations",
            "relu,learn:m_tanh",
            "--dataset",
            "fashion-mnist",
            "--jobs",
            "2",
            "--domain",
            "-4,4",
        ])
        .unwrap();
        assert_eq!(a.activations, vec!["relu", "learn:m_tanh"]);
        assert_eq!(a.jobs, Some(2));
        assert_eq!(a.domain, Some((-4.0, 4.0)));
        assert!(Args::try_parse_from(["mnist", "--domain", "4,-4"]).is_err());
        assert!(Args::try_parse_from(["mnist", "--domain", "x"]).is_err());
        assert_eq!(a.dataset, DatasetKind::FashionMnist);
        assert!(Args::try_parse_from(["mnist", "--device", "tpu"]).is_err());
    }

    /// Issue 9 item 16: `--limit-train 0`, `--lr=nan` and `--lr=inf` were accepted; the runs
    /// then wrote records that could not be read back and the summary showed 0 runs.
    #[test]
    fn bad_values_are_refused_up_front() {
        for bad in [
            &["--limit-train", "0"][..],
            &["--lr=nan"],
            &["--lr=inf"],
            &["--lr=-1e-3"],
            &["--lr", "0"],
            &["--epochs", "0"],
            &["--batch-size", "0"],
            &["--seeds", "0"],
            &["--jobs", "0"],
            &["--seeds", "18446744073709551615"],
        ] {
            let argv: Vec<&str> = std::iter::once("mnist")
                .chain(bad.iter().copied())
                .collect();
            assert!(Args::try_parse_from(&argv).is_err(), "{argv:?} accepted");
        }
        // Issue 9 item 7: the first seed plus the seeds overflow u64.
        let mut a = Args::try_parse_from([
            "mnist",
            "--first-seed",
            "18446744073709551615",
            "--seeds",
            "2",
        ])
        .unwrap();
        let err = a.resolve().unwrap_err().to_string();
        assert!(err.contains("--first-seed"), "{err}");
        let mut a = Args::try_parse_from(["mnist", "--activations", "relu,relu"]).unwrap();
        assert!(a.resolve().is_err());
        let mut a = Args::try_parse_from(["mnist", "--quick", "--seeds", "2"]).unwrap();
        let plan = a.resolve().unwrap();
        assert_eq!((a.epochs, a.jobs), (1, Some(2)));
        // Seed-major: seed 0 of every activation first.
        assert_eq!(plan[..2], [("sigmoid".into(), 0), ("relu".into(), 0)]);
        assert_eq!(plan[6], ("sigmoid".into(), 1));
    }

    /// Issue 9 item 17: every setting that changes the model is part of a run's identity.
    #[test]
    fn model_settings_are_part_of_the_identity() {
        let base = Args::try_parse_from(["mnist"]).unwrap().run_config();
        for other in [
            &["--domain", "-4,4"][..],
            &["--domain", "-4,4", "--clamp"],
            &["--val-split", "5000"],
            &["--epochs", "3"],
            &["--batch-size", "64"],
            &["--lr", "2e-3"],
            &["--limit-train", "100"],
            &["--dataset", "fashion-mnist"],
            &["--conv-activation", "m_relu"],
            &["--pool", "avg"],
        ] {
            let argv: Vec<&str> = std::iter::once("mnist")
                .chain(other.iter().copied())
                .collect();
            let cfg = Args::try_parse_from(&argv).unwrap().run_config();
            assert_ne!(cfg, base, "{argv:?} does not change the identity");
        }
        let clamped = Args::try_parse_from(["mnist", "--domain", "-4,4", "--clamp"])
            .unwrap()
            .run_config();
        let plain = Args::try_parse_from(["mnist", "--domain", "-4,4"])
            .unwrap()
            .run_config();
        let done = vec![{
            let mut r = results::tests::result("m_sigmoid", 0, 0.99, false);
            r.config = plain;
            r
        }];
        let plan = vec![("m_sigmoid".to_string(), 0)];
        assert_eq!(results::pending(&plan, &done, &clamped), plan);
        // The execution engine is not part of it.
        let a = Args::try_parse_from(["mnist", "--conv", "candle", "--jobs", "2", "--no-save"])
            .unwrap();
        assert_eq!(a.run_config(), base);
    }

    /// `--report-only` on a hand-written `results.jsonl` (one record in the format of the
    /// first versions, without domain, clamp or device; one foreign line): the statistics
    /// against values computed by hand.
    #[test]
    fn report_only_regenerates_the_summary_from_results_alone() {
        let out = results::tests::tmp("report-only");
        std::fs::create_dir_all(&out).unwrap();
        let cfg = r#""config":{"dataset":"mnist","epochs":12,"batch_size":128,"lr":0.001,"val_split":0,"limit_train":null}"#;
        let line = |a: &str, seed: u64, acc: &str| {
            format!(
                r#"{{"activation":"{a}","seed":{seed},"test_accuracy":{acc},"diverged":null,"history":[],"parameters":3156098,{cfg},"wall_seconds":100.0}}"#
            )
        };
        let mut text = String::new();
        for (seed, (e, p)) in [
            ("0.9920", "0.9930"),
            ("0.9930", "0.9935"),
            ("0.9925", "0.9940"),
        ]
        .into_iter()
        .enumerate()
        {
            text += &line("sigmoid", seed as u64, e);
            text += "\n";
            text += &line("m_sigmoid", seed as u64, p);
            text += "\n";
        }
        text += "not json\n";
        std::fs::write(results::results_path(&out), text).unwrap();
        report_only(&out, &[], true).unwrap();
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        // sigmoid: mean 0.9925, s = 0.0005, half width 4.302653 · 0.0005 / √3 = 0.0012421.
        assert!(
            md.contains("| sigmoid | 3 | 0 | 0.9925 | 0.0005 | [0.9913, 0.9937] | 0.9920 | 0.9930 | 0.9929 |"),
            "{md}"
        );
        assert!(
            md.contains("| m_sigmoid | 3 | 0 | 0.9935 | 0.0005 | [0.9923, 0.9947] |"),
            "{md}"
        );
        // Differences 0.0010, 0.0005, 0.0015: mean 0.0010, s = 0.0005, same half width.
        assert!(
            md.contains("| m_sigmoid | sigmoid | 3 | +0.100 | [-0.024, 0.224] | 0 |"),
            "{md}"
        );
        assert!(md.contains("holds for m_sigmoid"), "{md}");
        assert!(
            md.contains("within noise (interval contains 0): m_sigmoid vs sigmoid"),
            "{md}"
        );
        assert!(md.contains("no hold-out"), "{md}");
        for png in ["paired_differences.png", "final_accuracy.png"] {
            let bytes = std::fs::read(out.join(png)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{png}");
        }
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// A quick look writes beside the study's folder, not into it (its models would replace the
    /// study's, which have the same names).
    #[test]
    fn a_quick_look_keeps_out_of_the_studys_folder() {
        let dir = |args: &[&str]| {
            let mut all = vec!["mnist"];
            all.extend_from_slice(args);
            Args::try_parse_from(all).unwrap().out_dir()
        };
        assert_eq!(dir(&[]), PathBuf::from("runs/mnist"));
        assert_eq!(dir(&["--quick"]), PathBuf::from("runs/mnist-quick"));
        assert_eq!(
            dir(&["--quick", "--dataset", "fashion-mnist"]),
            PathBuf::from("runs/fashion-mnist-quick")
        );
        assert_eq!(dir(&["--quick", "--out", "x"]), PathBuf::from("x"));
    }

    /// Two runs into one folder moved each other's results.jsonl aside: the second is now
    /// refused, naming the first's process, before it touches the folder.
    #[test]
    fn a_second_run_leaves_the_first_runs_results_alone() {
        let out = results::tests::tmp("second-run");
        results::append(&out, &results::tests::result("relu", 0, 0.99, false)).unwrap();
        let first = results::claim(&out).unwrap();
        start_results(&first, true).unwrap();
        let err = results::claim(&out).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        assert_eq!(results::read(&out).unwrap().runs.len(), 1);
        drop(first);
        // The folder is free again: a new run (without --resume) moves the results aside.
        let second = results::claim(&out).unwrap();
        start_results(&second, false).unwrap();
        assert!(!results::results_path(&out).exists());
        drop(second);
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// `--conv gemm` and `--conv candle` run as asked on a GPU; only the CPU-only fused
    /// convolution is replaced there.
    #[test]
    fn the_chosen_convolution_runs_where_it_can() {
        for c in [ConvImpl::Fused, ConvImpl::Candle, ConvImpl::Gemm] {
            assert_eq!(conv_for(c, true), c);
        }
        assert_eq!(conv_for(ConvImpl::Fused, false), ConvImpl::Candle);
        assert_eq!(conv_for(ConvImpl::Gemm, false), ConvImpl::Gemm);
        assert_eq!(conv_for(ConvImpl::Candle, false), ConvImpl::Candle);
    }

    /// `--report-only` on results of two settings that share their activations: every plot
    /// holds the series of both (one bar per setting and activation, one pair per setting).
    #[test]
    fn report_only_plots_every_group_of_settings() {
        let out = results::tests::tmp("report-only-groups");
        for (conv, seeds) in [("taylor:square:2", 0..2), ("taylor:softplus:2", 0..1)] {
            for seed in seeds {
                for (a, acc) in [("sigmoid", 0.99), ("m_sigmoid", 0.98)] {
                    let mut r = results::tests::result(a, seed, acc, false);
                    r.config.conv_activation = conv.into();
                    r.config.pooling = Pooling::Avg;
                    results::append(&out, &r).unwrap();
                }
            }
        }
        report_only(&out, &[], true).unwrap();
        let width = |png: &str| {
            let bytes = std::fs::read(out.join(png)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{png}");
            u32::from_be_bytes(bytes[16..20].try_into().unwrap())
        };
        let _ = width("accuracy_per_epoch.png");
        let _ = width("activations.png");
        // Four bars (one group alone would give two: 160 + 2 · 110 pixels).
        assert!(width("final_accuracy.png") >= 160 + 4 * 110);
        // Two pairs, m_sigmoid - sigmoid in each group.
        assert!(width("paired_differences.png") >= 200 + 2 * 130);
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(
            md.contains("convolutions taylor:square:2 with avg pooling"),
            "{md}"
        );
        assert!(
            md.contains("convolutions taylor:softplus:2 with avg pooling"),
            "{md}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

//! The study's MNIST experiment: a Keras-style CNN whose 1000-unit dense layer uses an exact
//! activation or a polynomial replacement, trained with Adam for 12 epochs.
//!
//! ```text
//! cargo run --release --example mnist                      # the study's six activations, one seed
//! cargo run --release --example mnist -- --quick           # about two minutes on 2 cores
//! cargo run --release --example mnist -- --activations relu,m_relu,t_softplus --seeds 3 --jobs 2
//! cargo run --release --example mnist -- --activations minimax:sigmoid:5:-5:5,learn:m_sigmoid
//! ```
//!
//! Data: the four IDX files (raw or .gz) in `--data-dir`, else `$MNIST_DIR`, else
//! `data/<dataset>`; missing files are downloaded from `--mirror` and checked against their
//! published SHA-256. Output in `--out` (default `runs/<dataset>`): `results.jsonl` (one line
//! per finished run; `--resume` skips those), `activations.png`, `accuracy_per_epoch.png`,
//! `final_accuracy.png`, and a table beside the study's figures on stdout.
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
mod model;
mod report;
mod series;
mod spec;
mod train;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::data::DatasetKind;
use crate::model::ConvImpl;
use crate::spec::{ActSpec, STUDY};
use crate::train::{Engine, OptimizerKind, Prepared, RunConfig};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceKind {
    /// The CPU (fused convolution and Adam).
    Cpu,
    /// The first CUDA GPU (needs the crate's `cuda` feature; uses candle's generic ops).
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
    /// Runs per activation (seeds first-seed, first-seed + 1, ...).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Passes over the training set.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Train on the first N training examples only (after the validation hold-out).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Training examples held out (the last ones) for validation; 0 trains on all 60,000.
    #[arg(long, default_value_t = 5000)]
    val_split: usize,
    /// A quick look: one epoch per activation, two runs side by side (about a minute and a half
    /// for the default six on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Independent runs side by side; the cores are split between them [default: 1, with
    /// --quick 2].
    #[arg(long)]
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
    /// Output folder (default runs/<dataset>).
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

fn main() -> anyhow::Result<()> {
    // candle 0.11 runs large elementwise ops on one global pool of spinning threads behind a
    // lock: side-by-side --jobs queue on it (measured: 1.34x slower with 2 jobs). The heavy
    // work here (fused convolutions, matrix products, Adam) runs on each job's rayon pool, so
    // candle's own elementwise ops stay on the calling thread unless the user says otherwise.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    let mut args = Args::parse();
    if args.quick {
        args.epochs = 1;
        args.jobs.get_or_insert(2);
    }
    let jobs = args.jobs.unwrap_or(1);
    anyhow::ensure!(
        jobs >= 1 && args.seeds >= 1 && args.epochs >= 1 && args.batch_size >= 1,
        "--jobs, --seeds, --epochs and --batch-size must be at least 1"
    );
    let specs: Vec<ActSpec> = args
        .activations
        .iter()
        .map(|s| s.parse())
        .collect::<anyhow::Result<_>>()?;
    let device = device(args.device)?;
    let range = model::RangePolicy {
        domain: args.domain,
        clamp: args.clamp,
    };
    let mut engine = Engine {
        device: device.clone(),
        conv: args.conv,
        optimizer: args.optimizer,
        range,
    };
    if !device.is_cpu() {
        engine.conv = ConvImpl::Candle;
        engine.optimizer = OptimizerKind::Candle;
    }

    let dir = data::data_dir(args.data_dir.as_deref(), args.dataset);
    let mirror = (!args.offline).then(|| {
        args.mirror
            .clone()
            .or_else(|| std::env::var("MNIST_MIRROR").ok())
            .unwrap_or_else(|| args.dataset.default_mirror().to_string())
    });
    let dataset = data::load(&dir, args.dataset, mirror.as_deref())?;
    let prepared = Prepared::new(
        &dataset.train,
        dataset.test,
        args.val_split,
        args.limit_train,
    )?;
    let cfg = RunConfig {
        dataset: args.dataset.to_string(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        val_split: args.val_split,
        limit_train: args.limit_train,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(args.dataset.to_string()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let results = report::results_path(&out);
    if !args.resume && results.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let old = out.join(format!("results.{stamp}.jsonl"));
        std::fs::rename(&results, &old)?;
        println!(
            "previous results moved to {} (use --resume to continue them)",
            old.display()
        );
    }

    {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let m = model::Model::new(&specs[0], &engine.range, engine.conv, &device, &mut rng)?;
        println!("{}", m.summary(&specs[0].label));
    }
    let plan: Vec<(String, u64)> = specs
        .iter()
        .flat_map(|s| (0..args.seeds).map(move |i| (s.label.clone(), args.first_seed + i)))
        .collect();
    let done = if args.resume {
        report::read(&out)?
    } else {
        Vec::new()
    };
    let todo = report::pending(&plan, &done, &cfg);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = jobs.min(todo.len().max(1));
    let threads = (cores / jobs).max(1);
    println!(
        "{} runs to do ({} already in {}), {} train / {} validation / {} test images, {jobs} job(s) x {threads} thread(s)",
        todo.len(),
        plan.len() - todo.len(),
        results.display(),
        prepared.train.len(),
        prepared.val.len(),
        prepared.test.len()
    );

    let started = Instant::now();
    let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
    let multi = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg} ETA {eta}")?
            .progress_chars("=> ");
    let (tx, rx) = mpsc::channel();
    let mut failures = 0;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..jobs {
            let (tx, queue, specs, prepared, cfg, engine, multi, style) = (
                tx.clone(),
                &queue,
                &specs,
                &prepared,
                &cfg,
                &engine,
                &multi,
                &style,
            );
            scope.spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("thread pool: {e}")));
                        return;
                    }
                };
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
                    report::append(&out, &r)?;
                    say(
                        &multi,
                        format!(
                            "finished {} seed {}: test accuracy {} in {:.0} s",
                            r.activation,
                            r.seed,
                            r.test_accuracy
                                .map_or("diverged".into(), |a| format!("{a:.4}")),
                            r.wall_seconds
                        ),
                    );
                }
                Err(e) => {
                    failures += 1;
                    say(&multi, format!("error: {e:#}"));
                }
            }
        }
        Ok(())
    })?;

    let all: Vec<_> = report::read(&out)?
        .into_iter()
        .filter(|r| r.config == cfg)
        .collect();
    let order: Vec<String> = specs.iter().map(|s| s.label.clone()).collect();
    println!("\n{}", report::table(&report::summarize(&all, &order)));
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
    println!("results: {}", results.display());
    if !args.no_plots {
        for p in report::plots(&out, &specs, &all)? {
            println!("plot: {}", p.display());
        }
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
    use std::path::{Path, PathBuf};

    /// The real MNIST shared beside the repository (`../shared/data/mnist`), if present.
    pub fn shared_mnist() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!(
                "SKIPPED: real MNIST not found at {} (expected beside the repository)",
                dir.display()
            );
            None
        }
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
            (a.epochs, a.batch_size, a.seeds, a.val_split),
            (12, 128, 1, 5000)
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
}

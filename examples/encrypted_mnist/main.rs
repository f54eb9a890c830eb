//! Encrypted MNIST head: a client extracts features in the clear, a server evaluates the dense
//! head (3136 → 1000 → polynomial → 10) on BFV ciphertexts with evaluation keys only, and the
//! client decrypts the logits.
//!
//! ```text
//! cargo run --release --no-default-features --features he --example encrypted_mnist -- \
//!     --model runs/mnist/models/m_sigmoid-seed0.safetensors --encrypted 100
//! ```
//!
//! The model file is the one the MNIST example saves (safetensors, format
//! `polyact-mnist-cnn/1`). Steps: (1) float accuracy of the loaded model on the 10,000 test
//! images, (2) the exact integer simulation of the quantised head on all of them (the encrypted
//! model's accuracy), (3) key generation and `--encrypted N` images run encrypted at 128-bit
//! parameters (N = 16384, 438-bit modulus, the homomorphicencryption.org table as used by
//! fhe.rs' `default_parameters_128`), each checked bit for bit against the simulation, (4) a
//! summary table and a latency plot in `--out`.
//!
//! Expected result for the study's `m_sigmoid` network: simulation accuracy within 0.1 points of
//! float (about 0.99), every encrypted image equal to the simulation. fhe.rs has not been
//! independently audited; this is a measurement, not a product.

// The MNIST example's IDX reader (checked, bounded, never panics), shared rather than copied.
#[path = "../mnist/idx.rs"]
mod idx;
mod model;

// Every ciphertext operation makes fresh multi-megabyte polynomials; glibc's malloc hands them
// back to the operating system and page-faults them in again each time, mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::bail;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use num_bigint::BigInt;
use polyact::he::head::{EncryptedHead, QuantizedHead, Scales, argmax};
use polyact::he::{Backend, Bfv};
use rayon::prelude::*;

#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Model saved by the MNIST example (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Folder with the MNIST IDX files, raw or .gz: t10k-{images-idx3,labels-idx1}-ubyte, and
    /// the train- ones unless --feature-max is given (default: $MNIST_DIR, else data/mnist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Test images to run encrypted (the first N), each compared with the simulation.
    #[arg(long, default_value_t = 100)]
    encrypted: usize,
    /// Fractional bits of the features.
    #[arg(long, default_value_t = 4)]
    input_bits: u32,
    /// Fractional bits of the first dense layer's weights.
    #[arg(long, default_value_t = 7)]
    weight_bits: u32,
    /// Fractional bits of the last layer's weights.
    #[arg(long, default_value_t = 6)]
    output_weight_bits: u32,
    /// Bits of each plaintext prime (their number follows from the worst-case logit).
    #[arg(long, default_value_t = 30)]
    prime_bits: usize,
    /// Declared feature range [0, MAX]; larger features are clamped by the client (and counted).
    /// Default: 1.25 × the largest feature of the first 2,000 training images, rounded up.
    #[arg(long)]
    feature_max: Option<f64>,
    /// Output folder for the summary and the plot.
    #[arg(long, default_value = "runs/encrypted_mnist")]
    out: PathBuf,
}

/// One encrypted image: index, encrypt, evaluate and decrypt seconds, noise budget left, equal
/// to the simulation.
type Row = (usize, f64, f64, f64, f64, bool);

/// The images (pixels / 255, row-major) and labels of the split `prefix` (`t10k` or `train`)
/// in `dir`, each file raw or gzip; every file checked (28 × 28 images, labels that are
/// digits, as many of each), and every error names the file.
fn images(dir: &Path, prefix: &str) -> Result<(Vec<Vec<f32>>, Vec<u8>), idx::IdxError> {
    let images = idx::require_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels = idx::require_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let split = idx::load_split(&images, &labels)?;
    let imgs = split
        .images
        .chunks_exact(idx::SIDE * idx::SIDE)
        .map(|c| c.iter().map(|&p| f32::from(p) / 255.0).collect())
        .collect();
    Ok((imgs, split.labels))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>12} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {{msg}}"
        ))
        .expect("valid template"),
    );
    b
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("MNIST_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/mnist"));
    std::fs::create_dir_all(&args.out)?;
    let m = model::load(&args.model)?;
    if let Some(ds) = m.metadata.get("dataset").filter(|d| d.as_str() != "mnist") {
        eprintln!(
            "warning: the model was trained on {ds}; the images read here are MNIST's ({})",
            dir.display()
        );
    }
    println!(
        "model {} (activation {:?}, polynomial {}, saved test accuracy {:?})",
        args.model.display(),
        m.metadata.get("activation"),
        m.head.activation,
        m.saved_accuracy()
    );

    // 1. Client-side features and float accuracy.
    let t0 = Instant::now();
    let (test_images, labels) = images(&dir, "t10k")?;
    let feats = m.features_all(&test_images);
    let feature_seconds = t0.elapsed().as_secs_f64();
    let float_correct = feats
        .par_iter()
        .zip(&labels)
        .filter(|(f, l)| argmax(&m.head.forward(f)) == usize::from(**l))
        .count();
    let float_acc = float_correct as f64 / labels.len() as f64;
    println!(
        "float accuracy {float_acc:.4} on {} test images (features: {feature_seconds:.1} s)",
        labels.len()
    );
    if let Some(saved) = m.saved_accuracy() {
        println!(
            "  saved by the trainer: {saved:.4} (difference {:+.4})",
            float_acc - saved
        );
    }

    // 2. Quantised head and its exact simulation on all test images.
    // Features are f32: the range's end is taken as an f32 too, so that a feature clamped to it
    // lies inside the range (2.7 as f32 is 2.70000005, above 2.7).
    let feature_max = match args.feature_max {
        Some(v) => f64::from(v as f32),
        None => {
            let (train, _) = images(&dir, "train")?;
            let n = train.len().min(2000);
            let max = m
                .features_all(&train[..n])
                .iter()
                .flatten()
                .fold(0f32, |a, &b| a.max(b));
            (f64::from(max) * 1.25).ceil()
        }
    };
    let scales = Scales {
        input_bits: args.input_bits,
        weight_bits: args.weight_bits,
        output_weight_bits: args.output_weight_bits,
    };
    let q = QuantizedHead::new(&m.head, scales, 0.0, feature_max)?;
    let clamped = AtomicUsize::new(0);
    let quantized: Vec<Vec<i64>> = feats
        .par_iter()
        .map(|f| {
            let c: Vec<f32> = f
                .iter()
                .map(|&v| {
                    if f64::from(v) > feature_max {
                        clamped.fetch_add(1, Ordering::Relaxed);
                        feature_max as f32
                    } else {
                        v
                    }
                })
                .collect();
            q.quantize(&c)
        })
        .collect::<Result<_, _>>()?;
    let t1 = Instant::now();
    let sim: Vec<Vec<BigInt>> = quantized.par_iter().map(|x| q.simulate(x)).collect();
    let sim_seconds = t1.elapsed().as_secs_f64();
    let sim_correct = sim
        .iter()
        .zip(&labels)
        .filter(|(s, l)| argmax(s) == usize::from(**l))
        .count();
    let sim_acc = sim_correct as f64 / labels.len() as f64;
    let agree = sim
        .iter()
        .zip(&feats)
        .filter(|(s, f)| argmax(s) == argmax(&m.head.forward(f)))
        .count();
    println!(
        "simulation accuracy {sim_acc:.4} ({:+.4} vs float; same class as float on {agree}/{}), \
         {:.1} s; features in [0, {feature_max}] ({} values clamped), worst-case logit 2^{:.1}",
        sim_acc - float_acc,
        labels.len(),
        sim_seconds,
        clamped.load(Ordering::Relaxed),
        q.output_bound_bits()
    );

    // 3. Encrypted evaluation at 128-bit parameters.
    let degree = 16384;
    let needed = q.output_bound_bits() + 2.0;
    let count = (needed / (args.prime_bits as f64 - 1.0)).ceil() as usize;
    let primes = polyact::he::bfv::plaintext_primes(args.prime_bits, degree, count)?;
    let backends: Vec<Bfv> = primes
        .iter()
        .map(|&t| Bfv::secure(degree, t))
        .collect::<Result<_, _>>()?;
    let probe = backends[0].clone();
    let log_q = probe.modulus_bits(0);
    let t2 = Instant::now();
    let eh = EncryptedHead::new(&q, backends, None)?;
    let encode_seconds = t2.elapsed().as_secs_f64();
    let l = *eh.layout();
    println!(
        "BFV N = {degree}, log Q = {log_q:.0} (128-bit, homomorphicencryption.org), {count} plaintext \
         primes of {} bits {:?}, level {} (log Q there {:.0}); estimated budget left {:.0} bits",
        args.prime_bits,
        eh.primes(),
        eh.level(),
        probe.modulus_bits(eh.level()),
        eh.estimate().budget_left()
    );
    println!(
        "layout: blocks of {} ({} per row), {} diagonals = {} baby x {} giant steps, {} rotation keys",
        l.block,
        l.blocks,
        l.diagonals,
        l.baby,
        l.giant,
        l.rotations().len()
    );
    let kb = bar(eh.keygen_steps(), "keygen");
    let t3 = Instant::now();
    let (client, server) = eh.keygen(&|| kb.inc(1))?;
    kb.finish();
    let keygen_seconds = t3.elapsed().as_secs_f64();
    let server_key_bytes = server.bytes(&eh);

    let n = args.encrypted.min(labels.len());
    let eb = bar(n as u64, "encrypted");
    let mut rows = Vec::new();
    let (mut equal, mut enc_correct) = (0usize, 0usize);
    let mut ops = None;
    let mut sizes = (0, 0);
    let mut min_budget = f64::INFINITY;
    let csv_path = args.out.join("images.csv");
    std::fs::write(
        &csv_path,
        "image,encrypt_s,evaluate_s,decrypt_s,noise_budget_bits,equal\n",
    )?;
    for i in 0..n {
        let ta = Instant::now();
        let ct = eh.encrypt_quantized(&client, &quantized[i])?;
        let enc_s = ta.elapsed().as_secs_f64();
        let tb = Instant::now();
        let (out, used) = eh.evaluate(&server, &ct, &|| {})?;
        let eval_s = tb.elapsed().as_secs_f64();
        let tc = Instant::now();
        let dec = eh.decrypt(&client, &out)?;
        let dec_s = tc.elapsed().as_secs_f64();
        let same = dec.logits == sim[i] && dec.residues == eh.expected_residues(&sim[i]);
        equal += usize::from(same);
        enc_correct += usize::from(argmax(&dec.logits) == usize::from(labels[i]));
        let budget = dec
            .noise_budget
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        min_budget = min_budget.min(budget);
        ops = Some(used);
        sizes = (ct.bytes(&eh), out.bytes(&eh));
        rows.push((i, enc_s, eval_s, dec_s, budget, same));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&csv_path)?;
            writeln!(
                f,
                "{i},{enc_s:.4},{eval_s:.4},{dec_s:.4},{budget:.1},{same}"
            )?;
        }
        eb.set_message(format!(
            "{equal}/{} equal to the simulation, {eval_s:.1} s",
            i + 1
        ));
        eb.inc(1);
    }
    eb.finish();
    let ops = ops.unwrap_or_default();
    let mean = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64;
    let (enc_s, eval_s, dec_s) = (mean(|r| r.1), mean(|r| r.2), mean(|r| r.3));
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let summary = format!(
        "| quantity | value |\n|---|---|\n\
         | model | {} (saved test accuracy {:?}) |\n\
         | float accuracy, 10,000 test images | {float_acc:.4} |\n\
         | simulated encrypted accuracy, 10,000 images | {sim_acc:.4} ({:+.4}) |\n\
         | encrypted images equal to the simulation (bit for bit) | {equal}/{n} |\n\
         | accuracy of those encrypted images | {:.4} |\n\
         | scales (features, W1, W2) | 2^{}, 2^{}, 2^{}; features in [0, {feature_max}] |\n\
         | worst-case logit / plaintext space | 2^{:.1} / ±2^{:.1} ({count} primes of {} bits) |\n\
         | ring, modulus, level | N = {degree}, log Q = {log_q:.0}, level {} (128-bit, homomorphicencryption.org) |\n\
         | per prime: ct×pt, ct×ct, rotations, depth | {}, {}, {}, {} (+ {} constant products) |\n\
         | key generation | {keygen_seconds:.1} s |\n\
         | server evaluation keys | {:.0} MiB |\n\
         | input / output ciphertexts | {:.1} MiB / {:.1} MiB |\n\
         | client: encrypt, decrypt (per image) | {enc_s:.2} s, {dec_s:.2} s |\n\
         | server: encrypted evaluation (per image) | {eval_s:.2} s |\n\
         | noise budget left (min over images and primes) | {min_budget:.0} bits (estimate {:.0}) |\n\
         | weights encoding (once) | {encode_seconds:.1} s |\n\
         | peak memory (RSS) | {:.0} MiB |\n",
        args.model.display(),
        m.saved_accuracy(),
        sim_acc - float_acc,
        enc_correct as f64 / n.max(1) as f64,
        args.input_bits,
        args.weight_bits,
        args.output_weight_bits,
        q.output_bound_bits(),
        eh.primes().iter().map(|&p| (p as f64).log2()).sum::<f64>() - 1.0,
        args.prime_bits,
        eh.level(),
        ops.plain_products,
        ops.products,
        ops.rotations,
        ops.depth,
        ops.scalar_products,
        mib(server_key_bytes),
        mib(sizes.0),
        mib(sizes.1),
        eh.estimate().budget_left(),
        peak_rss_mib(),
    );
    println!("\n{summary}");
    std::fs::write(args.out.join("summary.md"), &summary)?;
    plot(&args.out.join("latency.png"), &rows)?;
    println!(
        "wrote {}/summary.md, images.csv, latency.png",
        args.out.display()
    );
    if equal != n {
        bail!("{} encrypted images differ from the simulation", n - equal);
    }
    Ok(())
}

fn plot(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let text = register_font();
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = rows.iter().map(|r| r.1 + r.2 + r.3).fold(1.0, f64::max) * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(10);
    if text {
        builder
            .caption(
                "encrypted MNIST head: seconds per image",
                ("sans-serif", 22),
            )
            .x_label_area_size(35)
            .y_label_area_size(50);
    }
    let mut chart = builder.build_cartesian_2d(0f64..rows.len().max(1) as f64, 0f64..ymax)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("test image")
            .y_desc("seconds")
            .draw()?;
    } else {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(0)
            .draw()?;
    }
    for (name, color, f) in [
        ("server evaluation", BLUE, (|r: &Row| r.2) as fn(&_) -> f64),
        ("client encrypt", GREEN, |r| r.1),
        ("client decrypt", RED, |r| r.3),
    ] {
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (r.0 as f64, f(r))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Registers a system sans-serif font for the plot's text; `false` when none is found (the plot
/// is then drawn without text). `POLYACT_FONT` may name a TrueType file.
fn register_font() -> bool {
    let candidates = std::env::var_os("POLYACT_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            ]
            .map(PathBuf::from),
        );
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(
                "sans-serif",
                plotters::style::FontStyle::Normal,
                bytes,
            )
            .is_ok()
            {
                return true;
            }
        }
    }
    eprintln!("no TrueType font found (set POLYACT_FONT=/path/font.ttf): plot drawn without text");
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::{gz, idx};
    use crate::idx::{IMAGES_MAGIC, IdxError, LABELS_MAGIC};

    /// A fresh temporary folder.
    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("polyact-enc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An images file cut after 10 bytes (a valid magic, half a header) made the old reader
    /// index past its end and panic; it is now an error naming the file.
    #[test]
    fn a_truncated_images_file_is_an_error_not_a_panic() {
        let dir = tmp("truncated");
        let whole = idx(IMAGES_MAGIC, &[2, 28, 28], &[0; 2 * 784]);
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), &whole[..10]).unwrap();
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx(LABELS_MAGIC, &[2], &[3, 4])),
        )
        .unwrap();
        let err = images(&dir, "t10k").unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::Size {
                    expected: 16,
                    found: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Raw or gzip files give pixels / 255 and the labels; other image sizes and missing files
    /// are errors naming the file.
    #[test]
    fn images_are_read_raw_or_gzip_as_pixels_over_255() {
        let dir = tmp("good");
        let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 256) as u8).collect();
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            idx(IMAGES_MAGIC, &[2, 28, 28], &pixels),
        )
        .unwrap();
        let labels = dir.join("t10k-labels-idx1-ubyte.gz");
        std::fs::write(&labels, gz(&idx(LABELS_MAGIC, &[2], &[3, 4]))).unwrap();
        let (imgs, got) = images(&dir, "t10k").unwrap();
        assert_eq!(got, vec![3, 4]);
        assert_eq!((imgs.len(), imgs[0].len(), imgs[1].len()), (2, 784, 784));
        for (i, &p) in pixels.iter().enumerate() {
            approx::assert_abs_diff_eq!(imgs[i / 784][i % 784], f32::from(p) / 255.0);
        }
        approx::assert_abs_diff_eq!(imgs[0][255], 1.0);

        // 32 x 32 images are not MNIST's.
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            idx(IMAGES_MAGIC, &[2, 32, 32], &[0; 2 * 1024]),
        )
        .unwrap();
        let err = images(&dir, "t10k").unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::BadDims {
                    rows: 32,
                    cols: 32,
                    ..
                }
            ),
            "{err}"
        );

        // No labels file, raw or gzip.
        std::fs::remove_file(&labels).unwrap();
        let err = images(&dir, "t10k").unwrap_err();
        assert!(matches!(err, IdxError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

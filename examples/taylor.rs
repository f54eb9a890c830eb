//! The study's polynomials next to principled ones, as a table.
//!
//! For sigmoid, tanh and softplus (the study's smooth stand-in for relu) this prints the exact
//! degree-5 Maclaurin polynomial, the study's hand-adjusted polynomial and a degree-5 minimax
//! fit, each with its maximum and RMS error on [-2, 2] and [-5, 5] and what it costs under
//! homomorphic encryption.
//!
//! ```text
//! cargo run --example taylor
//! cargo run --example taylor -- --degree 7 --fit-radius 4
//! ```
//!
//! Expected: the Taylor polynomials are exact near 0 but far off at ±5 (sigmoid's errs by 4.66
//! there); the minimax fits keep the error near 0.01 on all of [-5, 5]; the study's adjusted
//! polynomials sit in between. Softplus's series prints `-1/192·x^4` (the study printed `+`).

use anyhow::{Context, Result};
use clap::Parser;
use polyact::{Activation, Polynomial, Sigmoid, Softplus, Tanh, fit, presets, taylor_poly};

/// Compare Taylor, hand-adjusted and minimax polynomial activations.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Degree of the Taylor polynomials and minimax fits.
    #[arg(long, default_value_t = 5)]
    degree: usize,
    /// The minimax fits are made on [-R, R].
    #[arg(long, default_value_t = 5.0)]
    fit_radius: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let r = args.fit_radius;
    let cases: [(&dyn Activation<f64>, &str, Polynomial); 3] = [
        (&Sigmoid, "m_sigmoid", presets::m_sigmoid()),
        (&Tanh, "m_tanh", presets::m_tanh()),
        (&Softplus, "m_relu", presets::m_relu()),
    ];

    println!(
        "{:<9} {:<13} {:>11} {:>11} {:>11} {:>11} {:>5} {:>6}  polynomial",
        "function", "kind", "max|e| ±2", "rms ±2", "max|e| ±5", "rms ±5", "mults", "depth"
    );
    for (f, preset_name, preset) in cases {
        let taylor = taylor_poly(f, args.degree)
            .with_context(|| format!("Taylor series of {}", f.name()))?;
        let minimax = fit::minimax(f, args.degree, -r..=r)
            .with_context(|| format!("minimax fit of {} on [-{r}, {r}]", f.name()))?
            .polynomial;
        let rows = [
            (format!("taylor{}", args.degree), taylor),
            (preset_name.to_string(), preset),
            (format!("minimax{}@{r}", args.degree), minimax),
        ];
        for (kind, p) in rows {
            let near = fit::error_report(&p, f, -2.0..=2.0)?;
            let far = fit::error_report(&p, f, -5.0..=5.0)?;
            let cost = p.cost();
            println!(
                "{:<9} {:<13} {:>11.3e} {:>11.3e} {:>11.3e} {:>11.3e} {:>5} {:>6}  {}",
                f.name(),
                kind,
                near.max_abs,
                near.rms,
                far.max_abs,
                far.rms,
                cost.multiplications,
                cost.depth,
                shorten(&p),
            );
        }
    }
    println!();
    println!("errors against the function named on the row; m_relu is compared with softplus,");
    println!("whose series the study adjusted. mults and depth: ciphertext multiplications");
    println!("of the evaluation plan the he module runs, and its multiplicative depth.");
    Ok(())
}

/// Exact polynomials print as they are; fitted ones with four significant digits.
fn shorten(p: &Polynomial) -> String {
    if p.coefficients().iter().all(|c| c.exact().is_some()) {
        return p.to_string();
    }
    let rounded: Vec<f64> = p
        .coefficients_f64()
        .iter()
        .map(|&c| format!("{c:.4e}").parse().unwrap_or(c))
        .collect();
    Polynomial::from_f64(&rounded).to_string()
}

//! Symbolica, contained: threads and processes of one user derive at once without an abort,
//! rayon's global pool keeps its size, stdout stays clean, and cached results are identical.
#![cfg(feature = "symbolica")]

use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;

use polyact::{
    Activation, Error, Gelu, Mish, Sigmoid, Softplus, Tanh, taylor_poly, taylor_poly_at,
    taylor_poly_formula, taylor_series,
};

/// A derivation that reports its result as text.
type Job = Box<dyn Fn() -> polyact::Result<String> + Send + Sync>;

/// What each of the concurrent jobs derives, and the expected result.
fn jobs() -> Vec<(&'static str, Job)> {
    vec![
        (
            "1/2 + 1/4·x - 1/48·x^3 + 1/480·x^5",
            Box::new(|| taylor_poly(Sigmoid, 5).map(|p| p.to_string())),
        ),
        (
            "x - 1/3·x^3 + 2/15·x^5 - 17/315·x^7",
            Box::new(|| taylor_poly(Tanh, 8).map(|p| p.to_string())),
        ),
        (
            "log(2) + 1/2·x + 1/8·x^2 - 1/192·x^4",
            Box::new(|| taylor_poly(Softplus, 4).map(|p| p.to_string())),
        ),
        (
            "1/2·x + 1/sqrt(2*pi)·x^2",
            Box::new(|| taylor_poly(Gelu, 3).map(|p| p.to_string())),
        ),
        (
            "3/5·x + 8/25·x^2 - 2/125·x^3",
            Box::new(|| taylor_poly(Mish, 3).map(|p| p.to_string())),
        ),
        (
            "1/2·x + 1/4·x^2 - 1/48·x^4",
            Box::new(|| taylor_poly_formula("x/(1+exp(-x))", 4, 0.0).map(|p| p.to_string())),
        ),
        (
            // 1/(1+x) at 1/2 is 2/3 - 4/9 (x-1/2) + 8/27 (x-1/2)^2 + ..., re-collected.
            "26/27 - 20/27·x + 8/27·x^2",
            Box::new(|| taylor_poly_formula("1/(1+x)", 2, 0.5).map(|p| p.to_string())),
        ),
        (
            "parse error",
            Box::new(|| match taylor_poly_formula("exp(x", 3, 0.0) {
                Err(Error::Parse { .. }) => Ok("parse error".to_owned()),
                other => Ok(format!("{other:?}")),
            }),
        ),
    ]
}

#[test]
fn eight_threads_derive_at_once_without_an_abort() {
    let jobs = jobs();
    assert_eq!(jobs.len(), 8);
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let results: Vec<(String, &str)> = thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(expected, job)| {
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (job().unwrap(), *expected)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (got, expected) in results {
        assert_eq!(got, expected);
    }
}

/// The child half of `two_processes_derive_at_once`: derives, then reports on stdout.
#[test]
#[ignore = "run by two_processes_derive_at_once in child processes"]
fn child_derives() {
    for (expected, job) in jobs() {
        let got = job().unwrap();
        assert_eq!(got, expected);
        println!("CHILD-RESULT {got}");
    }
    // A heavier derivation, so that the two children overlap.
    let p = taylor_poly(Sigmoid, 40).unwrap();
    println!("CHILD-RESULT degree {}", p.degree());
    println!("CHILD-RAYON {}", rayon::current_num_threads());
}

#[test]
fn two_processes_derive_at_once() {
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "child_derives",
                "--nocapture",
                "--test-threads=1",
            ])
            // A size no machine default gives here, to see that Symbolica does not shrink it.
            .env("RAYON_NUM_THREADS", "3")
            .env_remove("SYMBOLICA_HIDE_BANNER")
            .env_remove("SYMBOLICA_LICENSE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn(), spawn()];
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
        let results: Vec<&str> = stdout
            .lines()
            // With --nocapture, libtest's `test child_derives ... ` may precede the first line.
            .filter_map(|l| l.split_once("CHILD-RESULT ").map(|(_, result)| result))
            .collect();
        let mut expected: Vec<String> = jobs().iter().map(|(e, _)| (*e).to_owned()).collect();
        expected.push("degree 39".to_owned());
        assert_eq!(results, expected);
        // Rayon's global pool kept the size the environment asks for.
        assert!(
            stdout.lines().any(|l| l.ends_with("CHILD-RAYON 3")),
            "{stdout}"
        );
        // Symbolica's banner stays off stdout; our notice goes to stderr, once.
        assert!(!stdout.contains("Symbolica"), "{stdout}");
        assert_eq!(
            stderr
                .matches("polyact: Taylor series are derived with Symbolica")
                .count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn rayon_pool_keeps_its_default_size() {
    let p = taylor_poly_at(Sigmoid, 7, 0.25).unwrap();
    assert_eq!(p.coefficients().len(), 8);
    let expected = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    assert_eq!(rayon::current_num_threads(), expected);
}

/// Threads that miss the cache for one request at the same time queue for Symbolica; each
/// may derive it, but all of them get the one cached `Arc` (the first stored stays).
#[test]
fn concurrent_misses_share_one_cached_series() {
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                // A formula no other test asks for, so every thread starts with a miss.
                polyact::taylor::taylor_series_formula("exp(x)*(1+x^3)/7", 6, 0.0).unwrap()
            })
        })
        .collect();
    let series: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for s in &series[1..] {
        assert!(Arc::ptr_eq(&series[0], s));
    }
}

#[test]
fn a_cache_hit_returns_an_identical_polynomial() {
    let first = taylor_poly(Tanh, 12).unwrap();
    let second = taylor_poly(Tanh, 12).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.to_string(), second.to_string());
    let a = taylor_series(Tanh, 12, 0.0).unwrap();
    let by_reference: &dyn Activation<f64> = &Tanh;
    let b = taylor_series(by_reference, 12, 0.0).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.polynomial(), &first);
    // A lower degree, served from the cached higher one, equals the truncation.
    let lower = taylor_poly(Tanh, 7).unwrap();
    assert_eq!(lower, first.clone().truncate(7));
    // The same formula under another name keeps its own name.
    let named = taylor_series(RenamedTanh, 7, 0.0).unwrap();
    assert_eq!(named.function(), "my_tanh");
    assert_eq!(named.polynomial(), &lower);
}

/// tanh under another name.
struct RenamedTanh;

impl Activation<f64> for RenamedTanh {
    fn name(&self) -> &str {
        "my_tanh"
    }
    fn eval(&self, x: f64) -> f64 {
        x.tanh()
    }
    fn derivative(&self, x: f64) -> f64 {
        1.0 - x.tanh().powi(2)
    }
    fn formula(&self) -> polyact::Formula {
        Activation::<f64>::formula(&Tanh)
    }
}

//! Issue 9, Taylor side: nothing a caller passes may abort, hang, or silently corrupt a result.
//!
//! Where the failure was an abort or a hang, the case runs in a child process (this test
//! binary, re-run on one ignored test) that is killed after a time limit.
#![cfg(feature = "symbolica")]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use polyact::{
    Activation, Error, Sigmoid, Tanh, taylor, taylor_poly_at, taylor_poly_formula, taylor_series,
};

/// What a child process did.
struct Child {
    success: bool,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the ignored test `name` of this binary in a child process with `envs`, killed after
/// `limit`.
fn run_child(name: &str, envs: &[(&str, &str)], limit: Duration) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SYMBOLICA_HIDE_BANNER", "1")
        .env_remove("SYMBOLICA_LICENSE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let start = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            timed_out = true;
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Child {
        success: status.success() && stdout.contains("1 passed"),
        timed_out,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

fn assert_child_passed(name: &str, envs: &[(&str, &str)], limit: Duration) -> Child {
    let child = run_child(name, envs, limit);
    assert!(
        !child.timed_out,
        "{name} hung: killed after {:?}\n{}\n{}",
        limit, child.stdout, child.stderr
    );
    assert!(
        child.success,
        "{name} failed or aborted\n{}\n{}",
        child.stdout, child.stderr
    );
    child
}

/// This binary's turn at Symbolica, taken by every test that derives, here or in a child
/// process. Children derive under the user's own lock directory, queueing with every other
/// Symbolica user of this account as the licence requires; the turn keeps this process's own
/// derivations from meeting a child's deliberately short wait limits.
static SYMBOLICA: Mutex<()> = Mutex::new(());

fn symbolica_turn() -> MutexGuard<'static, ()> {
    SYMBOLICA.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A private lock directory (mode 0700), only for a child that is refused before it enters
/// Symbolica: a child that derived there would escape the one-thread-per-user limit that the
/// user's lock directory enforces.
fn private_lock_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polyact-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

/// Whether `result` is a value or a typed error (anything but a panic or an abort, which the
/// child process would not survive).
fn settled<T>(result: polyact::Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Parse { .. }) => "parse",
        Err(Error::TooComplex { .. }) => "too complex",
        Err(Error::NotAnalytic { .. }) => "not analytic",
        Err(_) => "other error",
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Long formulas overflowed the stack and aborted the process (2,000 terms of `x+x+…`).

#[test]
#[ignore = "run by long_formulas_do_not_abort in a child process"]
fn child_long_formulas() {
    for op in ["+", "-", "*", "/"] {
        for terms in [2_000, 4_999, 5_000] {
            let text = vec!["x"; terms].join(op);
            let outcome = settled(taylor_poly_formula(&text, 3, 1.0));
            println!("CASE {op} {terms}: {outcome}");
        }
    }
    let sum = vec!["x"; 5_000].join("+");
    let p = taylor_poly_formula(&sum, 2, 0.0).unwrap();
    assert_eq!(p.to_string(), "5000·x");
    for deep in [
        format!("{}x{}", "(".repeat(5_000), ")".repeat(5_000)),
        format!("{}x", "-".repeat(5_000)),
        vec!["x"; 5_000].join("^"),
        format!("{}x{}", "exp(".repeat(5_000), ")".repeat(5_000)),
    ] {
        assert!(matches!(
            taylor_poly_formula(&deep, 2, 0.0),
            Err(Error::Parse { .. })
        ));
    }
}

#[test]
fn long_formulas_do_not_abort() {
    let _turn = symbolica_turn();
    let child = assert_child_passed("child_long_formulas", &[], Duration::from_secs(120));
    assert_eq!(
        child.stdout.matches("CASE ").count(),
        12,
        "{}",
        child.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A licence key Symbolica rejects made polyact skip its wait for Symbolica's permit, and
//    Symbolica then aborted the process.

#[test]
#[ignore = "run by a_rejected_licence_key_keeps_the_guarantee in a child process"]
fn child_rejected_key() {
    let err = taylor_poly_formula("exp(x)", 3, 0.0).unwrap_err();
    let Error::Symbolic { reason } = err else {
        panic!("expected Error::Symbolic, got {err:?}")
    };
    assert!(
        reason.contains("symbolica-restricted-thread-0.lock"),
        "{reason}"
    );
    println!("REASON {reason}");
}

#[test]
fn a_rejected_licence_key_keeps_the_guarantee() {
    // The child is refused before it enters Symbolica, so it may use a private directory.
    let dir = private_lock_dir("licence");
    let permit = File::create(dir.join("symbolica-restricted-thread-0.lock")).unwrap();
    permit.lock().unwrap();
    let child = assert_child_passed(
        "child_rejected_key",
        &[
            ("SYMBOLICA_LICENSE", "not-a-key-symbolica-accepts"),
            ("SYMBOLICA_LOCK_DIR", dir.to_str().unwrap()),
        ],
        Duration::from_secs(60),
    );
    drop(permit);
    assert!(
        child.stdout.contains("REASON another program"),
        "{}",
        child.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 3. Far from 0, sigmoid and tanh took over ten minutes, and sigmoid at -800 was reported not
//    analytic.

/// Relative agreement of a Taylor polynomial with its function at the expansion point.
const AT_POINT: f64 = 1e-9;

#[test]
#[ignore = "run by far_points_expand_quickly in a child process"]
fn child_far_points() {
    taylor::set_time_limit(Duration::from_secs(30));
    let cases: [(&dyn Activation<f64>, f64); 8] = [
        (&Sigmoid, -300.0),
        (&Sigmoid, -200.0),
        (&Sigmoid, 300.0),
        (&Sigmoid, 800.0),
        (&Sigmoid, -800.0),
        (&Sigmoid, -1e20),
        (&Tanh, 150.0),
        (&Tanh, -150.0),
    ];
    for (f, a) in cases {
        let start = Instant::now();
        let s = taylor_series(f, 3, a).unwrap_or_else(|e| panic!("{} at {a}: {e}", f.name()));
        let value = s.about_point()[0].to_f64();
        let exact = f.eval(a);
        assert!(
            (value - exact).abs() <= AT_POINT * exact.abs(),
            "{} at {a}: {value} vs {exact}",
            f.name()
        );
        // The ascending form agrees where it is representable.
        let p = s.polynomial();
        assert!(p.coefficients().iter().all(|c| c.to_f64().is_finite()));
        println!("CASE {} at {a}: {:?}", f.name(), start.elapsed());
    }
}

#[test]
fn far_points_expand_quickly() {
    let _turn = symbolica_turn();
    let child = assert_child_passed("child_far_points", &[], Duration::from_secs(120));
    assert_eq!(child.stdout.matches("CASE ").count(), 8, "{}", child.stdout);
}

// ---------------------------------------------------------------------------------------------
// 4. `9^9^9` ran for over 400 s and 1.4 GB; other blow-ups need a budget too.
// 5. A stuck derivation blocked every other derivation of the process forever.

#[test]
#[ignore = "run by blow_ups_and_waits_are_bounded in a child process"]
fn child_blow_ups() {
    for tower in [
        "9^9^9",
        "2^2^2^2^2^2",
        "((x^1000)^1000)^1000",
        "(1+x)^(10^12)",
    ] {
        let start = Instant::now();
        let err = taylor_poly_formula(tower, 1, 0.0).unwrap_err();
        assert!(matches!(err, Error::TooComplex { .. }), "{tower}: {err:?}");
        assert!(start.elapsed() < Duration::from_secs(1), "{tower}");
    }
    // A long derivation stops at the time limit ...
    taylor::set_time_limit(Duration::from_millis(300));
    taylor::set_wait_limit(Duration::from_millis(500));
    let err = taylor_poly_formula("x*((1+exp(x))^2-1)/((1+exp(x))^2+1)", 100, 0.5).unwrap_err();
    assert!(matches!(err, Error::TooComplex { .. }), "{err:?}");
    // ... and, while it still runs in the background, the next one waits a bounded time and
    // says who holds Symbolica.
    let start = Instant::now();
    let err = taylor_poly_formula("exp(x)", 2, 0.0).unwrap_err();
    let Error::Symbolic { reason } = err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("this process's derivation of"), "{reason}");
    assert!(start.elapsed() < Duration::from_secs(5));
    println!("REASON {reason}");
}

#[test]
fn blow_ups_and_waits_are_bounded() {
    let _turn = symbolica_turn();
    let child = assert_child_passed("child_blow_ups", &[], Duration::from_secs(60));
    assert!(child.elapsed < Duration::from_secs(60));
}

#[test]
#[ignore = "run by another_process_holding_polyacts_lock_is_named in a child process"]
fn child_waits_for_another_process() {
    taylor::set_wait_limit(Duration::from_millis(500));
    let err = taylor_poly_formula("exp(x)", 2, 0.0).unwrap_err();
    let Error::Symbolic { reason } = err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("process 4242 deriving a stuck test"),
        "{reason}"
    );
    println!("REASON {reason}");
}

#[test]
fn another_process_holding_polyacts_lock_is_named() {
    // The child gives up waiting before it enters Symbolica, so it may use a private directory.
    let dir = private_lock_dir("ours");
    let mut ours = File::create(dir.join("polyact-symbolica.lock")).unwrap();
    ours.lock().unwrap();
    ours.write_all(b"process 4242 deriving a stuck test\n")
        .unwrap();
    assert_child_passed(
        "child_waits_for_another_process",
        &[("SYMBOLICA_LOCK_DIR", dir.to_str().unwrap())],
        Duration::from_secs(30),
    );
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 9. `sqrt(x^2)` came back as `x`.

#[test]
fn square_roots_of_squares_are_not_analytic_at_the_zero() {
    let _turn = symbolica_turn();
    for formula in ["sqrt(x^2)", "(x^2)^(1/2)", "sqrt(x^2)*exp(x)", "log(x^2)"] {
        let err = taylor_poly_formula(formula, 3, 0.0).unwrap_err();
        assert!(
            matches!(err, Error::NotAnalytic { .. }),
            "{formula}: {err:?}"
        );
    }
    // Away from the zero, sqrt(x^2) is |x|: x for x > 0, -x for x < 0.
    assert_eq!(
        taylor_poly_formula("sqrt(x^2)", 3, 2.0)
            .unwrap()
            .to_string(),
        "x"
    );
    let left = taylor_poly_formula("sqrt(x^2)", 3, -2.0).unwrap();
    assert!((left.eval(-3.0_f64) - 3.0).abs() < 1e-12, "{left}");
}

// ---------------------------------------------------------------------------------------------
// 11. Rationals beyond f64 became `inf` silently; tiny points gave noise instead of the
//     nearest f64.

#[test]
fn rationals_beyond_f64_are_errors() {
    let _turn = symbolica_turn();
    for formula in ["1e400*x", "x + 10^400", "exp(x)*1e-400 + 1e400"] {
        let err = taylor_poly_formula(formula, 2, 0.0).unwrap_err();
        assert!(
            err.to_string().contains("beyond the range of f64"),
            "{formula}: {err}"
        );
        assert!(err.to_string().len() < 600, "{err}");
    }
    // Tiny values are fine: they round to the nearest f64 (here 1e-400 underflows to 0).
    let p = taylor_poly_formula("1e-300*x + 1e-400", 1, 0.0).unwrap();
    assert!((p.coefficients()[1].to_f64() - 1e-300).abs() < 1e-315);
}

/// tanh's cubic Taylor polynomial at a tiny `a`, in powers of `x`, has constant term
/// `-8/15·a⁵ + O(a⁷)`: at `a = 1e-50` about `-5.33e-251`, far below the working precision
/// a fixed 256 bits would give.
#[test]
fn tiny_points_give_correctly_rounded_coefficients() {
    let _turn = symbolica_turn();
    let p = taylor_poly_at(Tanh, 3, 1e-50).unwrap();
    let d0 = p.coefficients()[0].to_f64();
    let exact = -8.0 / 15.0 * 1e-250;
    assert!((d0 - exact).abs() <= 1e-12 * exact.abs(), "{d0} vs {exact}");
}

// ---------------------------------------------------------------------------------------------
// Random formulas, degrees and points: no abort, panic or hang.

mod random {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;

    const NAMES: [&str; 16] = [
        "exp", "log", "ln", "sqrt", "erf", "erfc", "sin", "cos", "tan", "sinh", "cosh", "tanh",
        "sigmoid", "softplus", "abs", "foo",
    ];

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("x".to_owned()),
            Just("pi".to_owned()),
            Just("e".to_owned()),
            (0_u32..20).prop_map(|n| n.to_string()),
            (0_u32..1000, 0_u32..4).prop_map(|(n, k)| format!("{n}e-{k}")),
            Just("0.5".to_owned()),
        ]
    }

    fn formula() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(&["+", "-", "*", "/", "^"][..]),
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("({a}){op}({b})")),
                (prop::sample::select(&NAMES[..]), inner.clone())
                    .prop_map(|(f, a)| format!("{f}({a})")),
                inner.prop_map(|a| format!("-({a})")),
            ]
        })
    }

    fn point() -> impl Strategy<Value = f64> {
        prop_oneof![
            // Far points are the subject of `far_points_expand_quickly`; here they would mostly
            // meet powers of numbers that exceed the time limit.
            prop::sample::select(&[-10.0, -1.0, -0.5, 0.0, 1e-50, 0.5, 1.0, 3.0][..]),
            -10.0_f64..10.0,
        ]
    }

    #[test]
    #[ignore = "run by random_input_never_aborts_panics_or_hangs in a child process"]
    fn child_random_input() {
        taylor::set_time_limit(Duration::from_millis(500));
        taylor::set_wait_limit(Duration::from_millis(100));
        let config = Config {
            cases: 400,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(9),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config.clone());
        let outcomes = std::cell::RefCell::new(std::collections::BTreeMap::<&str, usize>::new());
        runner
            .run(&(formula(), 0_usize..7, point()), |(f, degree, a)| {
                let outcome = settled(taylor_poly_formula(&f, degree, a));
                if outcome == "too complex" {
                    println!("SLOW {f} degree {degree} at {a}");
                }
                *outcomes.borrow_mut().entry(outcome).or_default() += 1;
                Ok(())
            })
            .unwrap();
        // Text that is mostly not a formula at all.
        let mut runner = TestRunner::new(Config {
            cases: 2_600,
            ..config
        });
        runner
            .run(
                &("[-+*/^()xe0-9. a-z,]{0,40}", 0_usize..6),
                |(f, degree)| {
                    *outcomes
                        .borrow_mut()
                        .entry(settled(taylor_poly_formula(&f, degree, 0.5)))
                        .or_default() += 1;
                    Ok(())
                },
            )
            .unwrap();
        println!("OUTCOMES {:?}", outcomes.borrow());
    }

    #[test]
    fn random_input_never_aborts_panics_or_hangs() {
        let _turn = symbolica_turn();
        let child =
            assert_child_passed("random::child_random_input", &[], Duration::from_secs(120));
        assert!(child.stdout.contains("OUTCOMES"), "{}", child.stdout);
        println!(
            "{} in {:?}",
            child
                .stdout
                .lines()
                .find(|l| l.contains("OUTCOMES"))
                .unwrap_or(""),
            child.elapsed
        );
    }
}

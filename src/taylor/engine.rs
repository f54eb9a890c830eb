//! The one room of the crate that talks to Symbolica.
//!
//! Everything else in polyact sees exact [`Coefficient`]s, never a Symbolica type. This file
//! also contains Symbolica's process-wide side effects:
//!
//! * **One thread per user.** Unlicensed Symbolica takes a per-thread permit, an `flock` on
//!   `symbolica-restricted-thread-0.lock` in a per-user lock directory, held by a thread-local
//!   until the thread exits; a second thread or process that touches Symbolica meanwhile makes
//!   it `abort()`. So each derivation runs on a fresh, short-lived worker thread whose exit
//!   releases the permit, callers inside the process queue on a mutex, processes queue on an
//!   `flock` of our own file in the same directory, and before starting a worker we wait (for
//!   at most [`SYMBOLICA_WAIT`]) until no other program holds Symbolica's permit.
//! * **The rayon pool.** On first use Symbolica tries to build rayon's global pool with one
//!   thread. We build the global pool with rayon's defaults first (a no-op when the host
//!   already built one), so that attempt fails and the host keeps its parallelism.
//! * **Stdout and logging.** Symbolica prints a licence banner to stdout unless
//!   `SYMBOLICA_HIDE_BANNER` is set, and installs a global `tracing` subscriber writing to
//!   stdout on its first warning. We set the variable once, turn the subscriber off, and print
//!   our own one-line statement of Symbolica's terms to stderr instead.

use std::any::Any;
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use symbolica::atom::{Atom, AtomCore, AtomView, SeriesError, Symbol};
use symbolica::coefficient::Coefficient as SymbolicaNumber;
use symbolica::domains::float::{Float, RealLike};
use symbolica::domains::integer::Integer;
use symbolica::domains::rational::Rational;
use symbolica::{symbol, try_parse};

use crate::{Coefficient, Error, Result};

/// How long a derivation waits for another program of the same user to release Symbolica.
pub(crate) const SYMBOLICA_WAIT: Duration = Duration::from_secs(10);

/// Binary precision used to evaluate closed-form coefficients to `f64` at the point 0.
/// Away from 0 the shift to powers of `x` cancels up to `degree · (log2|a| + 1)` bits, which
/// [`precision_for`] adds.
const EVAL_PRECISION: u32 = 256;

/// Stack of the worker thread: Symbolica recurses over the expression tree.
const WORKER_STACK: usize = 64 << 20;

/// Our own lock file, beside Symbolica's, that queues polyact processes of one user.
const OUR_LOCK: &str = "polyact-symbolica.lock";

/// Symbolica's per-user permit file (see `symbolica::license`).
const SYMBOLICA_LOCK: &str = "symbolica-restricted-thread-0.lock";

/// One caller of this process at a time.
static TURN: Mutex<()> = Mutex::new(());

/// The process-wide preparation, done once before the first Symbolica call.
static PREPARE: Once = Once::new();

/// A Taylor expansion: coefficients in powers of `(x - a)`, and in ascending powers of `x`.
#[derive(Debug, Clone)]
pub(crate) struct Expansion {
    /// `c_k`, the coefficient of `(x - a)^k`, for `k = 0..=degree`.
    pub(crate) about_point: Vec<Coefficient>,
    /// `d_j`, the coefficient of `x^j` of the same polynomial, for `j = 0..=degree`.
    pub(crate) ascending: Vec<Coefficient>,
}

/// Expands `formula` (already validated and normalised to Symbolica's syntax, variable `x`)
/// at the exact rational `point` up to `(x - a)^degree`.
///
/// `function` names the function in errors; `point_value` is the point as the caller gave it.
pub(crate) fn expand(
    function: &str,
    formula: &str,
    point: &BigRational,
    point_value: f64,
    degree: usize,
) -> Result<Expansion> {
    let request = Request {
        function,
        formula,
        point: rational_text(point),
        at_zero: point.is_zero(),
        precision: precision_for(point, degree),
        point_value,
        degree,
    };
    contained(|| request.derive())
}

/// Runs `job` on a fresh worker thread, with Symbolica's thread permit free and held by no one
/// else of this process or of this user's other polyact processes, and returns its result; a
/// panic in the job comes back as [`Error::Symbolic`].
fn contained<R: Send>(job: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    // A panicking job is caught below, so the mutex is only poisoned by a panic in this
    // function itself; the `()` it guards cannot be left inconsistent either way.
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let directory = lock_directory()?;
    let _our_lock = lock_exclusive(&directory.join(OUR_LOCK))?;
    PREPARE.call_once(prepare_process);
    wait_for_symbolica_permit(&directory)?;
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("polyact-symbolica".into())
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, job)
            .map_err(|e| Error::Symbolic {
                reason: format!("cannot start the Symbolica worker thread: {e}"),
            })?;
        // An explicit join waits until the thread has fully exited, thread-local destructors
        // included: that is where Symbolica's permit is released.
        worker.join().unwrap_or_else(|panic| {
            Err(Error::Symbolic {
                reason: format!("Symbolica panicked: {}", panic_message(panic.as_ref())),
            })
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Process-wide preparation before the first Symbolica call (see the module docs).
fn prepare_process() {
    // Symbolica would build rayon's global pool with one thread; build the default one first.
    // Failure means the host already built its own, which is what we want to keep.
    let _ = rayon::ThreadPoolBuilder::new().build_global();
    // Symbolica would install a global `tracing` subscriber printing to stdout.
    symbolica::GLOBAL_SETTINGS
        .initialize_tracing
        .store(false, Ordering::Relaxed);

    let user_hid_banner = std::env::var_os("SYMBOLICA_HIDE_BANNER").is_some();
    let licensed = std::env::var_os("SYMBOLICA_LICENSE").is_some();
    if !user_hid_banner {
        // SAFETY: `set_var` is unsound only while another thread reads or writes the
        // environment. This runs once per process, under `TURN`, before any Symbolica thread
        // exists; polyact itself reads the environment only under `TURN`. A host thread reading
        // the environment at this very instant is the remaining risk; hosts that cannot accept
        // it set SYMBOLICA_HIDE_BANNER themselves, which skips this call.
        unsafe { std::env::set_var("SYMBOLICA_HIDE_BANNER", "1") };
        if !licensed {
            eprintln!(
                "polyact: Taylor series are derived with Symbolica (https://symbolica.io). \
                 Without a licence Symbolica is for non-commercial use only and limited to one \
                 thread per user (polyact queues its derivations). Free hobbyist and student \
                 keys, trials and commercial licences: https://symbolica.io/license/ ; set \
                 SYMBOLICA_LICENSE=<key> to use one, or SYMBOLICA_HIDE_BANNER=1 to silence this \
                 notice."
            );
        }
    }
}

/// The per-user directory where Symbolica keeps its permit, created as Symbolica would
/// (mode 0700). Checked here so that a bad directory is an error, not an abort in Symbolica.
fn lock_directory() -> Result<PathBuf> {
    let fail = |reason: String| Error::Symbolic { reason };
    let (path, from_env) = match std::env::var_os("SYMBOLICA_LOCK_DIR") {
        Some(path) => (PathBuf::from(path), true),
        None => {
            let dirs = directories::ProjectDirs::from("io", "symbolica", "symbolica").ok_or_else(
                || {
                    fail(
                        "cannot find the per-user directory for Symbolica's lock files; \
                          set SYMBOLICA_LOCK_DIR to a directory only you can access"
                            .into(),
                    )
                },
            )?;
            let base = dirs.runtime_dir().unwrap_or_else(|| dirs.cache_dir());
            (base.join("locks"), false)
        }
    };
    let describe = |e: io::Error| fail(format!("Symbolica lock directory {}: {e}", path.display()));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&path).map_err(describe)?;
    let metadata = std::fs::symlink_metadata(&path).map_err(describe)?;
    if !metadata.is_dir() {
        return Err(fail(format!(
            "Symbolica lock directory {} is not a directory",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            if from_env {
                return Err(fail(format!(
                    "SYMBOLICA_LOCK_DIR {} must be accessible by its owner only (chmod 700), \
                     or Symbolica refuses it",
                    path.display()
                )));
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(describe)?;
        }
    }
    Ok(path)
}

/// Opens (creating it, mode 0600) a lock file, refusing anything but a regular file.
fn open_lock_file(path: &Path) -> Result<File> {
    let describe = |e: io::Error| Error::Symbolic {
        reason: format!("lock file {}: {e}", path.display()),
    };
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.is_file() => {
            return Err(Error::Symbolic {
                reason: format!("lock file {} is not a regular file", path.display()),
            });
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(describe(e)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(describe)
}

/// Blocks until this process holds the exclusive lock on `path`; dropping the file unlocks.
fn lock_exclusive(path: &Path) -> Result<File> {
    let file = open_lock_file(path)?;
    file.lock().map_err(|e| Error::Symbolic {
        reason: format!("cannot lock {}: {e}", path.display()),
    })?;
    Ok(file)
}

/// Waits until no thread (of this or another program) holds Symbolica's permit, so that our
/// worker can take it without Symbolica aborting the process. A licensed Symbolica takes no
/// permit, so there is nothing to wait for.
///
/// Another program could still take the permit between this check and our worker's first
/// Symbolica call; polyact processes cannot, since they queue on our own lock first.
fn wait_for_symbolica_permit(directory: &Path) -> Result<()> {
    if std::env::var_os("SYMBOLICA_LICENSE").is_some() {
        return Ok(());
    }
    let path = directory.join(SYMBOLICA_LOCK);
    let start = Instant::now();
    loop {
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            // Dropping `file` releases the lock at once.
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if start.elapsed() < SYMBOLICA_WAIT => {
                drop(file);
                thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Symbolic {
                    reason: format!(
                        "another program of this user has held Symbolica for {} s ({} is \
                         locked); unlicensed Symbolica allows one thread per user. Retry when \
                         it is done, or set SYMBOLICA_LICENSE",
                        SYMBOLICA_WAIT.as_secs(),
                        path.display()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Symbolic {
                    reason: format!("cannot test {}: {e}", path.display()),
                });
            }
        }
    }
}

/// Working precision for a point and degree: enough bits to survive the cancellation of
/// `Σ c_k C(k, j) (-a)^(k-j)` and keep more than `f64`'s 53.
fn precision_for(point: &BigRational, degree: usize) -> u32 {
    let magnitude_bits = point.numer().bits().saturating_sub(point.denom().bits()) + 2;
    let extra = magnitude_bits.saturating_mul(degree as u64);
    EVAL_PRECISION.saturating_add(u32::try_from(extra).unwrap_or(u32::MAX))
}

/// `p/q` (or `p`) in parentheses, as Symbolica reads it.
fn rational_text(r: &BigRational) -> String {
    if r.is_integer() {
        format!("({})", r.numer())
    } else {
        format!("({}/{})", r.numer(), r.denom())
    }
}

/// One derivation, run on the worker thread.
struct Request<'a> {
    function: &'a str,
    formula: &'a str,
    /// The point in Symbolica's syntax.
    point: String,
    at_zero: bool,
    /// Binary precision for evaluating closed forms.
    precision: u32,
    point_value: f64,
    degree: usize,
}

impl Request<'_> {
    fn not_analytic(&self) -> Error {
        Error::NotAnalytic {
            function: self.function.to_owned(),
            point: self.point_value,
        }
    }

    fn derive(&self) -> Result<Expansion> {
        let expr = try_parse!(self.formula).map_err(|reason| Error::Parse {
            formula: self.formula.to_owned(),
            reason,
        })?;
        let point = try_parse!(&self.point).map_err(|reason| Error::Symbolic {
            reason: format!("cannot read the expansion point {}: {reason}", self.point),
        })?;
        let x = symbol!("x");
        let order = i64::try_from(self.degree).map_err(|_| Error::Degree {
            requested: self.degree,
            reason: "too large".into(),
        })?;
        let series = expr
            .series(x, point.as_view(), order)
            .map_err(|e| match e {
                // Poles inside functions, essential singularities, division by a vanishing
                // series: no Taylor series at this point.
                SeriesError::FunctionArgumentPole { .. }
                | SeriesError::EssentialSingularity { .. }
                | SeriesError::NonRationalPower { .. }
                | SeriesError::MissingLogCoefficient
                | SeriesError::DivisionByZero => self.not_analytic(),
                other => Error::Symbolic {
                    reason: format!("series expansion of `{}` failed: {other}", self.formula),
                },
            })?;

        let mut about: Vec<Atom> = vec![Atom::num(0); self.degree + 1];
        for (exponent, coefficient) in series.terms() {
            if coefficient.is_zero() {
                continue;
            }
            // Poles, roots and logarithms: no Taylor series here.
            if !exponent.is_integer() || exponent.is_negative() {
                return Err(self.not_analytic());
            }
            let Some(k) = exponent
                .numerator()
                .to_i64()
                .and_then(|k| usize::try_from(k).ok())
            else {
                continue;
            };
            if k > self.degree {
                continue;
            }
            if coefficient.contains_symbol(x) {
                return Err(self.not_analytic());
            }
            about[k] = if self.at_zero {
                coefficient.clone()
            } else {
                coefficient.together()
            };
        }

        let ascending = if self.at_zero {
            None
        } else {
            Some(shift_to_powers_of_x(&about, &point))
        };
        let about_point = about
            .iter()
            .map(|c| self.coefficient(c))
            .collect::<Result<Vec<_>>>()?;
        let ascending = match ascending {
            None => about_point.clone(),
            Some(atoms) => atoms
                .iter()
                .map(|c| self.coefficient(c))
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(Expansion {
            about_point,
            ascending,
        })
    }

    /// Our exact coefficient for a Symbolica constant: a rational, or a closed form with its
    /// value to `f64`.
    fn coefficient(&self, atom: &Atom) -> Result<Coefficient> {
        let not_real = |what: &str| Error::Symbolic {
            reason: format!(
                "`{}` at x = {} has a coefficient that is not a finite real number ({what})",
                self.formula, self.point_value
            ),
        };
        if let AtomView::Num(n) = atom.as_atom_view() {
            return match n.get_coeff_view().to_owned() {
                SymbolicaNumber::Complex(c) if c.im.is_zero() => {
                    Ok(Coefficient::rational(to_big_rational(&c.re)))
                }
                SymbolicaNumber::Float(c) => {
                    let value = c.re.to_f64();
                    if value.is_finite() && c.im.to_f64() == 0.0 {
                        Ok(Coefficient::approx(value))
                    } else {
                        Err(not_real(&atom.to_string()))
                    }
                }
                SymbolicaNumber::Infinity(_) | SymbolicaNumber::Indeterminate => {
                    Err(self.not_analytic())
                }
                _ => Err(not_real(&atom.to_string())),
            };
        }
        let text = readable(atom.as_atom_view());
        let value = atom
            .evaluate_with_prec::<Atom, Float>(&HashMap::new(), self.precision)
            .map_err(|e| not_real(&format!("{text}: {e}")))?
            .to_f64();
        if value.is_finite() {
            Ok(Coefficient::symbolic(text, value))
        } else {
            Err(not_real(&text))
        }
    }
}

/// `d_j = Σ_{k≥j} c_k · C(k, j) · (-a)^(k-j)`: the same polynomial in ascending powers of `x`,
/// each coefficient brought over one denominator.
fn shift_to_powers_of_x(about: &[Atom], point: &Atom) -> Vec<Atom> {
    let n = about.len();
    let minus_a = -point.clone();
    let mut powers = Vec::with_capacity(n);
    powers.push(Atom::num(1));
    for m in 1..n {
        let next = &powers[m - 1] * &minus_a;
        powers.push(next);
    }
    (0..n)
        .map(|j| {
            let terms: Vec<Atom> = (j..n)
                .filter(|&k| !about[k].is_zero())
                .map(|k| {
                    let binomial = Atom::num(Integer::binom(k as i64, j as i64));
                    &(&about[k] * &binomial) * &powers[k - j]
                })
                .collect();
            if terms.is_empty() {
                Atom::num(0)
            } else {
                Atom::add_many(terms.iter()).together()
            }
        })
        .collect()
}

fn to_big_rational(r: &Rational) -> BigRational {
    let parse = |i: Integer| {
        i.to_string()
            .parse::<BigInt>()
            .expect("Symbolica prints integers in decimal")
    };
    BigRational::new(parse(r.numerator()), parse(r.denominator()))
}

// ---------------------------------------------------------------------------------------------
// Readable text for closed-form coefficients, in a syntax Symbolica reads back: ASCII names
// (`pi`, `exp(1)`), `sqrt` for square roots, rational factors first, one denominator.

/// Binding strength of printed text, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    /// A sum, or a term with a leading minus sign.
    Sum,
    /// A product or quotient.
    Product,
    /// A power.
    Power,
    /// A number, name or function call.
    Atom,
}

/// Readable text of a constant expression.
pub(crate) fn readable(atom: AtomView<'_>) -> String {
    print(atom).0
}

fn wrap(text: (String, Binding), at_least: Binding) -> String {
    if text.1 >= at_least {
        text.0
    } else {
        format!("({})", text.0)
    }
}

fn print(atom: AtomView<'_>) -> (String, Binding) {
    match atom {
        AtomView::Num(n) => match n.get_coeff_view().to_owned() {
            SymbolicaNumber::Complex(c) if c.im.is_zero() => {
                print_rational(&to_big_rational(&c.re))
            }
            _ => (format!("({atom})"), Binding::Atom),
        },
        AtomView::Var(v) => (symbol_name(v.get_symbol()), Binding::Atom),
        AtomView::Fun(f) => {
            let args: Vec<String> = f.iter().map(|a| print(a).0).collect();
            (
                format!("{}({})", symbol_name(f.get_symbol()), args.join(",")),
                Binding::Atom,
            )
        }
        AtomView::Pow(p) => {
            let (base, exponent) = p.get_base_exp();
            match rational_of(exponent) {
                Some(e) if e.is_negative() => {
                    let positive = print_power(base, &-e);
                    (
                        format!("1/{}", wrap(positive, Binding::Power)),
                        Binding::Product,
                    )
                }
                Some(e) => print_power(base, &e),
                None => print_symbolic_power(base, exponent),
            }
        }
        AtomView::Mul(m) => print_product(m.iter()),
        AtomView::Add(a) => {
            let mut text = String::new();
            for (i, term) in a.iter().enumerate() {
                let (t, _) = print(term);
                if i > 0 && !t.starts_with('-') {
                    text.push('+');
                }
                text.push_str(&t);
            }
            (text, Binding::Sum)
        }
    }
}

fn symbol_name(s: Symbol) -> String {
    if s == Symbol::E {
        "exp(1)".into()
    } else if s == Symbol::PI {
        "pi".into()
    } else {
        s.get_stripped_name().to_owned()
    }
}

fn rational_of(atom: AtomView<'_>) -> Option<BigRational> {
    match atom {
        AtomView::Num(n) => match n.get_coeff_view().to_owned() {
            SymbolicaNumber::Complex(c) if c.im.is_zero() => Some(to_big_rational(&c.re)),
            _ => None,
        },
        _ => None,
    }
}

fn print_rational(r: &BigRational) -> (String, Binding) {
    let text = if r.is_integer() {
        r.numer().to_string()
    } else {
        format!("{}/{}", r.numer(), r.denom())
    };
    let binding = if r.is_negative() {
        Binding::Sum
    } else if r.is_integer() {
        Binding::Atom
    } else {
        Binding::Product
    };
    (text, binding)
}

fn half() -> BigRational {
    BigRational::new(BigInt::one(), BigInt::from(2))
}

/// `base^e` for a positive rational `e`.
fn print_power(base: AtomView<'_>, e: &BigRational) -> (String, Binding) {
    if let AtomView::Var(v) = base
        && v.get_symbol() == Symbol::E
    {
        return (format!("exp({})", print_rational(e).0), Binding::Atom);
    }
    let base_text = wrap(print(base), Binding::Atom);
    if *e == half() {
        let inner = print(base).0;
        return (format!("sqrt({inner})"), Binding::Atom);
    }
    if e.is_one() {
        return print(base);
    }
    let exponent = wrap(print_rational(e), Binding::Atom);
    (format!("{base_text}^{exponent}"), Binding::Power)
}

fn print_symbolic_power(base: AtomView<'_>, exponent: AtomView<'_>) -> (String, Binding) {
    if let AtomView::Var(v) = base
        && v.get_symbol() == Symbol::E
    {
        return (format!("exp({})", print(exponent).0), Binding::Atom);
    }
    (
        format!(
            "{}^{}",
            wrap(print(base), Binding::Atom),
            wrap(print(exponent), Binding::Atom)
        ),
        Binding::Power,
    )
}

/// A product as `±[p*]num.../(q*den...)`, square roots gathered into one `sqrt(...)` above and
/// one below the line: `(1/2)^(1/2)*pi^(-1/2)` prints as `1/sqrt(2*pi)`.
fn print_product<'a>(factors: impl Iterator<Item = AtomView<'a>>) -> (String, Binding) {
    let mut rational = BigRational::one();
    let mut numerator: Vec<String> = Vec::new();
    let mut denominator: Vec<String> = Vec::new();
    let mut sqrt_numerator: Vec<String> = Vec::new();
    let mut sqrt_denominator: Vec<String> = Vec::new();
    let h = half();
    for factor in factors {
        if let Some(r) = rational_of(factor) {
            rational *= r;
            continue;
        }
        let AtomView::Pow(p) = factor else {
            numerator.push(wrap(print(factor), Binding::Power));
            continue;
        };
        let (base, exponent) = p.get_base_exp();
        let Some(e) = rational_of(exponent) else {
            numerator.push(wrap(print(factor), Binding::Power));
            continue;
        };
        let (above, below) = if e.is_negative() {
            (&mut denominator, &mut numerator)
        } else {
            (&mut numerator, &mut denominator)
        };
        let (sqrt_above, sqrt_below) = if e.is_negative() {
            (&mut sqrt_denominator, &mut sqrt_numerator)
        } else {
            (&mut sqrt_numerator, &mut sqrt_denominator)
        };
        let magnitude = e.abs();
        if let Some(b) = rational_of(base).filter(|b| b.is_positive()) {
            // (p/q)^e = p^e / q^e, with square roots merged.
            for (part, upper) in [(b.numer().clone(), true), (b.denom().clone(), false)] {
                if part.is_one() {
                    continue;
                }
                let text = part.to_string();
                match (magnitude == h, upper) {
                    (true, true) => sqrt_above.push(text),
                    (true, false) => sqrt_below.push(text),
                    (false, true) => above.push(format!(
                        "{text}^{}",
                        wrap(print_rational(&magnitude), Binding::Atom)
                    )),
                    (false, false) => below.push(format!(
                        "{text}^{}",
                        wrap(print_rational(&magnitude), Binding::Atom)
                    )),
                }
            }
        } else if magnitude == h && !matches!(base, AtomView::Var(v) if v.get_symbol() == Symbol::E)
        {
            sqrt_above.push(wrap(print(base), Binding::Power));
        } else {
            above.push(wrap(print_power(base, &magnitude), Binding::Power));
        }
    }
    if !sqrt_numerator.is_empty() {
        numerator.push(format!("sqrt({})", sqrt_numerator.join("*")));
    }
    if !sqrt_denominator.is_empty() {
        denominator.push(format!("sqrt({})", sqrt_denominator.join("*")));
    }

    let negative = rational.is_negative();
    let p = rational.numer().abs();
    let q = rational.denom().clone();
    let upper = match (numerator.is_empty(), p.is_one()) {
        (true, _) => p.to_string(),
        (false, true) => numerator.join("*"),
        (false, false) => format!("{p}*{}", numerator.join("*")),
    };
    let mut lower: Vec<String> = Vec::new();
    if !q.is_one() {
        lower.push(q.to_string());
    }
    lower.extend(denominator);
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    text.push_str(&upper);
    match lower.len() {
        0 => {}
        1 => {
            text.push('/');
            text.push_str(&lower[0]);
        }
        _ => {
            text.push_str("/(");
            text.push_str(&lower.join("*"));
            text.push(')');
        }
    }
    let binding = if negative {
        Binding::Sum
    } else if lower.is_empty() && !upper.contains('*') {
        // A single factor, already wrapped to bind at least as tightly as a power.
        Binding::Power
    } else {
        Binding::Product
    };
    (text, binding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_text(formula: &str, point: (i64, i64), degree: usize) -> Result<Expansion> {
        let point = BigRational::new(point.0.into(), point.1.into());
        let value = num_traits::ToPrimitive::to_f64(&point).unwrap_or(f64::NAN);
        expand(formula, formula, &point, value, degree)
    }

    #[test]
    fn sigmoid_at_zero_is_rational() {
        let e = expand_text("1/(1+exp(-x))", (0, 1), 5).unwrap();
        let text: Vec<String> = e.ascending.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["1/2", "1/4", "0", "-1/48", "0", "1/480"]);
    }

    #[test]
    fn gelu_prints_square_roots_readably() {
        let e = expand_text("x/2*(1+erf(x/sqrt(2)))", (0, 1), 4).unwrap();
        assert_eq!(e.ascending[2].to_string(), "1/sqrt(2*pi)");
        assert_eq!(e.ascending[4].to_string(), "-1/(6*sqrt(2*pi))");
        let exact = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((e.ascending[2].to_f64() - exact).abs() < 1e-16);
    }

    /// Closed forms print in a syntax Symbolica reads back to the same value.
    #[test]
    fn readable_text_round_trips() {
        for (formula, point) in [
            ("x/2*(1+erf(x/sqrt(2)))", (0, 1)),
            ("log(1+exp(x))", (0, 1)),
            ("1/(1+exp(-x))", (1, 2)),
            ("x/2*(1+erf(x/sqrt(2)))", (-3, 2)),
        ] {
            let e = expand_text(formula, point, 6).unwrap();
            let texts: Vec<(String, f64)> = e
                .about_point
                .iter()
                .chain(&e.ascending)
                .filter(|c| c.as_rational().is_none())
                .map(|c| (c.to_string(), c.to_f64()))
                .collect();
            assert!(!texts.is_empty());
            let reread = contained(|| {
                Ok(texts
                    .iter()
                    .map(|(t, _)| {
                        try_parse!(t.as_str())
                            .unwrap()
                            .evaluate_with_prec::<Atom, Float>(&HashMap::new(), 200)
                            .unwrap()
                            .to_f64()
                    })
                    .collect::<Vec<f64>>())
            })
            .unwrap();
            for ((text, value), again) in texts.iter().zip(reread) {
                assert!(
                    (value - again).abs() <= 1e-14 * value.abs(),
                    "{text}: {value} read back as {again}"
                );
            }
        }
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_next_job_runs() {
        let err = contained(|| -> Result<()> { panic!("boom") }).unwrap_err();
        assert!(matches!(err, Error::Symbolic { ref reason } if reason.contains("boom")));
        assert!(expand_text("exp(x)", (0, 1), 3).is_ok());
    }

    #[test]
    fn poles_roots_and_logs_are_not_analytic() {
        for formula in ["1/x", "sqrt(x)", "log(x)", "x^(1/3)", "log(1/x)"] {
            let err = expand_text(formula, (0, 1), 3).unwrap_err();
            assert!(matches!(err, Error::NotAnalytic { .. }), "{formula}: {err}");
        }
    }

    #[test]
    fn complex_values_are_refused() {
        let err = expand_text("log(x)", (-1, 1), 3).unwrap_err();
        assert!(matches!(err, Error::Symbolic { .. }), "{err}");
    }
}

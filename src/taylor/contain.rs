//! Running Symbolica inside its licence terms, with every wait and every derivation bounded.
//!
//! * **One thread per user.** Unlicensed Symbolica takes a per-thread permit, an `flock` on
//!   `symbolica-restricted-thread-0.lock` in a per-user lock directory, held by a thread-local
//!   until the thread exits; a second thread or process that touches Symbolica meanwhile makes
//!   it `abort()`. So each derivation runs on a fresh worker thread whose exit releases the
//!   permit. Callers of one process take turns (a flag and a condition variable), polyact
//!   processes of one user take turns on an `flock` of our own file in the same directory,
//!   and unless Symbolica accepts a licence key we then wait until no other program holds
//!   Symbolica's permit.
//! * **Bounded.** Each of those waits ends after [`wait_limit`] with [`Error::Symbolic`] naming
//!   the holder (this process's derivation and thread, or the other process's id and
//!   derivation, or Symbolica's permit file); a derivation that runs past [`time_limit`]
//!   returns [`Error::TooComplex`] while its worker finishes in the background, still holding
//!   the turn, so that Symbolica is never entered twice.
//! * **The rayon pool.** On first use Symbolica tries to build rayon's global pool with one
//!   thread. We build the global pool with rayon's defaults first (a no-op when the host
//!   already built one), so that attempt fails and the host keeps its parallelism.
//! * **Stdout and logging.** Symbolica prints a licence banner to stdout when it starts,
//!   unless `SYMBOLICA_HIDE_BANNER` is set, and would install a global `tracing` subscriber
//!   writing to stdout. polyact turns the subscriber off, and (on Unix) starts Symbolica with
//!   stdout pointed at `/dev/null` for that instant, holding Rust's stdout lock so that no
//!   other thread's `print!` is lost; it prints its own one-line statement of Symbolica's terms
//!   to stderr instead. polyact never changes the environment.

use std::any::Any;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, Once, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::convert;
use crate::{Error, Result};

/// Our own lock file, beside Symbolica's, that queues polyact processes of one user.
const OUR_LOCK: &str = "polyact-symbolica.lock";
/// Symbolica's per-user permit file (see `symbolica::license`).
const SYMBOLICA_LOCK: &str = "symbolica-restricted-thread-0.lock";
/// Stack of the worker thread: Symbolica recurses over the expression tree.
const WORKER_STACK: usize = 64 << 20;
/// How often a wait looks again at a lock held by another process.
const POLL: Duration = Duration::from_millis(20);

static WAIT_LIMIT_MS: AtomicU64 = AtomicU64::new(120_000);
static TIME_LIMIT_MS: AtomicU64 = AtomicU64::new(60_000);

/// How long a derivation waits for its turn at Symbolica, at most (default 120 s; 10 s for a
/// program that is not polyact holding Symbolica's permit).
///
/// ```
/// assert!(polyact::taylor::wait_limit() >= std::time::Duration::from_secs(1));
/// ```
pub fn wait_limit() -> Duration {
    Duration::from_millis(WAIT_LIMIT_MS.load(Ordering::Relaxed))
}

/// Sets how long a derivation waits for its turn at Symbolica (process-wide).
///
/// ```
/// use std::time::Duration;
/// let before = polyact::taylor::wait_limit();
/// polyact::taylor::set_wait_limit(Duration::from_secs(30));
/// assert_eq!(polyact::taylor::wait_limit(), Duration::from_secs(30));
/// polyact::taylor::set_wait_limit(before);
/// ```
pub fn set_wait_limit(limit: Duration) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    WAIT_LIMIT_MS.store(ms, Ordering::Relaxed);
}

/// How long one derivation may run in Symbolica before it fails with [`Error::TooComplex`]
/// (default 60 s).
///
/// ```
/// assert!(polyact::taylor::time_limit() >= std::time::Duration::from_secs(1));
/// ```
pub fn time_limit() -> Duration {
    Duration::from_millis(TIME_LIMIT_MS.load(Ordering::Relaxed))
}

/// Sets how long one derivation may run (process-wide). A derivation that runs past it keeps
/// Symbolica busy in the background until it ends; later derivations wait for it (up to
/// [`wait_limit`]).
///
/// ```
/// use std::time::Duration;
/// let before = polyact::taylor::time_limit();
/// polyact::taylor::set_time_limit(Duration::from_secs(5));
/// assert_eq!(polyact::taylor::time_limit(), Duration::from_secs(5));
/// polyact::taylor::set_time_limit(before);
/// ```
pub fn set_time_limit(limit: Duration) {
    let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    TIME_LIMIT_MS.store(ms, Ordering::Relaxed);
}

/// This process's derivation that holds the turn.
struct Holder {
    what: String,
    thread: String,
    since: Instant,
}

static BUSY: Mutex<Option<Holder>> = Mutex::new(None);
static FREED: Condvar = Condvar::new();
static PREPARE: Once = Once::new();
static START: Once = Once::new();
static LICENSED: OnceLock<bool> = OnceLock::new();

/// This process's turn at Symbolica; released on drop.
struct Turn;

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(PoisonError::into_inner) = None;
        FREED.notify_all();
    }
}

/// Runs `job` on a fresh worker thread, with Symbolica's thread permit free and held by no one
/// else of this process or of this user's other polyact processes, and returns its result.
/// `what` describes the job for other waiters' messages. A panic in the job comes back as
/// [`Error::Symbolic`], a job past [`time_limit`] as [`Error::TooComplex`].
pub(crate) fn contained<R: Send + 'static>(
    what: &str,
    job: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    let deadline = Instant::now() + wait_limit();
    let turn = take_turn(what, deadline)?;
    let directory = lock_directory()?;
    let our_lock = lock_ours(&directory.join(OUR_LOCK), what, deadline)?;
    PREPARE.call_once(prepare_process);
    if !*LICENSED.get_or_init(convert::is_licensed) {
        let foreign = Instant::now() + Duration::from_secs(10);
        wait_for_symbolica_permit(&directory, deadline.min(foreign))?;
    }
    // The reaper waits until the worker has fully exited, thread-local destructors included
    // (that is where Symbolica's permit is released), before it releases our turn and lock.
    // It starts before the worker: if it could not start, no worker would run without it.
    let (sender, receiver) = mpsc::channel();
    let (hand_over, worker) = mpsc::channel::<thread::JoinHandle<Result<R>>>();
    thread::Builder::new()
        .name("polyact-symbolica-reaper".into())
        .spawn(move || {
            // `Err`: the worker did not start, and there is nothing to wait for.
            let outcome = worker.recv().map(thread::JoinHandle::join);
            drop(our_lock);
            drop(turn);
            if let Ok(outcome) = outcome {
                let _ = sender.send(outcome);
            }
        })
        .map_err(|e| Error::Symbolic {
            reason: format!("cannot start the Symbolica reaper thread: {e}"),
        })?;
    let worker = thread::Builder::new()
        .name("polyact-symbolica".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            START.call_once(start_symbolica);
            job()
        })
        .map_err(|e| Error::Symbolic {
            reason: format!("cannot start the Symbolica worker thread: {e}"),
        })?;
    let limit = time_limit();
    // The reaper does nothing before it receives the worker, so the send cannot fail; if it
    // did, the worker's result would still come back (by waiting here).
    let outcome = match hand_over.send(worker) {
        Ok(()) => receiver.recv_timeout(limit),
        Err(mpsc::SendError(worker)) => Ok(worker.join()),
    };
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(Error::Symbolic {
            reason: format!(
                "Symbolica panicked on {what} ({}); polyact's checks should have refused this \
                 input: please report it with the formula. Later derivations in this process \
                 may fail",
                crate::expr::abbreviate(&panic_message(panic.as_ref()))
            ),
        }),
        Err(_) => Err(Error::TooComplex {
            reason: format!(
                "deriving {what} took longer than the time limit of {:.1} s \
                 (polyact::taylor::set_time_limit); it continues in the background and holds \
                 Symbolica until it ends. Ask for a lower degree or a simpler formula",
                limit.as_secs_f64()
            ),
        }),
    }
}

/// Waits (until `deadline`) for this process's other derivation to finish, then takes the turn.
fn take_turn(what: &str, deadline: Instant) -> Result<Turn> {
    let mut busy = BUSY.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some(holder) = busy.as_ref() {
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Symbolic {
                reason: format!(
                    "waited {:.1} s (polyact::taylor::set_wait_limit) for this process's \
                     derivation of {} on thread `{}`, running for {:.1} s, which holds \
                     Symbolica; retry later or raise the limits",
                    wait_limit().as_secs_f64(),
                    holder.what,
                    holder.thread,
                    holder.since.elapsed().as_secs_f64()
                ),
            });
        }
        busy = FREED
            .wait_timeout(busy, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    *busy = Some(Holder {
        what: what.to_owned(),
        thread: thread::current().name().unwrap_or("unnamed").to_owned(),
        since: Instant::now(),
    });
    Ok(Turn)
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
    convert::keep_logging_off();
    let quiet = hide_banner();
    if !quiet && !*LICENSED.get_or_init(convert::is_licensed) {
        eprintln!(
            "polyact: Taylor series are derived with Symbolica (https://symbolica.io). Without a \
             licence Symbolica is for non-commercial use only and limited to one thread per \
             user (polyact queues its derivations). Free hobbyist and student keys, trials and \
             commercial licences: https://symbolica.io/license/ ; set SYMBOLICA_LICENSE=<key> \
             to use one, or SYMBOLICA_HIDE_BANNER=1 to silence this notice."
        );
    }
}

/// Whether `SYMBOLICA_HIDE_BANNER` hides Symbolica's banner, tested as Symbolica tests it (a
/// value that is not valid Unicode does not).
fn hide_banner() -> bool {
    std::env::var("SYMBOLICA_HIDE_BANNER").is_ok()
}

/// Starts Symbolica on the worker thread, its banner kept off stdout (see the module docs).
fn start_symbolica() {
    if hide_banner() {
        convert::start_symbolica();
    } else {
        with_stdout_silenced(convert::start_symbolica);
    }
}

#[cfg(unix)]
fn with_stdout_silenced(f: impl FnOnce()) {
    use std::os::fd::AsRawFd;
    use std::os::raw::c_int;
    unsafe extern "C" {
        fn dup(fd: c_int) -> c_int;
        fn dup2(from: c_int, to: c_int) -> c_int;
        fn close(fd: c_int) -> c_int;
    }
    const STDOUT: c_int = 1;
    // Rust's stdout lock is reentrant: this thread can still print (into /dev/null), every
    // other thread's `print!` waits until stdout is back.
    let mut stdout = io::stdout().lock();
    let _ = stdout.flush();
    let Ok(null) = OpenOptions::new().write(true).open("/dev/null") else {
        return f();
    };
    // SAFETY: `dup`, `dup2` and `close` only take and return descriptor numbers. `saved` is a
    // new descriptor owned here and closed once; descriptor 1 is replaced and restored while we
    // hold Rust's stdout lock, and `null` outlives its use.
    let saved = unsafe { dup(STDOUT) };
    if saved < 0 || unsafe { dup2(null.as_raw_fd(), STDOUT) } < 0 {
        if saved >= 0 {
            // SAFETY: as above; `saved` is ours.
            unsafe { close(saved) };
        }
        return f();
    }
    /// Puts descriptor 1 back when dropped, also when `f` panics.
    struct Restore(c_int);
    impl Drop for Restore {
        fn drop(&mut self) {
            // Reentrant: this thread still holds the stdout lock taken above.
            let _ = io::stdout().flush();
            // SAFETY: as above; `self.0` is the saved descriptor, closed here once.
            unsafe {
                dup2(self.0, STDOUT);
                close(self.0);
            }
        }
    }
    let _restore = Restore(saved);
    f();
}

#[cfg(not(unix))]
fn with_stdout_silenced(f: impl FnOnce()) {
    f()
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

/// Takes the exclusive lock on our own file (until `deadline`) and writes who holds it.
fn lock_ours(path: &Path, what: &str, deadline: Instant) -> Result<File> {
    let mut file = open_lock_file(path)?;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => thread::sleep(POLL),
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another polyact process".to_owned()
                } else {
                    crate::expr::abbreviate(holder)
                };
                return Err(Error::Symbolic {
                    reason: format!(
                        "waited {:.1} s (polyact::taylor::set_wait_limit) for {holder}, which \
                         holds {}; retry when it is done",
                        wait_limit().as_secs_f64(),
                        path.display()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Symbolic {
                    reason: format!("cannot lock {}: {e}", path.display()),
                });
            }
        }
    }
    // Who holds the lock, for the messages of those who wait; best effort.
    let note = format!("process {} deriving {what}\n", std::process::id());
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(note.as_bytes()));
    Ok(file)
}

/// Waits (until `deadline`) until no thread of another program holds Symbolica's permit, so
/// that our worker can take it without Symbolica aborting the process.
///
/// Another program could still take the permit between this check and our worker's first
/// Symbolica call; polyact processes cannot, since they queue on our own lock first.
fn wait_for_symbolica_permit(directory: &Path, deadline: Instant) -> Result<()> {
    let path = directory.join(SYMBOLICA_LOCK);
    let start = Instant::now();
    loop {
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            // Dropping `file` releases the lock at once.
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                drop(file);
                thread::sleep(POLL);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Symbolic {
                    reason: format!(
                        "another program of this user has held Symbolica for {:.1} s ({} is \
                         locked); unlicensed Symbolica allows one thread per user. Retry when \
                         it is done, or set SYMBOLICA_LICENSE to a key Symbolica accepts",
                        start.elapsed().as_secs_f64(),
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

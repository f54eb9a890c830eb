//! `results.jsonl`: one finished run per line, appended as runs finish, read back by `--resume`
//! and `--report-only`.
//!
//! Guarantees: every record written reads back (non-finite floats are written as text, see
//! [`crate::float`]); a record appended after an interrupted write starts on its own line; a
//! line that does not read back (cut off, invalid UTF-8, foreign) is skipped and reported with
//! the file and line number, never fatal; a previous file is moved to a backup name that never
//! overwrites an existing file; one training run at a time writes a folder ([`claim`]).

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::train::{RunConfig, RunResult};

/// Most seeds per activation in one invocation (a plan larger than this is a typo, and would
/// not fit in memory long before it ran).
pub const MAX_SEEDS: u64 = 100_000;

/// The lock file a training run holds in its output folder (see [`claim`]).
pub const LOCK_FILE: &str = ".mnist-run.lock";

/// Why an output folder cannot be claimed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// Another training run holds the folder.
    #[error(
        "{dir} is in use by another training run ({}, holding {lock}): wait for it to finish, \
         or pass another --out",
        holder_text(*.holder)
    )]
    Busy {
        /// The output folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// The folder or its lock file cannot be created, opened, locked or written.
    #[error("cannot claim {dir} for this run ({lock}): {source}")]
    Io {
        /// The output folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The cause (`Unsupported` where the file system has no locks).
        source: std::io::Error,
    },
}

/// The holder of a lock, for [`ClaimError::Busy`]'s message.
fn holder_text(holder: Option<u32>) -> String {
    holder.map_or("its id is not in the lock file".into(), |pid| {
        format!("process {pid}, by the lock file")
    })
}

/// An output folder claimed by this process: no other [`claim`] of it succeeds until this is
/// dropped (or the process ends, even by a crash: the operating system releases the lock).
#[derive(Debug)]
pub struct Claim {
    dir: PathBuf,
    /// Holds the exclusive lock; the file itself is never deleted (deleting a lock file races
    /// with a process that has just opened it).
    _lock: fs::File,
}

impl Claim {
    /// The claimed folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Claims `out` (created if needed) for one training run: an exclusive lock on
/// `out/`[`LOCK_FILE`], into which this process writes `process <pid>`. A second claim, by
/// this process or another, fails with [`ClaimError::Busy`] naming the holder while the first
/// [`Claim`] lives.
pub fn claim(out: &Path) -> Result<Claim, ClaimError> {
    let lock = out.join(LOCK_FILE);
    let io = |source| ClaimError::Io {
        dir: out.to_owned(),
        lock: lock.clone(),
        source,
    };
    fs::create_dir_all(out).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            // The holder writes its id right after locking: empty only in that instant.
            let holder = fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.trim().strip_prefix("process ")?.parse().ok());
            return Err(ClaimError::Busy {
                dir: out.to_owned(),
                lock,
                holder,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("process {}\n", std::process::id()).as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(io)?;
    Ok(Claim {
        dir: out.to_owned(),
        _lock: file,
    })
}

/// The results file in `out`.
pub fn results_path(out: &Path) -> PathBuf {
    out.join("results.jsonl")
}

/// Appends one finished run as a JSON line and flushes it to disk. When the file does not end
/// with a newline (a previous write was cut off), one is written first so that the new record
/// starts on its own line.
pub fn append(out: &Path, result: &RunResult) -> anyhow::Result<()> {
    fs::create_dir_all(out)?;
    let path = results_path(out);
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    let mut line = String::new();
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    let record = serde_json::to_string(result)?;
    // The codecs make this hold for any record; checked so that a future field cannot
    // silently break `--resume`.
    serde_json::from_str::<RunResult>(&record).map_err(|e| {
        anyhow::anyhow!("internal error: a record would not read back ({e}): {record}")
    })?;
    line.push_str(&record);
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// The records of a results file, and what could not be read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every record that read back, in file order.
    pub runs: Vec<RunResult>,
    /// One message per skipped line, naming the file and the line.
    pub skipped: Vec<String>,
}

/// Every run recorded in `out`; a line that does not parse or is not UTF-8 is skipped and
/// listed in [`Loaded::skipped`]. A missing file is an empty result.
pub fn read(out: &Path) -> anyhow::Result<Loaded> {
    let path = results_path(out);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    };
    let mut loaded = Loaded::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let Ok(line) = std::str::from_utf8(raw) else {
            loaded
                .skipped
                .push(format!("{}: skipping a line that is not UTF-8", at()));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => loaded.runs.push(r),
            Err(e) => loaded
                .skipped
                .push(format!("{}: skipping unreadable line ({e})", at())),
        }
    }
    Ok(loaded)
}

/// [`read`], printing the skipped lines.
pub fn read_reporting(out: &Path) -> anyhow::Result<Vec<RunResult>> {
    let loaded = read(out)?;
    for s in &loaded.skipped {
        eprintln!("{s}");
    }
    Ok(loaded.runs)
}

/// Moves `out/results.jsonl` aside to `results.<stamp>.jsonl`, or `results.<stamp>-N.jsonl`
/// for the first `N` free, and returns the new name. Never replaces an existing file (the move
/// is a hard link that fails on an existing name, then the removal of the old name).
pub fn backup(out: &Path, stamp: u64) -> anyhow::Result<PathBuf> {
    let from = results_path(out);
    for n in 0u32.. {
        let name = if n == 0 {
            format!("results.{stamp}.jsonl")
        } else {
            format!("results.{stamp}-{n}.jsonl")
        };
        let to = out.join(name);
        match fs::hard_link(&from, &to) {
            Ok(()) => {
                fs::remove_file(&from)
                    .map_err(|e| anyhow::anyhow!("removing {}: {e}", from.display()))?;
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "moving {} to {}: {e}",
                    from.display(),
                    to.display()
                ));
            }
        }
    }
    unreachable!("u32 backup names exhausted")
}

/// The runs to make, seed-major: seed `first` of every activation, then seed `first + 1`, ...
/// (partial results are balanced and paired by seed). Refuses a plan whose seeds overflow
/// `u64` or exceed [`MAX_SEEDS`].
pub fn plan(labels: &[String], first: u64, seeds: u64) -> anyhow::Result<Vec<(String, u64)>> {
    anyhow::ensure!(
        (1..=MAX_SEEDS).contains(&seeds),
        "--seeds {seeds}: must be between 1 and {MAX_SEEDS}"
    );
    let last = first.checked_add(seeds - 1).ok_or_else(|| {
        anyhow::anyhow!(
            "--first-seed {first} with --seeds {seeds}: the last seed would exceed {}",
            u64::MAX
        )
    })?;
    Ok((first..=last)
        .flat_map(|seed| labels.iter().map(move |l| (l.clone(), seed)))
        .collect())
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

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::train::{Divergence, EpochRecord};

    /// The settings of a test record.
    pub fn cfg(epochs: usize) -> RunConfig {
        RunConfig {
            epochs,
            ..RunConfig::study("mnist")
        }
    }

    /// A record with one epoch.
    pub fn result(a: &str, seed: u64, acc: f64, diverged: bool) -> RunResult {
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
            device: None,
            model_file: None,
        }
    }

    /// A fresh temporary folder.
    pub fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("polyact-mnist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn results_round_trip_and_resume_skips_finished_runs() {
        let out = tmp("resume");
        assert!(read(&out).unwrap().runs.is_empty());
        let r1 = result("relu", 0, 0.99, false);
        let r2 = result("m_tanh", 0, 0.0, true);
        append(&out, &r1).unwrap();
        append(&out, &r2).unwrap();
        let back = read(&out).unwrap();
        assert_eq!(back.runs, vec![r1, r2]);
        assert!(back.skipped.is_empty());

        let labels: Vec<String> = ["relu", "m_tanh", "sigmoid"].map(String::from).to_vec();
        let plan = plan(&labels, 0, 2).unwrap();
        let todo = pending(&plan, &back.runs, &cfg(2));
        assert_eq!(
            todo,
            vec![
                ("sigmoid".to_string(), 0),
                ("relu".to_string(), 1),
                ("m_tanh".to_string(), 1),
                ("sigmoid".to_string(), 1)
            ]
        );
        // Other settings: nothing is reused.
        assert_eq!(pending(&plan, &back.runs, &cfg(12)).len(), plan.len());
        fs::remove_dir_all(&out).unwrap();
    }

    /// Issue 9 item 15: a run appended after a cut-off last line (no newline) used to be glued
    /// onto it, so both were unreadable and the run was made again at every `--resume`.
    #[test]
    fn append_after_a_cut_line_starts_a_new_line() {
        let out = tmp("cut");
        let r1 = result("relu", 0, 0.99, false);
        append(&out, &r1).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(results_path(&out))
            .unwrap();
        f.write_all(b"{\"activation\":\"sig").unwrap();
        drop(f);
        let r2 = result("sigmoid", 0, 0.991, false);
        append(&out, &r2).unwrap();
        let back = read(&out).unwrap();
        assert_eq!(back.runs, vec![r1, r2]);
        assert_eq!(back.skipped.len(), 1, "{:?}", back.skipped);
        assert!(
            back.skipped[0].contains("results.jsonl:2"),
            "{:?}",
            back.skipped
        );
        fs::remove_dir_all(&out).unwrap();
    }

    /// Issue 9 item 16: a run with NaN figures was written with `null`s and could not be read.
    #[test]
    fn records_with_non_finite_figures_read_back() {
        let out = tmp("nan");
        let mut r = result("m_tanh", 3, 0.5, false);
        r.history[0].train_loss = f64::NAN;
        r.history[0].images_per_second = f64::INFINITY;
        r.history[0].val_accuracy = Some(f64::NAN);
        r.test_accuracy = Some(f64::NAN);
        r.learned_coefficients = Some(vec![0.5, f64::NEG_INFINITY]);
        append(&out, &r).unwrap();
        let back = read(&out).unwrap();
        assert!(back.skipped.is_empty(), "{:?}", back.skipped);
        assert_eq!(back.runs.len(), 1);
        let b = &back.runs[0];
        assert!(b.history[0].train_loss.is_nan());
        assert!(b.history[0].images_per_second.is_infinite());
        assert!(b.test_accuracy.is_some_and(f64::is_nan));
        fs::remove_dir_all(&out).unwrap();
    }

    /// Issue 9 item 18: one line of invalid UTF-8 made `--resume` fail entirely.
    #[test]
    fn invalid_utf8_line_is_skipped_and_named() {
        let out = tmp("utf8");
        let r1 = result("relu", 0, 0.99, false);
        append(&out, &r1).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(results_path(&out))
            .unwrap();
        f.write_all(b"\xff\xfe garbage\n").unwrap();
        drop(f);
        let r2 = result("tanh", 0, 0.99, false);
        append(&out, &r2).unwrap();
        let back = read(&out).unwrap();
        assert_eq!(back.runs, vec![r1, r2]);
        assert_eq!(back.skipped.len(), 1);
        assert!(
            back.skipped[0].contains("results.jsonl:2") && back.skipped[0].contains("UTF-8"),
            "{:?}",
            back.skipped
        );
        fs::remove_dir_all(&out).unwrap();
    }

    /// Issue 9 item 18: two backups in the same second used to overwrite each other.
    #[test]
    fn backups_never_overwrite() {
        let out = tmp("backup");
        fs::create_dir_all(&out).unwrap();
        let mut names = Vec::new();
        for text in ["first\n", "second\n", "third\n"] {
            fs::write(results_path(&out), text).unwrap();
            names.push(backup(&out, 1_700_000_000).unwrap());
            assert!(!results_path(&out).exists());
        }
        assert_eq!(
            names
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            [
                "results.1700000000.jsonl",
                "results.1700000000-1.jsonl",
                "results.1700000000-2.jsonl"
            ]
        );
        for (p, text) in names.iter().zip(["first\n", "second\n", "third\n"]) {
            assert_eq!(fs::read_to_string(p).unwrap(), text);
        }
        fs::remove_dir_all(&out).unwrap();
    }

    /// Two runs writing one folder moved each other's results aside, or (with `--resume`)
    /// made the same runs twice: a second claim fails, naming the holder, until the first ends.
    #[test]
    fn one_run_at_a_time_claims_a_folder() {
        let out = tmp("claim");
        let first = claim(&out).unwrap();
        assert_eq!(first.dir(), out.as_path());
        let lock = out.join(LOCK_FILE);
        let me = std::process::id();
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            format!("process {me}\n")
        );

        let err = claim(&out).unwrap_err();
        assert!(
            matches!(&err, ClaimError::Busy { holder: Some(pid), .. } if *pid == me),
            "{err}"
        );
        let text = err.to_string();
        for part in [
            out.display().to_string(),
            format!("process {me}"),
            "--out".into(),
            "wait".into(),
        ] {
            assert!(text.contains(&part), "{part:?} missing from: {text}");
        }

        // Released when the guard goes; the lock file stays (never deleted) and is reused.
        drop(first);
        assert!(lock.exists());
        let again = claim(&out).unwrap();
        assert_eq!(
            fs::read_to_string(&lock).unwrap(),
            format!("process {me}\n")
        );
        drop(again);
        fs::remove_dir_all(&out).unwrap();
    }

    /// A holder that has not written its id yet (or wrote something else) is still refused.
    #[test]
    fn a_holder_without_an_id_is_still_refused() {
        let out = tmp("claim-anon");
        let first = claim(&out).unwrap();
        fs::write(out.join(LOCK_FILE), "").unwrap();
        let err = claim(&out).unwrap_err();
        assert!(
            matches!(err, ClaimError::Busy { holder: None, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--out"), "{err}");
        drop(first);
        fs::remove_dir_all(&out).unwrap();
    }

    /// Issue 9 item 7: `--first-seed 18446744073709551615 --seeds 2` and
    /// `--seeds 18446744073709551615` panicked (overflow, or a plan that cannot fit in memory).
    #[test]
    fn seed_plans_never_overflow() {
        let labels = vec!["relu".to_string()];
        let err = plan(&labels, u64::MAX, 2).unwrap_err().to_string();
        assert!(err.contains("--first-seed"), "{err}");
        let err = plan(&labels, 0, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("--seeds"), "{err}");
        assert!(plan(&labels, 0, 0).is_err());
        assert_eq!(
            plan(&labels, u64::MAX, 1).unwrap(),
            [("relu".into(), u64::MAX)]
        );
        assert_eq!(plan(&labels, u64::MAX - 1, 2).unwrap().len(), 2);
    }
}

//! The four IDX files of MNIST (or Fashion-MNIST): where they are, and downloading the
//! missing ones with their published SHA-256. Reading and validating them is [`crate::idx`]'s
//! (shared with `encrypted_mnist`), re-exported here.
//!
//! Every check names the file that failed it; no input makes the reader panic.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use crate::idx::{IdxError, SIDE, Split, find_file};
use crate::idx::{decompress_if_gz, load_split, require_file};

/// Largest download accepted.
const MAX_DOWNLOAD_BYTES: u64 = 128 << 20;

/// A download that sends nothing for this long is abandoned (a stalled mirror).
const STALL_LIMIT: Duration = Duration::from_secs(20);

/// Reads `reader` to the end on a helper thread, failing when no byte arrives for `stall`, or
/// when more than [`MAX_DOWNLOAD_BYTES`] arrive.
fn read_with_stall_limit(
    mut reader: impl std::io::Read + Send + 'static,
    stall: Duration,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let chunk = match reader.read(&mut buf) {
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(e) => Err(e),
            };
            let done = matches!(&chunk, Ok(c) if c.is_empty()) || chunk.is_err();
            if tx.send(chunk).is_err() || done {
                return;
            }
        }
    });
    let mut body = Vec::new();
    loop {
        match rx.recv_timeout(stall) {
            Ok(Ok(chunk)) if chunk.is_empty() => return Ok(body),
            Ok(Ok(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > MAX_DOWNLOAD_BYTES {
                    let limit = MAX_DOWNLOAD_BYTES;
                    return Err(Error::other(format!("more than {limit} bytes")));
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let (got, secs) = (body.len(), stall.as_secs());
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("the mirror sent nothing for {secs} s after {got} bytes"),
                ));
            }
        }
    }
}

/// What went wrong with the data, always naming the file or address concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file is missing, unreadable or not a valid IDX file of its kind.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// Files are missing and could not be downloaded.
    #[error("{}", missing_message(.dir, .files, .reason))]
    Missing {
        /// The data directory searched.
        dir: PathBuf,
        /// The files not found there.
        files: Vec<String>,
        /// Why the download did not help.
        reason: String,
    },
    /// A download failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The address.
        url: String,
        /// The cause.
        reason: String,
    },
    /// A downloaded file does not have the published SHA-256.
    #[error("{url}: SHA-256 {found} matches no published digest of {file}; file rejected")]
    Checksum {
        /// The address.
        url: String,
        /// The file name.
        file: String,
        /// Digest of what arrived (of the decompressed content).
        found: String,
    },
}

fn missing_message(dir: &Path, files: &[String], reason: &str) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("  {}/{f}  (or {f}.gz)", dir.display()))
        .collect();
    format!(
        "missing data files ({reason}). Put these files there (raw or gzip):\n{}\n\
         or point --data-dir / $MNIST_DIR at a folder holding them, or pass --mirror URL",
        list.join("\n")
    )
}

/// Which data set: both use the same four file names and the same format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Handwritten digits (LeCun, Cortes, Burges).
    Mnist,
    /// Zalando's article images (Xiao, Rasul, Vollgraf), a drop-in replacement.
    FashionMnist,
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        })
    }
}

/// Published digests of one file: of its decompressed content, or of one known gzip archive.
#[derive(Debug, Clone)]
pub struct KnownFile {
    /// File name without `.gz`.
    pub name: &'static str,
    /// SHA-256 of the decompressed IDX content (independent of how it was compressed).
    pub raw_sha256: Option<&'static str>,
    /// SHA-256 of the archive as the default mirror serves it.
    pub gz_sha256: Option<&'static str>,
}

/// The four file names, in the order train images, train labels, test images, test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

impl DatasetKind {
    /// The default mirror (a folder URL holding the four `.gz` files).
    pub fn default_mirror(self) -> &'static str {
        match self {
            Self::Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist/",
            Self::FashionMnist => "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        }
    }

    /// The published digests of the four files.
    pub fn known_files(self) -> [KnownFile; 4] {
        let f = |name, raw, gz| KnownFile {
            name,
            raw_sha256: raw,
            gz_sha256: gz,
        };
        match self {
            // Digests of the decompressed originals: every re-compressed mirror serves the same.
            Self::Mnist => [
                f(
                    FILE_NAMES[0],
                    Some("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                    None,
                ),
                f(
                    FILE_NAMES[1],
                    Some("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
                    None,
                ),
                f(
                    FILE_NAMES[2],
                    Some("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                    None,
                ),
                f(
                    FILE_NAMES[3],
                    Some("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
                    None,
                ),
            ],
            // Digests of the archives Zalando publishes.
            Self::FashionMnist => [
                f(
                    FILE_NAMES[0],
                    None,
                    Some("08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
                ),
                f(
                    FILE_NAMES[1],
                    None,
                    Some("b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
                ),
                f(
                    FILE_NAMES[2],
                    None,
                    Some("78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
                ),
                f(
                    FILE_NAMES[3],
                    None,
                    Some("42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
                ),
            ],
        }
    }
}

/// Training and test splits.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The 60,000 training examples.
    pub train: Split,
    /// The 10,000 test examples.
    pub test: Split,
}

/// The data folder: `--data-dir`, else `$MNIST_DIR`, else `data/<dataset>`.
pub fn data_dir(explicit: Option<&Path>, kind: DatasetKind) -> PathBuf {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("MNIST_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data").join(kind.to_string()))
}

/// Loads the data set from `dir`; missing files are downloaded from `mirror` when it is `Some`.
pub fn load(dir: &Path, kind: DatasetKind, mirror: Option<&str>) -> Result<Dataset, DataError> {
    let missing: Vec<String> = FILE_NAMES
        .iter()
        .filter(|n| find_file(dir, n).is_none())
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        let Some(mirror) = mirror else {
            return Err(DataError::Missing {
                dir: dir.to_owned(),
                files: missing,
                reason: "downloads are off".into(),
            });
        };
        let known = kind.known_files();
        for name in &missing {
            let file = known
                .iter()
                .find(|k| k.name == name.as_str())
                .expect("every missing name is one of the four known files");
            eprintln!("downloading {name}.gz from {mirror}");
            download(mirror, file, dir).map_err(|e| DataError::Missing {
                dir: dir.to_owned(),
                files: missing.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    // Present, or downloaded above (an error if removed since).
    let path = |i: usize| require_file(dir, FILE_NAMES[i]);
    Ok(Dataset {
        train: load_split(&path(0)?, &path(1)?)?,
        test: load_split(&path(2)?, &path(3)?)?,
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `<mirror>/<name>.gz` into `dir`, checks its SHA-256 against `file`'s published
/// digests (of the archive, or of the decompressed content), and renames it into place
/// atomically. Returns the final path. A file that matches no digest is deleted and rejected.
pub fn download(mirror: &str, file: &KnownFile, dir: &Path) -> Result<PathBuf, DataError> {
    download_within(mirror, file, dir, STALL_LIMIT)
}

/// [`download`], failing when the mirror sends nothing for `stall`: neither the response
/// headers nor the next bytes of the body. A slow but steady download is never cut off.
fn download_within(
    mirror: &str,
    file: &KnownFile,
    dir: &Path,
    stall: Duration,
) -> Result<PathBuf, DataError> {
    let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), file.name);
    let failed = |reason: String| DataError::Download {
        url: url.clone(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(stall))
        .build()
        .into();
    let response = agent.get(&url).call().map_err(|e| failed(e.to_string()))?;
    let body = read_with_stall_limit(response.into_body().into_reader(), stall)
        .map_err(|e| failed(e.to_string()))?;

    let gz_digest = hex(&Sha256::digest(&body));
    let gz_ok = file.gz_sha256 == Some(gz_digest.as_str());
    let raw_digest = if gz_ok {
        None
    } else {
        let raw =
            decompress_if_gz(Path::new(&url), body.clone()).map_err(|e| failed(e.to_string()))?;
        Some(hex(&Sha256::digest(&raw)))
    };
    let raw_ok = raw_digest.is_some() && file.raw_sha256 == raw_digest.as_deref();
    if !gz_ok && !raw_ok {
        return Err(DataError::Checksum {
            url,
            file: file.name.to_string(),
            found: raw_digest.unwrap_or(gz_digest),
        });
    }

    let io = |path: &Path, source| {
        DataError::from(IdxError::Io {
            path: path.to_owned(),
            source,
        })
    };
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let target = dir.join(format!("{}.gz", file.name));
    let part = dir.join(format!(".{}.gz.part-{}", file.name, std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&part)?;
        f.write_all(&body)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&part);
        return Err(io(&part, e));
    }
    fs::rename(&part, &target).map_err(|e| {
        let _ = fs::remove_file(&part);
        io(&target, e)
    })?;
    Ok(target)
}

#[cfg(test)]
mod stall_tests {
    use super::*;

    /// A reader that sends a few bytes, then stalls far longer than the limit.
    struct Stalling(u8);
    impl std::io::Read for Stalling {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                std::thread::sleep(Duration::from_secs(30));
                return Ok(0);
            }
            self.0 -= 1;
            buf[0] = 7;
            Ok(1)
        }
    }

    /// A mirror that accepts the connection and never answers fails at the stall limit too,
    /// not after minutes.
    #[test]
    fn a_mirror_that_never_answers_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let silent = std::thread::spawn(move || {
            let (_conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(4));
        });
        let file = KnownFile {
            name: "never",
            raw_sha256: None,
            gz_sha256: None,
        };
        let dir = std::env::temp_dir().join(format!("polyact-never-{}", std::process::id()));
        let start = std::time::Instant::now();
        let err = download_within(&url, &file, &dir, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        silent.join().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stalled_mirror_times_out() {
        let start = std::time::Instant::now();
        let err = read_with_stall_limit(Stalling(3), Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("after 3 bytes"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let whole = read_with_stall_limit(&b"abc"[..], Duration::from_secs(5)).unwrap();
        assert_eq!(whole, b"abc");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::{gz, idx};
    use crate::idx::{LABELS_MAGIC, parse_labels, read_maybe_gz};

    #[test]
    fn missing_files_say_where_to_put_them() {
        let dir = std::env::temp_dir().join(format!("polyact-mnist-none-{}", std::process::id()));
        let err = load(&dir, DatasetKind::Mnist, None).unwrap_err();
        let text = err.to_string();
        for name in FILE_NAMES {
            assert!(text.contains(name), "{text}");
        }
        assert!(text.contains("--data-dir"), "{text}");
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 serving `files` for at most `requests` connections
    /// (each read bounded by a timeout), answering 404 for other paths.
    fn serve(
        files: Vec<(String, Vec<u8>)>,
        requests: usize,
    ) -> (String, std::thread::JoinHandle<()>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mirror/", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let found = files
                    .iter()
                    .find(|(name, _)| path == format!("/mirror/{name}"));
                let (status, body) = match found {
                    Some((_, body)) => ("200 OK", body.clone()),
                    None => ("404 Not Found", b"not here".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (url, handle)
    }

    #[test]
    fn download_accepts_good_files_and_rejects_corrupted_ones() {
        let labels = idx(LABELS_MAGIC, &[4], &[3, 1, 4, 1]);
        let raw_digest: &'static str = Box::leak(hex(&Sha256::digest(&labels)).into_boxed_str());
        let good = gz(&labels);
        let gz_digest: &'static str = Box::leak(hex(&Sha256::digest(&good)).into_boxed_str());
        let mut corrupted = labels.clone();
        corrupted[9] = 7;
        let files = vec![
            ("good-by-raw.gz".to_string(), good.clone()),
            ("good-by-gz.gz".to_string(), good.clone()),
            ("bad.gz".to_string(), gz(&corrupted)),
        ];
        let (url, server) = serve(files, 4);
        let dir = std::env::temp_dir().join(format!("polyact-mnist-dl-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);

        // Accepted by the digest of the decompressed content.
        let by_raw = KnownFile {
            name: "good-by-raw",
            raw_sha256: Some(raw_digest),
            gz_sha256: None,
        };
        let path = download(&url, &by_raw, &dir).unwrap();
        assert_eq!(path, dir.join("good-by-raw.gz"));
        assert_eq!(
            parse_labels(&path, &read_maybe_gz(&path).unwrap()).unwrap(),
            vec![3, 1, 4, 1]
        );

        // Accepted by the digest of the archive.
        let by_gz = KnownFile {
            name: "good-by-gz",
            raw_sha256: None,
            gz_sha256: Some(gz_digest),
        };
        assert!(download(&url, &by_gz, &dir).is_ok());

        // One changed byte: rejected, and nothing is left behind.
        let bad = KnownFile {
            name: "bad",
            raw_sha256: Some(raw_digest),
            gz_sha256: Some(gz_digest),
        };
        let err = download(&url, &bad, &dir).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err}");
        assert!(!dir.join("bad.gz").exists());

        // Missing on the server: a download error naming the address.
        let absent = KnownFile {
            name: "absent",
            raw_sha256: Some(raw_digest),
            gz_sha256: None,
        };
        let err = download(&url, &absent, &dir).unwrap_err();
        assert!(
            matches!(err, DataError::Download { .. }) && err.to_string().contains("absent.gz"),
            "{err}"
        );

        server.join().unwrap();
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".part"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The real files: counts, label range and digests (fails when they are absent, unless
    /// POLYACT_ALLOW_MISSING_MNIST=1 asks for a visible skip).
    #[test]
    fn real_mnist_matches_published_digests() {
        let Some(dir) = crate::tests_support::real_mnist("real_mnist_matches_published_digests")
        else {
            return;
        };
        let data = load(&dir, DatasetKind::Mnist, None).unwrap();
        assert_eq!(data.train.len(), 60_000);
        assert_eq!(data.test.len(), 10_000);
        for (name, known) in FILE_NAMES.iter().zip(DatasetKind::Mnist.known_files()) {
            let raw = read_maybe_gz(&find_file(&dir, name).unwrap()).unwrap();
            assert_eq!(Some(hex(&Sha256::digest(&raw)).as_str()), known.raw_sha256);
        }
    }
}

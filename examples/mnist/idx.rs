//! Reading the IDX files of MNIST (or Fashion-MNIST): finding, decompressing, validating.
//!
//! IDX is big-endian: a magic number `0x0000_08NN` (`08` = unsigned bytes, `NN` = number of
//! dimensions), one `u32` per dimension, then the bytes. Images are `0x803` with dimensions
//! `count × 28 × 28`, labels `0x801` with dimension `count`. Every file may be gzip-compressed
//! (detected by its first two bytes, whatever its name).
//!
//! Every check names the file that failed it; no input makes the reader panic. This module
//! reads files only (no network, no digests) and depends on no other module: the MNIST example
//! re-exports it from `data`, and `encrypted_mnist` includes it with
//! `#[path = "../mnist/idx.rs"] mod idx;`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest decompressed IDX file accepted (the real training images are 47,040,016 bytes).
pub const MAX_IDX_BYTES: u64 = 256 << 20;
/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Number of classes: labels must lie in `0..CLASSES`.
pub const CLASSES: usize = 10;
/// Image side in pixels.
pub const SIDE: usize = 28;

/// What is wrong with an IDX file, always naming the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdxError {
    /// Neither the raw file nor its `.gz` is in the folder.
    #[error("{dir}/{name} not found (nor {name}.gz): put the file there, raw or gzip")]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The file name without `.gz`.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{path} is not valid gzip: {source}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file decompresses to more than [`MAX_IDX_BYTES`].
    #[error("{path} is larger than {limit} bytes (once decompressed): not an MNIST IDX file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The magic number is not the expected one.
    #[error("{path}: magic number {found:#010x}, expected {expected:#010x} ({what})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What was read.
        found: u32,
        /// What an IDX file of this kind starts with.
        expected: u32,
        /// Which kind of file was expected.
        what: &'static str,
    },
    /// The file is shorter or longer than its header says.
    #[error("{path}: {found} bytes, but its header announces {expected} (truncated or corrupt)")]
    Size {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The image dimensions are not 28 × 28.
    #[error("{path}: images are {rows}x{cols}, expected {SIDE}x{SIDE}")]
    BadDims {
        /// The file.
        path: PathBuf,
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        cols: u32,
    },
    /// Images and labels disagree on the number of examples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// The file holds no examples.
    #[error("{path} holds no examples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A label is not a class.
    #[error("{path}: label {label} at index {index} is outside 0..{CLASSES}")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Position of the bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
}

/// One split: `len()` images of 28 × 28 bytes (row-major) and their labels.
#[derive(Debug, Clone)]
pub struct Split {
    /// Pixels, `len() * 784` bytes.
    pub images: Vec<u8>,
    /// Labels in `0..10`.
    pub labels: Vec<u8>,
}

// The MNIST trainer's; encrypted_mnist includes this module and reads the fields only.
#[allow(dead_code)]
impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The examples `range` as a new split.
    ///
    /// # Panics
    ///
    /// When `range` is not within `0..self.len()` (a caller's bug, not input).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Split {
        let px = SIDE * SIDE;
        Split {
            images: self.images[range.start * px..range.end * px].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }
}

/// The path of `name` in `dir`: the raw file if present, else `name.gz`, else `None`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// [`find_file`], or [`IdxError::NotFound`] naming the folder and the file.
pub fn require_file(dir: &Path, name: &str) -> Result<PathBuf, IdxError> {
    find_file(dir, name).ok_or_else(|| IdxError::NotFound {
        dir: dir.to_owned(),
        name: name.to_owned(),
    })
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes; at most
/// [`MAX_IDX_BYTES`] read or decompressed.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, IdxError> {
    read_within(path, MAX_IDX_BYTES)
}

/// [`read_maybe_gz`] with the limit `limit` (bytes): a larger file, raw or decompressed, is
/// refused without being read whole.
fn read_within(path: &Path, limit: u64) -> Result<Vec<u8>, IdxError> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|source| IdxError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(IdxError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    decompress_within(path, bytes, limit)
}

/// `bytes` decompressed when they start with the gzip magic bytes, else unchanged; at most
/// [`MAX_IDX_BYTES`] once decompressed. `path` only names the data in errors.
// The MNIST trainer's download path; encrypted_mnist includes this module and reads files only.
#[allow(dead_code)]
pub fn decompress_if_gz(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, IdxError> {
    decompress_within(path, bytes, MAX_IDX_BYTES)
}

/// [`decompress_if_gz`] with the limit `limit` (bytes): never holds more than `limit + 1`.
fn decompress_within(path: &Path, bytes: Vec<u8>, limit: u64) -> Result<Vec<u8>, IdxError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| IdxError::Gzip {
            path: path.to_owned(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(IdxError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(out)
}

/// Reads the header of an IDX file: checks the magic number, returns the dimensions and body.
fn idx_body<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<u32>, &'a [u8]), IdxError> {
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    let too_short = || IdxError::Size {
        path: path.to_owned(),
        expected: header as u64,
        found: bytes.len() as u64,
    };
    // Called only at offsets the length checks below have made valid.
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < 4 {
        return Err(too_short());
    }
    let found = word(0);
    if found != magic {
        return Err(IdxError::BadMagic {
            path: path.to_owned(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(too_short());
    }
    let dims: Vec<u32> = (0..ndim).map(|d| word(4 + 4 * d)).collect();
    // u128: three u32 dimensions cannot overflow it.
    let body_len: u128 = dims.iter().map(|&d| u128::from(d)).product();
    let expected = header as u128 + body_len;
    if bytes.len() as u128 != expected {
        return Err(IdxError::Size {
            path: path.to_owned(),
            expected: u64::try_from(expected).unwrap_or(u64::MAX),
            found: bytes.len() as u64,
        });
    }
    Ok((dims, &bytes[header..]))
}

/// Parses an images file (already decompressed); `path` only names it in errors.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let (dims, body) = idx_body(path, bytes, IMAGES_MAGIC, "IDX images, 3 dimensions")?;
    let (rows, cols) = (dims[1], dims[2]);
    if rows as usize != SIDE || cols as usize != SIDE {
        return Err(IdxError::BadDims {
            path: path.to_owned(),
            rows,
            cols,
        });
    }
    if dims[0] == 0 {
        return Err(IdxError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(body.to_vec())
}

/// Parses a labels file (already decompressed); `path` only names it in errors.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let (dims, body) = idx_body(path, bytes, LABELS_MAGIC, "IDX labels, 1 dimension")?;
    if dims[0] == 0 {
        return Err(IdxError::Empty {
            path: path.to_owned(),
        });
    }
    if let Some((index, &label)) = body
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(IdxError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            label,
        });
    }
    Ok(body.to_vec())
}

/// Reads and cross-checks an images file and its labels file.
pub fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, IdxError> {
    let images = parse_images(images_path, &read_maybe_gz(images_path)?)?;
    let labels = parse_labels(labels_path, &read_maybe_gz(labels_path)?)?;
    let n_images = images.len() / (SIDE * SIDE);
    if n_images != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images_path.to_owned(),
            labels: labels_path.to_owned(),
            n_images,
            n_labels: labels.len(),
        });
    }
    Ok(Split { images, labels })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::io::Write;

    /// The bytes of an IDX file: `magic`, the dimensions `dims`, then `body` (which need not
    /// agree with them).
    pub fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    /// `bytes` gzip-compressed.
    pub fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).expect("writing to a Vec");
        e.finish().expect("writing to a Vec")
    }

    fn p() -> &'static Path {
        Path::new("some/file-idx3-ubyte")
    }

    #[test]
    fn good_files_parse() {
        let images = idx(IMAGES_MAGIC, &[2, 28, 28], &[7; 2 * 784]);
        assert_eq!(parse_images(p(), &images).unwrap().len(), 2 * 784);
        let labels = idx(LABELS_MAGIC, &[3], &[0, 9, 4]);
        assert_eq!(parse_labels(p(), &labels).unwrap(), vec![0, 9, 4]);
    }

    #[test]
    fn truncated_files_are_rejected_at_every_length() {
        let images = idx(IMAGES_MAGIC, &[2, 28, 28], &[7; 2 * 784]);
        for len in 0..images.len() {
            let err = parse_images(p(), &images[..len]).unwrap_err();
            assert!(matches!(err, IdxError::Size { .. }), "length {len}: {err}");
            assert!(err.to_string().contains("some/file-idx3-ubyte"), "{err}");
        }
        let labels = idx(LABELS_MAGIC, &[3], &[1, 2, 3]);
        for len in 0..labels.len() {
            assert!(parse_labels(p(), &labels[..len]).is_err());
        }
    }

    #[test]
    fn wrong_magic_is_named() {
        let labels = idx(LABELS_MAGIC, &[3], &[1, 2, 3]);
        let err = parse_images(p(), &labels).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::BadMagic {
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        let images = idx(IMAGES_MAGIC, &[1, 28, 28], &[0; 784]);
        assert!(matches!(
            parse_labels(p(), &images).unwrap_err(),
            IdxError::BadMagic { .. }
        ));
    }

    #[test]
    fn wrong_counts_dims_and_labels_are_rejected() {
        // Header says 3 images, body holds 2.
        let short = idx(IMAGES_MAGIC, &[3, 28, 28], &[0; 2 * 784]);
        assert!(matches!(
            parse_images(p(), &short),
            Err(IdxError::Size { .. })
        ));
        // Trailing garbage.
        let long = idx(LABELS_MAGIC, &[2], &[1, 2, 3]);
        assert!(matches!(
            parse_labels(p(), &long),
            Err(IdxError::Size { .. })
        ));
        // 32 x 32 images.
        let big = idx(IMAGES_MAGIC, &[1, 32, 32], &[0; 1024]);
        assert!(matches!(
            parse_images(p(), &big),
            Err(IdxError::BadDims {
                rows: 32,
                cols: 32,
                ..
            })
        ));
        // Label 10.
        let bad = idx(LABELS_MAGIC, &[3], &[1, 10, 3]);
        assert!(matches!(
            parse_labels(p(), &bad),
            Err(IdxError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            })
        ));
        // Empty split.
        assert!(matches!(
            parse_labels(p(), &idx(LABELS_MAGIC, &[0], &[])),
            Err(IdxError::Empty { .. })
        ));
        // Huge announced dimensions do not allocate or overflow.
        let huge = idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(parse_images(p(), &huge).is_err());
    }

    #[test]
    fn images_and_labels_must_agree() {
        let dir = std::env::temp_dir().join(format!("polyact-idx-count-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (ip, lp) = (dir.join("img"), dir.join("lab"));
        fs::write(&ip, idx(IMAGES_MAGIC, &[2, 28, 28], &[0; 2 * 784])).unwrap();
        fs::write(&lp, idx(LABELS_MAGIC, &[3], &[1, 2, 3])).unwrap();
        let err = load_split(&ip, &lp).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::CountMismatch {
                    n_images: 2,
                    n_labels: 3,
                    ..
                }
            ),
            "{err}"
        );
        // Gzip is detected by content.
        fs::write(&lp, gz(&idx(LABELS_MAGIC, &[2], &[5, 6]))).unwrap();
        let split = load_split(&ip, &lp).unwrap();
        assert_eq!(split.labels, vec![5, 6]);
        // A corrupt gzip stream is an error naming the file.
        fs::write(&lp, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let err = load_split(&ip, &lp).unwrap_err();
        assert!(matches!(err, IdxError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("lab"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A gzip stream that inflates past the limit is refused, and read no further than it.
    #[test]
    fn files_larger_than_the_limit_are_refused() {
        let body = gz(&[0u8; 4096]);
        assert_eq!(
            decompress_within(p(), body.clone(), 4096).unwrap().len(),
            4096
        );
        let err = decompress_within(p(), body, 4095).unwrap_err();
        assert!(
            matches!(err, IdxError::TooLarge { limit: 4095, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("some/file-idx3-ubyte"), "{err}");
        // Raw bytes are not decompressed; their size is checked as the file is read, before
        // it is read whole.
        assert_eq!(decompress_within(p(), vec![1; 10], 4).unwrap(), vec![1; 10]);
        let raw = std::env::temp_dir().join(format!("polyact-idx-raw-{}", std::process::id()));
        fs::write(&raw, [7u8; 4097]).unwrap();
        assert_eq!(read_within(&raw, 4097).unwrap().len(), 4097);
        let err = read_within(&raw, 4096).unwrap_err();
        assert!(
            matches!(err, IdxError::TooLarge { limit: 4096, .. }),
            "{err}"
        );
        fs::remove_file(&raw).unwrap();
    }

    /// The raw file is preferred to the `.gz`; neither is an error naming both.
    #[test]
    fn files_are_found_raw_or_gzip() {
        let dir = std::env::temp_dir().join(format!("polyact-idx-find-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let err = require_file(&dir, "t10k-labels-idx1-ubyte").unwrap_err();
        assert!(matches!(err, IdxError::NotFound { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("t10k-labels-idx1-ubyte") && text.contains(".gz"),
            "{text}"
        );
        let gz_path = dir.join("t10k-labels-idx1-ubyte.gz");
        fs::write(&gz_path, b"x").unwrap();
        assert_eq!(
            require_file(&dir, "t10k-labels-idx1-ubyte").unwrap(),
            gz_path
        );
        let raw = dir.join("t10k-labels-idx1-ubyte");
        fs::write(&raw, b"x").unwrap();
        assert_eq!(find_file(&dir, "t10k-labels-idx1-ubyte"), Some(raw));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_bytes_are_errors_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..2000 {
            let len = rng.random_range(0..64usize);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the time keep a valid magic so the deeper checks run too.
            if round % 2 == 0 && len >= 4 {
                let magic = if round % 4 == 0 {
                    IMAGES_MAGIC
                } else {
                    LABELS_MAGIC
                };
                bytes[..4].copy_from_slice(&magic.to_be_bytes());
            }
            let _ = parse_images(p(), &bytes);
            let _ = parse_labels(p(), &bytes);
            let _ = decompress_if_gz(p(), [&[0x1f, 0x8b][..], &bytes].concat());
        }
        // A random labels file of plausible header is accepted only when every label is a digit.
        let bytes = idx(LABELS_MAGIC, &[64], &[200; 64]);
        assert!(parse_labels(p(), &bytes).is_err());
    }
}

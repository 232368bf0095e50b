//! Reader for the IDX format of the MNIST family (MNIST, Fashion-MNIST, KMNIST, ...), plain or gzip'd.
//!
//! Layout: a 4-byte magic `0x00 0x00 <type> <ndim>` (type 0x08 = unsigned byte, the only one these data
//! sets use), `ndim` big-endian u32 dimensions, then the payload in row-major order.

use super::{Dataset, ImageShape};
use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest decompressed IDX file accepted (the full 60k MNIST training images are 47 MB).
const MAX_IDX_BYTES: u64 = 2 << 30;

/// A parsed IDX file of unsigned bytes.
#[derive(Debug, Clone)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Read and decompress (when it starts with the gzip magic) a whole file, refusing anything larger than
/// `MAX_IDX_BYTES` so a hostile header or archive cannot exhaust memory.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::data(
                    path,
                    format!("corrupt or truncated gzip data ({e}); re-download the file"),
                )
            })?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(Error::data(
                path,
                "decompresses to more than 2 GiB; not an IDX data file",
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse IDX bytes (already decompressed). `path` is only used in error messages.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "file is {} bytes, too short for an IDX header; is it an MNIST-style data file?",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "wrong magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file (expected 0000 08 nn)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(Error::data(
            path,
            format!("IDX header has {ndim} dimensions; expected 1 (labels) or 3 (images)"),
        ));
    }
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(Error::data(path, "truncated IDX header"));
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut count: u64 = 1;
    for d in 0..ndim {
        let o = 4 + 4 * d;
        let v = u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        count = count.saturating_mul(v as u64);
        dims.push(v as usize);
    }
    let payload = (bytes.len() - header_len) as u64;
    if count != payload {
        return Err(Error::data(
            path,
            format!(
                "header promises {count} bytes of data ({dims:?}) but the file holds {payload}; the file is truncated or corrupt"
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}

/// Read an IDX file from disk (plain or .gz).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gz(path)?;
    parse_idx(&bytes, path)
}

/// Parse in-memory (possibly gzip'd) IDX bytes, e.g. the embedded data set.
pub fn parse_idx_maybe_gz(bytes: &[u8], name: &Path) -> Result<IdxArray> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(name, format!("corrupt gzip data ({e})")))?;
        parse_idx(&out, name)
    } else {
        parse_idx(bytes, name)
    }
}

// ---------------------------------------------------------------------------------------------------
// IDX data directories and the embedded subset

const EMBEDDED_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../assets/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const EMBEDDED_TRAIN_LABELS: &[u8] =
    include_bytes!("../../assets/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const EMBEDDED_TEST_IMAGES: &[u8] =
    include_bytes!("../../assets/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const EMBEDDED_TEST_LABELS: &[u8] =
    include_bytes!("../../assets/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

/// The file names an IDX data directory may use for each of the four parts.
pub(crate) fn find_idx_file(dir: &Path, stem: &str, kind: &str) -> Option<PathBuf> {
    let candidates = [
        format!("{stem}-{kind}.gz"),
        format!("{stem}-{kind}"),
        format!(
            "{}.gz",
            format!("{stem}-{kind}").replacen("-idx", ".idx", 1)
        ),
        format!("{stem}-{kind}").replacen("-idx", ".idx", 1),
    ];
    candidates.iter().map(|c| dir.join(c)).find(|p| p.is_file())
}

fn images_from_idx(arr: IdxArray, path: &Path) -> Result<(ImageShape, Vec<u8>)> {
    if arr.dims.len() != 3 {
        return Err(Error::data(
            path,
            format!(
                "expected an image file with 3 dimensions [count, height, width], found {:?}",
                arr.dims
            ),
        ));
    }
    let shape = ImageShape {
        channels: 1,
        height: arr.dims[1],
        width: arr.dims[2],
    };
    if shape.is_empty() {
        return Err(Error::data(path, "images have zero pixels"));
    }
    Ok((shape, arr.data))
}

fn labels_from_idx(arr: IdxArray, path: &Path) -> Result<Vec<u8>> {
    if arr.dims.len() != 1 {
        return Err(Error::data(
            path,
            format!(
                "expected a label file with 1 dimension, found {:?}",
                arr.dims
            ),
        ));
    }
    Ok(arr.data)
}

fn make_dataset(
    images: (ImageShape, Vec<u8>),
    labels: Vec<u8>,
    image_path: &Path,
    label_path: &Path,
) -> Result<Dataset> {
    let (shape, data) = images;
    let count = data.len() / shape.len();
    if count != labels.len() {
        return Err(Error::data(
            label_path,
            format!(
                "holds {} labels but {} holds {} images; the two files must match",
                labels.len(),
                image_path.display(),
                count
            ),
        ));
    }
    if count == 0 {
        return Err(Error::data(image_path, "holds no images"));
    }
    Ok(Dataset {
        shape,
        images: data,
        labels,
    })
}

/// Load an IDX directory holding train-images/train-labels/t10k-images/t10k-labels (plain or .gz).
pub fn load_idx_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "no such directory; pass --data DIR with the four IDX files (train-images-idx3-ubyte[.gz], ...)",
        ));
    }
    let find = |stem: &str, kind: &str| {
        find_idx_file(dir, stem, kind).ok_or_else(|| {
            Error::data(
                dir,
                format!("missing {stem}-{kind}[.gz]; an IDX data directory needs train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (plain or .gz)"),
            )
        })
    };
    let tri = find("train", "images-idx3-ubyte")?;
    let trl = find("train", "labels-idx1-ubyte")?;
    let tei = find("t10k", "images-idx3-ubyte")?;
    let tel = find("t10k", "labels-idx1-ubyte")?;
    let train = make_dataset(
        images_from_idx(read_idx(&tri)?, &tri)?,
        labels_from_idx(read_idx(&trl)?, &trl)?,
        &tri,
        &trl,
    )?;
    let test = make_dataset(
        images_from_idx(read_idx(&tei)?, &tei)?,
        labels_from_idx(read_idx(&tel)?, &tel)?,
        &tei,
        &tel,
    )?;
    Ok((train, test))
}

/// The embedded class-balanced Fashion-MNIST subset (10,000 train + 2,000 test).
pub fn load_embedded() -> Result<(Dataset, Dataset)> {
    let p = |s: &str| PathBuf::from(format!("<embedded>/{s}"));
    let parse = |b: &[u8], s: &str| parse_idx_maybe_gz(b, &p(s));
    let train = make_dataset(
        images_from_idx(
            parse(EMBEDDED_TRAIN_IMAGES, "train-images")?,
            &p("train-images"),
        )?,
        labels_from_idx(
            parse(EMBEDDED_TRAIN_LABELS, "train-labels")?,
            &p("train-labels"),
        )?,
        &p("train-images"),
        &p("train-labels"),
    )?;
    let test = make_dataset(
        images_from_idx(
            parse(EMBEDDED_TEST_IMAGES, "t10k-images")?,
            &p("t10k-images"),
        )?,
        labels_from_idx(
            parse(EMBEDDED_TEST_LABELS, "t10k-labels")?,
            &p("t10k-labels"),
        )?,
        &p("t10k-images"),
        &p("t10k-labels"),
    )?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_images_and_labels() {
        let p = Path::new("x");
        let a = parse_idx(
            &idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
            p,
        )
        .unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
        let l = parse_idx(&idx(&[3], &[0, 9, 4]), p).unwrap();
        assert_eq!(l.dims, vec![3]);
    }

    #[test]
    fn rejects_bad_headers_without_allocating() {
        let p = Path::new("bad.idx");
        let msg = |b: &[u8]| parse_idx(b, p).unwrap_err().to_string();
        assert!(msg(&[]).contains("too short"));
        assert!(msg(&[1, 2, 3, 4, 5]).contains("wrong magic"));
        assert!(msg(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0]).contains("not supported"));
        // A header claiming 4 billion images of 4 billion pixels with no payload.
        assert!(msg(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])).contains("truncated or corrupt"));
        assert!(msg(&idx(&[5], &[1, 2])).contains("truncated or corrupt"));
    }
}

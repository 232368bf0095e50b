//! CIFAR-10 binary format: `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`, each a list of
//! 3,073-byte records (1 label byte, then 1,024 red, 1,024 green, 1,024 blue bytes of a 32x32 image —
//! already CHW). Class names from `batches.meta.txt` when present.

use super::{Dataset, ImageShape};
use crate::error::{Error, Result};
use std::path::Path;

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

/// The standard CIFAR-10 class names, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Whether `dir` looks like a CIFAR-10 binary directory.
pub fn is_cifar_dir(dir: &Path) -> bool {
    dir.join("data_batch_1.bin").is_file() || dir.join("test_batch.bin").is_file()
}

fn read_batches(files: &[std::path::PathBuf]) -> Result<Dataset> {
    let shape = ImageShape {
        channels: 3,
        height: SIDE,
        width: SIDE,
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::data(
                f,
                format!("is {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records; the file is truncated or not CIFAR-10 binary", bytes.len()),
            ));
        }
        for rec in bytes.chunks_exact(RECORD) {
            if rec[0] > 9 {
                return Err(Error::data(
                    f,
                    format!(
                        "label {} is out of range 0..=9; not a CIFAR-10 file",
                        rec[0]
                    ),
                ));
            }
            labels.push(rec[0]);
            images.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        shape,
        images,
        labels,
    })
}

/// Load a CIFAR-10 binary directory: (train, test, class names).
pub fn load_cifar_dir(dir: &Path) -> Result<(Dataset, Dataset, Vec<String>)> {
    let train_files: Vec<_> = (1..=5)
        .map(|i| dir.join(format!("data_batch_{i}.bin")))
        .filter(|p| p.is_file())
        .collect();
    if train_files.is_empty() {
        return Err(Error::data(dir, "no data_batch_1.bin .. data_batch_5.bin; a CIFAR-10 directory needs the training batches and test_batch.bin"));
    }
    let test_file = dir.join("test_batch.bin");
    if !test_file.is_file() {
        return Err(Error::data(
            dir,
            "missing test_batch.bin; a CIFAR-10 directory needs it next to data_batch_*.bin",
        ));
    }
    let train = read_batches(&train_files)?;
    let test = read_batches(&[test_file])?;
    let names = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .ok()
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|v| v.len() == 10)
        .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect());
    Ok((train, test, names))
}

//! Data sets: loading, normalisation and batch assembly.
//!
//! Images are kept as raw bytes (`u8`, NCHW per image) and normalised into a reused `f32` batch buffer
//! only when a batch is assembled: the full Fashion-MNIST training set is 47 MB this way instead of 188 MB.

pub mod augment;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod image_file;
pub mod labels;
mod load;
pub use load::{load, LoadOptions};

pub use idx::{load_embedded, load_idx_dir};

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// Where the system-wide Fashion-MNIST lives when the Debian package `dataset-fashion-mnist` is installed.
pub const SYSTEM_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST training-set pixel statistics (of pixels / 255), used by the reference recipe.
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
pub const FASHION_MNIST_STD: f32 = 0.3530;

/// Class names of Fashion-MNIST, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Per-image shape, NCHW without the batch: `[channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A labelled set of images stored as bytes.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub shape: ImageShape,
    /// `len() * shape.len()` bytes, image after image.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Keep only the first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.shape.len());
        }
    }
}

/// Per-channel affine normalisation applied to pixels / 255: `(p/255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Mean and standard deviation of each channel over a data set (in f64, so large sets stay exact).
    pub fn from_data(ds: &Dataset) -> Self {
        let c = ds.shape.channels;
        let plane = ds.shape.height * ds.shape.width;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in ds.images.chunks_exact(ds.shape.len()) {
            for (ch, px) in img.chunks_exact(plane).enumerate() {
                for &p in px {
                    let v = p as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (ds.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| {
                let m = s / n;
                ((q / n - m * m).max(0.0).sqrt() as f32).max(1e-6)
            })
            .collect();
        Normalization { mean, std }
    }

    /// Lookup table from byte value to normalised float, per channel.
    fn table(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| {
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    *slot = (v as f32 / 255.0 - m) / s;
                }
                t
            })
            .collect()
    }
}

/// Which data set a run uses, for reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataSource {
    /// Short name, e.g. "fashion-mnist" or "fashion-mnist-subset (embedded)".
    pub name: String,
    /// Directory it came from, or "embedded".
    pub location: String,
}

/// A train/test pair (and an optional validation set) with the normalisation that goes with it.
#[derive(Debug, Clone)]
pub struct DataSplit {
    pub train: Dataset,
    /// Held out from the training images by [`DataSplit::split_validation`].
    pub val: Option<Dataset>,
    pub test: Dataset,
    pub normalization: Normalization,
    pub num_classes: usize,
    /// Classes without a training image (allowed only by `--num-classes`).
    pub empty_classes: Vec<usize>,
    pub class_names: Vec<String>,
    pub source: DataSource,
}

/// On-disk formats `--data DIR` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MNIST-family IDX files.
    Idx,
    /// CIFAR-10 binary batches.
    Cifar,
    /// One sub-folder of images per class.
    Folder,
}

/// How to read a `--data` directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DirOptions {
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// Image folders: resize every image to (height, width).
    pub image_size: Option<(usize, usize)>,
    /// Image folders with a single level of class folders: the fraction of each class held out as the
    /// test set (default 0.2).
    pub test_fraction: Option<f64>,
}

/// Which format a directory holds, or an error listing what was expected.
pub fn detect_format(dir: &Path) -> Result<Format> {
    if !dir.is_dir() {
        return Err(Error::data(
            dir,
            "no such directory; pass --data DIR with IDX files, CIFAR-10 batches or class folders",
        ));
    }
    if idx::find_idx_file(dir, "train", "images-idx3-ubyte").is_some() {
        Ok(Format::Idx)
    } else if cifar::is_cifar_dir(dir) {
        Ok(Format::Cifar)
    } else if folder::is_folder_dataset(dir) {
        Ok(Format::Folder)
    } else {
        Err(Error::data(
            dir,
            "unrecognised data directory: expected IDX files (train-images-idx3-ubyte[.gz], ...), CIFAR-10 binary batches (data_batch_1.bin .. test_batch.bin) or one folder of images per class",
        ))
    }
}

/// Read a data directory: (train, test, class names when the format has them).
/// A train/test pair as read, with the format's class names and the files the labels came from (for
/// error messages).
struct Loaded {
    train: Dataset,
    test: Dataset,
    names: Option<Vec<String>>,
    label_files: (PathBuf, PathBuf),
}

/// The two label files of an IDX directory.
fn idx_labels(dir: &Path) -> (PathBuf, PathBuf) {
    let f = |stem| idx::find_idx_file(dir, stem, "labels-idx1-ubyte").unwrap_or_else(|| dir.into());
    (f("train"), f("t10k"))
}

fn load_dir(dir: &Path, opts: &DirOptions) -> Result<Loaded> {
    let format = match opts.format {
        Some(f) => f,
        None => detect_format(dir)?,
    };
    let loaded = |(train, test, names), label_files| Loaded {
        train,
        test,
        names,
        label_files,
    };
    Ok(match format {
        Format::Idx => {
            let (tr, te) = load_idx_dir(dir)?;
            loaded((tr, te, None), idx_labels(dir))
        }
        Format::Cifar => {
            let (tr, te, names) = cifar::load_cifar_dir(dir)?;
            let files = (dir.join("data_batch_*.bin"), dir.join("test_batch.bin"));
            loaded((tr, te, Some(names)), files)
        }
        Format::Folder => {
            let fraction = opts.test_fraction.unwrap_or(0.2);
            let channels = folder_channels(dir)?;
            let (tr, te, names) = folder::load_folder(dir, channels, opts.image_size, fraction)?;
            loaded((tr, te, Some(names)), (dir.into(), dir.into()))
        }
    })
}

/// Grey (1 channel) when the first image found is grey, else RGB (3).
fn folder_channels(dir: &Path) -> Result<usize> {
    let first = walk_first_image(dir)
        .ok_or_else(|| Error::data(dir, "contains no PNG, JPEG or BMP images"))?;
    let img = image::open(&first)
        .map_err(|e| Error::data(&first, format!("cannot decode image ({e})")))?;
    Ok(if img.color().channel_count() <= 2 {
        1
    } else {
        3
    })
}

fn walk_first_image(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in &entries {
        if e.is_file()
            && e.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                ["png", "jpg", "jpeg", "bmp"].contains(&x.to_ascii_lowercase().as_str())
            })
        {
            return Some(e.clone());
        }
    }
    entries
        .iter()
        .filter(|e| e.is_dir())
        .find_map(|d| walk_first_image(d))
}

/// What `--data` asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum DataChoice {
    /// `--data DIR`, format detected.
    Dir(PathBuf),
    /// `--data DIR` with `--format` / `--image-size` / `--val-split`.
    DirWith(PathBuf, DirOptions),
    /// No flag: the system Fashion-MNIST when installed, else the embedded subset.
    Default,
    /// Always the embedded subset.
    Embedded,
}

impl DataSplit {
    /// What this split holds, in one line: where it came from, its sizes, and a 64-bit hash of every
    /// image, label and class name. `--resume` compares it to refuse continuing a run on other data.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for c in bytes.chunks(8) {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            h = (h ^ bytes.len() as u64).wrapping_mul(0x0000_0100_0000_01b3);
        };
        for ds in [Some(&self.train), self.val.as_ref(), Some(&self.test)]
            .into_iter()
            .flatten()
        {
            eat(&ds.images);
            eat(&ds.labels);
        }
        eat(self.class_names.join("\n").as_bytes());
        format!(
            "{}: {} train / {} validation / {} test images, content hash {h:016x}",
            self.source.location,
            self.train.len(),
            self.val.as_ref().map_or(0, Dataset::len),
            self.test.len()
        )
    }

    /// Move the last `fraction` of each class's training images (in data-set order) into a validation
    /// set, for model selection (`--save-best`) and early stopping without touching the test set.
    pub fn split_validation(&mut self, fraction: f64) -> Result<()> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Config(format!(
                "--val-split {fraction}: must be between 0 and 1, e.g. 0.1"
            )));
        }
        let n = self.train.shape.len();
        let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); self.num_classes];
        for (i, &l) in self.train.labels.iter().enumerate() {
            per_class[l as usize].push(i);
        }
        let mut is_val = vec![false; self.train.len()];
        for idx in &per_class {
            let k = ((idx.len() as f64) * fraction).round() as usize;
            for &i in &idx[idx.len() - k.min(idx.len())..] {
                is_val[i] = true;
            }
        }
        let (mut tr, mut va) = (
            Dataset {
                shape: self.train.shape,
                images: Vec::new(),
                labels: Vec::new(),
            },
            Dataset {
                shape: self.train.shape,
                images: Vec::new(),
                labels: Vec::new(),
            },
        );
        for (i, &v) in is_val.iter().enumerate() {
            let dst = if v { &mut va } else { &mut tr };
            dst.images
                .extend_from_slice(&self.train.images[i * n..(i + 1) * n]);
            dst.labels.push(self.train.labels[i]);
        }
        if tr.is_empty() || va.is_empty() {
            return Err(Error::Config(format!(
                "--val-split {fraction} leaves {} training and {} validation images; both must be non-empty",
                tr.len(),
                va.len()
            )));
        }
        self.train = tr;
        self.val = Some(va);
        Ok(())
    }
}

/// Fills normalised `f32` batches from a data set without allocating per batch.
pub struct Batcher {
    table: Vec<[f32; 256]>,
    plane: usize,
}

impl Batcher {
    pub fn new(norm: &Normalization, shape: ImageShape) -> Self {
        assert_eq!(
            norm.mean.len(),
            shape.channels,
            "normalisation has {} channels, images {}",
            norm.mean.len(),
            shape.channels
        );
        Batcher {
            table: norm.table(),
            plane: shape.height * shape.width,
        }
    }

    /// Write the images `indices` of `ds` into `x` (`[indices.len(), C, H, W]`) and labels into `y`.
    pub fn fill(&self, ds: &Dataset, indices: &[usize], x: &mut [f32], y: &mut [u32]) {
        let n = ds.shape.len();
        for (slot, &i) in indices.iter().enumerate() {
            let dst = &mut x[slot * n..(slot + 1) * n];
            for (ch, (d, s)) in dst
                .chunks_exact_mut(self.plane)
                .zip(ds.image(i).chunks_exact(self.plane))
                .enumerate()
            {
                let t = &self.table[ch];
                for (o, &p) in d.iter_mut().zip(s) {
                    *o = t[p as usize];
                }
            }
            y[slot] = ds.labels[i] as u32;
        }
    }

    /// [`fill`](Self::fill) with each image shifted / flipped as `aug` draws from `rng`.
    pub fn fill_augmented(
        &self,
        ds: &Dataset,
        indices: &[usize],
        x: &mut [f32],
        y: &mut [u32],
        aug: &augment::Augment,
        rng: &mut Rng,
    ) {
        let n = ds.shape.len();
        let (h, w) = (ds.shape.height, ds.shape.width);
        let mut plane = vec![0u8; self.plane];
        for (slot, &i) in indices.iter().enumerate() {
            let (dx, dy, flip) = aug.draw(rng);
            let dst = &mut x[slot * n..(slot + 1) * n];
            for (ch, (d, s)) in dst
                .chunks_exact_mut(self.plane)
                .zip(ds.image(i).chunks_exact(self.plane))
                .enumerate()
            {
                augment::transform_plane(s, h, w, dx, dy, flip, &mut plane);
                let t = &self.table[ch];
                for (o, &p) in d.iter_mut().zip(&plane) {
                    *o = t[p as usize];
                }
            }
            y[slot] = ds.labels[i] as u32;
        }
    }
}

/// The order of training examples for one epoch: a fresh shuffle drawn from `rng`.
pub fn epoch_order(len: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    rng.shuffle(&mut order);
    order
}

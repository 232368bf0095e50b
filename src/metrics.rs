//! Run reports (JSON) and atomic file writes.

use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::train::EpochRecord;
use std::io::Write;
use std::path::Path;

/// What `wgtrain train --report FILE.json` writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    pub wgtrain_version: String,
    pub model: String,
    pub arch: String,
    /// "cpu" or "gpu".
    pub device: String,
    /// GPU adapter (with backend and a software flag) or CPU model.
    pub adapter: String,
    pub params: usize,
    pub data: DataSource,
    pub train_images: usize,
    pub test_images: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub lr: f32,
    pub seed: u64,
    pub threads: usize,
    /// Final test accuracy, 0..1.
    pub test_accuracy: f64,
    /// Median over epochs of training images/s (evaluation and start-up excluded).
    pub train_images_per_sec: f64,
    /// Process start to the end of the first training step (device synchronised).
    pub startup_seconds: f64,
    /// Peak resident memory of the process (VmHWM), MiB; null where /proc is unavailable.
    pub peak_rss_mib: Option<f64>,
    pub epochs: Vec<EpochRecord>,
}

/// Peak resident set size of this process in MiB (Linux: VmHWM in /proc/self/status).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Write `values` as a NumPy `.npy` file (format 1.0, little-endian float32, C order) of `shape`,
/// atomically.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "npy shape");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}").into_bytes();
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 and ended by a newline.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - 10 - 1, b' ');
    header.push(b'\n');
    let mut bytes = Vec::with_capacity(total + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    write_atomic(path, &bytes)
}

pub use crate::outputs::write_atomic;

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::data(path, format!("cannot serialise report: {e}")))?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// `--log-dir`: one line per epoch in `metrics.csv` and `metrics.jsonl` (flushed as each epoch ends,
/// so a crashed run keeps its history), and `learning_curves.png` when training ends.
pub struct EpochLog {
    dir: std::path::PathBuf,
    records: Vec<EpochRecord>,
}

const CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_sec,seconds,eval_seconds\n";

impl EpochLog {
    /// Start logging into `dir` (created if needed). A fresh run truncates the files; `append`
    /// (a resumed run) continues them.
    pub fn create(dir: &Path, append: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let csv = dir.join("metrics.csv");
        if !append || !csv.exists() {
            std::fs::write(&csv, CSV_HEADER).map_err(|e| Error::io(&csv, e))?;
            let jsonl = dir.join("metrics.jsonl");
            std::fs::write(&jsonl, "").map_err(|e| Error::io(&jsonl, e))?;
        }
        Ok(EpochLog {
            dir: dir.to_path_buf(),
            records: Vec::new(),
        })
    }

    pub fn append(&mut self, r: &EpochRecord) -> Result<()> {
        let line = |name: &str, text: String| -> Result<()> {
            let path = self.dir.join(name);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| Error::io(&path, e))
        };
        line(
            "metrics.csv",
            format!(
                "{},{},{},{},{},{},{},{}\n",
                r.epoch,
                r.train_loss,
                r.train_accuracy,
                r.test_loss,
                r.test_accuracy,
                r.images_per_sec,
                r.seconds,
                r.eval_seconds
            ),
        )?;
        let json = serde_json::to_string(r).map_err(|e| Error::data(&self.dir, e.to_string()))?;
        line("metrics.jsonl", json + "\n")?;
        self.records.push(r.clone());
        Ok(())
    }

    /// Draw the first convolution's filters (CNNs only) into `filters.png`; returns whether it did.
    pub fn filters(&self, model: &crate::nn::Model, params: &[f32]) -> Result<bool> {
        let Some(conv) = crate::experiments::claims::first_conv(model) else {
            return Ok(false);
        };
        let (shape, weight) = (&conv.shape, &conv.weight);
        if shape.in_c != 1 && shape.in_c != 3 {
            return Ok(false);
        }
        let w = &params[*weight..weight + shape.out_c * shape.k()];
        crate::experiments::plots::filters_png(
            &self.dir.join("filters.png"),
            w,
            shape.out_c,
            shape.in_c,
            shape.kh,
            shape.kw,
            &format!(
                "first-layer filters ({} of {}x{})",
                shape.out_c, shape.kh, shape.kw
            ),
        )?;
        Ok(true)
    }

    /// Draw the learning curves of this run's epochs.
    pub fn finish(&self, title: &str) -> Result<()> {
        use crate::experiments::plots::{line_chart, Chart, Series};
        if self.records.is_empty() {
            return Ok(());
        }
        let pts = |f: fn(&EpochRecord) -> f64| {
            self.records
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * f(r)))
                .collect()
        };
        line_chart(
            &self.dir.join("learning_curves.png"),
            &Chart {
                title,
                x_label: "epoch",
                y_label: "accuracy (%)",
                log_x: false,
                x_ticks: self.records.len().min(12),
                percent: true,
            },
            &[
                Series {
                    name: "test".into(),
                    points: pts(|r| r.test_accuracy),
                    sd: Vec::new(),
                    secondary: false,
                    color: 1,
                },
                Series {
                    name: "train (running)".into(),
                    points: pts(|r| r.train_accuracy),
                    sd: Vec::new(),
                    secondary: true,
                    color: 0,
                },
            ],
        )
    }
}

/// Counts of (true class, predicted class) over a data set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfusionMatrix {
    pub class_names: Vec<String>,
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

/// Per-class precision and recall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    /// Test images of this class.
    pub support: u64,
}

impl ConfusionMatrix {
    pub fn new(class_names: Vec<String>) -> Self {
        let n = class_names.len();
        ConfusionMatrix {
            class_names,
            counts: vec![vec![0; n]; n],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        right as f64 / self.total().max(1) as f64
    }

    /// Precision (of the predictions of a class, how many were right) and recall (of the images of a
    /// class, how many were found); 0 where undefined.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        let n = self.counts.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let predicted: u64 = (0..n).map(|t| self.counts[t][c]).sum();
                let support: u64 = self.counts[c].iter().sum();
                ClassMetrics {
                    class: self.class_names[c].clone(),
                    precision: if predicted > 0 {
                        tp / predicted as f64
                    } else {
                        0.0
                    },
                    recall: if support > 0 {
                        tp / support as f64
                    } else {
                        0.0
                    },
                    support,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_matrix_metrics_hand_computed() {
        let mut m = ConfusionMatrix::new(vec!["a".into(), "b".into()]);
        // truth a: 3 right, 1 called b; truth b: 2 right, 2 called a.
        for (t, p) in [
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 1),
            (1, 0),
            (1, 0),
        ] {
            m.add(t, p);
        }
        assert_eq!(m.accuracy(), 5.0 / 8.0);
        let pc = m.per_class();
        assert!((pc[0].precision - 3.0 / 5.0).abs() < 1e-12 && (pc[0].recall - 0.75).abs() < 1e-12);
        assert!((pc[1].precision - 2.0 / 3.0).abs() < 1e-12 && (pc[1].recall - 0.5).abs() < 1e-12);
        assert_eq!(pc[1].support, 4);
    }
}

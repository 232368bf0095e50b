//! `wgtrain predict`: classify image files with a saved checkpoint.

use crate::checkpoint;
pub use crate::data::image_file::load_image;
use crate::data::{Batcher, Dataset};
use crate::device::Device;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One class with its probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassProbability {
    pub class: usize,
    pub name: String,
    pub probability: f64,
}

/// The top classes for one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    pub top: Vec<ClassProbability>,
}

/// Classify `files` with the checkpoint at `ckpt`, returning the `top_k` classes of each.
pub fn predict(
    device: &Device,
    ckpt: &Path,
    files: &[PathBuf],
    top_k: usize,
) -> Result<Vec<Prediction>> {
    if files.is_empty() {
        return Err(Error::Config(
            "predict: give at least one image file".into(),
        ));
    }
    if top_k == 0 {
        return Err(Error::Config("--top-k must be at least 1".into()));
    }
    let (model, params, meta) = checkpoint::load(ckpt)?;
    let mut images = Vec::with_capacity(files.len() * model.input.len());
    for f in files {
        images.extend(load_image(f, model.input)?);
    }
    let ds = Dataset {
        shape: model.input,
        images,
        labels: vec![0; files.len()],
    };
    let batcher = Batcher::new(&meta.normalization, model.input);
    // All files in one batch where the device holds it, else in the largest batches it does.
    let batch = device.batch_that_fits(&model, 1, ds.len());
    let mut exec = device.inference_executor(&model, &params, batch)?;
    let logits = crate::train::logits(&mut *exec, &ds, &batcher, batch)?;
    let classes = model.num_classes;
    Ok(files
        .iter()
        .zip(logits.chunks_exact(classes))
        .map(|(f, z)| {
            let max = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let exps: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            let mut order: Vec<usize> = (0..classes).collect();
            // Highest probability first; ties by class index, as argmax does elsewhere.
            order.sort_by(|&a, &b| exps[b].total_cmp(&exps[a]).then(a.cmp(&b)));
            let top = order
                .into_iter()
                .take(top_k)
                .map(|c| ClassProbability {
                    class: c,
                    name: meta
                        .class_names
                        .get(c)
                        .cloned()
                        .unwrap_or_else(|| c.to_string()),
                    probability: exps[c] / sum,
                })
                .collect();
            Prediction {
                file: f.clone(),
                top,
            }
        })
        .collect())
}

//! `wgtrain predict`: classify image files with a saved checkpoint.

use crate::checkpoint;
use crate::data::{Batcher, Dataset, ImageShape};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::OptimConfig;
use std::path::{Path, PathBuf};

/// Decode an image file (PNG, JPEG, BMP) into `shape`: converted to grey or RGB to match the channels,
/// resized (triangle filter) to height x width, laid out CHW as bytes.
pub fn load_image(path: &Path, shape: ImageShape) -> Result<Vec<u8>> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| {
            Error::data(
                path,
                format!("cannot decode as an image ({e}); use PNG, JPEG or BMP"),
            )
        })?;
    let (w, h) = (shape.width as u32, shape.height as u32);
    // Resize only when needed, so an image already at the model's size is used exactly as stored.
    let img = if img.width() == w && img.height() == h {
        img
    } else {
        img.resize_exact(w, h, image::imageops::FilterType::Triangle)
    };
    match shape.channels {
        1 => Ok(img.to_luma8().into_raw()),
        3 => {
            let rgb = img.to_rgb8();
            let plane = (w * h) as usize;
            let mut chw = vec![0u8; 3 * plane];
            for (i, px) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    chw[c * plane + i] = px[c];
                }
            }
            Ok(chw)
        }
        c => Err(Error::data(
            path,
            format!("the model takes {c}-channel images; only 1 or 3 are supported"),
        )),
    }
}

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
    let mut x = vec![0f32; ds.len() * model.input.len()];
    let mut y = vec![0u32; ds.len()];
    batcher.fill(&ds, &(0..ds.len()).collect::<Vec<_>>(), &mut x, &mut y);
    let mut exec = device.executor_from(&model, &params, OptimConfig::adam(1e-3), ds.len())?;
    let logits = exec.logits(&x)?;
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

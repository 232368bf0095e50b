//! Image folders: one sub-folder per class holding PNG/JPEG/BMP files, either as `DIR/train/<class>/…`
//! plus `DIR/test/<class>/…`, or as a single level `DIR/<class>/…` that is split into train and test
//! (the last `test_fraction` of each class's files, in name order). Images are converted to the
//! requested channels and size (`--image-size`, default: the first image's size).

use super::{Dataset, ImageShape};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Whether `dir` looks like an image-folder data set (has sub-folders).
pub fn is_folder_dataset(dir: &Path) -> bool {
    subdirs(dir).map(|d| !d.is_empty()).unwrap_or(false)
}

fn decode(files: &[(PathBuf, u8)], shape: ImageShape) -> Result<Dataset> {
    let mut images = Vec::with_capacity(files.len() * shape.len());
    let mut labels = Vec::with_capacity(files.len());
    for (f, label) in files {
        images.extend(super::image_file::load_image(f, shape)?);
        labels.push(*label);
    }
    Ok(Dataset {
        shape,
        images,
        labels,
    })
}

/// Load an image-folder data set: (train, test, class names). `channels` is 1 or 3; `size` forces
/// height x width (else the first image's size is used for all).
pub fn load_folder(
    dir: &Path,
    channels: usize,
    size: Option<(usize, usize)>,
    test_fraction: f64,
) -> Result<(Dataset, Dataset, Vec<String>)> {
    let (train_root, test_root) = (dir.join("train"), dir.join("test"));
    let split_given = train_root.is_dir() && test_root.is_dir();
    let class_dirs = subdirs(if split_given { &train_root } else { dir })?;
    if class_dirs.is_empty() {
        return Err(Error::data(dir, "has no class sub-folders; expected DIR/<class>/*.png or DIR/train/<class>/ and DIR/test/<class>/"));
    }
    if class_dirs.len() > 256 {
        return Err(Error::data(
            dir,
            "has more than 256 class folders; labels are stored as bytes",
        ));
    }
    let names: Vec<String> = class_dirs
        .iter()
        .map(|d| {
            d.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let mut train_files = Vec::new();
    let mut test_files = Vec::new();
    for (label, name) in names.iter().enumerate() {
        if split_given {
            train_files.extend(
                image_files(&train_root.join(name))?
                    .into_iter()
                    .map(|f| (f, label as u8)),
            );
            let test_dir = test_root.join(name);
            if test_dir.is_dir() {
                test_files.extend(
                    image_files(&test_dir)?
                        .into_iter()
                        .map(|f| (f, label as u8)),
                );
            }
        } else {
            let files = image_files(&dir.join(name))?;
            let n_test = ((files.len() as f64) * test_fraction).round() as usize;
            let n_test = n_test.min(files.len().saturating_sub(1));
            let (tr, te) = files.split_at(files.len() - n_test);
            train_files.extend(tr.iter().map(|f| (f.clone(), label as u8)));
            test_files.extend(te.iter().map(|f| (f.clone(), label as u8)));
        }
    }
    if train_files.is_empty() || test_files.is_empty() {
        return Err(Error::data(
            dir,
            format!(
                "found {} training and {} test images (PNG, JPEG or BMP); both must be non-empty",
                train_files.len(),
                test_files.len()
            ),
        ));
    }
    let (height, width) = match size {
        Some(s) => s,
        None => {
            let first = &train_files[0].0;
            let (w, h) = image::image_dimensions(first)
                .map_err(|e| Error::data(first, format!("cannot read image size ({e})")))?;
            (h as usize, w as usize)
        }
    };
    let shape = ImageShape {
        channels,
        height,
        width,
    };
    Ok((
        decode(&train_files, shape)?,
        decode(&test_files, shape)?,
        names,
    ))
}

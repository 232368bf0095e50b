//! Image files (PNG, JPEG, BMP) decoded into a model's input shape: used by image-folder data sets and
//! by `wgtrain predict`.

use super::ImageShape;
use crate::error::{Error, Result};
use std::path::Path;

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

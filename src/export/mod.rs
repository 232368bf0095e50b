//! `wgtrain export`: a trained checkpoint in another framework's terms.
//!
//! One front end ([`Exportable::load`]) reads the checkpoint and walks the model once into standard
//! modules ([`Portable`], via [`describe`]); each format only translates those:
//! - [`pytorch`]: a `model.py` (a plain `torch.nn.Module`, no wgtrain import) and its `state_dict`.
//! - [`onnx`]: one ONNX model (opset 17) for inference, normalisation folded in.

pub mod onnx;
pub mod pytorch;

use crate::checkpoint::{self, CheckpointMeta, Weights};
use crate::error::{Error, Result};
use crate::nn::{describe, Model, ParamTensor, Portable, Shape};
use std::path::Path;

/// A checkpoint ready to export: the model, its weights and metadata, and its standard modules.
pub struct Exportable {
    pub model: Model,
    pub weights: Weights,
    pub meta: CheckpointMeta,
    /// The model's top-level layers as standard modules (the one graph walk).
    pub modules: Vec<Portable>,
    /// The checkpoint's file name, without quotes, backslashes or control characters (it is
    /// written inside string literals).
    pub source: String,
}

impl Exportable {
    /// Read `ckpt`; plain state_dicts carry no normalisation or class names, so only wgtrain
    /// checkpoints can be exported. A layer without a standard form is named in the error.
    pub fn load(ckpt: &Path) -> Result<Self> {
        if !checkpoint::has_wgtrain_metadata(ckpt)? {
            return Err(Error::data(
                ckpt,
                "a plain state_dict has no model, input normalisation or class names to export; \
                 export a checkpoint written by `wgtrain train --save`",
            ));
        }
        let (model, weights, meta) = checkpoint::load(ckpt)?;
        let (modules, _) = describe(&model.layers, Shape::Image(model.input))
            .map_err(|e| Error::data(ckpt, format!("cannot export: {e}")))?;
        let source = ckpt
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| !matches!(c, '"' | '\\') && !c.is_control())
            .collect();
        Ok(Exportable {
            model,
            weights,
            meta,
            modules,
            source,
        })
    }

    /// The parameter or state tensor called `name` (a `state_dict` name) and its values.
    pub fn tensor(&self, name: &str) -> Option<(&ParamTensor, &[f32])> {
        let (m, w) = (&self.model, &self.weights);
        [(&m.params, &w.params), (&m.state, &w.state)]
            .into_iter()
            .find_map(|(tensors, flat)| {
                let t = tensors.iter().find(|t| t.name == name)?;
                Some((t, &flat[t.offset..t.offset + t.len()]))
            })
    }
}

/// Create `dir` (and its parents) for the exported files; `flag` names it in errors.
pub fn prepare_dir(dir: &Path, flag: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {}: exists and is not a directory; give a directory to write into",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

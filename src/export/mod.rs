//! `wgtrain export`: a trained checkpoint in another framework's terms.
//!
//! - [`pytorch`]: a `model.py` (a plain `torch.nn.Module`, no wgtrain import) and its `state_dict`.

pub mod pytorch;

use crate::checkpoint::{self, CheckpointMeta, Weights};
use crate::error::{Error, Result};
use crate::nn::Model;
use std::path::Path;

/// Read the checkpoint to export; plain state_dicts carry no normalisation or class names, so only
/// wgtrain checkpoints can be exported.
pub fn load(ckpt: &Path) -> Result<(Model, Weights, CheckpointMeta)> {
    if !checkpoint::has_wgtrain_metadata(ckpt)? {
        return Err(Error::data(
            ckpt,
            "a plain state_dict has no model, input normalisation or class names to export; \
             export a checkpoint written by `wgtrain train --save`",
        ));
    }
    checkpoint::load(ckpt)
}

/// Create `dir` (and its parents) for the exported files.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Config(format!(
            "--pytorch {}: exists and is not a directory; give a directory to write model.py into",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

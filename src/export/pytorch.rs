//! `wgtrain export --pytorch DIR`: `DIR/model.py`, a plain `torch.nn.Module` for the checkpoint's
//! architecture (no wgtrain import), and `DIR/weights.safetensors`, its `state_dict`, so that
//! `load_state_dict(load_file(...), strict=True)` succeeds and the module classifies as wgtrain does.
//!
//! The front end ([`Exportable`]) gives the standard modules; this file writes each as its PyTorch
//! constructor ([`torch`]) and adds the three small modules PyTorch lacks under wgtrain's names
//! (`Residual`, `GlobalAvgPool`, `FlatLinear`), the input normalisation and the class names.

use super::Exportable;
use crate::checkpoint;
use crate::error::Result;
use crate::metrics::write_atomic;
use crate::nn::Portable;
use std::path::{Path, PathBuf};

/// The file names written into the export directory.
pub const MODEL_PY: &str = "model.py";
pub const WEIGHTS: &str = "weights.safetensors";

/// Write `model.py` and `weights.safetensors` into `dir`; returns their paths.
pub fn export(dir: &Path, ex: &Exportable) -> Result<[PathBuf; 2]> {
    super::prepare_dir(dir, "--pytorch")?;
    let (py, st) = (dir.join(MODEL_PY), dir.join(WEIGHTS));
    checkpoint::save_state_dict(&st, &ex.model, &ex.weights)?;
    write_atomic(&py, module_source(ex).as_bytes())?;
    Ok([py, st])
}

/// The PyTorch constructor of one standard module, as Python source.
pub fn torch(m: &Portable) -> String {
    let py_bool = |b: bool| if b { "True" } else { "False" };
    match m {
        Portable::Conv2d {
            in_c,
            out,
            kh,
            kw,
            stride,
            pad,
            bias,
        } => format!(
            "nn.Conv2d({in_c}, {out}, ({kh}, {kw}), stride={stride}, padding={pad}, bias={})",
            py_bool(*bias)
        ),
        Portable::Linear {
            inp,
            out,
            flatten: false,
        } => format!("nn.Linear({inp}, {out})"),
        Portable::Linear {
            inp,
            out,
            flatten: true,
        } => format!("FlatLinear({inp}, {out})"),
        Portable::MaxPool { k, stride } => format!("nn.MaxPool2d({k}, stride={stride})"),
        Portable::AvgPool { k, stride } => format!("nn.AvgPool2d({k}, stride={stride})"),
        Portable::Relu => "nn.ReLU()".into(),
        Portable::BatchNorm {
            channels,
            image,
            eps,
        } => format!(
            "nn.BatchNorm{}d({channels}, eps={eps:?})",
            if *image { 2 } else { 1 }
        ),
        Portable::GlobalAvgPool => "GlobalAvgPool()".into(),
        Portable::Dropout { p } => format!("nn.Dropout({p:?})"),
        Portable::Flatten => "nn.Flatten()".into(),
        Portable::Residual { body, shortcut } => {
            let shortcut = match shortcut {
                Some(s) => sequential(s),
                None => "nn.Identity()".into(),
            };
            format!("Residual({}, {shortcut})", sequential(body))
        }
    }
}

fn sequential(mods: &[Portable]) -> String {
    let parts: Vec<String> = mods.iter().map(torch).collect();
    format!("nn.Sequential({})", parts.join(", "))
}

fn floats(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", parts.join(", "))
}

/// The text of `model.py`.
pub fn module_source(ex: &Exportable) -> String {
    let (model, meta, source) = (&ex.model, &ex.meta, &ex.source);
    let layers: String = ex
        .modules
        .iter()
        .map(|m| format!("        {},\n", torch(m)))
        .collect();
    let names = serde_json::to_string(&meta.class_names).expect("strings serialise");
    let s = model.input;
    format!(
        r#""""{name} exported by wgtrain {version} from {source}: a plain PyTorch module (no wgtrain needed).

    import model
    net = model.load()                 # weights.safetensors next to this file, in evaluation mode
    x = model.preprocess(images)       # uint8 [N, C, H, W] (or [N, H, W]) -> normalised float32
    classes = net(x).argmax(1)         # indices into CLASS_NAMES

wgtrain architecture: {spec}
"""
import os

import torch
from torch import nn

INPUT_SHAPE = ({c}, {h}, {w})
CLASS_NAMES = {names}
# Per-channel mean and standard deviation of the training images scaled to [0, 1].
MEAN = {mean}
STD = {std}


class Residual(nn.Module):
    """A residual block: body(x) + shortcut(x)."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class GlobalAvgPool(nn.Module):
    """Global average pooling: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class FlatLinear(nn.Linear):
    """nn.Linear on a [N, C, 1, 1] input, flattened first."""

    def forward(self, x):
        return super().forward(x.flatten(1))


def build():
    """The network with freshly initialised weights."""
    return nn.Sequential(
{layers}    )


def preprocess(images):
    """uint8 images [N, C, H, W] (or [N, H, W] when there is one channel) -> the inputs the net expects."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x[:, None]
    x = x.to(torch.float32) / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def load(weights=None):
    """The network with the exported weights (strict: every name and shape must match), in eval mode."""
    from safetensors.torch import load_file

    path = weights or os.path.join(os.path.dirname(os.path.abspath(__file__)), "{weights_file}")
    net = build()
    net.load_state_dict(load_file(path), strict=True)
    return net.eval()
"#,
        name = model.name,
        version = env!("CARGO_PKG_VERSION"),
        spec = model.spec(),
        c = s.channels,
        h = s.height,
        w = s.width,
        mean = floats(&meta.normalization.mean),
        std = floats(&meta.normalization.std),
        weights_file = WEIGHTS,
    )
}

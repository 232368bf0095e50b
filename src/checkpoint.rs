//! Checkpoints in the safetensors format, tensor names and layouts as PyTorch stores the same
//! `nn.Sequential` (`1.weight` `[out, in]`, `1.bias` `[out]`, ...), plus string metadata that lets
//! `eval` rebuild the model without being told which one it is. Written atomically.

use crate::data::{ImageShape, Normalization};
use crate::error::{Error, Result};
use crate::metrics::write_atomic;
use crate::models;
pub use crate::nn::Weights;
use crate::nn::{Model, ParamTensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Everything a checkpoint holds besides the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMeta {
    pub model_name: String,
    /// `--arch` spec of the layers.
    pub arch: String,
    pub input: ImageShape,
    pub num_classes: usize,
    pub normalization: Normalization,
    pub class_names: Vec<String>,
    /// Epochs completed.
    pub epoch: usize,
}

/// One tensor's bytes as stored: f32, or int64 for counters such as `num_batches_tracked`.
fn tensor_bytes(t: &ParamTensor, flat: &[f32]) -> (Dtype, Vec<u8>) {
    let values = &flat[t.offset..t.offset + t.len()];
    if t.int64 {
        let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        (Dtype::I64, bytemuck::cast_slice(&ints).to_vec())
    } else {
        (Dtype::F32, bytemuck::cast_slice(values).to_vec())
    }
}

/// Save the parameters and state of `model` with `meta`, tensors named as PyTorch's `state_dict`.
pub fn save(
    path: &Path,
    model: &Model,
    params: &[f32],
    state: &[f32],
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut info = HashMap::new();
    info.insert("format".to_string(), "wgtrain".to_string());
    info.insert(
        "wgtrain_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    info.insert("model".to_string(), meta.model_name.clone());
    info.insert("arch".to_string(), meta.arch.clone());
    info.insert(
        "input_shape".to_string(),
        format!(
            "{}x{}x{}",
            meta.input.channels, meta.input.height, meta.input.width
        ),
    );
    info.insert("num_classes".to_string(), meta.num_classes.to_string());
    info.insert("norm_mean".to_string(), json(&meta.normalization.mean));
    info.insert("norm_std".to_string(), json(&meta.normalization.std));
    info.insert("class_names".to_string(), json(&meta.class_names));
    info.insert("epoch".to_string(), meta.epoch.to_string());
    write_tensors(path, model, params, state, Some(info))
}

/// Save a plain `state_dict` (no metadata): what `torch.nn.Module.load_state_dict` reads.
pub fn save_state_dict(path: &Path, model: &Model, weights: &Weights) -> Result<()> {
    write_tensors(path, model, &weights.params, &weights.state, None)
}

fn write_tensors(
    path: &Path,
    model: &Model,
    params: &[f32],
    state: &[f32],
    info: Option<HashMap<String, String>>,
) -> Result<()> {
    let tensors: Vec<(&ParamTensor, Dtype, Vec<u8>)> = model
        .params
        .iter()
        .map(|t| (t, params))
        .chain(model.state.iter().map(|t| (t, state)))
        .map(|(t, flat)| {
            let (dtype, bytes) = tensor_bytes(t, flat);
            (t, dtype, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(t, dtype, b)| {
            let v = TensorView::new(*dtype, t.shape.clone(), b).expect("tensor byte length");
            (t.name.clone(), v)
        })
        .collect();
    let data = safetensors::serialize(views, info)
        .map_err(|e| Error::data(path, format!("cannot serialise checkpoint: {e}")))?;
    write_atomic(path, &canonical(data))
}

/// The safetensors crate writes its metadata map in hash order, which differs between processes. Rewrite
/// the header with every object's keys sorted, so that equal contents give equal bytes (two runs with the
/// same seed give files that `cmp` equal). Tensor data and offsets are untouched.
fn canonical(bytes: Vec<u8>) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors writes a JSON header");
    let mut text = String::with_capacity(n);
    write(&header, &mut text);
    let mut head = text.into_bytes();
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + head.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

fn parse_shape(s: &str) -> Option<ImageShape> {
    let v: Vec<usize> = s
        .split('x')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match v[..] {
        [channels, height, width] if channels * height * width > 0 => Some(ImageShape {
            channels,
            height,
            width,
        }),
        _ => None,
    }
}

/// Load a wgtrain checkpoint: the model it describes, its flat parameters and its metadata.
pub fn load(path: &Path) -> Result<(Model, Weights, CheckpointMeta)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::data(path, msg);
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors checkpoint ({e})")))?;
    let info = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        info.get(k).cloned().ok_or_else(|| {
            bad(format!(
                "checkpoint has no `{k}` metadata (not written by wgtrain); give --model or --arch to load plain weights"
            ))
        })
    };
    let arch = get("arch")?;
    let input = parse_shape(&get("input_shape")?)
        .ok_or_else(|| bad("malformed input_shape metadata".into()))?;
    let num_classes: usize = get("num_classes")?
        .parse()
        .map_err(|_| bad("malformed num_classes metadata".into()))?;
    let from_json = |k: &str| -> Result<serde_json::Value> {
        serde_json::from_str(&get(k)?).map_err(|_| bad(format!("malformed {k} metadata")))
    };
    let floats = |k: &str| -> Result<Vec<f32>> {
        serde_json::from_value(from_json(k)?).map_err(|_| bad(format!("malformed {k} metadata")))
    };
    let normalization = Normalization {
        mean: floats("norm_mean")?,
        std: floats("norm_std")?,
    };
    let class_names: Vec<String> = serde_json::from_value(from_json("class_names")?)
        .map_err(|_| bad("malformed class_names metadata".into()))?;
    let model_name = get("model")?;
    let mut model = models::build(None, Some(&arch), input, num_classes)
        .map_err(|e| bad(format!("describes a model wgtrain cannot build: {e}")))?;
    model.name = model_name.clone();
    let weights = read_params(path, &bytes, &model)?;
    let meta = CheckpointMeta {
        model_name,
        arch,
        input,
        num_classes,
        normalization,
        class_names,
        epoch: get("epoch")?.parse().unwrap_or(0),
    };
    Ok((model, weights, meta))
}

/// Whether the safetensors file at `path` carries wgtrain's metadata (else it is a plain `state_dict`,
/// e.g. written by PyTorch's `safetensors.torch.save_file(model.state_dict(), path)`).
pub fn has_wgtrain_metadata(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::data(path, format!("not a safetensors checkpoint ({e})")))?;
    Ok(header
        .metadata()
        .as_ref()
        .is_some_and(|m| m.get("format").map(String::as_str) == Some("wgtrain")))
}

/// Load a plain `state_dict` (PyTorch `nn.Sequential` names and layouts, f32) for `model`.
pub fn load_plain(path: &Path, model: &Model) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_params(path, &bytes, model)
}

/// Read the tensors `model` needs from safetensors bytes into its flat parameter and state vectors,
/// checking names, dtypes and shapes.
pub fn read_params(path: &Path, bytes: &[u8], model: &Model) -> Result<Weights> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::data(path, format!("corrupt safetensors file ({e})")))?;
    let read = |tensors: &[ParamTensor], len: usize| -> Result<Vec<f32>> {
        let mut flat = vec![0f32; len];
        for t in tensors {
            let v = st.tensor(&t.name).map_err(|_| {
                Error::data(
                    path,
                    format!(
                        "has no tensor `{}` that model `{}` needs; it was saved for another architecture",
                        t.name,
                        model.spec()
                    ),
                )
            })?;
            let dtype = if t.int64 { Dtype::I64 } else { Dtype::F32 };
            if v.dtype() != dtype || v.shape() != t.shape.as_slice() {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor `{}` is {:?} {:?}, model `{}` needs {dtype:?} {:?}",
                        t.name,
                        v.dtype(),
                        v.shape(),
                        model.spec(),
                        t.shape
                    ),
                ));
            }
            let dst = &mut flat[t.offset..t.offset + t.len()];
            if t.int64 {
                for (d, c) in dst.iter_mut().zip(v.data().chunks_exact(8)) {
                    *d = i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
                }
            } else {
                for (d, c) in dst.iter_mut().zip(v.data().chunks_exact(4)) {
                    *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
        Ok(flat)
    };
    Ok(Weights {
        params: read(&model.params, model.param_len)?,
        state: read(&model.state, model.state_len)?,
    })
}

/// What `--resume` needs besides the weights: the optimiser state and the recipe that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingState {
    pub optim: crate::nn::OptimConfig,
    pub state: crate::optim::OptimState,
    pub seed: u64,
    pub batch_size: usize,
    /// Epochs completed; must match the weights' checkpoint.
    pub epoch: usize,
    /// The run's settings (`cli::RunArgs` as JSON); absent in files from before they were stored.
    pub run: Option<String>,
    /// What the run trained on ([`crate::data::DataSplit::fingerprint`]), so a resume on other data is
    /// refused.
    pub data: Option<String>,
    /// The best validation accuracy so far and its epoch (early stopping and `--save-best` go on from it).
    pub best_val: Option<(f64, usize)>,
}

/// Where the training state of checkpoint `path` lives: `mlp.safetensors` -> `mlp.optim.safetensors`.
/// A separate file keeps the weights file a plain PyTorch-loadable `state_dict`.
pub fn state_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("optim.safetensors")
}

/// The previous epoch's training state, kept so that a crash between writing the new state and the new
/// weights still leaves a matching pair.
fn previous_state_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("optim.prev.safetensors")
}

/// Write the training state next to checkpoint `path`, before the weights. The state it replaces is
/// first renamed to `NAME.optim.prev.safetensors`, so whichever moment a crash hits, one of the two
/// state files matches the weights file's epoch (`load_training_state` picks it).
pub fn save_training_state(path: &Path, ts: &TrainingState) -> Result<()> {
    use crate::nn::OptimizerKind;
    let sp = state_path(path);
    if sp.exists() {
        let prev = previous_state_path(path);
        std::fs::rename(&sp, &prev).map_err(|e| Error::io(&prev, e))?;
    }
    let m: &[u8] = bytemuck::cast_slice(&ts.state.m);
    let v: &[u8] = bytemuck::cast_slice(&ts.state.v);
    let n = ts.state.m.len();
    let views = vec![
        (
            "m".to_string(),
            TensorView::new(Dtype::F32, vec![n], m).expect("m length"),
        ),
        (
            "v".to_string(),
            TensorView::new(Dtype::F32, vec![n], v).expect("v length"),
        ),
    ];
    let (kind, momentum, beta1, beta2, eps) = match ts.optim.kind {
        OptimizerKind::Adam { beta1, beta2, eps } => ("adam", 0.0, beta1, beta2, eps),
        OptimizerKind::Sgd { momentum } => ("sgd", momentum, 0.0, 0.0, 0.0),
    };
    let mut info = HashMap::new();
    for (k, v) in [
        ("format", "wgtrain-training-state".to_string()),
        ("optimizer", kind.to_string()),
        ("lr", ts.optim.lr.to_string()),
        ("weight_decay", ts.optim.weight_decay.to_string()),
        ("momentum", momentum.to_string()),
        ("beta1", beta1.to_string()),
        ("beta2", beta2.to_string()),
        ("eps", eps.to_string()),
        ("step", ts.state.t.to_string()),
        ("seed", ts.seed.to_string()),
        ("batch_size", ts.batch_size.to_string()),
        ("epoch", ts.epoch.to_string()),
    ] {
        info.insert(k.to_string(), v);
    }
    if let Some(run) = &ts.run {
        info.insert("run".into(), run.clone());
    }
    if let Some(data) = &ts.data {
        info.insert("data".into(), data.clone());
    }
    if let Some((acc, epoch)) = ts.best_val {
        info.insert("best_val_accuracy".into(), acc.to_string());
        info.insert("best_val_epoch".into(), epoch.to_string());
    }
    let data = safetensors::serialize(views, Some(info))
        .map_err(|e| Error::data(&sp, format!("cannot serialise training state: {e}")))?;
    write_atomic(&sp, &canonical(data))
}

/// Read the training state saved next to checkpoint `path` for its `epoch` (the current state file, or
/// the previous one when a crash came between the two writes).
pub fn load_training_state(path: &Path, param_len: usize, epoch: usize) -> Result<TrainingState> {
    match read_training_state(&state_path(path), param_len, epoch) {
        Err(first) => {
            let prev = previous_state_path(path);
            if prev.exists() {
                if let Ok(ts) = read_training_state(&prev, param_len, epoch) {
                    return Ok(ts);
                }
            }
            Err(first)
        }
        ok => ok,
    }
}

fn read_training_state(sp: &Path, param_len: usize, epoch: usize) -> Result<TrainingState> {
    let sp = sp.to_path_buf();
    let bytes = std::fs::read(&sp).map_err(|e| {
        Error::data(
            &sp,
            format!("cannot read the training state that --resume needs next to the checkpoint ({e}); it is written by `train --save`"),
        )
    })?;
    let bad = |msg: String| Error::data(&sp, msg);
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a training-state file ({e})")))?;
    let info = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| -> Result<String> {
        info.get(k)
            .cloned()
            .ok_or_else(|| bad(format!("training state has no `{k}`")))
    };
    fn num<T: std::str::FromStr>(s: String, k: &str, sp: &Path) -> Result<T> {
        s.parse()
            .map_err(|_| Error::data(sp, format!("malformed `{k}` in training state")))
    }
    let saved_epoch: usize = num(get("epoch")?, "epoch", &sp)?;
    if saved_epoch != epoch {
        return Err(bad(format!(
            "training state is from epoch {saved_epoch} but the checkpoint from epoch {epoch} (a crash between the two writes?); resume from a matching pair"
        )));
    }
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("corrupt training state ({e})")))?;
    let read = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| bad(format!("training state has no tensor `{name}`")))?;
        if t.dtype() != Dtype::F32 || t.shape() != [param_len] {
            return Err(bad(format!(
                "tensor `{name}` does not match the model ({param_len} parameters)"
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let lr: f32 = num(get("lr")?, "lr", &sp)?;
    let mut optim = match get("optimizer")?.as_str() {
        "adam" => crate::nn::OptimConfig {
            kind: crate::nn::OptimizerKind::Adam {
                beta1: num(get("beta1")?, "beta1", &sp)?,
                beta2: num(get("beta2")?, "beta2", &sp)?,
                eps: num(get("eps")?, "eps", &sp)?,
            },
            ..crate::nn::OptimConfig::adam(lr)
        },
        "sgd" => crate::nn::OptimConfig::sgd(lr, num(get("momentum")?, "momentum", &sp)?),
        other => return Err(bad(format!("unknown optimizer `{other}`"))),
    };
    optim.weight_decay = num(get("weight_decay")?, "weight_decay", &sp)?;
    Ok(TrainingState {
        optim,
        state: crate::optim::OptimState {
            m: read("m")?,
            v: read("v")?,
            t: num(get("step")?, "step", &sp)?,
        },
        seed: num(get("seed")?, "seed", &sp)?,
        batch_size: num(get("batch_size")?, "batch_size", &sp)?,
        epoch: saved_epoch,
        run: info.get("run").cloned(),
        data: info.get("data").cloned(),
        best_val: match (info.get("best_val_accuracy"), info.get("best_val_epoch")) {
            (Some(a), Some(e)) => Some((
                num(a.clone(), "best_val_accuracy", &sp)?,
                num(e.clone(), "best_val_epoch", &sp)?,
            )),
            _ => None,
        },
    })
}

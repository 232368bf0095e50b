//! `wgtrain export --onnx FILE`: the network in evaluation mode as one ONNX model (opset
//! [`OPSET`], IR version [`IR_VERSION`]), encoded with prost from ONNX's own schema
//! (`src/export/onnx.proto`, compiled by `src/build.rs`).
//!
//! - Input `input`: float32 `[batch, C, H, W]`, pixel values / 255 (in `[0, 1]`); `batch` is
//!   dynamic. The input normalisation is folded in: the first two nodes compute `(x - mean) / std`
//!   with the checkpoint's per-channel statistics (also written to the metadata).
//! - Outputs `logits` `[batch, classes]` and `probabilities` (their softmax).
//! - Each standard module becomes the standard operator: `Conv` (strides, pads), `Gemm`
//!   (`transB = 1`), `MaxPool`, `AveragePool`, `Relu`, `BatchNormalization` (running statistics),
//!   `GlobalAveragePool` + `Flatten`, `Flatten`, `Add`; dropout is the identity and is omitted.
//! - Initializers carry the `state_dict` names (`0.weight`, `4.body.1.running_mean`, ...).
//! - Metadata: `class_names` (JSON), `normalization_mean` / `normalization_std` (JSON), `input`
//!   (how to feed it), `wgtrain_model`, `wgtrain_arch`, `source_checkpoint`.

#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use super::Exportable;
use crate::error::{Error, Result};
use crate::metrics::write_atomic;
use crate::nn::Portable;
use prost::Message;
use proto::attribute_proto::AttributeType;
use proto::tensor_proto::DataType;
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::collections::HashSet;
use std::path::Path;

/// The default-domain operator set the model imports.
pub const OPSET: i64 = 17;
/// ONNX IR version 8 (ONNX 1.13, the release that introduced opset 17).
pub const IR_VERSION: i64 = 8;
/// What the `input` metadata entry says.
pub const INPUT_DOC: &str = "float32 [batch, C, H, W], pixel values / 255 (in [0, 1]); the \
     per-channel normalisation (x - normalization_mean) / normalization_std is folded into the model";

/// Write the ONNX model of `ex` to `path` (atomically); returns its size in bytes.
pub fn export(path: &Path, ex: &Exportable) -> Result<usize> {
    if path.is_dir() {
        return Err(Error::Config(format!(
            "--onnx {}: is a directory; give a file name such as model.onnx",
            path.display()
        )));
    }
    let bytes = model(ex)
        .map_err(|e| Error::data(path, format!("cannot export: {e}")))?
        .encode_to_vec();
    write_atomic(path, &bytes)?;
    Ok(bytes.len())
}

/// The ONNX model of `ex`.
pub fn model(ex: &Exportable) -> std::result::Result<ModelProto, String> {
    let s = ex.model.input;
    let classes = ex.model.num_classes as i64;
    let mut b = Builder::new(ex);
    // (x - mean) / std, per channel.
    let stat = |name: &str, v: &[f32]| tensor(name, &[1, s.channels as i64, 1, 1], v);
    b.inits
        .push(stat("input_mean", &ex.meta.normalization.mean));
    b.inits.push(stat("input_std", &ex.meta.normalization.std));
    let centred = b.node("Sub", "normalize", &["input", "input_mean"], vec![]);
    let x = b.node("Div", "normalize", &[&centred, "input_std"], vec![]);
    let last = b.sequence(&ex.modules, x)?;
    b.nodes
        .push(node("Identity", "logits", &[&last], "logits", vec![]));
    b.nodes.push(node(
        "Softmax",
        "probabilities",
        &["logits"],
        "probabilities",
        vec![int("axis", 1)],
    ));
    let batch = || Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        ..Default::default()
    };
    let dims = [s.channels, s.height, s.width].map(|d| d as i64);
    let graph = GraphProto {
        name: Some(ex.model.name.clone()),
        doc_string: Some(format!(
            "{} [{}] exported by wgtrain {} from {}",
            ex.model.name,
            ex.model.spec(),
            env!("CARGO_PKG_VERSION"),
            ex.source
        )),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("input", batch(), &dims)],
        output: vec![
            value_info("logits", batch(), &[classes]),
            value_info("probabilities", batch(), &[classes]),
        ],
        ..Default::default()
    };
    let meta = [
        ("class_names", json(&ex.meta.class_names)),
        ("normalization_mean", json(&ex.meta.normalization.mean)),
        ("normalization_std", json(&ex.meta.normalization.std)),
        ("input", INPUT_DOC.to_string()),
        ("wgtrain_model", ex.model.name.clone()),
        ("wgtrain_arch", ex.model.spec()),
        ("source_checkpoint", ex.source.clone()),
    ];
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("wgtrain".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        model_version: Some(ex.meta.epoch as i64),
        graph: Some(graph),
        metadata_props: meta
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            })
            .collect(),
        ..Default::default()
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain values serialise")
}

/// Collects nodes and initializers while the modules are walked; names follow the module path.
struct Builder<'a> {
    ex: &'a Exportable,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    path: Vec<String>,
    used: HashSet<String>,
}

impl<'a> Builder<'a> {
    fn new(ex: &'a Exportable) -> Self {
        Builder {
            ex,
            nodes: Vec::new(),
            inits: Vec::new(),
            path: Vec::new(),
            used: HashSet::new(),
        }
    }

    /// A fresh value (and node) name for an `op` of the current module, e.g. `4.body.0/Conv`.
    fn fresh(&mut self, op: &str, hint: &str) -> String {
        let base = match (self.path.is_empty(), hint.is_empty()) {
            (true, _) => format!("{hint}/{op}"),
            (false, true) => format!("{}/{op}", self.path.join(".")),
            (false, false) => format!("{}/{hint}/{op}", self.path.join(".")),
        };
        let mut name = base.clone();
        let mut n = 1;
        while !self.used.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        name
    }

    /// Add an `op` node reading `inputs`; returns its output's name.
    fn node(
        &mut self,
        op: &str,
        hint: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(op, hint);
        self.nodes.push(node(op, &out, inputs, &out, attrs));
        out
    }

    /// The initializer for the current module's tensor `suffix` (`weight`, `running_var`, ...).
    fn init(&mut self, suffix: &str) -> std::result::Result<String, String> {
        let mut parts = self.path.clone();
        parts.push(suffix.into());
        let name = parts.join(".");
        let (t, values) = self
            .ex
            .tensor(&name)
            .ok_or_else(|| format!("the checkpoint has no tensor {name}"))?;
        let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        self.inits.push(tensor(&name, &dims, values));
        Ok(name)
    }

    fn sequence(
        &mut self,
        mods: &[Portable],
        mut x: String,
    ) -> std::result::Result<String, String> {
        for (i, m) in mods.iter().enumerate() {
            self.path.push(i.to_string());
            let y = self.module(m, &x);
            self.path.pop();
            x = y?;
        }
        Ok(x)
    }

    fn scoped(
        &mut self,
        name: &str,
        mods: &[Portable],
        x: &str,
    ) -> std::result::Result<String, String> {
        self.path.push(name.into());
        let y = self.sequence(mods, x.to_string());
        self.path.pop();
        y
    }

    fn module(&mut self, m: &Portable, x: &str) -> std::result::Result<String, String> {
        let pool = |k: usize, stride: usize| {
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[stride, stride]),
            ]
        };
        Ok(match m {
            Portable::Conv2d {
                kh,
                kw,
                stride,
                pad,
                bias,
                ..
            } => {
                let w = self.init("weight")?;
                let mut inputs = vec![x.to_string(), w];
                if *bias {
                    inputs.push(self.init("bias")?);
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let attrs = vec![
                    ints("kernel_shape", &[*kh, *kw]),
                    ints("strides", &[*stride, *stride]),
                    ints("pads", &[*pad; 4]),
                    ints("dilations", &[1, 1]),
                    int("group", 1),
                ];
                self.node("Conv", "", &inputs, attrs)
            }
            Portable::Linear { flatten, .. } => {
                let x = if *flatten {
                    self.node("Flatten", "", &[x], vec![int("axis", 1)])
                } else {
                    x.to_string()
                };
                let (w, b) = (self.init("weight")?, self.init("bias")?);
                self.node("Gemm", "", &[&x, &w, &b], vec![int("transB", 1)])
            }
            Portable::MaxPool { k, stride } => self.node("MaxPool", "", &[x], pool(*k, *stride)),
            Portable::AvgPool { k, stride } => {
                self.node("AveragePool", "", &[x], pool(*k, *stride))
            }
            Portable::Relu => self.node("Relu", "", &[x], vec![]),
            Portable::BatchNorm { eps, .. } => {
                let names = ["weight", "bias", "running_mean", "running_var"];
                let mut inputs = vec![x.to_string()];
                for n in names {
                    inputs.push(self.init(n)?);
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let attrs = vec![float("epsilon", *eps)];
                self.node("BatchNormalization", "", &inputs, attrs)
            }
            Portable::GlobalAvgPool => {
                let pooled = self.node("GlobalAveragePool", "", &[x], vec![]);
                self.node("Flatten", "", &[&pooled], vec![int("axis", 1)])
            }
            Portable::Dropout { .. } => x.to_string(),
            Portable::Flatten => self.node("Flatten", "", &[x], vec![int("axis", 1)]),
            Portable::Residual { body, shortcut } => {
                let y = self.scoped("body", body, x)?;
                let s = match shortcut {
                    Some(mods) => self.scoped("shortcut", mods, x)?,
                    None => x.to_string(),
                };
                self.node("Add", "", &[&y, &s], vec![])
            }
        })
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn value_info(name: &str, batch: Dimension, dims: &[i64]) -> ValueInfoProto {
    let fixed = dims.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d)),
        ..Default::default()
    });
    let shape = TensorShapeProto {
        dim: std::iter::once(batch).chain(fixed).collect(),
    };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        ints: v.iter().map(|&x| x as i64).collect(),
        ..attr(name, AttributeType::Ints)
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attr(name, AttributeType::Int)
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attr(name, AttributeType::Float)
    }
}

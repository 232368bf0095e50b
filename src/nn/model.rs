//! `Model`: a shape-checked sequential model with its flat parameter layout and its fused node plan.
//!
//! `Model::new` walks the layers, checks every shape (errors name the layer), lays all parameters out
//! in one flat `f32` vector (each tensor 4-float aligned, PyTorch names) and lowers the layers to
//! [`Node`]s, fusing a ReLU into the conv or fc before it.

use super::{Layer, Node, ParamTensor};
use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::ops::conv2d::ConvShape;
use crate::ops::pool::{PoolKind, PoolShape};
use crate::rng::Rng;

/// A shape-checked sequential model with its flat parameter layout and fused execution plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Preset name or `custom`.
    pub name: String,
    pub input: ImageShape,
    pub layers: Vec<Layer>,
    pub nodes: Vec<Node>,
    pub params: Vec<ParamTensor>,
    /// Length of the flat parameter vector, padding included.
    pub param_len: usize,
    pub num_classes: usize,
    /// Output shape per example of each layer: `[C, H, W]`, or `[N]` once flat.
    pub layer_outputs: Vec<Vec<usize>>,
}

/// One layer as `wgtrain summary` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSummary {
    /// Index in the Sequential (the prefix of its tensors' names).
    pub index: usize,
    pub layer: String,
    pub output_shape: Vec<usize>,
    pub params: usize,
    /// Forward FLOPs per example (2 per multiply-add).
    pub forward_flops: usize,
}

fn align4(x: usize) -> usize {
    x.div_ceil(4) * 4
}

/// Lay out layer `i`'s weight (of `weight_shape`, first dimension = outputs) and bias `[outputs]` at
/// `offset`, each 4-float aligned; returns their offsets.
fn push_weight_and_bias(
    params: &mut Vec<ParamTensor>,
    offset: &mut usize,
    i: usize,
    weight_shape: Vec<usize>,
) -> (usize, usize) {
    let out = weight_shape[0];
    let weight = *offset;
    *offset = align4(weight + weight_shape.iter().product::<usize>());
    params.push(ParamTensor {
        name: format!("{i}.weight"),
        shape: weight_shape,
        offset: weight,
    });
    let bias = *offset;
    *offset = align4(bias + out);
    params.push(ParamTensor {
        name: format!("{i}.bias"),
        shape: vec![out],
        offset: bias,
    });
    (weight, bias)
}

/// Per-example activation shape while building: either an image `[C,H,W]` or a flat vector.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Image(ImageShape),
    Flat(usize),
}

impl Model {
    /// Check shapes layer by layer and build the plan. Errors name the layer (1-based) and what is wrong.
    pub fn new(
        name: &str,
        input: ImageShape,
        layers: Vec<Layer>,
        num_classes: usize,
    ) -> Result<Model> {
        let mut act = Act::Image(input);
        let mut nodes: Vec<Node> = Vec::new();
        let mut params = Vec::new();
        let mut offset = 0usize;
        let err = |i: usize, l: &Layer, msg: String| {
            Error::Config(format!("layer {} ({}): {msg}", i + 1, l.token()))
        };
        let mut layer_outputs = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            match layer {
                Layer::Flatten => {
                    act = Act::Flat(match act {
                        Act::Image(s) => s.len(),
                        Act::Flat(n) => n,
                    });
                }
                Layer::Linear { out } => {
                    let inp = match act {
                        Act::Flat(n) => n,
                        Act::Image(s) if s.height == 1 && s.width == 1 => s.channels,
                        Act::Image(s) => {
                            return Err(err(
                                i,
                                layer,
                                format!(
                                    "input is a {}x{}x{} image; add `flatten` before a fully connected layer",
                                    s.channels, s.height, s.width
                                ),
                            ))
                        }
                    };
                    if *out == 0 {
                        return Err(err(i, layer, "needs at least one output".into()));
                    }
                    let (weight, bias) =
                        push_weight_and_bias(&mut params, &mut offset, i, vec![*out, inp]);
                    nodes.push(Node::Linear {
                        inp,
                        out: *out,
                        relu: false,
                        weight,
                        bias,
                    });
                    act = Act::Flat(*out);
                }
                Layer::Relu => match nodes.last_mut() {
                    Some(Node::Linear { relu, .. } | Node::Conv2d { relu, .. })
                        if !*relu
                            && matches!(
                                layers[i - 1],
                                Layer::Linear { .. } | Layer::Conv2d { .. }
                            ) =>
                    {
                        *relu = true
                    }
                    _ => {
                        return Err(err(
                            i,
                            layer,
                            "relu is supported directly after a conv or fc layer".into(),
                        ))
                    }
                },
                Layer::Conv2d {
                    out,
                    kh,
                    kw,
                    stride,
                    pad,
                } => {
                    let Act::Image(s) = act else {
                        return Err(err(
                            i,
                            layer,
                            "input is already flat; a convolution needs an image (move flatten after it)".into(),
                        ));
                    };
                    if *out == 0 || *kh == 0 || *kw == 0 || *stride == 0 {
                        return Err(err(
                            i,
                            layer,
                            "channels, kernel and stride must be at least 1".into(),
                        ));
                    }
                    if s.height + 2 * pad < *kh || s.width + 2 * pad < *kw {
                        return Err(err(
                            i,
                            layer,
                            format!(
                                "kernel {kh}x{kw} is larger than its {}x{} input (padding {pad})",
                                s.height, s.width
                            ),
                        ));
                    }
                    let shape = ConvShape {
                        in_c: s.channels,
                        in_h: s.height,
                        in_w: s.width,
                        out_c: *out,
                        kh: *kh,
                        kw: *kw,
                        stride: *stride,
                        pad: *pad,
                    };
                    let (weight, bias) = push_weight_and_bias(
                        &mut params,
                        &mut offset,
                        i,
                        vec![*out, s.channels, *kh, *kw],
                    );
                    nodes.push(Node::Conv2d {
                        shape,
                        relu: false,
                        weight,
                        bias,
                    });
                    act = Act::Image(ImageShape {
                        channels: *out,
                        height: shape.out_h(),
                        width: shape.out_w(),
                    });
                }
                Layer::MaxPool2d { k, stride } | Layer::AvgPool2d { k, stride } => {
                    let Act::Image(s) = act else {
                        return Err(err(
                            i,
                            layer,
                            "input is already flat; pooling needs an image (move flatten after it)"
                                .into(),
                        ));
                    };
                    if *k == 0 || *stride == 0 {
                        return Err(err(i, layer, "window and stride must be at least 1".into()));
                    }
                    if s.height < *k || s.width < *k {
                        return Err(err(
                            i,
                            layer,
                            format!(
                                "window {k}x{k} is larger than its {}x{} input",
                                s.height, s.width
                            ),
                        ));
                    }
                    let kind = if matches!(layer, Layer::MaxPool2d { .. }) {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    };
                    let shape = PoolShape {
                        kind,
                        channels: s.channels,
                        in_h: s.height,
                        in_w: s.width,
                        k: *k,
                        stride: *stride,
                    };
                    nodes.push(Node::Pool { shape });
                    act = Act::Image(ImageShape {
                        channels: s.channels,
                        height: shape.out_h(),
                        width: shape.out_w(),
                    });
                }
            }
            layer_outputs.push(match act {
                Act::Image(s) => vec![s.channels, s.height, s.width],
                Act::Flat(n) => vec![n],
            });
        }
        match (nodes.last(), act) {
            (Some(n), Act::Flat(k)) if !n.relu() && k == num_classes => {}
            (Some(n), Act::Flat(_)) if n.relu() => {
                return Err(Error::Config(
                    "the last layer must output raw class scores (logits) for the softmax loss; remove the final relu".into(),
                ));
            }
            (_, Act::Flat(k)) => {
                return Err(Error::Config(format!(
                    "the last layer outputs {k} values but the data has {num_classes} classes; end with fc{num_classes}"
                )))
            }
            (_, Act::Image(_)) => {
                return Err(Error::Config(format!(
                    "the model must end with flatten and fc{num_classes}"
                )))
            }
        }
        Ok(Model {
            name: name.to_string(),
            input,
            layers,
            nodes,
            params,
            param_len: offset,
            num_classes,
            layer_outputs,
        })
    }

    /// One row per layer: index, token, output shape per example, parameters and forward FLOPs — what
    /// `wgtrain summary` prints.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let mut prev: Vec<usize> = vec![self.input.channels, self.input.height, self.input.width];
        let mut rows = Vec::new();
        for (i, (layer, out)) in self.layers.iter().zip(&self.layer_outputs).enumerate() {
            let params: usize = self
                .params
                .iter()
                .filter(|t| t.name.split('.').next() == Some(&i.to_string()))
                .map(|t| t.len())
                .sum();
            let flops = match layer {
                Layer::Linear { out: o } => 2 * prev.iter().product::<usize>() * o,
                Layer::Conv2d { kh, kw, .. } => {
                    2 * out.iter().product::<usize>() * prev[0] * kh * kw
                }
                _ => 0,
            };
            rows.push(LayerSummary {
                index: i,
                layer: layer.token(),
                output_shape: out.clone(),
                params,
                forward_flops: flops,
            });
            prev = out.clone();
        }
        rows
    }

    /// Number of trainable parameters (padding excluded).
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len()).sum()
    }

    /// Floats per example at the input.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// Forward-pass FLOPs per example (2 per multiply-add).
    pub fn forward_flops(&self) -> usize {
        2 * self.nodes.iter().map(|n| n.forward_macs()).sum::<usize>()
    }

    /// Offset in the flat parameter vector of the last layer's weight: everything from here on is the
    /// classification head (the last fc layer's weight and bias).
    pub fn head_offset(&self) -> usize {
        self.params
            .iter()
            .rev()
            .find(|t| t.name.ends_with(".weight"))
            .map_or(0, |t| t.offset)
    }

    /// A comma-separated spec of the layers, e.g. `flatten,fc256,relu,fc128,relu,fc10`.
    pub fn spec(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.token())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// PyTorch's default init: weights and biases of a layer with fan-in `f` drawn from U(-1/sqrt(f), 1/sqrt(f)).
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::derive(seed, 1);
        let mut flat = vec![0f32; self.param_len];
        for node in &self.nodes {
            let (fan_in, out, weight, bias) = match *node {
                Node::Linear {
                    inp,
                    out,
                    weight,
                    bias,
                    ..
                } => (inp, out, weight, bias),
                Node::Conv2d {
                    shape,
                    weight,
                    bias,
                    ..
                } => (shape.k(), shape.out_c, weight, bias),
                Node::Pool { .. } => continue,
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            for w in &mut flat[weight..weight + out * fan_in] {
                *w = rng.uniform(-bound, bound);
            }
            for b in &mut flat[bias..bias + out] {
                *b = rng.uniform(-bound, bound);
            }
        }
        flat
    }
}

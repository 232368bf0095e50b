//! Layers, the `Model` they form, and the execution plan both devices run.
//!
//! A model is a PyTorch-style `nn.Sequential` of [`Layer`]s. Building it checks every shape and lays all
//! parameters out in ONE flat `f32` vector (each tensor at an offset aligned to 4 floats), so an optimiser
//! step is a single loop on the CPU and a single dispatch on the GPU. The layer list is then lowered to a
//! list of [`Node`]s in which a ReLU that follows a Linear is fused into it; the CPU and GPU executors
//! (`cpu.rs`, `gpu.rs`) walk the same nodes forward and then backward in reverse — no general autodiff.

pub mod cpu;
pub mod gpu;

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::ops::conv2d::ConvShape;
use crate::ops::pool::{PoolKind, PoolShape};
use crate::rng::Rng;

/// One layer of a sequential model, as the user writes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layer {
    /// Flattens `[C, H, W]` to `[C*H*W]`.
    Flatten,
    /// `y = x W^T + b`, weight `[out, in]`, bias `[out]` (PyTorch layout); `x: [batch, in]`.
    Linear { out: usize },
    /// `max(x, 0)`.
    Relu,
    /// 2-D convolution (PyTorch `nn.Conv2d`): weight `[out, in_c, kh, kw]`, bias `[out]`, zero padding.
    Conv2d {
        out: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    },
    /// Max pooling over `k x k` windows with the given stride (PyTorch `nn.MaxPool2d(k, stride)`).
    MaxPool2d { k: usize, stride: usize },
    /// Average pooling over `k x k` windows with the given stride.
    AvgPool2d { k: usize, stride: usize },
}

impl Layer {
    /// Short spec token (used by `--arch` and in reports).
    pub fn token(&self) -> String {
        match self {
            Layer::Flatten => "flatten".into(),
            Layer::Linear { out } => format!("fc{out}"),
            Layer::Relu => "relu".into(),
            Layer::Conv2d {
                out,
                kh,
                kw,
                stride,
                pad,
            } => {
                let mut t = format!("conv{kh}x{kw}x{out}");
                if *pad != 0 {
                    t += &format!("p{pad}");
                }
                if *stride != 1 {
                    t += &format!("s{stride}");
                }
                t
            }
            Layer::MaxPool2d { k, stride } | Layer::AvgPool2d { k, stride } => {
                let name = if matches!(self, Layer::MaxPool2d { .. }) {
                    "maxpool"
                } else {
                    "avgpool"
                };
                if stride == k {
                    format!("{name}{k}")
                } else {
                    format!("{name}{k}s{stride}")
                }
            }
        }
    }
}

/// One named parameter tensor inside the flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    /// PyTorch `state_dict` name, e.g. `1.weight` (index into the Sequential, then the tensor).
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in floats into the flat parameter vector.
    pub offset: usize,
}

impl ParamTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fused, shape-resolved step of the forward pass. Each node reads the previous node's output (the
/// first reads the input batch); flatten is free in NCHW and produces no node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Linear layer, optionally followed by a fused ReLU. Input `[batch, inp]`, output `[batch, out]`.
    Linear {
        inp: usize,
        out: usize,
        relu: bool,
        weight: usize,
        bias: usize,
    },
    /// Convolution, optionally followed by a fused ReLU.
    Conv2d {
        shape: ConvShape,
        relu: bool,
        weight: usize,
        bias: usize,
    },
    /// Max or average pooling.
    Pool { shape: PoolShape },
}

impl Node {
    /// Floats per example this node outputs.
    pub fn out_len(&self) -> usize {
        match self {
            Node::Linear { out, .. } => *out,
            Node::Conv2d { shape, .. } => shape.out_len(),
            Node::Pool { shape } => shape.out_len(),
        }
    }

    /// Whether the output has ReLU applied (so gradients flowing into it must be masked by `output > 0`).
    pub fn relu(&self) -> bool {
        match self {
            Node::Linear { relu, .. } | Node::Conv2d { relu, .. } => *relu,
            Node::Pool { .. } => false,
        }
    }

    /// Multiply-adds per example in the forward pass (pooling counted as zero).
    pub fn forward_macs(&self) -> usize {
        match self {
            Node::Linear { inp, out, .. } => inp * out,
            Node::Conv2d { shape, .. } => shape.macs(),
            Node::Pool { .. } => 0,
        }
    }
}

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

/// Loss sum and correct count accumulated over some examples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub loss_sum: f64,
    pub correct: u64,
    pub count: u64,
}

impl Stats {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
}

/// What a device must do to train and evaluate a model. The training loop uses only this, so it never
/// mentions a device type: `Device::executor` picks the implementation at run time.
pub trait Executor {
    /// One forward + loss + backward + optimiser step on a batch `x: [batch, C, H, W]`, labels `y: [batch]`.
    /// Loss and accuracy accumulate on the device; nothing is read back.
    fn train_step(&mut self, x: &[f32], y: &[u32]) -> Result<()>;
    /// Forward + loss on a batch, accumulating evaluation statistics.
    fn eval_step(&mut self, x: &[f32], y: &[u32]) -> Result<()>;
    /// Return and reset the accumulated training statistics (waits for the device).
    fn take_train_stats(&mut self) -> Result<Stats>;
    /// The training loss summed since the last `take_train_stats`, without resetting it (waits for the
    /// device): the loop's divergence check.
    fn peek_train_loss(&mut self) -> Result<f64>;
    /// Return and reset the accumulated evaluation statistics (waits for the device).
    fn take_eval_stats(&mut self) -> Result<Stats>;
    /// Class scores `[batch, classes]` for a batch.
    fn logits(&mut self, x: &[f32]) -> Result<Vec<f32>>;
    /// The flat parameter vector (see [`Model::params`] for the layout).
    fn params(&mut self) -> Result<Vec<f32>>;
    /// The optimiser's moments and step count (for exact resume).
    fn optimizer_state(&mut self) -> Result<crate::optim::OptimState>;
    /// Restore what [`optimizer_state`](Self::optimizer_state) returned.
    fn set_optimizer_state(&mut self, state: &crate::optim::OptimState) -> Result<()>;
    /// Change the learning rate from the next step on (learning-rate schedules).
    fn set_lr(&mut self, lr: f32);
    /// GPU dispatches one training step records at `batch` (always one submit); `None` on the CPU.
    fn dispatches_per_step(&mut self, _batch: usize) -> Result<Option<usize>> {
        Ok(None)
    }
    /// Block until all submitted work has finished (a no-op on the CPU).
    fn wait(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Optimiser choice and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum OptimizerKind {
    /// SGD with (PyTorch-style, undampened) momentum; 0 disables it.
    Sgd { momentum: f32 },
    /// Adam (Kingma & Ba), PyTorch's formulation.
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

/// Optimiser configuration shared by both devices.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// L2 penalty added to the gradient (PyTorch `weight_decay`).
    pub weight_decay: f32,
    /// Parameters before this offset of the flat vector are frozen (not updated); 0 trains everything.
    /// Used to train only the head of a network (`Model::head_offset`).
    pub frozen_prefix: usize,
}

impl OptimConfig {
    pub fn adam(lr: f32) -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
            weight_decay: 0.0,
            frozen_prefix: 0,
        }
    }

    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimConfig {
            kind: OptimizerKind::Sgd { momentum },
            lr,
            weight_decay: 0.0,
            frozen_prefix: 0,
        }
    }
}

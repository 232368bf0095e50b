//! Layers, the `Model` they form, and the execution plan both devices run.
//!
//! A model is a PyTorch-style `nn.Sequential` of [`Layer`]s. Building it checks every shape and lays all
//! parameters out in ONE flat `f32` vector (each tensor at an offset aligned to 4 floats), so an optimiser
//! step is a single loop on the CPU and a single dispatch on the GPU. The layer list is then lowered to a
//! list of [`Node`]s in which a ReLU that follows a Linear is fused into it; the CPU and GPU executors
//! (`cpu.rs`, `gpu.rs`) walk the same nodes forward and then backward in reverse — no general autodiff.

pub mod cpu;
pub mod gpu;
mod model;

pub use model::{LayerSummary, Model};

use crate::error::Result;
use crate::ops::conv2d::ConvShape;
use crate::ops::pool::PoolShape;

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
    /// How many steps apart the loop should call `peek_train_loss`: 1 where it is free (the CPU), more
    /// where it costs a read-back.
    fn loss_check_interval(&self) -> usize {
        1
    }
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

//! The op interface every executor loops over, and the layer interface the `--arch` spec and the
//! presets are written in.
//!
//! A [`Layer`] is what a user writes (one spec token, e.g. `conv3x3x16p1` or `res(...)`): it knows its
//! token and how to *lower* itself into graph nodes with [`GraphBuilder`]. A lowered node holds an
//! [`Op`]: shapes resolved, parameters and state laid out, and everything a device needs — CPU forward
//! and backward, GPU dispatches, FLOPs, training vs evaluation behaviour. The CPU executor and the GPU
//! plan builder call only this trait, so adding an op touches its own module and one line of the
//! registry (`nn::registry`).
//!
//! Gradient conventions (shared by every op):
//! - `backward` computes the gradients of the op's parameters (overwriting `grads` at their offsets)
//!   and, for each input that needs one, the gradient w.r.t. that input (overwriting its slot; the
//!   executor sums slots when a tensor has several consumers).
//! - When an input tensor is the output of a fused ReLU, the op receives `mask` = that tensor and must
//!   zero its input gradient where `mask <= 0` (the ReLU's backward, folded into the consumer).

use super::graph::{GraphBuilder, TensorId};
use super::portable::Portable;
use crate::data::ImageShape;
use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::error::Result;
use std::any::Any;

/// Per-example shape of a tensor: an image `[C, H, W]` or a flat vector `[N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Image(ImageShape),
    Flat(usize),
}

impl Shape {
    /// Floats per example.
    pub fn len(&self) -> usize {
        match self {
            Shape::Image(s) => s.len(),
            Shape::Flat(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` or `[N]`.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Shape::Image(s) => vec![s.channels, s.height, s.width],
            Shape::Flat(n) => vec![*n],
        }
    }

    /// Channels (images) or features (flat): the axis BatchNorm normalises per.
    pub fn channels(&self) -> usize {
        match self {
            Shape::Image(s) => s.channels,
            Shape::Flat(n) => *n,
        }
    }

    /// Values per channel per example: `H * W` for images, 1 for flat vectors.
    pub fn plane(&self) -> usize {
        match self {
            Shape::Image(s) => s.height * s.width,
            Shape::Flat(_) => 1,
        }
    }

    pub fn image(c: usize, h: usize, w: usize) -> Shape {
        Shape::Image(ImageShape {
            channels: c,
            height: h,
            width: w,
        })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image(s) => write!(f, "{}x{}x{}", s.channels, s.height, s.width),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// How a parameter or state tensor starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// U(-bound, bound), drawn in layout order from the model's init stream (PyTorch's default for
    /// conv and linear layers: bound = 1/sqrt(fan_in), weights and biases alike).
    Uniform(f32),
    /// Every element this value (BatchNorm: weight 1, bias 0, running mean 0, running var 1).
    Const(f32),
}

/// A layer as the user writes it: one spec token, lowered into graph nodes.
pub trait Layer: std::fmt::Debug + Send + Sync {
    /// The spec token; parsing it gives back an equal layer.
    fn token(&self) -> String;
    /// Add this layer's nodes to the graph, reading `x`; returns the output tensor. Errors say what is
    /// wrong in the layer's own terms (the caller names the layer).
    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String>;
    /// This layer as a standard module for an input of `input` (a shape `lower` accepted): what
    /// `wgtrain export` writes for PyTorch and ONNX. Its tensor names and shapes must be the ones
    /// `lower` declares. A layer without one cannot be exported (the error names it).
    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        Err("has no PyTorch or ONNX form".into())
    }
    fn clone_box(&self) -> Box<dyn Layer>;
}

/// The per-example shape `layer` produces from `input` (lowered into a scratch graph).
pub fn output_shape(layer: &dyn Layer, input: Shape) -> std::result::Result<Shape, String> {
    let (mut g, x) = GraphBuilder::new(input);
    let y = layer.lower(&mut g, x)?;
    Ok(g.shape(y))
}

impl Clone for Box<dyn Layer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl PartialEq for Box<dyn Layer> {
    fn eq(&self, other: &Self) -> bool {
        self.token() == other.token()
    }
}

/// The CPU forward's view of one node.
pub struct CpuForward<'a> {
    pub inputs: &'a [&'a [f32]],
    pub output: &'a mut [f32],
    pub params: &'a [f32],
    /// Non-trainable state (running statistics); ops update it in training mode.
    pub state: &'a mut [f32],
    pub scratch: &'a mut (dyn Any + Send),
    pub batch: usize,
    pub train: bool,
    /// Counter-based randomness (dropout): the run's seed and the 1-based optimiser step.
    pub seed: u64,
    pub step: u64,
    /// The executor has already split the batch across the threads (evaluation of a graph of
    /// [`ROW_SPLIT_KINDS`] only): run on the calling thread.
    pub serial: bool,
}

/// Op kinds whose evaluation forward treats each row on its own and touches neither `state` nor
/// `scratch`, so that the CPU executor may split an evaluation batch across its threads once per
/// forward instead of forking inside each op (docs/BENCHMARKS.md, 2026-12-07 fifth sitting).
pub const ROW_SPLIT_KINDS: &[&str] = &["linear", "relu"];

/// One input gradient to compute: the slot to overwrite and the fused-ReLU mask to apply.
pub struct CpuInputGrad<'a> {
    pub dx: &'a mut [f32],
    pub mask: Option<&'a [f32]>,
}

/// The CPU backward's view of one node.
pub struct CpuBackward<'a> {
    pub inputs: &'a [&'a [f32]],
    pub output: &'a [f32],
    /// Gradient w.r.t. the output (already masked if the output is a fused ReLU's).
    pub dy: &'a [f32],
    /// Per input: `None` when no gradient is needed (the data, or a frozen start).
    pub dx: Vec<Option<CpuInputGrad<'a>>>,
    pub params: &'a [f32],
    pub grads: &'a mut [f32],
    pub state: &'a [f32],
    pub scratch: &'a mut (dyn Any + Send),
    pub batch: usize,
    pub seed: u64,
    pub step: u64,
}

/// The GPU forward's view of one node: the buffers its dispatches bind.
pub struct GpuForward<'a> {
    pub inputs: Vec<&'a wgpu::Buffer>,
    pub output: &'a wgpu::Buffer,
    pub params: &'a wgpu::Buffer,
    pub state: &'a wgpu::Buffer,
    /// This node's buffers from [`Op::gpu_aux`].
    pub aux: &'a [wgpu::Buffer],
    /// This node's per-plan resources from [`Op::gpu_plan_resources`].
    pub resources: Option<&'a (dyn Any + Send + Sync)>,
    /// `[seed low, seed high, step, 0]` as u32, rewritten before every training step.
    pub step: &'a wgpu::Buffer,
    pub batch: usize,
    pub train: bool,
}

/// One GPU input gradient: the slot buffer and the fused-ReLU mask buffer.
pub struct GpuInputGrad<'a> {
    pub dx: &'a wgpu::Buffer,
    pub mask: Option<&'a wgpu::Buffer>,
}

/// The GPU backward's view of one node.
pub struct GpuBackward<'a> {
    pub inputs: Vec<&'a wgpu::Buffer>,
    pub output: &'a wgpu::Buffer,
    pub dy: &'a wgpu::Buffer,
    pub dx: Vec<Option<GpuInputGrad<'a>>>,
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub state: &'a wgpu::Buffer,
    pub aux: &'a [wgpu::Buffer],
    pub resources: Option<&'a (dyn Any + Send + Sync)>,
    pub step: &'a wgpu::Buffer,
    pub batch: usize,
}

/// What an op does in evaluation when it is a per-channel affine map (BatchNorm with its running
/// statistics): `y = x * scale[c] + shift[c]`, then a ReLU if one is fused. The evaluation pass folds
/// it into the op that produced `x` (see [`Op::fold_affine`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalAffine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub relu: bool,
    /// Offset of a parameter tensor of `scale.len()` floats that the folded op may take for its bias
    /// when it has none (BatchNorm's own bias, free once BatchNorm is gone).
    pub bias_slot: usize,
}

/// A shape-resolved node: what the executors run.
pub trait Op: std::fmt::Debug + Send + Sync {
    /// Short name for summaries and errors ("conv2d", "batchnorm", ...).
    fn kind(&self) -> &'static str;
    /// Multiply-adds per example in the forward pass (elementwise ops count 0).
    fn forward_macs(&self) -> usize {
        0
    }
    /// Absorb a following ReLU into this op's epilogue (the fusion pass); false when it cannot.
    fn fuse_relu(&mut self) -> bool {
        false
    }
    /// Whether a ReLU is fused into this op's output.
    fn relu(&self) -> bool {
        false
    }
    /// In evaluation, the per-channel affine map this op applies, for the evaluation pass to fold
    /// into its producer; `None` for ops that are not one.
    fn eval_affine(&self, _params: &[f32], _state: &[f32]) -> Option<EvalAffine> {
        None
    }
    /// This op followed by `a` (per output channel) as one op: rewrites its weights and bias in
    /// `params` and returns the folded op (evaluation only; the parameter layout does not change).
    /// `None` when it cannot absorb it.
    fn fold_affine(&self, _params: &mut [f32], _a: &EvalAffine) -> Option<Box<dyn Op>> {
        None
    }
    /// Whether the op is the identity in evaluation (dropout): the evaluation pass removes it.
    fn eval_identity(&self) -> bool {
        false
    }
    /// For callers that need one op's details (the first conv's filters, weight reuse).
    fn as_any(&self) -> &dyn Any;

    /// Working memory for the CPU executor, allocated once for batches up to `max_batch`.
    fn cpu_scratch(&self, _max_batch: usize) -> Box<dyn Any + Send> {
        Box::new(())
    }
    fn cpu_forward(&self, a: CpuForward<'_>);
    fn cpu_backward(&self, a: CpuBackward<'_>);

    /// Device buffers this node keeps across steps (pooling winners, partial sums, batch statistics).
    fn gpu_aux(&self, _ctx: &GpuContext, _max_batch: usize) -> Result<Vec<wgpu::Buffer>> {
        Ok(Vec::new())
    }
    /// Resources one plan (batch size, mode) of this node shares between its forward and backward
    /// dispatches (e.g. packed textures).
    fn gpu_plan_resources(
        &self,
        _ctx: &GpuContext,
        _batch: usize,
    ) -> Result<Option<Box<dyn Any + Send + Sync>>> {
        Ok(None)
    }
    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>);
    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>);
}

/// The working memory an op asked for in [`Op::cpu_scratch`].
pub fn scratch<T: 'static>(s: &mut (dyn Any + Send)) -> &mut T {
    s.downcast_mut::<T>()
        .expect("op scratch of another type (cpu_scratch and the op disagree)")
}

/// The per-plan resources an op made in [`Op::gpu_plan_resources`].
pub fn resources<T: 'static>(r: Option<&(dyn Any + Send + Sync)>) -> Option<&T> {
    r.and_then(|r| r.downcast_ref::<T>())
}

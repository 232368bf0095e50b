//! Graph models: layers, the op interface, the graph they lower to, and the executors that run it.
//!
//! A model is a list of [`Layer`]s (PyTorch-style `nn.Sequential`, with residual blocks as nested
//! modules). [`Model::new`] lowers them into a [`graph::Graph`] — nodes that name their inputs, in
//! topological order, each holding an [`op::Op`] — checks every shape and lays out all trainable
//! parameters in ONE flat `f32` vector (one optimiser step) and all running statistics in another.
//! The fusion pass folds ReLUs into the op before them. The CPU and GPU executors (`cpu.rs`, `gpu.rs`)
//! walk the same nodes forward and then backward in reverse through the `Op` trait — no general
//! autodiff, and no per-op code in the executors.

pub mod cpu;
pub mod gpu;
pub mod graph;
pub mod layers;
mod model;
pub mod op;
pub mod portable;
pub mod profile;
pub mod registry;

pub use crate::optim::{OptimConfig, OptimizerKind};
pub use graph::ParamTensor;
pub use model::{LayerSummary, Model};
pub use op::{output_shape, Layer, Op, Shape};
pub use portable::{describe, Portable};

use crate::device::Device;
use crate::error::{Error, Result};

/// A model's two flat vectors: trainable parameters and non-trainable state (running statistics).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub params: Vec<f32>,
    pub state: Vec<f32>,
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
    /// A training-mode forward pass with no loss, backward or optimiser step: BatchNorm normalises
    /// with the batch's statistics and updates its running statistics (dropout is active, as in
    /// PyTorch's `model.train()`). Parameters do not change. Used by [`crate::calibrate`].
    fn calibrate_step(&mut self, x: &[f32]) -> Result<()>;
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
    /// The flat state vector: running statistics (see [`Model::state`] for the layout).
    fn state(&mut self) -> Result<Vec<f32>>;
    /// Replace the state vector (a loaded checkpoint's running statistics).
    fn set_state(&mut self, state: &[f32]) -> Result<()>;
    /// The optimiser's moments and step count (for exact resume).
    fn optimizer_state(&mut self) -> Result<crate::optim::OptimState>;
    /// Restore what [`optimizer_state`](Self::optimizer_state) returned.
    fn set_optimizer_state(&mut self, state: &crate::optim::OptimState) -> Result<()>;
    /// Change the learning rate from the next step on (learning-rate schedules).
    fn set_lr(&mut self, lr: f32);
    /// Time every op from now on ([`profile`]), or stop; `false` where this executor cannot (the
    /// GPU's, whose work is one submit per step).
    fn set_profiling(&mut self, _on: bool) -> bool {
        false
    }
    /// The op times since profiling started or was last taken (and start again); `None` when not
    /// profiling.
    fn take_profile(&mut self) -> Option<profile::OpProfile> {
        None
    }
    /// GPU dispatches one training step records at `batch` (always one submit); `None` on the CPU.
    fn dispatches_per_step(&mut self, _batch: usize) -> Result<Option<usize>> {
        Ok(None)
    }
    /// Block until all submitted work has finished (a no-op on the CPU).
    fn wait(&mut self) -> Result<()> {
        Ok(())
    }
    /// The largest batch this executor's buffers hold.
    fn max_batch(&self) -> usize;
}

/// Executors are built here rather than in `device`, so that `device` (adapters, plans, kernels)
/// does not depend on the models that run on it.
impl Device {
    /// The largest batch up to `wanted` whose per-example buffers for `model` fit this device's
    /// storage-buffer limit (on the CPU, `wanted`), and never less than `floor`: the training batch the
    /// user asked for, which building the executor reports as an error if it does not fit. Evaluation
    /// batches are an internal choice ([`crate::train::evaluate`] takes them at most this large), so a
    /// large image on a software adapter evaluates in smaller batches instead of failing; each
    /// example's result does not depend on the batch it runs in.
    pub fn batch_that_fits(&self, model: &Model, floor: usize, wanted: usize) -> usize {
        let Device::Gpu(ctx) = self else {
            return wanted.max(floor);
        };
        let graph = &model.graph;
        let per_example = (1..graph.storages())
            .map(|s| graph.storage_len(s))
            .chain([model.input_len()])
            .max()
            .unwrap_or(1)
            .max(1);
        let max = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        // `GpuContext::storage_buffer` rounds every buffer up to 16 bytes.
        let floats = (max / 16 * 4) as usize;
        wanted.min(floats / per_example).max(floor).max(1)
    }

    /// [`executor`](Self::executor) starting from saved weights (parameters and running statistics).
    pub fn executor_from(
        &self,
        model: &Model,
        weights: &Weights,
        optim: OptimConfig,
        max_batch: usize,
    ) -> Result<Box<dyn Executor>> {
        let mut exec = self.executor(model, &weights.params, optim, max_batch)?;
        exec.set_state(&weights.state)?;
        Ok(exec)
    }

    /// An executor for evaluation only (logits, `eval_step`) of `model` with `weights`: it runs the
    /// model's evaluation graph ([`Model::for_inference`]), so it must not train.
    pub fn inference_executor(
        &self,
        model: &Model,
        weights: &Weights,
        max_batch: usize,
    ) -> Result<Box<dyn Executor>> {
        let (m, w) = model.for_inference(weights)?;
        self.executor_from(&m, &w, OptimConfig::adam(1e-3), max_batch)
    }

    /// Build an executor for `model` with parameters `params` (the flat layout of `Model::params`) and
    /// buffers sized for batches of up to `max_batch` examples.
    pub fn executor(
        &self,
        model: &Model,
        params: &[f32],
        optim: OptimConfig,
        max_batch: usize,
    ) -> Result<Box<dyn Executor>> {
        assert_eq!(params.len(), model.param_len, "flat parameter length");
        if max_batch == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        match self {
            Device::Cpu => {
                // An unknown WGTRAIN_CPU_CONV or WGTRAIN_CPU_SIMD is an error here, before the layers read it.
                crate::device::policy::cpu_conv()?;
                crate::device::policy::cpu_simd()?;
                Ok(Box::new(cpu::CpuExecutor::new(
                    model, params, optim, max_batch,
                )))
            }
            Device::Gpu(ctx) => Ok(Box::new(gpu::GpuExecutor::new(
                ctx.clone(),
                model,
                params,
                optim,
                max_batch,
            )?)),
        }
    }
}

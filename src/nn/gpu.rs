//! The GPU executor: all buffers allocated once, one pre-built [`Plan`] per (batch size, mode), and
//! one command encoder + one submit per training step (inputs, forward, loss, backward, optimiser).
//! Loss and accuracy accumulate in a small device buffer that is read back only when asked for.

use super::graph::Graph;
use super::{Executor, Model, OptimConfig, Stats};
use crate::device::gpu::{GpuContext, Plan};
use crate::device::window;
use crate::error::{Error, Result};
use crate::optim::OptimParams;

use std::collections::HashMap;
use std::sync::Arc;

mod plan;

/// What a plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// Forward, loss + gradient, backward, optimiser step; stats in slots 0-1.
    Train,
    /// Forward and loss without gradient; stats in slots 2-3.
    Eval,
    /// Forward only (for predictions).
    Forward,
    /// Training-mode forward only: BatchNorm uses and records batch statistics; no loss, no step.
    Calibrate,
}

const TRAIN_STATS: usize = 0;
const EVAL_STATS: usize = 2;

pub struct GpuExecutor {
    ctx: Arc<GpuContext>,
    model: Model,
    optim: OptimConfig,
    /// Optimiser steps taken.
    t: u64,
    max_batch: usize,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    moment1: wgpu::Buffer,
    moment2: wgpu::Buffer,
    labels: wgpu::Buffer,
    graph: Arc<Graph>,
    /// One buffer per storage (storage 0 is the input batch).
    acts: Vec<wgpu::Buffer>,
    /// One buffer per gradient slot (slot 0, the input's, is a placeholder: never written).
    slots: Vec<wgpu::Buffer>,
    /// Each node's own buffers (`Op::gpu_aux`).
    aux: Vec<Vec<wgpu::Buffer>>,
    /// Non-trainable state (running statistics); a 4-float placeholder when the model has none.
    state: wgpu::Buffer,
    /// `[seed low, seed high, step, 0]` (u32), written before every training step.
    step: wgpu::Buffer,
    /// [train loss sum, train correct, eval loss sum, eval correct]
    stats: wgpu::Buffer,
    /// Host-readable copy target for `stats` (read every few steps by the divergence check).
    stats_staging: wgpu::Buffer,
    optim_uniform: wgpu::Buffer,
    plans: HashMap<(usize, Mode), Plan>,
    /// Examples behind the device-side stats, tracked on the host.
    train_count: u64,
    eval_count: u64,
    /// The previous step's submission: we wait for it after submitting the next, so at most two steps
    /// are queued and the host prepares step t+1 while the device runs step t.
    in_flight: Option<wgpu::SubmissionIndex>,
}

impl GpuExecutor {
    pub fn new(
        ctx: Arc<GpuContext>,
        model: &Model,
        params: &[f32],
        optim: OptimConfig,
        max_batch: usize,
    ) -> Result<Self> {
        use wgpu::BufferUsages as U;
        let n = params.len();
        let buf = |label: &str, len: usize, extra: U| ctx.storage_buffer(label, len, extra);
        // Buffers the conv kernels read, readable by their window variants (see device::window).
        let windowed = |label: &str, len: usize, extra: U| window::buffer(&ctx, label, len, extra);
        let params_buf = windowed("params", n, U::COPY_DST | U::COPY_SRC)?;
        ctx.queue
            .write_buffer(&params_buf, 0, bytemuck::cast_slice(params));
        // Read back by `optimizer_state` (checkpoints keep the moments for an exact resume).
        let zeros = |label: &str| -> Result<wgpu::Buffer> {
            let b = buf(label, n, U::COPY_DST | U::COPY_SRC)?;
            ctx.queue
                .write_buffer(&b, 0, bytemuck::cast_slice(&vec![0f32; n]));
            Ok(b)
        };
        let grads = zeros("grads")?;
        let moment1 = zeros("optimiser m")?;
        let moment2 = zeros("optimiser v")?;
        let graph = model.graph.clone();
        let labels = buf("labels", max_batch, U::COPY_DST)?;
        let mut acts = vec![windowed(
            "input",
            max_batch * model.input_len(),
            U::COPY_DST,
        )?];
        for s in 1..graph.storages() {
            let len = max_batch * graph.storage_len(s);
            acts.push(windowed(&format!("activation {s}"), len, U::COPY_SRC)?);
        }
        let mut slots = Vec::new();
        for (i, &s) in graph.slot_storage.iter().enumerate() {
            let len = if s == 0 {
                1
            } else {
                max_batch * graph.storage_len(s)
            };
            slots.push(windowed(&format!("gradient {i}"), len, U::empty())?);
        }
        let aux = graph
            .nodes
            .iter()
            .map(|n| n.op.gpu_aux(&ctx, max_batch))
            .collect::<Result<Vec<_>>>()?;
        let init_state = model.init_state();
        let state = buf("state", init_state.len().max(4), U::COPY_DST | U::COPY_SRC)?;
        ctx.queue
            .write_buffer(&state, 0, bytemuck::cast_slice(&init_state));
        let step = buf("step", 4, U::COPY_DST)?;
        let stats = buf("stats", 4, U::COPY_DST | U::COPY_SRC)?;
        ctx.queue
            .write_buffer(&stats, 0, bytemuck::cast_slice(&[0f32; 4]));
        let optim_uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("optimiser uniform"),
            size: std::mem::size_of::<OptimParams>() as u64,
            usage: U::UNIFORM | U::COPY_DST,
            mapped_at_creation: false,
        });
        let stats_staging = ctx.staging_buffer(16);
        ctx.check("allocating model buffers")?;
        Ok(GpuExecutor {
            ctx,
            model: model.clone(),
            optim,
            t: 0,
            max_batch,
            params: params_buf,
            grads,
            moment1,
            moment2,
            labels,
            graph,
            acts,
            slots,
            aux,
            state,
            step,
            stats,
            stats_staging,
            optim_uniform,
            plans: HashMap::new(),
            train_count: 0,
            eval_count: 0,
            in_flight: None,
        })
    }

    /// Upload a batch and run the plan for `mode` in one submit.
    fn run(&mut self, x: &[f32], y: Option<&[u32]>, mode: Mode) -> Result<usize> {
        let n = self.model.input_len();
        assert_eq!(
            x.len() % n,
            0,
            "input length {} is not a multiple of {n}",
            x.len()
        );
        let batch = x.len() / n;
        assert!(
            batch >= 1 && batch <= self.max_batch,
            "batch {batch} outside 1..={}",
            self.max_batch
        );
        self.ensure_plan(batch, mode)?;
        let q = &self.ctx.queue;
        q.write_buffer(&self.acts[0], 0, bytemuck::cast_slice(x));
        if let Some(y) = y {
            assert_eq!(y.len(), batch, "labels vs batch");
            q.write_buffer(&self.labels, 0, bytemuck::cast_slice(y));
        }
        if mode == Mode::Train {
            self.t += 1;
            let p = OptimParams::new(&self.optim, self.model.param_len, self.t);
            q.write_buffer(&self.optim_uniform, 0, bytemuck::bytes_of(&p));
            let seed = self.optim.seed;
            let step = [seed as u32, (seed >> 32) as u32, self.t as u32, 0u32];
            q.write_buffer(&self.step, 0, bytemuck::cast_slice(&step));
        }
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("step"),
                timestamp_writes: None,
            });
            self.plans[&(batch, mode)].record(&mut pass);
        }
        let idx = q.submit([enc.finish()]);
        if let Some(prev) = self.in_flight.replace(idx) {
            self.ctx
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| Error::gpu("waiting for a training step", e.to_string()))?;
        }
        self.ctx.check("running a training step")?;
        Ok(batch)
    }

    /// The plan for (batch, mode), built on first use.
    fn ensure_plan(&mut self, batch: usize, mode: Mode) -> Result<&Plan> {
        if !self.plans.contains_key(&(batch, mode)) {
            let plan = self.build_plan(batch, mode)?;
            self.plans.insert((batch, mode), plan);
        }
        Ok(&self.plans[&(batch, mode)])
    }

    /// The 4 stats floats, through the executor's own staging buffer (waits for the device).
    fn read_stats(&mut self, op: &str) -> Result<Vec<f32>> {
        let bytes = self
            .ctx
            .read_buffer_via(&self.stats, 16, &self.stats_staging, op)?;
        self.in_flight = None;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn take_stats(&mut self, slot: usize) -> Result<(f64, u64)> {
        let s = self.read_stats("reading loss and accuracy")?;
        let out = (s[slot] as f64, s[slot + 1].round() as u64);
        self.ctx.queue.write_buffer(
            &self.stats,
            (slot * 4) as u64,
            bytemuck::cast_slice(&[0f32; 2]),
        );
        self.in_flight = None;
        Ok(out)
    }
}

impl Executor for GpuExecutor {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn dispatches_per_step(&mut self, batch: usize) -> Result<Option<usize>> {
        Ok(Some(self.ensure_plan(batch, Mode::Train)?.len()))
    }

    fn train_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let b = self.run(x, Some(y), Mode::Train)?;
        self.train_count += b as u64;
        Ok(())
    }

    fn eval_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let b = self.run(x, Some(y), Mode::Eval)?;
        self.eval_count += b as u64;
        Ok(())
    }

    fn calibrate_step(&mut self, x: &[f32]) -> Result<()> {
        self.run(x, None, Mode::Calibrate)?;
        Ok(())
    }

    fn loss_check_interval(&self) -> usize {
        // One small read-back (and a pipeline drain) every 32 steps.
        32
    }

    fn peek_train_loss(&mut self) -> Result<f64> {
        let bytes = self
            .ctx
            .read_buffer(&self.stats, 16, "reading the training loss")?;
        self.in_flight = None;
        let s: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(s[TRAIN_STATS] as f64)
    }

    fn take_train_stats(&mut self) -> Result<Stats> {
        let (loss_sum, correct) = self.take_stats(TRAIN_STATS)?;
        Ok(Stats {
            loss_sum,
            correct,
            count: std::mem::take(&mut self.train_count),
        })
    }

    fn take_eval_stats(&mut self) -> Result<Stats> {
        let (loss_sum, correct) = self.take_stats(EVAL_STATS)?;
        Ok(Stats {
            loss_sum,
            correct,
            count: std::mem::take(&mut self.eval_count),
        })
    }

    fn logits(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let batch = self.run(x, None, Mode::Forward)?;
        let out = self.graph.storage(self.graph.output());
        let bytes = (batch * self.model.num_classes * 4) as u64;
        let raw = self
            .ctx
            .read_buffer(&self.acts[out], bytes, "reading predictions")?;
        self.in_flight = None;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn wait(&mut self) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("waiting for the device", e.to_string()))?;
        self.in_flight = None;
        self.ctx.check("waiting for the device")
    }

    fn set_lr(&mut self, lr: f32) {
        // The optimiser uniform is rebuilt from `self.optim` before every step.
        self.optim.lr = lr;
    }

    fn optimizer_state(&mut self) -> Result<crate::optim::OptimState> {
        let bytes = (self.model.param_len * 4) as u64;
        let m = self
            .ctx
            .read_buffer(&self.moment1, bytes, "reading optimiser state")?;
        let v = self
            .ctx
            .read_buffer(&self.moment2, bytes, "reading optimiser state")?;
        self.in_flight = None;
        Ok(crate::optim::OptimState {
            m: bytemuck::pod_collect_to_vec(&m),
            v: bytemuck::pod_collect_to_vec(&v),
            t: self.t,
        })
    }

    fn set_optimizer_state(&mut self, state: &crate::optim::OptimState) -> Result<()> {
        assert_eq!(
            state.m.len(),
            self.model.param_len,
            "optimizer state length"
        );
        let q = &self.ctx.queue;
        q.write_buffer(&self.moment1, 0, bytemuck::cast_slice(&state.m));
        q.write_buffer(&self.moment2, 0, bytemuck::cast_slice(&state.v));
        self.t = state.t;
        self.ctx.check("restoring optimiser state")
    }

    fn state(&mut self) -> Result<Vec<f32>> {
        let len = self.model.state_len;
        if len == 0 {
            return Ok(Vec::new());
        }
        let raw =
            self.ctx
                .read_buffer(&self.state, (len * 4) as u64, "reading running statistics")?;
        self.in_flight = None;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn set_state(&mut self, state: &[f32]) -> Result<()> {
        assert_eq!(state.len(), self.model.state_len, "state vector length");
        if !state.is_empty() {
            self.ctx
                .queue
                .write_buffer(&self.state, 0, bytemuck::cast_slice(state));
        }
        self.ctx.check("restoring running statistics")
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let bytes = (self.model.param_len * 4) as u64;
        let raw = self
            .ctx
            .read_buffer(&self.params, bytes, "reading parameters")?;
        self.in_flight = None;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }
}

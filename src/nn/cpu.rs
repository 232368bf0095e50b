//! The CPU executor: walks the graph's nodes with each op's CPU forward, then in reverse with its
//! backward. Buffers (one per storage, one per gradient slot, each op's scratch) are allocated once for
//! the largest batch. A step still allocates small vectors: per node the lists of input slices and
//! gradient slots (a few pointers), and BatchNorm's per-channel statistics — not tensor-sized memory.

use super::graph::{BackwardWork, Graph, TensorId};
use super::op::{CpuBackward, CpuForward, CpuInputGrad, ROW_SPLIT_KINDS};
use super::profile::{OpProfile, Profiler, Slot};
use super::{Executor, Model, OptimConfig, Stats};
use crate::error::Result;
use crate::ops::add::accumulate_cpu;
use crate::ops::softmax_xent::softmax_xent;
use crate::optim::{step_cpu, OptimState};
use std::any::Any;
use std::sync::Arc;

pub struct CpuExecutor {
    model: Model,
    graph: Arc<Graph>,
    /// The backward work of a step with this optimiser's frozen prefix.
    work: Arc<BackwardWork>,
    params: Vec<f32>,
    grads: Vec<f32>,
    state: Vec<f32>,
    optim: OptimConfig,
    ostate: OptimState,
    /// Values of each storage, `[max_batch, len]` (storage 0, the input, is the caller's slice).
    acts: Vec<Vec<f32>>,
    /// Each gradient slot, `[max_batch, len]`.
    slots: Vec<Vec<f32>>,
    scratch: Vec<Box<dyn Any + Send>>,
    max_batch: usize,
    train_stats: Stats,
    eval_stats: Stats,
    /// Every node's kind is in [`ROW_SPLIT_KINDS`]: evaluation may split the batch ([`Self::forward_split`]).
    row_wise: bool,
    /// Per-op timing, while asked for ([`Executor::set_profiling`]).
    profile: Option<Profiler>,
}

/// Rows per thread below which evaluation does not split the batch.
const SPLIT_MIN_ROWS: usize = 16;

impl CpuExecutor {
    pub fn new(model: &Model, params: &[f32], optim: OptimConfig, max_batch: usize) -> Self {
        let graph = model.graph.clone();
        let buffer = |s: usize| {
            if s == 0 {
                Vec::new()
            } else {
                vec![0.0; max_batch * graph.storage_len(s)]
            }
        };
        CpuExecutor {
            acts: (0..graph.storages()).map(buffer).collect(),
            slots: graph.slot_storage.iter().map(|&s| buffer(s)).collect(),
            scratch: graph
                .nodes
                .iter()
                .map(|n| n.op.cpu_scratch(max_batch))
                .collect(),
            work: Arc::new(graph.backward_work(optim.frozen_prefix)),
            model: model.clone(),
            params: params.to_vec(),
            grads: vec![0.0; params.len()],
            state: model.init_state(),
            optim,
            ostate: OptimState::new(params.len()),
            graph,
            max_batch,
            train_stats: Stats::default(),
            eval_stats: Stats::default(),
            row_wise: model
                .graph
                .nodes
                .iter()
                .all(|n| ROW_SPLIT_KINDS.contains(&n.op.kind())),
            profile: None,
        }
    }

    fn batch_of(&self, x: &[f32]) -> usize {
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
        batch
    }

    fn value<'a>(acts: &'a [Vec<f32>], x: &'a [f32], g: &Graph, t: TensorId) -> &'a [f32] {
        match g.storage(t) {
            0 => x,
            s => &acts[s],
        }
    }

    /// The 1-based number of the step being taken (dropout masks derive from it).
    fn step(&self) -> u64 {
        self.ostate.t + 1
    }

    /// Evaluation of a graph of row-wise ops ([`ROW_SPLIT_KINDS`]) in one part of the batch per
    /// thread, each running every node on its own rows on its own thread: one fork per forward
    /// instead of one per product (the mlp's three products at batch 64 are tens of microseconds
    /// each). Each row's values are computed as in [`forward`](Self::forward).
    fn forward_split(&mut self, x: &[f32], batch: usize, parts: usize) {
        let g = self.graph.clone();
        let rows = batch.div_ceil(parts);
        let parts = batch.div_ceil(rows);
        let n_in = self.model.input_len();
        let (seed, step) = (self.optim.seed, self.step());
        // Per part, one slice per storage: its rows of each activation buffer.
        let mut views: Vec<Vec<&mut [f32]>> = (0..parts).map(|_| Vec::new()).collect();
        for (s, buf) in self.acts.iter_mut().enumerate() {
            let len = if s == 0 { 0 } else { g.storage_len(s) };
            let mut chunks = buf[..batch * len].chunks_mut((rows * len).max(1));
            for v in views.iter_mut() {
                v.push(if len == 0 {
                    &mut []
                } else {
                    chunks.next().unwrap_or(&mut [])
                });
            }
        }
        let params = &self.params[..];
        rayon::scope(|sc| {
            for (p, mut bufs) in views.into_iter().enumerate() {
                let g = &g;
                sc.spawn(move |_| {
                    let (lo, hi) = (p * rows, ((p + 1) * rows).min(batch));
                    let xp = &x[lo * n_in..hi * n_in];
                    for node in &g.nodes {
                        let out = g.storage(node.output);
                        let output = std::mem::take(&mut bufs[out]);
                        let inputs: Vec<&[f32]> = node
                            .inputs
                            .iter()
                            .map(|&t| match g.storage(t) {
                                0 => xp,
                                s => &*bufs[s],
                            })
                            .collect();
                        node.op.cpu_forward(CpuForward {
                            inputs: &inputs,
                            output: &mut *output,
                            params,
                            state: &mut [],
                            scratch: &mut (),
                            batch: hi - lo,
                            train: false,
                            seed,
                            step,
                            serial: true,
                        });
                        drop(inputs);
                        bufs[out] = output;
                    }
                });
            }
        });
    }

    fn forward(&mut self, x: &[f32], batch: usize, train: bool) {
        let parts = rayon::current_num_threads().min(batch / SPLIT_MIN_ROWS);
        if !train && self.row_wise && parts >= 2 {
            let t = Profiler::start(&self.profile);
            self.forward_split(x, batch, parts);
            return Profiler::stop(&mut self.profile, t, Slot::SplitForward);
        }
        let step = self.step();
        let g = self.graph.clone();
        for (i, node) in g.nodes.iter().enumerate() {
            let out = g.storage(node.output);
            let mut output = std::mem::take(&mut self.acts[out]);
            let inputs: Vec<&[f32]> = node
                .inputs
                .iter()
                .map(|&t| Self::value(&self.acts, x, &g, t))
                .collect();
            let t = Profiler::start(&self.profile);
            node.op.cpu_forward(CpuForward {
                inputs: &inputs,
                output: &mut output,
                params: &self.params,
                state: &mut self.state,
                scratch: self.scratch[i].as_mut(),
                batch,
                train,
                seed: self.optim.seed,
                step,
                serial: false,
            });
            Profiler::stop(&mut self.profile, t, Slot::Forward(i));
            self.acts[out] = output;
        }
    }

    fn backward(&mut self, x: &[f32], batch: usize) {
        let step = self.step();
        let g = self.graph.clone();
        let work = self.work.clone();
        for (i, node) in g.nodes.iter().enumerate().rev() {
            if !work.node[i] {
                continue;
            }
            let out = g.storage(node.output);
            let n = batch * g.storage_len(out);
            for &extra in &g.extra_slots[out] {
                let src = std::mem::take(&mut self.slots[extra]);
                accumulate_cpu(&mut self.slots[out], &src, n);
                self.slots[extra] = src;
            }
            // Take the input gradients' slots out so they can be written while dy is read.
            let mut taken: Vec<Option<(usize, Vec<f32>)>> = node
                .inputs
                .iter()
                .zip(&g.grad_slot[i])
                .map(|(&t, &slot)| {
                    work.storage[g.storage(t)]
                        .then(|| (slot, std::mem::take(&mut self.slots[slot])))
                })
                .collect();
            let inputs: Vec<&[f32]> = node
                .inputs
                .iter()
                .map(|&t| Self::value(&self.acts, x, &g, t))
                .collect();
            let dx = taken
                .iter_mut()
                .zip(&node.inputs)
                .map(|(slot, &t)| {
                    slot.as_mut().map(|(_, buf)| CpuInputGrad {
                        dx: &mut buf[..],
                        mask: g.relu_storage[g.storage(t)].then(|| &self.acts[g.storage(t)][..]),
                    })
                })
                .collect();
            let t = Profiler::start(&self.profile);
            node.op.cpu_backward(CpuBackward {
                inputs: &inputs,
                output: &self.acts[out],
                dy: &self.slots[out],
                dx,
                params: &self.params,
                grads: &mut self.grads,
                state: &self.state,
                scratch: self.scratch[i].as_mut(),
                batch,
                seed: self.optim.seed,
                step,
            });
            Profiler::stop(&mut self.profile, t, Slot::Backward(i));
            for (slot, buf) in taken.into_iter().flatten() {
                self.slots[slot] = buf;
            }
        }
    }

    fn logits_storage(&self) -> usize {
        self.graph.storage(self.graph.output())
    }
}

impl Executor for CpuExecutor {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn train_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let batch = self.batch_of(x);
        assert_eq!(y.len(), batch, "labels vs batch");
        let step = Profiler::start(&self.profile);
        self.forward(x, batch, true);
        let out = self.logits_storage();
        let t = Profiler::start(&self.profile);
        let s = softmax_xent(
            &self.acts[out],
            y,
            self.model.num_classes,
            Some(&mut self.slots[out]),
        );
        Profiler::stop(&mut self.profile, t, Slot::Loss);
        self.train_stats.loss_sum += s.loss_sum;
        self.train_stats.correct += s.correct;
        self.train_stats.count += s.count;
        self.backward(x, batch);
        let t = Profiler::start(&self.profile);
        step_cpu(&self.optim, &mut self.ostate, &mut self.params, &self.grads);
        Profiler::stop(&mut self.profile, t, Slot::Optimizer);
        Profiler::stop(&mut self.profile, step, Slot::Step);
        Ok(())
    }

    fn eval_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let batch = self.batch_of(x);
        assert_eq!(y.len(), batch, "labels vs batch");
        let step = Profiler::start(&self.profile);
        self.forward(x, batch, false);
        let t = Profiler::start(&self.profile);
        let s = softmax_xent(
            &self.acts[self.logits_storage()],
            y,
            self.model.num_classes,
            None,
        );
        Profiler::stop(&mut self.profile, t, Slot::Loss);
        Profiler::stop(&mut self.profile, step, Slot::Step);
        self.eval_stats.loss_sum += s.loss_sum;
        self.eval_stats.correct += s.correct;
        self.eval_stats.count += s.count;
        Ok(())
    }

    fn calibrate_step(&mut self, x: &[f32]) -> Result<()> {
        let batch = self.batch_of(x);
        self.forward(x, batch, true);
        Ok(())
    }

    fn peek_train_loss(&mut self) -> Result<f64> {
        Ok(self.train_stats.loss_sum)
    }

    fn take_train_stats(&mut self) -> Result<Stats> {
        Ok(std::mem::take(&mut self.train_stats))
    }

    fn take_eval_stats(&mut self) -> Result<Stats> {
        Ok(std::mem::take(&mut self.eval_stats))
    }

    fn logits(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let batch = self.batch_of(x);
        self.forward(x, batch, false);
        Ok(self.acts[self.logits_storage()][..batch * self.model.num_classes].to_vec())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn state(&mut self) -> Result<Vec<f32>> {
        Ok(self.state.clone())
    }

    fn set_state(&mut self, state: &[f32]) -> Result<()> {
        assert_eq!(state.len(), self.state.len(), "state vector length");
        self.state.copy_from_slice(state);
        Ok(())
    }

    fn set_lr(&mut self, lr: f32) {
        self.optim.lr = lr;
    }

    fn set_profiling(&mut self, on: bool) -> bool {
        self.profile = on.then(|| Profiler::new(self.graph.nodes.len()));
        true
    }

    fn take_profile(&mut self) -> Option<OpProfile> {
        let p = self.profile.as_mut()?;
        let report = p.report(&self.graph);
        *p = Profiler::new(self.graph.nodes.len());
        Some(report)
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        Ok(self.ostate.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimState) -> Result<()> {
        assert_eq!(state.m.len(), self.params.len(), "optimizer state length");
        self.ostate = state.clone();
        Ok(())
    }
}

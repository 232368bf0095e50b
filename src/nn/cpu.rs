//! The CPU executor: walks the model's nodes with the CPU ops. Buffers are allocated once for the largest
//! batch; a step allocates nothing.

use super::{Executor, Model, Node, OptimConfig, Stats};
use crate::error::Result;
use crate::ops::conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvWork};
use crate::ops::matmul::{linear_backward_input, linear_backward_weight, linear_forward};
use crate::ops::pool::{pool_backward, pool_forward};
use crate::ops::softmax_xent::softmax_xent;
use crate::optim::{step_cpu, OptimState};

pub struct CpuExecutor {
    model: Model,
    params: Vec<f32>,
    grads: Vec<f32>,
    optim: OptimConfig,
    state: OptimState,
    /// Output of each node, `[max_batch, node.out_len()]`.
    acts: Vec<Vec<f32>>,
    /// Gradient of the loss w.r.t. each node's output, already masked by that node's ReLU.
    dacts: Vec<Vec<f32>>,
    /// Per-node working memory (per-thread im2col buffers and partial sums, pooling winners).
    scratch: Vec<Scratch>,
    max_batch: usize,
    train_stats: Stats,
    eval_stats: Stats,
}

/// Working memory of one node, allocated once (conv: per thread; pooling: for the largest batch).
#[derive(Default)]
struct Scratch {
    conv: Option<ConvWork>,
    /// Max pooling: index of each output's winning input.
    argmax: Vec<u32>,
}

impl Scratch {
    fn for_node(node: &Node, max_batch: usize) -> Self {
        match node {
            Node::Linear { .. } => Scratch::default(),
            Node::Conv2d { shape, .. } => Scratch {
                conv: Some(ConvWork::for_current_pool(shape)),
                argmax: Vec::new(),
            },
            Node::Pool { shape } => Scratch {
                argmax: vec![0; max_batch * shape.out_len()],
                ..Scratch::default()
            },
        }
    }

    fn conv(&mut self) -> &mut ConvWork {
        self.conv.as_mut().expect("conv node without conv scratch")
    }
}

impl CpuExecutor {
    pub fn new(model: &Model, params: &[f32], optim: OptimConfig, max_batch: usize) -> Self {
        let acts: Vec<Vec<f32>> = model
            .nodes
            .iter()
            .map(|n| vec![0.0; max_batch * n.out_len()])
            .collect();
        CpuExecutor {
            model: model.clone(),
            params: params.to_vec(),
            grads: vec![0.0; params.len()],
            optim,
            state: OptimState::new(params.len()),
            dacts: acts.clone(),
            acts,
            scratch: model
                .nodes
                .iter()
                .map(|n| Scratch::for_node(n, max_batch))
                .collect(),
            max_batch,
            train_stats: Stats::default(),
            eval_stats: Stats::default(),
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

    fn forward(&mut self, x: &[f32], batch: usize) {
        for i in 0..self.model.nodes.len() {
            let (before, rest) = self.acts.split_at_mut(i);
            let input: &[f32] = if i == 0 { x } else { &before[i - 1] };
            let scratch = &mut self.scratch[i];
            match self.model.nodes[i] {
                Node::Linear {
                    inp,
                    out,
                    relu,
                    weight,
                    bias,
                } => linear_forward(
                    input,
                    &self.params,
                    weight,
                    bias,
                    &mut rest[0],
                    batch,
                    inp,
                    out,
                    relu,
                ),
                Node::Conv2d {
                    shape,
                    relu,
                    weight,
                    bias,
                } => conv2d_forward(
                    input,
                    &self.params,
                    weight,
                    bias,
                    &mut rest[0],
                    scratch.conv(),
                    batch,
                    &shape,
                    relu,
                ),
                Node::Pool { shape } => {
                    pool_forward(input, &mut rest[0], &mut scratch.argmax, batch, &shape)
                }
            }
        }
    }

    fn backward(&mut self, x: &[f32], batch: usize) {
        for i in (0..self.model.nodes.len()).rev() {
            let input: &[f32] = if i == 0 { x } else { &self.acts[i - 1] };
            let (before, rest) = self.dacts.split_at_mut(i);
            let dy = &rest[0];
            let mask = (i > 0 && self.model.nodes[i - 1].relu()).then(|| &self.acts[i - 1][..]);
            let scratch = &mut self.scratch[i];
            match self.model.nodes[i] {
                Node::Linear {
                    inp,
                    out,
                    weight,
                    bias,
                    ..
                } => {
                    linear_backward_weight(
                        dy,
                        input,
                        &mut self.grads,
                        weight,
                        bias,
                        batch,
                        inp,
                        out,
                    );
                    if i > 0 {
                        linear_backward_input(
                            dy,
                            &self.params,
                            weight,
                            &mut before[i - 1],
                            mask,
                            batch,
                            inp,
                            out,
                        );
                    }
                }
                Node::Conv2d {
                    shape,
                    weight,
                    bias,
                    ..
                } => {
                    conv2d_backward_weight(
                        dy,
                        input,
                        &mut self.grads,
                        weight,
                        bias,
                        scratch.conv(),
                        batch,
                        &shape,
                    );
                    if i > 0 {
                        conv2d_backward_input(
                            dy,
                            &self.params,
                            weight,
                            &mut before[i - 1],
                            mask,
                            scratch.conv(),
                            batch,
                            &shape,
                        );
                    }
                }
                Node::Pool { shape } => {
                    if i > 0 {
                        pool_backward(dy, &scratch.argmax, &mut before[i - 1], mask, batch, &shape);
                    }
                }
            }
        }
    }
}

impl Executor for CpuExecutor {
    fn train_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let batch = self.batch_of(x);
        assert_eq!(y.len(), batch, "labels vs batch");
        self.forward(x, batch);
        let last = self.model.nodes.len() - 1;
        let s = softmax_xent(
            &self.acts[last],
            y,
            self.model.num_classes,
            Some(&mut self.dacts[last]),
        );
        self.train_stats.loss_sum += s.loss_sum;
        self.train_stats.correct += s.correct;
        self.train_stats.count += s.count;
        self.backward(x, batch);
        step_cpu(&self.optim, &mut self.state, &mut self.params, &self.grads);
        Ok(())
    }

    fn eval_step(&mut self, x: &[f32], y: &[u32]) -> Result<()> {
        let batch = self.batch_of(x);
        assert_eq!(y.len(), batch, "labels vs batch");
        self.forward(x, batch);
        let last = self.model.nodes.len() - 1;
        let s = softmax_xent(&self.acts[last], y, self.model.num_classes, None);
        self.eval_stats.loss_sum += s.loss_sum;
        self.eval_stats.correct += s.correct;
        self.eval_stats.count += s.count;
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
        self.forward(x, batch);
        let last = self.model.nodes.len() - 1;
        Ok(self.acts[last][..batch * self.model.num_classes].to_vec())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_lr(&mut self, lr: f32) {
        self.optim.lr = lr;
    }

    fn optimizer_state(&mut self) -> Result<OptimState> {
        Ok(self.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimState) -> Result<()> {
        assert_eq!(state.m.len(), self.params.len(), "optimizer state length");
        self.state = state.clone();
        Ok(())
    }
}

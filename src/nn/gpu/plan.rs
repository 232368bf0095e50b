//! Building a [`GpuExecutor`]'s plans: each node's forward dispatches in order, for training the loss,
//! then each node's backward in reverse (after summing the gradient slots of a tensor read twice) and
//! the optimiser step — recorded once per (batch size, mode) and replayed every step.

use super::{GpuExecutor, Mode, EVAL_STATS, TRAIN_STATS};
use crate::device::gpu::{grid_1d, Plan, PlanBuilder};
use crate::error::Result;
use crate::nn::op::{GpuBackward, GpuForward, GpuInputGrad};
use crate::nn::OptimizerKind;
use crate::ops::add::push_accumulate;
use crate::ops::softmax_xent::push_softmax_xent;
use crate::optim::{ADAM, SGD};

impl GpuExecutor {
    pub(super) fn build_plan(&self, batch: usize, mode: Mode) -> Result<Plan> {
        let mut pb = PlanBuilder::new(&self.ctx);
        let g = &self.graph;
        // Per-plan resources (e.g. the packed textures of linear layers on software adapters) belong to
        // this plan: its bind groups keep them alive.
        let resources = g
            .nodes
            .iter()
            .map(|n| n.op.gpu_plan_resources(&self.ctx, batch))
            .collect::<Result<Vec<_>>>()?;
        let train = mode == Mode::Train;
        let train_forward = train || mode == Mode::Calibrate;
        for (i, node) in g.nodes.iter().enumerate() {
            node.op.gpu_forward(
                &mut pb,
                GpuForward {
                    inputs: node
                        .inputs
                        .iter()
                        .map(|&t| &self.acts[g.storage(t)])
                        .collect(),
                    output: &self.acts[g.storage(node.output)],
                    params: &self.params,
                    state: &self.state,
                    aux: &self.aux[i],
                    resources: resources[i].as_deref(),
                    step: &self.step,
                    batch,
                    train: train_forward,
                },
            );
        }
        let out = g.storage(g.output());
        if matches!(mode, Mode::Train | Mode::Eval) {
            push_softmax_xent(
                &mut pb,
                &self.acts[out],
                &self.labels,
                &self.slots[out],
                &self.stats,
                if train { TRAIN_STATS } else { EVAL_STATS },
                batch,
                self.model.num_classes,
                train,
            );
        }
        if train {
            let work = g.backward_work(self.optim.frozen_prefix);
            for (i, node) in g.nodes.iter().enumerate().rev() {
                if !work.node[i] {
                    continue;
                }
                let out = g.storage(node.output);
                let n = batch * g.storage_len(out);
                for &extra in &g.extra_slots[out] {
                    push_accumulate(&mut pb, &self.slots[out], &self.slots[extra], n);
                }
                let dx = node
                    .inputs
                    .iter()
                    .zip(&g.grad_slot[i])
                    .map(|(&t, &slot)| {
                        let s = g.storage(t);
                        work.storage[s].then(|| GpuInputGrad {
                            dx: &self.slots[slot],
                            mask: g.relu_storage[s].then(|| &self.acts[s]),
                        })
                    })
                    .collect();
                node.op.gpu_backward(
                    &mut pb,
                    GpuBackward {
                        inputs: node
                            .inputs
                            .iter()
                            .map(|&t| &self.acts[g.storage(t)])
                            .collect(),
                        output: &self.acts[out],
                        dy: &self.slots[out],
                        dx,
                        params: &self.params,
                        grads: &self.grads,
                        state: &self.state,
                        aux: &self.aux[i],
                        resources: resources[i].as_deref(),
                        step: &self.step,
                        batch,
                    },
                );
            }
            let n = self.model.param_len - self.optim.frozen_prefix.min(self.model.param_len);
            let groups = grid_1d(
                n.div_ceil(256 * crate::optim::PER_INVOCATION) as u32,
                self.ctx.limits.max_compute_workgroups_per_dimension,
            );
            match self.optim.kind {
                OptimizerKind::Adam { .. } => pb.push_with_uniform_buffer(
                    &ADAM,
                    &self.optim_uniform,
                    &[&self.params, &self.grads, &self.moment1, &self.moment2],
                    groups,
                ),
                OptimizerKind::Sgd { .. } => pb.push_with_uniform_buffer(
                    &SGD,
                    &self.optim_uniform,
                    &[&self.params, &self.grads, &self.moment1],
                    groups,
                ),
            }
        }
        pb.finish()
    }
}

//! Building a [`GpuExecutor`]'s plans: the dispatches of one forward pass, and for training the loss,
//! the backward pass layer by layer (fused ReLU masks, skipped input gradient of the first layer) and
//! the optimiser step, recorded once per (batch size, mode) and replayed every step.

use super::{GpuExecutor, Mode, EVAL_STATS, TRAIN_STATS};
use crate::device::gpu::{grid_1d, Plan, PlanBuilder};
use crate::error::Result;
use crate::nn::{Node, OptimizerKind};
use crate::ops::conv2d::{
    push_conv2d_backward_input, push_conv2d_backward_weight, push_conv2d_forward,
};
use crate::ops::matmul::{
    push_linear_backward_input, push_linear_backward_weight, push_linear_forward,
};
use crate::ops::matmul_tex::{
    self, push_linear_backward_tex, push_linear_forward_tex, LinearTextures,
};
use crate::ops::pool::{push_pool_backward, push_pool_forward};
use crate::ops::softmax_xent::push_softmax_xent;
use crate::optim::{ADAM, SGD};

impl GpuExecutor {
    pub(super) fn build_plan(&self, batch: usize, mode: Mode) -> Result<Plan> {
        let mut pb = PlanBuilder::new(&self.ctx);
        let nodes = &self.model.nodes;
        // On software adapters the linear layers read packed textures (see ops::matmul_tex). They belong
        // to this plan: its bind groups keep them alive.
        let textures = nodes
            .iter()
            .map(|node| match *node {
                Node::Linear { inp, out, .. } if matmul_tex::preferred(&self.ctx) => {
                    LinearTextures::new(&self.ctx, batch, inp, out)
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        for (i, node) in nodes.iter().enumerate() {
            let input = if i == 0 {
                &self.input
            } else {
                &self.acts[i - 1]
            };
            match (node, textures[i].as_ref()) {
                (
                    &Node::Linear {
                        inp,
                        out,
                        relu,
                        weight,
                        bias,
                    },
                    Some(tex),
                ) => push_linear_forward_tex(
                    &mut pb,
                    tex,
                    input,
                    &self.params,
                    weight,
                    bias,
                    &self.acts[i],
                    batch,
                    inp,
                    out,
                    relu,
                ),
                (
                    &Node::Linear {
                        inp,
                        out,
                        relu,
                        weight,
                        bias,
                    },
                    None,
                ) => push_linear_forward(
                    &mut pb,
                    input,
                    &self.params,
                    weight,
                    bias,
                    &self.acts[i],
                    batch,
                    inp,
                    out,
                    relu,
                ),
                (
                    &Node::Conv2d {
                        shape,
                        relu,
                        weight,
                        bias,
                    },
                    _,
                ) => push_conv2d_forward(
                    &mut pb,
                    input,
                    &self.params,
                    weight,
                    bias,
                    &self.acts[i],
                    batch,
                    &shape,
                    relu,
                ),
                (&Node::Pool { shape }, _) => push_pool_forward(
                    &mut pb,
                    input,
                    &self.argmax[i],
                    &self.acts[i],
                    batch,
                    &shape,
                ),
            }
        }
        let last = nodes.len() - 1;
        if mode != Mode::Forward {
            push_softmax_xent(
                &mut pb,
                &self.acts[last],
                &self.labels,
                &self.dacts[last],
                &self.stats,
                if mode == Mode::Train {
                    TRAIN_STATS
                } else {
                    EVAL_STATS
                },
                batch,
                self.model.num_classes,
                mode == Mode::Train,
            );
        }
        if mode == Mode::Train {
            for i in (0..nodes.len()).rev() {
                let input = if i == 0 {
                    &self.input
                } else {
                    &self.acts[i - 1]
                };
                let mask = (i > 0 && nodes[i - 1].relu()).then(|| &self.acts[i - 1]);
                match (&nodes[i], textures[i].as_ref()) {
                    (
                        &Node::Linear {
                            inp,
                            out,
                            weight,
                            bias,
                            ..
                        },
                        Some(tex),
                    ) => push_linear_backward_tex(
                        &mut pb,
                        tex,
                        &self.dacts[i],
                        &self.params,
                        &self.grads,
                        weight,
                        bias,
                        (i > 0).then(|| (&self.dacts[i - 1], mask.is_some())),
                        batch,
                        inp,
                        out,
                    ),
                    (
                        &Node::Linear {
                            inp,
                            out,
                            weight,
                            bias,
                            ..
                        },
                        None,
                    ) => {
                        push_linear_backward_weight(
                            &mut pb,
                            &self.dacts[i],
                            input,
                            &self.grads,
                            weight,
                            bias,
                            batch,
                            inp,
                            out,
                        );
                        if i > 0 {
                            push_linear_backward_input(
                                &mut pb,
                                &self.dacts[i],
                                &self.params,
                                weight,
                                &self.dacts[i - 1],
                                mask,
                                batch,
                                inp,
                                out,
                            );
                        }
                    }
                    (
                        &Node::Conv2d {
                            shape,
                            weight,
                            bias,
                            ..
                        },
                        _,
                    ) => {
                        push_conv2d_backward_weight(
                            &mut pb,
                            &self.dacts[i],
                            input,
                            &self.partials[i],
                            &self.grads,
                            weight,
                            bias,
                            batch,
                            &shape,
                        );
                        if i > 0 {
                            push_conv2d_backward_input(
                                &mut pb,
                                &self.dacts[i],
                                &self.params,
                                weight,
                                &self.dacts[i - 1],
                                mask,
                                batch,
                                &shape,
                            );
                        }
                    }
                    (&Node::Pool { shape }, _) => {
                        if i > 0 {
                            push_pool_backward(
                                &mut pb,
                                &self.dacts[i],
                                &self.argmax[i],
                                &self.dacts[i - 1],
                                mask,
                                batch,
                                &shape,
                            );
                        }
                    }
                }
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

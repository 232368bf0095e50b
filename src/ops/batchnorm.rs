//! `bn`: batch normalisation with PyTorch's semantics (`nn.BatchNorm2d` after an image, `nn.BatchNorm1d`
//! after a flat vector): in training, batch statistics (biased variance to normalise, unbiased for the
//! running update, momentum 0.1, eps 1e-5) and `num_batches_tracked += 1`; in evaluation, the running
//! statistics. Learnable weight (1) and bias (0) in the parameter vector; `running_mean` (0),
//! `running_var` (1) and `num_batches_tracked` (0, int64 in checkpoints) in the state vector.
//!
//! Shapes: `x, y: [batch, C, H, W]` (per channel over N, H, W) or `[batch, C]` (per feature over N);
//! `plane` = H*W (1 for flat). A following ReLU is fused into the normalisation.
//! CPU: statistics per channel in f64, then one pass per example (flat inputs: every pass along the
//! rows, `batchnorm/flat.rs`). GPU (`shaders/batchnorm.wgsl`): one workgroup per channel reduces in
//! workgroup memory (no float atomics; flat inputs: one invocation per feature), then elementwise
//! kernels.

mod flat;

use super::vector::vectorized;
use super::{sum2_lanes_with, sum_lanes_with};
use crate::device::gpu::{grid_1d, GpuContext, Kernel, PlanBuilder};
use crate::error::Result;
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{
    scratch, CpuBackward, CpuForward, EvalAffine, GpuBackward, GpuForward, Init, Layer, Op, Shape,
};
use crate::nn::portable::Portable;
use rayon::prelude::*;
use std::any::Any;

pub const EPS: f32 = 1e-5;
/// Floats summed in f32 before the f64 total (statistics and their gradients).
const BLOCK: usize = 1024;
pub const MOMENTUM: f32 = 0.1;

const SOURCE: &str = include_str!("../../shaders/batchnorm.wgsl");
const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        name: entry,
        source: SOURCE,
        entry,
    }
}
pub const BN_STATS: Kernel = kernel("bn_stats");
pub const BN_NORMALIZE: Kernel = kernel("bn_normalize");
pub const BN_BACKWARD_REDUCE: Kernel = kernel("bn_backward_reduce");
pub const BN_BACKWARD_INPUT: Kernel = kernel("bn_backward_input");
pub const BN_STATS_FLAT: Kernel = kernel("bn_stats_flat");
pub const BN_BACKWARD_REDUCE_FLAT: Kernel = kernel("bn_backward_reduce_flat");
const FLAG_EVAL: u32 = 32;

/// `bn` in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormLayer;

pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    (t == "bn").then(|| Ok(Box::new(BatchNormLayer) as Box<dyn Layer>))
}

impl Layer for BatchNormLayer {
    fn token(&self) -> String {
        "bn".into()
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let shape = g.shape(x);
        let c = shape.channels();
        let op = BatchNorm {
            channels: c,
            plane: shape.plane(),
            weight: g.param("weight", vec![c], Init::Const(1.0)),
            bias: g.param("bias", vec![c], Init::Const(0.0)),
            mean: g.state("running_mean", vec![c], Init::Const(0.0), false),
            var: g.state("running_var", vec![c], Init::Const(1.0), false),
            count: g.state("num_batches_tracked", vec![], Init::Const(0.0), true),
            relu: false,
        };
        Ok(g.node(Box::new(op), &[x], shape))
    }

    fn portable(&self, input: Shape) -> std::result::Result<Portable, String> {
        Ok(Portable::BatchNorm {
            channels: input.channels(),
            image: matches!(input, Shape::Image(_)),
            eps: EPS,
        })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved BatchNorm: sizes and the offsets of its tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub channels: usize,
    pub plane: usize,
    /// Offsets in the parameter vector.
    pub weight: usize,
    pub bias: usize,
    /// Offsets in the state vector.
    pub mean: usize,
    pub var: usize,
    pub count: usize,
    pub relu: bool,
}

/// Per-channel batch statistics of the last training forward (for the backward pass).
struct Saved {
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl BatchNorm {
    /// The values of channel `c` in a batch, one slice of `plane` per example.
    fn channel<'a>(&self, x: &'a [f32], batch: usize, c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (cp, p) = (self.channels * self.plane, self.plane);
        (0..batch).map(move |n| &x[n * cp + c * p..n * cp + (c + 1) * p])
    }

    /// Channel `c`'s values in pieces of at most [`BLOCK`] floats: each is summed in f32 lanes, the
    /// pieces in f64, so the statistics keep f64 accuracy at vector speed.
    fn blocks<'a>(&self, x: &'a [f32], batch: usize, c: usize) -> impl Iterator<Item = &'a [f32]> {
        self.channel(x, batch, c)
            .flat_map(|plane| plane.chunks(BLOCK))
    }

    /// Per channel of an image batch: (mean, biased variance) over the batch and the plane, in one
    /// pass over `x`: each block's mean and squared deviations about it are summed in f32 lanes while
    /// the block is in L1 (it is at most [`BLOCK`] floats), and the blocks are combined in f64 by Chan
    /// et al.'s pairwise update, as accurate as two passes over the whole channel without reading it
    /// from memory twice.
    fn image_stats(&self, x: &[f32], batch: usize) -> Vec<(f64, f64)> {
        (0..self.channels)
            .into_par_iter()
            .map(|ch| {
                vectorized(
                    #[inline(always)]
                    || {
                        let (mut n, mut mean, mut m2) = (0f64, 0f64, 0f64);
                        for s in self.blocks(x, batch, ch) {
                            let nb = s.len() as f64;
                            let mb = sum_lanes_with(s, |v| v) / s.len() as f32;
                            let q = sum_lanes_with(s, |v| (v - mb) * (v - mb)) as f64;
                            let delta = mb as f64 - mean;
                            let total = n + nb;
                            mean += delta * nb / total;
                            m2 += q + delta * delta * n * nb / total;
                            n = total;
                        }
                        (mean, (m2 / n.max(1.0)).max(0.0))
                    },
                )
            })
            .collect()
    }

    /// `y = x * scale[c] + shift[c]`, ReLU'd when fused, one example per task.
    fn apply(&self, x: &[f32], y: &mut [f32], batch: usize, scale: &[f32], shift: &[f32]) {
        let (cp, p) = (self.channels * self.plane, self.plane);
        if p == 1 {
            return flat::apply(x, y, batch, self.channels, scale, shift, self.relu);
        }
        y[..batch * cp]
            .par_chunks_mut(cp)
            .zip(x[..batch * cp].par_chunks(cp))
            .for_each(|(yb, xb)| {
                vectorized(
                    #[inline(always)]
                    || {
                        for c in 0..self.channels {
                            let (k, b) = (scale[c], shift[c]);
                            let (yc, xc) = (&mut yb[c * p..(c + 1) * p], &xb[c * p..(c + 1) * p]);
                            if self.relu {
                                yc.iter_mut()
                                    .zip(xc)
                                    .for_each(|(y, &x)| *y = (x * k + b).max(0.0));
                            } else {
                                yc.iter_mut().zip(xc).for_each(|(y, &x)| *y = x * k + b);
                            }
                        }
                    },
                )
            });
    }

    /// Evaluation with the running statistics as `x * scale + shift` per channel (the CPU's
    /// evaluation forward, and what the evaluation pass folds into the producer).
    fn affine(&self, params: &[f32], state: &[f32]) -> EvalAffine {
        let c = self.channels;
        let (gamma, beta) = (&params[self.weight..][..c], &params[self.bias..][..c]);
        let (mean, var) = (&state[self.mean..][..c], &state[self.var..][..c]);
        let scale: Vec<f32> = (0..c)
            .map(|ch| gamma[ch] * (1.0 / (var[ch] + EPS).sqrt()))
            .collect();
        let shift = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
        EvalAffine {
            scale,
            shift,
            relu: self.relu,
            bias_slot: self.bias,
        }
    }

    fn uniform(&self, batch: usize, flags: u32) -> BnParams {
        let u = |x: usize| u32::try_from(x).expect("batchnorm size exceeds u32");
        BnParams {
            batch: u(batch),
            channels: u(self.channels),
            plane: u(self.plane),
            flags,
            w_off: u(self.weight),
            b_off: u(self.bias),
            mean_off: u(self.mean),
            var_off: u(self.var),
            count_off: u(self.count),
            eps: EPS,
            momentum: MOMENTUM,
            pad0: 0,
        }
    }

    fn groups(pb: &PlanBuilder<'_>, n: usize) -> [u32; 3] {
        grid_1d(
            n as u32,
            pb.ctx().limits.max_compute_workgroups_per_dimension,
        )
    }

    /// A per-channel reduction kernel and its grid: for flat inputs one invocation per feature
    /// (`flat`, 64 per workgroup), for images one workgroup per channel (`tree`).
    fn reduction(
        &self,
        pb: &PlanBuilder<'_>,
        tree: &'static Kernel,
        flat: &'static Kernel,
    ) -> (&'static Kernel, [u32; 3]) {
        if self.plane == 1 {
            (flat, Self::groups(pb, self.channels.div_ceil(64)))
        } else {
            (tree, Self::groups(pb, self.channels))
        }
    }
}

/// Uniform of `shaders/batchnorm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BnParams {
    pub batch: u32,
    pub channels: u32,
    pub plane: u32,
    pub flags: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub mean_off: u32,
    pub var_off: u32,
    pub count_off: u32,
    pub eps: f32,
    pub momentum: f32,
    pub pad0: u32,
}

impl Op for BatchNorm {
    fn kind(&self) -> &'static str {
        "batchnorm"
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }

    fn relu(&self) -> bool {
        self.relu
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eval_affine(&self, params: &[f32], state: &[f32]) -> Option<EvalAffine> {
        Some(self.affine(params, state))
    }

    fn cpu_scratch(&self, _max_batch: usize) -> Box<dyn Any + Send> {
        Box::new(Saved {
            mean: vec![0.0; self.channels],
            invstd: vec![0.0; self.channels],
        })
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let (x, batch, c) = (a.inputs[0], a.batch, self.channels);
        let (gamma, beta) = (&a.params[self.weight..][..c], &a.params[self.bias..][..c]);
        let (mean, invstd): (Vec<f32>, Vec<f32>) = if a.train {
            let m = (batch * self.plane) as f64;
            let stats: Vec<(f64, f64)> = if self.plane == 1 {
                flat::stats(x, batch, c)
            } else {
                self.image_stats(x, batch)
            };
            let k = MOMENTUM;
            for (ch, &(mean, var)) in stats.iter().enumerate() {
                let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { var };
                let rm = &mut a.state[self.mean + ch];
                *rm = (1.0 - k) * *rm + k * mean as f32;
                let rv = &mut a.state[self.var + ch];
                *rv = (1.0 - k) * *rv + k * unbiased as f32;
            }
            a.state[self.count] += 1.0;
            let saved = scratch::<Saved>(a.scratch);
            for (ch, &(mean, var)) in stats.iter().enumerate() {
                saved.mean[ch] = mean as f32;
                saved.invstd[ch] = (1.0 / (var + EPS as f64).sqrt()) as f32;
            }
            (saved.mean.clone(), saved.invstd.clone())
        } else {
            let e = self.affine(a.params, a.state);
            return self.apply(x, a.output, batch, &e.scale, &e.shift);
        };
        let scale: Vec<f32> = gamma.iter().zip(&invstd).map(|(g, s)| g * s).collect();
        let shift: Vec<f32> = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
        self.apply(x, a.output, batch, &scale, &shift);
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let (x, dy, batch, c, p) = (a.inputs[0], a.dy, a.batch, self.channels, self.plane);
        let saved: &Saved = scratch::<Saved>(a.scratch);
        let sums: Vec<(f64, f64)> = if p == 1 {
            flat::grad_sums(x, dy, batch, c, &saved.mean, &saved.invstd)
        } else {
            (0..c)
                .into_par_iter()
                .map(|ch| {
                    vectorized(
                        #[inline(always)]
                        || {
                            let (mean, invstd) = (saved.mean[ch], saved.invstd[ch]);
                            // Plain loops over the blocks (an iterator fold here was left out of
                            // line, and scalar).
                            let (mut s, mut sx) = (0f64, 0f64);
                            let planes =
                                self.channel(x, batch, ch).zip(self.channel(dy, batch, ch));
                            for (xp, gp) in planes {
                                for (xs, gs) in xp.chunks(BLOCK).zip(gp.chunks(BLOCK)) {
                                    let (a, b) = sum2_lanes_with(gs, xs, |g, x| {
                                        (g, g * ((x - mean) * invstd))
                                    });
                                    s += a as f64;
                                    sx += b as f64;
                                }
                            }
                            (s, sx)
                        },
                    )
                })
                .collect()
        };
        for (ch, &(s, sx)) in sums.iter().enumerate() {
            a.grads[self.bias + ch] = s as f32;
            a.grads[self.weight + ch] = sx as f32;
        }
        let Some(g) = a.dx[0].take() else { return };
        let m = (batch * p) as f64;
        let gamma = &a.params[self.weight..][..c];
        if p == 1 {
            let k: Vec<f32> = (0..c).map(|j| gamma[j] * saved.invstd[j]).collect();
            let ma: Vec<f32> = sums.iter().map(|s| (s.0 / m) as f32).collect();
            let mb: Vec<f32> = sums.iter().map(|s| (s.1 / m) as f32).collect();
            let (mean, invstd) = (&saved.mean, &saved.invstd);
            return flat::input_grad(x, dy, g.dx, batch, c, mean, invstd, &k, &ma, &mb, g.mask);
        }
        let cp = c * p;
        g.dx[..batch * cp]
            .par_chunks_mut(cp)
            .enumerate()
            .for_each(|(n, dxb)| {
                vectorized(
                    #[inline(always)]
                    || {
                        let (xb, gb) = (&x[n * cp..(n + 1) * cp], &dy[n * cp..(n + 1) * cp]);
                        for ch in 0..c {
                            let (mean, invstd) = (saved.mean[ch], saved.invstd[ch]);
                            let (ma, mb) = ((sums[ch].0 / m) as f32, (sums[ch].1 / m) as f32);
                            let k = gamma[ch] * invstd;
                            let r = ch * p..(ch + 1) * p;
                            for ((d, &x), &g) in
                                dxb[r.clone()].iter_mut().zip(&xb[r.clone()]).zip(&gb[r])
                            {
                                *d = k * (g - ma - (x - mean) * invstd * mb);
                            }
                        }
                        if let Some(mask) = g.mask {
                            super::relu_mask(dxb, &mask[n * cp..(n + 1) * cp]);
                        }
                    },
                )
            });
    }

    fn gpu_aux(&self, ctx: &GpuContext, _max_batch: usize) -> Result<Vec<wgpu::Buffer>> {
        let len = 4 * self.channels;
        Ok(vec![ctx.storage_buffer(
            "batchnorm statistics",
            len,
            wgpu::BufferUsages::empty(),
        )?])
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let relu = if self.relu { super::FLAG_RELU } else { 0 };
        let aux = &a.aux[0];
        if a.train {
            let p = self.uniform(a.batch, 0);
            let (kernel, groups) = self.reduction(pb, &BN_STATS, &BN_STATS_FLAT);
            pb.push_bindings(
                kernel,
                &p,
                &[(1, a.inputs[0]), (4, a.state), (5, aux)],
                groups,
            );
        }
        let p = self.uniform(a.batch, relu | if a.train { 0 } else { FLAG_EVAL });
        let n = a.batch * self.channels * self.plane;
        let bindings = [
            (1, a.inputs[0]),
            (2, a.output),
            (3, a.params),
            (4, a.state),
            (5, aux),
        ];
        pb.push_bindings(
            &BN_NORMALIZE,
            &p,
            &bindings,
            Self::groups(pb, n.div_ceil(256)),
        );
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let aux = &a.aux[0];
        let p = self.uniform(a.batch, 0);
        let bindings = [(1, a.inputs[0]), (5, aux), (6, a.dy), (7, a.grads)];
        let (kernel, groups) = self.reduction(pb, &BN_BACKWARD_REDUCE, &BN_BACKWARD_REDUCE_FLAT);
        pb.push_bindings(kernel, &p, &bindings, groups);
        let Some(g) = &a.dx[0] else { return };
        let p = self.uniform(
            a.batch,
            if g.mask.is_some() {
                super::FLAG_MASK
            } else {
                0
            },
        );
        let n = a.batch * self.channels * self.plane;
        let bindings = [
            (1, a.inputs[0]),
            (2, g.dx),
            (3, a.params),
            (5, aux),
            (6, a.dy),
            (8, g.mask.unwrap_or(a.dy)),
        ];
        pb.push_bindings(
            &BN_BACKWARD_INPUT,
            &p,
            &bindings,
            Self::groups(pb, n.div_ceil(256)),
        );
    }
}

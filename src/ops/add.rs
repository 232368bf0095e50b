//! Elementwise add of two tensors of the same shape (a residual block's body and shortcut), with an
//! optional fused ReLU; its backward passes the gradient to both inputs. Also the gradient sum the
//! executors use for a tensor read by several nodes ([`accumulate_cpu`], [`push_accumulate`]).
//! Shapes: `a, b, y: [batch, len]`. Kernels: `shaders/add.wgsl`.

use super::vector::{vectorized, TASK};
use crate::device::gpu::{Kernel, PlanBuilder};
use crate::nn::op::{CpuBackward, CpuForward, GpuBackward, GpuForward, Op};
use rayon::prelude::*;
use std::any::Any;

const SOURCE: &str = include_str!("../../shaders/add.wgsl");
pub const ADD_FORWARD: Kernel = Kernel {
    name: "add_forward",
    source: SOURCE,
    entry: "add_forward",
};
pub const ADD_BACKWARD: Kernel = Kernel {
    name: "add_backward",
    source: SOURCE,
    entry: "add_backward",
};
pub const ACCUMULATE: Kernel = Kernel {
    name: "accumulate",
    source: SOURCE,
    entry: "accumulate",
};

/// `y = a + b` (then ReLU when fused) over `len` floats per example.
#[derive(Debug, Clone, PartialEq)]
pub struct Add {
    pub len: usize,
    pub relu: bool,
}

impl Add {
    pub fn new(len: usize) -> Self {
        Add { len, relu: false }
    }
}

/// `dst += src` over `n` floats.
pub fn accumulate_cpu(dst: &mut [f32], src: &[f32], n: usize) {
    dst[..n]
        .par_chunks_mut(TASK)
        .zip(src[..n].par_chunks(TASK))
        .for_each(|(d, s)| {
            vectorized(
                #[inline(always)]
                || {
                    for (d, s) in d.iter_mut().zip(s) {
                        *d += s;
                    }
                },
            )
        });
}

/// GPU [`accumulate_cpu`].
pub fn push_accumulate(pb: &mut PlanBuilder<'_>, dst: &wgpu::Buffer, src: &wgpu::Buffer, n: usize) {
    super::push_elementwise(pb, &ACCUMULATE, n, 0, &[(1, src), (3, dst)]);
}

impl Op for Add {
    fn kind(&self) -> &'static str {
        "add"
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

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let n = a.batch * self.len;
        let (x, z) = (&a.inputs[0][..n], &a.inputs[1][..n]);
        let relu = self.relu;
        a.output[..n]
            .par_chunks_mut(TASK)
            .zip(x.par_chunks(TASK).zip(z.par_chunks(TASK)))
            .for_each(|(y, (x, z))| {
                vectorized(
                    #[inline(always)]
                    || {
                        for ((y, &u), &v) in y.iter_mut().zip(x).zip(z) {
                            *y = if relu { (u + v).max(0.0) } else { u + v };
                        }
                    },
                )
            });
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let n = a.batch * self.len;
        for g in a.dx.iter_mut().filter_map(Option::take) {
            let Some(mask) = g.mask else {
                g.dx[..n].copy_from_slice(&a.dy[..n]);
                continue;
            };
            // The copy and the ReLU mask in one pass.
            g.dx[..n]
                .par_chunks_mut(TASK)
                .zip(a.dy[..n].par_chunks(TASK).zip(mask[..n].par_chunks(TASK)))
                .for_each(|(d, (dy, m))| {
                    vectorized(
                        #[inline(always)]
                        || {
                            for ((d, &g), &m) in d.iter_mut().zip(dy).zip(m) {
                                *d = if m <= 0.0 { 0.0 } else { g };
                            }
                        },
                    )
                });
        }
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let flags = if self.relu { super::FLAG_RELU } else { 0 };
        let bindings = [(1, a.inputs[0]), (2, a.inputs[1]), (3, a.output)];
        super::push_elementwise(pb, &ADD_FORWARD, a.batch * self.len, flags, &bindings);
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        for g in a.dx.iter().flatten() {
            let flags = if g.mask.is_some() {
                super::FLAG_MASK
            } else {
                0
            };
            let bindings = [(1, a.dy), (2, g.mask.unwrap_or(a.dy)), (3, g.dx)];
            super::push_elementwise(pb, &ADD_BACKWARD, a.batch * self.len, flags, &bindings);
        }
    }
}

//! `gap`: global average pooling (`[batch, C, H, W] -> [batch, C]`; PyTorch
//! `nn.AdaptiveAvgPool2d(1)` followed by `nn.Flatten()`), forward and backward. The mean over a
//! plane is summed in order and divided once, on both devices. Kernels: `shaders/gap.wgsl`.

use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{CpuBackward, CpuForward, GpuBackward, GpuForward, Layer, Op, Shape};
use crate::nn::portable::Portable;
use rayon::prelude::*;
use std::any::Any;

const SOURCE: &str = include_str!("../../shaders/gap.wgsl");
pub const GAP_FORWARD: Kernel = Kernel {
    name: "gap_forward",
    source: SOURCE,
    entry: "gap_forward",
};
pub const GAP_BACKWARD: Kernel = Kernel {
    name: "gap_backward",
    source: SOURCE,
    entry: "gap_backward",
};

/// `gap` in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct GapLayer;

pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    (t == "gap").then(|| Ok(Box::new(GapLayer) as Box<dyn Layer>))
}

impl Layer for GapLayer {
    fn token(&self) -> String {
        "gap".into()
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let Shape::Image(s) = g.shape(x) else {
            return Err("input is already flat; global average pooling needs an image".into());
        };
        let op = GlobalAvgPool {
            channels: s.channels,
            plane: s.height * s.width,
        };
        Ok(g.node(Box::new(op), &[x], Shape::Flat(s.channels)))
    }

    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        Ok(Portable::GlobalAvgPool)
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved global average pooling.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalAvgPool {
    pub channels: usize,
    pub plane: usize,
}

/// Uniform of `shaders/gap.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct GapParams {
    rows: u32,
    plane: u32,
    flags: u32,
    pad0: u32,
}

impl GlobalAvgPool {
    fn push(
        &self,
        pb: &mut PlanBuilder<'_>,
        k: &Kernel,
        rows: usize,
        n: usize,
        flags: u32,
        b: &[(u32, &wgpu::Buffer)],
    ) {
        let p = GapParams {
            rows: rows as u32,
            plane: self.plane as u32,
            flags,
            pad0: 0,
        };
        let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
        pb.push_bindings(k, &p, b, grid_1d(n.div_ceil(256) as u32, max));
    }
}

impl Op for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let rows = a.batch * self.channels;
        let area = self.plane as f32;
        a.output[..rows]
            .par_iter_mut()
            .zip(a.inputs[0][..rows * self.plane].par_chunks(self.plane))
            .for_each(|(y, plane)| *y = plane.iter().sum::<f32>() / area);
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let Some(g) = a.dx[0].take() else { return };
        let rows = a.batch * self.channels;
        let area = self.plane as f32;
        g.dx[..rows * self.plane]
            .par_chunks_mut(self.plane)
            .zip(&a.dy[..rows])
            .enumerate()
            .for_each(|(r, (dx, &dy))| {
                dx.fill(dy / area);
                if let Some(mask) = g.mask {
                    super::relu_mask(dx, &mask[r * self.plane..(r + 1) * self.plane]);
                }
            });
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let rows = a.batch * self.channels;
        self.push(
            pb,
            &GAP_FORWARD,
            rows,
            rows,
            0,
            &[(1, a.inputs[0]), (2, a.output)],
        );
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let Some(g) = &a.dx[0] else { return };
        let rows = a.batch * self.channels;
        let flags = if g.mask.is_some() {
            super::FLAG_MASK
        } else {
            0
        };
        let bindings = [(1, a.dy), (2, g.dx), (3, g.mask.unwrap_or(a.dy))];
        self.push(pb, &GAP_BACKWARD, rows, rows * self.plane, flags, &bindings);
    }
}

//! `maxpoolK[sS]` / `avgpoolK[sS]`: pooling (PyTorch `nn.MaxPool2d` / `nn.AvgPool2d`, no padding) as a
//! graph op. Max pooling keeps its winners (CPU scratch, GPU aux buffer) for the backward pass.

use super::{
    pool_backward, pool_forward, push_pool_backward, push_pool_forward, PoolKind, PoolShape,
};
use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::error::Result;
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{scratch, CpuBackward, CpuForward, GpuBackward, GpuForward, Layer, Op, Shape};
use crate::nn::portable::Portable;
use std::any::Any;

/// A pooling layer in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolLayer {
    pub kind: PoolKind,
    pub k: usize,
    pub stride: usize,
}

/// Parse `maxpool2`, `avgpool3s2`.
pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    let (kind, rest) = if let Some(r) = t.strip_prefix("maxpool") {
        (PoolKind::Max, r)
    } else {
        (PoolKind::Avg, t.strip_prefix("avgpool")?)
    };
    let parsed = match rest.split_once('s') {
        Some((k, s)) => k.parse().ok().zip(s.parse().ok()),
        None => rest.parse().ok().map(|k| (k, k)),
    };
    Some(match parsed {
        Some((k, stride)) => Ok(Box::new(PoolLayer { kind, k, stride })),
        None => Err("expected maxpool{K} or maxpool{K}s{STRIDE}, e.g. maxpool2".into()),
    })
}

impl Layer for PoolLayer {
    fn token(&self) -> String {
        let name = match self.kind {
            PoolKind::Max => "maxpool",
            PoolKind::Avg => "avgpool",
        };
        if self.stride == self.k {
            format!("{name}{}", self.k)
        } else {
            format!("{name}{}s{}", self.k, self.stride)
        }
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let Shape::Image(s) = g.shape(x) else {
            return Err(
                "input is already flat; pooling needs an image (move flatten after it)".into(),
            );
        };
        let k = self.k;
        if k == 0 || self.stride == 0 {
            return Err("window and stride must be at least 1".into());
        }
        if s.height < k || s.width < k {
            return Err(format!(
                "window {k}x{k} is larger than its {}x{} input",
                s.height, s.width
            ));
        }
        let shape = PoolShape {
            kind: self.kind,
            channels: s.channels,
            in_h: s.height,
            in_w: s.width,
            k,
            stride: self.stride,
        };
        let out = Shape::image(s.channels, shape.out_h(), shape.out_w());
        Ok(g.node(Box::new(Pool { shape }), &[x], out))
    }

    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        let (k, stride) = (self.k, self.stride);
        Ok(match self.kind {
            PoolKind::Max => Portable::MaxPool { k, stride },
            PoolKind::Avg => Portable::AvgPool { k, stride },
        })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved pooling op.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub shape: PoolShape,
}

impl Op for Pool {
    fn kind(&self) -> &'static str {
        "pool"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn cpu_scratch(&self, max_batch: usize) -> Box<dyn Any + Send> {
        Box::new(vec![0u32; max_batch * self.shape.out_len()])
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let argmax = scratch::<Vec<u32>>(a.scratch);
        pool_forward(a.inputs[0], a.output, argmax, a.batch, &self.shape);
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        if let Some(g) = a.dx[0].take() {
            let argmax = scratch::<Vec<u32>>(a.scratch);
            pool_backward(a.dy, argmax, g.dx, g.mask, a.batch, &self.shape);
        }
    }

    fn gpu_aux(&self, ctx: &GpuContext, max_batch: usize) -> Result<Vec<wgpu::Buffer>> {
        let len = max_batch * self.shape.out_len();
        Ok(vec![ctx.storage_buffer(
            "pool winners",
            len,
            wgpu::BufferUsages::empty(),
        )?])
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        push_pool_forward(pb, a.inputs[0], &a.aux[0], a.output, a.batch, &self.shape);
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        if let Some(g) = &a.dx[0] {
            push_pool_backward(pb, a.dy, &a.aux[0], g.dx, g.mask, a.batch, &self.shape);
        }
    }
}

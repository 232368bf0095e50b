//! `relu`: `y = max(x, 0)` as a graph op of its own, for the ReLUs the fusion pass cannot fold into
//! the op before them (after pooling, after a tensor that is also read elsewhere). Shapes: any;
//! elementwise over `[batch, len]`. Kernels: `shaders/relu.wgsl`.

use crate::device::gpu::{Kernel, PlanBuilder};
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{CpuBackward, CpuForward, GpuBackward, GpuForward, Layer, Op, Shape};
use crate::nn::portable::Portable;
use std::any::Any;

const SOURCE: &str = include_str!("../../shaders/relu.wgsl");
pub const RELU_FORWARD: Kernel = Kernel {
    name: "relu_forward",
    source: SOURCE,
    entry: "relu_forward",
};
pub const RELU_BACKWARD: Kernel = Kernel {
    name: "relu_backward",
    source: SOURCE,
    entry: "relu_backward",
};

/// `relu` in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ReluLayer;

pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    (t == "relu").then(|| Ok(Box::new(ReluLayer) as Box<dyn Layer>))
}

impl Layer for ReluLayer {
    fn token(&self) -> String {
        "relu".into()
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let shape = g.shape(x);
        Ok(g.node(Box::new(Relu { len: shape.len() }), &[x], shape))
    }

    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        Ok(Portable::Relu)
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved ReLU over `len` floats per example.
#[derive(Debug, Clone, PartialEq)]
pub struct Relu {
    pub len: usize,
}

impl Op for Relu {
    fn kind(&self) -> &'static str {
        "relu"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let n = a.batch * self.len;
        for (y, &x) in a.output[..n].iter_mut().zip(&a.inputs[0][..n]) {
            *y = x.max(0.0);
        }
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let Some(g) = a.dx[0].take() else { return };
        let n = a.batch * self.len;
        for ((d, &dy), &y) in g.dx[..n].iter_mut().zip(&a.dy[..n]).zip(&a.output[..n]) {
            *d = if y > 0.0 { dy } else { 0.0 };
        }
        if let Some(mask) = g.mask {
            super::relu_mask(&mut g.dx[..n], &mask[..n]);
        }
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let bindings = [(1, a.inputs[0]), (2, a.output)];
        super::push_elementwise(pb, &RELU_FORWARD, a.batch * self.len, 0, &bindings);
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let Some(g) = &a.dx[0] else { return };
        let flags = if g.mask.is_some() {
            super::FLAG_MASK
        } else {
            0
        };
        let mask = g.mask.unwrap_or(a.output);
        let bindings = [(1, a.dy), (2, g.dx), (3, a.output), (4, mask)];
        super::push_elementwise(pb, &RELU_BACKWARD, a.batch * self.len, flags, &bindings);
    }
}

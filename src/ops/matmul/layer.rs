//! `fcN`: the fully connected layer (PyTorch `nn.Linear`) as a graph op.
//!
//! `x: [batch, inp]` (an image is accepted only when it is 1x1), weight `[out, inp]`, bias `[out]`,
//! `y: [batch, out]`; a following ReLU is fused into the epilogue. On software adapters the products
//! run through packed textures (`ops::matmul_tex`), elsewhere on the storage kernels.

use super::{
    linear_backward_input, linear_backward_weight, linear_forward_on, push_linear_backward_input,
    push_linear_backward_weight, push_linear_forward,
};
use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::error::Result;
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{
    resources, CpuBackward, CpuForward, EvalAffine, GpuBackward, GpuForward, Init, Layer, Op, Shape,
};
use crate::nn::portable::Portable;
use crate::ops::matmul_tex::{
    self, push_linear_backward_tex, push_linear_forward_tex, LinearTextures,
};
use std::any::Any;

/// `fcN` in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearLayer {
    pub out: usize,
}

/// Parse `fc{N}`.
pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    let n = t.strip_prefix("fc")?;
    Some(match n.parse::<usize>() {
        Ok(out) => Ok(Box::new(LinearLayer { out })),
        Err(_) => Err("expected fc followed by a number of outputs".into()),
    })
}

impl Layer for LinearLayer {
    fn token(&self) -> String {
        format!("fc{}", self.out)
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let inp = match g.shape(x) {
            Shape::Flat(n) => n,
            Shape::Image(s) if s.height == 1 && s.width == 1 => s.channels,
            Shape::Image(s) => {
                return Err(format!(
                    "input is a {}x{}x{} image; add `flatten` before a fully connected layer",
                    s.channels, s.height, s.width
                ))
            }
        };
        if self.out == 0 {
            return Err("needs at least one output".into());
        }
        let bound = Init::Uniform(1.0 / (inp as f32).sqrt());
        let weight = g.param("weight", vec![self.out, inp], bound);
        let bias = g.param("bias", vec![self.out], bound);
        let op = Linear {
            inp,
            out: self.out,
            relu: false,
            weight,
            bias,
        };
        Ok(g.node(Box::new(op), &[x], Shape::Flat(self.out)))
    }

    fn portable(&self, input: Shape) -> std::result::Result<Portable, String> {
        // A 1x1 image is accepted as its channels: flattened first.
        Ok(Portable::Linear {
            inp: input.len(),
            out: self.out,
            flatten: matches!(input, Shape::Image(_)),
        })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved linear op: offsets of its weight and bias in the parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub inp: usize,
    pub out: usize,
    pub relu: bool,
    pub weight: usize,
    pub bias: usize,
}

impl Op for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }

    fn forward_macs(&self) -> usize {
        self.inp * self.out
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

    fn fold_affine(&self, params: &mut [f32], a: &EvalAffine) -> Option<Box<dyn Op>> {
        if a.scale.len() != self.out {
            return None;
        }
        let bias = Some(self.bias);
        crate::ops::fold_rows(params, self.weight, bias, self.bias, self.inp, a);
        Some(Box::new(Linear {
            relu: a.relu,
            ..self.clone()
        }))
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let (inp, out) = (self.inp, self.out);
        linear_forward_on(
            a.inputs[0],
            a.params,
            self.weight,
            self.bias,
            a.output,
            (a.batch, inp, out),
            self.relu,
            !a.serial,
        );
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let (inp, out) = (self.inp, self.out);
        linear_backward_weight(
            a.dy,
            a.inputs[0],
            a.grads,
            self.weight,
            self.bias,
            a.batch,
            inp,
            out,
        );
        if let Some(g) = a.dx[0].take() {
            linear_backward_input(a.dy, a.params, self.weight, g.dx, g.mask, a.batch, inp, out);
        }
    }

    fn gpu_plan_resources(
        &self,
        ctx: &GpuContext,
        batch: usize,
    ) -> Result<Option<Box<dyn Any + Send + Sync>>> {
        if !matmul_tex::preferred(ctx) {
            return Ok(None);
        }
        Ok(LinearTextures::new(ctx, batch, self.inp, self.out)?
            .map(|t| Box::new(t) as Box<dyn Any + Send + Sync>))
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let (inp, out, w, b) = (self.inp, self.out, self.weight, self.bias);
        match resources::<LinearTextures>(a.resources) {
            Some(tex) => push_linear_forward_tex(
                pb,
                tex,
                a.inputs[0],
                a.params,
                w,
                b,
                a.output,
                a.batch,
                inp,
                out,
                self.relu,
            ),
            None => push_linear_forward(
                pb,
                a.inputs[0],
                a.params,
                w,
                b,
                a.output,
                a.batch,
                inp,
                out,
                self.relu,
            ),
        }
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let (inp, out, w, b) = (self.inp, self.out, self.weight, self.bias);
        let dx = a.dx[0].as_ref();
        match resources::<LinearTextures>(a.resources) {
            Some(tex) => push_linear_backward_tex(
                pb,
                tex,
                a.dy,
                a.params,
                a.grads,
                w,
                b,
                dx.map(|g| (g.dx, g.mask.is_some())),
                a.batch,
                inp,
                out,
            ),
            None => {
                push_linear_backward_weight(
                    pb,
                    a.dy,
                    a.inputs[0],
                    a.grads,
                    w,
                    b,
                    a.batch,
                    inp,
                    out,
                );
                if let Some(g) = dx {
                    push_linear_backward_input(
                        pb, a.dy, a.params, w, g.dx, g.mask, a.batch, inp, out,
                    );
                }
            }
        }
    }
}

//! `convKHxKWxOUT[pP][sS][nb]`: the 2-D convolution (PyTorch `nn.Conv2d`) as a graph op; `nb` drops
//! the bias (`bias=False`, as before a BatchNorm). A following ReLU is fused into the epilogue.

use super::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, push_conv2d_backward_input,
    push_conv2d_backward_weight, push_conv2d_forward, ConvShape, ConvWork,
};
use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::error::Result;
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{
    scratch, CpuBackward, CpuForward, EvalAffine, GpuBackward, GpuForward, Init, Layer, Op, Shape,
};
use crate::nn::portable::Portable;
use std::any::Any;

/// A convolution in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    pub out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub bias: bool,
}

impl ConvLayer {
    /// A square `k x k` convolution with bias.
    pub fn new(k: usize, out: usize, stride: usize, pad: usize) -> Self {
        ConvLayer {
            out,
            kh: k,
            kw: k,
            stride,
            pad,
            bias: true,
        }
    }

    pub fn no_bias(self) -> Self {
        ConvLayer {
            bias: false,
            ..self
        }
    }
}

/// Split `s` at the last `marker` followed by a number: (`before`, number).
fn suffix_number(s: &str, marker: char) -> Option<(&str, usize)> {
    let pos = s.rfind(marker)?;
    let n = s[pos + 1..].parse().ok()?;
    Some((&s[..pos], n))
}

/// Parse `conv3x3x16p1s2nb`.
pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    let rest = t.strip_prefix("conv")?;
    let bad = || {
        "expected conv{KH}x{KW}x{OUT} with optional p{PAD}, s{STRIDE} and nb (no bias), e.g. conv3x3x16p1".to_string()
    };
    let (mut rest, bias) = match rest.strip_suffix("nb") {
        Some(r) => (r, false),
        None => (rest, true),
    };
    let (mut stride, mut pad) = (1, 0);
    if let Some((r, s)) = suffix_number(rest, 's') {
        rest = r;
        stride = s;
    }
    if let Some((r, p)) = suffix_number(rest, 'p') {
        rest = r;
        pad = p;
    }
    let dims: Option<Vec<usize>> = rest.split('x').map(|d| d.parse().ok()).collect();
    Some(match dims.as_deref() {
        Some(&[kh, kw, out]) => Ok(Box::new(ConvLayer {
            out,
            kh,
            kw,
            stride,
            pad,
            bias,
        })),
        _ => Err(bad()),
    })
}

impl Layer for ConvLayer {
    fn token(&self) -> String {
        let mut t = format!("conv{}x{}x{}", self.kh, self.kw, self.out);
        if self.pad != 0 {
            t += &format!("p{}", self.pad);
        }
        if self.stride != 1 {
            t += &format!("s{}", self.stride);
        }
        if !self.bias {
            t += "nb";
        }
        t
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let Shape::Image(s) = g.shape(x) else {
            return Err(
                "input is already flat; a convolution needs an image (move flatten after it)"
                    .into(),
            );
        };
        let (kh, kw, pad) = (self.kh, self.kw, self.pad);
        if self.out == 0 || kh == 0 || kw == 0 || self.stride == 0 {
            return Err("channels, kernel and stride must be at least 1".into());
        }
        if s.height + 2 * pad < kh || s.width + 2 * pad < kw {
            return Err(format!(
                "kernel {kh}x{kw} is larger than its {}x{} input (padding {pad})",
                s.height, s.width
            ));
        }
        let shape = ConvShape {
            in_c: s.channels,
            in_h: s.height,
            in_w: s.width,
            out_c: self.out,
            kh,
            kw,
            stride: self.stride,
            pad,
        };
        let bound = Init::Uniform(1.0 / (shape.k() as f32).sqrt());
        let weight = g.param("weight", vec![self.out, s.channels, kh, kw], bound);
        let bias = self.bias.then(|| g.param("bias", vec![self.out], bound));
        let op = Conv2d {
            shape,
            relu: false,
            weight,
            bias,
        };
        let out = Shape::image(self.out, shape.out_h(), shape.out_w());
        Ok(g.node(Box::new(op), &[x], out))
    }

    fn portable(&self, input: Shape) -> std::result::Result<Portable, String> {
        Ok(Portable::Conv2d {
            in_c: input.channels(),
            out: self.out,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            pad: self.pad,
            bias: self.bias,
        })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    pub shape: ConvShape,
    pub relu: bool,
    pub weight: usize,
    pub bias: Option<usize>,
}

impl Op for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    fn forward_macs(&self) -> usize {
        self.shape.macs()
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
        let s = &self.shape;
        if a.scale.len() != s.out_c {
            return None;
        }
        let bias = self.bias.unwrap_or(a.bias_slot);
        crate::ops::fold_rows(params, self.weight, self.bias, bias, s.k(), a);
        Some(Box::new(Conv2d {
            relu: a.relu,
            bias: Some(bias),
            ..self.clone()
        }))
    }

    fn cpu_scratch(&self, _max_batch: usize) -> Box<dyn Any + Send> {
        Box::new(ConvWork::for_current_pool(&self.shape))
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let work = scratch::<ConvWork>(a.scratch);
        conv2d_forward(
            a.inputs[0],
            a.params,
            self.weight,
            self.bias,
            a.output,
            work,
            a.batch,
            &self.shape,
            self.relu,
        );
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let work = scratch::<ConvWork>(a.scratch);
        let s = &self.shape;
        conv2d_backward_weight(
            a.dy,
            a.inputs[0],
            a.grads,
            self.weight,
            self.bias,
            work,
            a.batch,
            s,
        );
        if let Some(g) = a.dx[0].take() {
            conv2d_backward_input(a.dy, a.params, self.weight, g.dx, g.mask, work, a.batch, s);
        }
    }

    fn gpu_aux(&self, ctx: &GpuContext, max_batch: usize) -> Result<Vec<wgpu::Buffer>> {
        let len = self.shape.gpu_partial_len(max_batch);
        Ok(vec![ctx.storage_buffer(
            "conv partial sums",
            len,
            wgpu::BufferUsages::empty(),
        )?])
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        push_conv2d_forward(
            pb,
            a.inputs[0],
            a.params,
            self.weight,
            self.bias,
            a.output,
            a.batch,
            &self.shape,
            self.relu,
        );
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let s = &self.shape;
        push_conv2d_backward_weight(
            pb,
            a.dy,
            a.inputs[0],
            &a.aux[0],
            a.grads,
            self.weight,
            self.bias,
            a.batch,
            s,
        );
        if let Some(g) = &a.dx[0] {
            push_conv2d_backward_input(pb, a.dy, a.params, self.weight, g.dx, g.mask, a.batch, s);
        }
    }
}

//! 2-D convolution (PyTorch `nn.Conv2d`: cross-correlation, zero padding, stride, bias), forward and
//! both backward passes.
//!
//! Shapes: `x: [batch, in_c, in_h, in_w]`, weight `[out_c, in_c, kh, kw]`, bias `[out_c]`,
//! `y: [batch, out_c, out_h, out_w]` with `out_h = (in_h + 2 pad - kh) / stride + 1` (same for w).
//! CPU: [`super::conv2d_cpu`] (per-example im2col + serial GEMM, the batch split across threads),
//! re-exported here. GPU: `shaders/conv2d.wgsl`, implicit GEMM (no im2col buffer), every backward a
//! gather.

pub use super::conv2d_cpu::{
    col2im, conv2d_backward_input, conv2d_backward_weight, conv2d_forward, im2col, ConvWork,
};
use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};

/// Geometry of one convolution (per example; the batch is passed separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kh) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kw) / self.stride + 1
    }

    /// Reduction length: `in_c * kh * kw`.
    pub fn k(&self) -> usize {
        self.in_c * self.kh * self.kw
    }

    /// Output positions per channel: `out_h * out_w`.
    pub fn p(&self) -> usize {
        self.out_h() * self.out_w()
    }

    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    pub fn out_len(&self) -> usize {
        self.out_c * self.p()
    }

    /// Multiply-adds per example in the forward pass.
    pub fn macs(&self) -> usize {
        self.out_c * self.p() * self.k()
    }
}

// ---------------------------------------------------------------------------------------------------
// GPU launchers

const SOURCE: &str = include_str!("../../shaders/conv2d.wgsl");

pub const CONV2D_FORWARD: Kernel = Kernel {
    name: "conv2d_forward",
    source: SOURCE,
    entry: "conv2d_forward",
};

pub const CONV2D_BACKWARD_INPUT: Kernel = Kernel {
    name: "conv2d_backward_input",
    source: SOURCE,
    entry: "conv2d_backward_input",
};

pub const CONV2D_BACKWARD_WEIGHT: Kernel = Kernel {
    name: "conv2d_backward_weight",
    source: SOURCE,
    entry: "conv2d_backward_weight",
};

pub const CONV2D_WEIGHT_REDUCE: Kernel = Kernel {
    name: "conv2d_weight_reduce",
    source: SOURCE,
    entry: "conv2d_weight_reduce",
};

pub const FLAG_RELU: u32 = 2;
pub const FLAG_MASK: u32 = 4;
pub const FLAG_FLIP_TRANSPOSE: u32 = 8;
pub const FLAG_NO_BIAS: u32 = 16;

/// Uniform of `shaders/conv2d.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub batch: u32,
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub flags: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub splits: u32,
    pub pad_w: u32,
}

impl ConvParams {
    pub fn new(s: &ConvShape, batch: usize, w: usize, bias: usize, flags: u32) -> Self {
        let u = |x: usize| u32::try_from(x).expect("conv dimension exceeds u32");
        ConvParams {
            batch: u(batch),
            in_c: u(s.in_c),
            in_h: u(s.in_h),
            in_w: u(s.in_w),
            out_c: u(s.out_c),
            out_h: u(s.out_h()),
            out_w: u(s.out_w()),
            kh: u(s.kh),
            kw: u(s.kw),
            stride: u(s.stride),
            pad: u(s.pad),
            flags,
            w_off: u(w),
            b_off: u(bias),
            pad_w: u(s.pad),
            ..Default::default()
        }
    }
}

/// GPU [`conv2d_forward`]: each invocation computes 8 output channels x 4 output positions.
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_forward(
    pb: &mut PlanBuilder<'_>,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w: usize,
    bias: usize,
    y: &wgpu::Buffer,
    batch: usize,
    s: &ConvShape,
    relu: bool,
) {
    let p = ConvParams::new(s, batch, w, bias, if relu { FLAG_RELU } else { 0 });
    push_forward_kernel(pb, p, x, params, y, params);
}

fn push_forward_kernel(
    pb: &mut PlanBuilder<'_>,
    p: ConvParams,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    y: &wgpu::Buffer,
    aux: &wgpu::Buffer,
) {
    let cols = (p.batch * p.out_h * p.out_w).div_ceil(4);
    let rows = p.out_c.div_ceil(4);
    pb.push(
        &CONV2D_FORWARD,
        &p,
        &[x, params, y, aux],
        [cols.div_ceil(8), rows.div_ceil(8), 1],
    );
}

/// GPU [`conv2d_backward_input`]. Stride 1 (padding below the kernel size): the forward kernel on `dy`
/// with transposed, flipped weights and padding `k - 1 - pad`. Otherwise the gather kernel, 4 input
/// channels x 4 input positions per invocation.
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_backward_input(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w: usize,
    dx: &wgpu::Buffer,
    mask: Option<&wgpu::Buffer>,
    batch: usize,
    s: &ConvShape,
) {
    let mask_flag = if mask.is_some() { FLAG_MASK } else { 0 };
    if s.stride == 1 && s.pad < s.kh && s.pad < s.kw {
        let flipped = ConvShape {
            in_c: s.out_c,
            in_h: s.out_h(),
            in_w: s.out_w(),
            out_c: s.in_c,
            kh: s.kh,
            kw: s.kw,
            stride: 1,
            pad: s.kh - 1 - s.pad,
        };
        let mut p = ConvParams::new(
            &flipped,
            batch,
            w,
            0,
            FLAG_FLIP_TRANSPOSE | FLAG_NO_BIAS | mask_flag,
        );
        p.pad_w = (s.kw - 1 - s.pad) as u32;
        debug_assert_eq!((p.out_h, p.out_w), (s.in_h as u32, s.in_w as u32));
        // The flipped problem's output size follows from its own padding along each axis.
        p.out_h = s.in_h as u32;
        p.out_w = s.in_w as u32;
        push_forward_kernel(pb, p, dy, params, dx, mask.unwrap_or(params));
        return;
    }
    let p = ConvParams::new(s, batch, w, 0, mask_flag);
    let cols = (batch * s.in_h * s.in_w).div_ceil(4) as u32;
    let rows = s.in_c.div_ceil(4) as u32;
    pb.push(
        &CONV2D_BACKWARD_INPUT,
        &p,
        &[dy, params, dx, mask.unwrap_or(params)],
        [cols.div_ceil(8), rows.div_ceil(8), 1],
    );
}

/// How many ranges the GPU weight gradient splits the batch into (more = more parallel invocations,
/// more partial sums to add).
pub fn gpu_weight_splits(batch: usize) -> usize {
    batch.clamp(1, 16)
}

impl ConvShape {
    /// Floats of the GPU weight-gradient partials for `batch`: `splits * out_c * (k + 1)`.
    pub fn gpu_partial_len(&self, batch: usize) -> usize {
        gpu_weight_splits(batch) * self.out_c * (self.k() + 1)
    }
}

/// GPU [`conv2d_backward_weight`]: two dispatches. The first computes 8 output channels x 4 weight
/// elements per invocation over one range of the batch each into `partial` (`gpu_partial_len` floats);
/// the second adds the partials into the weight and bias gradients.
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_backward_weight(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w: usize,
    bias: usize,
    batch: usize,
    s: &ConvShape,
) {
    let mut p = ConvParams::new(s, batch, w, bias, 0);
    let splits = gpu_weight_splits(batch);
    p.splits = splits as u32;
    let tiles = (s.k().div_ceil(4) + 1) as u32;
    let rows = s.out_c.div_ceil(8) as u32;
    pb.push(
        &CONV2D_BACKWARD_WEIGHT,
        &p,
        &[dy, x, partial],
        [tiles.div_ceil(8), rows.div_ceil(8), splits as u32],
    );
    let n = (s.out_c * (s.k() + 1)).div_ceil(64) as u32;
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    pb.push_bindings(
        &CONV2D_WEIGHT_REDUCE,
        &p,
        &[(1, partial), (3, grads)],
        grid_1d(n, max),
    );
}

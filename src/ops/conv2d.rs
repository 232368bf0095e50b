//! 2-D convolution (PyTorch `nn.Conv2d`: cross-correlation, zero padding, stride, bias), forward and
//! both backward passes.
//!
//! Shapes: `x: [batch, in_c, in_h, in_w]`, weight `[out_c, in_c, kh, kw]`, bias `[out_c]`,
//! `y: [batch, out_c, out_h, out_w]` with `out_h = (in_h + 2 pad - kh) / stride + 1` (same for w).
//! CPU: [`super::conv2d_cpu`] (per-example im2col + serial GEMM, the batch split across threads),
//! re-exported here. GPU: `shaders/conv2d.wgsl`, implicit GEMM (no im2col buffer), every backward a
//! gather.

mod layer;
pub use layer::{parse, Conv2d, ConvLayer};

pub use super::conv2d_cpu::{
    col2im, conv2d_backward_input, conv2d_backward_weight, conv2d_forward, im2col, ConvWork,
};
use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};
use crate::device::window;

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
    /// A 3x3, stride-1, padding-1 convolution of `in_c` channels of `hw` x `hw` into `out_c` (the cnn
    /// preset's layers).
    pub const fn same_3x3(in_c: usize, hw: usize, out_c: usize) -> Self {
        ConvShape {
            in_c,
            in_h: hw,
            in_w: hw,
            out_c,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        }
    }

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
    pub a_base: u32,
    pub b_base: u32,
    pub n0: u32,
    pub pad3: u32,
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

/// GPU [`conv2d_forward`]: each invocation computes 8 output channels x 8 output positions.
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_forward(
    pb: &mut PlanBuilder<'_>,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w: usize,
    bias: Option<usize>,
    y: &wgpu::Buffer,
    batch: usize,
    s: &ConvShape,
    relu: bool,
) {
    let flags = if relu { FLAG_RELU } else { 0 } | if bias.is_none() { FLAG_NO_BIAS } else { 0 };
    let p = ConvParams::new(s, batch, w, bias.unwrap_or(0), flags);
    push_forward_kernel(pb, p, x, params, y, params);
}

fn push_forward_kernel(
    pb: &mut PlanBuilder<'_>,
    mut p: ConvParams,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    y: &wgpu::Buffer,
    aux: &wgpu::Buffer,
) {
    let groups = |examples: u32| {
        let cols = (examples * p.out_h * p.out_w).div_ceil(8);
        [cols.div_ceil(8), p.out_c.div_ceil(8).div_ceil(8), 1]
    };
    let in_len = (p.in_c * p.in_h * p.in_w) as usize;
    let w_len = (p.out_c * p.in_c * p.kh * p.kw) as usize;
    let invocations = |examples: usize| {
        (examples * (p.out_h * p.out_w) as usize).div_ceil(8) * (p.out_c as usize).div_ceil(8)
    };
    let windows = window_chunks(pb, p.batch as usize, in_len, &invocations).and_then(|chunks| {
        let w = p.w_off as usize;
        let ctx = pb.ctx();
        let b_base = window::place(ctx, params, w, w + w_len)?;
        let a_bases = chunks
            .iter()
            .map(|&(lo, hi)| window::place(ctx, x, lo * in_len, hi * in_len))
            .collect::<Option<Vec<_>>>()?;
        Some((chunks, a_bases, b_base))
    });
    let Some((chunks, a_bases, b_base)) = windows else {
        pb.push(&CONV2D_FORWARD, &p, &[x, params, y, aux], groups(p.batch));
        return;
    };
    let kernel = windowed(&CONV2D_FORWARD, "conv2d_forward_windowed");
    p.b_base = b_base as u32;
    for (&(lo, hi), a_base) in chunks.iter().zip(a_bases) {
        p.n0 = lo as u32;
        p.batch = (hi - lo) as u32;
        p.a_base = a_base as u32;
        let bindings = [
            (2, params, None),
            (3, y, None),
            (4, aux, None),
            (5, x, window::range(a_base)),
            (6, params, window::range(b_base)),
        ];
        pb.push_ranges(&kernel, &p, &bindings, groups(p.batch));
    }
}

/// Fewest invocations a window-variant dispatch should have: below this, splitting the batch into
/// windows leaves llvmpipe's threads idle, and the storage kernel (one dispatch) is used instead.
/// 64 was measured on lavapipe (2-core Zen 5): cnn batch 64's conv2 backward-input, 98 invocations
/// per window, ran 9.6 ms windowed against 10.9 ms on the storage kernel; 128 chose the slower one.
const MIN_WINDOW_INVOCATIONS: usize = 64;

/// The example ranges, one per dispatch, of a window variant over `batch` examples whose inputs take
/// `per_example` floats (the larger of the windowed operands'), or `None` when the adapter does not
/// prefer windows or the dispatches would be too small (`invocations` of a full range). Range `s` is
/// `s * batch / n .. (s + 1) * batch / n`, the batch split conv2d_backward_weight computes.
fn window_chunks(
    pb: &PlanBuilder<'_>,
    batch: usize,
    per_example: usize,
    invocations: &dyn Fn(usize) -> usize,
) -> Option<Vec<(usize, usize)>> {
    let fit = window::items_per_window(per_example);
    if !window::preferred(pb.ctx())
        || fit == 0
        || invocations(fit.min(batch)) < MIN_WINDOW_INVOCATIONS
    {
        return None;
    }
    let n = batch.div_ceil(fit);
    Some(
        (0..n)
            .map(|s| (s * batch / n, (s + 1) * batch / n))
            .collect(),
    )
}

/// A conv kernel's window variant (see `device::window`), from the one variant source of this file.
fn windowed(kernel: &Kernel, name: &'static str) -> Kernel {
    static VARIANT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    window::variant(
        kernel,
        name,
        VARIANT.get_or_init(|| window::variant_source(SOURCE)),
    )
}

/// GPU [`conv2d_backward_input`]. Stride 1 (padding below the kernel size): the forward kernel on `dy`
/// with transposed, flipped weights and padding `k - 1 - pad`. Otherwise the gather kernel, 4 input
/// channels x 4 input positions of one stride phase per invocation.
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
    // Invocations: (example, input row, x phase, group of 4 same-phase padded columns) x 4 channels.
    let q = (s.in_w + 2 * s.pad).div_ceil(s.stride);
    let cols = (batch * s.in_h * s.stride * q.div_ceil(4)) as u32;
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
    /// Floats of the GPU weight-gradient partials for `batch`: one `out_c * (k + 1)` block per batch
    /// split, as many as either the storage kernel or the window variant uses (so the buffer fits
    /// whichever the adapter picks).
    pub fn gpu_partial_len(&self, batch: usize) -> usize {
        let per_example = self.in_len().max(self.out_len());
        let windows = batch.div_ceil(window::items_per_window(per_example).max(1));
        gpu_weight_splits(batch).max(windows) * self.out_c * (self.k() + 1)
    }
}

/// GPU [`conv2d_backward_weight`]: the first kernel computes 8 output channels x 8 weight elements per
/// invocation over one range of the batch each into `partial` (`gpu_partial_len` floats); the reduce
/// dispatch adds the partials into the weight and bias gradients. The storage kernel covers all ranges
/// in one dispatch (gid.z); the window variant runs one dispatch per range, each reading its dy and x
/// through uniform windows.
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_backward_weight(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w: usize,
    bias: Option<usize>,
    batch: usize,
    s: &ConvShape,
) {
    let no_bias = if bias.is_none() { FLAG_NO_BIAS } else { 0 };
    let mut p = ConvParams::new(s, batch, w, bias.unwrap_or(0), no_bias);
    let tiles = s.k().div_ceil(8) + 1;
    let rows = s.out_c.div_ceil(8);
    let groups = [(tiles * rows).div_ceil(64) as u32, 1];
    let (dy_len, x_len) = (s.out_len(), s.in_len());
    let invocations = |_: usize| tiles * rows;
    let windows = window_chunks(pb, batch, dy_len.max(x_len), &invocations).and_then(|chunks| {
        let ctx = pb.ctx();
        chunks
            .iter()
            .map(|&(lo, hi)| {
                let a = window::place(ctx, dy, lo * dy_len, hi * dy_len)?;
                let b = window::place(ctx, x, lo * x_len, hi * x_len)?;
                Some((a, b))
            })
            .collect::<Option<Vec<_>>>()
    });
    match windows {
        None => {
            let splits = gpu_weight_splits(batch);
            p.splits = splits as u32;
            let wg = [groups[0], groups[1], splits as u32];
            pb.push(&CONV2D_BACKWARD_WEIGHT, &p, &[dy, x, partial], wg);
        }
        Some(bases) => {
            let kernel = windowed(&CONV2D_BACKWARD_WEIGHT, "conv2d_backward_weight_windowed");
            p.splits = bases.len() as u32;
            for (split, (a_base, b_base)) in bases.into_iter().enumerate() {
                p.n0 = split as u32;
                p.a_base = a_base as u32;
                p.b_base = b_base as u32;
                let bindings = [
                    (3, partial, None),
                    (5, dy, window::range(a_base)),
                    (6, x, window::range(b_base)),
                ];
                pb.push_ranges(&kernel, &p, &bindings, [groups[0], groups[1], 1]);
            }
        }
    }
    let n = (s.out_c * (s.k() + 1)).div_ceil(64) as u32;
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    pb.push_bindings(
        &CONV2D_WEIGHT_REDUCE,
        &p,
        &[(1, partial), (3, grads)],
        grid_1d(n, max),
    );
}

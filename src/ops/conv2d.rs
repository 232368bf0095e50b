//! 2-D convolution (PyTorch `nn.Conv2d`: cross-correlation, zero padding, stride, bias), forward and
//! both backward passes.
//!
//! Shapes: `x: [batch, in_c, in_h, in_w]`, weight `[out_c, in_c, kh, kw]`, bias `[out_c]`,
//! `y: [batch, out_c, out_h, out_w]` with `out_h = (in_h + 2 pad - kh) / stride + 1` (same for w).
//! CPU: im2col per example + gemm (`cols: [in_c*kh*kw, out_h*out_w]`), rayon over the batch; the weight
//! gradient is reduced over per-thread partial sums (deterministic for a given thread count).
//! GPU: `shaders/conv2d.wgsl`, implicit GEMM (no im2col buffer), every backward a gather.

use super::matmul::{matmul_serial, Strided};
use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};
use rayon::prelude::*;

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

/// Unfold one example `x: [in_c, in_h, in_w]` into `cols: [in_c*kh*kw, out_h*out_w]` (zeros for padding).
pub fn im2col(x: &[f32], s: &ConvShape, cols: &mut [f32]) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.p());
    for ci in 0..s.in_c {
        let plane = &x[ci * s.in_h * s.in_w..(ci + 1) * s.in_h * s.in_w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let row = (ci * s.kh + ky) * s.kw + kx;
                let dst = &mut cols[row * p..(row + 1) * p];
                for oy in 0..oh {
                    let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                    let line = &mut dst[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= s.in_h as isize {
                        line.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    for (ox, v) in line.iter_mut().enumerate() {
                        let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                        *v = if ix >= 0 && ix < s.in_w as isize {
                            src[ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: add `cols` back into `dx: [in_c, in_h, in_w]` (caller zeroes `dx`).
pub fn col2im_add(cols: &[f32], s: &ConvShape, dx: &mut [f32]) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.p());
    for ci in 0..s.in_c {
        let plane = &mut dx[ci * s.in_h * s.in_w..(ci + 1) * s.in_h * s.in_w];
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                let row = (ci * s.kh + ky) * s.kw + kx;
                let src = &cols[row * p..(row + 1) * p];
                for oy in 0..oh {
                    let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                    if iy < 0 || iy >= s.in_h as isize {
                        continue;
                    }
                    let line = &mut plane[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    for (ox, v) in src[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                        if ix >= 0 && ix < s.in_w as isize {
                            line[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward: `y = conv(x, w) + b`, then ReLU when `relu`. Keeps each example's im2col in `cols`
/// (`[batch, k, p]`) for the weight gradient.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    x: &[f32],
    params: &[f32],
    w: usize,
    bias: usize,
    y: &mut [f32],
    cols: &mut [f32],
    batch: usize,
    s: &ConvShape,
    relu: bool,
) {
    let (k, p, il, ol) = (s.k(), s.p(), s.in_len(), s.out_len());
    let b = &params[bias..bias + s.out_c];
    y[..batch * ol]
        .par_chunks_mut(ol)
        .zip(cols[..batch * k * p].par_chunks_mut(k * p))
        .zip(x[..batch * il].par_chunks(il))
        .for_each(|((yb, cb), xb)| {
            im2col(xb, s, cb);
            matmul_serial(
                s.out_c,
                p,
                k,
                params,
                Strided::rows(w, k),
                cb,
                Strided::rows(0, p),
                yb,
                0,
                p,
                false,
            );
            for (row, &bb) in yb.chunks_exact_mut(p).zip(b) {
                for v in row {
                    let t = *v + bb;
                    *v = if relu { t.max(0.0) } else { t };
                }
            }
        });
}

/// Backward to the input: `dx = conv_transpose(dy, w)`, zeroed where `mask <= 0`.
/// `dcols` is scratch of `[batch, k, p]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input(
    dy: &[f32],
    params: &[f32],
    w: usize,
    dx: &mut [f32],
    mask: Option<&[f32]>,
    dcols: &mut [f32],
    batch: usize,
    s: &ConvShape,
) {
    let (k, p, il, ol) = (s.k(), s.p(), s.in_len(), s.out_len());
    dx[..batch * il]
        .par_chunks_mut(il)
        .zip(dcols[..batch * k * p].par_chunks_mut(k * p))
        .zip(dy[..batch * ol].par_chunks(ol))
        .enumerate()
        .for_each(|(bi, ((dxb, dcb), dyb))| {
            // dcols[k, p] = W^T [k, out_c] * dy [out_c, p]
            matmul_serial(
                k,
                p,
                s.out_c,
                params,
                Strided::transposed(w, k),
                dyb,
                Strided::rows(0, p),
                dcb,
                0,
                p,
                false,
            );
            dxb.fill(0.0);
            col2im_add(dcb, s, dxb);
            if let Some(mask) = mask {
                for (d, &m) in dxb.iter_mut().zip(&mask[bi * il..(bi + 1) * il]) {
                    if m <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
        });
}

/// Backward to the parameters: `dw[out_c, k] = sum_b dy_b cols_b^T`, `db = sum over batch and positions
/// of dy`, into `grads[w..]` and `grads[bias..]`. `partial` holds `threads * (out_c*k + out_c)` floats:
/// the batch is split into `threads` contiguous ranges summed separately, then added in order.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    dy: &[f32],
    cols: &[f32],
    grads: &mut [f32],
    w: usize,
    bias: usize,
    partial: &mut [f32],
    batch: usize,
    s: &ConvShape,
) {
    let (k, p, ol) = (s.k(), s.p(), s.out_len());
    let part_len = s.out_c * k + s.out_c;
    let threads = partial.len() / part_len;
    assert!(
        threads >= 1,
        "conv2d_backward_weight: partial buffer too small"
    );
    partial[..threads * part_len]
        .par_chunks_mut(part_len)
        .enumerate()
        .for_each(|(t, part)| {
            let (lo, hi) = (t * batch / threads, (t + 1) * batch / threads);
            part.fill(0.0);
            let (dw, db) = part.split_at_mut(s.out_c * k);
            for b in lo..hi {
                let dyb = &dy[b * ol..(b + 1) * ol];
                let cb = &cols[b * k * p..(b + 1) * k * p];
                matmul_serial(
                    s.out_c,
                    k,
                    p,
                    dyb,
                    Strided::rows(0, p),
                    cb,
                    Strided::transposed(0, p),
                    dw,
                    0,
                    k,
                    true,
                );
                for (g, row) in db.iter_mut().zip(dyb.chunks_exact(p)) {
                    *g += row.iter().sum::<f32>();
                }
            }
        });
    let (gw, gb) = (w..w + s.out_c * k, bias..bias + s.out_c);
    grads[gw.clone()].fill(0.0);
    grads[gb.clone()].fill(0.0);
    for part in partial[..threads * part_len].chunks_exact(part_len) {
        for (g, v) in grads[gw.clone()].iter_mut().zip(&part[..s.out_c * k]) {
            *g += v;
        }
        for (g, v) in grads[gb.clone()].iter_mut().zip(&part[s.out_c * k..]) {
            *g += v;
        }
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

pub const FLAG_RELU: u32 = 2;
pub const FLAG_MASK: u32 = 4;

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
    pub pad0: u32,
    pub pad1: u32,
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
            ..Default::default()
        }
    }
}

/// GPU [`conv2d_forward`]: each invocation computes 4 output channels x 4 output positions.
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
    let cols = (batch * s.p()).div_ceil(4) as u32;
    let rows = s.out_c.div_ceil(4) as u32;
    pb.push(
        &CONV2D_FORWARD,
        &p,
        &[x, params, y],
        [cols.div_ceil(8), rows.div_ceil(8), 1],
    );
}

/// GPU [`conv2d_backward_input`]: each invocation computes 4 input channels x 4 input positions.
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
    let p = ConvParams::new(s, batch, w, 0, if mask.is_some() { FLAG_MASK } else { 0 });
    let cols = (batch * s.in_h * s.in_w).div_ceil(4) as u32;
    let rows = s.in_c.div_ceil(4) as u32;
    pb.push(
        &CONV2D_BACKWARD_INPUT,
        &p,
        &[dy, params, dx, mask.unwrap_or(params)],
        [cols.div_ceil(8), rows.div_ceil(8), 1],
    );
}

/// GPU [`conv2d_backward_weight`]: one invocation per weight element plus one per bias element, each
/// reducing over the batch and output positions (a gather; no atomics).
#[allow(clippy::too_many_arguments)]
pub fn push_conv2d_backward_weight(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w: usize,
    bias: usize,
    batch: usize,
    s: &ConvShape,
) {
    let p = ConvParams::new(s, batch, w, bias, 0);
    let n = (s.out_c * (s.k() + 1)).div_ceil(64) as u32;
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    pb.push(
        &CONV2D_BACKWARD_WEIGHT,
        &p,
        &[dy, x, grads],
        grid_1d(n, max),
    );
}

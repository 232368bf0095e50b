//! 2-D convolution (PyTorch `nn.Conv2d`: cross-correlation, zero padding, stride, bias), forward and
//! both backward passes.
//!
//! Shapes: `x: [batch, in_c, in_h, in_w]`, weight `[out_c, in_c, kh, kw]`, bias `[out_c]`,
//! `y: [batch, out_c, out_h, out_w]` with `out_h = (in_h + 2 pad - kh) / stride + 1` (same for w).
//! CPU: im2col of the whole batch (`cols: [in_c*kh*kw, batch*out_h*out_w]`) and ONE multithreaded GEMM
//! per pass (forward, input gradient, weight gradient), which runs near the GEMM's peak where per-example
//! GEMMs were too small; the reshuffles between `[batch, c, p]` and `[c, batch*p]` are rayon loops.
//! GPU: `shaders/conv2d.wgsl`, implicit GEMM (no im2col buffer), every backward a gather.

use super::matmul::{matmul, matmul_serial, Strided};
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

/// For kernel offset `k` (ky or kx) and stride 1: the output indices `o` whose input `o + k - pad`
/// lies inside `0..len`, as a half-open range (empty when none).
fn valid_range(k: usize, pad: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(k).min(out);
    let hi = (len + pad).saturating_sub(k).min(out).max(lo);
    (lo, hi)
}

/// Unfold a batch `x: [batch, in_c, in_h, in_w]` into `cols: [in_c*kh*kw, batch*out_h*out_w]`
/// (column `b*p + q` holds output position `q` of example `b`; zeros for padding). Parallel over rows;
/// with stride 1 each output row is one contiguous copy plus zeroed edges.
pub fn im2col(x: &[f32], s: &ConvShape, batch: usize, cols: &mut [f32]) {
    let (oh, ow, p, il) = (s.out_h(), s.out_w(), s.p(), s.in_len());
    let plane = s.in_h * s.in_w;
    cols[..s.k() * batch * p]
        .par_chunks_mut(batch * p)
        .enumerate()
        .for_each(|(row, dst)| {
            let (ci, ky, kx) = (row / (s.kh * s.kw), (row / s.kw) % s.kh, row % s.kw);
            let (x_lo, x_hi) = valid_range(kx, s.pad, s.in_w, ow);
            for b in 0..batch {
                let src = &x[b * il + ci * plane..b * il + (ci + 1) * plane];
                let out = &mut dst[b * p..(b + 1) * p];
                for oy in 0..oh {
                    let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                    let line = &mut out[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= s.in_h as isize {
                        line.fill(0.0);
                        continue;
                    }
                    let src_row = &src[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    if s.stride == 1 {
                        line[..x_lo].fill(0.0);
                        let start = x_lo + kx - s.pad;
                        line[x_lo..x_hi].copy_from_slice(&src_row[start..start + (x_hi - x_lo)]);
                        line[x_hi..].fill(0.0);
                        continue;
                    }
                    for (ox, v) in line.iter_mut().enumerate() {
                        let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                        *v = if ix >= 0 && ix < s.in_w as isize {
                            src_row[ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        });
}

/// The adjoint of [`im2col`]: `dx[b] = sum of the columns of example b folded back` (overwrites `dx`).
/// Parallel over examples; with stride 1 each output row is one contiguous slice addition.
pub fn col2im(cols: &[f32], s: &ConvShape, batch: usize, dx: &mut [f32]) {
    let (oh, ow, p, il) = (s.out_h(), s.out_w(), s.p(), s.in_len());
    let plane = s.in_h * s.in_w;
    let n = batch * p;
    dx[..batch * il]
        .par_chunks_mut(il)
        .enumerate()
        .for_each(|(b, dxb)| {
            dxb.fill(0.0);
            for row in 0..s.k() {
                let (ci, ky, kx) = (row / (s.kh * s.kw), (row / s.kw) % s.kh, row % s.kw);
                let (x_lo, x_hi) = valid_range(kx, s.pad, s.in_w, ow);
                let src = &cols[row * n + b * p..row * n + (b + 1) * p];
                let plane_dx = &mut dxb[ci * plane..(ci + 1) * plane];
                for oy in 0..oh {
                    let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                    if iy < 0 || iy >= s.in_h as isize {
                        continue;
                    }
                    let line = &mut plane_dx[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    let src_row = &src[oy * ow..(oy + 1) * ow];
                    if s.stride == 1 {
                        let start = x_lo + kx - s.pad;
                        for (d, v) in line[start..start + (x_hi - x_lo)]
                            .iter_mut()
                            .zip(&src_row[x_lo..x_hi])
                        {
                            *d += v;
                        }
                        continue;
                    }
                    for (ox, v) in src_row.iter().enumerate() {
                        let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                        if ix >= 0 && ix < s.in_w as isize {
                            line[ix as usize] += v;
                        }
                    }
                }
            }
        });
}

/// `[batch, c, p]` -> `[c, batch*p]` (what the batched GEMMs read and write). The backward passes take
/// the output gradient in this layout; convert it once and pass it to both.
pub fn to_channel_major(src: &[f32], dst: &mut [f32], batch: usize, c: usize, p: usize) {
    dst[..c * batch * p]
        .par_chunks_mut(batch * p)
        .enumerate()
        .for_each(|(ch, row)| {
            for b in 0..batch {
                row[b * p..(b + 1) * p]
                    .copy_from_slice(&src[(b * c + ch) * p..(b * c + ch + 1) * p]);
            }
        });
}

/// Sizes of the working memory the CPU convolution needs for `batch` examples.
impl ConvShape {
    /// Floats of the im2col matrix (and of its gradient): `k * batch * p`.
    pub fn cols_len(&self, batch: usize) -> usize {
        self.k() * batch * self.p()
    }

    /// Floats of the channel-major output/gradient scratch: `out_c * batch * p`.
    pub fn tmp_len(&self, batch: usize) -> usize {
        self.out_c * batch * self.p()
    }
}

/// Forward: `y = conv(x, w) + b`, then ReLU when `relu`. One GEMM for the whole batch:
/// `tmp[out_c, batch*p] = W[out_c, k] cols[k, batch*p]`, then scattered to `y: [batch, out_c, p]`.
/// `cols` (`cols_len`) keeps the im2col of the batch for the weight gradient; `tmp` is `tmp_len`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    x: &[f32],
    params: &[f32],
    w: usize,
    bias: usize,
    y: &mut [f32],
    cols: &mut [f32],
    tmp: &mut [f32],
    batch: usize,
    s: &ConvShape,
    relu: bool,
) {
    let (k, p, ol) = (s.k(), s.p(), s.out_len());
    let n = batch * p;
    im2col(x, s, batch, cols);
    matmul(
        s.out_c,
        n,
        k,
        params,
        Strided::rows(w, k),
        cols,
        Strided::rows(0, n),
        tmp,
        0,
        n,
        false,
    );
    let b = &params[bias..bias + s.out_c];
    let tmp = &*tmp;
    y[..batch * ol]
        .par_chunks_mut(ol)
        .enumerate()
        .for_each(|(bi, yb)| {
            for (co, (row, &bb)) in yb.chunks_exact_mut(p).zip(b).enumerate() {
                let src = &tmp[co * n + bi * p..co * n + (bi + 1) * p];
                for (v, &t) in row.iter_mut().zip(src) {
                    let t = t + bb;
                    *v = if relu { t.max(0.0) } else { t };
                }
            }
        });
}

/// Backward to the input: `dcols = W^T dY` (one GEMM over the batch), folded back by [`col2im`], then
/// zeroed where `mask <= 0`. `dy_cm` is the output gradient channel-major (`[out_c, batch*p]`, see
/// [`to_channel_major`]); `dcols` is `cols_len`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input(
    dy_cm: &[f32],
    params: &[f32],
    w: usize,
    dx: &mut [f32],
    mask: Option<&[f32]>,
    dcols: &mut [f32],
    batch: usize,
    s: &ConvShape,
) {
    let (k, p) = (s.k(), s.p());
    let n = batch * p;
    matmul(
        k,
        n,
        s.out_c,
        params,
        Strided::transposed(w, k),
        dy_cm,
        Strided::rows(0, n),
        dcols,
        0,
        n,
        false,
    );
    col2im(dcols, s, batch, dx);
    if let Some(mask) = mask {
        let il = batch * s.in_len();
        dx[..il]
            .par_chunks_mut(4096)
            .zip(mask[..il].par_chunks(4096))
            .for_each(|(d, m)| {
                for (d, &m) in d.iter_mut().zip(m) {
                    if m <= 0.0 {
                        *d = 0.0;
                    }
                }
            });
    }
}

/// Backward to the parameters: `dW[out_c, k] = dY[out_c, batch*p] cols[k, batch*p]^T` and
/// `db = row sums of dY`, into `grads[w..]` and `grads[bias..]`. `dy_cm` is the output gradient
/// channel-major (see [`to_channel_major`]).
/// The reduction runs over `batch*p` (long) into a small `out_c x k` result, which one GEMM cannot
/// spread over threads; so the reduction is split into one contiguous range per thread, each range a
/// single-threaded GEMM into its own partial sum (in `partial`, `threads * (out_c*k + out_c)` floats),
/// and the partials are added in order — deterministic for a given thread count.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    dy_cm: &[f32],
    cols: &[f32],
    grads: &mut [f32],
    w: usize,
    bias: usize,
    partial: &mut [f32],
    batch: usize,
    s: &ConvShape,
) {
    let (k, p) = (s.k(), s.p());
    let n = batch * p;
    let tmp = dy_cm;
    let part_len = s.out_c * k + s.out_c;
    let threads = (partial.len() / part_len).max(1);
    assert!(
        partial.len() >= part_len,
        "conv2d_backward_weight: partial buffer too small"
    );
    partial[..threads * part_len]
        .par_chunks_mut(part_len)
        .enumerate()
        .for_each(|(t, part)| {
            let (lo, hi) = (t * n / threads, (t + 1) * n / threads);
            let (dw, db) = part.split_at_mut(s.out_c * k);
            matmul_serial(
                s.out_c,
                k,
                hi - lo,
                tmp,
                Strided {
                    off: lo,
                    rs: n,
                    cs: 1,
                },
                cols,
                Strided {
                    off: lo,
                    rs: 1,
                    cs: n,
                },
                dw,
                0,
                k,
                false,
            );
            for (g, row) in db.iter_mut().zip(tmp.chunks_exact(n)) {
                *g = row[lo..hi].iter().sum();
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

impl ConvShape {
    /// Floats of the per-thread partial sums of [`conv2d_backward_weight`] for `threads` threads.
    pub fn partial_len(&self, threads: usize) -> usize {
        threads.max(1) * (self.out_c * self.k() + self.out_c)
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

//! 2-D max and average pooling (square window `k`, stride, no padding), forward and backward.
//!
//! Shapes: `x: [batch, c, in_h, in_w]`, `y: [batch, c, out_h, out_w]`, `out = (in - k) / stride + 1`.
//! Max pooling keeps, per output, the index of the winning input inside its channel plane
//! (`iy * in_w + ix`; ties go to the first in row-major order), and the backward pass routes the gradient
//! there. The GPU backward is a gather over the windows containing each input (`shaders/pool.wgsl`).

use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};

mod layer;
pub use layer::{parse, Pool, PoolLayer};
use rayon::prelude::*;

/// Max or average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Geometry of one pooling layer (per example).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    pub kind: PoolKind,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k: usize,
    pub stride: usize,
}

impl PoolShape {
    pub fn out_h(&self) -> usize {
        (self.in_h - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w - self.k) / self.stride + 1
    }

    pub fn in_len(&self) -> usize {
        self.channels * self.in_h * self.in_w
    }

    pub fn out_len(&self) -> usize {
        self.channels * self.out_h() * self.out_w()
    }
}

/// Forward over `batch` examples; `argmax` (`[batch, out_len]`) is written for max pooling.
pub fn pool_forward(x: &[f32], y: &mut [f32], argmax: &mut [u32], batch: usize, s: &PoolShape) {
    let (ih, iw, oh, ow) = (s.in_h, s.in_w, s.out_h(), s.out_w());
    let planes = batch * s.channels;
    let area = (s.k * s.k) as f32;
    y[..planes * oh * ow]
        .par_chunks_mut(oh * ow)
        .zip(argmax[..planes * oh * ow].par_chunks_mut(oh * ow))
        .zip(x[..planes * ih * iw].par_chunks(ih * iw))
        .for_each(|((yp, ap), xp)| {
            if s.kind == PoolKind::Max && s.k == 2 && s.stride == 2 {
                max_pool_2x2(xp, iw, oh, ow, yp, ap);
                return;
            }
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, x0) = (oy * s.stride, ox * s.stride);
                    let o = oy * ow + ox;
                    match s.kind {
                        PoolKind::Max => {
                            let mut arg = y0 * iw + x0;
                            let mut best = xp[arg];
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    let at = (y0 + ky) * iw + x0 + kx;
                                    if xp[at] > best {
                                        best = xp[at];
                                        arg = at;
                                    }
                                }
                            }
                            yp[o] = best;
                            ap[o] = arg as u32;
                        }
                        PoolKind::Avg => {
                            let mut sum = 0.0;
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    sum += xp[(y0 + ky) * iw + x0 + kx];
                                }
                            }
                            yp[o] = sum / area;
                        }
                    }
                }
            }
        });
}

/// The common case, 2x2 windows with stride 2, on one channel plane: two input rows per output row,
/// no inner window loops. Same tie rule (first in row-major order wins).
fn max_pool_2x2(xp: &[f32], iw: usize, oh: usize, ow: usize, yp: &mut [f32], ap: &mut [u32]) {
    for oy in 0..oh {
        let top = &xp[2 * oy * iw..(2 * oy + 1) * iw];
        let bottom = &xp[(2 * oy + 1) * iw..(2 * oy + 2) * iw];
        let (yr, ar) = (
            &mut yp[oy * ow..(oy + 1) * ow],
            &mut ap[oy * ow..(oy + 1) * ow],
        );
        for ox in 0..ow {
            let x0 = 2 * ox;
            let cands = [
                (top[x0], 2 * oy * iw + x0),
                (top[x0 + 1], 2 * oy * iw + x0 + 1),
                (bottom[x0], (2 * oy + 1) * iw + x0),
                (bottom[x0 + 1], (2 * oy + 1) * iw + x0 + 1),
            ];
            let mut best = cands[0];
            for c in &cands[1..] {
                if c.0 > best.0 {
                    best = *c;
                }
            }
            yr[ox] = best.0;
            ar[ox] = best.1 as u32;
        }
    }
}

/// Backward to the input, zeroed where `mask <= 0` (the ReLU that produced `x`).
pub fn pool_backward(
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    mask: Option<&[f32]>,
    batch: usize,
    s: &PoolShape,
) {
    let (ih, iw, oh, ow) = (s.in_h, s.in_w, s.out_h(), s.out_w());
    let planes = batch * s.channels;
    let area = (s.k * s.k) as f32;
    dx[..planes * ih * iw]
        .par_chunks_mut(ih * iw)
        .enumerate()
        .for_each(|(plane, dxp)| {
            dxp.fill(0.0);
            let dyp = &dy[plane * oh * ow..(plane + 1) * oh * ow];
            let ap = &argmax[plane * oh * ow..(plane + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = oy * ow + ox;
                    match s.kind {
                        PoolKind::Max => dxp[ap[o] as usize] += dyp[o],
                        PoolKind::Avg => {
                            let (y0, x0) = (oy * s.stride, ox * s.stride);
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    dxp[(y0 + ky) * iw + x0 + kx] += dyp[o] / area;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(mask) = mask {
                super::relu_mask(dxp, &mask[plane * ih * iw..(plane + 1) * ih * iw]);
            }
        });
}

// ---------------------------------------------------------------------------------------------------
// GPU launchers

const SOURCE: &str = include_str!("../../shaders/pool.wgsl");

pub const POOL_FORWARD: Kernel = Kernel {
    name: "pool_forward",
    source: SOURCE,
    entry: "pool_forward",
};

pub const POOL_BACKWARD: Kernel = Kernel {
    name: "pool_backward",
    source: SOURCE,
    entry: "pool_backward",
};

const FLAG_MAX: u32 = 1;
/// One invocation per row; 64 invocations per workgroup (pool.wgsl).
const ROWS_PER_WORKGROUP: usize = 64;
const FLAG_MASK: u32 = 4;

/// Uniform of `shaders/pool.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
    pub batch: u32,
    pub channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub k: u32,
    pub stride: u32,
    pub flags: u32,
    pub pad: [u32; 3],
}

impl PoolParams {
    fn new(s: &PoolShape, batch: usize, mask: bool) -> Self {
        PoolParams {
            batch: batch as u32,
            channels: s.channels as u32,
            in_h: s.in_h as u32,
            in_w: s.in_w as u32,
            out_h: s.out_h() as u32,
            out_w: s.out_w() as u32,
            k: s.k as u32,
            stride: s.stride as u32,
            flags: if s.kind == PoolKind::Max { FLAG_MAX } else { 0 }
                | if mask { FLAG_MASK } else { 0 },
            pad: [0; 3],
        }
    }
}

/// GPU [`pool_forward`]; `argmax` is a u32 buffer of `[batch, out_len]` (bound for both kinds).
pub fn push_pool_forward(
    pb: &mut PlanBuilder<'_>,
    x: &wgpu::Buffer,
    argmax: &wgpu::Buffer,
    y: &wgpu::Buffer,
    batch: usize,
    s: &PoolShape,
) {
    let n = (batch * s.channels * s.out_h()).div_ceil(ROWS_PER_WORKGROUP) as u32;
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    pb.push(
        &POOL_FORWARD,
        &PoolParams::new(s, batch, false),
        &[x, argmax, y],
        grid_1d(n, max),
    );
}

/// GPU [`pool_backward`].
#[allow(clippy::too_many_arguments)]
pub fn push_pool_backward(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    argmax: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    mask: Option<&wgpu::Buffer>,
    batch: usize,
    s: &PoolShape,
) {
    let n = (batch * s.channels * s.in_h).div_ceil(ROWS_PER_WORKGROUP) as u32;
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    pb.push(
        &POOL_BACKWARD,
        &PoolParams::new(s, batch, mask.is_some()),
        &[dy, argmax, dx, mask.unwrap_or(dy)],
        grid_1d(n, max),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2x2 fast paths against the window definition: odd and even sides, ties (first in
    /// row-major order wins), a ReLU mask, and the uncovered last row / column.
    #[test]
    fn max_pool_2x2_matches_the_window_definition() {
        for (ih, iw) in [(4, 6), (7, 7), (5, 8), (28, 28)] {
            let s = PoolShape {
                kind: PoolKind::Max,
                channels: 3,
                in_h: ih,
                in_w: iw,
                k: 2,
                stride: 2,
            };
            let batch = 2;
            let (oh, ow) = (s.out_h(), s.out_w());
            // Few distinct values, so windows often tie.
            let x: Vec<f32> = (0..batch * s.in_len())
                .map(|i| ((i * 7919) % 5) as f32 - 2.0)
                .collect();
            let mask: Vec<f32> = (0..x.len()).map(|i| ((i * 31) % 3) as f32 - 1.0).collect();
            let dy: Vec<f32> = (0..batch * s.out_len()).map(|i| 1.0 + i as f32).collect();
            let mut y = vec![f32::NAN; dy.len()];
            let mut arg = vec![u32::MAX; dy.len()];
            pool_forward(&x, &mut y, &mut arg, batch, &s);
            let mut want_dx = vec![0f32; x.len()];
            for p in 0..batch * s.channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = p * oh * ow + oy * ow + ox;
                        let mut best = (f32::NEG_INFINITY, usize::MAX);
                        for ky in 0..2 {
                            for kx in 0..2 {
                                let at = (2 * oy + ky) * iw + 2 * ox + kx;
                                if best.1 == usize::MAX || x[p * ih * iw + at] > best.0 {
                                    best = (x[p * ih * iw + at], at);
                                }
                            }
                        }
                        assert_eq!(y[o], best.0, "{ih}x{iw} plane {p} ({oy}, {ox})");
                        assert_eq!(arg[o] as usize, best.1, "{ih}x{iw} plane {p} ({oy}, {ox})");
                        let at = p * ih * iw + best.1;
                        if mask[at] > 0.0 {
                            want_dx[at] = dy[o];
                        }
                    }
                }
            }
            let mut dx = vec![f32::NAN; x.len()];
            pool_backward(&dy, &arg, &mut dx, Some(&mask), batch, &s);
            assert_eq!(dx, want_dx, "{ih}x{iw} backward");
        }
    }
}

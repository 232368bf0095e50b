//! The three passes of a stride-1 convolution on the direct kernels, one example at a time (the
//! weight gradient a group of examples at a time), for `conv2d_cpu`'s per-thread loops. Geometry and
//! the padded layouts are in the parent module's docs.

use super::{correlate, pack, reduce, Group, Plan, REDUCE_ROWS, SLACK};
use crate::ops::conv2d::ConvShape;

/// Bytes of one weight-gradient group's inputs and output gradients, kept in L2.
const GROUP_BYTES: usize = 192 * 1024;

/// The geometry and packed filters of one convolution shape.
#[derive(Debug, Clone)]
pub struct Direct {
    s: ConvShape,
    /// Floats per row of the wide layout: the padded width, or with a stride a phase plane's width.
    pw: usize,
    /// Floats per (phase) plane.
    plane: usize,
    /// Floats of one padded example (planes plus slack).
    x_stride: usize,
    /// Output positions in the wide layout, `out_h * pw`.
    n: usize,
    fwd: Plan,
    fstride: usize,
    /// Forward / weight-gradient offsets into the padded input, per reduction index.
    offs: Vec<u32>,
    bwd: Plan,
    bstride: usize,
    /// Input-gradient positions computed, `in_h * pw`, starting at `q0 = pad * pw`.
    nq: usize,
    q0: usize,
    /// Floats per output-gradient plane of `dybig`, and the zeros before its data.
    l: usize,
    lead: usize,
    boffs: Vec<u32>,
    /// Weight gradient: positions rounded up to 8, and floats per example of the widened gradient.
    n8: usize,
    dy_stride: usize,
    pub group: usize,
    wpack: Vec<f32>,
    wtpack: Vec<f32>,
}

/// One thread's buffers.
#[derive(Debug, Clone)]
pub struct DirectLane {
    xpad: Vec<f32>,
    out: Vec<f32>,
    dybig: Vec<f32>,
    dyg: Vec<f32>,
}

impl Direct {
    /// For any shape. A strided one is laid out in phase planes (see [`pad_input`](Self::pad_input))
    /// so that its forward pass and weight gradient are the same offset correlations; its input
    /// gradient is left to im2col + GEMM ([`input_direct`](Self::input_direct) is false).
    pub fn new(s: &ConvShape) -> Self {
        let st = s.stride;
        let (ph, pw) = (s.in_h + 2 * s.pad, s.in_w + 2 * s.pad);
        // Phase planes: padded row y, column x at plane (y % st, x % st), position (y / st, x / st).
        let (phh, pwh) = (ph.div_ceil(st), pw.div_ceil(st));
        let plane = phh * pwh;
        let (k, kk) = (s.k(), s.kh * s.kw);
        let offs = (0..k)
            .map(|r| {
                let (ci, ky, kx) = (r / kk, (r / s.kw) % s.kh, r % s.kw);
                let phase = (ci * st + ky % st) * st + kx % st;
                (phase * plane + (ky / st) * pwh + kx / st) as u32
            })
            .collect();
        let n = s.out_h() * pwh;
        let fwd = Plan::for_rows(s.out_c);
        let input_direct = st == 1;
        let lead = (s.kh - 1) * pw + s.kw - 1;
        let (l, boffs, bwd) = if input_direct {
            let l = ((s.pad + s.in_h + s.kh - 1) * pw + s.kw).max(lead + n + 1);
            let boffs = (0..s.out_c * kk)
                .map(|r| {
                    let (co, ky, kx) = (r / kk, (r / s.kw) % s.kh, r % s.kw);
                    (co * l + ky * pw + kx) as u32
                })
                .collect();
            (l, boffs, Plan::for_rows(s.in_c))
        } else {
            (0, Vec::new(), Plan::for_rows(0))
        };
        let nq = s.in_h * pw;
        let n8 = n.div_ceil(8) * 8;
        let dy_stride = s.out_c.div_ceil(REDUCE_ROWS) * REDUCE_ROWS * n8;
        let x_stride = s.in_c * st * st * plane + s.kw + SLACK;
        let group = (GROUP_BYTES / (4 * (x_stride + dy_stride))).clamp(1, 8);
        Direct {
            fstride: fwd.stride(n),
            bstride: bwd.stride(nq),
            s: *s,
            pw: pwh,
            plane,
            x_stride,
            n,
            fwd,
            offs,
            bwd,
            nq,
            q0: s.pad * pw,
            l,
            lead,
            boffs,
            n8,
            dy_stride,
            group,
            wpack: Vec::new(),
            wtpack: Vec::new(),
        }
    }

    /// Whether the input gradient runs here (stride 1) rather than through im2col + GEMM.
    pub fn input_direct(&self) -> bool {
        self.s.stride == 1
    }

    /// Buffers for one thread.
    pub fn lane(&self) -> DirectLane {
        let s = &self.s;
        let out = (self.fwd.rows() * self.fstride).max(self.bwd.rows() * self.bstride);
        DirectLane {
            xpad: vec![0.0; self.group * self.x_stride],
            out: vec![0.0; out],
            dybig: vec![
                0.0;
                if self.input_direct() {
                    s.out_c * self.l + SLACK
                } else {
                    0
                }
            ],
            dyg: vec![0.0; self.group * self.dy_stride],
        }
    }

    /// Pack the filters `params[w..]` for the forward pass.
    pub fn pack_forward(&mut self, params: &[f32], w: usize) {
        let k = self.s.k();
        pack(&mut self.wpack, self.s.out_c, k, &self.fwd, |r, kk| {
            params[w + r * k + kk]
        });
    }

    /// Pack the flipped, transposed filters for the input gradient.
    pub fn pack_backward(&mut self, params: &[f32], w: usize) {
        let s = self.s;
        let kk = s.kh * s.kw;
        pack(
            &mut self.wtpack,
            s.in_c,
            s.out_c * kk,
            &self.bwd,
            |ci, r| {
                let (co, ky, kx) = (r / kk, (r / s.kw) % s.kh, r % s.kw);
                params[w + ((co * s.in_c + ci) * s.kh + s.kh - 1 - ky) * s.kw + s.kw - 1 - kx]
            },
        );
    }

    /// `dst = the example x: [in_c, in_h, in_w]` zero-padded to `[in_c, ph, pw]`, slack zero; with
    /// a stride, each channel's padded plane split into `stride^2` phase planes `[phh, pwh]`.
    fn pad_input(&self, x: &[f32], dst: &mut [f32]) {
        let s = &self.s;
        let st = s.stride;
        dst.fill(0.0);
        for ci in 0..s.in_c {
            for iy in 0..s.in_h {
                let src = &x[(ci * s.in_h + iy) * s.in_w..][..s.in_w];
                let y = iy + s.pad;
                if st == 1 {
                    let at = ci * self.plane + y * self.pw + s.pad;
                    dst[at..at + s.in_w].copy_from_slice(src);
                    continue;
                }
                let row = (ci * st + y % st) * st;
                for px in 0..st {
                    // Padded columns xx = px, px + st, .. that hold input: from the first at or
                    // after the padding; position xx / st in phase plane px.
                    let first = s.pad + (px + st - s.pad % st) % st;
                    if first >= s.pad + s.in_w {
                        continue;
                    }
                    let line = &mut dst[(row + px) * self.plane + (y / st) * self.pw..][..self.pw];
                    for (d, &v) in line[first / st..]
                        .iter_mut()
                        .zip(src[first - s.pad..].iter().step_by(st))
                    {
                        *d = v;
                    }
                }
            }
        }
    }

    /// `y = relu?(conv(x) + bias)` for one example (after [`pack_forward`](Self::pack_forward)).
    pub fn forward(
        &self,
        x: &[f32],
        y: &mut [f32],
        bias: &[f32],
        relu: bool,
        lane: &mut DirectLane,
    ) {
        let s = &self.s;
        let (oh, ow) = (s.out_h(), s.out_w());
        let xpad = &mut lane.xpad[..self.x_stride];
        self.pad_input(x, xpad);
        correlate(
            xpad,
            &self.offs,
            &self.wpack,
            &self.fwd,
            &mut lane.out,
            self.fstride,
            self.n,
        );
        for (co, (yc, &b)) in y.chunks_exact_mut(oh * ow).zip(bias).enumerate() {
            let src = &lane.out[co * self.fstride..];
            for (oy, line) in yc.chunks_exact_mut(ow).enumerate() {
                crate::ops::conv2d_cpu::bias_relu(line, &src[oy * self.pw..][..ow], b, relu);
            }
        }
    }

    /// `dx = the input gradient of one example`, zeroed where `mask <= 0` (after
    /// [`pack_backward`](Self::pack_backward)).
    pub fn backward_input(
        &self,
        dy: &[f32],
        dx: &mut [f32],
        mask: Option<&[f32]>,
        lane: &mut DirectLane,
    ) {
        let s = &self.s;
        assert!(
            self.input_direct(),
            "strided input gradients take im2col + GEMM"
        );
        let (oh, ow) = (s.out_h(), s.out_w());
        let big = &mut lane.dybig;
        big.fill(0.0);
        for (co, dyc) in dy.chunks_exact(oh * ow).enumerate() {
            for (oy, line) in dyc.chunks_exact(ow).enumerate() {
                let at = co * self.l + self.lead + oy * self.pw;
                big[at..at + ow].copy_from_slice(line);
            }
        }
        correlate(
            &big[self.q0..],
            &self.boffs,
            &self.wtpack,
            &self.bwd,
            &mut lane.out,
            self.bstride,
            self.nq,
        );
        for (ci, dxc) in dx.chunks_exact_mut(s.in_h * s.in_w).enumerate() {
            let src = &lane.out[ci * self.bstride + s.pad..];
            for (iy, line) in dxc.chunks_exact_mut(s.in_w).enumerate() {
                line.copy_from_slice(&src[iy * self.pw..][..s.in_w]);
            }
        }
        if let Some(mask) = mask {
            crate::ops::relu_mask(dx, mask);
        }
    }

    /// `dw[out_c, k] += sum over the examples of x_e * dy_e` for the examples `xs` / `dys` (whole
    /// examples, in order), a group at a time.
    pub fn backward_weight(&self, xs: &[f32], dys: &[f32], dw: &mut [f32], lane: &mut DirectLane) {
        let s = &self.s;
        let (il, ol, ow) = (s.in_len(), s.out_len(), s.out_w());
        let examples = xs.len() / il;
        for g0 in (0..examples).step_by(self.group) {
            let g = self.group.min(examples - g0);
            for i in 0..g {
                let e = g0 + i;
                self.pad_input(
                    &xs[e * il..(e + 1) * il],
                    &mut lane.xpad[i * self.x_stride..(i + 1) * self.x_stride],
                );
                let slot = &mut lane.dyg[i * self.dy_stride..(i + 1) * self.dy_stride];
                slot.fill(0.0);
                let dyb = &dys[e * ol..(e + 1) * ol];
                for (row, line) in dyb.chunks_exact(ow).enumerate() {
                    let (co, oy) = (row / s.out_h(), row % s.out_h());
                    let at = co * self.n8 + oy * self.pw;
                    slot[at..at + ow].copy_from_slice(line);
                }
            }
            let group = Group {
                dy: &lane.dyg,
                dy_stride: self.dy_stride,
                dstride: self.n8,
                x: &lane.xpad,
                x_stride: self.x_stride,
                examples: g,
            };
            reduce(&group, s.out_c, &self.offs, self.n8, dw);
        }
    }
}

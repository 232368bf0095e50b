//! The three passes of a convolution on the direct kernels, one example at a time (the weight
//! gradient a group of examples at a time), for `conv2d_cpu`'s per-thread loops. Geometry and the
//! padded layouts are in the parent module's docs.
//!
//! With a stride `st`, padded row `y` and column `x` live in phase plane `(y % st, x % st)` at
//! `(y / st, x / st)`, so the forward pass and the weight gradient read one offset per product as at
//! stride 1. The input gradient splits the same way: padded input position `(st Y + py, st X + px)`
//! receives `W[co, ci, py + st a, px + st b] * dy[co, Y - a, X - b]`, a stride-1 full correlation of
//! the output gradient with the taps of phase `(py, px)`; stride 1 is its one-phase case.

use super::{correlate, pack, reduce, Group, Plan, Simd, REDUCE_ROWS, SLACK};
use crate::ops::conv2d::ConvShape;
use crate::ops::conv2d_cpu::copy_line;

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
    /// The input gradient's phases; empty when it is left to im2col + GEMM.
    phases: Vec<Phase>,
    /// Floats per output-gradient plane of `dybig`, and the zeros before its data.
    l: usize,
    lead: usize,
    /// Weight gradient: positions rounded up to whole vectors, and floats per example of the widened
    /// gradient.
    nv: usize,
    dy_stride: usize,
    pub group: usize,
    wpack: Vec<f32>,
    /// With a stride: per column phase `px`, where an input row's data starts in the phase-plane row
    /// and in the input row (the same for every row); phases that hold no input are left out.
    col_phases: Vec<ColPhase>,
}

/// See [`Direct::col_phases`](Direct).
#[derive(Debug, Clone, Copy)]
struct ColPhase {
    px: usize,
    dst: usize,
    src: usize,
}

/// One phase `(py, px)` of the input gradient: the input rows and columns it holds, and its taps.
#[derive(Debug, Clone)]
struct Phase {
    py: usize,
    px: usize,
    /// Taps per direction: `ky = py + st * a` for `a < ka`, `kx = px + st * b` for `b < kb`.
    ka: usize,
    kb: usize,
    /// First input row / column of the phase, and its first phase-plane row.
    iy0: usize,
    ix0: usize,
    y0: usize,
    /// Phase-plane rows computed (those that hold input rows).
    rows: usize,
    /// Offsets into `dybig` per reduction index `(co, a', b')`, flipped (`a = ka - 1 - a'`).
    offs: Vec<u32>,
    packed: Vec<f32>,
}

/// One thread's buffers. Each is used by one pass of one shape and only ever written at the same
/// positions (an example's values), so everything else (padding, leading zeros, dropped columns,
/// slack) is zero from the allocation on and is never cleared again.
#[derive(Debug, Clone)]
pub struct DirectLane {
    xpad: Vec<f32>,
    out: Vec<f32>,
    dybig: Vec<f32>,
    dyg: Vec<f32>,
}

impl Direct {
    /// For any shape. A strided one is laid out in phase planes (see [`pad_input`](Self::pad_input) and
    /// the module docs), so that all three passes are the same offset correlations; where the output
    /// gradient's rows leave no zero column for the taps to land in, the input gradient is left to
    /// im2col + GEMM ([`input_direct`](Self::input_direct) is false).
    pub fn new(s: &ConvShape, simd: Simd) -> Self {
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
        let fwd = Plan::for_rows(s.out_c, simd);
        // The input gradient reads output-gradient planes of rows of `pwh`, each after `lead` zeros;
        // a tap b columns back must land in a zero column, which needs `out_w + kbm - 1 <= pwh`.
        let (kam, kbm) = (s.kh.div_ceil(st), s.kw.div_ceil(st));
        let lead = (kam - 1) * pwh + kbm - 1;
        let l = lead + phh.max(s.out_h()) * pwh + 1;
        let input_direct = s.out_w() + kbm - 1 <= pwh;
        let phases = if input_direct {
            Self::phases(s, pwh, l, lead)
        } else {
            Vec::new()
        };
        let bwd = Plan::for_rows(if input_direct { s.in_c } else { 0 }, simd);
        let bstride = phases
            .iter()
            .map(|p| bwd.stride(p.rows * pwh))
            .max()
            .unwrap_or(0);
        let nv = n.div_ceil(simd.lanes()) * simd.lanes();
        let dy_stride = s.out_c.div_ceil(REDUCE_ROWS) * REDUCE_ROWS * nv;
        let x_stride = s.in_c * st * st * plane + s.kw + SLACK;
        let group = (GROUP_BYTES / (4 * (x_stride + dy_stride))).clamp(1, 8);
        Direct {
            fstride: fwd.stride(n),
            bstride,
            s: *s,
            pw: pwh,
            plane,
            x_stride,
            n,
            fwd,
            offs,
            bwd,
            phases,
            l,
            lead,
            nv,
            dy_stride,
            group,
            wpack: Vec::new(),
            col_phases: (0..st)
                .filter_map(|px| {
                    // Padded columns xx = px, px + st, .. that hold input: from the first at or
                    // after the padding; position xx / st in phase plane px.
                    let first = s.pad + (px + st - s.pad % st) % st;
                    (first < s.pad + s.in_w).then_some(ColPhase {
                        px,
                        dst: first / st,
                        src: first - s.pad,
                    })
                })
                .collect(),
        }
    }

    /// The input gradient's `stride^2` phases (phase planes of width `pw`, `dybig` planes of `l`
    /// floats with `lead` zeros first).
    fn phases(s: &ConvShape, pw: usize, l: usize, lead: usize) -> Vec<Phase> {
        let st = s.stride;
        let mut out = Vec::new();
        for py in 0..st {
            for px in 0..st {
                let ka = s.kh.saturating_sub(py).div_ceil(st);
                let kb = s.kw.saturating_sub(px).div_ceil(st);
                // The first input row / column whose padded coordinate is in this phase.
                let iy0 = (py + st - s.pad % st) % st;
                let ix0 = (px + st - s.pad % st) % st;
                let rows = s.in_h.saturating_sub(iy0).div_ceil(st);
                let offs = (0..s.out_c * ka * kb)
                    .map(|r| {
                        let (co, a, b) = (r / (ka * kb), ka - 1 - (r / kb) % ka, kb - 1 - r % kb);
                        (co * l + lead - a * pw - b) as u32
                    })
                    .collect();
                out.push(Phase {
                    py,
                    px,
                    ka,
                    kb,
                    iy0,
                    ix0,
                    y0: (iy0 + s.pad) / st,
                    rows,
                    offs,
                    packed: Vec::new(),
                });
            }
        }
        out
    }

    /// The instruction set the kernels run on.
    pub fn simd(&self) -> Simd {
        self.fwd.simd
    }

    /// Whether the input gradient runs here rather than through im2col + GEMM.
    pub fn input_direct(&self) -> bool {
        !self.phases.is_empty()
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

    /// Pack each phase's flipped, transposed taps for the input gradient.
    pub fn pack_backward(&mut self, params: &[f32], w: usize) {
        let (s, bwd) = (self.s, &self.bwd);
        let st = s.stride;
        for p in &mut self.phases {
            let (ka, kb) = (p.ka, p.kb);
            pack(&mut p.packed, s.in_c, p.offs.len(), bwd, |ci, r| {
                let (co, a, b) = (r / (ka * kb), ka - 1 - (r / kb) % ka, kb - 1 - r % kb);
                let (ky, kx) = (p.py + st * a, p.px + st * b);
                params[w + ((co * s.in_c + ci) * s.kh + ky) * s.kw + kx]
            });
        }
    }

    /// `dst = the example x: [in_c, in_h, in_w]` zero-padded to `[in_c, ph, pw]`, slack zero; with
    /// a stride, each channel's padded plane split into `stride^2` phase planes `[phh, pwh]`. Only the
    /// input's own positions are written: `dst` is a lane buffer of this shape, zero since it was
    /// allocated everywhere else (see [`DirectLane`]).
    #[inline(always)]
    fn pad_input(&self, x: &[f32], dst: &mut [f32]) {
        let s = &self.s;
        let st = s.stride;
        for ci in 0..s.in_c {
            for iy in 0..s.in_h {
                let src = &x[(ci * s.in_h + iy) * s.in_w..][..s.in_w];
                let y = iy + s.pad;
                if st == 1 {
                    let at = ci * self.plane + y * self.pw + s.pad;
                    copy_line(&mut dst[at..at + s.in_w], src);
                    continue;
                }
                let row = (ci * st + y % st) * st;
                let line_at = |px: usize| (row + px) * self.plane + (y / st) * self.pw;
                if let (2, [a, b]) = (st, &self.col_phases[..]) {
                    // Stride 2, both phases (source columns 0, 2, .. in one and 1, 3, .. in the
                    // other): one pass over the row.
                    let (even, odd) = if a.src == 0 { (*a, *b) } else { (*b, *a) };
                    debug_assert!(even.src == 0 && odd.src == 1);
                    let (lo, hi) = dst.split_at_mut(line_at(even.px.max(odd.px)));
                    let (e, o) = if even.px < odd.px {
                        (&mut lo[line_at(even.px)..], hi)
                    } else {
                        (hi, &mut lo[line_at(odd.px)..])
                    };
                    let (e, o) = (&mut e[even.dst..], &mut o[odd.dst..]);
                    for ((pair, de), d_o) in src.chunks_exact(2).zip(e.iter_mut()).zip(o.iter_mut())
                    {
                        *de = pair[0];
                        *d_o = pair[1];
                    }
                    if s.in_w % 2 == 1 {
                        e[s.in_w / 2] = src[s.in_w - 1];
                    }
                    continue;
                }
                for c in &self.col_phases {
                    let line = &mut dst[line_at(c.px) + c.dst..][..self.pw - c.dst];
                    for (d, &v) in line.iter_mut().zip(src[c.src..].iter().step_by(st)) {
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
        crate::ops::vector::vectorized(
            #[inline(always)]
            || {
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
                        crate::ops::conv2d_cpu::bias_relu(
                            line,
                            &src[oy * self.pw..][..ow],
                            b,
                            relu,
                        );
                    }
                }
            },
        )
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
        crate::ops::vector::vectorized(
            #[inline(always)]
            || {
                let s = &self.s;
                assert!(
                    self.input_direct(),
                    "this shape's input gradient takes im2col + GEMM"
                );
                let (oh, ow, st) = (s.out_h(), s.out_w(), s.stride);
                // Only the data positions are written; the leading zeros and dropped columns stay zero.
                let big = &mut lane.dybig;
                for (co, dyc) in dy.chunks_exact(oh * ow).enumerate() {
                    for (oy, line) in dyc.chunks_exact(ow).enumerate() {
                        let at = co * self.l + self.lead + oy * self.pw;
                        copy_line(&mut big[at..at + ow], line);
                    }
                }
                for p in &self.phases {
                    if p.rows == 0 || p.ix0 >= s.in_w {
                        continue;
                    }
                    let taps = !p.offs.is_empty();
                    if taps {
                        let q0 = p.y0 * self.pw;
                        let (out, n) = (&mut lane.out, p.rows * self.pw);
                        correlate(
                            &big[q0..],
                            &p.offs,
                            &p.packed,
                            &self.bwd,
                            out,
                            self.bstride,
                            n,
                        );
                    }
                    // Phase-plane position (y0 + j, x0 + i) is input (iy0 + st j, ix0 + st i).
                    let x0 = (p.ix0 + s.pad) / st;
                    for (ci, dxc) in dx.chunks_exact_mut(s.in_h * s.in_w).enumerate() {
                        let src = &lane.out[ci * self.bstride + x0..];
                        for (j, iy) in (p.iy0..s.in_h).step_by(st).enumerate() {
                            let line = &mut dxc[iy * s.in_w..][..s.in_w];
                            let from = &src[j * self.pw..];
                            if !taps {
                                line.iter_mut()
                                    .skip(p.ix0)
                                    .step_by(st)
                                    .for_each(|v| *v = 0.0);
                            } else if st == 1 {
                                copy_line(line, &from[..s.in_w]);
                            } else {
                                for (v, &f) in line.iter_mut().skip(p.ix0).step_by(st).zip(from) {
                                    *v = f;
                                }
                            }
                        }
                    }
                }
                if let Some(mask) = mask {
                    crate::ops::relu_mask(dx, mask);
                }
            },
        )
    }

    /// `dw[out_c, k] += sum over the examples of x_e * dy_e` for the examples `xs` / `dys` (whole
    /// examples, in order), a group at a time.
    pub fn backward_weight(&self, xs: &[f32], dys: &[f32], dw: &mut [f32], lane: &mut DirectLane) {
        crate::ops::vector::vectorized(
            #[inline(always)]
            || {
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
                        // Data positions only: rows past out_c and columns past out_w stay zero.
                        let dyb = &dys[e * ol..(e + 1) * ol];
                        for (row, line) in dyb.chunks_exact(ow).enumerate() {
                            let (co, oy) = (row / s.out_h(), row % s.out_h());
                            let at = co * self.nv + oy * self.pw;
                            copy_line(&mut slot[at..at + ow], line);
                        }
                    }
                    let group = Group {
                        simd: self.fwd.simd,
                        dy: &lane.dyg,
                        dy_stride: self.dy_stride,
                        dstride: self.nv,
                        x: &lane.xpad,
                        x_stride: self.x_stride,
                        examples: g,
                    };
                    reduce(&group, s.out_c, &self.offs, self.nv, dw);
                }
            },
        )
    }
}

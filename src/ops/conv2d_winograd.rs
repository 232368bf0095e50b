//! Winograd F(2x2, 3x3) convolution for stride-1, pad-1 3x3 layers on x86-64 with AVX2 and FMA:
//! 16 multiplies per 2x2 output tile and channel pair instead of 36 (2.25x fewer), the products run
//! by the direct kernels' [`correlate`] and [`reduce`], the transforms vectorised over tiles.
//!
//! With `d` a 4x4 input tile, `g` a 3x3 filter and `dy` a 2x2 output-gradient tile (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016):
//!
//! - forward: `y = A^T [ (G g G^T) . (B^T d B) ] A`, the `.` summed over input channels: for each of
//!   the 16 tile positions `xi`, one product `M[xi] = U[xi] V[xi]` of `[out_c, in_c]` by
//!   `[in_c, tiles]` ([`correlate`]);
//! - input gradient: the forward pass of the output gradient with the flipped, transposed filters
//!   (a stride-1 pad-1 3x3 convolution's transpose is one);
//! - weight gradient: `dU[xi] = sum over tiles (A dy A^T)[xi] (B^T d B)[xi]^T` ([`reduce`]), then
//!   `dg = G^T dU G`.
//!
//! Layout: a plane zero-padded by 1 is split into four phase planes (padded row parity x column
//! parity) of rows of `wh = tiles_w + 1` floats, so the 16 values of tile `(i, j)` are phase planes
//! read at `t + {0, 1, wh, wh + 1}` for `t = i * wh + j`: every transform is one contiguous loop over
//! `t`. Tile column `tiles_w` of each row is a dead tile, computed and never written out (its
//! output-gradient tile is zero, so it adds nothing to the weight gradient).
//!
//! `B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]`,
//! `A^T = [1 1 1 0; 0 1 -1 -1]`.

mod transforms;

use super::conv2d::ConvShape;
use super::conv2d_direct::{correlate, pack, reduce, Group, Plan, Simd, REDUCE_ROWS, SLACK};
use transforms::{filter_gradient, filter_transform};
#[cfg(target_arch = "x86_64")]
use transforms::{gradient_tiles, input_tiles, output_tiles};

/// Whether a shape is one this runs: 3x3, stride 1, padding 1, on a CPU with AVX2 and FMA.
pub fn fits(s: &ConvShape) -> bool {
    s.kh == 3 && s.kw == 3 && s.stride == 1 && s.pad == 1 && super::conv2d_direct::available()
}

/// Whether `CpuConv::Winograd` runs a shape this way: one that [`fits`] with at least 8 input and 8
/// output channels (with fewer, each product reduces over too few channels for its tiles to pay for
/// the transforms; the presets' first layers, from 1 channel, stay on the direct kernels).
pub fn pays(s: &ConvShape) -> bool {
    fits(s) && s.in_c >= 8 && s.out_c >= 8
}

/// One direction: `cout` planes from `cin` through the 16 transformed filter sets.
#[derive(Debug, Clone)]
struct Pass {
    cin: usize,
    cout: usize,
    plan: Plan,
    /// Floats per row of the products `M[xi]`.
    mstride: usize,
    /// Per tile position `xi`, the transformed filters `[cout, cin]` packed for `correlate`.
    packed: Vec<Vec<f32>>,
    /// Scratch `[16][cout][cin]` for packing.
    u: Vec<f32>,
}

impl Pass {
    fn new(cin: usize, cout: usize, tiles: usize) -> Self {
        // Its transforms are AVX2 (and the tile counts rounded to 8), so its products are too.
        let plan = Plan::for_rows(cout, Simd::Avx2);
        Pass {
            cin,
            cout,
            mstride: plan.stride(tiles),
            plan,
            packed: vec![Vec::new(); 16],
            u: vec![0.0; 16 * cout * cin],
        }
    }

    /// Floats of the products of all 16 tile positions.
    fn m_len(&self) -> usize {
        16 * self.plan.rows() * self.mstride
    }

    /// Transform and pack the filters, `filter(o, i, ky, kx)` for output plane `o` and input `i`.
    fn pack(&mut self, filter: impl Fn(usize, usize, usize, usize) -> f32) {
        let (cin, cout) = (self.cin, self.cout);
        for o in 0..cout {
            for i in 0..cin {
                let g: [[f32; 3]; 3] =
                    std::array::from_fn(|ky| std::array::from_fn(|kx| filter(o, i, ky, kx)));
                let u = filter_transform(&g);
                for (xi, &v) in u.iter().flatten().enumerate() {
                    self.u[(xi * cout + o) * cin + i] = v;
                }
            }
        }
        for (xi, packed) in self.packed.iter_mut().enumerate() {
            let u = &self.u[xi * cout * cin..(xi + 1) * cout * cin];
            pack(packed, cout, cin, &self.plan, |r, k| u[r * cin + k]);
        }
    }
}

/// The geometry and transformed filters of one convolution shape.
#[derive(Debug, Clone)]
pub struct Winograd {
    s: ConvShape,
    /// Tile rows and columns (2x2 outputs each), floats per phase-plane row (`tw + 1`).
    th: usize,
    tw: usize,
    wh: usize,
    /// Tile positions `th * wh` (dead tiles included), rounded up to 16: floats per transformed plane.
    tiles: usize,
    tv: usize,
    /// Floats per phase plane: rows `th + 2`, plus what the last vector of tiles reads past them.
    plane: usize,
    /// `c * tv` for every plane `c` of either direction: the products' reduction offsets.
    offs: Vec<u32>,
    fwd: Pass,
    bwd: Pass,
}

/// One thread's buffers. `phases` and `dyp` are only ever written at data positions (the same for
/// every example and both directions), so their padding stays zero from the allocation on.
#[derive(Debug, Clone)]
pub struct WinogradLane {
    /// The input (or output gradient) padded and split into phase planes, `[c][4][plane]`.
    phases: Vec<f32>,
    /// Transformed tiles `[16][c][tv]`.
    v: Vec<f32>,
    /// Products `[16][rows][mstride]`.
    m: Vec<f32>,
    /// The output transform's four output rows `[4][tv]`.
    out: Vec<f32>,
    /// Weight gradient: the output gradient split into phase planes (no padding), its transformed
    /// tiles `[16][out_c rounded to 4][tv]`, and the transformed gradient `[16][out_c][in_c]`.
    dyp: Vec<f32>,
    dm: Vec<f32>,
    du: Vec<f32>,
}

impl Winograd {
    /// For a shape that [`fits`].
    pub fn new(s: &ConvShape) -> Self {
        assert!(
            fits(s),
            "Winograd F(2x2, 3x3) needs a 3x3 stride-1 pad-1 shape and AVX2+FMA"
        );
        let (th, tw) = (s.in_h.div_ceil(2), s.in_w.div_ceil(2));
        let wh = tw + 1;
        let tiles = th * wh;
        let tv = tiles.div_ceil(16) * 16;
        Winograd {
            s: *s,
            th,
            tw,
            wh,
            tiles,
            tv,
            plane: (th + 2) * wh + 32,
            offs: (0..s.in_c.max(s.out_c)).map(|c| (c * tv) as u32).collect(),
            fwd: Pass::new(s.in_c, s.out_c, tiles),
            bwd: Pass::new(s.out_c, s.in_c, tiles),
        }
    }

    /// Buffers for one thread.
    pub fn lane(&self) -> WinogradLane {
        let (s, c) = (&self.s, self.s.in_c.max(self.s.out_c));
        WinogradLane {
            phases: vec![0.0; c * 4 * self.plane + SLACK],
            v: vec![0.0; 16 * c * self.tv + SLACK],
            m: vec![0.0; self.fwd.m_len().max(self.bwd.m_len())],
            out: vec![0.0; 4 * self.tv],
            dyp: vec![0.0; s.out_c * 4 * self.plane + SLACK],
            dm: vec![0.0; 16 * s.out_c.div_ceil(REDUCE_ROWS) * REDUCE_ROWS * self.tv],
            du: vec![0.0; 16 * s.out_c * s.in_c],
        }
    }

    /// Transform the filters `params[w..]` (`[out_c, in_c, 3, 3]`) for the forward pass.
    pub fn pack_forward(&mut self, params: &[f32], w: usize) {
        let ci = self.s.in_c;
        self.fwd
            .pack(|o, i, ky, kx| params[w + ((o * ci + i) * 3 + ky) * 3 + kx]);
    }

    /// The same for the input gradient: flipped and transposed.
    pub fn pack_backward(&mut self, params: &[f32], w: usize) {
        let ci = self.s.in_c;
        self.bwd
            .pack(|i, o, ky, kx| params[w + ((o * ci + i) * 3 + 2 - ky) * 3 + 2 - kx]);
    }

    /// Split `c` planes of `src` (`[c, in_h, in_w]`) into phase planes, padded by `pad`.
    fn split(&self, src: &[f32], c: usize, pad: usize, dst: &mut [f32]) {
        let (h, w, wh, plane) = (self.s.in_h, self.s.in_w, self.wh, self.plane);
        for ch in 0..c {
            for iy in 0..h {
                let row = &src[(ch * h + iy) * w..][..w];
                let r = iy + pad;
                let base = ch * 4 * plane + (r % 2) * 2 * plane + (r / 2) * wh;
                // Column x + pad goes to column phase (x + pad) % 2 at (x + pad) / 2.
                let (first, second) = (pad % 2, (pad + 1) % 2);
                let (at1, at2) = (
                    base + first * plane + pad / 2,
                    base + second * plane + pad.div_ceil(2),
                );
                let (lo, hi) = dst.split_at_mut(at1.max(at2));
                let (d1, d2) = if at1 < at2 {
                    (&mut lo[at1..], hi)
                } else {
                    (hi, &mut lo[at2..])
                };
                for ((pair, a), b) in row.chunks_exact(2).zip(d1.iter_mut()).zip(d2.iter_mut()) {
                    *a = pair[0];
                    *b = pair[1];
                }
                if w % 2 == 1 {
                    d1[w / 2] = row[w - 1];
                }
            }
        }
    }

    /// The forward transform of `c` split planes into `lane.v`.
    fn transform_input(&self, c: usize, lane: &mut WinogradLane) {
        let (phases, v) = (&lane.phases, &mut lane.v);
        assert!(phases.len() >= c * 4 * self.plane && v.len() >= 16 * c * self.tv);
        assert!(self.tv + self.wh + 1 + 8 <= self.plane);
        for ch in 0..c {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `fits` checked AVX2 and FMA; reads stay below `(ch + 1) * 4 * plane` (the
            // last one at `3 * plane + tv + wh + 1 + 8 <= 4 * plane`), writes below `16 * c * tv`.
            unsafe {
                input_tiles(
                    phases[ch * 4 * self.plane..].as_ptr(),
                    self.plane,
                    self.wh,
                    v[ch * self.tv..].as_mut_ptr(),
                    c * self.tv,
                    self.tv,
                );
            }
        }
    }

    /// `out[o]` (`[in_h, in_w]`) from the products of plane `o` (`M[xi]` row `o`, `tmp` the output transform's scratch), plus `bias`,
    /// then ReLU when `relu`.
    #[allow(clippy::too_many_arguments)]
    fn write_output(
        &self,
        m: &[f32],
        pass: &Pass,
        o: usize,
        tmp: &mut [f32],
        out: &mut [f32],
        bias: f32,
        relu: bool,
    ) {
        let rstride = pass.plan.rows() * pass.mstride;
        assert!(m.len() >= 15 * rstride + o * pass.mstride + self.tv && tmp.len() >= 4 * self.tv);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA (`fits`); reads below `15 * rstride + o * mstride + tv <= m.len()`,
        // writes below `4 * tv <= tmp.len()` (asserted).
        unsafe {
            output_tiles(
                m[o * pass.mstride..].as_ptr(),
                rstride,
                tmp.as_mut_ptr(),
                self.tv,
                bias,
                relu,
            );
        }
        let (h, w, wh) = (self.s.in_h, self.s.in_w, self.wh);
        for i in 0..self.th {
            for r in 0..2 {
                let y = 2 * i + r;
                if y >= h {
                    break;
                }
                let line = &mut out[y * w..(y + 1) * w];
                let (c0, c1) = (
                    &tmp[(2 * r) * self.tv + i * wh..],
                    &tmp[(2 * r + 1) * self.tv + i * wh..],
                );
                for ((pair, &a), &b) in line.chunks_exact_mut(2).zip(c0).zip(c1) {
                    pair[0] = a;
                    pair[1] = b;
                }
                if w % 2 == 1 {
                    line[w - 1] = c0[self.tw - 1];
                }
            }
        }
    }

    /// One direction for one example: `dst` planes from the split planes in `lane.phases`.
    fn run(&self, pass: &Pass, dst: &mut [f32], bias: &[f32], relu: bool, lane: &mut WinogradLane) {
        self.transform_input(pass.cin, lane);
        let (rows, ms) = (pass.plan.rows(), pass.mstride);
        for xi in 0..16 {
            correlate(
                &lane.v[xi * pass.cin * self.tv..],
                &self.offs[..pass.cin],
                &pass.packed[xi],
                &pass.plan,
                &mut lane.m[xi * rows * ms..],
                ms,
                self.tiles,
            );
        }
        let hw = self.s.in_h * self.s.in_w;
        for (o, plane) in dst.chunks_exact_mut(hw).enumerate().take(pass.cout) {
            let b = bias.get(o).copied().unwrap_or(0.0);
            self.write_output(&lane.m, pass, o, &mut lane.out, plane, b, relu);
        }
    }

    /// `y = relu?(conv(x) + bias)` for one example (after [`pack_forward`](Self::pack_forward)).
    pub fn forward(
        &self,
        x: &[f32],
        y: &mut [f32],
        bias: &[f32],
        relu: bool,
        lane: &mut WinogradLane,
    ) {
        self.split(x, self.s.in_c, 1, &mut lane.phases);
        self.run(&self.fwd, y, bias, relu, lane);
    }

    /// `dx = the input gradient of one example`, zeroed where `mask <= 0` (after
    /// [`pack_backward`](Self::pack_backward)).
    pub fn backward_input(
        &self,
        dy: &[f32],
        dx: &mut [f32],
        mask: Option<&[f32]>,
        lane: &mut WinogradLane,
    ) {
        self.split(dy, self.s.out_c, 1, &mut lane.phases);
        self.run(&self.bwd, dx, &[], false, lane);
        if let Some(mask) = mask {
            crate::ops::relu_mask(dx, mask);
        }
    }

    /// `dw[out_c, in_c * 9] += sum over the examples of the weight gradient of x_e, dy_e`.
    pub fn backward_weight(
        &self,
        xs: &[f32],
        dys: &[f32],
        dw: &mut [f32],
        lane: &mut WinogradLane,
    ) {
        let s = &self.s;
        let (il, ol) = (s.in_len(), s.out_len());
        let rows4 = s.out_c.div_ceil(REDUCE_ROWS) * REDUCE_ROWS;
        lane.du.fill(0.0);
        for (x, dy) in xs.chunks_exact(il).zip(dys.chunks_exact(ol)) {
            self.split(x, s.in_c, 1, &mut lane.phases);
            self.transform_input(s.in_c, lane);
            self.split(dy, s.out_c, 0, &mut lane.dyp);
            assert!(lane.dm.len() >= 16 * rows4 * self.tv);
            assert!(self.tv + 8 <= self.plane);
            for o in 0..s.out_c {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA (`fits`); reads below `(o + 1) * 4 * plane` of `dyp`
                // (`3 * plane + tv + 8`), writes below `16 * rows4 * tv` (asserted).
                unsafe {
                    gradient_tiles(
                        lane.dyp[o * 4 * self.plane..].as_ptr(),
                        self.plane,
                        lane.dm[o * self.tv..].as_mut_ptr(),
                        rows4 * self.tv,
                        self.tv,
                    );
                }
            }
            for xi in 0..16 {
                let g = Group {
                    simd: Simd::Avx2,
                    dy: &lane.dm[xi * rows4 * self.tv..],
                    dy_stride: 0,
                    dstride: self.tv,
                    x: &lane.v[xi * s.in_c * self.tv..],
                    x_stride: 0,
                    examples: 1,
                };
                let du = &mut lane.du[xi * s.out_c * s.in_c..(xi + 1) * s.out_c * s.in_c];
                reduce(&g, s.out_c, &self.offs[..s.in_c], self.tv, du);
            }
        }
        let (cout, cin) = (s.out_c, s.in_c);
        for o in 0..cout {
            for i in 0..cin {
                let du: [[f32; 4]; 4] = std::array::from_fn(|b| {
                    std::array::from_fn(|a| lane.du[((b * 4 + a) * cout + o) * cin + i])
                });
                let g = filter_gradient(&du);
                let at = (o * cin + i) * 9;
                for (d, v) in dw[at..at + 9].iter_mut().zip(g.iter().flatten()) {
                    *d += v;
                }
            }
        }
    }
}

//! The CPU convolution: forward and both backward passes, one example at a time.
//!
//! The batch is cut into a few chunks per thread that rayon's threads take as they are free, so a
//! thread slowed down (by another tenant of a shared machine, say) hands its share to the others
//! instead of holding everyone up; each chunk runs on the buffers of the thread that takes it.
//!
//! Each example is unfolded (im2col) into a buffer of its thread's that stays in L2 and multiplied
//! there by one serial GEMM; bias/ReLU (forward) and the ReLU mask (backward) run on data still in
//! cache, and no whole-batch layout copies are needed. The weight gradient unfolds the input again
//! instead of keeping the whole batch's im2col from the forward pass (megabytes that would go through
//! DRAM twice).
//!
//! Stride 1 (every preset) uses a "wide" unfolding: output rows are computed over the padded input
//! width `pw` instead of `out_w`, so each im2col row is ONE contiguous copy of `out_h * pw` floats from
//! the padded input (shifted by `ky * pw + kx`) instead of `out_h` short copies; the extra
//! `pw - out_w` columns per row are dropped when the output is written, and zero in the output
//! gradient, so they contribute nothing to either backward pass. The GEMMs grow by `pw / out_w`
//! (16/14 for the cnn's second layer); the unfolding cost falls by several times (docs/BENCHMARKS.md).
//!
//! Shapes: `x: [batch, in_c, in_h, in_w]`, weight `[out_c, in_c, kh, kw]` at `params[w..]`, bias
//! `[out_c]` at `params[bias..]`, `y` and `dy: [batch, out_c, out_h, out_w]`.

mod unfold;

use super::conv2d::ConvShape;
use super::conv2d_direct::{Direct, DirectLane, Simd};
use super::conv2d_winograd::{Winograd, WinogradLane};
use super::matmul::{matmul_serial, Strided};
use crate::device::policy::CpuConv;
use rayon::prelude::*;
use std::sync::{Mutex, MutexGuard, PoisonError};
pub(crate) use unfold::copy_line;
pub use unfold::{col2im, im2col};
use unfold::{col2im_wide, im2col_is_identity, im2col_wide, is_wide, padded_hw, widen};

/// Chunks per thread the forward pass and the input gradient cut the batch into.
const CHUNKS_PER_THREAD: usize = 4;
/// The same for the weight gradient, each chunk with its own partial sum (fewer: each costs a pass
/// over the weight gradient to add up).
const WEIGHT_CHUNKS_PER_THREAD: usize = 2;

/// Per-thread working memory of the CPU convolution; its size does not depend on the batch.
#[derive(Debug)]
pub struct ConvWork {
    /// One per thread of the pool, used by whichever chunk that thread runs.
    lanes: Vec<Mutex<Lane>>,
    /// The weight gradient's partial sums (weights then bias, `out_c * k + out_c`), one per chunk.
    partials: Vec<Vec<f32>>,
    /// `out_c` zeros: the bias of a convolution without one.
    zeros: Vec<f32>,
    /// The direct kernels' geometry and packed filters, when they run this shape (on a CPU with AVX2
    /// and FMA, unless `WGTRAIN_CPU_CONV=gemm`); then the im2col buffers are empty unless the input
    /// gradient is left to them (`Direct::input_direct`).
    direct: Option<Direct>,
    /// Winograd F(2x2, 3x3) for all three passes, when it runs this shape (`CpuConv::Winograd` and
    /// [`conv2d_winograd::pays`](super::conv2d_winograd::pays)); then `direct` is `None`.
    winograd: Option<Winograd>,
}

/// The buffers of one thread.
#[derive(Debug, Clone)]
struct Lane {
    /// An im2col (or its gradient): `[k, p]`, or `[k, out_h * pw]` when wide.
    cols: Vec<f32>,
    /// A zero-padded copy of an example's input (or input gradient), plus `kw` floats of slack that
    /// the wide unfolding's dropped columns may read.
    padded: Vec<f32>,
    /// Wide only: an example's output (gradient) as `[out_c, out_h * pw]`.
    wide: Vec<f32>,
    /// The direct kernels' buffers.
    direct: Option<DirectLane>,
    /// Winograd's buffers.
    winograd: Option<WinogradLane>,
}

impl ConvWork {
    /// Working memory for `threads` threads (results are bit-identical for a given thread count: the
    /// weight gradient's chunks, and the order their partial sums are added in, depend on it alone).
    pub fn new(s: &ConvShape, threads: usize) -> Self {
        let policy = crate::device::policy::cpu_conv().map_or(CpuConv::Gemm, |p| p.0);
        Self::with_kernels(s, threads, policy)
    }

    /// [`new`](Self::new) with the kernels chosen by the caller (`Direct` where the CPU cannot run
    /// them, or for a strided 1x1 shape, falls back to `Gemm`; `Winograd` runs the shapes
    /// [`conv2d_winograd::pays`](super::conv2d_winograd::pays) accepts and is `Direct` elsewhere).
    pub fn with_kernels(s: &ConvShape, threads: usize, kernels: CpuConv) -> Self {
        let simd = crate::device::policy::cpu_simd()
            .ok()
            .flatten()
            .map_or(Simd::Avx2, |p| p.0);
        Self::with_simd(s, threads, kernels, simd)
    }

    /// [`with_kernels`](Self::with_kernels) with the direct kernels on `simd` (on a CPU without it,
    /// im2col + GEMM runs instead).
    pub fn with_simd(s: &ConvShape, threads: usize, kernels: CpuConv, simd: Simd) -> Self {
        let winograd = (kernels == CpuConv::Winograd && super::conv2d_winograd::pays(s))
            .then(|| Winograd::new(s));
        let direct = match kernels {
            // A strided 1x1 (a residual shortcut) reduces over few products per input float, and the
            // phase split costs more than it saves (5 % of peak against 15 % through im2col).
            CpuConv::Direct | CpuConv::Winograd
                if winograd.is_none() && simd.available() && (s.stride == 1 || s.kh * s.kw > 1) =>
            {
                Some(Direct::new(s, simd))
            }
            _ => None,
        };
        let (ph, pw) = padded_hw(s);
        let wide = is_wide(s);
        // im2col + GEMM buffers for whatever the direct kernels do not run (an input gradient whose
        // phase layout does not fit, see `Direct::new`).
        let gemm = winograd.is_none() && direct.as_ref().is_none_or(|d| !d.input_direct());
        let cols = if !gemm {
            0
        } else if wide {
            s.k() * s.out_h() * pw
        } else {
            s.k() * s.p()
        };
        let padded = if gemm && (wide || s.pad > 0) {
            s.in_c * ph * pw + s.kw
        } else {
            0
        };
        let lane = Lane {
            cols: vec![0.0; cols],
            padded: vec![0.0; padded],
            wide: vec![
                0.0;
                if gemm && wide {
                    s.out_c * s.out_h() * pw
                } else {
                    0
                }
            ],
            direct: direct.as_ref().map(Direct::lane),
            winograd: winograd.as_ref().map(Winograd::lane),
        };
        let threads = threads.max(1);
        ConvWork {
            lanes: (0..threads).map(|_| Mutex::new(lane.clone())).collect(),
            partials: vec![
                vec![0.0; s.out_c * s.k() + s.out_c];
                threads * WEIGHT_CHUNKS_PER_THREAD
            ],
            zeros: vec![0.0; s.out_c],
            direct,
            winograd,
        }
    }

    /// Whether the direct kernels run this shape.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The direct kernels' instruction set, where they run this shape.
    pub fn direct_simd(&self) -> Option<Simd> {
        self.direct.as_ref().map(Direct::simd)
    }

    /// Whether Winograd F(2x2, 3x3) runs this shape (all three passes).
    pub fn is_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    /// Whether they run its input gradient too (else im2col + GEMM does).
    pub fn input_is_direct(&self) -> bool {
        self.direct.as_ref().is_some_and(Direct::input_direct)
    }

    /// For the threads of the current rayon pool.
    pub fn for_current_pool(s: &ConvShape) -> Self {
        Self::new(s, rayon::current_num_threads())
    }

    /// Examples per chunk for `batch` cut into `per_thread` chunks per thread (the last may be
    /// shorter).
    fn chunk(&self, batch: usize, per_thread: usize) -> usize {
        batch.div_ceil(self.lanes.len() * per_thread).max(1)
    }
}

/// The buffers of the rayon thread running this (any lane outside a pool or in a bigger pool than
/// the work was made for: then two threads may wait on one, which is slower, never wrong). A lane
/// holds scratch only, so one left by a panicking thread is still fine to use.
fn lane_of_thread(lanes: &[Mutex<Lane>]) -> MutexGuard<'_, Lane> {
    let i = rayon::current_thread_index().unwrap_or(0) % lanes.len();
    lanes[i].lock().unwrap_or_else(PoisonError::into_inner)
}

/// `dst = src + bias`, then ReLU when `relu` (the branch outside the loops, so each vectorises).
#[inline(always)]
pub(crate) fn bias_relu(dst: &mut [f32], src: &[f32], bias: f32, relu: bool) {
    if relu {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v + bias).max(0.0);
        }
    } else {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v + bias;
        }
    }
}

/// [`bias_relu`] in place.
#[inline(always)]
fn bias_relu_in_place(v: &mut [f32], bias: f32, relu: bool) {
    if relu {
        for x in v.iter_mut() {
            *x = (*x + bias).max(0.0);
        }
    } else {
        for x in v.iter_mut() {
            *x += bias;
        }
    }
}

/// Forward: `y = conv(x, w) + b`, then ReLU when `relu`. Per example:
/// `y_b[out_c, p] = W[out_c, k] cols_b[k, p]` (wide: over `out_h * pw` columns, the extra ones dropped).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    x: &[f32],
    params: &[f32],
    w: usize,
    bias: Option<usize>,
    y: &mut [f32],
    work: &mut ConvWork,
    batch: usize,
    s: &ConvShape,
    relu: bool,
) {
    let (k, p, il, ol) = (s.k(), s.p(), s.in_len(), s.out_len());
    let (ow, pw) = (s.out_w(), padded_hw(s).1);
    let per = work.chunk(batch, CHUNKS_PER_THREAD);
    if let Some(d) = work.direct.as_mut() {
        d.pack_forward(params, w);
    }
    if let Some(wg) = work.winograd.as_mut() {
        wg.pack_forward(params, w);
    }
    let work = &*work;
    let b = bias.map_or(&work.zeros[..], |bias| &params[bias..bias + s.out_c]);
    let (direct, winograd) = (work.direct.as_ref(), work.winograd.as_ref());
    y[..batch * ol]
        .par_chunks_mut(per * ol)
        .enumerate()
        .for_each(|(t, yt)| {
            let mut guard = lane_of_thread(&work.lanes);
            let lane = &mut *guard;
            for (j, yb) in yt.chunks_exact_mut(ol).enumerate() {
                let xb = &x[(t * per + j) * il..(t * per + j + 1) * il];
                if let (Some(wg), Some(wl)) = (winograd, lane.winograd.as_mut()) {
                    wg.forward(xb, yb, b, relu, wl);
                    continue;
                }
                if let (Some(d), Some(dl)) = (direct, lane.direct.as_mut()) {
                    d.forward(xb, yb, b, relu, dl);
                    continue;
                }
                if is_wide(s) {
                    let n = s.out_h() * pw;
                    im2col_wide(xb, s, &mut lane.padded, &mut lane.cols);
                    let (cols, wide) = (&lane.cols, &mut lane.wide);
                    let (a, bm) = (Strided::rows(w, k), Strided::rows(0, n));
                    matmul_serial(s.out_c, n, k, params, a, cols, bm, wide, 0, n, false);
                    for ((dst, src), &bb) in yb.chunks_exact_mut(p).zip(wide.chunks_exact(n)).zip(b)
                    {
                        for (d, line) in dst.chunks_exact_mut(ow).zip(src.chunks_exact(pw)) {
                            bias_relu(d, &line[..ow], bb, relu);
                        }
                    }
                    continue;
                }
                let src: &[f32] = if im2col_is_identity(s) {
                    xb
                } else {
                    im2col(xb, s, &mut lane.padded, &mut lane.cols);
                    &lane.cols
                };
                let (a, bm) = (Strided::rows(w, k), Strided::rows(0, p));
                matmul_serial(s.out_c, p, k, params, a, src, bm, yb, 0, p, false);
                for (row, &bb) in yb.chunks_exact_mut(p).zip(b) {
                    bias_relu_in_place(row, bb, relu);
                }
            }
        });
}

/// Backward to the input: per example `dcols_b = W^T dY_b`, folded back by [`col2im`] into `dx_b`,
/// then zeroed where `mask <= 0` (the previous layer's ReLU).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input(
    dy: &[f32],
    params: &[f32],
    w: usize,
    dx: &mut [f32],
    mask: Option<&[f32]>,
    work: &mut ConvWork,
    batch: usize,
    s: &ConvShape,
) {
    let (k, p, il, ol) = (s.k(), s.p(), s.in_len(), s.out_len());
    let pw = padded_hw(s).1;
    let per = work.chunk(batch, CHUNKS_PER_THREAD);
    let direct = work.direct.as_mut().filter(|d| d.input_direct());
    if let Some(d) = direct {
        d.pack_backward(params, w);
    }
    if let Some(wg) = work.winograd.as_mut() {
        wg.pack_backward(params, w);
    }
    let work = &*work;
    let direct = work.direct.as_ref().filter(|d| d.input_direct());
    let winograd = work.winograd.as_ref();
    dx[..batch * il]
        .par_chunks_mut(per * il)
        .enumerate()
        .for_each(|(t, dxt)| {
            let mut guard = lane_of_thread(&work.lanes);
            let lane = &mut *guard;
            for (j, dxb) in dxt.chunks_exact_mut(il).enumerate() {
                let e = t * per + j;
                let dyb = &dy[e * ol..(e + 1) * ol];
                let mask = mask.map(|m| &m[e * il..(e + 1) * il]);
                if let (Some(wg), Some(wl)) = (winograd, lane.winograd.as_mut()) {
                    wg.backward_input(dyb, dxb, mask, wl);
                    continue;
                }
                if let (Some(d), Some(dl)) = (direct, lane.direct.as_mut()) {
                    d.backward_input(dyb, dxb, mask, dl);
                    continue;
                }
                let a = Strided::transposed(w, k);
                if is_wide(s) {
                    let n = s.out_h() * pw;
                    widen(dyb, s, &mut lane.wide);
                    let bm = Strided::rows(0, n);
                    matmul_serial(
                        k,
                        n,
                        s.out_c,
                        params,
                        a,
                        &lane.wide,
                        bm,
                        &mut lane.cols,
                        0,
                        n,
                        false,
                    );
                    col2im_wide(&lane.cols, s, &mut lane.padded, dxb, mask);
                } else {
                    // 1x1 stride 1 without padding: the GEMM writes dx directly, no folding.
                    let direct = im2col_is_identity(s);
                    let dst: &mut [f32] = if direct { &mut *dxb } else { &mut lane.cols };
                    let bm = Strided::rows(0, p);
                    matmul_serial(k, p, s.out_c, params, a, dyb, bm, dst, 0, p, false);
                    if !direct {
                        col2im(&lane.cols, s, &mut lane.padded, dxb, mask);
                    } else if let Some(mask) = mask {
                        super::relu_mask(dxb, mask);
                    }
                }
            }
        });
}

/// Backward to the parameters: `dW[out_c, k] = sum_b dY_b[out_c, p] cols_b[k, p]^T` and
/// `db = sum_b row sums of dY_b`, into `grads[w..]` and `grads[bias..]` (overwritten; no bias:
/// dropped). Each chunk of examples is accumulated into its own partial sum, whichever thread runs
/// it; the partials are added in chunk order, so the result is deterministic for a given thread count.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    dy: &[f32],
    x: &[f32],
    grads: &mut [f32],
    w: usize,
    bias: Option<usize>,
    work: &mut ConvWork,
    batch: usize,
    s: &ConvShape,
) {
    let (k, p, il, ol) = (s.k(), s.p(), s.in_len(), s.out_len());
    let pw = padded_hw(s).1;
    let per = work.chunk(batch, WEIGHT_CHUNKS_PER_THREAD);
    let used = batch.div_ceil(per);
    // `used` <= lanes * WEIGHT_CHUNKS_PER_THREAD, the partials allocated by `with_kernels`.
    let ConvWork {
        lanes,
        partials,
        direct,
        winograd,
        ..
    } = work;
    let (direct, winograd) = (direct.as_ref(), winograd.as_ref());
    partials[..used]
        .par_iter_mut()
        .enumerate()
        .for_each(|(t, partial)| {
            let mut guard = lane_of_thread(lanes);
            let lane = &mut *guard;
            partial.fill(0.0);
            let (dw, db) = partial.split_at_mut(s.out_c * k);
            let range = t * per..((t + 1) * per).min(batch);
            let dys = &dy[range.start * ol..range.end * ol];
            let xs = &x[range.start * il..range.end * il];
            if let (Some(wg), Some(wl)) = (winograd, lane.winograd.as_mut()) {
                wg.backward_weight(xs, dys, dw, wl);
            } else if let (Some(d), Some(dl)) = (direct, lane.direct.as_mut()) {
                d.backward_weight(xs, dys, dw, dl);
            } else {
                for (e, dyb) in range.zip(dys.chunks_exact(ol)) {
                    let xb = &x[e * il..(e + 1) * il];
                    if is_wide(s) {
                        let n = s.out_h() * pw;
                        im2col_wide(xb, s, &mut lane.padded, &mut lane.cols);
                        widen(dyb, s, &mut lane.wide);
                        let (a, bm) = (Strided::rows(0, n), Strided::transposed(0, n));
                        let (wide, cols) = (&lane.wide, &lane.cols);
                        matmul_serial(s.out_c, k, n, wide, a, cols, bm, dw, 0, k, true);
                    } else {
                        let src: &[f32] = if im2col_is_identity(s) {
                            xb
                        } else {
                            im2col(xb, s, &mut lane.padded, &mut lane.cols);
                            &lane.cols
                        };
                        let (a, bm) = (Strided::rows(0, p), Strided::transposed(0, p));
                        matmul_serial(s.out_c, k, p, dyb, a, src, bm, dw, 0, k, true);
                    }
                }
            }
            // The bias gradient: each example's row sums, in example order.
            for dyb in dys.chunks_exact(ol) {
                for (g, row) in db.iter_mut().zip(dyb.chunks_exact(p)) {
                    *g += super::sum_lanes_with(row, |x| x);
                }
            }
        });
    // The chunks' partial sums, added in chunk order, split into blocks across the threads.
    let partials = &partials[..used];
    let sum_partials = |dst: &mut [f32], at: usize| {
        dst.fill(0.0);
        for partial in partials {
            for (g, v) in dst.iter_mut().zip(&partial[at..]) {
                *g += v;
            }
        }
    };
    const BLOCK: usize = 4096;
    grads[w..w + s.out_c * k]
        .par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(i, dst)| sum_partials(dst, i * BLOCK));
    // Without a bias its row sums are dropped.
    if let Some(bias) = bias {
        sum_partials(&mut grads[bias..bias + s.out_c], s.out_c * k);
    }
}

//! Direct convolution kernels for x86-64 with AVX2 and FMA (AVX-512 machines run them too): no im2col
//! buffer, the products read the zero-padded planes in place. Stride 1 is described here; a stride
//! turns into the same correlations over phase planes (`passes.rs`).
//!
//! In the "wide" layout of `conv2d_cpu` (output rows computed over the padded width `pw`, the extra
//! `pw - out_w` columns dropped), im2col row `(ci, ky, kx)` is the padded input shifted by
//! `ci * ph * pw + ky * pw + kx`: one offset per reduction index. So
//!
//! - forward: `y[co, q] = sum_k W[co, k] * xpad[off(k) + q]` for `q` in `0..out_h * pw`;
//! - input gradient (a "full" correlation of the output gradient with the flipped, transposed
//!   filters): `dxpad[ci, q] = sum_(co, ky', kx') W[co, ci, kh-1-ky', kw-1-kx'] * dybig[co*L + ky'*pw +
//!   kx' + q]`, where `dybig` holds each output-gradient plane (zero in the dropped columns) after
//!   `(kh-1) * pw + kw-1` zeros;
//! - weight gradient: `dW[co, k] = sum_q dy[co, q] * xpad[off(k) + q]`.
//!
//! The first two are [`correlate`]: register tiles of `CO` output rows x `8 * PV` positions (up to 12
//! accumulators), per reduction step `PV` unaligned loads and `CO` broadcasts for `CO * PV` FMAs. The
//! third is [`reduce`]: `CO` rows of `dy` x `KT` offsets, accumulated over positions and over a group
//! of examples before one horizontal sum per accumulator. Every loop bound is a constant of the tile,
//! so the accumulators stay in registers.
//!
//! Callers keep every read in bounds: each source has [`SLACK`] readable floats past its last
//! position, and every output row holds a whole number of tiles.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

mod passes;
pub use passes::{Direct, DirectLane};

/// Floats a source must stay readable (and finite) past the last position it is read at, for a
/// position tile rounded up (at most 8 * 6 - 1 extra).
pub const SLACK: usize = 48;

/// Whether this CPU runs the kernels (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How [`correlate`] covers its output rows: register tiles of 6 or 4 rows x 16 positions (12 or 8
/// accumulators; 8 loads per 12 FMAs, 6 per 8), or for one to three rows, tiles of 1 row x 48
/// positions (6 accumulators, 7 loads per 6 FMAs). Rows are split into as many 6-row tiles as fit
/// with at most two 4-row tiles making up the rest (16 = 6 + 6 + 4, 32 = 4 x 6 + 2 x 4), so little is
/// computed past the real rows. A 4 x 24 tile (12 accumulators, 3 position vectors) was tried first:
/// with the broadcast LLVM schedules it needs 17 registers, and the spill put a store-to-load round
/// trip on an accumulator's chain (35 % of peak where 6 x 16 reached 51 %).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// 8-float position vectors per tile.
    pub vecs: usize,
    /// Rows of each tile, in order.
    pub tiles: Vec<usize>,
}

impl Plan {
    /// The plan for `rows` output rows.
    pub fn for_rows(rows: usize) -> Self {
        if rows <= 3 {
            return Plan {
                vecs: 6,
                tiles: vec![1; rows],
            };
        }
        let (sixes, fours) = (0..=2)
            .map(|fours: usize| (rows.saturating_sub(4 * fours).div_ceil(6), fours))
            .min_by_key(|&(sixes, fours)| (6 * sixes + 4 * fours, sixes + fours))
            .expect("three splits");
        let mut tiles = vec![6; sixes];
        tiles.extend(std::iter::repeat_n(4, fours));
        Plan { vecs: 2, tiles }
    }

    /// Positions per tile.
    pub fn positions(&self) -> usize {
        8 * self.vecs
    }

    /// Rows computed, the real ones and the padding.
    pub fn rows(&self) -> usize {
        self.tiles.iter().sum()
    }

    /// Floats per output row for `n` positions: whole tiles.
    pub fn stride(&self, n: usize) -> usize {
        n.div_ceil(self.positions()) * self.positions()
    }
}

/// Pack `rows` filter rows for [`correlate`] under `plan`: the tile starting at row `r0` with `t`
/// rows holds `w(r0 + r, k)` at `r0 * k + k * t + r` (zero past `rows`). `packed` grows as needed.
pub fn pack(
    packed: &mut Vec<f32>,
    rows: usize,
    k: usize,
    plan: &Plan,
    w: impl Fn(usize, usize) -> f32,
) {
    packed.clear();
    packed.resize(plan.rows() * k, 0.0);
    let mut r0 = 0;
    for &t in &plan.tiles {
        for kk in 0..k {
            for r in 0..t {
                if r0 + r < rows {
                    packed[r0 * k + kk * t + r] = w(r0 + r, kk);
                }
            }
        }
        r0 += t;
    }
}

/// `out[row * ostride + q] = sum_k w(row, k) * src[offs[k] + q]` for every row of `plan` and `q` in
/// `0..n` rounded up to whole tiles (a last 16-position tile that holds at most 8 of them computes
/// only its first 8; the rest of it is left as it was). `ostride` must be at least `plan.stride(n)`, `out` at least
/// `plan.rows() * ostride` long, and `src` readable at `max(offs) + n + SLACK`.
pub fn correlate(
    src: &[f32],
    offs: &[u32],
    packed: &[f32],
    plan: &Plan,
    out: &mut [f32],
    ostride: usize,
    n: usize,
) {
    let k = offs.len();
    let span = plan.stride(n);
    assert!(ostride >= span && out.len() >= plan.rows() * ostride);
    assert!(packed.len() >= plan.rows() * k);
    let max_off = offs.iter().copied().max().unwrap_or(0) as usize;
    assert!(src.len() >= max_off + n + SLACK && span <= n + SLACK);
    assert!(available(), "direct convolution kernels need AVX2 and FMA");
    for q0 in (0..span).step_by(plan.positions()) {
        // A last tile with at most 8 positions left runs on one position vector.
        let short = plan.vecs == 2 && n - q0 <= 8;
        let mut r0 = 0;
        for &t in &plan.tiles {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (checked above); reads stay below `max_off + span <=
            // src.len()` and `(r0 + t) * k <= packed.len()`, writes below `(r0 + t) * ostride <=
            // out.len()` (asserted above).
            unsafe {
                let w = &packed[r0 * k..];
                let o = &mut out[r0 * ostride..];
                match (t, plan.vecs, short) {
                    (6, 2, false) => correlate_tile::<6, 2>(src, offs, w, o, ostride, q0),
                    (6, 2, true) => correlate_tile::<6, 1>(src, offs, w, o, ostride, q0),
                    (4, 2, false) => correlate_tile::<4, 2>(src, offs, w, o, ostride, q0),
                    (4, 2, true) => correlate_tile::<4, 1>(src, offs, w, o, ostride, q0),
                    (1, 6, _) => correlate_tile::<1, 6>(src, offs, w, o, ostride, q0),
                    _ => unreachable!("tile {t} x {}", plan.vecs),
                }
            }
            r0 += t;
        }
    }
}

/// One tile: `CO` rows (packed `w[k * CO + r]`) x `8 * PV` positions from `q0`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_tile<const CO: usize, const PV: usize>(
    src: &[f32],
    offs: &[u32],
    w: &[f32],
    out: &mut [f32],
    ostride: usize,
    q0: usize,
) {
    let (s, w, o) = (src.as_ptr().add(q0), w.as_ptr(), out.as_mut_ptr().add(q0));
    let mut acc = [[_mm256_setzero_ps(); PV]; CO];
    for (kk, &off) in offs.iter().enumerate() {
        let at = s.add(off as usize);
        let mut x = [_mm256_setzero_ps(); PV];
        for (v, xv) in x.iter_mut().enumerate() {
            *xv = _mm256_loadu_ps(at.add(8 * v));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let wv = _mm256_broadcast_ss(&*w.add(kk * CO + r));
            for (a, xv) in row.iter_mut().zip(&x) {
                *a = _mm256_fmadd_ps(wv, *xv, *a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let dst = o.add(r * ostride);
        for (v, a) in row.iter().enumerate() {
            _mm256_storeu_ps(dst.add(8 * v), *a);
        }
    }
}

/// Rows of `dy` per [`reduce`] tile, and reduction offsets per tile.
pub const REDUCE_ROWS: usize = 4;
pub const REDUCE_OFFS: usize = 3;

/// One group of examples for [`reduce`]: `dy` planes (`rows` rows of `dstride` floats each, rows
/// rounded up to [`REDUCE_ROWS`], positions past the real ones zero) and padded inputs, example `e` at
/// `e * dy_stride` and `e * x_stride`.
pub struct Group<'a> {
    pub dy: &'a [f32],
    pub dy_stride: usize,
    pub dstride: usize,
    pub x: &'a [f32],
    pub x_stride: usize,
    pub examples: usize,
}

/// `dw[row * offs.len() + k] += sum_e sum_q dy_e[row, q] * x_e[offs[k] + q]` for `q` in `0..n8` (`n8` a
/// multiple of 8, `dy` zero past the real positions) and rows `0..rows`.
pub fn reduce(g: &Group<'_>, rows: usize, offs: &[u32], n8: usize, dw: &mut [f32]) {
    let k = offs.len();
    assert!(n8.is_multiple_of(8) && n8 <= g.dstride && dw.len() >= rows * k);
    let rows_r = rows.div_ceil(REDUCE_ROWS) * REDUCE_ROWS;
    assert!(g.examples == 0 || g.dy.len() >= (g.examples - 1) * g.dy_stride + rows_r * g.dstride);
    let max_off = offs.iter().copied().max().unwrap_or(0) as usize;
    assert!(g.examples == 0 || g.x.len() >= (g.examples - 1) * g.x_stride + max_off + n8);
    assert!(available(), "direct convolution kernels need AVX2 and FMA");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 and FMA are present; reads stay within the bounds asserted above; `dw` is written
    // only below `rows * k`.
    unsafe {
        reduce_tiles(g, rows, offs, n8, dw);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_tiles(g: &Group<'_>, rows: usize, offs: &[u32], n8: usize, dw: &mut [f32]) {
    const CO: usize = REDUCE_ROWS;
    const KT: usize = REDUCE_OFFS;
    let k = offs.len();
    for tile in 0..rows.div_ceil(CO) {
        let mut k0 = 0;
        while k0 < k {
            // A short last group of offsets repeats its first one; the extra sums are dropped.
            let mut off = [offs[k0] as usize; KT];
            for (i, o) in off.iter_mut().enumerate() {
                if k0 + i < k {
                    *o = offs[k0 + i] as usize;
                }
            }
            let mut acc = [[_mm256_setzero_ps(); KT]; CO];
            for e in 0..g.examples {
                let d = g.dy.as_ptr().add(e * g.dy_stride + tile * CO * g.dstride);
                let x = g.x.as_ptr().add(e * g.x_stride);
                let mut q = 0;
                while q < n8 {
                    let mut xv = [_mm256_setzero_ps(); KT];
                    for (v, o) in xv.iter_mut().zip(&off) {
                        *v = _mm256_loadu_ps(x.add(o + q));
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let dv = _mm256_loadu_ps(d.add(r * g.dstride + q));
                        for (a, v) in row.iter_mut().zip(&xv) {
                            *a = _mm256_fmadd_ps(dv, *v, *a);
                        }
                    }
                    q += 8;
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let rr = tile * CO + r;
                if rr >= rows {
                    break;
                }
                for (i, a) in row.iter().enumerate() {
                    if k0 + i < k {
                        dw[rr * k + k0 + i] += hsum(*a);
                    }
                }
            }
            k0 += KT;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn correlate_and_reduce_match_plain_sums() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2+FMA (the kernels are not used here)");
            return;
        }
        let n = 53;
        let offs: Vec<u32> = vec![0, 1, 5, 9, 30, 31, 2];
        let k = offs.len();
        let src = data(40 + n + SLACK, 3);
        for rows in [2, 7, 16] {
            let w = data(rows * k, 7);
            let plan = Plan::for_rows(rows);
            let mut packed = Vec::new();
            pack(&mut packed, rows, k, &plan, |r, kk| w[r * k + kk]);
            let ostride = plan.stride(n);
            let mut out = vec![f32::NAN; plan.rows() * ostride];
            correlate(&src, &offs, &packed, &plan, &mut out, ostride, n);
            for r in 0..rows {
                for q in 0..n {
                    let want: f64 = (0..k)
                        .map(|kk| w[r * k + kk] as f64 * src[offs[kk] as usize + q] as f64)
                        .sum();
                    let got = out[r * ostride + q] as f64;
                    assert!((got - want).abs() < 1e-4, "{plan:?} {r} {q}");
                }
            }
        }
        let rows = 7;
        // reduce over two examples; dy rows padded to 8 rows, zero past n.
        let n8 = n.div_ceil(8) * 8;
        let dstride = n8 + 8;
        let mut dy = data(2 * 8 * dstride, 11);
        for e in 0..2 {
            for r in 0..8 {
                for q in n..dstride {
                    dy[(e * 8 + r) * dstride + q] = 0.0;
                }
            }
        }
        let x_stride = 40 + n + SLACK;
        let x = data(2 * x_stride, 5);
        let g = Group {
            dy: &dy,
            dy_stride: 8 * dstride,
            dstride,
            x: &x,
            x_stride,
            examples: 2,
        };
        let mut dw = vec![0.5; rows * k];
        reduce(&g, rows, &offs, n8, &mut dw);
        for r in 0..rows {
            for kk in 0..k {
                let want: f64 = 0.5
                    + (0..2)
                        .flat_map(|e| (0..n).map(move |q| (e, q)))
                        .map(|(e, q)| {
                            dy[(e * 8 + r) * dstride + q] as f64
                                * x[e * x_stride + offs[kk] as usize + q] as f64
                        })
                        .sum::<f64>();
                assert!((dw[r * k + kk] as f64 - want).abs() < 1e-4, "{r} {kk}");
            }
        }
    }

    #[test]
    fn rows_split_into_six_and_four_row_tiles() {
        let tiles = |r: usize| Plan::for_rows(r).tiles;
        assert_eq!(tiles(16), [6, 6, 4]);
        assert_eq!(tiles(32), [6, 6, 6, 6, 4, 4]);
        assert_eq!(tiles(64), [6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4]);
        assert_eq!(tiles(6), [6]);
        assert_eq!(tiles(9), [6, 4]);
        assert_eq!(tiles(4), [4]);
        assert_eq!(tiles(2), [1, 1]);
        assert_eq!(Plan::for_rows(3).positions(), 48);
    }
}

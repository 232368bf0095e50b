//! Direct convolution kernels for x86-64, in two instruction sets ([`Simd`]): AVX2 + FMA (8 floats a
//! vector) and AVX-512 (16): no im2col buffer, the products read the zero-padded planes in place.
//! Stride 1 is described here; a stride turns into the same correlations over phase planes
//! (`passes.rs`).
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
//! The first two are [`correlate`]: register tiles of `CO` output rows x `LANES * PV` positions,
//! per reduction step `PV` unaligned loads and `CO` broadcasts for `CO * PV` FMAs. The third is
//! [`reduce`]: `CO` rows of `dy` x `KT` offsets, accumulated over positions and over a group of
//! examples before one horizontal sum per accumulator. Every loop bound is a constant of the tile,
//! so the accumulators stay in registers (`kernels.rs` holds the loops, once per instruction set).
//!
//! Callers keep every read in bounds: each source has [`SLACK`] readable floats past its last
//! position, and every output row holds a whole number of tiles.

mod kernels;
mod passes;
pub use passes::{Direct, DirectLane};

/// Floats a source must stay readable (and finite) past the last position it is read at, for a
/// position tile rounded up (at most 48 - 1 extra: the widest tile is 48 positions).
pub const SLACK: usize = 48;

pub use super::vector::Simd;

/// Whether this CPU runs the kernels at all (x86-64 with AVX2 and FMA; every AVX-512 CPU has both).
pub fn available() -> bool {
    Simd::Avx2.available()
}

/// How [`correlate`] covers its output rows.
///
/// - AVX2: register tiles of 6 or 4 rows x 16 positions (12 or 8 accumulators; 8 loads per 12 FMAs,
///   6 per 8), or for one to three rows, tiles of 1 row x 48 positions (6 accumulators, 7 loads per
///   6 FMAs). Rows are split into as many 6-row tiles as fit with at most two 4-row tiles making up
///   the rest (16 = 6 + 6 + 4, 32 = 4 x 6 + 2 x 4), so little is computed past the real rows. A
///   4 x 24 tile (12 accumulators, 3 position vectors) was tried first: with the broadcast LLVM
///   schedules it needs 17 registers, and the spill put a store-to-load round trip on an
///   accumulator's chain (35 % of peak where 6 x 16 reached 51 %).
/// - AVX-512: tiles of 12, 8 or 4 rows x 32 positions (24, 16 or 8 accumulators of the 32
///   registers), at most two 8-row and one 4-row tile (16 = 8 + 8, 32 = 12 + 12 + 8, 64 = 4 x 12 +
///   2 x 8), or for one to three rows 1 row x 48 positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub simd: Simd,
    /// Vectors of positions per tile.
    pub vecs: usize,
    /// Rows of each tile, in order.
    pub tiles: Vec<usize>,
}

impl Plan {
    /// The plan for `rows` output rows on `simd`.
    pub fn for_rows(rows: usize, simd: Simd) -> Self {
        if rows <= 3 {
            return Plan {
                simd,
                vecs: 48 / simd.lanes(),
                tiles: vec![1; rows],
            };
        }
        // (big tile, (smaller tile, how many at most)...): the split computing the fewest rows,
        // then the fewest tiles, then the fewest of the smallest (the least efficient) tiles.
        let (big, small): (usize, &[(usize, usize)]) = match simd {
            Simd::Avx2 => (6, &[(4, 2)]),
            Simd::Avx512 => (12, &[(8, 2), (4, 1)]),
        };
        let counts = |a: usize, b: usize| {
            let smalls: usize = [a, b].iter().zip(small).map(|(n, (t, _))| n * t).sum();
            (rows.saturating_sub(smalls).div_ceil(big), a, b)
        };
        let limit = |i: usize| small.get(i).map_or(0, |s| s.1);
        let (bigs, a, b) = (0..=limit(0))
            .flat_map(|a| (0..=limit(1)).map(move |b| (a, b)))
            .map(|(a, b)| counts(a, b))
            .min_by_key(|&(bigs, a, b)| {
                let tile = |i: usize| small.get(i).map_or(0, |s| s.0);
                (big * bigs + a * tile(0) + b * tile(1), bigs + a + b, b)
            })
            .expect("at least one split");
        let mut tiles = vec![big; bigs];
        for (n, (t, _)) in [a, b].into_iter().zip(small) {
            tiles.extend(std::iter::repeat_n(*t, n));
        }
        Plan {
            simd,
            vecs: 2,
            tiles,
        }
    }

    /// Positions per tile.
    pub fn positions(&self) -> usize {
        self.simd.lanes() * self.vecs
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
/// `0..n` rounded up to whole tiles (a last two-vector tile that holds at most one vector of them
/// computes only its first vector; the rest of it is left as it was). `ostride` must be at least
/// `plan.stride(n)`, `out` at least `plan.rows() * ostride` long, and `src` readable at `max(offs) +
/// n + SLACK`.
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
    assert!(
        plan.simd.available(),
        "direct convolution kernels need {:?}",
        plan.simd
    );
    let lanes = plan.simd.lanes();
    for q0 in (0..span).step_by(plan.positions()) {
        // A last tile with at most one vector of positions left runs on one position vector.
        let short = plan.vecs == 2 && n - q0 <= lanes;
        let mut r0 = 0;
        for &t in &plan.tiles {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has the plan's instruction set (checked above); reads stay below
            // `max_off + span <= src.len()` and `(r0 + t) * k <= packed.len()`, writes below
            // `(r0 + t) * ostride <= out.len()` (asserted above).
            unsafe {
                use kernels::{avx2, avx512};
                let w = &packed[r0 * k..];
                let o = &mut out[r0 * ostride..];
                match (plan.simd, t, plan.vecs, short) {
                    (Simd::Avx2, 6, 2, false) => {
                        avx2::correlate_tile::<6, 2>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx2, 6, 2, true) => {
                        avx2::correlate_tile::<6, 1>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx2, 4, 2, false) => {
                        avx2::correlate_tile::<4, 2>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx2, 4, 2, true) => {
                        avx2::correlate_tile::<4, 1>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx2, 1, 6, _) => {
                        avx2::correlate_tile::<1, 6>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 12, 2, false) => {
                        avx512::correlate_tile::<12, 2>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 12, 2, true) => {
                        avx512::correlate_tile::<12, 1>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 8, 2, false) => {
                        avx512::correlate_tile::<8, 2>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 8, 2, true) => {
                        avx512::correlate_tile::<8, 1>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 4, 2, false) => {
                        avx512::correlate_tile::<4, 2>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 4, 2, true) => {
                        avx512::correlate_tile::<4, 1>(src, offs, w, o, ostride, q0)
                    }
                    (Simd::Avx512, 1, 3, _) => {
                        avx512::correlate_tile::<1, 3>(src, offs, w, o, ostride, q0)
                    }
                    _ => unreachable!("tile {t} x {} on {:?}", plan.vecs, plan.simd),
                }
            }
            r0 += t;
        }
    }
}

/// Rows of `dy` per [`reduce`] tile (both instruction sets), and reduction offsets per tile: 3 on
/// AVX2 (12 accumulators, 7 loads per 12 FMAs), 6 on AVX-512 (24 accumulators, 10 loads per 24).
pub const REDUCE_ROWS: usize = 4;

/// One group of examples for [`reduce`]: `dy` planes (`rows` rows of `dstride` floats each, rows
/// rounded up to [`REDUCE_ROWS`], positions past the real ones zero) and padded inputs, example `e` at
/// `e * dy_stride` and `e * x_stride`.
pub struct Group<'a> {
    pub simd: Simd,
    pub dy: &'a [f32],
    pub dy_stride: usize,
    pub dstride: usize,
    pub x: &'a [f32],
    pub x_stride: usize,
    pub examples: usize,
}

/// `dw[row * offs.len() + k] += sum_e sum_q dy_e[row, q] * x_e[offs[k] + q]` for `q` in `0..nv` (`nv` a
/// multiple of the vector width, `dy` zero past the real positions) and rows `0..rows`.
pub fn reduce(g: &Group<'_>, rows: usize, offs: &[u32], nv: usize, dw: &mut [f32]) {
    let k = offs.len();
    assert!(nv.is_multiple_of(g.simd.lanes()) && nv <= g.dstride && dw.len() >= rows * k);
    let rows_r = rows.div_ceil(REDUCE_ROWS) * REDUCE_ROWS;
    assert!(g.examples == 0 || g.dy.len() >= (g.examples - 1) * g.dy_stride + rows_r * g.dstride);
    let max_off = offs.iter().copied().max().unwrap_or(0) as usize;
    assert!(g.examples == 0 || g.x.len() >= (g.examples - 1) * g.x_stride + max_off + nv);
    assert!(
        g.simd.available(),
        "direct convolution kernels need {:?}",
        g.simd
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the group's instruction set; reads stay within the bounds asserted above;
    // `dw` is written only below `rows * k`.
    unsafe {
        match g.simd {
            Simd::Avx2 => kernels::avx2::reduce_tiles::<REDUCE_ROWS, 3>(g, rows, offs, nv, dw),
            Simd::Avx512 => kernels::avx512::reduce_tiles::<REDUCE_ROWS, 6>(g, rows, offs, nv, dw),
        }
    }
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

    /// Every instruction set this CPU has (printing the ones it lacks, which are not used here).
    fn simds() -> Vec<Simd> {
        [Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|s| {
                let ok = s.available();
                if !ok {
                    eprintln!("skipped {s:?}: this CPU lacks it (its kernels are not used here)");
                }
                ok
            })
            .collect()
    }

    #[test]
    fn correlate_and_reduce_match_plain_sums() {
        let offs: Vec<u32> = vec![0, 1, 5, 9, 30, 31, 2];
        let k = offs.len();
        for simd in simds() {
            // 53 positions end in a long tile, 40 in a short one on AVX-512 (8 of 32 left).
            for n in [53, 40] {
                let src = data(40 + n + SLACK, 3);
                for rows in [2, 4, 7, 16, 20, 28] {
                    let w = data(rows * k, 7);
                    let plan = Plan::for_rows(rows, simd);
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
                            assert!((got - want).abs() < 1e-4, "{plan:?} {n} {r} {q}");
                        }
                    }
                }
            }
            reduce_matches_plain_sums(simd);
        }
    }

    fn reduce_matches_plain_sums(simd: Simd) {
        let (n, rows): (usize, usize) = (53, 7);
        let offs: Vec<u32> = vec![0, 1, 5, 9, 30, 31, 2];
        let k = offs.len();
        // Two examples; dy rows padded to 8 rows, zero past n.
        let nv = n.div_ceil(simd.lanes()) * simd.lanes();
        let dstride = nv + 8;
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
            simd,
            dy: &dy,
            dy_stride: 8 * dstride,
            dstride,
            x: &x,
            x_stride,
            examples: 2,
        };
        let mut dw = vec![0.5; rows * k];
        reduce(&g, rows, &offs, nv, &mut dw);
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
                assert!(
                    (dw[r * k + kk] as f64 - want).abs() < 1e-4,
                    "{simd:?} {r} {kk}"
                );
            }
        }
    }

    #[test]
    fn rows_split_into_tiles_that_fit_the_registers() {
        let tiles = |r: usize| Plan::for_rows(r, Simd::Avx2).tiles;
        assert_eq!(tiles(16), [6, 6, 4]);
        assert_eq!(tiles(32), [6, 6, 6, 6, 4, 4]);
        assert_eq!(tiles(64), [6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4]);
        assert_eq!(tiles(6), [6]);
        assert_eq!(tiles(9), [6, 4]);
        assert_eq!(tiles(4), [4]);
        assert_eq!(tiles(2), [1, 1]);
        assert_eq!(Plan::for_rows(3, Simd::Avx2).positions(), 48);
        let wide = |r: usize| Plan::for_rows(r, Simd::Avx512).tiles;
        assert_eq!(wide(16), [8, 8]);
        assert_eq!(wide(32), [12, 12, 8]);
        assert_eq!(wide(64), [12, 12, 12, 12, 8, 8]);
        assert_eq!(wide(6), [8]);
        assert_eq!(wide(4), [4]);
        assert_eq!(wide(20), [12, 8]);
        assert_eq!(wide(28), [12, 8, 8]);
        assert_eq!(wide(2), [1, 1]);
        assert_eq!(Plan::for_rows(16, Simd::Avx512).positions(), 32);
        assert_eq!(Plan::for_rows(3, Simd::Avx512).positions(), 48);
    }
}

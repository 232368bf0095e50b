//! The Winograd F(2x2, 3x3) transforms: of a filter and its gradient (scalar, once per step), and
//! of the tiles (AVX2, eight tiles per vector).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `G g G^T`: a 3x3 filter's 4x4 transform.
pub(super) fn filter_transform(g: &[[f32; 3]; 3]) -> [[f32; 4]; 4] {
    let t = |v: [f32; 3]| {
        [
            v[0],
            0.5 * (v[0] + v[1] + v[2]),
            0.5 * (v[0] - v[1] + v[2]),
            v[2],
        ]
    };
    // Columns first (over ky), then rows (over kx).
    let cols: [[f32; 4]; 3] = std::array::from_fn(|kx| t([g[0][kx], g[1][kx], g[2][kx]]));
    std::array::from_fn(|b| t([cols[0][b], cols[1][b], cols[2][b]]))
}

/// `G^T dU G`: the 3x3 filter gradient from its 4x4 transform.
pub(super) fn filter_gradient(du: &[[f32; 4]; 4]) -> [[f32; 3]; 3] {
    let t = |u: [f32; 4]| {
        [
            u[0] + 0.5 * (u[1] + u[2]),
            0.5 * (u[1] - u[2]),
            0.5 * (u[1] + u[2]) + u[3],
        ]
    };
    // Over kx within each row b, then over ky for each kx.
    let rows: [[f32; 3]; 4] = std::array::from_fn(|b| t(du[b]));
    let cols: [[f32; 3]; 3] =
        std::array::from_fn(|kx| t([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]));
    std::array::from_fn(|ky| std::array::from_fn(|kx| cols[kx][ky]))
}

/// `B^T` applied to four vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bt(d: [__m256; 4]) -> [__m256; 4] {
    [
        _mm256_sub_ps(d[0], d[2]),
        _mm256_add_ps(d[1], d[2]),
        _mm256_sub_ps(d[2], d[1]),
        _mm256_sub_ps(d[1], d[3]),
    ]
}

/// `A^T` applied to four vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn at(m: [__m256; 4]) -> [__m256; 2] {
    [
        _mm256_add_ps(_mm256_add_ps(m[0], m[1]), m[2]),
        _mm256_sub_ps(_mm256_sub_ps(m[1], m[2]), m[3]),
    ]
}

/// `A` applied to two vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn a(y: [__m256; 2]) -> [__m256; 4] {
    [
        y[0],
        _mm256_add_ps(y[0], y[1]),
        _mm256_sub_ps(y[0], y[1]),
        _mm256_sub_ps(_mm256_setzero_ps(), y[1]),
    ]
}

/// `V[xi] = (B^T d B)[xi]` for the tiles `t` in `0..tv` of one channel: `p` its four phase planes
/// (`plane` floats apart), `v` its first transformed plane, `xstride` floats between tile positions.
// Transposed reads (`cols[0][b]`, `cols[1][b]`, ..) index by the loop variable.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn input_tiles(
    p: *const f32,
    plane: usize,
    wh: usize,
    v: *mut f32,
    xstride: usize,
    tv: usize,
) {
    for t in (0..tv).step_by(8) {
        // d[r][c]: padded row 2i + r, column 2j + c, in phase plane (r % 2, c % 2).
        let mut d = [[_mm256_setzero_ps(); 4]; 4];
        for (r, row) in d.iter_mut().enumerate() {
            for (c, dv) in row.iter_mut().enumerate() {
                let at = ((r % 2) * 2 + c % 2) * plane + (r / 2) * wh + c / 2 + t;
                *dv = _mm256_loadu_ps(p.add(at));
            }
        }
        // Over rows for each column (`cols[c][b]`), then over columns.
        let mut cols = [[_mm256_setzero_ps(); 4]; 4];
        for (c, col) in cols.iter_mut().enumerate() {
            *col = bt([d[0][c], d[1][c], d[2][c], d[3][c]]);
        }
        for b in 0..4 {
            let row = bt([cols[0][b], cols[1][b], cols[2][b], cols[3][b]]);
            for (a, val) in row.iter().enumerate() {
                _mm256_storeu_ps(v.add((b * 4 + a) * xstride + t), *val);
            }
        }
    }
}

/// The four output rows (`2r + c` for output `(r, c)` of each tile, `tv` floats apart) from the
/// products `m` (tile position `xi` at `xi * xstride`), plus `bias`, then ReLU when `relu`.
// Transposed reads (`cols[0][b]`, `cols[1][b]`, ..) index by the loop variable.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn output_tiles(
    m: *const f32,
    xstride: usize,
    out: *mut f32,
    tv: usize,
    bias: f32,
    relu: bool,
) {
    let (bv, zero) = (_mm256_set1_ps(bias), _mm256_setzero_ps());
    for t in (0..tv).step_by(8) {
        let mut mv = [[zero; 4]; 4];
        for (b, row) in mv.iter_mut().enumerate() {
            for (a, v) in row.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(m.add((b * 4 + a) * xstride + t));
            }
        }
        // Over b for each a (`cols[a][r]`), then over a.
        let mut cols = [[zero; 2]; 4];
        for (a, col) in cols.iter_mut().enumerate() {
            *col = at([mv[0][a], mv[1][a], mv[2][a], mv[3][a]]);
        }
        for r in 0..2 {
            let y = at([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
            for (c, val) in y.iter().enumerate() {
                let mut val = _mm256_add_ps(*val, bv);
                if relu {
                    val = _mm256_max_ps(val, zero);
                }
                _mm256_storeu_ps(out.add((2 * r + c) * tv + t), val);
            }
        }
    }
}

/// `dM[xi] = (A dy A^T)[xi]` for the tiles of one output-gradient plane: `p` its four phase planes
/// (row parity x column parity, no padding), `dm` its first transformed row, `xstride` floats apart.
// Transposed reads (`cols[0][b]`, `cols[1][b]`, ..) index by the loop variable.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gradient_tiles(
    p: *const f32,
    plane: usize,
    dm: *mut f32,
    xstride: usize,
    tv: usize,
) {
    for t in (0..tv).step_by(8) {
        // Over the columns c of each row r (`rows[r][a]`), then over the rows.
        let mut rows = [[_mm256_setzero_ps(); 4]; 2];
        for (r, row) in rows.iter_mut().enumerate() {
            let y0 = _mm256_loadu_ps(p.add(r * 2 * plane + t));
            let y1 = _mm256_loadu_ps(p.add((r * 2 + 1) * plane + t));
            *row = a([y0, y1]);
        }
        for ai in 0..4 {
            let col = a([rows[0][ai], rows[1][ai]]);
            for (b, val) in col.iter().enumerate() {
                _mm256_storeu_ps(dm.add((b * 4 + ai) * xstride + t), *val);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transforms against their definitions: a 4x4 tile through F(2x2, 3x3) equals the direct
    /// 2x2 correlation, and `G^T (A dy A^T . V) G` the direct weight gradient.
    #[test]
    fn one_tile_matches_the_direct_correlation() {
        let g = [[0.3f32, -1.2, 0.7], [2.0, 0.1, -0.4], [-0.9, 0.5, 1.5]];
        let d: [[f32; 4]; 4] =
            std::array::from_fn(|r| std::array::from_fn(|c| ((r * 7 + c * 3) % 5) as f32 - 1.7));
        let bt1 = |v: [f32; 4]| [v[0] - v[2], v[1] + v[2], v[2] - v[1], v[1] - v[3]];
        let cols: [[f32; 4]; 4] =
            std::array::from_fn(|c| bt1([d[0][c], d[1][c], d[2][c], d[3][c]]));
        let v: [[f32; 4]; 4] =
            std::array::from_fn(|b| bt1([cols[0][b], cols[1][b], cols[2][b], cols[3][b]]));
        let u = filter_transform(&g);
        let m: [[f32; 4]; 4] = std::array::from_fn(|b| std::array::from_fn(|a| u[b][a] * v[b][a]));
        let at1 = |m: [f32; 4]| [m[0] + m[1] + m[2], m[1] - m[2] - m[3]];
        let mc: [[f32; 2]; 4] = std::array::from_fn(|a| at1([m[0][a], m[1][a], m[2][a], m[3][a]]));
        for r in 0..2 {
            let y = at1([mc[0][r], mc[1][r], mc[2][r], mc[3][r]]);
            for c in 0..2 {
                let want: f32 = (0..3)
                    .flat_map(|u| (0..3).map(move |w| (u, w)))
                    .map(|(u, w)| g[u][w] * d[r + u][c + w])
                    .sum();
                assert!(
                    (y[c] - want).abs() < 1e-4,
                    "y[{r}][{c}] = {} want {want}",
                    y[c]
                );
            }
        }
        // Weight gradient of one tile: dg[u][w] = sum_rc dy[r][c] d[r + u][c + w].
        let dy = [[0.4f32, -1.1], [0.8, 2.3]];
        let a1 = |y: [f32; 2]| [y[0], y[0] + y[1], y[0] - y[1], -y[1]];
        let rows: [[f32; 4]; 2] = std::array::from_fn(|r| a1(dy[r]));
        let dm: [[f32; 4]; 4] = {
            let cols: [[f32; 4]; 4] = std::array::from_fn(|a| a1([rows[0][a], rows[1][a]]));
            std::array::from_fn(|b| std::array::from_fn(|a| cols[a][b]))
        };
        let du: [[f32; 4]; 4] =
            std::array::from_fn(|b| std::array::from_fn(|a| dm[b][a] * v[b][a]));
        let dg = filter_gradient(&du);
        for u in 0..3 {
            for w in 0..3 {
                let want: f32 = (0..2)
                    .flat_map(|r| (0..2).map(move |c| (r, c)))
                    .map(|(r, c)| dy[r][c] * d[r + u][c + w])
                    .sum();
                assert!(
                    (dg[u][w] - want).abs() < 1e-4,
                    "dg[{u}][{w}] = {} want {want}",
                    dg[u][w]
                );
            }
        }
    }
}

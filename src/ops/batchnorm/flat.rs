//! BatchNorm1d on the CPU (`[batch, C]`, plane 1). Each feature's values are a strided column, so
//! every pass here runs along the rows instead — all features at once, vectorised across features —
//! with the same f32-then-f64 summation as the image path: up to [`ROWS`] rows summed in f32 per
//! feature, those partial sums added in f64.

use super::super::vector::vectorized;
use rayon::prelude::*;

/// Rows summed in f32 before they are added to the f64 totals.
const ROWS: usize = 64;
/// Rows per parallel task in the elementwise passes.
const TASK_ROWS: usize = 32;

/// Per feature: `sum over rows of f(row)[j]`, in f64, for `f` giving one f32 value per feature.
fn column_sums(batch: usize, c: usize, mut f: impl FnMut(usize, &mut [f32])) -> Vec<f64> {
    let (mut total, mut part) = (vec![0f64; c], vec![0f32; c]);
    vectorized(
        #[inline(always)]
        || {
            for n in 0..batch {
                f(n, &mut part);
                if (n + 1) % ROWS == 0 || n + 1 == batch {
                    for (t, p) in total.iter_mut().zip(part.iter_mut()) {
                        *t += *p as f64;
                        *p = 0.0;
                    }
                }
            }
        },
    );
    total
}

/// Per feature: (batch mean, biased variance), two passes (the second about the f32-rounded mean,
/// corrected for the rounding).
pub fn stats(x: &[f32], batch: usize, c: usize) -> Vec<(f64, f64)> {
    let m = batch as f64;
    let row = |n: usize| &x[n * c..(n + 1) * c];
    let sum = column_sums(batch, c, |n, acc| {
        acc.iter_mut().zip(row(n)).for_each(|(a, &v)| *a += v)
    });
    let mean: Vec<f64> = sum.iter().map(|s| s / m).collect();
    let mf: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let sq = column_sums(batch, c, |n, acc| {
        for ((a, &v), &mu) in acc.iter_mut().zip(row(n)).zip(&mf) {
            *a += (v - mu) * (v - mu);
        }
    });
    (0..c)
        .map(|j| {
            let d = mean[j] - mf[j] as f64;
            (mean[j], (sq[j] / m - d * d).max(0.0))
        })
        .collect()
}

/// Per feature: (sum of dy, sum of dy * xhat) with xhat = (x - mean) * invstd.
pub fn grad_sums(
    x: &[f32],
    dy: &[f32],
    batch: usize,
    c: usize,
    mean: &[f32],
    invstd: &[f32],
) -> Vec<(f64, f64)> {
    let s = column_sums(batch, c, |n, acc| {
        acc.iter_mut()
            .zip(&dy[n * c..(n + 1) * c])
            .for_each(|(a, &g)| *a += g)
    });
    let sx = column_sums(batch, c, |n, acc| {
        let (xr, gr) = (&x[n * c..(n + 1) * c], &dy[n * c..(n + 1) * c]);
        for j in 0..c {
            acc[j] += gr[j] * ((xr[j] - mean[j]) * invstd[j]);
        }
    });
    s.into_iter().zip(sx).collect()
}

/// `y = x * scale + shift` per feature, ReLU'd when `relu`.
pub fn apply(
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    c: usize,
    scale: &[f32],
    shift: &[f32],
    relu: bool,
) {
    y[..batch * c]
        .par_chunks_mut(TASK_ROWS * c)
        .zip(x[..batch * c].par_chunks(TASK_ROWS * c))
        .for_each(|(yt, xt)| {
            vectorized(
                #[inline(always)]
                || {
                    for (yr, xr) in yt.chunks_exact_mut(c).zip(xt.chunks_exact(c)) {
                        for j in 0..c {
                            let v = xr[j] * scale[j] + shift[j];
                            yr[j] = if relu { v.max(0.0) } else { v };
                        }
                    }
                },
            )
        });
}

/// The input gradient `dx = k * (dy - a - xhat * b)` per feature, with `k = gamma * invstd`,
/// `a = sum(dy) / M`, `b = sum(dy * xhat) / M` given per feature; zeroed where `mask <= 0`.
#[allow(clippy::too_many_arguments)]
pub fn input_grad(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    batch: usize,
    c: usize,
    mean: &[f32],
    invstd: &[f32],
    k: &[f32],
    a: &[f32],
    b: &[f32],
    mask: Option<&[f32]>,
) {
    dx[..batch * c]
        .par_chunks_mut(TASK_ROWS * c)
        .enumerate()
        .for_each(|(t, dt)| {
            vectorized(
                #[inline(always)]
                || {
                    for (i, dr) in dt.chunks_exact_mut(c).enumerate() {
                        let n = t * TASK_ROWS + i;
                        let (xr, gr) = (&x[n * c..(n + 1) * c], &dy[n * c..(n + 1) * c]);
                        for j in 0..c {
                            let xhat = (xr[j] - mean[j]) * invstd[j];
                            dr[j] = k[j] * (gr[j] - a[j] - xhat * b[j]);
                        }
                        if let Some(mask) = mask {
                            super::super::relu_mask(dr, &mask[n * c..(n + 1) * c]);
                        }
                    }
                },
            )
        });
}

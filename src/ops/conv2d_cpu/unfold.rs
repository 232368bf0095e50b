//! Unfolding for the im2col + GEMM convolution: im2col and its adjoint, the "wide" stride-1 variant
//! (see the parent module's docs), zero padding and the line copies they are made of.

use crate::ops::conv2d::ConvShape;

/// Stride 1 with a real kernel, where the wide unfolding pays (see the module docs): it replaces
/// `k * out_h` short copies with `k` long ones but adds `out_c * out_h` short copies (the output or its
/// gradient) and `pw / out_w` more GEMM work, so it is used when the reduction is at least twice the
/// output channels and the rows grow by at most a quarter. Measured: the cnn's 16->32 layer gains
/// 15-25 % on the forward and input-gradient passes (the weight gradient is unchanged); its 1->16
/// first layer (k = 9) would lose 20-50 % on the backward passes.
pub(super) fn is_wide(s: &ConvShape) -> bool {
    let (ow, pw) = (s.out_w(), padded_hw(s).1);
    let pays = s.k() >= 2 * s.out_c && 4 * pw <= 5 * ow;
    pays && s.stride == 1 && !im2col_is_identity(s)
}

/// Input channel and kernel offsets `(ci, ky, kx)` of im2col row `row`.
fn kernel_pos(s: &ConvShape, row: usize) -> (usize, usize, usize) {
    (row / (s.kh * s.kw), (row / s.kw) % s.kh, row % s.kw)
}

/// Height and width of an example's zero-padded planes.
pub(super) fn padded_hw(s: &ConvShape) -> (usize, usize) {
    (s.in_h + 2 * s.pad, s.in_w + 2 * s.pad)
}

/// `dst = src` for two slices of equal length, in fixed 8-float blocks (the last one overlapping) so
/// the copy is a few inline vector moves: im2col copies thousands of 10-30 float lines per example, and
/// a `memcpy` call per line cost more than the GEMM.
#[inline(always)]
pub(crate) fn copy_line(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let src = &src[..n];
    if n < 8 {
        for (d, v) in dst.iter_mut().zip(src) {
            *d = *v;
        }
        return;
    }
    let block = |d: &mut [f32], v: &[f32]| {
        let d: &mut [f32; 8] = d.try_into().expect("8-float block");
        let v: &[f32; 8] = v.try_into().expect("8-float block");
        *d = *v;
    };
    let mut i = 0;
    while i + 8 <= n {
        block(&mut dst[i..i + 8], &src[i..i + 8]);
        i += 8;
    }
    if i < n {
        block(&mut dst[n - 8..], &src[n - 8..]);
    }
}

/// The example's input as planes of `[ph, pw]`: `x` itself without padding, else a zero-padded copy in
/// `padded`.
fn padded_input<'a>(x: &'a [f32], s: &ConvShape, padded: &'a mut [f32]) -> &'a [f32] {
    if s.pad == 0 && !is_wide(s) {
        return &x[..s.in_len()];
    }
    let (ph, pw) = padded_hw(s);
    let padded = &mut padded[..s.in_c * ph * pw + if is_wide(s) { s.kw } else { 0 }];
    padded.fill(0.0);
    for (ci, plane) in padded.chunks_exact_mut(ph * pw).enumerate() {
        for iy in 0..s.in_h {
            let src = &x[(ci * s.in_h + iy) * s.in_w..(ci * s.in_h + iy + 1) * s.in_w];
            let at = (iy + s.pad) * pw + s.pad;
            copy_line(&mut plane[at..at + s.in_w], src);
        }
    }
    padded
}

/// Unfold one example `x: [in_c, in_h, in_w]` into `cols: [in_c*kh*kw, out_h*out_w]` (zeros for
/// padding). `padded` is scratch for the zero-padded input (unused without padding). Every line of
/// `cols` is a copy from the padded input, with no bounds logic in the loop.
pub fn im2col(x: &[f32], s: &ConvShape, padded: &mut [f32], cols: &mut [f32]) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.p());
    let (ph, pw) = padded_hw(s);
    let src = padded_input(x, s, padded);
    for (row, dst) in cols[..s.k() * p].chunks_exact_mut(p).enumerate() {
        let (ci, ky, kx) = kernel_pos(s, row);
        let plane = &src[ci * ph * pw..(ci + 1) * ph * pw];
        for (oy, line) in dst.chunks_exact_mut(ow).enumerate().take(oh) {
            let at = (oy * s.stride + ky) * pw + kx;
            if s.stride == 1 {
                copy_line(line, &plane[at..at + ow]);
            } else {
                for (ox, v) in line.iter_mut().enumerate() {
                    *v = plane[at + ox * s.stride];
                }
            }
        }
    }
}

/// The adjoint of [`im2col`] for one example: `dx = the columns folded back` (overwrites `dx`), then
/// zeroed where `mask <= 0` when a mask is given. `padded` is scratch for the padded gradient.
pub fn col2im(
    cols: &[f32],
    s: &ConvShape,
    padded: &mut [f32],
    dx: &mut [f32],
    mask: Option<&[f32]>,
) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.p());
    let (ph, pw) = padded_hw(s);
    let acc: &mut [f32] = if s.pad == 0 {
        &mut dx[..s.in_len()]
    } else {
        &mut padded[..s.in_c * ph * pw]
    };
    acc.fill(0.0);
    for (row, src) in cols[..s.k() * p].chunks_exact(p).enumerate() {
        let (ci, ky, kx) = kernel_pos(s, row);
        let plane = &mut acc[ci * ph * pw..(ci + 1) * ph * pw];
        for (oy, src_row) in src.chunks_exact(ow).enumerate().take(oh) {
            let at = (oy * s.stride + ky) * pw + kx;
            if s.stride == 1 {
                for (d, v) in plane[at..at + ow].iter_mut().zip(src_row) {
                    *d += v;
                }
            } else {
                for (ox, v) in src_row.iter().enumerate() {
                    plane[at + ox * s.stride] += v;
                }
            }
        }
    }
    if s.pad > 0 {
        unpad(padded, s, dx);
    }
    if let Some(mask) = mask {
        crate::ops::relu_mask(&mut dx[..s.in_len()], mask);
    }
}

/// `dx = the interior of the padded planes` (the inverse of [`padded_input`]'s copy).
fn unpad(padded: &[f32], s: &ConvShape, dx: &mut [f32]) {
    let (ph, pw) = padded_hw(s);
    for ci in 0..s.in_c {
        for iy in 0..s.in_h {
            let at = (ci * ph + iy + s.pad) * pw + s.pad;
            let o = (ci * s.in_h + iy) * s.in_w;
            copy_line(&mut dx[o..o + s.in_w], &padded[at..at + s.in_w]);
        }
    }
}

/// True when im2col would copy the input unchanged (1x1 kernel, stride 1, no padding): then the GEMMs
/// read the input directly.
pub(super) fn im2col_is_identity(s: &ConvShape) -> bool {
    s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0
}

/// Wide unfolding of one example (stride 1): `cols[row, oy * pw + ox'] = xpad[ci, oy + ky, ox' + kx]`
/// for `ox'` in `0..pw`, one contiguous copy per row of `cols`.
pub(super) fn im2col_wide(x: &[f32], s: &ConvShape, padded: &mut [f32], cols: &mut [f32]) {
    let (ph, pw) = padded_hw(s);
    let n = s.out_h() * pw;
    let src = padded_input(x, s, padded);
    for (row, dst) in cols[..s.k() * n].chunks_exact_mut(n).enumerate() {
        let (ci, ky, kx) = kernel_pos(s, row);
        let at = ci * ph * pw + ky * pw + kx;
        dst.copy_from_slice(&src[at..at + n]);
    }
}

/// The adjoint of [`im2col_wide`] into `dx` (overwritten), then the ReLU mask. The dropped columns
/// of `cols` must be zero (they are when `cols = W^T dY_wide`, see [`widen`]).
pub(super) fn col2im_wide(
    cols: &[f32],
    s: &ConvShape,
    padded: &mut [f32],
    dx: &mut [f32],
    mask: Option<&[f32]>,
) {
    let (ph, pw) = padded_hw(s);
    let n = s.out_h() * pw;
    let acc = &mut padded[..s.in_c * ph * pw + s.kw];
    acc.fill(0.0);
    for (row, src) in cols[..s.k() * n].chunks_exact(n).enumerate() {
        let (ci, ky, kx) = kernel_pos(s, row);
        let at = ci * ph * pw + ky * pw + kx;
        for (d, v) in acc[at..at + n].iter_mut().zip(src) {
            *d += v;
        }
    }
    unpad(acc, s, dx);
    if let Some(mask) = mask {
        crate::ops::relu_mask(&mut dx[..s.in_len()], mask);
    }
}

/// `dy: [out_c, out_h, out_w]` -> `wide: [out_c, out_h, pw]` with the extra columns zero.
pub(super) fn widen(dy: &[f32], s: &ConvShape, wide: &mut [f32]) {
    let (_, pw) = padded_hw(s);
    let ow = s.out_w();
    for (dst, src) in wide[..s.out_c * s.out_h() * pw]
        .chunks_exact_mut(pw)
        .zip(dy.chunks_exact(ow))
    {
        copy_line(&mut dst[..ow], src);
        dst[ow..].fill(0.0);
    }
}

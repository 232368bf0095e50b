//! The optimised CPU convolutions (im2col, wide unfolding, threaded GEMMs; the direct AVX2 kernels and
//! Winograd F(2x2, 3x3) where the CPU has them) against a plain-loop
//! definition written here in f64: forward (with and without bias, fused ReLU), input gradient (with a
//! ReLU mask) and weight + bias gradient. The GPU kernels are checked against the optimised CPU
//! convolution elsewhere; this keeps that oracle from being its own judge.

mod common;

use common::{assert_close, conv_case, conv_cases, random};
use wgtrain::device::policy::{CpuConv, Simd};
use wgtrain::ops::conv2d::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvShape, ConvWork,
};
use wgtrain::ops::{conv2d_direct, conv2d_winograd};

/// `x[n][c][y][x]` with zero padding outside the input.
fn at(x: &[f32], s: &ConvShape, n: usize, c: usize, y: isize, xx: isize) -> f64 {
    if y < 0 || xx < 0 || y >= s.in_h as isize || xx >= s.in_w as isize {
        return 0.0;
    }
    x[((n * s.in_c + c) * s.in_h + y as usize) * s.in_w + xx as usize] as f64
}

/// The input position read by output `(oy, ox)` at kernel tap `(ky, kx)`.
fn tap(s: &ConvShape, oy: usize, ox: usize, ky: usize, kx: usize) -> (isize, isize) {
    (
        (oy * s.stride + ky) as isize - s.pad as isize,
        (ox * s.stride + kx) as isize - s.pad as isize,
    )
}

fn widx(s: &ConvShape, o: usize, c: usize, ky: usize, kx: usize) -> usize {
    ((o * s.in_c + c) * s.kh + ky) * s.kw + kx
}

fn forward_ref(x: &[f32], w: &[f32], b: Option<&[f32]>, batch: usize, s: &ConvShape) -> Vec<f64> {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0f64; batch * s.out_len()];
    for n in 0..batch {
        for o in 0..s.out_c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[o] as f64);
                    for c in 0..s.in_c {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let (iy, ix) = tap(s, oy, ox, ky, kx);
                                acc += at(x, s, n, c, iy, ix) * w[widx(s, o, c, ky, kx)] as f64;
                            }
                        }
                    }
                    y[((n * s.out_c + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// dL/dx and dL/dw, dL/db for L = sum(y * dy).
fn backward_ref(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    batch: usize,
    s: &ConvShape,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut dx = vec![0f64; batch * s.in_len()];
    let mut dw = vec![0f64; w.len()];
    let mut db = vec![0f64; s.out_c];
    for n in 0..batch {
        for o in 0..s.out_c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dy[((n * s.out_c + o) * oh + oy) * ow + ox] as f64;
                    db[o] += g;
                    for c in 0..s.in_c {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let (iy, ix) = tap(s, oy, ox, ky, kx);
                                if iy < 0
                                    || ix < 0
                                    || iy >= s.in_h as isize
                                    || ix >= s.in_w as isize
                                {
                                    continue;
                                }
                                let xi = ((n * s.in_c + c) * s.in_h + iy as usize) * s.in_w
                                    + ix as usize;
                                let wi = widx(s, o, c, ky, kx);
                                dx[xi] += g * w[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The shared cases plus the shapes of the presets' convolutions (resnet's stride-2 3x3 and 1x1
/// shortcut without bias, the cnn's and lenet5's layers), each at 1 and 2 threads.
fn cases() -> Vec<(usize, ConvShape)> {
    let c = conv_case;
    let mut v = conv_cases();
    v.extend([
        c(3, 1, 28, 28, 16, 3, 3, 1, 1),
        c(2, 16, 28, 28, 32, 3, 3, 2, 1),
        c(2, 16, 28, 28, 32, 1, 1, 2, 0),
        c(2, 32, 14, 14, 32, 3, 3, 1, 1),
        c(2, 6, 14, 14, 16, 5, 5, 1, 0),
        c(2, 1, 28, 28, 6, 5, 5, 1, 2),
        // Stride 1 for the direct kernels: a 3x2 kernel, padding wider than the kernel's reach, 7x7
        // planes with 64 channels (resnet's last stage; 6-row tiles), 9 output rows (a short tile).
        c(2, 3, 9, 11, 4, 3, 2, 1, 1),
        c(1, 2, 6, 6, 5, 3, 3, 1, 2),
        c(3, 64, 7, 7, 64, 3, 3, 1, 1),
        c(2, 9, 5, 5, 9, 3, 3, 1, 1),
        // Winograd: resnet's first stage (28x28, 16 channels), and odd, unequal sides with channel
        // counts that fill no register tile.
        c(2, 16, 28, 28, 16, 3, 3, 1, 1),
        c(3, 8, 9, 13, 10, 3, 3, 1, 1),
    ]);
    v
}

/// Every kernel choice, the direct kernels on each instruction set this CPU has (one it lacks is
/// printed and left out: its kernels never run here).
fn variants() -> Vec<(CpuConv, Simd)> {
    let mut v = vec![
        (CpuConv::Gemm, Simd::Avx2),
        (CpuConv::Direct, Simd::Avx2),
        (CpuConv::Winograd, Simd::Avx2),
    ];
    if Simd::Avx512.available() {
        v.push((CpuConv::Direct, Simd::Avx512));
        v.push((CpuConv::Winograd, Simd::Avx512));
    } else {
        eprintln!("the AVX-512 direct kernels are not checked: this CPU lacks AVX-512F");
    }
    v
}

#[test]
fn optimised_cpu_conv_equals_the_plain_loop_definition() {
    for (case, (batch, s)) in cases().into_iter().enumerate() {
        let seed = 100 + 10 * case as u64;
        let (wlen, blen) = (s.out_c * s.k(), s.out_c);
        // Weights at an offset, bias after them, as in a parameter vector.
        let off = 5;
        let params = random(off + wlen + blen, seed);
        let (w, b) = (&params[off..off + wlen], &params[off + wlen..]);
        let x = random(batch * s.in_len(), seed + 1);
        let dy = random(batch * s.out_len(), seed + 2);
        let want = forward_ref(&x, w, Some(b), batch, &s);
        let want_nb = forward_ref(&x, w, None, batch, &s);
        let (dx_want, dw_want, db_want) = backward_ref(&x, w, &dy, batch, &s);
        let variants = variants();
        let runs = [1, 2]
            .into_iter()
            .flat_map(|t| variants.iter().map(move |&v| (t, v)));
        for (threads, (kernels, simd)) in runs {
            let what = |part: &str| {
                format!(
                    "case {case} {s:?} batch {batch}, {threads} threads, {kernels:?} {simd:?}: {part}"
                )
            };
            let mut work = ConvWork::with_simd(&s, threads, kernels, simd);
            // Every case but a strided 1x1 runs the direct kernels where the CPU has them, resnet's
            // stride-2 3x3 its input gradient too (the phase split).
            let strided_1x1 = s.stride > 1 && s.kh * s.kw == 1;
            // Winograd takes every stride-1 pad-1 3x3 shape with 8 or more channels each way.
            let winograd = kernels == CpuConv::Winograd && conv2d_winograd::pays(&s);
            assert_eq!(work.is_winograd(), winograd, "{}", what("Winograd"));
            let direct =
                kernels != CpuConv::Gemm && !winograd && conv2d_direct::available() && !strided_1x1;
            assert_eq!(work.is_direct(), direct, "{}", what("kernels"));
            if direct {
                assert_eq!(
                    work.direct_simd(),
                    Some(simd),
                    "{}",
                    what("instruction set")
                );
            }
            let resnet_down = ConvShape {
                stride: 2,
                ..ConvShape::same_3x3(16, 28, 32)
            };
            if direct && (s.stride == 1 || s == resnet_down) {
                assert!(work.input_is_direct(), "{}", what("direct input gradient"));
            }
            // Each pass first runs once on other data: buffers reused across calls keep nothing of
            // an earlier example (the direct kernels never clear their zero borders).
            let (x0, dy0) = (random(x.len(), seed + 3), random(dy.len(), seed + 4));
            let mut y = vec![0f32; batch * s.out_len()];
            conv2d_forward(&x0, &params, off, None, &mut y, &mut work, batch, &s, true);
            conv2d_forward(
                &x,
                &params,
                off,
                Some(off + wlen),
                &mut y,
                &mut work,
                batch,
                &s,
                false,
            );
            assert_close(&y, &f32s(&want), 1e-4, 1e-4, &what("forward"));
            conv2d_forward(&x, &params, off, None, &mut y, &mut work, batch, &s, false);
            assert_close(&y, &f32s(&want_nb), 1e-4, 1e-4, &what("forward, no bias"));
            conv2d_forward(
                &x,
                &params,
                off,
                Some(off + wlen),
                &mut y,
                &mut work,
                batch,
                &s,
                true,
            );
            let relu: Vec<f32> = want.iter().map(|&v| v.max(0.0) as f32).collect();
            assert_close(&y, &relu, 1e-4, 1e-4, &what("forward + relu"));

            let mut dx = vec![f32::NAN; batch * s.in_len()];
            conv2d_backward_input(&dy0, &params, off, &mut dx, None, &mut work, batch, &s);
            dx.fill(f32::NAN);
            conv2d_backward_input(&dy, &params, off, &mut dx, None, &mut work, batch, &s);
            assert_close(&dx, &f32s(&dx_want), 1e-4, 1e-4, &what("input gradient"));
            // With a fused-ReLU mask (the input was a ReLU output): zero where mask <= 0.
            let mask: Vec<f32> = x.iter().map(|&v| v.max(0.0)).collect();
            conv2d_backward_input(
                &dy,
                &params,
                off,
                &mut dx,
                Some(&mask),
                &mut work,
                batch,
                &s,
            );
            let masked: Vec<f32> = dx_want
                .iter()
                .zip(&mask)
                .map(|(&g, &m)| if m > 0.0 { g as f32 } else { 0.0 })
                .collect();
            assert_close(&dx, &masked, 1e-4, 1e-4, &what("masked input gradient"));

            let mut grads = vec![f32::NAN; params.len()];
            let bias = Some(off + wlen);
            conv2d_backward_weight(&dy0, &x0, &mut grads, off, bias, &mut work, batch, &s);
            grads.fill(f32::NAN);
            conv2d_backward_weight(
                &dy,
                &x,
                &mut grads,
                off,
                Some(off + wlen),
                &mut work,
                batch,
                &s,
            );
            assert_close(
                &grads[off..off + wlen],
                &f32s(&dw_want),
                1e-4,
                1e-4,
                &what("dW"),
            );
            assert_close(
                &grads[off + wlen..],
                &f32s(&db_want),
                1e-4,
                1e-4,
                &what("db"),
            );
            assert!(
                grads[..off].iter().all(|v| v.is_nan()),
                "{}",
                what("wrote outside")
            );
        }
    }
}

/// The chunks go to whichever thread is free, so which thread runs what changes from call to call;
/// the weight gradient's partial sums belong to chunks, not threads, so the bits must not.
#[test]
fn weight_gradient_is_bit_identical_across_calls() {
    let s = ConvShape::same_3x3(16, 14, 32);
    let batch = 37; // chunks of unequal length
    let x = random(batch * s.in_len(), 7);
    let dy = random(batch * s.out_len(), 8);
    let len = s.out_c * s.k() + s.out_c;
    for (kernels, simd) in variants() {
        let mut work = ConvWork::with_simd(&s, 2, kernels, simd);
        let mut run = || {
            let mut grads = vec![0f32; len];
            let bias = Some(s.out_c * s.k());
            conv2d_backward_weight(&dy, &x, &mut grads, 0, bias, &mut work, batch, &s);
            grads.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
        };
        let first = run();
        for call in 0..20 {
            assert!(
                run() == first,
                "{kernels:?} {simd:?}: call {call} differs from the first"
            );
        }
    }
}

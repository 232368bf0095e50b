//! Each GPU kernel against the CPU op on random data with awkward shapes, and one full training step.
//! Skips with a message when there is no adapter; fails instead when `CI` is set.

mod common;

use common::{assert_close, download, gpu, random, run, upload_f32, upload_u32};
use wgtrain::data::ImageShape;
use wgtrain::device::gpu::PlanBuilder;
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::ops::matmul::{self as mm, matmul_reference, MatmulParams, Strided};
use wgtrain::ops::softmax_xent::{push_softmax_xent, softmax_xent};

/// Shapes that are not multiples of the 4x4 register tile or the 32x32 workgroup tile, 1-row, 1-column
/// and a large K.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 37, 5),
    (37, 1, 5),
    (33, 65, 17),
    (64, 10, 1000),
    (5, 3, 2050),
    (130, 70, 3),
];

#[test]
fn matmul_kernel_matches_reference_with_offsets_and_transposes() {
    let Some(ctx) = gpu() else { return };
    for &(m, n, k) in SHAPES {
        let a = random(m * k + 7, 1);
        let b = random(k * n + 5, 2);
        for (sa, sb) in [
            (Strided::rows(3, k), Strided::rows(2, n)),
            (Strided::transposed(0, m), Strided::transposed(1, k)),
            (Strided::rows(0, k), Strided::transposed(5, k)),
        ] {
            let expect = matmul_reference(m, n, k, &a, sa, &b, sb);
            let (ga, gb) = (upload_f32(&ctx, &a), upload_f32(&ctx, &b));
            // C at an offset (3) with a padded row stride (n + 2).
            let p = MatmulParams::new(m, n, k, sa, sb, 3, n + 2);
            // The adapter's pick, and the register-blocked and tiled kernels explicitly.
            let picked = mm::storage_kernel(&ctx, &p);
            for kernel in [picked, &mm::MATMUL, &mm::MATMUL_TILED] {
                check_strided(
                    &ctx,
                    p,
                    &ga,
                    &gb,
                    &expect,
                    kernel,
                    &format!("{sa:?} {sb:?}"),
                );
            }
        }
    }
}

/// Runs one product with `kernel` into a C at an offset with a padded row stride, and checks both are
/// honoured: the values where C is, the padding untouched.
fn check_strided(
    ctx: &wgtrain::device::gpu::GpuContext,
    p: MatmulParams,
    ga: &wgpu::Buffer,
    gb: &wgpu::Buffer,
    expect: &[f32],
    kernel: &wgtrain::device::gpu::Kernel,
    what: &str,
) {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let (c_off, c_rs) = (p.c_off as usize, p.c_rs as usize);
    let gc = upload_f32(ctx, &vec![-7.0; c_off + m * c_rs]);
    let mut pb = PlanBuilder::new(ctx);
    mm::push_matmul_with(&mut pb, p, ga, gb, ga, &gc, kernel);
    run(ctx, pb);
    let c = download(ctx, &gc, c_off + m * c_rs);
    let got: Vec<f32> = (0..m)
        .flat_map(|i| c[c_off + i * c_rs..c_off + i * c_rs + n].to_vec())
        .collect();
    let what = format!("gpu {} {m}x{n}x{k} {what}", kernel.name);
    assert_close(&got, expect, 1e-4, 1e-4, &what);
    // Padding between rows is untouched.
    for i in 0..m {
        assert_eq!(c[c_off + i * c_rs + n], -7.0, "wrote past row end");
    }
}

/// The vectorised variants against the reference on the layouts they accept, including row counts that
/// are not multiples of 4 (NT, NN) and the fused bias gradient (TN); and the general kernel on the same
/// products (register-blocked and tiled), so every path stays correct.
#[test]
fn vec4_matmul_variants_match_reference() {
    let Some(ctx) = gpu() else { return };
    for &(m, n, k) in &[
        (4, 4, 4),
        (5, 8, 12),
        (64, 256, 784),
        (37, 36, 40),
        (1, 4, 4),
    ] {
        let a = random(m * k + 8, 3);
        let b = random(k * n + 8, 4);
        let cases = [
            ("nt", Strided::rows(4, k), Strided::transposed(8, k)),
            ("nn", Strided::rows(4, k), Strided::rows(8, n)),
            ("tn", Strided::transposed(4, m), Strided::rows(8, n)),
        ];
        for (name, sa, sb) in cases {
            if name == "tn" && m % 4 != 0 {
                continue;
            }
            let expect = matmul_reference(m, n, k, &a, sa, &b, sb);
            let mut p = MatmulParams::new(m, n, k, sa, sb, 0, n);
            let kernel =
                mm::vec4_variant(&p).unwrap_or_else(|| panic!("{name} {m}x{n}x{k} not vectorised"));
            assert_eq!(kernel.entry, format!("matmul_{name}"));
            let (ga, gb) = (upload_f32(&ctx, &a), upload_f32(&ctx, &b));
            for k2 in [kernel, &mm::MATMUL, &mm::MATMUL_TILED] {
                let gc = upload_f32(&ctx, &vec![0.0; m * n + m]);
                let mut pb = PlanBuilder::new(&ctx);
                if name == "tn" {
                    // With the bias gradient: row sums of A land after C.
                    p.flags = mm::FLAG_BIAS_GRAD;
                    p.bias_off = (m * n) as u32;
                }
                mm::push_matmul_with(&mut pb, p, &ga, &gb, &ga, &gc, k2);
                run(&ctx, pb);
                let got = download(&ctx, &gc, m * n + m);
                assert_close(
                    &got[..m * n],
                    &expect,
                    1e-4,
                    1e-4,
                    &format!("{} {m}x{n}x{k}", k2.name),
                );
                if name == "tn" {
                    let sums: Vec<f32> = (0..m)
                        .map(|i| {
                            (0..k)
                                .map(|q| a[sa.off + i * sa.rs + q * sa.cs] as f64)
                                .sum::<f64>() as f32
                        })
                        .collect();
                    assert_close(
                        &got[m * n..],
                        &sums,
                        1e-4,
                        1e-4,
                        &format!("{} bias grad", k2.name),
                    );
                }
            }
        }
    }
}

#[test]
fn linear_kernels_match_cpu_ops() {
    let Some(ctx) = gpu() else { return };
    // (5, 12, 8) and (64, 784, 256) take the vectorised kernels for all three products; the others
    // exercise the fallback for some or all of them.
    for &(batch, inp, out) in &[
        (1, 1, 1),
        (3, 17, 5),
        (64, 784, 10),
        (7, 33, 130),
        (5, 12, 8),
        (64, 784, 256),
    ] {
        // params: padding, weight [out, inp] at 4, bias [out] after it.
        let w = 4;
        let bias = w + out * inp;
        let params = random(bias + out, 11);
        let x = random(batch * inp, 12);
        let dy = random(batch * out, 13);
        let mask = random(batch * inp, 14); // about half negative
        let (gp, gx, gdy, gmask) = (
            upload_f32(&ctx, &params),
            upload_f32(&ctx, &x),
            upload_f32(&ctx, &dy),
            upload_f32(&ctx, &mask),
        );
        for relu in [false, true] {
            let mut expect = vec![0.0; batch * out];
            mm::linear_forward(&x, &params, w, bias, &mut expect, batch, inp, out, relu);
            let gy = upload_f32(&ctx, &vec![0.0; batch * out]);
            let mut pb = PlanBuilder::new(&ctx);
            mm::push_linear_forward(&mut pb, &gx, &gp, w, bias, &gy, batch, inp, out, relu);
            run(&ctx, pb);
            assert_close(
                &download(&ctx, &gy, batch * out),
                &expect,
                1e-4,
                1e-4,
                "linear forward",
            );
        }
        for use_mask in [false, true] {
            let m = use_mask.then_some(&mask[..]);
            let mut expect = vec![0.0; batch * inp];
            mm::linear_backward_input(&dy, &params, w, &mut expect, m, batch, inp, out);
            let gdx = upload_f32(&ctx, &vec![0.0; batch * inp]);
            let mut pb = PlanBuilder::new(&ctx);
            let gm = use_mask.then_some(&gmask);
            mm::push_linear_backward_input(&mut pb, &gdy, &gp, w, &gdx, gm, batch, inp, out);
            run(&ctx, pb);
            assert_close(
                &download(&ctx, &gdx, batch * inp),
                &expect,
                1e-4,
                1e-4,
                "linear backward input",
            );
        }
        let mut expect = vec![0.0; params.len()];
        mm::linear_backward_weight(&dy, &x, &mut expect, w, bias, batch, inp, out);
        let gg = upload_f32(&ctx, &vec![0.0; params.len()]);
        let mut pb = PlanBuilder::new(&ctx);
        mm::push_linear_backward_weight(&mut pb, &gdy, &gx, &gg, w, bias, batch, inp, out);
        run(&ctx, pb);
        assert_close(
            &download(&ctx, &gg, params.len()),
            &expect,
            1e-4,
            1e-4,
            "linear backward weight+bias",
        );
    }
}

#[test]
fn softmax_xent_kernel_matches_cpu_and_accumulates() {
    let Some(ctx) = gpu() else { return };
    for &(batch, classes) in &[(1, 2), (7, 10), (300, 10), (257, 3)] {
        let mut logits = random(batch * classes, 21);
        logits.iter_mut().for_each(|v| *v *= 20.0); // large values exercise the max subtraction
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 5 + 1) % classes as u32)
            .collect();
        let mut grad = vec![0.0; batch * classes];
        let expect = softmax_xent(&logits, &labels, classes, Some(&mut grad));
        let (gl, gy) = (upload_f32(&ctx, &logits), upload_u32(&ctx, &labels));
        let gg = upload_f32(&ctx, &vec![0.0; batch * classes]);
        let gs = upload_f32(&ctx, &[1.0, 2.0, 0.0, 0.0]);
        let mut pb = PlanBuilder::new(&ctx);
        push_softmax_xent(&mut pb, &gl, &gy, &gg, &gs, 0, batch, classes, true);
        push_softmax_xent(&mut pb, &gl, &gy, &gg, &gs, 2, batch, classes, false);
        run(&ctx, pb);
        assert_close(
            &download(&ctx, &gg, batch * classes),
            &grad,
            1e-6,
            1e-4,
            "softmax grad",
        );
        let s = download(&ctx, &gs, 4);
        let l = expect.loss_sum as f32;
        assert_close(
            &s,
            &[
                1.0 + l,
                2.0 + expect.correct as f32,
                l,
                expect.correct as f32,
            ],
            1e-3,
            1e-5,
            "stats",
        );
    }
}

/// One full training step (and then a few more) of the mlp on GPU and CPU from the same init: the
/// updated weights agree. Tolerance: Adam divides by sqrt(v), so tiny gradient differences from a
/// different summation order move a weight by up to ~lr; we check the update itself (new - old) to
/// 1e-5 absolute (lr is 1e-3), and that the mean absolute difference is far below that.
#[test]
fn mlp_training_steps_agree_with_cpu() {
    let Some(ctx) = gpu() else { return };
    let input = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let model = models::build(Some("mlp"), None, input, 10).unwrap();
    let init = model.init_params(5);
    let batch = 37; // not a multiple of anything
    let x = random(batch * 784, 31);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut head_only = OptimConfig::adam(1e-3);
    head_only.frozen_prefix = model.head_offset();
    for optim in [
        OptimConfig::adam(1e-3),
        OptimConfig::sgd(0.05, 0.9),
        head_only,
    ] {
        let (mut cpu, mut gpu) = common::assert_steps_agree(&ctx, &model, &init, optim, &x, &y, 3);
        let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
        let mean_diff: f64 = pc
            .iter()
            .zip(&pg)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / pc.len() as f64;
        assert!(mean_diff < 1e-6, "mean |cpu - gpu| = {mean_diff}");
        let (sc, sg) = (
            cpu.take_train_stats().unwrap(),
            gpu.take_train_stats().unwrap(),
        );
        assert_eq!(sc.count, sg.count);
        assert_eq!(sc.correct, sg.correct);
        assert!(
            (sc.loss_sum - sg.loss_sum).abs() < 1e-3 * sc.loss_sum,
            "{sc:?} vs {sg:?}"
        );
    }
}

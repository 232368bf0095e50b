//! Convolution and pooling kernels on the GPU against the CPU ops (the oracle), on the shapes of the
//! gradient checks (stride 2, padding 0/1/2, non-square, channels not a multiple of 4, batch 1), and one
//! full cnn training step. Skips without an adapter; fails instead when `CI` is set.

mod common;

use common::{assert_close, conv_cases, download, gpu, random, run, upload_f32, upload_windowed};
use wgtrain::data::ImageShape;
use wgtrain::device::gpu::GpuContext;
use wgtrain::device::gpu::PlanBuilder;
use wgtrain::device::window;
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::ops::conv2d::{self as cv, ConvShape};
use wgtrain::ops::pool::{self as pl, PoolKind, PoolShape};

/// Dispatch counts of one conv case's forward, input-gradient and weight-gradient plans.
type Dispatches = [usize; 3];

/// Every conv kernel on one case against the CPU ops, with the GPU inputs made by `upload`.
fn check_conv_case(
    ctx: &GpuContext,
    case: usize,
    batch: usize,
    s: &ConvShape,
    upload: fn(&GpuContext, &[f32]) -> wgpu::Buffer,
) -> Dispatches {
    let what = |op: &str| format!("{op} case {case} batch {batch} {s:?}");
    let (w, bias) = (3, 3 + s.out_c * s.k());
    let params = random(bias + s.out_c, 40 + case as u64);
    let x = random(batch * s.in_len(), 50 + case as u64);
    let dy = random(batch * s.out_len(), 60 + case as u64);
    let mask = random(batch * s.in_len(), 70 + case as u64);
    let (gp, gx, gdy, gmask) = (
        upload(ctx, &params),
        upload(ctx, &x),
        upload(ctx, &dy),
        upload(ctx, &mask),
    );
    let mut counts = [0; 3];
    let mut work = cv::ConvWork::new(s, 2);
    // With a bias, and without one (PyTorch's bias=False before a BatchNorm).
    for (relu, bias) in [(false, Some(bias)), (true, Some(bias)), (true, None)] {
        let mut y = vec![0.0; batch * s.out_len()];
        cv::conv2d_forward(&x, &params, w, bias, &mut y, &mut work, batch, s, relu);
        let gy = upload_f32(ctx, &vec![0.0; y.len()]);
        let mut pb = PlanBuilder::new(ctx);
        cv::push_conv2d_forward(&mut pb, &gx, &gp, w, bias, &gy, batch, s, relu);
        counts[0] = run(ctx, pb);
        let got = download(ctx, &gy, y.len());
        assert_close(&got, &y, 1e-4, 1e-4, &what("conv forward"));
    }
    for use_mask in [false, true] {
        let mut dx = vec![0.0; batch * s.in_len()];
        let m = use_mask.then_some(&mask[..]);
        cv::conv2d_backward_input(&dy, &params, w, &mut dx, m, &mut work, batch, s);
        let gdx = upload_f32(ctx, &vec![0.0; dx.len()]);
        let mut pb = PlanBuilder::new(ctx);
        let gm = use_mask.then_some(&gmask);
        cv::push_conv2d_backward_input(&mut pb, &gdy, &gp, w, &gdx, gm, batch, s);
        counts[1] = run(ctx, pb);
        let got = download(ctx, &gdx, dx.len());
        assert_close(&got, &dx, 1e-4, 1e-4, &what("conv backward input"));
    }
    // Without a bias, its gradient must be left alone (zero here) on both devices.
    for bias in [Some(bias), None] {
        let mut grads = vec![0.0; params.len()];
        cv::conv2d_backward_weight(&dy, &x, &mut grads, w, bias, &mut work, batch, s);
        let gg = upload_f32(ctx, &vec![0.0; params.len()]);
        let gpart = upload_f32(ctx, &vec![0.0; s.gpu_partial_len(batch)]);
        let mut pb = PlanBuilder::new(ctx);
        cv::push_conv2d_backward_weight(&mut pb, &gdy, &gx, &gpart, &gg, w, bias, batch, s);
        counts[2] = run(ctx, pb);
        let got = download(ctx, &gg, params.len());
        assert_close(
            &got[w..],
            &grads[w..],
            1e-4,
            1e-4,
            &what("conv backward weight"),
        );
        if bias.is_none() {
            assert!(
                got[3 + s.out_c * s.k()..].iter().all(|&g| g == 0.0),
                "{}",
                what("no-bias gradient")
            );
        }
    }
    counts
}

/// The cnn's second layer (16 -> 32 channels, 3x3, 14x14).
const CNN2: ConvShape = ConvShape::same_3x3(16, 14, 32);

/// The cnn's first layer (1 -> 16 channels, 3x3, 28x28).
const CNN1: ConvShape = ConvShape::same_3x3(1, 28, 16);

#[test]
fn conv2d_kernels_match_cpu() {
    let Some(ctx) = gpu() else { return };
    // The gradient-check shapes plus the cnn's second layer at batch 5.
    let mut cases = conv_cases();
    cases.push((5, CNN2));
    for (case, (batch, s)) in cases.into_iter().enumerate() {
        check_conv_case(&ctx, case, batch, &s, upload_f32);
    }
}

/// The uniform-window variants (taken on software adapters when the inputs are bindable as uniform
/// buffers) against the CPU: batches split over several windows, uneven splits, windows that start
/// mid-buffer, and the cases that fall back to the storage kernels.
#[test]
fn conv2d_window_variants_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut cases = conv_cases();
    // 16 -> 32 at batch 7: 3136 input floats per example, five per window, so two uneven forward
    // windows; 6272 dy floats per example, two per window, so four input- and weight-gradient windows.
    cases.push((7, CNN2));
    // 1 -> 16 at batch 25: 784 input floats, 20 per window (two forward windows); 12544 dy floats, one
    // per window: 25 input-gradient windows, but the weight gradient's would have too few invocations,
    // so it keeps the storage kernel.
    cases.push((25, CNN1));
    let mut dispatches = Vec::new();
    for (case, (batch, s)) in cases.into_iter().enumerate() {
        dispatches.push(check_conv_case(
            &ctx,
            100 + case,
            batch,
            &s,
            upload_windowed,
        ));
    }
    if window::preferred(&ctx) {
        // Forward / input gradient: one dispatch per window; weight gradient: one per window plus the
        // reduce. The storage kernels would take 1, 1 and 2.
        let n = dispatches.len();
        assert_eq!(
            dispatches[n - 2],
            [2, 4, 5],
            "cnn2 at batch 7: window dispatches"
        );
        assert_eq!(
            dispatches[n - 1],
            [2, 25, 2],
            "cnn1 at batch 25: window dispatches"
        );
    }
}

#[test]
fn pooling_kernels_match_cpu() {
    let Some(ctx) = gpu() else { return };
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for &(batch, channels, in_h, in_w, k, stride) in &[
            (1, 3, 6, 8, 2, 2),
            (2, 5, 7, 5, 3, 2),
            (1, 1, 5, 5, 2, 1),
            (3, 16, 28, 28, 2, 2),
        ] {
            let s = PoolShape {
                kind,
                channels,
                in_h,
                in_w,
                k,
                stride,
            };
            let what = |op: &str| format!("{op} {s:?}");
            let x = random(batch * s.in_len(), 1);
            let dy = random(batch * s.out_len(), 2);
            let mask = random(batch * s.in_len(), 3);
            let mut y = vec![0.0; batch * s.out_len()];
            let mut arg = vec![0u32; y.len()];
            pl::pool_forward(&x, &mut y, &mut arg, batch, &s);
            let (gx, gdy, gmask) = (
                upload_f32(&ctx, &x),
                upload_f32(&ctx, &dy),
                upload_f32(&ctx, &mask),
            );
            let gy = upload_f32(&ctx, &vec![0.0; y.len()]);
            let garg = upload_f32(&ctx, &vec![0.0; y.len()]);
            let mut pb = PlanBuilder::new(&ctx);
            pl::push_pool_forward(&mut pb, &gx, &garg, &gy, batch, &s);
            run(&ctx, pb);
            assert_close(
                &download(&ctx, &gy, y.len()),
                &y,
                1e-6,
                1e-6,
                &what("pool forward"),
            );
            for use_mask in [false, true] {
                let mut dx = vec![0.0; batch * s.in_len()];
                pl::pool_backward(&dy, &arg, &mut dx, use_mask.then_some(&mask[..]), batch, &s);
                let gdx = upload_f32(&ctx, &vec![0.0; dx.len()]);
                let mut pb = PlanBuilder::new(&ctx);
                pl::push_pool_backward(
                    &mut pb,
                    &gdy,
                    &garg,
                    &gdx,
                    use_mask.then_some(&gmask),
                    batch,
                    &s,
                );
                run(&ctx, pb);
                assert_close(
                    &download(&ctx, &gdx, dx.len()),
                    &dx,
                    1e-6,
                    1e-5,
                    &what("pool backward"),
                );
            }
        }
    }
}

/// Three Adam steps of the cnn preset and of a strided/avg-pool spec, GPU vs CPU from the same init:
/// the updates agree to 1e-5 absolute (lr 1e-3) and the logits to 1e-4.
#[test]
fn cnn_training_steps_agree_with_cpu() {
    let Some(ctx) = gpu() else { return };
    let mnist = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let rgb = ImageShape {
        channels: 3,
        height: 11,
        width: 13,
    };
    for (model, batch) in [
        (models::build(Some("cnn"), None, mnist, 10).unwrap(), 9),
        (models::build(Some("lenet5"), None, mnist, 10).unwrap(), 4),
        (
            models::build(
                None,
                Some("conv3x3x5p2s2,relu,avgpool2s1,conv2x3x6,relu,maxpool2,flatten,fc7,relu,fc4"),
                rgb,
                4,
            )
            .unwrap(),
            3,
        ),
    ] {
        let init = model.init_params(11);
        let x = random(batch * model.input_len(), 12);
        let y: Vec<u32> = (0..batch as u32)
            .map(|i| i % model.num_classes as u32)
            .collect();
        common::assert_steps_agree(&ctx, &model, &init, OptimConfig::adam(1e-3), &x, &y, 3);
    }
}

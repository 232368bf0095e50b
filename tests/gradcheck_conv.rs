//! Convolution and pooling backward passes against finite differences (CPU), on awkward shapes:
//! stride 2, padding 0/1/2, non-square inputs and kernels, channel counts not a multiple of 4, batch 1.
//! Plus an end-to-end gradient check of a small CNN through the CPU executor (every fused ReLU mask,
//! max and average pooling, conv and fc).

mod common;

use common::{assert_close, conv_cases, numeric, random};
use wgtrain::data::ImageShape;
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::ops::conv2d::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward, ConvShape, ConvWork,
};
use wgtrain::ops::pool::{pool_backward, pool_forward, PoolKind, PoolShape};
use wgtrain::Device;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// L = sum(conv(x, w) * r) is linear in x and in w, so central differences are exact up to rounding:
/// eps = 0.5 and a tolerance of 1e-3 absolute + 1e-3 relative.
#[test]
fn conv2d_gradients_match_finite_differences() {
    for (case, (batch, s)) in conv_cases().into_iter().enumerate() {
        let (w, bias) = (3, 3 + s.out_c * s.k()); // an offset, to exercise it
        let params = random(bias + s.out_c, 40 + case as u64);
        let x = random(batch * s.in_len(), 50 + case as u64);
        let r = random(batch * s.out_len(), 60 + case as u64);
        let forward = |p: &[f32], x: &[f32]| {
            let mut y = vec![0.0; batch * s.out_len()];
            let mut work = ConvWork::new(&s, 2);
            conv2d_forward(x, p, w, Some(bias), &mut y, &mut work, batch, &s, false);
            y
        };
        let mut grads = vec![0.0; params.len()];
        // Thread counts below, at and above the batch size (empty ranges must not add anything).
        for threads in [1, 2, 5] {
            let mut work = ConvWork::new(&s, threads);
            conv2d_backward_weight(&r, &x, &mut grads, w, Some(bias), &mut work, batch, &s);
            let gn = numeric(|p| dot(&forward(p, &x), &r), &params, 0.5);
            assert_close(
                &grads[w..],
                &gn[w..],
                1e-3,
                1e-3,
                &format!("conv dW/db case {case}, {threads} threads"),
            );
        }
        let dxn = numeric(|xx| dot(&forward(&params, xx), &r), &x, 0.5);
        let mut dx = vec![0.0; batch * s.in_len()];
        for threads in [1, 3] {
            let mut work = ConvWork::new(&s, threads);
            conv2d_backward_input(&r, &params, w, &mut dx, None, &mut work, batch, &s);
            assert_close(
                &dx,
                &dxn,
                1e-3,
                1e-3,
                &format!("conv dX case {case}, {threads} threads"),
            );
        }
        // The ReLU mask zeroes exactly the positions where the mask is <= 0.
        let mask = random(batch * s.in_len(), 70);
        let mut dxm = vec![0.0; batch * s.in_len()];
        let mut work = ConvWork::new(&s, 2);
        conv2d_backward_input(&r, &params, w, &mut dxm, Some(&mask), &mut work, batch, &s);
        for ((m, a), b) in mask.iter().zip(&dxm).zip(&dx) {
            assert_eq!(*a, if *m > 0.0 { *b } else { 0.0 });
        }
        // Fused ReLU in the forward equals max(0, .) of the plain output.
        let mut yr = vec![0.0; batch * s.out_len()];
        conv2d_forward(
            &x,
            &params,
            w,
            Some(bias),
            &mut yr,
            &mut work,
            batch,
            &s,
            true,
        );
        let plain = forward(&params, &x);
        assert!(yr.iter().zip(&plain).all(|(a, b)| *a == b.max(0.0)));
    }
}

#[test]
fn conv2d_forward_hand_computed() {
    // 1 channel 3x3 input, 2x2 kernel of ones, bias 1, no padding: each output is a 2x2 window sum + 1.
    let s = ConvShape {
        in_c: 1,
        in_h: 3,
        in_w: 3,
        out_c: 1,
        kh: 2,
        kw: 2,
        stride: 1,
        pad: 0,
    };
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let params = [1.0, 1.0, 1.0, 1.0, 1.0];
    let mut y = [0.0; 4];
    conv2d_forward(
        &x,
        &params,
        0,
        Some(4),
        &mut y,
        &mut ConvWork::new(&s, 1),
        1,
        &s,
        false,
    );
    assert_eq!(y, [13.0, 17.0, 25.0, 29.0]);
    // Padding 1, stride 2: corners of the padded map see 4 real pixels each.
    let s = ConvShape {
        pad: 1,
        stride: 2,
        ..s
    };
    let mut y = [0.0; 4];
    conv2d_forward(
        &x,
        &params,
        0,
        Some(4),
        &mut y,
        &mut ConvWork::new(&s, 1),
        1,
        &s,
        false,
    );
    assert_eq!(y, [2.0, 6.0, 12.0, 29.0]);
}

const POOLS: &[(usize, PoolShape)] = &[
    (
        1,
        PoolShape {
            kind: PoolKind::Max,
            channels: 3,
            in_h: 6,
            in_w: 8,
            k: 2,
            stride: 2,
        },
    ),
    (
        2,
        PoolShape {
            kind: PoolKind::Max,
            channels: 5,
            in_h: 7,
            in_w: 5,
            k: 3,
            stride: 2,
        },
    ),
    (
        1,
        PoolShape {
            kind: PoolKind::Max,
            channels: 1,
            in_h: 5,
            in_w: 5,
            k: 2,
            stride: 1,
        },
    ),
    (
        1,
        PoolShape {
            kind: PoolKind::Avg,
            channels: 3,
            in_h: 6,
            in_w: 8,
            k: 2,
            stride: 2,
        },
    ),
    (
        2,
        PoolShape {
            kind: PoolKind::Avg,
            channels: 5,
            in_h: 7,
            in_w: 5,
            k: 3,
            stride: 2,
        },
    ),
    (
        1,
        PoolShape {
            kind: PoolKind::Avg,
            channels: 1,
            in_h: 5,
            in_w: 5,
            k: 2,
            stride: 1,
        },
    ),
];

/// Pooling is piecewise linear. The inputs are a shuffled grid of values 0.01 apart, so no winner
/// changes within eps = 1e-3 and central differences are exact up to rounding.
#[test]
fn pooling_gradients_match_finite_differences() {
    for (case, &(batch, s)) in POOLS.iter().enumerate() {
        let n = batch * s.in_len();
        let mut x: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.5).collect();
        wgtrain::rng::Rng::new(80 + case as u64).shuffle(&mut x);
        let r = random(batch * s.out_len(), 90 + case as u64);
        let forward = |x: &[f32]| {
            let mut y = vec![0.0; batch * s.out_len()];
            let mut arg = vec![0u32; batch * s.out_len()];
            pool_forward(x, &mut y, &mut arg, batch, &s);
            (y, arg)
        };
        let (_, arg) = forward(&x);
        let mut dx = vec![0.0; batch * s.in_len()];
        pool_backward(&r, &arg, &mut dx, None, batch, &s);
        let dxn = numeric(|xx| dot(&forward(xx).0, &r), &x, 1e-3);
        assert_close(&dx, &dxn, 2e-3, 2e-3, &format!("pool dX case {case} {s:?}"));
    }
}

#[test]
fn max_pool_hand_computed_with_first_max_winning_ties() {
    let s = PoolShape {
        kind: PoolKind::Max,
        channels: 1,
        in_h: 2,
        in_w: 4,
        k: 2,
        stride: 2,
    };
    let x = [1.0, 5.0, 7.0, 7.0, 3.0, 2.0, 7.0, 0.0];
    let mut y = [0.0; 2];
    let mut arg = [0u32; 2];
    pool_forward(&x, &mut y, &mut arg, 1, &s);
    assert_eq!(y, [5.0, 7.0]);
    assert_eq!(arg, [1, 2]);
    let mut dx = [9.0; 8];
    pool_backward(&[1.0, 2.0], &arg, &mut dx, None, 1, &s);
    assert_eq!(dx, [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

/// The gradient a whole CNN computes (conv+relu, max pool, conv+relu, avg pool, fc+relu, fc, softmax
/// cross-entropy), read off one SGD step with lr 1, against finite differences of the mean loss.
/// Tolerance 2e-3 + 5e-2 relative: f32 loss rounding and the parameter subtraction dominate.
#[test]
fn small_cnn_end_to_end_gradient() {
    let input = ImageShape {
        channels: 2,
        height: 9,
        width: 8,
    };
    let spec = "conv3x3x3p1,relu,maxpool2,conv3x2x5s1,relu,avgpool2s1,flatten,fc6,relu,fc3";
    let model = models::build(None, Some(spec), input, 3).unwrap();
    let params = model.init_params(3);
    let batch = 2;
    let x = random(batch * input.len(), 101);
    let y = [2u32, 0];
    let mut exec = Device::Cpu
        .executor(&model, &params, OptimConfig::sgd(1.0, 0.0), batch)
        .unwrap();
    exec.train_step(&x, &y).unwrap();
    let after = exec.params().unwrap();
    let analytic: Vec<f32> = params.iter().zip(&after).map(|(b, a)| b - a).collect();
    let loss = |p: &[f32]| {
        let mut e = Device::Cpu
            .executor(&model, p, OptimConfig::sgd(1.0, 0.0), batch)
            .unwrap();
        e.eval_step(&x, &y).unwrap();
        e.take_eval_stats().unwrap().mean_loss()
    };
    let numeric = numeric(loss, &params, 1e-3);
    assert_close(&analytic, &numeric, 2e-3, 5e-2, "cnn gradient");
    assert!(
        analytic.iter().filter(|g| g.abs() > 1e-3).count() > params.len() / 4,
        "gradients mostly zero"
    );
}

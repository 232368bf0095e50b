//! BatchNorm (2d after a conv, 1d after a linear layer): evaluation mode against hand-computed values,
//! training-mode gradients by finite differences, running statistics as PyTorch updates them, and the
//! GPU kernels against the CPU (lavapipe in CI).

mod common;
use common::*;
use wgtrain::data::ImageShape;
use wgtrain::device::Device;
use wgtrain::models;
use wgtrain::nn::OptimConfig;

const IMG: ImageShape = ImageShape {
    channels: 2,
    height: 5,
    width: 4,
};

#[test]
fn batchnorm_gradients_match_finite_differences() {
    gradcheck_model("conv3x3x4p1nb,bn,relu,flatten,fc3", IMG, 3, 3);
    gradcheck_model("flatten,fc6,bn,relu,fc3", IMG, 3, 5);
    // BatchNorm without a ReLU after it, reading a ReLU output (masked backward). At batch 2 this
    // seed puts a pre-activation within the finite-difference step of the ReLU kink (conv bias 2:
    // 0.211 analytic vs 0.182 numeric); batch 3 has none.
    gradcheck_model("conv3x3x3p1,relu,bn,flatten,fc3", IMG, 3, 3);
}

/// One training step's running statistics, then evaluation with them, against the formulas.
#[test]
fn batchnorm_running_statistics_and_eval_mode_by_hand() {
    let one = ImageShape {
        channels: 1,
        height: 1,
        width: 2,
    };
    // flatten -> fc1 would mix; use bn right on the 1x1x2 input viewed as 2 features.
    let model = models::build(None, Some("flatten,bn,fc2"), one, 2).unwrap();
    assert_eq!(model.num_buffers(), 2 + 2 + 1);
    let names: Vec<&str> = model.state.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    );
    let params = model.init_params(1);
    let mut exec = Device::Cpu
        .executor(&model, &params, OptimConfig::sgd(0.0, 0.0), 2)
        .unwrap();
    // Feature 0 sees 1 and 3 (mean 2, biased var 1, unbiased 2); feature 1 sees 4 and 4.
    exec.train_step(&[1.0, 4.0, 3.0, 4.0], &[0, 1]).unwrap();
    let s = exec.state().unwrap();
    let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
    assert!(close(s[0], 0.1 * 2.0) && close(s[1], 0.1 * 4.0), "{s:?}");
    assert!(close(s[4], 0.9 + 0.1 * 2.0) && close(s[5], 0.9), "{s:?}");
    assert_eq!(s[8], 1.0);
    // Evaluation: (x - running mean) / sqrt(running var + eps), weight 1, bias 0, then fc2.
    let x = [5.0f32, -1.0];
    let z0 = (5.0 - 0.2) / (1.1f32 + 1e-5).sqrt();
    let z1 = (-1.0 - 0.4) / (0.9f32 + 1e-5).sqrt();
    let (w, b) = (&params[8..12], &params[12..14]);
    let logits = exec.logits(&x).unwrap();
    for o in 0..2 {
        let want = w[2 * o] * z0 + w[2 * o + 1] * z1 + b[o];
        assert!((logits[o] - want).abs() < 1e-5, "{logits:?} vs {want}");
    }
}

#[test]
fn batchnorm_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    assert_spec_steps_agree(&ctx, "conv3x3x6p1nb,bn,relu,flatten,fc4", IMG, 4, 7);
    assert_spec_steps_agree(&ctx, "flatten,fc300,bn,relu,fc4", IMG, 4, 9);
    // More values per channel than a workgroup reduces in one pass.
    let big = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    assert_spec_steps_agree(
        &ctx,
        "conv3x3x5p1nb,bn,relu,maxpool2,flatten,fc10",
        big,
        10,
        6,
    );
}

/// Image statistics over planes larger than one summation block, for channels whose mean is far
/// from zero against their spread (where summing squares would cancel away the variance): the
/// running statistics after one step against the f64 formulas.
#[test]
fn batchnorm_image_statistics_keep_their_accuracy_far_from_zero() {
    let shape = ImageShape {
        channels: 2,
        height: 40,
        width: 40,
    };
    let model = models::build(None, Some("bn,flatten,fc2"), shape, 2).unwrap();
    let mut exec = Device::Cpu
        .executor(&model, &model.init_params(1), OptimConfig::sgd(0.0, 0.0), 3)
        .unwrap();
    let plane = 1600;
    let noise = random(3 * 2 * plane, 9);
    // Channel 0: 1000 + U(-0.1, 0.1); channel 1: -3 + U(-2, 2).
    let x: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            if (i / plane) % 2 == 0 {
                1000.0 + 0.1 * u
            } else {
                -3.0 + 2.0 * u
            }
        })
        .collect();
    exec.train_step(&x, &[0, 1, 0]).unwrap();
    let s = exec.state().unwrap();
    let at = |name: &str| {
        model
            .state
            .iter()
            .find(|t| t.name.ends_with(name))
            .unwrap()
            .offset
    };
    let (mean_at, var_at) = (at("running_mean"), at("running_var"));
    for ch in 0..2 {
        let vals: Vec<f64> = (0..3)
            .flat_map(|n| x[(2 * n + ch) * plane..][..plane].iter().map(|&v| v as f64))
            .collect();
        let m = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / m;
        let unbiased = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (m - 1.0);
        let (rm, rv) = (s[mean_at + ch] as f64, s[var_at + ch] as f64);
        assert!(
            (rm - 0.1 * mean).abs() < 1e-4 * mean.abs(),
            "channel {ch} mean: {rm} vs {}",
            0.1 * mean
        );
        let got = (rv - 0.9) / 0.1;
        assert!(
            (got - unbiased).abs() < 2e-3 * unbiased,
            "channel {ch} variance: {got} vs {unbiased}"
        );
    }
}

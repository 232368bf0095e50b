//! Dropout: the mask's statistics and determinism, identity in evaluation, gradients by finite
//! differences (the step-1 mask is fixed), and the GPU drawing the same masks as the CPU.

mod common;
use common::*;
use wgtrain::data::ImageShape;
use wgtrain::nn::op::{CpuForward, Op};
use wgtrain::ops::dropout::Dropout;

const IMG: ImageShape = ImageShape {
    channels: 1,
    height: 4,
    width: 5,
};

fn forward(op: &Dropout, x: &[f32], train: bool, seed: u64, step: u64) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    op.cpu_forward(CpuForward {
        inputs: &[x],
        output: &mut y,
        params: &[],
        state: &mut [],
        scratch: &mut (),
        batch: 1,
        train,
        seed,
        step,
        serial: false,
    });
    y
}

#[test]
fn dropout_masks_are_seeded_inverted_and_identity_in_eval() {
    let op = Dropout {
        p: 0.25,
        len: 20_000,
        salt: 3,
    };
    let x = vec![2.0f32; op.len];
    let y = forward(&op, &x, true, 7, 1);
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / op.len as f64;
    assert!((kept - 0.75).abs() < 0.01, "kept fraction {kept}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.75).abs() < 1e-6));
    assert_eq!(
        y,
        forward(&op, &x, true, 7, 1),
        "same seed and step, same mask"
    );
    assert_ne!(
        y,
        forward(&op, &x, true, 7, 2),
        "another step, another mask"
    );
    assert_ne!(
        y,
        forward(&op, &x, true, 8, 1),
        "another seed, another mask"
    );
    assert_eq!(
        forward(&op, &x, false, 7, 1),
        x,
        "evaluation is the identity"
    );
}

#[test]
fn dropout_gradient_matches_finite_differences() {
    gradcheck_model("flatten,fc8,relu,dropout0.3,fc3", IMG, 3, 4);
}

#[test]
fn dropout_gpu_draws_the_cpu_masks() {
    let Some(ctx) = gpu() else { return };
    assert_spec_steps_agree(&ctx, "flatten,fc300,relu,dropout0.4,fc3", IMG, 3, 7);
    // 5,100 values: the CPU's second 4,096-value task draws the same masks as the GPU's global index.
    assert_spec_steps_agree(&ctx, "flatten,fc300,relu,dropout0.4,fc3", IMG, 3, 17);
}

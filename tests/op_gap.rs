//! Global average pooling: hand-computed values, gradients by finite differences through a model, and
//! the GPU kernels against the CPU (lavapipe in CI).

mod common;
use common::*;
use wgtrain::data::ImageShape;
use wgtrain::nn::op::{CpuBackward, CpuForward, CpuInputGrad, Op};
use wgtrain::ops::gap::GlobalAvgPool;

const IMG: ImageShape = ImageShape {
    channels: 3,
    height: 5,
    width: 4,
};

#[test]
fn gap_hand_computed() {
    let op = GlobalAvgPool {
        channels: 2,
        plane: 3,
    };
    let x = [1.0, 2.0, 6.0, -3.0, 0.0, 0.0];
    let mut y = [0.0; 2];
    op.cpu_forward(CpuForward {
        inputs: &[&x],
        output: &mut y,
        params: &[],
        state: &mut [],
        scratch: &mut (),
        batch: 1,
        train: true,
        seed: 0,
        step: 1,
        serial: false,
    });
    assert_eq!(y, [3.0, -1.0]);
    let mut dx = [9.0; 6];
    let mask = [1.0, 0.0, 1.0, 1.0, 1.0, -1.0];
    op.cpu_backward(CpuBackward {
        inputs: &[&x],
        output: &y,
        dy: &[3.0, 6.0],
        dx: vec![Some(CpuInputGrad {
            dx: &mut dx,
            mask: Some(&mask),
        })],
        params: &[],
        grads: &mut [],
        state: &[],
        scratch: &mut (),
        batch: 1,
        seed: 0,
        step: 1,
    });
    assert_eq!(dx, [1.0, 0.0, 1.0, 2.0, 2.0, 0.0]);
}

#[test]
fn gap_gradient_matches_finite_differences() {
    gradcheck_model("conv3x3x4p1,relu,gap,fc3", IMG, 3, 3);
}

#[test]
fn gap_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    // Planes of 20 and 1 (a 1x1 image), batches not multiples of the workgroup.
    assert_spec_steps_agree(&ctx, "conv3x3x6p1,relu,gap,fc4", IMG, 4, 7);
    let tiny = ImageShape {
        channels: 2,
        height: 1,
        width: 1,
    };
    assert_spec_steps_agree(&ctx, "conv1x1x5,relu,gap,fc3", tiny, 3, 5);
}

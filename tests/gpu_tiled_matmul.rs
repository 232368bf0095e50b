//! The shared-memory tiled matmul (`matmul_tiled` in shaders/matmul.wgsl, what hardware GPUs run) on
//! whatever adapter there is: `WGTRAIN_MATMUL=tiled` makes the executor use it for every linear
//! layer's products, and a few training steps of an mlp and a cnn (bias, ReLU, ReLU mask and bias
//! gradient epilogues) must agree with the CPU. Its own test binary, because the variable is
//! process-wide. Skips with a message when there is no adapter; fails when `CI` is set.

mod common;

use common::gpu;

#[test]
fn tiled_matmul_training_steps_agree_with_cpu() {
    std::env::set_var("WGTRAIN_MATMUL", "tiled");
    let Some(ctx) = gpu() else { return };
    assert!(wgtrain::ops::matmul::tiled_preferred(&ctx));
    assert!(!wgtrain::ops::matmul_tex::preferred(&ctx));
    common::assert_mlp_and_cnn_steps_agree(&ctx);
}

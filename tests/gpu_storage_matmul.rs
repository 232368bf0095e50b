//! The executor's storage-buffer matmul path (what hardware GPUs run) on whatever adapter there is:
//! `WGTRAIN_MATMUL=storage` turns off the texture kernels that software adapters otherwise get, and a
//! few training steps of an mlp and a cnn must agree with the CPU. Its own test binary, because the
//! variable is process-wide. Skips with a message when there is no adapter; fails when `CI` is set.

mod common;

use common::{gpu, random};
use wgtrain::data::ImageShape;
use wgtrain::models;
use wgtrain::nn::OptimConfig;

#[test]
fn storage_matmul_training_steps_agree_with_cpu() {
    std::env::set_var("WGTRAIN_MATMUL", "storage");
    let Some(ctx) = gpu() else { return };
    assert!(!wgtrain::ops::matmul_tex::preferred(&ctx));
    let input = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    // The same cases as tests/gpu_vs_cpu.rs and tests/gpu_vs_cpu_conv.rs. (Adam's first updates are
    // +-lr whatever a gradient's size, so a gradient that is zero up to rounding can flip an update's
    // sign under another summation order; these seeds have none.)
    for (name, batch, init_seed, x_seed) in [("mlp", 37, 5, 31), ("cnn", 9, 11, 12)] {
        let model = models::build(Some(name), None, input, 10).unwrap();
        let init = model.init_params(init_seed);
        let x = random(batch * 784, x_seed);
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        common::assert_steps_agree(&ctx, &model, &init, OptimConfig::adam(1e-3), &x, &y, 3);
    }
}

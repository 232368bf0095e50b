//! The executor's storage-buffer matmul path (what hardware GPUs run) on whatever adapter there is:
//! `WGTRAIN_MATMUL=storage` turns off the texture kernels that software adapters otherwise get, and a
//! few training steps of an mlp and a cnn must agree with the CPU. Its own test binary, because the
//! variable is process-wide. Skips with a message when there is no adapter; fails when `CI` is set.

mod common;

use common::gpu;

#[test]
fn storage_matmul_training_steps_agree_with_cpu() {
    std::env::set_var("WGTRAIN_MATMUL", "storage");
    let Some(ctx) = gpu() else { return };
    assert!(!wgtrain::ops::matmul_tex::preferred(&ctx));
    common::assert_mlp_and_cnn_steps_agree(&ctx);
}

//! wgpu faults become errors naming the operation — not panics, not hangs: a validation error (a
//! dispatch with bindings that do not match its shader) and device loss (`Device::destroy`).

mod common;

use wgtrain::device::gpu::PlanBuilder;
use wgtrain::device::{AdapterFilter, Device, DeviceChoice};
use wgtrain::nn::OptimConfig;

fn fresh_gpu() -> Option<std::sync::Arc<wgtrain::device::gpu::GpuContext>> {
    // A context of its own: this test breaks it on purpose. `common::gpu` decides skip vs fail.
    common::gpu()?;
    match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
        Ok((Device::Gpu(ctx), _)) => Some(ctx),
        other => panic!(
            "a second GPU context could not be opened: {:?}",
            other.err()
        ),
    }
}

#[test]
fn a_validation_error_is_reported_with_the_operation() {
    let Some(ctx) = fresh_gpu() else { return };
    let buf = ctx
        .storage_buffer("test", 16, wgpu::BufferUsages::empty())
        .unwrap();
    let mut pb = PlanBuilder::new(&ctx);
    // The matmul kernel declares four storage bindings; give it two.
    pb.push(
        &wgtrain::ops::matmul::MATMUL,
        &wgtrain::ops::matmul::MatmulParams::default(),
        &[&buf, &buf],
        [1, 1, 1],
    );
    let err = pb
        .finish()
        .err()
        .expect("a plan with missing bindings must not build")
        .to_string();
    assert!(
        err.starts_with("GPU error during building the GPU execution plan"),
        "{err}"
    );
}

#[test]
fn device_loss_is_reported_not_hung_on() {
    let Some(ctx) = fresh_gpu() else { return };
    let model = wgtrain::models::build(
        Some("mlp"),
        None,
        wgtrain::data::ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        },
        10,
    )
    .unwrap();
    let gpu = Device::Gpu(ctx.clone());
    let mut exec = gpu
        .executor(&model, &model.init_params(0), OptimConfig::adam(1e-3), 8)
        .unwrap();
    let x = vec![0.5f32; 8 * 784];
    let y = vec![1u32; 8];
    exec.train_step(&x, &y).unwrap();
    ctx.device.destroy();
    // The next operations fail with a message instead of panicking or hanging.
    let mut failed = false;
    for _ in 0..3 {
        match exec
            .train_step(&x, &y)
            .and_then(|_| exec.take_train_stats())
        {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("GPU error during"), "{msg}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "training went on after the device was destroyed");
}

//! Resident memory stays flat over a 10-epoch run on each device: the executors allocate everything up
//! front and a step allocates nothing that outlives it. (Its own test binary, so no other test shares
//! the process while RSS is read.)

mod common;

use wgtrain::data::{self, DataChoice};
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::train::{train, TrainConfig};
use wgtrain::Device;

fn rss_kib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn resident_memory_is_flat_and_gpu_buffers_are_released() {
    resident_memory_is_flat_over_ten_epochs_on_each_device();
    gpu_buffers_are_released_when_an_executor_is_dropped();
}

fn resident_memory_is_flat_over_ten_epochs_on_each_device() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc on this system");
        return;
    }
    let mut data = data::load(
        &DataChoice::Embedded,
        &data::LoadOptions {
            train_size: Some(1000),
            ..Default::default()
        },
    )
    .unwrap();
    data.test.truncate(200);
    let mut devices = vec![Device::Cpu];
    if let Some(ctx) = common::gpu() {
        devices.push(Device::Gpu(ctx));
    }
    for device in devices {
        for name in ["mlp", "cnn"] {
            let model =
                models::build(Some(name), None, data.train.shape, data.num_classes).unwrap();
            let cfg = TrainConfig {
                epochs: 10,
                batch_size: 64,
                seed: 0,
                eval_batch_size: 500,
                progress: false,
                start_epoch: 0,
                lr_schedule: None,
                early_stop: None,
                best_val: None,
                augment: None,
                recalibrate_bn: None,
                test_every_epoch: true,
            };
            let mut exec = device
                .executor(
                    &model,
                    &model.init_params(0),
                    OptimConfig::adam(1e-3),
                    cfg.max_batch(),
                )
                .unwrap();
            let mut rss = Vec::new();
            // The cnn on lavapipe is slow: 250 training images per epoch there.
            let mut train_set = data.train.clone();
            if name == "cnn" && device.kind() == "gpu" {
                train_set.truncate(250);
            }
            train(
                &mut *exec,
                &train_set,
                &data.test,
                &data.normalization,
                &cfg,
                |_, _| {
                    rss.push(rss_kib());
                    Ok(())
                },
            )
            .unwrap();
            let growth = (rss[9] - rss[1]) / rss[1];
            eprintln!(
                "{} {name}: RSS epoch 2 {:.1} MiB, epoch 10 {:.1} MiB ({:+.2} %)",
                device.kind(),
                rss[1] / 1024.0,
                rss[9] / 1024.0,
                100.0 * growth
            );
            assert!(
                growth < 0.05,
                "{} {name}: RSS grew {:.1} % from epoch 2 to 10: {rss:?}",
                device.kind(),
                100.0 * growth
            );
        }
    }
}

/// Called from the test above, not a test of its own: tests in one binary run in parallel and would
/// see each other's memory.
fn gpu_buffers_are_released_when_an_executor_is_dropped() {
    let Some(ctx) = common::gpu() else { return };
    let input = wgtrain::data::ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    // ~125 MB of device buffers per executor (parameters, gradients and two moments of 7.9 M floats; on
    // lavapipe device memory is host memory): if they were not released, 12 rounds would add over 1 GB.
    let model = models::build(None, Some("flatten,fc10000,relu,fc10"), input, 10).unwrap();
    let params = model.init_params(0);
    let device = Device::Gpu(ctx);
    let mut rss = Vec::new();
    for _ in 0..12 {
        let mut exec = device
            .executor(&model, &params, OptimConfig::adam(1e-3), 16)
            .unwrap();
        exec.train_step(&vec![0.1; 16 * 784], &[3; 16]).unwrap();
        exec.wait().unwrap();
        drop(exec);
        rss.push(rss_kib());
    }
    let growth = (rss[11] - rss[2]) / 1024.0;
    eprintln!(
        "RSS after rounds 3 and 12: {:.0} / {:.0} MiB",
        rss[2] / 1024.0,
        rss[11] / 1024.0
    );
    assert!(
        growth < 100.0,
        "RSS grew {growth:.0} MiB over 9 create/drop rounds: {rss:?}"
    );
}

//! An evaluation batch is an internal choice: where a model's per-example buffers would pass the
//! adapter's storage-buffer limit at that batch (large images on lavapipe, 128 MiB), the executor is
//! built for the largest batch that fits and evaluation runs in batches of that size, with the same
//! loss and accuracy as the CPU. A training batch that does not fit stays an error. Skips without an
//! adapter; fails instead when `CI` is set.

mod common;

use wgtrain::data::{Batcher, Dataset, ImageShape, Normalization};
use wgtrain::device::Device;
use wgtrain::nn::OptimConfig;

#[test]
fn evaluation_batches_shrink_to_the_adapter_limit() {
    let cpu = Device::Cpu;
    let shape = ImageShape {
        channels: 1,
        height: 128,
        width: 128,
    };
    // 16 x 128 x 128 floats per example after the first layer: 1 MiB.
    let model =
        wgtrain::models::build(None, Some("conv3x3x16p1,relu,gap,fc10"), shape, 10).unwrap();
    assert_eq!(
        cpu.batch_that_fits(&model, 64, 500),
        500,
        "the CPU has no such limit"
    );
    assert_eq!(cpu.batch_that_fits(&model, 600, 500), 600);
    let Some(ctx) = common::gpu() else { return };
    let gpu = Device::Gpu(ctx.clone());
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let per_example = 4 * 16 * 128 * 128;
    let fits = gpu.batch_that_fits(&model, 4, 100_000);
    assert!((4..100_000).contains(&fits), "{fits}");
    assert!(
        fits as u64 * per_example <= limit,
        "{fits} x {per_example} > {limit}"
    );
    assert!(
        (fits as u64 + 1) * per_example > limit,
        "{fits} is not the largest"
    );
    // A training batch above the limit is kept, so that building the executor reports it.
    assert_eq!(gpu.batch_that_fits(&model, fits + 1, 4), fits + 1);
    let err = gpu
        .executor(
            &model,
            &model.init_params(0),
            OptimConfig::adam(1e-3),
            fits + 1,
        )
        .err()
        .expect("a batch over the limit");
    assert!(err.to_string().contains("allows at most"), "{err}");

    // A few more images than one batch that fits, evaluated with a requested batch of all of them.
    let n = fits + 3;
    let images: Vec<u8> = (0..n * shape.len()).map(|i| (i * 7 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let ds = Dataset {
        shape,
        images,
        labels,
    };
    let norm = Normalization {
        mean: vec![0.5],
        std: vec![0.25],
    };
    let batcher = Batcher::new(&norm, shape);
    let params = model.init_params(3);
    let mut stats = Vec::new();
    for device in [&cpu, &gpu] {
        let max_batch = device.batch_that_fits(&model, 1, n);
        let mut exec = device
            .executor(&model, &params, OptimConfig::adam(1e-3), max_batch)
            .unwrap();
        assert_eq!(exec.max_batch(), max_batch);
        stats.push(wgtrain::train::evaluate(&mut *exec, &ds, &batcher, n).unwrap());
    }
    assert_eq!(stats[0].count, n as u64);
    assert_eq!(stats[1].count, n as u64);
    assert_eq!(stats[0].correct, stats[1].correct);
    let (a, b) = (stats[0].loss_sum, stats[1].loss_sum);
    assert!(
        (a - b).abs() <= 1e-4 * a.abs().max(1.0),
        "loss {a} on the CPU, {b} on the GPU"
    );
}

//! Criterion benchmarks: the kernels behind a training step (the same set `wgtrain bench` times) and
//! full training steps of the mlp and the cnn, on the CPU and (when wgpu finds one) the GPU adapter.
//! `cargo bench`; numbers for people are in docs/BENCHMARKS.md (`wgtrain bench` prints the same
//! quantities with % of peak and warm-up).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use wgtrain::bench::kernel_cases;
use wgtrain::data::ImageShape;
use wgtrain::device::{AdapterFilter, Device, DeviceChoice};
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::rng::Rng;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

/// The CPU and, when wgpu finds one, the GPU adapter.
fn devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu];
    match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
        Ok((d, _)) => devices.push(d),
        Err(e) => eprintln!("no GPU benchmarks: {e}"),
    }
    devices
}

/// Every kernel `wgtrain bench` times (wgtrain::bench::kernel_cases), on each device. GPU iterations
/// are recorded into one compute pass and submitted once, as `wgtrain bench` does, so the time is the
/// kernels' and not per-submit overhead.
fn kernels(c: &mut Criterion) {
    for device in &devices() {
        eprintln!("kernels on {}: {}", device.kind(), device.adapter_name());
        let mut g = c.benchmark_group(format!("{} kernels (elements = FLOPs)", device.kind()));
        g.sample_size(10);
        for mut case in kernel_cases(device).unwrap() {
            g.throughput(Throughput::Elements(case.flops as u64));
            g.bench_function(format!("{} {}", case.kernel, case.shape), |bench| {
                bench.iter_custom(|iters| {
                    let t = Instant::now();
                    case.run(iters as usize).unwrap();
                    t.elapsed()
                })
            });
        }
        g.finish();
    }
}

fn training_steps(c: &mut Criterion) {
    let devices = devices();
    let input = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let batch = 64;
    let x = random(batch * input.len(), 5);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut g = c.benchmark_group("training step, batch 64 (elements = images)");
    g.throughput(Throughput::Elements(batch as u64));
    g.sample_size(10);
    for device in &devices {
        for name in ["mlp", "cnn"] {
            let model = models::build(Some(name), None, input, 10).unwrap();
            let mut exec = device
                .executor(
                    &model,
                    &model.init_params(0),
                    OptimConfig::adam(1e-3),
                    batch,
                )
                .unwrap();
            exec.train_step(&x, &y).unwrap(); // warm-up: pipelines, plan
            exec.wait().unwrap();
            let label = format!("{name} on {}", device.adapter_name());
            g.bench_function(label, |bench| {
                bench.iter(|| {
                    exec.train_step(black_box(&x), &y).unwrap();
                    exec.wait().unwrap();
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, kernels, training_steps);
criterion_main!(benches);

//! Criterion benchmarks: the CPU kernels behind a training step and full training steps of the mlp and
//! the cnn on the CPU and (when wgpu finds one) the GPU adapter. `cargo bench`; numbers for people are
//! in docs/BENCHMARKS.md (`wgtrain bench` prints the same quantities with % of peak and warm-up).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wgtrain::data::ImageShape;
use wgtrain::device::{AdapterFilter, Device, DeviceChoice};
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::ops::conv2d::{conv2d_forward, ConvShape, ConvWork};
use wgtrain::ops::matmul::{matmul, Strided};
use wgtrain::rng::Rng;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu kernels");
    let n = 512;
    let (a, b) = (random(n * n, 1), random(n * n, 2));
    let mut out = vec![0f32; n * n];
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    g.bench_function("matmul 512^3 (elements = FLOPs)", |bench| {
        bench.iter(|| {
            matmul(
                n,
                n,
                n,
                &a,
                Strided::rows(0, n),
                &b,
                Strided::rows(0, n),
                &mut out,
                0,
                n,
                false,
            )
        })
    });
    let s = ConvShape::same_3x3(16, 14, 32);
    let batch = 64;
    let (x, params) = (
        random(batch * s.in_len(), 3),
        random(s.out_c * s.k() + s.out_c, 4),
    );
    let (mut y, mut work) = (
        vec![0.0; batch * s.out_len()],
        ConvWork::for_current_pool(&s),
    );
    g.throughput(Throughput::Elements((2 * batch * s.macs()) as u64));
    g.bench_function(
        "conv2d forward 16->32 3x3 14x14 batch 64 (elements = FLOPs)",
        |bench| {
            bench.iter(|| {
                conv2d_forward(
                    &x,
                    &params,
                    0,
                    s.out_c * s.k(),
                    &mut y,
                    &mut work,
                    batch,
                    &s,
                    true,
                )
            })
        },
    );
    g.finish();
}

fn training_steps(c: &mut Criterion) {
    let mut devices = vec![Device::Cpu];
    match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
        Ok((d, _)) => devices.push(d),
        Err(e) => eprintln!("no GPU benchmarks: {e}"),
    }
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

//! Burn 0.22.1 on wgpu (lavapipe here): train images/s of an mlp and a cnn matching wgtrain's presets,
//! Adam, batches 64 and 256 of random in-memory data (so it times compute, as `wgtrain bench` does), and
//! the time from process start to the first finished step. Prints one line per (model, batch).

use burn::backend::wgpu::WgpuDevice;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::time::Instant;

#[derive(Module, Debug)]
struct Mlp {
    l1: Linear,
    l2: Linear,
    l3: Linear,
    act: Relu,
}

#[derive(Module, Debug)]
struct Cnn {
    c1: Conv2d,
    c2: Conv2d,
    pool: MaxPool2d,
    f1: Linear,
    f2: Linear,
    act: Relu,
}

trait Net {
    fn forward(&self, x: Tensor<4>) -> Tensor<2>;
}

impl Net for Mlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = x.flatten(1, 3);
        let x = self.act.forward(self.l1.forward(x));
        let x = self.act.forward(self.l2.forward(x));
        self.l3.forward(x)
    }
}

impl Net for Cnn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.act.forward(self.c1.forward(x)));
        let x = self.pool.forward(self.act.forward(self.c2.forward(x)));
        let x = self.act.forward(self.f1.forward(x.flatten(1, 3)));
        self.f2.forward(x)
    }
}

fn mlp(d: &Device) -> Mlp {
    Mlp {
        l1: LinearConfig::new(784, 256).init(d),
        l2: LinearConfig::new(256, 128).init(d),
        l3: LinearConfig::new(128, 10).init(d),
        act: Relu::new(),
    }
}

fn cnn(d: &Device) -> Cnn {
    let same = || PaddingConfig2d::Explicit(1, 1, 1, 1);
    Cnn {
        c1: Conv2dConfig::new([1, 16], [3, 3])
            .with_padding(same())
            .init(d),
        c2: Conv2dConfig::new([16, 32], [3, 3])
            .with_padding(same())
            .init(d),
        pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        f1: LinearConfig::new(32 * 7 * 7, 128).init(d),
        f2: LinearConfig::new(128, 10).init(d),
        act: Relu::new(),
    }
}

/// Trains `model` on one fixed random batch: (seconds to the first finished step, steady images/s).
fn time_training<M: Module + Net>(
    mut model: M,
    batch: usize,
    seconds: f64,
    d: &Device,
) -> (f64, f64) {
    let x = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Normal(0.0, 1.0), d);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), d);
    let loss_fn = CrossEntropyLossConfig::new().init(d);
    let mut optim = AdamConfig::new().init();
    let start = Instant::now();
    let mut step = |model: M| -> (M, f32) {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (optim.step(1e-3, model, grads), value)
    };
    // The first step, then warm-up (autotuning happens in the first steps of each shape).
    let (m, _) = step(model);
    model = m;
    let first = start.elapsed().as_secs_f64();
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds {
        let (m, _) = step(model);
        model = m;
    }
    let t = Instant::now();
    let mut steps = 0;
    while t.elapsed().as_secs_f64() < seconds {
        let (m, _) = step(model);
        model = m;
        steps += 1;
    }
    // Each step read its loss back, so every step has finished.
    let per_s = (steps * batch) as f64 / t.elapsed().as_secs_f64();
    (first, per_s)
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("--seconds takes a number"));
    let process = Instant::now();
    let d = Device::new(WgpuDevice::default()).autodiff();
    println!("burn 0.22.1 wgpu, {seconds} s per measurement after {seconds} s of warm-up");
    println!("model  batch  train img/s  first step s  since process start s");
    for batch in [64, 256] {
        let (first, ips) = time_training(mlp(&d), batch, seconds, &d);
        println!(
            "mlp    {batch:>5}  {ips:>11.0}  {first:>12.2}  {:>8.2}",
            process.elapsed().as_secs_f64()
        );
        let (first, ips) = time_training(cnn(&d), batch, seconds, &d);
        println!(
            "cnn    {batch:>5}  {ips:>11.0}  {first:>12.2}  {:>8.2}",
            process.elapsed().as_secs_f64()
        );
    }
}

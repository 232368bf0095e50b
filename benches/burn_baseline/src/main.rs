//! Burn 0.22.1 on wgpu (lavapipe here): train images/s of nets matching wgtrain's presets (mlp, cnn,
//! lenet5, resnet, mlp-bn), Adam, batches 64 and 256 of random in-memory data (so it times compute, as `wgtrain bench`
//! does), and the time from process start to the first finished step. Prints one line per (model,
//! batch). `--models mlp,cnn,lenet5,resnet,mlp-bn` picks models (default mlp,cnn), `--batches 64,256` batch sizes.

use burn::backend::wgpu::WgpuDevice;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
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

/// wgtrain's `lenet5`: conv5x5x6p2, relu, maxpool2, conv5x5x16, relu, maxpool2, fc120, fc84, fc10.
#[derive(Module, Debug)]
struct Lenet5 {
    c1: Conv2d,
    c2: Conv2d,
    pool: MaxPool2d,
    f1: Linear,
    f2: Linear,
    f3: Linear,
    act: Relu,
}

/// wgtrain's `mlp-bn`: fc256, bn, relu, dropout0.2, fc128, bn, relu, dropout0.2, fc10.
#[derive(Module, Debug)]
struct MlpBn {
    l1: Linear,
    b1: BatchNorm,
    l2: Linear,
    b2: BatchNorm,
    l3: Linear,
    drop: Dropout,
    act: Relu,
}

/// A conv without bias followed by BatchNorm (PyTorch defaults: eps 1e-5, momentum 0.1).
#[derive(Module, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

/// wgtrain's `res(conv3x3xCp1[s2]nb,bn,relu,conv3x3xCp1nb,bn),relu`: a basic block whose shortcut is
/// the identity or, when the shape changes, conv1x1 stride 2 without bias + BatchNorm.
#[derive(Module, Debug)]
struct Block {
    a: ConvBn,
    b: ConvBn,
    shortcut: Option<ConvBn>,
    act: Relu,
}

/// wgtrain's `resnet` preset: stem conv3x3x16 + BN + ReLU, blocks of 16, 32 (stride 2), 64 (stride
/// 2) channels, global average pooling, fc10 (77,754 parameters).
#[derive(Module, Debug)]
struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    gap: AdaptiveAvgPool2d,
    fc: Linear,
    act: Relu,
}

impl ConvBn {
    fn new(d: &Device, inp: usize, out: usize, k: usize, stride: usize) -> Self {
        let p = k / 2;
        ConvBn {
            conv: Conv2dConfig::new([inp, out], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init(d),
            bn: BatchNormConfig::new(out).init(d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

impl Block {
    fn new(d: &Device, inp: usize, out: usize) -> Self {
        let stride = if inp == out { 1 } else { 2 };
        Block {
            a: ConvBn::new(d, inp, out, 3, stride),
            b: ConvBn::new(d, out, out, 3, 1),
            shortcut: (inp != out).then(|| ConvBn::new(d, inp, out, 1, stride)),
            act: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.b.forward(self.act.forward(self.a.forward(x.clone())));
        let s = match &self.shortcut {
            Some(p) => p.forward(x),
            None => x,
        };
        self.act.forward(y + s)
    }
}

fn resnet(d: &Device) -> ResNet {
    ResNet {
        stem: ConvBn::new(d, 1, 16, 3, 1),
        blocks: vec![
            Block::new(d, 16, 16),
            Block::new(d, 16, 32),
            Block::new(d, 32, 64),
        ],
        gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        fc: LinearConfig::new(64, 10).init(d),
        act: Relu::new(),
    }
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

impl Net for ResNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.act.forward(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        self.fc.forward(self.gap.forward(x).flatten(1, 3))
    }
}

impl Net for Lenet5 {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.act.forward(self.c1.forward(x)));
        let x = self.pool.forward(self.act.forward(self.c2.forward(x)));
        let x = self.act.forward(self.f1.forward(x.flatten(1, 3)));
        let x = self.act.forward(self.f2.forward(x));
        self.f3.forward(x)
    }
}

impl Net for MlpBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = x.flatten(1, 3);
        let x = self
            .drop
            .forward(self.act.forward(self.b1.forward(self.l1.forward(x))));
        let x = self
            .drop
            .forward(self.act.forward(self.b2.forward(self.l2.forward(x))));
        self.l3.forward(x)
    }
}

fn lenet5(d: &Device) -> Lenet5 {
    Lenet5 {
        c1: Conv2dConfig::new([1, 6], [5, 5])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
            .init(d),
        c2: Conv2dConfig::new([6, 16], [5, 5]).init(d),
        pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        f1: LinearConfig::new(16 * 5 * 5, 120).init(d),
        f2: LinearConfig::new(120, 84).init(d),
        f3: LinearConfig::new(84, 10).init(d),
        act: Relu::new(),
    }
}

fn mlp_bn(d: &Device) -> MlpBn {
    MlpBn {
        l1: LinearConfig::new(784, 256).init(d),
        b1: BatchNormConfig::new(256).init(d),
        l2: LinearConfig::new(256, 128).init(d),
        b2: BatchNormConfig::new(128).init(d),
        l3: LinearConfig::new(128, 10).init(d),
        drop: DropoutConfig::new(0.2).init(),
        act: Relu::new(),
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
    // Warm-up and timing both last at least `seconds` and 3 steps: Burn compiles and autotunes
    // kernels during its first steps of a shape, and on a software adapter one step can take longer
    // than the whole window.
    let warm = Instant::now();
    let mut warm_steps = 0;
    while warm_steps < 3 || warm.elapsed().as_secs_f64() < seconds {
        let (m, _) = step(model);
        model = m;
        warm_steps += 1;
    }
    let t = Instant::now();
    let mut steps = 0;
    while steps < 3 || t.elapsed().as_secs_f64() < seconds {
        let (m, _) = step(model);
        model = m;
        steps += 1;
    }
    // Each step read its loss back, so every step has finished.
    let per_s = (steps * batch) as f64 / t.elapsed().as_secs_f64();
    (first, per_s)
}

/// The comma-separated value of `--name`, or `default`.
fn list_arg(name: &str, default: &str) -> Vec<String> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .map(str::to_string)
        .collect()
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("--seconds takes a number"));
    let models = list_arg("--models", "mlp,cnn");
    let batches: Vec<usize> = list_arg("--batches", "64,256")
        .iter()
        .map(|b| b.parse().expect("--batches takes numbers"))
        .collect();
    let process = Instant::now();
    let d = Device::new(WgpuDevice::default()).autodiff();
    println!("burn 0.22.1 wgpu, {seconds} s per measurement after {seconds} s of warm-up");
    println!("model   batch  train img/s  first step s  since process start s");
    for &batch in &batches {
        for m in &models {
            let (first, ips) = match m.as_str() {
                "mlp" => time_training(mlp(&d), batch, seconds, &d),
                "cnn" => time_training(cnn(&d), batch, seconds, &d),
                "lenet5" => time_training(lenet5(&d), batch, seconds, &d),
                "resnet" => time_training(resnet(&d), batch, seconds, &d),
                "mlp-bn" => time_training(mlp_bn(&d), batch, seconds, &d),
                other => {
                    panic!("--models: unknown model {other} (mlp, cnn, lenet5, resnet, mlp-bn)")
                }
            };
            println!(
                "{m:<7} {batch:>5}  {ips:>11.0}  {first:>12.2}  {:>8.2}",
                process.elapsed().as_secs_f64()
            );
        }
    }
}

//! The evaluation pass (`Graph::fold_for_eval`, used by `eval`, `predict` and the inference
//! benchmarks): BatchNorm folded into the convolution or linear layer before it, dropout removed.
//! The folded graph must give the unfolded graph's evaluation logits, on the CPU and the GPU, and
//! must leave alone every BatchNorm it cannot fold.

mod common;
use common::*;
use wgtrain::data::ImageShape;
use wgtrain::device::Device;
use wgtrain::models;
use wgtrain::nn::{Model, OptimConfig, Weights};

const IMG: ImageShape = ImageShape {
    channels: 1,
    height: 12,
    width: 12,
};

/// A model trained for a few steps on random data, so that every BatchNorm has moved its weight,
/// bias and running statistics away from the identity.
fn trained(device: &Device, spec: &str) -> (Model, Weights) {
    let model = models::build(None, Some(spec), IMG, 4).unwrap();
    let batch = 8;
    let optim = OptimConfig::sgd(0.05, 0.9);
    let mut exec = device
        .executor(&model, &model.init_params(3), optim, batch)
        .unwrap();
    for step in 0..6 {
        let x: Vec<f32> = random(batch * IMG.len(), 10 + step)
            .iter()
            .map(|v| 2.0 * v + 0.5)
            .collect();
        let y: Vec<u32> = (0..batch as u32).map(|i| (i + step as u32) % 4).collect();
        exec.train_step(&x, &y).unwrap();
    }
    let weights = Weights {
        params: exec.params().unwrap(),
        state: exec.state().unwrap(),
    };
    (model, weights)
}

fn kinds(model: &Model) -> Vec<&'static str> {
    model.graph.nodes.iter().map(|n| n.op.kind()).collect()
}

fn count(kinds: &[&str], kind: &str) -> usize {
    kinds.iter().filter(|k| **k == kind).count()
}

/// Folded and unfolded evaluation logits of `spec` on `device`; returns the folded model's op kinds.
fn check(device: &Device, spec: &str) -> Vec<&'static str> {
    let (model, weights) = trained(device, spec);
    let batch = 5;
    let x = random(batch * IMG.len(), 99);
    let plain = device
        .executor_from(&model, &weights, OptimConfig::adam(1e-3), batch)
        .unwrap()
        .logits(&x)
        .unwrap();
    let folded = device
        .inference_executor(&model, &weights, batch)
        .unwrap()
        .logits(&x)
        .unwrap();
    assert!(plain.iter().all(|v| v.is_finite()), "{spec}: {plain:?}");
    assert_close(
        &folded,
        &plain,
        1e-4,
        1e-4,
        &format!("{spec} folded vs plain"),
    );
    let (m, _) = model.for_inference(&weights).unwrap();
    kinds(&m)
}

const CASES: &[(&str, usize, usize)] = &[
    // spec, BatchNorms left after folding, dropouts left
    // Conv without bias (the BatchNorm's bias slot becomes the conv's), residual body and
    // projection shortcut, GAP head.
    (
        "conv3x3x4p1nb,bn,relu,res(conv3x3x8p1s2nb,bn,relu,conv3x3x8p1nb,bn),relu,gap,fc4",
        0,
        0,
    ),
    // Linear + BatchNorm1d + dropout (mlp-bn's pattern), conv with its own bias.
    (
        "conv3x3x3p1,bn,relu,maxpool2,flatten,fc16,bn,relu,dropout0.3,fc4",
        0,
        0,
    ),
    // Not foldable: BatchNorm reading a ReLU output, reading the input, and reading a tensor that
    // the identity shortcut reads too (the body's second BatchNorm still folds).
    ("bn,conv3x3x3p1,relu,bn,flatten,fc4", 2, 0),
    (
        "conv3x3x4p1nb,res(bn,relu,conv3x3x4p1nb,bn),relu,flatten,fc4",
        1,
        0,
    ),
];

#[test]
fn folded_evaluation_gives_the_same_logits_on_the_cpu() {
    for &(spec, bn_left, dropout_left) in CASES {
        let k = check(&Device::Cpu, spec);
        assert_eq!(count(&k, "batchnorm"), bn_left, "{spec}: {k:?}");
        assert_eq!(count(&k, "dropout"), dropout_left, "{spec}: {k:?}");
    }
}

#[test]
fn folded_evaluation_gives_the_same_logits_on_the_gpu() {
    let Some(ctx) = gpu() else { return };
    for &(spec, _, _) in CASES {
        check(&Device::Gpu(ctx.clone()), spec);
    }
}

#[test]
fn presets_fold_every_batchnorm_and_dropout() {
    let shape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    for (name, bn, convs) in [("resnet", 9, 9), ("mlp-bn", 2, 0)] {
        let model = models::build(Some(name), None, shape, 10).unwrap();
        let before = kinds(&model);
        assert_eq!(count(&before, "batchnorm"), bn, "{name}: {before:?}");
        let weights = Weights {
            params: model.init_params(1),
            state: model.init_state(),
        };
        let (m, w) = model.for_inference(&weights).unwrap();
        let after = kinds(&m);
        assert_eq!(count(&after, "batchnorm"), 0, "{name}: {after:?}");
        assert_eq!(count(&after, "dropout"), 0, "{name}: {after:?}");
        assert_eq!(count(&after, "conv2d"), convs, "{name}: {after:?}");
        // Same layouts: a checkpoint's vectors still fit.
        assert_eq!(
            (w.params.len(), w.state.len()),
            (model.param_len, model.state_len)
        );
        // The trained graph is untouched.
        assert_eq!(kinds(&model), before);
    }
}

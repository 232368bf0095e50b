//! Residual blocks: gradients through the add, the identity and projection shortcuts and a tensor
//! read by two nodes (summed gradient slots), by finite differences; and the GPU against the CPU.

mod common;
use common::*;
use wgtrain::data::ImageShape;
use wgtrain::models;

const IMG: ImageShape = ImageShape {
    channels: 2,
    height: 6,
    width: 5,
};

const SPEC: &str = "conv3x3x4p1nb,bn,relu,res(conv3x3x4p1nb,bn,relu,conv3x3x4p1nb,bn),relu,\
                    res(conv3x3x6p1s2nb,bn),relu,flatten,fc3";

#[test]
fn residual_blocks_lower_to_named_tensors() {
    let m = models::build(None, Some(SPEC), IMG, 3).unwrap();
    let names: Vec<&str> = m.params.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"3.body.0.weight"), "{names:?}");
    assert!(names.contains(&"5.shortcut.0.weight"), "{names:?}");
    assert!(names.contains(&"5.shortcut.1.bias"), "{names:?}");
    // The ReLUs after the adds are fused; the block inputs are read twice.
    assert!(m.graph.nodes.iter().all(|n| n.op.kind() != "relu"));
    assert!(m.graph.extra_slots.iter().any(|s| !s.is_empty()));
    assert_eq!(m.spec().replace(' ', ""), SPEC.replace(' ', ""));
    let e = models::build(None, Some("res(conv3x3x4),flatten,fc3"), IMG, 3).unwrap_err();
    assert!(e.to_string().contains("layer 1 (res(conv3x3x4))"), "{e}");
    let e = models::build(None, Some("res(conv3x3x4p1,,relu)"), IMG, 3).unwrap_err();
    assert!(e.to_string().contains("empty layer"), "{e}");
}

#[test]
fn residual_gradient_matches_finite_differences() {
    gradcheck_model(SPEC, IMG, 3, 3);
}

#[test]
fn residual_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    assert_spec_steps_agree(&ctx, SPEC, IMG, 3, 5);
}

/// A full `resnet` preset training step (28x28, batch 4) on the GPU against the CPU.
#[test]
fn resnet_preset_steps_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let input = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let spec = models::preset_spec("resnet", 10).unwrap();
    assert_spec_steps_agree(&ctx, &spec, input, 10, 4);
}

/// Freezing for transfer with a graph model: with the optimiser's frozen prefix at the head, the
/// body's parameters (BatchNorm's weight and bias included) stay bit-identical while the head trains,
/// and the running statistics — state, not parameters — still follow the batches (as in PyTorch,
/// where `requires_grad = False` leaves `running_mean` updating in training mode). The GPU takes the
/// same frozen steps as the CPU.
#[test]
fn a_frozen_body_keeps_its_parameters_while_statistics_and_head_train() {
    let model = models::build(None, Some(SPEC), IMG, 3).unwrap();
    let init = model.init_params(7);
    let batch = 6;
    let x = random(batch * IMG.len(), 8);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % 3).collect();
    let mut optim = wgtrain::nn::OptimConfig::sgd(0.05, 0.9);
    optim.frozen_prefix = model.head_offset();
    assert!(optim.frozen_prefix > 0);
    let mut exec = wgtrain::Device::Cpu
        .executor(&model, &init, optim, batch)
        .unwrap();
    let state0 = exec.state().unwrap();
    for _ in 0..3 {
        exec.train_step(&x, &y).unwrap();
    }
    let (params, state) = (exec.params().unwrap(), exec.state().unwrap());
    let head = optim.frozen_prefix;
    assert_eq!(params[..head], init[..head], "the frozen body moved");
    assert_ne!(params[head..], init[head..], "the head did not train");
    let mean = model
        .state
        .iter()
        .find(|t| t.name == "0.running_mean" || t.name == "1.running_mean")
        .expect("a BatchNorm running mean");
    let r = mean.offset..mean.offset + mean.len();
    assert_ne!(state[r.clone()], state0[r], "running statistics frozen too");
    if let Some(ctx) = gpu() {
        assert_steps_agree(&ctx, &model, &init, optim, &x, &y, 3);
    }
}

/// A frozen prefix skips the backward work that cannot reach a trainable parameter: with the cut at
/// every parameter tensor, one step updates the trainable parameters exactly as an unfrozen step
/// does (bit for bit, CPU and GPU), and with only the head trainable no node before it runs
/// backward. (The unfrozen step itself is checked by finite differences above.)
#[test]
fn a_frozen_prefix_skips_only_backward_work_that_cannot_matter() {
    let model = models::build(None, Some(SPEC), IMG, 3).unwrap();
    let init = model.init_params(11);
    let batch = 5;
    let x = random(batch * IMG.len(), 12);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % 3).collect();
    let work = model.graph.backward_work(model.head_offset());
    assert_eq!(work.node.iter().filter(|&&b| b).count(), 1, "{work:?}");
    assert!(*work.node.last().unwrap(), "the head runs backward");
    // Unfrozen, every node runs: each one is downstream of the first convolution.
    assert!(model.graph.backward_work(0).node.iter().all(|&b| b));
    let mut devices = vec![wgtrain::Device::Cpu];
    devices.extend(gpu().map(wgtrain::Device::Gpu));
    for device in &devices {
        let step = |frozen: usize| {
            let mut optim = wgtrain::nn::OptimConfig::sgd(0.05, 0.0);
            optim.frozen_prefix = frozen;
            let mut exec = device.executor(&model, &init, optim, batch).unwrap();
            exec.train_step(&x, &y).unwrap();
            (exec.params().unwrap(), exec.state().unwrap())
        };
        let (all, all_state) = step(0);
        for t in &model.params {
            let (cut, cut_state) = step(t.offset);
            assert_eq!(cut[..t.offset], init[..t.offset], "frozen at {}", t.name);
            assert_eq!(
                cut[t.offset..],
                all[t.offset..],
                "trainable after {}",
                t.name
            );
            assert_eq!(cut_state, all_state, "statistics, frozen at {}", t.name);
        }
    }
}

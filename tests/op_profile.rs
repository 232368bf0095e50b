//! The CPU executor's per-op timing (`wgtrain bench --profile`, `nn::profile`): every node that runs
//! gets a row with its shapes, the rows add up to no more than the steps' wall time, profiling does
//! not change what a step computes, and the GPU executor says it cannot.

mod common;

use wgtrain::data::ImageShape;
use wgtrain::device::Device;
use wgtrain::models;
use wgtrain::nn::{OptimConfig, Weights};

const SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 28,
    width: 28,
};

#[test]
fn profile_has_a_row_per_node_and_fits_in_the_steps() {
    let model = models::build(Some("resnet"), None, SHAPE, 10).unwrap();
    let batch = 4;
    let x = common::random(batch * model.input_len(), 5);
    let y: Vec<u32> = (0..batch as u32).collect();
    let params = model.init_params(1);
    let run = |profiled: bool| {
        let mut exec = Device::Cpu
            .executor(&model, &params, OptimConfig::adam(1e-3), batch)
            .unwrap();
        assert!(exec.set_profiling(profiled) || !profiled);
        for _ in 0..3 {
            exec.train_step(&x, &y).unwrap();
        }
        (exec.params().unwrap(), exec.take_profile())
    };
    let (plain, none) = run(false);
    assert!(none.is_none(), "a profile without profiling");
    let (profiled, p) = run(true);
    assert_eq!(plain, profiled, "profiling changed the training step");
    let p = p.unwrap();
    assert_eq!(p.steps, 3);
    let nodes: Vec<usize> = p.ops.iter().filter_map(|o| o.node).collect();
    assert_eq!(
        nodes,
        (0..model.graph.nodes.len()).collect::<Vec<_>>(),
        "every node of the resnet trains (no frozen prefix), in order"
    );
    for o in &p.ops {
        assert!(o.forward_us >= 0.0 && o.backward_us >= 0.0, "{o:?}");
        if o.node.is_some() {
            assert!(o.forward_us > 0.0 && o.backward_us > 0.0, "{o:?}");
            assert!(o.shape.contains(" -> "), "{o:?}");
        }
    }
    let kinds: Vec<&str> = p.ops.iter().map(|o| o.kind.as_str()).collect();
    for k in ["conv2d", "batchnorm+relu", "add+relu", "loss", "optimizer"] {
        assert!(kinds.contains(&k), "no {k} row in {kinds:?}");
    }
    assert!(
        p.ops_us() <= p.step_us * 1.0001,
        "the ops ({} us) outlast the steps ({} us)",
        p.ops_us(),
        p.step_us
    );
    let by_kind: f64 = p.by_kind().iter().map(|k| k.1).sum();
    assert!((by_kind - p.ops_us()).abs() <= 1e-6 * p.ops_us());
}

#[test]
fn split_evaluation_is_one_row_and_taking_starts_again() {
    let model = models::build(Some("mlp"), None, SHAPE, 10).unwrap();
    let weights = Weights {
        params: model.init_params(2),
        state: model.init_state(),
    };
    let batch = 64;
    let x = common::random(batch * model.input_len(), 6);
    let y = vec![1u32; batch];
    let mut exec = Device::Cpu
        .inference_executor(&model, &weights, batch)
        .unwrap();
    assert!(exec.set_profiling(true));
    exec.eval_step(&x, &y).unwrap();
    exec.eval_step(&x, &y).unwrap();
    let p = exec.take_profile().unwrap();
    assert_eq!(p.steps, 2);
    let kinds: Vec<&str> = p.ops.iter().map(|o| o.kind.as_str()).collect();
    if rayon::current_num_threads() >= 2 {
        assert_eq!(kinds, ["split forward", "loss"], "{p:?}");
    } else {
        assert!(kinds.contains(&"linear+relu"), "{kinds:?}");
    }
    let again = exec.take_profile().unwrap();
    assert_eq!(again.steps, 0, "take_profile did not start again");
}

#[test]
fn gpu_executor_cannot_profile() {
    let Some(ctx) = common::gpu() else {
        return;
    };
    let device = Device::Gpu(ctx);
    let model = models::build(Some("mlp"), None, SHAPE, 10).unwrap();
    let mut exec = device
        .executor(&model, &model.init_params(0), OptimConfig::adam(1e-3), 8)
        .unwrap();
    assert!(!exec.set_profiling(true));
    assert!(exec.take_profile().is_none());
}

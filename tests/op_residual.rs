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

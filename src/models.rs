//! Model presets and the `--arch` spec.
//!
//! Spec grammar (comma-separated, case-insensitive, spaces ignored; the tokens are registered in
//! `nn::registry`, one line per op family):
//!   `conv{KH}x{KW}x{OUT}[p{PAD}][s{STRIDE}][nb]`  2-D convolution (PyTorch `nn.Conv2d`); `nb`: no bias
//!   `maxpool{K}[s{STRIDE}]`, `avgpool{K}[s{STRIDE}]`  pooling, K x K window, stride K unless given
//!   `flatten`                                   flatten [C, H, W] to a vector
//!   `fc{N}`                                     fully connected layer with N outputs (`nn.Linear`)
//!   `relu`                                      ReLU (fused into the op before it where possible)
//!   `bn`                                        BatchNorm (2d after an image, 1d after a vector)
//!   `res(LAYERS)`                               residual block: LAYERS + shortcut (identity, or 1x1
//!                                               conv + bn when the shape changes), added
//! Example: `conv3x3x16p1,relu,maxpool2,conv3x3x32p1,relu,maxpool2,flatten,fc128,relu,fc10` is the
//! `cnn` preset on 28x28 grey images with 10 classes. Presets are specs too.

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::{registry, Layer, Model};

/// Names accepted by `--model`, with their specs (`{classes}` is the data's class count).
pub const PRESET_SPECS: &[(&str, &str)] = &[
    ("mlp", "flatten,fc256,relu,fc128,relu,fc{classes}"),
    (
        "cnn",
        "conv3x3x16p1,relu,maxpool2,conv3x3x32p1,relu,maxpool2,flatten,fc128,relu,fc{classes}",
    ),
    (
        "lenet5",
        "conv5x5x6p2,relu,maxpool2,conv5x5x16,relu,maxpool2,flatten,fc120,relu,fc84,relu,fc{classes}",
    ),
    (
        "resnet",
        "conv3x3x16p1nb,bn,relu,\
         res(conv3x3x16p1nb,bn,relu,conv3x3x16p1nb,bn),relu,\
         res(conv3x3x32p1s2nb,bn,relu,conv3x3x32p1nb,bn),relu,\
         res(conv3x3x64p1s2nb,bn,relu,conv3x3x64p1nb,bn),relu,\
         gap,fc{classes}",
    ),
    (
        "mlp-bn",
        "flatten,fc256,bn,relu,dropout0.2,fc128,bn,relu,dropout0.2,fc{classes}",
    ),
];

/// Names accepted by `--model`.
pub const PRESETS: &[&str] = &["mlp", "cnn", "lenet5", "resnet", "mlp-bn"];

/// The spec of a preset for `classes` output classes.
pub fn preset_spec(name: &str, classes: usize) -> Result<String> {
    PRESET_SPECS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, spec)| spec.replace("{classes}", &classes.to_string()))
        .ok_or_else(|| {
            Error::Config(format!(
                "--model {name}: unknown model; choose one of {} or give --arch SPEC",
                PRESETS.join(", ")
            ))
        })
}

/// The layers of a preset for `classes` output classes.
pub fn preset_layers(name: &str, classes: usize) -> Result<Vec<Box<dyn Layer>>> {
    registry::parse_spec(&preset_spec(name, classes)?)
}

/// Parse an `--arch` spec into layers. Errors name the token (1-based position) and what was expected.
pub fn parse_arch(spec: &str) -> Result<Vec<Box<dyn Layer>>> {
    registry::parse_spec(spec)
}

/// Build a model from a preset or a spec for a different number of classes: the last fc layer is resized
/// to `classes` (used by transfer experiments, where the head is replaced).
pub fn build_with_classes(
    name: Option<&str>,
    arch: Option<&str>,
    input: ImageShape,
    classes: usize,
) -> Result<Model> {
    let (label, mut layers) = match (name, arch) {
        (_, Some(spec)) => ("custom", parse_arch(spec)?),
        (Some(n), None) => (n, preset_layers(n, classes)?),
        (None, None) => ("mlp", preset_layers("mlp", classes)?),
    };
    if let Some(last) = layers.last_mut() {
        if last.token().starts_with("fc") {
            *last = registry::parse_token(&format!("fc{classes}")).map_err(Error::Config)?;
        }
    }
    Model::new(label, input, layers, classes)
}

/// Build a model from a preset name or a spec, checking shapes against the input and class count.
pub fn build(
    name_or_none: Option<&str>,
    arch: Option<&str>,
    input: ImageShape,
    classes: usize,
) -> Result<Model> {
    match (name_or_none, arch) {
        (_, Some(spec)) => Model::new("custom", input, parse_arch(spec)?, classes),
        (Some(name), None) => Model::new(name, input, preset_layers(name, classes)?, classes),
        (None, None) => Model::new("mlp", input, preset_layers("mlp", classes)?, classes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: ImageShape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    #[test]
    fn mlp_has_the_reference_parameter_count() {
        let m = build(Some("mlp"), None, MNIST, 10).unwrap();
        assert_eq!(m.num_params(), 235_146);
        assert_eq!(m.graph.nodes.len(), 3);
        let names: Vec<_> = m.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
        );
        assert_eq!(m.forward_flops(), 2 * (784 * 256 + 256 * 128 + 128 * 10));
    }

    #[test]
    fn cnn_and_lenet5_have_the_reference_parameter_counts() {
        let cnn = build(Some("cnn"), None, MNIST, 10).unwrap();
        assert_eq!(cnn.num_params(), 206_922);
        assert_eq!(cnn.forward_flops(), 2_436_096);
        let names: Vec<_> = cnn.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight",
                "9.bias"
            ]
        );
        assert_eq!(cnn.params[2].shape, vec![32, 16, 3, 3]);
        let lenet = build(Some("lenet5"), None, MNIST, 10).unwrap();
        assert_eq!(lenet.num_params(), 61_706);
        // The spec of a preset rebuilds the same model.
        let again = build(None, Some(&cnn.spec()), MNIST, 10).unwrap();
        assert_eq!(again.layers, cnn.layers);
        assert_eq!(
            cnn.spec(),
            "conv3x3x16p1,relu,maxpool2,conv3x3x32p1,relu,maxpool2,flatten,fc128,relu,fc10"
        );
    }

    #[test]
    fn resnet_and_mlp_bn_have_the_reference_parameter_counts() {
        let r = build(Some("resnet"), None, MNIST, 10).unwrap();
        assert_eq!(r.num_params(), 77_754);
        // Any input size; only the stem's input channels change the count.
        let cifar = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let rc = build(Some("resnet"), None, cifar, 10).unwrap();
        assert_eq!(rc.num_params(), 77_754 + 2 * 16 * 9);
        let big = ImageShape {
            channels: 1,
            height: 84,
            width: 84,
        };
        assert_eq!(
            build(Some("resnet"), None, big, 10).unwrap().num_params(),
            77_754
        );
        let names: Vec<_> = r.params.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"5.shortcut.0.weight") && names.contains(&"3.body.4.bias"));
        // 7 BatchNorms of 16, 32 and 64 channels (plus two projection BNs), each with a counter.
        assert_eq!(r.state.iter().filter(|t| t.int64).count(), 9);
        let m = build(Some("mlp-bn"), None, MNIST, 10).unwrap();
        assert_eq!(m.num_params(), 235_914);
        assert_eq!(m.num_buffers(), 2 * (256 + 128) + 2);
    }

    #[test]
    fn summary_rows_add_up() {
        let cnn = build(Some("cnn"), None, MNIST, 10).unwrap();
        let rows = cnn.summary();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0].output_shape, vec![16, 28, 28]);
        assert_eq!(rows[2].output_shape, vec![16, 14, 14]);
        assert_eq!(rows[6].output_shape, vec![1568]);
        assert_eq!(rows[9].output_shape, vec![10]);
        assert_eq!(rows[0].params, 160);
        assert_eq!(
            rows.iter().map(|r| r.params).sum::<usize>(),
            cnn.num_params()
        );
        assert_eq!(
            rows.iter().map(|r| r.forward_flops).sum::<usize>(),
            cnn.forward_flops()
        );
    }

    #[test]
    fn conv_and_pool_tokens_parse() {
        let l = parse_arch("conv5x3x8p2s2, avgpool3s2 ,maxpool2,conv1x1x4nb").unwrap();
        let tokens: Vec<String> = l.iter().map(|l| l.token()).collect();
        assert_eq!(
            tokens,
            ["conv5x3x8p2s2", "avgpool3s2", "maxpool2", "conv1x1x4nb"]
        );
        let rgb = ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let m = build(
            None,
            Some("conv3x3x16p1,relu,maxpool2,flatten,fc10"),
            rgb,
            10,
        )
        .unwrap();
        assert_eq!(m.params[0].shape, vec![16, 3, 3, 3]);
        assert_eq!(m.params[2].shape, vec![10, 16 * 16 * 16]);
    }

    #[test]
    fn shape_errors_name_the_layer() {
        let e = |spec: &str| build(None, Some(spec), MNIST, 10).unwrap_err().to_string();
        assert!(e("conv3x3x8,maxpool2,conv15x15x8,flatten,fc10")
            .contains("layer 3 (conv15x15x8): kernel 15x15 is larger than its 13x13 input"));
        assert!(e("maxpool29,flatten,fc10").contains("layer 1 (maxpool29): window 29x29"));
        assert!(e("flatten,conv3x3x8,fc10").contains("layer 2"));
        assert!(e("conv3x3x8,fc10").contains("add `flatten`"));
        assert!(e("conv3xx8").contains("layer 1 `conv3xx8`"));
        assert!(e("maxpoolx").contains("layer 1 `maxpoolx`"));
        // A ReLU that cannot be fused runs on its own.
        let m = build(None, Some("maxpool2,relu,flatten,fc10"), MNIST, 10).unwrap();
        assert_eq!(m.graph.nodes[1].op.kind(), "relu");
    }

    #[test]
    fn arch_spec_round_trips_and_errors_name_the_layer() {
        let m = build(None, Some("flatten,fc32,relu,fc10"), MNIST, 10).unwrap();
        assert_eq!(m.spec(), "flatten,fc32,relu,fc10");
        let e = build(None, Some("flatten,fc32,bogus,fc10"), MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("layer 3 `bogus`"), "{e}");
        let e = build(None, Some("flatten,fcx"), MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("layer 2"), "{e}");
        let e = build(None, Some("flatten,fc32,relu,fc7"), MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("10 classes"), "{e}");
        let e = build(None, Some("fc32,relu,fc10"), MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("add `flatten`"), "{e}");
        let e = build(None, Some("flatten,fc10,relu"), MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("remove the final relu"), "{e}");
        let e = build(Some("resnet50"), None, MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("unknown model"), "{e}");
    }
}

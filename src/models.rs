//! Model presets and the `--arch` spec parser.
//!
//! Spec grammar (comma-separated, case-insensitive, no spaces needed):
//!   `flatten`   flatten [C, H, W] to a vector
//!   `fcN`       fully connected layer with N outputs (PyTorch `nn.Linear`)
//!   `relu`      ReLU (fused into the preceding fc layer)
//! Example: `flatten,fc256,relu,fc128,relu,fc10` is the `mlp` preset on 10 classes.

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::{Layer, Model};

/// Names accepted by `--model`.
pub const PRESETS: &[&str] = &["mlp"];

/// The layers of a preset for `classes` output classes.
pub fn preset_layers(name: &str, classes: usize) -> Result<Vec<Layer>> {
    match name {
        "mlp" => Ok(vec![
            Layer::Flatten,
            Layer::Linear { out: 256 },
            Layer::Relu,
            Layer::Linear { out: 128 },
            Layer::Relu,
            Layer::Linear { out: classes },
        ]),
        other => Err(Error::Config(format!(
            "--model {other}: unknown model; choose one of {} or give --arch SPEC",
            PRESETS.join(", ")
        ))),
    }
}

/// Parse an `--arch` spec into layers. Errors name the token (1-based position) and what was expected.
pub fn parse_arch(spec: &str) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for (i, raw) in spec.split(',').enumerate() {
        let tok = raw.trim().to_ascii_lowercase();
        let bad = |why: &str| {
            Error::Config(format!(
                "--arch: layer {} `{}`: {why}; tokens are flatten, fcN, relu (e.g. flatten,fc256,relu,fc10)",
                i + 1,
                raw.trim()
            ))
        };
        let layer = match tok.as_str() {
            "" => return Err(bad("empty layer")),
            "flatten" => Layer::Flatten,
            "relu" => Layer::Relu,
            t if t.starts_with("fc") => {
                let n: usize = t[2..]
                    .parse()
                    .map_err(|_| bad("expected fc followed by a number of outputs"))?;
                Layer::Linear { out: n }
            }
            _ => return Err(bad("unknown layer")),
        };
        layers.push(layer);
    }
    Ok(layers)
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
        assert_eq!(m.nodes.len(), 3);
        let names: Vec<_> = m.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
        );
        assert_eq!(m.forward_flops(), 2 * (784 * 256 + 256 * 128 + 128 * 10));
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
        let e = build(Some("resnet"), None, MNIST, 10).unwrap_err();
        assert!(e.to_string().contains("unknown model"), "{e}");
    }
}

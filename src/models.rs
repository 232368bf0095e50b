//! Model presets and the `--arch` spec parser.
//!
//! Spec grammar (comma-separated, case-insensitive, spaces ignored):
//!   `conv{KH}x{KW}x{OUT}[p{PAD}][s{STRIDE}]`  2-D convolution, e.g. `conv3x3x16p1` (PyTorch `nn.Conv2d`)
//!   `maxpool{K}[s{STRIDE}]`                  max pooling, K x K window, stride K unless given
//!   `avgpool{K}[s{STRIDE}]`                  average pooling
//!   `flatten`                               flatten [C, H, W] to a vector
//!   `fc{N}`                                 fully connected layer with N outputs (PyTorch `nn.Linear`)
//!   `relu`                                  ReLU (fused into the preceding conv or fc layer)
//! Example: `conv3x3x16p1,relu,maxpool2,conv3x3x32p1,relu,maxpool2,flatten,fc128,relu,fc10` is the
//! `cnn` preset on 28x28 grey images with 10 classes.

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::{Layer, Model};

/// Names accepted by `--model`.
pub const PRESETS: &[&str] = &["mlp", "cnn", "lenet5"];

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
        "cnn" => Ok(vec![
            conv(3, 16, 1),
            Layer::Relu,
            Layer::MaxPool2d { k: 2, stride: 2 },
            conv(3, 32, 1),
            Layer::Relu,
            Layer::MaxPool2d { k: 2, stride: 2 },
            Layer::Flatten,
            Layer::Linear { out: 128 },
            Layer::Relu,
            Layer::Linear { out: classes },
        ]),
        "lenet5" => Ok(vec![
            conv(5, 6, 2),
            Layer::Relu,
            Layer::MaxPool2d { k: 2, stride: 2 },
            conv(5, 16, 0),
            Layer::Relu,
            Layer::MaxPool2d { k: 2, stride: 2 },
            Layer::Flatten,
            Layer::Linear { out: 120 },
            Layer::Relu,
            Layer::Linear { out: 84 },
            Layer::Relu,
            Layer::Linear { out: classes },
        ]),
        other => Err(Error::Config(format!(
            "--model {other}: unknown model; choose one of {} or give --arch SPEC",
            PRESETS.join(", ")
        ))),
    }
}

fn conv(k: usize, out: usize, pad: usize) -> Layer {
    Layer::Conv2d {
        out,
        kh: k,
        kw: k,
        stride: 1,
        pad,
    }
}

/// Split `s` at the first occurrence of `marker` followed by a number: (`before`, number).
fn suffix_number(s: &str, marker: char) -> Option<(&str, usize)> {
    let pos = s.rfind(marker)?;
    let n = s[pos + 1..].parse().ok()?;
    Some((&s[..pos], n))
}

/// `conv3x3x16p1s2` -> Conv2d; `None` when the token is not of that form.
fn parse_conv(t: &str) -> Option<Layer> {
    let mut rest = t.strip_prefix("conv")?;
    let mut stride = 1;
    let mut pad = 0;
    if let Some((r, s)) = suffix_number(rest, 's') {
        rest = r;
        stride = s;
    }
    if let Some((r, p)) = suffix_number(rest, 'p') {
        rest = r;
        pad = p;
    }
    let dims: Vec<usize> = rest
        .split('x')
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    match dims[..] {
        [kh, kw, out] => Some(Layer::Conv2d {
            out,
            kh,
            kw,
            stride,
            pad,
        }),
        _ => None,
    }
}

/// `maxpool2`, `maxpool3s2` -> (k, stride).
fn parse_pool(rest: &str) -> Option<(usize, usize)> {
    match suffix_number(rest, 's') {
        Some((k, s)) => Some((k.parse().ok()?, s)),
        None => {
            let k = rest.parse().ok()?;
            Some((k, k))
        }
    }
}

/// Parse an `--arch` spec into layers. Errors name the token (1-based position) and what was expected.
pub fn parse_arch(spec: &str) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for (i, raw) in spec.split(',').enumerate() {
        let tok: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let bad = |why: &str| {
            Error::Config(format!(
                "--arch: layer {} `{}`: {why}; tokens are convKHxKWxOUT[pP][sS], maxpoolK[sS], avgpoolK[sS], flatten, fcN, relu (e.g. conv3x3x16p1,relu,maxpool2,flatten,fc10)",
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
            t if t.starts_with("conv") => parse_conv(t).ok_or_else(|| {
                bad("expected conv{KH}x{KW}x{OUT} with optional p{PAD} and s{STRIDE}, e.g. conv3x3x16p1")
            })?,
            t if t.starts_with("maxpool") || t.starts_with("avgpool") => {
                let (k, stride) = parse_pool(&t[7..])
                    .ok_or_else(|| bad("expected maxpool{K} or maxpool{K}s{STRIDE}, e.g. maxpool2"))?;
                if t.starts_with("max") {
                    Layer::MaxPool2d { k, stride }
                } else {
                    Layer::AvgPool2d { k, stride }
                }
            }
            _ => return Err(bad("unknown layer")),
        };
        layers.push(layer);
    }
    Ok(layers)
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
    if let Some(Layer::Linear { out }) = layers.last_mut() {
        *out = classes;
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
        assert_eq!(m.nodes.len(), 3);
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
        let l = parse_arch("conv5x3x8p2s2, avgpool3s2 ,maxpool2").unwrap();
        assert_eq!(
            l,
            vec![
                Layer::Conv2d {
                    out: 8,
                    kh: 5,
                    kw: 3,
                    stride: 2,
                    pad: 2
                },
                Layer::AvgPool2d { k: 3, stride: 2 },
                Layer::MaxPool2d { k: 2, stride: 2 },
            ]
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
        assert!(e("maxpool2,relu,flatten,fc10")
            .contains("relu is supported directly after a conv or fc layer"));
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

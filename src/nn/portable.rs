//! Layers in framework-neutral terms: the standard module each one is, in the vocabulary PyTorch and
//! ONNX share. `wgtrain export` walks a model once into this form ([`describe`]); each format
//! (`export::pytorch`, `export::onnx`) only translates these variants, so a new op that maps onto
//! existing variants needs no exporter change, and a new variant is one arm per format.
//!
//! Tensor names follow the lowering's (PyTorch's `state_dict`): module `i` of a sequence is `i`, a
//! residual block's parts are `body` and `shortcut`.

use super::op::{output_shape, Layer, Shape};

/// One layer as a standard module, shapes resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Portable {
    /// `nn.Conv2d` / ONNX `Conv`: `weight [out, in_c, kh, kw]`, optional `bias [out]`, zero padding
    /// `pad` on every side.
    Conv2d {
        in_c: usize,
        out: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    },
    /// `nn.Linear` / ONNX `Gemm` (`transB = 1`): `weight [out, inp]`, `bias [out]`. `flatten`: the
    /// input is a `[inp, 1, 1]` image, flattened first.
    Linear {
        inp: usize,
        out: usize,
        flatten: bool,
    },
    /// `nn.MaxPool2d` / `MaxPool`, no padding, floor mode.
    MaxPool {
        k: usize,
        stride: usize,
    },
    /// `nn.AvgPool2d` / `AveragePool`, no padding, floor mode.
    AvgPool {
        k: usize,
        stride: usize,
    },
    Relu,
    /// `nn.BatchNorm1d` (flat input) or `nn.BatchNorm2d` (`image`), evaluated with the running
    /// statistics: `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
    BatchNorm {
        channels: usize,
        image: bool,
        eps: f32,
    },
    /// Mean over each channel's plane: `[C, H, W]` -> `[C]` (flat).
    GlobalAvgPool,
    /// The identity in evaluation.
    Dropout {
        p: f32,
    },
    /// `[C, H, W]` -> `[C*H*W]`.
    Flatten,
    /// `body(x) + shortcut(x)`; `shortcut` is `None` for the identity.
    Residual {
        body: Vec<Portable>,
        shortcut: Option<Vec<Portable>>,
    },
}

/// `layers` applied to `input`, as standard modules, and the shape they output. Errors name the
/// layer (1-based) and its token, e.g. a layer that has no standard form.
pub fn describe(
    layers: &[Box<dyn Layer>],
    input: Shape,
) -> std::result::Result<(Vec<Portable>, Shape), String> {
    let mut shape = input;
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let named = |e: String| format!("layer {} ({}): {e}", i + 1, layer.token());
        out.push(layer.portable(shape).map_err(named)?);
        shape = output_shape(layer.as_ref(), shape).map_err(named)?;
    }
    Ok((out, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::graph::{GraphBuilder, TensorId};
    use crate::nn::registry::parse_spec;

    #[test]
    fn describes_a_residual_net_with_the_shapes_lowering_gives() {
        let layers = parse_spec("conv3x3x8p1nb,bn,relu,res(conv3x3x16p1s2nb,bn),gap,fc10").unwrap();
        let (mods, out) = describe(&layers, Shape::image(1, 28, 28)).unwrap();
        assert_eq!(out, Shape::Flat(10));
        assert_eq!(
            mods[1],
            Portable::BatchNorm {
                channels: 8,
                image: true,
                eps: 1e-5
            }
        );
        let Portable::Residual { body, shortcut } = &mods[3] else {
            panic!("{:?}", mods[3])
        };
        assert_eq!(
            body[0],
            Portable::Conv2d {
                in_c: 8,
                out: 16,
                kh: 3,
                kw: 3,
                stride: 2,
                pad: 1,
                bias: false
            }
        );
        let shortcut = shortcut
            .as_ref()
            .expect("8x28x28 -> 16x14x14 needs a projection");
        assert_eq!(
            shortcut[0],
            Portable::Conv2d {
                in_c: 8,
                out: 16,
                kh: 1,
                kw: 1,
                stride: 2,
                pad: 0,
                bias: false
            }
        );
        assert_eq!(
            mods[5],
            Portable::Linear {
                inp: 16,
                out: 10,
                flatten: false
            }
        );
    }

    /// A layer that trains but has no standard form.
    #[derive(Debug, Clone)]
    struct Mystery;

    impl Layer for Mystery {
        fn token(&self) -> String {
            "mystery".into()
        }
        fn lower(&self, _g: &mut GraphBuilder, x: TensorId) -> Result<TensorId, String> {
            Ok(x)
        }
        fn clone_box(&self) -> Box<dyn Layer> {
            Box::new(self.clone())
        }
    }

    #[test]
    fn a_layer_without_a_standard_form_is_named() {
        let mut layers = parse_spec("flatten,fc10").unwrap();
        layers.insert(1, Box::new(Mystery));
        let e = describe(&layers, Shape::image(1, 4, 4)).unwrap_err();
        assert!(e.starts_with("layer 2 (mystery): "), "{e}");
        assert!(e.contains("no PyTorch or ONNX form"), "{e}");
    }
}

//! Structural layers without kernels of their own: `flatten` (a view) and `res(...)`, a residual
//! block (its inner layers, a shortcut, and an add).

use super::graph::{GraphBuilder, TensorId};
use super::op::{Layer, Shape};
use super::portable::{describe, Portable};
use super::registry;
use crate::ops::add::Add;
use crate::ops::batchnorm::BatchNormLayer;
use crate::ops::conv2d::ConvLayer;

/// `flatten`: `[C, H, W]` -> `[C*H*W]`; free in NCHW (a view of the same storage).
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten;

pub fn parse_flatten(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    (t == "flatten").then(|| Ok(Box::new(Flatten) as Box<dyn Layer>))
}

impl Layer for Flatten {
    fn token(&self) -> String {
        "flatten".into()
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        match g.shape(x) {
            Shape::Flat(_) => Ok(x),
            s => Ok(g.view(x, Shape::Flat(s.len()))),
        }
    }

    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        // On a flat input both PyTorch's and ONNX's flatten are the identity, as here.
        Ok(Portable::Flatten)
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// `res(L1,L2,...)`: `y = body(x) + shortcut(x)` (PyTorch: a module with `body`, an `nn.Sequential`,
/// and `shortcut`). The shortcut is the identity when the body keeps the shape, else a projection: a
/// 1x1 convolution without bias (stride = the body's downsampling) and a BatchNorm, as in ResNet. A
/// ReLU after the add is written after the block (`res(...),relu`) and fused into the add.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual {
    pub body: Vec<Box<dyn Layer>>,
}

pub fn parse_residual(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    let inner = t.strip_prefix("res(")?;
    let Some(inner) = inner.strip_suffix(')') else {
        return Some(Err(
            "expected res(LAYERS) with the block's layers inside".into()
        ));
    };
    Some(match registry::parse_layers(inner) {
        Ok(body) if body.is_empty() => Err("a residual block needs layers".into()),
        Ok(body) => Ok(Box::new(Residual { body })),
        Err(e) => Err(format!("inside the block: {e}")),
    })
}

impl Layer for Residual {
    fn token(&self) -> String {
        let inner: Vec<String> = self.body.iter().map(|l| l.token()).collect();
        format!("res({})", inner.join(","))
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let body = g.scope("body", |g| g.sequential(&self.body, x))?;
        let (sin, sout) = (g.shape(x), g.shape(body));
        let shortcut = if sin == sout {
            x
        } else {
            let layers = projection(sin, sout)?;
            g.scope("shortcut", |g| g.sequential(&layers, x))?
        };
        Ok(g.node(Box::new(Add::new(sout.len())), &[body, shortcut], sout))
    }

    fn portable(&self, input: Shape) -> std::result::Result<Portable, String> {
        let (body, out) = describe(&self.body, input)?;
        let shortcut = if out == input {
            None
        } else {
            Some(describe(&projection(input, out)?, input)?.0)
        };
        Ok(Portable::Residual { body, shortcut })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The projection shortcut from `sin` to `sout`: a 1x1 convolution without bias, strided as the
/// body downsamples, and a BatchNorm (ResNet's option B).
pub fn projection(sin: Shape, sout: Shape) -> std::result::Result<Vec<Box<dyn Layer>>, String> {
    let (Shape::Image(a), Shape::Image(b)) = (sin, sout) else {
        return Err(format!(
            "the block maps {sin} to {sout}; a projection shortcut needs images on both sides"
        ));
    };
    let stride = a.height.div_ceil(b.height).max(1);
    if (a.height - 1) / stride + 1 == b.height && (a.width - 1) / stride + 1 == b.width {
        Ok(vec![
            Box::new(ConvLayer::new(1, b.channels, stride, 0).no_bias()),
            Box::new(BatchNormLayer),
        ])
    } else {
        Err(format!(
            "the block maps {sin} to {sout}; no 1x1 strided shortcut gives that size"
        ))
    }
}

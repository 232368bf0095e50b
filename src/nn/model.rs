//! `Model`: layers as the user wrote them, lowered to a shape-checked, fused [`Graph`] with its flat
//! parameter and state layouts.

use super::graph::{Graph, GraphBuilder, ParamTensor};
use super::op::{Init, Layer, Shape};
use super::Weights;
use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::sync::Arc;

/// A shape-checked model: its layers, its graph and the layout of its two flat vectors.
#[derive(Debug, Clone)]
pub struct Model {
    /// Preset name or `custom`.
    pub name: String,
    pub input: ImageShape,
    pub layers: Vec<Box<dyn Layer>>,
    pub graph: Arc<Graph>,
    /// Trainable tensors (PyTorch names) in the flat parameter vector.
    pub params: Vec<ParamTensor>,
    /// Length of the flat parameter vector, padding included.
    pub param_len: usize,
    /// Non-trainable tensors (running statistics) in the flat state vector.
    pub state: Vec<ParamTensor>,
    pub state_len: usize,
    pub num_classes: usize,
    /// Output shape per example of each top-level layer: `[C, H, W]`, or `[N]` once flat.
    pub layer_outputs: Vec<Vec<usize>>,
}

impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.input == other.input
            && self.layers == other.layers
            && self.num_classes == other.num_classes
    }
}

/// One layer as `wgtrain summary` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSummary {
    /// Index in the top-level Sequential (the prefix of its tensors' names).
    pub index: usize,
    pub layer: String,
    pub output_shape: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
    /// Non-trainable state values (running statistics; `num_batches_tracked` counts 1).
    pub buffers: usize,
    /// Forward FLOPs per example (2 per multiply-add).
    pub forward_flops: usize,
}

impl Model {
    /// Lower the layers, check every shape (errors name the layer) and run the fusion pass.
    pub fn new(
        name: &str,
        input: ImageShape,
        layers: Vec<Box<dyn Layer>>,
        num_classes: usize,
    ) -> Result<Model> {
        let (mut g, x) = GraphBuilder::new(Shape::Image(input));
        let mut layer_outputs = Vec::with_capacity(layers.len());
        let mut t = x;
        for (i, layer) in layers.iter().enumerate() {
            t = g.layer(i, layer.as_ref(), t).map_err(Error::Config)?;
            layer_outputs.push(g.shape(t).dims());
        }
        let mut graph = g.finish();
        if graph.nodes.is_empty() {
            return Err(Error::Config(format!(
                "the model has no layers that compute anything; end with flatten and fc{num_classes}"
            )));
        }
        graph.fuse();
        let out = graph.shape(graph.output());
        let out_is_relu = graph.relu_storage[graph.storage(graph.output())];
        match out {
            Shape::Flat(k) if k == num_classes && !out_is_relu && t == graph.output() => {}
            Shape::Flat(_) if out_is_relu => {
                return Err(Error::Config(
                    "the last layer must output raw class scores (logits) for the softmax loss; remove the final relu".into(),
                ));
            }
            Shape::Flat(k) => {
                return Err(Error::Config(format!(
                    "the last layer outputs {k} values but the data has {num_classes} classes; end with fc{num_classes}"
                )))
            }
            Shape::Image(_) => {
                return Err(Error::Config(format!(
                    "the model must end with flatten and fc{num_classes}"
                )))
            }
        }
        Ok(Model {
            name: name.to_string(),
            input,
            params: graph.params.clone(),
            param_len: graph.param_len,
            state: graph.state.clone(),
            state_len: graph.state_len,
            graph: Arc::new(graph),
            layers,
            num_classes,
            layer_outputs,
        })
    }

    /// This model as it runs in evaluation with `weights`: the evaluation pass of the graph
    /// ([`Graph::fold_for_eval`]: BatchNorm folded into the op before it, dropout removed) and the
    /// parameter vector it needs (same layout, folded values). The result must not be trained.
    /// `WGTRAIN_EVAL_FOLD=off` skips the pass (for A/B measurements).
    pub fn for_inference(&self, weights: &Weights) -> Result<(Model, Weights)> {
        let mut m = Model::new(
            &self.name,
            self.input,
            self.layers.clone(),
            self.num_classes,
        )?;
        let mut w = weights.clone();
        let fold = match std::env::var("WGTRAIN_EVAL_FOLD").as_deref() {
            Err(_) | Ok("on") => true,
            Ok("off") => false,
            Ok(other) => {
                return Err(Error::Config(format!(
                    "WGTRAIN_EVAL_FOLD={other}: use on or off (off skips folding BatchNorm for evaluation)"
                )))
            }
        };
        if fold {
            Arc::get_mut(&mut m.graph)
                .expect("a new model's graph has one owner")
                .fold_for_eval(&mut w.params, &w.state);
        }
        Ok((m, w))
    }

    /// One row per top-level layer: index, token, output shape per example, parameters, buffers and
    /// forward FLOPs — what `wgtrain summary` prints.
    pub fn summary(&self) -> Vec<LayerSummary> {
        let count = |ts: &[ParamTensor], i: usize| -> usize {
            ts.iter()
                .filter(|t| t.layer() == Some(i))
                .map(|t| t.len())
                .sum()
        };
        self.layers
            .iter()
            .zip(&self.layer_outputs)
            .enumerate()
            .map(|(i, (layer, out))| LayerSummary {
                index: i,
                layer: layer.token(),
                output_shape: out.clone(),
                params: count(&self.params, i),
                buffers: count(&self.state, i),
                forward_flops: 2 * self
                    .graph
                    .nodes
                    .iter()
                    .filter(|n| n.layer == i)
                    .map(|n| n.op.forward_macs())
                    .sum::<usize>(),
            })
            .collect()
    }

    /// Number of trainable parameters (padding excluded).
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len()).sum()
    }

    /// Number of non-trainable state values (padding excluded).
    pub fn num_buffers(&self) -> usize {
        self.state.iter().map(|p| p.len()).sum()
    }

    /// Floats per example at the input.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// Forward-pass FLOPs per example (2 per multiply-add).
    pub fn forward_flops(&self) -> usize {
        2 * self
            .graph
            .nodes
            .iter()
            .map(|n| n.op.forward_macs())
            .sum::<usize>()
    }

    /// Offset in the flat parameter vector of the last layer's weight: everything from here on is the
    /// classification head (the last fc layer's weight and bias).
    pub fn head_offset(&self) -> usize {
        self.params
            .iter()
            .rev()
            .find(|t| t.name.ends_with(".weight"))
            .map_or(0, |t| t.offset)
    }

    /// A comma-separated spec of the layers, e.g. `flatten,fc256,relu,fc128,relu,fc10`.
    pub fn spec(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.token())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether any op behaves differently in training and evaluation (BatchNorm, dropout).
    pub fn has_state(&self) -> bool {
        self.state_len > 0
    }

    /// PyTorch's default init: every uniform tensor drawn in layout order from one seeded stream
    /// (weights and biases of a layer with fan-in `f` from U(-1/sqrt(f), 1/sqrt(f))), constants set.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::derive(seed, 1);
        init_flat(&self.params, self.param_len, &mut rng)
    }

    /// The state vector's starting values (running mean 0, running var 1, batches tracked 0).
    pub fn init_state(&self) -> Vec<f32> {
        let mut rng = Rng::derive(0, 2);
        init_flat(&self.state, self.state_len, &mut rng)
    }
}

fn init_flat(tensors: &[ParamTensor], len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut flat = vec![0f32; len];
    for t in tensors {
        let dst = &mut flat[t.offset..t.offset + t.len()];
        match t.init {
            Init::Uniform(bound) => dst.iter_mut().for_each(|w| *w = rng.uniform(-bound, bound)),
            Init::Const(v) => dst.fill(v),
        }
    }
    flat
}

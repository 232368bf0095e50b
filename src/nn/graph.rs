//! The graph a model lowers to: nodes that name their input tensors, kept in topological order, with
//! every parameter and state tensor laid out in two flat vectors.
//!
//! - Tensors are per-example shapes backed by a *storage* (one buffer of `[batch, len]`); a view (a
//!   flatten, a fused ReLU's output) shares its source's storage.
//! - Forward runs the nodes in order, backward in reverse. A storage read by several nodes gets one
//!   gradient slot per reader; the executor sums them before the storage's producer runs backward.
//! - Trainable parameters live in one flat vector (one optimiser dispatch), non-trainable state
//!   (BatchNorm's running statistics) in another that the optimiser never sees. Each tensor starts at
//!   a 4-float-aligned offset.
//! - [`Graph::fuse`] is the optimisation pass: a ReLU whose input has no other reader is folded into
//!   the op that produced it (epilogue), and its backward into the readers of its output (masks).

use super::op::{Init, Layer, Op, Shape};

/// A tensor of the graph (index into `Graph::tensors`); `TensorId(0)` is the input batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo {
    pub shape: Shape,
    /// The buffer behind it (views share their source's).
    pub storage: usize,
}

/// One named tensor inside a flat vector (parameters or state).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    /// PyTorch `state_dict` name, e.g. `1.weight` or `4.body.1.running_mean`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in floats into its flat vector.
    pub offset: usize,
    pub init: Init,
    /// Stored as int64 in checkpoints (BatchNorm's `num_batches_tracked`), f32 in the vector.
    pub int64: bool,
}

impl ParamTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The top-level layer this tensor belongs to (the first component of its name).
    pub fn layer(&self) -> Option<usize> {
        self.name.split('.').next()?.parse().ok()
    }
}

/// One node: an op, the tensors it reads and the tensor it writes.
#[derive(Debug)]
pub struct GraphNode {
    pub op: Box<dyn Op>,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
    /// Index of the top-level layer that produced it.
    pub layer: usize,
    /// Module path of the node (e.g. `4.body.0`), as in the tensor names.
    pub path: String,
    /// Where its trainable parameters lie in the flat vector (those declared since the node before).
    pub params: std::ops::Range<usize>,
}

/// Which backward work a training step needs when the parameters before `frozen_prefix` are frozen:
/// a node runs backward only if it has a trainable parameter or an input whose gradient is needed,
/// and an input's gradient is needed only if some trainable parameter lies upstream of it. With a
/// frozen feature extractor (probes, transfer) the extractor's backward is skipped entirely.
#[derive(Debug, Clone, PartialEq)]
pub struct BackwardWork {
    /// Per node: run its backward.
    pub node: Vec<bool>,
    /// Per storage: its gradient is needed (a trainable parameter lies upstream).
    pub storage: Vec<bool>,
}

/// A lowered, fused model.
#[derive(Debug, Default)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    pub nodes: Vec<GraphNode>,
    pub params: Vec<ParamTensor>,
    pub param_len: usize,
    pub state: Vec<ParamTensor>,
    pub state_len: usize,
    /// Storages whose values are a fused ReLU's output: gradients into them are masked by them.
    pub relu_storage: Vec<bool>,
    /// Per node, per input: the gradient slot that input's gradient is written to. Slots
    /// `0..storages` are each storage's own; extra slots follow.
    pub grad_slot: Vec<Vec<usize>>,
    /// Per storage: the extra slots to add into its own slot before its producer's backward.
    pub extra_slots: Vec<Vec<usize>>,
    /// Storage of each gradient slot (for its length).
    pub slot_storage: Vec<usize>,
}

fn align4(x: usize) -> usize {
    x.div_ceil(4) * 4
}

impl Graph {
    /// Number of storages (buffers of values).
    pub fn storages(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| t.storage + 1)
            .max()
            .unwrap_or(0)
    }

    pub fn storage(&self, t: TensorId) -> usize {
        self.tensors[t.0].storage
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.tensors[t.0].shape
    }

    /// Floats per example of each storage.
    pub fn storage_len(&self, s: usize) -> usize {
        self.tensors
            .iter()
            .find(|t| t.storage == s)
            .map_or(0, |t| t.shape.len())
    }

    /// The output tensor (logits) — the last node's.
    pub fn output(&self) -> TensorId {
        self.nodes.last().map_or(TensorId(0), |n| n.output)
    }

    /// Node that writes storage `s` (none for the input).
    pub fn producer(&self, s: usize) -> Option<usize> {
        self.nodes.iter().position(|n| self.storage(n.output) == s)
    }

    /// The backward work of a training step with the parameters before `frozen_prefix` frozen.
    pub fn backward_work(&self, frozen_prefix: usize) -> BackwardWork {
        let mut storage = vec![false; self.storages()];
        let node = self
            .nodes
            .iter()
            .map(|n| {
                let trains = !n.params.is_empty() && n.params.end > frozen_prefix;
                let upstream = n.inputs.iter().any(|&t| storage[self.storage(t)]);
                storage[self.storage(n.output)] |= trains || upstream;
                trains || upstream
            })
            .collect();
        BackwardWork { node, storage }
    }

    /// The fusion pass, then the gradient slots. Called once by `Model::new`.
    pub fn fuse(&mut self) {
        let mut i = 0;
        while i < self.nodes.len() {
            if self.nodes[i].op.kind() == "relu" {
                let src = self.storage(self.nodes[i].inputs[0]);
                if let Some(p) = self.sole_producer(src) {
                    if self.nodes[p].op.fuse_relu() {
                        self.remove_into(i, src);
                        continue;
                    }
                }
            }
            i += 1;
        }
        self.settle();
    }

    /// The evaluation pass, on a graph that will only run forward in evaluation mode with these
    /// parameters and statistics: a BatchNorm whose input has no other reader is folded into the
    /// convolution or linear layer that produced it (weights and bias rewritten in `params`, its
    /// ReLU moved into that op's epilogue), and dropout (the identity in evaluation) is removed.
    /// Returns the number of nodes removed. The parameter and state layouts do not change.
    pub fn fold_for_eval(&mut self, params: &mut [f32], state: &[f32]) -> usize {
        let before = self.nodes.len();
        let mut i = 0;
        while i < self.nodes.len() {
            let src = self.storage(self.nodes[i].inputs[0]);
            if self.nodes[i].op.eval_identity() && self.nodes.len() > 1 {
                self.remove_into(i, src);
                continue;
            }
            if let Some(affine) = self.nodes[i].op.eval_affine(params, state) {
                if let Some(p) = self.sole_producer(src) {
                    if let Some(op) = self.nodes[p].op.fold_affine(params, &affine) {
                        self.nodes[p].op = op;
                        self.remove_into(i, src);
                        continue;
                    }
                }
            }
            i += 1;
        }
        self.settle();
        before - self.nodes.len()
    }

    /// The node that writes storage `src` when exactly one node reads it and no ReLU is fused into
    /// the writer yet: the case where the reader can be folded into the writer.
    fn sole_producer(&self, src: usize) -> Option<usize> {
        let readers = self
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|&t| self.storage(t) == src))
            .count();
        let p = self.producer(src)?;
        (readers == 1 && !self.nodes[p].op.relu()).then_some(p)
    }

    /// Remove node `i`, its output becoming (a view of) storage `src`.
    fn remove_into(&mut self, i: usize, src: usize) {
        let out = self.storage(self.nodes[i].output);
        for t in &mut self.tensors {
            if t.storage == out {
                t.storage = src;
            }
        }
        self.nodes.remove(i);
    }

    /// After a pass: storages renumbered, ReLU storages marked, gradient slots assigned.
    fn settle(&mut self) {
        self.renumber_storages();
        self.relu_storage = vec![false; self.storages()];
        for n in &self.nodes {
            if n.op.relu() || n.op.kind() == "relu" {
                self.relu_storage[self.tensors[n.output.0].storage] = true;
            }
        }
        self.assign_grad_slots();
    }

    /// Storages numbered 0.. in order of first appearance, none left unused by the fusion pass.
    fn renumber_storages(&mut self) {
        let mut map = std::collections::HashMap::new();
        for t in &mut self.tensors {
            let next = map.len();
            t.storage = *map.entry(t.storage).or_insert(next);
        }
    }

    fn assign_grad_slots(&mut self) {
        let n = self.storages();
        self.slot_storage = (0..n).collect();
        self.extra_slots = vec![Vec::new(); n];
        let mut taken = vec![false; n];
        self.grad_slot = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let mut slots = Vec::new();
            for &t in &node.inputs {
                let s = self.tensors[t.0].storage;
                if !taken[s] {
                    taken[s] = true;
                    slots.push(s);
                } else {
                    let slot = self.slot_storage.len();
                    self.slot_storage.push(s);
                    self.extra_slots[s].push(slot);
                    slots.push(slot);
                }
            }
            self.grad_slot.push(slots);
        }
    }
}

/// Builds a [`Graph`] while layers lower themselves; names parameters by module path.
pub struct GraphBuilder {
    graph: Graph,
    path: Vec<String>,
    top: usize,
    /// End of the parameters owned by nodes already added.
    owned: usize,
}

impl GraphBuilder {
    /// A builder whose tensor 0 is the input batch of `input`.
    pub fn new(input: Shape) -> (Self, TensorId) {
        let graph = Graph {
            tensors: vec![TensorInfo {
                shape: input,
                storage: 0,
            }],
            ..Graph::default()
        };
        let b = GraphBuilder {
            graph,
            path: Vec::new(),
            top: 0,
            owned: 0,
        };
        (b, TensorId(0))
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.graph.shape(t)
    }

    fn name(&self, suffix: &str) -> String {
        let mut parts = self.path.clone();
        parts.push(suffix.to_string());
        parts.join(".")
    }

    /// Lay out a trainable tensor of this module; returns its offset in the parameter vector.
    pub fn param(&mut self, suffix: &str, shape: Vec<usize>, init: Init) -> usize {
        let offset = self.graph.param_len;
        let t = ParamTensor {
            name: self.name(suffix),
            shape,
            offset,
            init,
            int64: false,
        };
        self.graph.param_len = align4(offset + t.len());
        self.graph.params.push(t);
        offset
    }

    /// Lay out a non-trainable state tensor of this module; returns its offset in the state vector.
    pub fn state(&mut self, suffix: &str, shape: Vec<usize>, init: Init, int64: bool) -> usize {
        let offset = self.graph.state_len;
        let t = ParamTensor {
            name: self.name(suffix),
            shape,
            offset,
            init,
            int64,
        };
        self.graph.state_len = align4(offset + t.len());
        self.graph.state.push(t);
        offset
    }

    /// Index the next node will have (a stable per-node number, e.g. a random stream's salt).
    pub fn next_node(&self) -> usize {
        self.graph.nodes.len()
    }

    /// Add a node writing a new tensor of `shape`.
    pub fn node(&mut self, op: Box<dyn Op>, inputs: &[TensorId], shape: Shape) -> TensorId {
        let storage = self
            .graph
            .tensors
            .iter()
            .map(|t| t.storage)
            .max()
            .unwrap_or(0)
            + 1;
        let id = TensorId(self.graph.tensors.len());
        self.graph.tensors.push(TensorInfo { shape, storage });
        self.graph.nodes.push(GraphNode {
            op,
            inputs: inputs.to_vec(),
            output: id,
            layer: self.top,
            path: self.path.join("."),
            params: self.owned..self.graph.param_len,
        });
        self.owned = self.graph.param_len;
        id
    }

    /// A new tensor of `shape` sharing `t`'s storage (same length per example).
    pub fn view(&mut self, t: TensorId, shape: Shape) -> TensorId {
        let src = self.graph.tensors[t.0];
        assert_eq!(src.shape.len(), shape.len(), "a view keeps the length");
        let id = TensorId(self.graph.tensors.len());
        self.graph.tensors.push(TensorInfo {
            shape,
            storage: src.storage,
        });
        id
    }

    /// Run `f` with `name` appended to the module path (the names of the tensors it declares).
    pub fn scope<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(name.to_string());
        let r = f(self);
        self.path.pop();
        r
    }

    /// Lower layer `i` of the Sequential at the current path: its tensors are named `<path>.i.*`.
    /// Errors name the layer (1-based) and its token.
    pub fn layer(
        &mut self,
        i: usize,
        layer: &dyn Layer,
        x: TensorId,
    ) -> std::result::Result<TensorId, String> {
        if self.path.is_empty() {
            self.top = i;
        }
        self.scope(&i.to_string(), |g| layer.lower(g, x))
            .map_err(|e| format!("layer {} ({}): {e}", i + 1, layer.token()))
    }

    /// Lower a sequence of layers as a PyTorch `nn.Sequential` at the current path.
    pub fn sequential(
        &mut self,
        layers: &[Box<dyn Layer>],
        mut x: TensorId,
    ) -> std::result::Result<TensorId, String> {
        for (i, layer) in layers.iter().enumerate() {
            x = self.layer(i, layer.as_ref(), x)?;
        }
        Ok(x)
    }

    pub fn finish(self) -> Graph {
        self.graph
    }
}

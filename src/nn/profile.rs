//! Per-op timing of the CPU executor (`wgtrain bench --profile`): the wall time of every node's
//! forward and backward, of the loss and of the optimiser step, summed over the profiled steps, and
//! each step's wall time, so that what the ops do not account for (the executor's own work) shows.
//! Timing costs two clock reads per node and pass (tens of nanoseconds against microseconds of work);
//! it is off unless asked for.

use super::graph::Graph;
use std::time::{Duration, Instant};

/// One row: a node, or the loss, the optimiser or a split evaluation forward.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    /// The node's index in the graph (`None` for the rows that are not nodes).
    pub node: Option<usize>,
    /// Module path (as in the tensor names); `-` for the rows that are not nodes.
    pub path: String,
    /// The op's kind (`conv2d`, `batchnorm`, ...), with `+relu` where a ReLU is fused into it; for
    /// the other rows `loss`, `optimizer` or `split forward` (an evaluation forward of every node,
    /// one part of the batch per thread).
    pub kind: String,
    /// Input -> output shape per example.
    pub shape: String,
    /// Microseconds per step.
    pub forward_us: f64,
    pub backward_us: f64,
}

/// What one executor spent its steps on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpProfile {
    pub steps: usize,
    /// Wall time per step, microseconds (the rows' sum plus the executor's own work).
    pub step_us: f64,
    pub ops: Vec<OpTime>,
}

impl OpProfile {
    /// The rows' total per step, microseconds.
    pub fn ops_us(&self) -> f64 {
        self.ops.iter().map(|o| o.forward_us + o.backward_us).sum()
    }

    /// Per op kind: (kind, microseconds per step), largest first.
    pub fn by_kind(&self) -> Vec<(String, f64)> {
        let mut kinds: Vec<(String, f64)> = Vec::new();
        for o in &self.ops {
            let t = o.forward_us + o.backward_us;
            match kinds.iter_mut().find(|(k, _)| *k == o.kind) {
                Some((_, total)) => *total += t,
                None => kinds.push((o.kind.clone(), t)),
            }
        }
        kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
        kinds
    }
}

/// Where a measured interval goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Forward(usize),
    Backward(usize),
    /// A whole evaluation forward with the batch split across threads.
    SplitForward,
    Loss,
    Optimizer,
    /// One whole step (`train_step` or `eval_step`).
    Step,
}

/// The running sums (held by the executor while profiling).
#[derive(Debug, Clone)]
pub(crate) struct Profiler {
    forward: Vec<Duration>,
    backward: Vec<Duration>,
    split_forward: Duration,
    loss: Duration,
    optimizer: Duration,
    wall: Duration,
    steps: usize,
}

impl Profiler {
    pub fn new(nodes: usize) -> Self {
        Profiler {
            forward: vec![Duration::ZERO; nodes],
            backward: vec![Duration::ZERO; nodes],
            split_forward: Duration::ZERO,
            loss: Duration::ZERO,
            optimizer: Duration::ZERO,
            wall: Duration::ZERO,
            steps: 0,
        }
    }

    /// The clock for an interval when `p` is profiling (no clock read when it is not).
    pub fn start(p: &Option<Profiler>) -> Option<Instant> {
        p.as_ref().map(|_| Instant::now())
    }

    /// Add the time since `t` (from [`start`](Self::start)) to `slot`.
    pub fn stop(p: &mut Option<Profiler>, t: Option<Instant>, slot: Slot) {
        let (Some(p), Some(t)) = (p.as_mut(), t) else {
            return;
        };
        let d = t.elapsed();
        match slot {
            Slot::Forward(i) => p.forward[i] += d,
            Slot::Backward(i) => p.backward[i] += d,
            Slot::SplitForward => p.split_forward += d,
            Slot::Loss => p.loss += d,
            Slot::Optimizer => p.optimizer += d,
            Slot::Step => {
                p.wall += d;
                p.steps += 1;
            }
        }
    }

    /// Per-step times of `graph`'s nodes (those that ran) and of the other rows.
    pub fn report(&self, graph: &Graph) -> OpProfile {
        let per_step = |d: Duration| 1e6 * d.as_secs_f64() / self.steps.max(1) as f64;
        let mut ops: Vec<OpTime> = graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.forward[*i] + self.backward[*i] > Duration::ZERO)
            .map(|(i, n)| OpTime {
                node: Some(i),
                path: n.path.clone(),
                kind: format!("{}{}", n.op.kind(), if n.op.relu() { "+relu" } else { "" }),
                shape: format!(
                    "{} -> {}",
                    n.inputs
                        .iter()
                        .map(|&t| graph.shape(t).to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    graph.shape(n.output)
                ),
                forward_us: per_step(self.forward[i]),
                backward_us: per_step(self.backward[i]),
            })
            .collect();
        let other = |kind: &str, forward: Duration, backward: Duration| OpTime {
            node: None,
            path: "-".into(),
            kind: kind.into(),
            shape: String::new(),
            forward_us: per_step(forward),
            backward_us: per_step(backward),
        };
        if self.split_forward > Duration::ZERO {
            // Every node at once, one part of the batch per thread.
            ops.push(other("split forward", self.split_forward, Duration::ZERO));
        }
        ops.push(other("loss", self.loss, Duration::ZERO));
        if self.optimizer > Duration::ZERO {
            ops.push(other("optimizer", Duration::ZERO, self.optimizer));
        }
        OpProfile {
            steps: self.steps,
            step_us: per_step(self.wall),
            ops,
        }
    }
}

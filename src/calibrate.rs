//! BatchNorm statistics recomputed over a data set with the final weights (`train --recalibrate-bn`,
//! and every BatchNorm net in `wgtrain compare`).
//!
//! Running statistics are an exponential average (momentum 0.1) of batch statistics taken while the
//! weights were still moving, so they can lag the final weights badly — at a constant learning rate a
//! net can score 35 % in evaluation mode while the same weights with batch statistics score 79 %.
//! Recalibration is PyTorch's `torch.optim.swa_utils.update_bn`: reset the statistics, then average
//! them over training-mode forward passes of the whole set, each batch weighted equally (momentum
//! `None`), without touching a parameter. `num_batches_tracked` ends at the number of batches.
//!
//! It needs nothing op-specific: before each batch every `running_mean` / `running_var` is set to 0,
//! so after the forward pass it holds `momentum x` the batch statistic, which is read back and summed.

use crate::data::{Batcher, Dataset, Normalization};
use crate::error::Result;
use crate::nn::{Executor, Model};
use crate::ops::batchnorm::MOMENTUM;

/// Where a model's BatchNorm statistics live in its state vector.
#[derive(Debug, Clone, PartialEq)]
pub struct BnLayout {
    /// `running_mean` and `running_var` ranges (averaged over batches).
    stats: Vec<std::ops::Range<usize>>,
    /// `num_batches_tracked` offsets (set to the number of batches).
    counters: Vec<usize>,
}

impl BnLayout {
    /// The layout of `model`'s BatchNorm statistics; `None` when it has no BatchNorm.
    pub fn of(model: &Model) -> Option<Self> {
        let mut stats = Vec::new();
        let mut counters = Vec::new();
        for t in &model.state {
            if t.name.ends_with("running_mean") || t.name.ends_with("running_var") {
                stats.push(t.offset..t.offset + t.len());
            } else if t.name.ends_with("num_batches_tracked") {
                counters.push(t.offset);
            }
        }
        (!stats.is_empty()).then_some(BnLayout { stats, counters })
    }
}

/// Recompute every BatchNorm's running statistics of `exec` over `ds` (in order, batches of `batch`).
/// Returns the number of batches used (0 for an empty set: nothing changed).
pub fn recalibrate_bn(
    exec: &mut dyn Executor,
    layout: &BnLayout,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
) -> Result<usize> {
    if ds.is_empty() {
        return Ok(0);
    }
    let BnLayout { stats, counters } = layout;
    let batcher = Batcher::new(norm, ds.shape);
    let n = ds.shape.len();
    let batch = batch.min(ds.len()).max(1);
    let mut x = vec![0f32; batch * n];
    let mut y = vec![0u32; batch];
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut state = exec.state()?;
    let mut sums = vec![0f64; state.len()];
    let mut used = 0usize;
    for chunk in idx.chunks(batch) {
        // A one-example batch has no variance over a flat feature (PyTorch refuses it too); it can
        // only be the last, partial one.
        if chunk.len() < 2 && used > 0 {
            break;
        }
        let b = chunk.len();
        batcher.fill(ds, chunk, &mut x[..b * n], &mut y[..b]);
        for r in stats {
            state[r.clone()].fill(0.0);
        }
        exec.set_state(&state)?;
        exec.calibrate_step(&x[..b * n])?;
        let after = exec.state()?;
        for r in stats {
            for i in r.clone() {
                sums[i] += f64::from(after[i]) / f64::from(MOMENTUM);
            }
        }
        used += 1;
    }
    for r in stats {
        for i in r.clone() {
            state[i] = (sums[i] / used as f64) as f32;
        }
    }
    for &c in counters {
        state[c] = used as f32;
    }
    exec.set_state(&state)?;
    Ok(used)
}

//! Fused softmax + cross-entropy loss (mean over the batch), its gradient, and argmax accuracy.
//!
//! Shapes: `logits: [batch, classes]`, `labels: [batch]`, `grad: [batch, classes]`.
//! Numerically stable: the row maximum is subtracted before exponentiating. The gradient of the MEAN loss
//! is `(softmax(z) - onehot(y)) / batch`. Argmax ties go to the lowest class index on both devices.

use crate::device::gpu::{Kernel, PlanBuilder};
use crate::nn::Stats;

/// CPU reference. Returns the SUM of per-example losses and the number of correct argmax predictions;
/// writes the gradient of the mean loss when `grad` is given.
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    mut grad: Option<&mut [f32]>,
) -> Stats {
    let batch = labels.len();
    let inv_batch = 1.0 / batch.max(1) as f32;
    let mut stats = Stats {
        count: batch as u64,
        ..Default::default()
    };
    for (s, row) in logits[..batch * classes].chunks_exact(classes).enumerate() {
        let (mut mx, mut arg) = (row[0], 0usize);
        for (c, &z) in row.iter().enumerate().skip(1) {
            if z > mx {
                mx = z;
                arg = c;
            }
        }
        let sum: f32 = row.iter().map(|&z| (z - mx).exp()).sum();
        let y = (labels[s] as usize).min(classes - 1);
        stats.loss_sum += (sum.ln() + mx - row[y]) as f64;
        stats.correct += u64::from(arg == y);
        if let Some(g) = grad.as_deref_mut() {
            let inv_sum = 1.0 / sum;
            for (c, (gv, &z)) in g[s * classes..(s + 1) * classes]
                .iter_mut()
                .zip(row)
                .enumerate()
            {
                let p = (z - mx).exp() * inv_sum;
                *gv = (p - if c == y { 1.0 } else { 0.0 }) * inv_batch;
            }
        }
    }
    stats
}

pub const SOFTMAX_XENT: Kernel = Kernel {
    name: "softmax_xent",
    source: include_str!("../../shaders/softmax_xent.wgsl"),
    entry: "softmax_xent",
};

/// Uniform of `shaders/softmax_xent.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxXentParams {
    pub batch: u32,
    pub classes: u32,
    pub flags: u32,
    pub stats_off: u32,
}

pub const FLAG_GRAD: u32 = 1;

/// Add the loss dispatch. Loss sum and correct count are added to `stats[stats_off..stats_off + 2]`.
#[allow(clippy::too_many_arguments)]
pub fn push_softmax_xent(
    pb: &mut PlanBuilder<'_>,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    stats_off: usize,
    batch: usize,
    classes: usize,
    with_grad: bool,
) {
    let p = SoftmaxXentParams {
        batch: batch as u32,
        classes: classes as u32,
        flags: if with_grad { FLAG_GRAD } else { 0 },
        stats_off: stats_off as u32,
    };
    pb.push(&SOFTMAX_XENT, &p, &[logits, labels, grad, stats], [1, 1, 1]);
}

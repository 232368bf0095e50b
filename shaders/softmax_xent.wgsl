// Fused, numerically stable softmax + cross-entropy, its gradient, and the argmax accuracy count.
//
// One workgroup handles the whole batch (the work is tiny: batch x classes); each invocation takes every
// 256th example. Per example: loss = log(sum_c exp(z_c - max)) + max - z_y, and when FLAG_GRAD is set
// dZ = (softmax(z) - onehot(y)) / batch (the gradient of the mean loss). Loss and correct count are
// reduced in workgroup memory and ADDED to stats[stats_off] and stats[stats_off + 1], so an epoch
// accumulates on the device and is read back once.

struct Params {
    batch: u32,
    classes: u32,
    flags: u32,
    stats_off: u32,
}

const FLAG_GRAD: u32 = 1u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_correct: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn softmax_xent(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var correct = 0.0;
    let inv_batch = 1.0 / f32(max(p.batch, 1u));
    for (var s = lid; s < p.batch; s = s + WG) {
        let base = s * p.classes;
        var mx = logits[base];
        var arg = 0u;
        for (var c = 1u; c < p.classes; c = c + 1u) {
            let z = logits[base + c];
            if (z > mx) {
                mx = z;
                arg = c;
            }
        }
        var sum = 0.0;
        for (var c = 0u; c < p.classes; c = c + 1u) {
            sum = sum + exp(logits[base + c] - mx);
        }
        let y = min(labels[s], p.classes - 1u);
        loss = loss + log(sum) + mx - logits[base + y];
        if (arg == y) {
            correct = correct + 1.0;
        }
        if ((p.flags & FLAG_GRAD) != 0u) {
            let inv_sum = 1.0 / sum;
            for (var c = 0u; c < p.classes; c = c + 1u) {
                var g = exp(logits[base + c] - mx) * inv_sum;
                if (c == y) {
                    g = g - 1.0;
                }
                grad[base + c] = g * inv_batch;
            }
        }
    }
    part_loss[lid] = loss;
    part_correct[lid] = correct;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            part_loss[lid] = part_loss[lid] + part_loss[lid + half];
            part_correct[lid] = part_correct[lid] + part_correct[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        stats[p.stats_off] = stats[p.stats_off] + part_loss[0];
        stats[p.stats_off + 1u] = stats[p.stats_off + 1u] + part_correct[0];
    }
}

// Batch normalisation (PyTorch BatchNorm1d/2d) over NCHW (flat vectors: plane = 1), per channel c:
// statistics over the batch and the plane, M = batch * plane values.
// bn_stats:           training: batch mean and biased variance -> aux[c], aux[C + c] = 1/sqrt(var + eps);
//                     running mean / var (unbiased) updated with the momentum, num_batches_tracked += 1.
//                     One workgroup per channel; a tree reduction in workgroup memory, no atomics.
// bn_normalize:       y = x * scale + shift, scale = gamma * invstd, shift = beta - mean * scale (batch
//                     statistics in training, running ones with FLAG_EVAL), ReLU'd with FLAG_RELU.
// bn_backward_reduce: per channel sum(dy) and sum(dy * xhat) -> aux[2C + c], aux[3C + c] and the bias /
//                     weight gradients. One workgroup per channel.
// bn_stats_flat, bn_backward_reduce_flat: the same for flat inputs (plane 1, BatchNorm1d): one invocation
//                     per feature sums its column serially; neighbouring invocations read neighbouring
//                     floats, and there are no barriers (a software adapter pays dearly for each).
// bn_backward_input:  dx = gamma * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M), masked with
//                     FLAG_MASK.

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    flags: u32,
    w_off: u32,
    b_off: u32,
    mean_off: u32,
    var_off: u32,
    count_off: u32,
    eps: f32,
    momentum: f32,
    pad0: u32,
}

const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;
const FLAG_EVAL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// forward: y; backward: dx
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
// [mean, invstd, sum dy, sum dy*xhat], each [channels]
@group(0) @binding(5) var<storage, read_write> aux: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<f32>;

var<workgroup> red0: array<f32, 256>;
var<workgroup> red1: array<f32, 256>;

fn channel(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Flat index of the e-th value of channel c.
fn at(c: u32, e: u32) -> u32 {
    let n = e / p.plane;
    return (n * p.channels + c) * p.plane + (e - n * p.plane);
}

// Sum red0 (and red1) over the workgroup; the result is in slot 0.
fn reduce(lid: u32) {
    for (var s = 128u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            red0[lid] = red0[lid] + red0[lid + s];
            red1[lid] = red1[lid] + red1[lid + s];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256, 1, 1)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let c = channel(wid, nwg);
    let m = p.batch * p.plane;
    // Uniform control flow: every invocation takes part in the barriers; out-of-range channels add 0.
    let live = c < p.channels;
    var s = 0.0;
    if (live) {
        for (var e = lid; e < m; e = e + 256u) {
            s = s + x[at(c, e)];
        }
    }
    red0[lid] = s;
    red1[lid] = 0.0;
    reduce(lid);
    let mean = red0[0] / f32(m);
    workgroupBarrier();
    var q = 0.0;
    if (live) {
        for (var e = lid; e < m; e = e + 256u) {
            let d = x[at(c, e)] - mean;
            q = q + d * d;
        }
    }
    red0[lid] = q;
    reduce(lid);
    if (live && lid == 0u) {
        store_stats(c, mean, red0[0] / f32(m), m);
    }
}

// Channel c's batch statistics (biased variance var_b over m values) into aux and the running state.
fn store_stats(c: u32, mean: f32, var_b: f32, m: u32) {
    aux[c] = mean;
    aux[p.channels + c] = 1.0 / sqrt(var_b + p.eps);
    let unbiased = select(var_b, var_b * f32(m) / f32(m - 1u), m > 1u);
    let k = p.momentum;
    state[p.mean_off + c] = (1.0 - k) * state[p.mean_off + c] + k * mean;
    state[p.var_off + c] = (1.0 - k) * state[p.var_off + c] + k * unbiased;
    if (c == 0u) {
        state[p.count_off] = state[p.count_off] + 1.0;
    }
}

// The feature of this invocation (64 per workgroup, workgroups on a 2-D grid).
fn feature(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}

@compute @workgroup_size(64, 1, 1)
fn bn_stats_flat(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = feature(gid, nwg);
    if (c >= p.channels) {
        return;
    }
    var s = 0.0;
    for (var n = 0u; n < p.batch; n = n + 1u) {
        s = s + x[n * p.channels + c];
    }
    let mean = s / f32(p.batch);
    var q = 0.0;
    for (var n = 0u; n < p.batch; n = n + 1u) {
        let d = x[n * p.channels + c] - mean;
        q = q + d * d;
    }
    store_stats(c, mean, q / f32(p.batch), p.batch);
}

// Channel c's sums of dy and dy * xhat into aux and the bias / weight gradients.
fn store_sums(c: u32, s_dy: f32, s_dyx: f32) {
    aux[2u * p.channels + c] = s_dy;
    aux[3u * p.channels + c] = s_dyx;
    grads[p.b_off + c] = s_dy;
    grads[p.w_off + c] = s_dyx;
}

@compute @workgroup_size(64, 1, 1)
fn bn_backward_reduce_flat(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = feature(gid, nwg);
    if (c >= p.channels) {
        return;
    }
    let mean = aux[c];
    let invstd = aux[p.channels + c];
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var n = 0u; n < p.batch; n = n + 1u) {
        let j = n * p.channels + c;
        let g = dy[j];
        s_dy = s_dy + g;
        s_dyx = s_dyx + g * (x[j] - mean) * invstd;
    }
    store_sums(c, s_dy, s_dyx);
}

fn scale_shift(c: u32) -> vec2<f32> {
    var mean: f32;
    var invstd: f32;
    if ((p.flags & FLAG_EVAL) != 0u) {
        mean = state[p.mean_off + c];
        invstd = 1.0 / sqrt(state[p.var_off + c] + p.eps);
    } else {
        mean = aux[c];
        invstd = aux[p.channels + c];
    }
    let scale = params[p.w_off + c] * invstd;
    return vec2<f32>(scale, params[p.b_off + c] - mean * scale);
}

@compute @workgroup_size(256, 1, 1)
fn bn_normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (i >= p.batch * p.channels * p.plane) {
        return;
    }
    let c = (i / p.plane) % p.channels;
    let ss = scale_shift(c);
    var y = x[i] * ss.x + ss.y;
    if ((p.flags & FLAG_RELU) != 0u) {
        y = max(y, 0.0);
    }
    dst[i] = y;
}

@compute @workgroup_size(256, 1, 1)
fn bn_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let c = channel(wid, nwg);
    let m = p.batch * p.plane;
    let live = c < p.channels;
    var s_dy = 0.0;
    var s_dyx = 0.0;
    if (live) {
        let mean = aux[c];
        let invstd = aux[p.channels + c];
        for (var e = lid; e < m; e = e + 256u) {
            let j = at(c, e);
            let g = dy[j];
            s_dy = s_dy + g;
            s_dyx = s_dyx + g * (x[j] - mean) * invstd;
        }
    }
    red0[lid] = s_dy;
    red1[lid] = s_dyx;
    reduce(lid);
    if (live && lid == 0u) {
        store_sums(c, red0[0], red1[0]);
    }
}

@compute @workgroup_size(256, 1, 1)
fn bn_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (i >= p.batch * p.channels * p.plane) {
        return;
    }
    let c = (i / p.plane) % p.channels;
    let m = f32(p.batch * p.plane);
    let mean = aux[c];
    let invstd = aux[p.channels + c];
    let xhat = (x[i] - mean) * invstd;
    let a = aux[2u * p.channels + c] / m;
    let b = aux[3u * p.channels + c] / m;
    var g = params[p.w_off + c] * invstd * (dy[i] - a - xhat * b);
    if ((p.flags & FLAG_MASK) != 0u && mask[i] <= 0.0) {
        g = 0.0;
    }
    dst[i] = g;
}

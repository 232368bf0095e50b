// Optimiser updates over the whole flat parameter vector in one dispatch (all tensors of a model live in
// one buffer). Formulas follow PyTorch, with L2 weight decay added to the gradient:
//   Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
//         with step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t), computed on the host in f64.
//   SGD:  buf = momentum buf + g; p -= lr buf   (plain g when momentum is 0)

struct Params {
    // Length of the flat parameter vector.
    n: u32,
    // First index updated: parameters before it are frozen (e.g. a pretrained body).
    start: u32,
    pad1: u32,
    pad2: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    bc2_sqrt: f32,
    weight_decay: f32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

// Each invocation updates PER_INVOCATION consecutive parameters (fewer workgroups: cheaper on llvmpipe).
const PER_INVOCATION: u32 = 8u;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return p.start + ((wid.y * nwg.x + wid.x) * 256u + lid) * PER_INVOCATION;
}

@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i0 = first_index(wid, nwg, lid);
    for (var i = i0; i < min(i0 + PER_INVOCATION, p.n); i = i + 1u) {
        adam_one(i);
    }
}

@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i0 = first_index(wid, nwg, lid);
    for (var i = i0; i < min(i0 + PER_INVOCATION, p.n); i = i + 1u) {
        sgd_one(i);
    }
}

fn adam_one(i: u32) {
    let g = grads[i] + p.weight_decay * params[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] - p.step_size * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
}

fn sgd_one(i: u32) {
    let g = grads[i] + p.weight_decay * params[i];
    var step = g;
    if (p.momentum != 0.0) {
        step = p.momentum * m[i] + g;
        m[i] = step;
    }
    params[i] = params[i] - p.lr * step;
}

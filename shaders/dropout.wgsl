// Inverted dropout over n floats: y = x * keep / (1 - p), where keep is a counter-based hash of the
// run's seed, the 1-based step, the node's salt and the element index (the same function as the CPU's
// in src/ops/dropout.rs, so both devices drop the same elements). Backward: dx = dy * keep / (1 - p),
// zeroed where the input (a ReLU output) is <= 0 with FLAG_MASK. Evaluation copies x.

struct Params {
    n: u32,
    flags: u32,
    // keep an element when its hash >= threshold (p * 2^32)
    threshold: u32,
    salt: u32,
    scale: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const FLAG_MASK: u32 = 4u;
const FLAG_EVAL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: x; backward: dy
@group(0) @binding(1) var<storage, read> src: array<f32>;
// forward: y; backward: dx
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// [seed low, seed high, step, 0]
@group(0) @binding(3) var<storage, read> step: array<u32>;
// backward: the input's ReLU mask
@group(0) @binding(4) var<storage, read> mask: array<f32>;

fn mix(v: u32) -> u32 {
    var x = v;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

fn kept(i: u32) -> bool {
    let key = mix(step[2] ^ mix(p.salt ^ mix(step[0] ^ mix(step[1]))));
    return mix(i ^ key) >= p.threshold;
}

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn dropout_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    if ((p.flags & FLAG_EVAL) != 0u) {
        dst[i] = src[i];
    } else {
        dst[i] = select(0.0, src[i] * p.scale, kept(i));
    }
}

@compute @workgroup_size(256, 1, 1)
fn dropout_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    var g = select(0.0, src[i] * p.scale, kept(i));
    if ((p.flags & FLAG_MASK) != 0u && mask[i] <= 0.0) {
        g = 0.0;
    }
    dst[i] = g;
}

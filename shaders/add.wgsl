// Elementwise add of two tensors (a residual block's branches) over n floats, and the gradient
// plumbing of a tensor read twice.
// add_forward:  y = a + b, ReLU'd with FLAG_RELU
// add_backward: dx = dy, zeroed where the input (a ReLU output) <= 0 with FLAG_MASK (one dispatch per
//               input: the add passes its gradient to both branches)
// accumulate:   dst += src (the executor sums the gradient slots of a tensor with several readers)

struct Params {
    n: u32,
    flags: u32,
    pad0: u32,
    pad1: u32,
}

const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: a; backward: dy; accumulate: src
@group(0) @binding(1) var<storage, read> src: array<f32>;
// forward: b; backward: the input's ReLU mask
@group(0) @binding(2) var<storage, read> other: array<f32>;
// forward: y; backward: dx; accumulate: dst
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn add_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        var y = src[i] + other[i];
        if ((p.flags & FLAG_RELU) != 0u) {
            y = max(y, 0.0);
        }
        dst[i] = y;
    }
}

@compute @workgroup_size(256, 1, 1)
fn add_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        var g = src[i];
        if ((p.flags & FLAG_MASK) != 0u && other[i] <= 0.0) {
            g = 0.0;
        }
        dst[i] = g;
    }
}

@compute @workgroup_size(256, 1, 1)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        dst[i] = dst[i] + src[i];
    }
}

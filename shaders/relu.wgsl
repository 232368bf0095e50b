// Stand-alone ReLU (one not fused into the op before it), elementwise over n floats.
// relu_forward:  y = max(x, 0)
// relu_backward: dx = dy where y > 0 (and, with FLAG_MASK, where the input, itself a ReLU output, > 0)

struct Params {
    n: u32,
    flags: u32,
    pad0: u32,
    pad1: u32,
}

const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: x; backward: dy
@group(0) @binding(1) var<storage, read> src: array<f32>;
// forward: y; backward: dx
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// backward: y
@group(0) @binding(3) var<storage, read> out: array<f32>;
// backward: the input's own ReLU mask
@group(0) @binding(4) var<storage, read> mask: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        dst[i] = max(src[i], 0.0);
    }
}

@compute @workgroup_size(256, 1, 1)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        var g = select(0.0, src[i], out[i] > 0.0);
        if ((p.flags & FLAG_MASK) != 0u && mask[i] <= 0.0) {
            g = 0.0;
        }
        dst[i] = g;
    }
}

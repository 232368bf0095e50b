// Global average pooling, NCHW: y[n, c] = mean over the plane of x[n, c, :, :]; backward
// dx[n, c, i] = dy[n, c] / plane (zeroed where the input, a ReLU output, is <= 0 with FLAG_MASK).
// Forward: one invocation per (n, c) sums its plane; backward: one invocation per input element.

struct Params {
    // batch * channels
    rows: u32,
    plane: u32,
    flags: u32,
    pad0: u32,
}

const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: x; backward: dy
@group(0) @binding(1) var<storage, read> src: array<f32>;
// forward: y; backward: dx
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// backward: the input's ReLU mask
@group(0) @binding(3) var<storage, read> mask: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn gap_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let r = index(wid, nwg, lid);
    if (r >= p.rows) {
        return;
    }
    var s = 0.0;
    let base = r * p.plane;
    for (var i = 0u; i < p.plane; i = i + 1u) {
        s = s + src[base + i];
    }
    dst[r] = s / f32(p.plane);
}

@compute @workgroup_size(256, 1, 1)
fn gap_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.rows * p.plane) {
        return;
    }
    var g = src[i / p.plane] / f32(p.plane);
    if ((p.flags & FLAG_MASK) != 0u && mask[i] <= 0.0) {
        g = 0.0;
    }
    dst[i] = g;
}

// 2-D pooling (no padding), NCHW. Max pooling records, per output, the flat index (iy * in_w + ix)
// of the winning input inside its channel plane; the backward pass gathers: each input element sums the
// output gradients of the windows that contain it (max: only where it was the recorded winner; average:
// dy / (k*k)). Ties in max pooling go to the first element in row-major order, as on the CPU.

struct Params {
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    flags: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const FLAG_MAX: u32 = 1u;
const FLAG_MASK: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: x; backward: dy
@group(0) @binding(1) var<storage, read> src: array<f32>;
// argmax per output (max pooling)
@group(0) @binding(2) var<storage, read_write> winner: array<u32>;
// forward: y; backward: dx
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
// backward: ReLU mask (the layer's input activation)
@group(0) @binding(4) var<storage, read> mask: array<f32>;

// Each invocation handles PER_INVOCATION consecutive elements: on llvmpipe every workgroup has a fixed
// scheduling cost, so fewer, fuller workgroups are faster for these cheap element-wise kernels.
const PER_INVOCATION: u32 = 8u;

fn first_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.y * nwg.x + wid.x) * 256u + lid) * PER_INVOCATION;
}

@compute @workgroup_size(256, 1, 1)
fn pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i0 = first_index(wid, nwg, lid);
    let total = p.batch * p.channels * p.out_h * p.out_w;
    for (var i = i0; i < min(i0 + PER_INVOCATION, total); i = i + 1u) {
        pool_forward_one(i);
    }
}

@compute @workgroup_size(256, 1, 1)
fn pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i0 = first_index(wid, nwg, lid);
    let total = p.batch * p.channels * p.in_h * p.in_w;
    for (var i = i0; i < min(i0 + PER_INVOCATION, total); i = i + 1u) {
        pool_backward_one(i);
    }
}

fn pool_forward_one(i: u32) {
    let out_plane = p.out_h * p.out_w;
    let plane = i / out_plane;
    let oy = (i % out_plane) / p.out_w;
    let ox = i % p.out_w;
    let base = plane * p.in_h * p.in_w;
    let y0 = oy * p.stride;
    let x0 = ox * p.stride;
    if ((p.flags & FLAG_MAX) != 0u) {
        var best = src[base + y0 * p.in_w + x0];
        var arg = y0 * p.in_w + x0;
        for (var ky = 0u; ky < p.k; ky = ky + 1u) {
            for (var kx = 0u; kx < p.k; kx = kx + 1u) {
                let at = (y0 + ky) * p.in_w + x0 + kx;
                let v = src[base + at];
                if (v > best) {
                    best = v;
                    arg = at;
                }
            }
        }
        dst[i] = best;
        winner[i] = arg;
    } else {
        var sum = 0.0;
        for (var ky = 0u; ky < p.k; ky = ky + 1u) {
            for (var kx = 0u; kx < p.k; kx = kx + 1u) {
                sum = sum + src[base + (y0 + ky) * p.in_w + x0 + kx];
            }
        }
        dst[i] = sum / f32(p.k * p.k);
    }
}

fn pool_backward_one(i: u32) {
    let in_plane = p.in_h * p.in_w;
    let plane = i / in_plane;
    let at = i % in_plane;
    let iy = at / p.in_w;
    let ix = at % p.in_w;
    // Windows oy with oy * stride <= iy < oy * stride + k, clipped to the output.
    var oy_lo = 0u;
    if (iy + 1u > p.k) {
        oy_lo = (iy + 1u - p.k + p.stride - 1u) / p.stride;
    }
    var ox_lo = 0u;
    if (ix + 1u > p.k) {
        ox_lo = (ix + 1u - p.k + p.stride - 1u) / p.stride;
    }
    let oy_hi = min(iy / p.stride, p.out_h - 1u);
    let ox_hi = min(ix / p.stride, p.out_w - 1u);
    let out_base = plane * p.out_h * p.out_w;
    let is_max = (p.flags & FLAG_MAX) != 0u;
    let inv_area = 1.0 / f32(p.k * p.k);
    var sum = 0.0;
    for (var oy = oy_lo; oy <= oy_hi; oy = oy + 1u) {
        for (var ox = ox_lo; ox <= ox_hi; ox = ox + 1u) {
            let o = out_base + oy * p.out_w + ox;
            if (is_max) {
                if (winner[o] == at) {
                    sum = sum + src[o];
                }
            } else {
                sum = sum + src[o] * inv_area;
            }
        }
    }
    if ((p.flags & FLAG_MASK) != 0u && mask[i] <= 0.0) {
        sum = 0.0;
    }
    dst[i] = sum;
}

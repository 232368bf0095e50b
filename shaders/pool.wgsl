// 2-D pooling (no padding), NCHW. Max pooling records, per output, the flat index (iy * in_w + ix)
// of the winning input inside its channel plane; the backward pass gathers: each input element sums the
// output gradients of the windows that contain it (max: only where it was the recorded winner; average:
// dy / (k*k)). Ties in max pooling go to the first element in row-major order, as on the CPU.
//
// One invocation per ROW (an output row forward, an input row backward): the row's plane and y are
// decoded once and x advances by counting, so the inner loops have no integer division (which llvmpipe
// executes lane by lane) and far fewer workgroups are launched.

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

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64, 1, 1)
fn pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = row_index(wid, nwg, lid);
    if (r >= p.batch * p.channels * p.out_h) {
        return;
    }
    let plane = r / p.out_h;
    let oy = r % p.out_h;
    let base = plane * p.in_h * p.in_w;
    let out_row = r * p.out_w;
    let y0 = oy * p.stride;
    let is_max = (p.flags & FLAG_MAX) != 0u;
    let inv_area = 1.0 / f32(p.k * p.k);
    var x0 = 0u;
    for (var ox = 0u; ox < p.out_w; ox = ox + 1u) {
        var best = src[base + y0 * p.in_w + x0];
        var arg = y0 * p.in_w + x0;
        var sum = 0.0;
        for (var ky = 0u; ky < p.k; ky = ky + 1u) {
            let line = (y0 + ky) * p.in_w + x0;
            for (var kx = 0u; kx < p.k; kx = kx + 1u) {
                let v = src[base + line + kx];
                sum = sum + v;
                if (v > best) {
                    best = v;
                    arg = line + kx;
                }
            }
        }
        if (is_max) {
            dst[out_row + ox] = best;
            winner[out_row + ox] = arg;
        } else {
            dst[out_row + ox] = sum * inv_area;
        }
        x0 = x0 + p.stride;
    }
}

@compute @workgroup_size(64, 1, 1)
fn pool_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = row_index(wid, nwg, lid);
    if (r >= p.batch * p.channels * p.in_h) {
        return;
    }
    let plane = r / p.in_h;
    let iy = r % p.in_h;
    // Output rows whose windows contain input row iy: oy * stride <= iy < oy * stride + k.
    var oy_lo = 0u;
    if (iy + 1u > p.k) {
        oy_lo = (iy + 1u - p.k + p.stride - 1u) / p.stride;
    }
    let oy_hi = min(iy / p.stride, p.out_h - 1u);
    let out_base = plane * p.out_h * p.out_w;
    let in_row = r * p.in_w;
    let is_max = (p.flags & FLAG_MAX) != 0u;
    let use_mask = (p.flags & FLAG_MASK) != 0u;
    let inv_area = 1.0 / f32(p.k * p.k);
    if (p.k == p.stride) {
        // Non-overlapping windows (the common 2x2/2 case): each input lies in at most one window.
        let oy = iy / p.k;
        var ox = 0u;
        var next = p.k;
        for (var ix = 0u; ix < p.in_w; ix = ix + 1u) {
            if (ix == next) {
                ox = ox + 1u;
                next = next + p.k;
            }
            var v = 0.0;
            if (oy < p.out_h && ox < p.out_w) {
                let o = out_base + oy * p.out_w + ox;
                if (is_max) {
                    if (winner[o] == iy * p.in_w + ix) {
                        v = src[o];
                    }
                } else {
                    v = src[o] * inv_area;
                }
            }
            if (use_mask && mask[in_row + ix] <= 0.0) {
                v = 0.0;
            }
            dst[in_row + ix] = v;
        }
        return;
    }
    // Output columns whose windows contain ix, maintained by counting as ix advances:
    // ox_lo = ceil((ix + 1 - k) / stride), ox_hi = floor(ix / stride) (clipped to the output).
    var ox_lo = 0u;
    var ox_hi = 0u;
    var lo_edge = p.k;      // ix at which ox_lo next increases: ox_lo * stride + k
    var hi_edge = p.stride; // ix at which ox_hi next increases: (ox_hi + 1) * stride
    for (var ix = 0u; ix < p.in_w; ix = ix + 1u) {
        if (ix == lo_edge) {
            ox_lo = ox_lo + 1u;
            lo_edge = lo_edge + p.stride;
        }
        if (ix == hi_edge) {
            ox_hi = ox_hi + 1u;
            hi_edge = hi_edge + p.stride;
        }
        let at = iy * p.in_w + ix;
        var sum = 0.0;
        for (var oy = oy_lo; oy <= oy_hi; oy = oy + 1u) {
            for (var ox = ox_lo; ox <= min(ox_hi, p.out_w - 1u); ox = ox + 1u) {
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
        if (use_mask && mask[in_row + ix] <= 0.0) {
            sum = 0.0;
        }
        dst[in_row + ix] = sum;
    }
}

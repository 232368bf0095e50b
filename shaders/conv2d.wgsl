// 2-D convolution (PyTorch Conv2d semantics: cross-correlation, zero padding, stride), NCHW, weight
// [out_c, in_c, kh, kw] and bias [out_c] at offsets w_off / b_off of the parameter buffer.
//
// conv2d_forward          implicit GEMM: rows = output channels, columns = (example, output position),
//                         reduction over (in channel, ky, kx); 8 output channels x 8 columns per
//                         invocation (each gathered input feeds 8 channels, each weight 8 columns),
//                         fused bias and ReLU. No im2col buffer, no workgroup memory, no barriers.
// conv2d_backward_input   gather: each input element sums w * dy over the outputs that read it; 4 input
//                         channels x 4 same-phase positions of a row per invocation (only the taps of
//                         that stride phase, consecutive dy reads); optional ReLU mask of the input. Used
//                         for strides > 1: with stride 1 the launcher runs conv2d_forward on dy with
//                         transposed, flipped weights instead (FLAG_FLIP_TRANSPOSE), which is faster.
// conv2d_backward_weight  8 output channels x 8 weight elements per invocation, reducing over one range
//                         of the batch (gid.z) into a partial sum; an extra tile column sums dy for the
//                         bias. conv2d_weight_reduce then adds the partials in order into the gradients.
//                         Split-K keeps enough invocations busy when out_c x k is small; no atomics.

struct Params {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    flags: u32,
    w_off: u32,
    b_off: u32,
    // backward_weight: the batch is split into this many ranges, each summed into its own partial.
    splits: u32,
    // Zero padding along x (pad is along y); they differ only for the flipped problem below.
    pad_w: u32,
    // Uniform-window variant: the float index of `a` / `b` at the start of the window bound at
    // binding 5 / 6 (0 with whole storage buffers).
    a_base: u32,
    b_base: u32,
    // The first example of this dispatch (forward) or its first batch split (backward_weight).
    n0: u32,
    pad3: u32,
}

const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;
// conv2d_forward computes the input gradient of a stride-1 convolution: a convolution of dy with the
// weights transposed (in <-> out channels) and flipped (ky -> kh-1-ky, kx -> kw-1-kx), padded by
// k-1-pad. Weights are read from the original layout.
const FLAG_FLIP_TRANSPOSE: u32 = 8u;
// No bias add (the input gradient has none).
const FLAG_NO_BIAS: u32 = 16u;
// An impossible coordinate for padding lanes past the end of the batch: every bounds check fails.
const FAR: i32 = -1000000;

@group(0) @binding(0) var<uniform> p: Params;
// forward: x; backward_input: dy; backward_weight: dy
@group(0) @binding(1) var<storage, read> a: array<f32>;
// forward, backward_input: parameters; backward_weight: x
@group(0) @binding(2) var<storage, read> b: array<f32>;
// forward: y; backward_input: dx; backward_weight: gradients
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// backward_input: the ReLU mask (the layer's input activation)
@group(0) @binding(4) var<storage, read> aux: array<f32>;

fn load_w(co: u32, ci: u32, ky: u32, kx: u32) -> f32 {
    if (co >= p.out_c || ci >= p.in_c) {
        return 0.0;
    }
    return b[p.w_off + ((co * p.in_c + ci) * p.kh + ky) * p.kw + kx];
}

// The loads of conv2d_forward and conv2d_backward_weight. The launcher's uniform-window variant (for
// software adapters, where a uniform-buffer load costs about a fifth of a storage-buffer load) replaces
// these two functions with reads of 64 KiB windows of the same buffers bound as uniform buffers at
// bindings 5 and 6, starting at float a_base / b_base; each dispatch then covers the examples that fit.
fn load_a(i: u32) -> f32 {
    return a[i];
}

fn load_b(i: u32) -> f32 {
    return b[i];
}

// Four consecutive output columns (example, position) of conv2d_forward: where each one's input window
// starts (FAR past the end of the batch), where its example's input starts, and where its output
// channel 0 is stored (NONE past the end).
struct Cols {
    iy0: vec4<i32>,
    ix0: vec4<i32>,
    xoff: vec4<u32>,
    yoff: vec4<u32>,
}

const NONE: u32 = 0xffffffffu;

// Decode columns n .. n + 3 (of n_total): one division per coordinate for the first, then counting,
// since llvmpipe runs integer division lane by lane.
fn decode_cols(n: u32, n_total: u32) -> Cols {
    let positions = p.out_h * p.out_w;
    var ex = n / positions;
    var oy = (n % positions) / p.out_w;
    var ox = n % p.out_w;
    var c = Cols(vec4<i32>(FAR), vec4<i32>(FAR), vec4<u32>(0u), vec4<u32>(NONE));
    for (var t = 0u; t < 4u; t = t + 1u) {
        if (n + t < n_total) {
            c.iy0[t] = i32(oy * p.stride) - i32(p.pad);
            c.ix0[t] = i32(ox * p.stride) - i32(p.pad_w);
            c.xoff[t] = ex * p.in_c * p.in_h * p.in_w;
            c.yoff[t] = ex * p.out_c * positions + oy * p.out_w + ox;
        }
        ox = ox + 1u;
        if (ox == p.out_w) {
            ox = 0u;
            oy = oy + 1u;
            if (oy == p.out_h) {
                oy = 0u;
                ex = ex + 1u;
            }
        }
    }
    return c;
}

// Start of each column's input row for input channel ci and kernel row ky, or -1 where it is padding.
fn row_offsets(c: Cols, ci: u32, ky: u32) -> vec4<i32> {
    var rowoff = vec4<i32>(-1);
    for (var t = 0u; t < 4u; t = t + 1u) {
        let iy = c.iy0[t] + i32(ky);
        if (iy >= 0 && iy < i32(p.in_h)) {
            rowoff[t] = i32(c.xoff[t] + ci * p.in_h * p.in_w) + iy * i32(p.in_w);
        }
    }
    return rowoff;
}

// The four columns' inputs at kernel column kx (0 in the padding).
fn gather_x(c: Cols, rowoff: vec4<i32>, kx: u32) -> vec4<f32> {
    var xv = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t = t + 1u) {
        let ix = c.ix0[t] + i32(kx);
        if (rowoff[t] >= 0 && ix >= 0 && ix < i32(p.in_w)) {
            xv[t] = load_a(u32(rowoff[t] + ix));
        }
    }
    return xv;
}

// Bias, ReLU and mask for output channel co of four columns, then the stores.
fn store_cols(cols: Cols, co: u32, v: vec4<f32>) {
    var bias = 0.0;
    if ((p.flags & FLAG_NO_BIAS) == 0u) {
        bias = b[p.b_off + co];
    }
    let positions = p.out_h * p.out_w;
    for (var t = 0u; t < 4u; t = t + 1u) {
        if (cols.yoff[t] == NONE) {
            break;
        }
        var o = v[t] + bias;
        if ((p.flags & FLAG_RELU) != 0u) {
            o = max(o, 0.0);
        }
        let idx = cols.yoff[t] + co * positions;
        if ((p.flags & FLAG_MASK) != 0u && aux[idx] <= 0.0) {
            o = 0.0;
        }
        c[idx] = o;
    }
}

@compute @workgroup_size(8, 8, 1)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    // This dispatch covers examples n0 .. n0 + batch; n counts (example, output position) pairs, 8
    // consecutive ones per invocation in two groups of four (ca, cb).
    let positions = p.out_h * p.out_w;
    let n_total = (p.n0 + p.batch) * positions;
    let n0 = p.n0 * positions + gid.x * 8u;
    let co0 = gid.y * 8u;
    if (n0 >= n_total || co0 >= p.out_c) {
        return;
    }
    let ca = decode_cols(n0, n_total);
    let cb = decode_cols(n0 + 4u, n_total);
    // Weight addressing. Normal: w[co, ci, ky, kx] at w_off + co*K + (ci*kh + ky)*kw + kx, so each output
    // channel's row advances by one per (ci, ky, kx) step. Flipped/transposed: the original weight
    // w[ci, co, kh-1-ky, kw-1-kx] (original out channel = this ci), which walks backwards within a
    // kernel window and jumps by out_c*kh*kw between channels.
    let flip = (p.flags & FLAG_FLIP_TRANSPOSE) != 0u;
    let kernel = p.kh * p.kw;
    let last_co = p.out_c - 1u;
    // Rows 0-3 in wlo, 4-7 in whi (clamped to the last channel; extra rows are dropped at the store).
    var wlo = vec4<u32>(0u);
    var whi = vec4<u32>(0u);
    for (var r = 0u; r < 8u; r = r + 1u) {
        let co = min(co0 + r, last_co);
        var start = p.w_off + co * p.in_c * kernel;
        if (flip) {
            start = p.w_off + co * kernel + kernel - 1u;
        }
        if (r < 4u) {
            wlo[r] = start;
        } else {
            whi[r - 4u] = start;
        }
    }
    // acc{r}{a|b}: output channel co0 + r, columns of ca / cb.
    var acc0a = vec4<f32>(0.0);
    var acc1a = vec4<f32>(0.0);
    var acc2a = vec4<f32>(0.0);
    var acc3a = vec4<f32>(0.0);
    var acc4a = vec4<f32>(0.0);
    var acc5a = vec4<f32>(0.0);
    var acc6a = vec4<f32>(0.0);
    var acc7a = vec4<f32>(0.0);
    var acc0b = vec4<f32>(0.0);
    var acc1b = vec4<f32>(0.0);
    var acc2b = vec4<f32>(0.0);
    var acc3b = vec4<f32>(0.0);
    var acc4b = vec4<f32>(0.0);
    var acc5b = vec4<f32>(0.0);
    var acc6b = vec4<f32>(0.0);
    var acc7b = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.in_c; ci = ci + 1u) {
        // Offset of this input channel's window in the weight rows.
        var wci = ci * kernel;
        if (flip) {
            wci = ci * p.out_c * kernel;
        }
        for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
            let rowa = row_offsets(ca, ci, ky);
            let rowb = row_offsets(cb, ci, ky);
            for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
                let xa = gather_x(ca, rowa, kx);
                let xb = gather_x(cb, rowb, kx);
                let step = ky * p.kw + kx;
                // Flipped weights walk backwards through the window: subtract instead of add.
                var lo = wlo + vec4<u32>(wci + step);
                var hi = whi + vec4<u32>(wci + step);
                if (flip) {
                    lo = wlo + vec4<u32>(wci) - vec4<u32>(step);
                    hi = whi + vec4<u32>(wci) - vec4<u32>(step);
                }
                let w0 = vec4<f32>(load_b(lo.x), load_b(lo.y), load_b(lo.z), load_b(lo.w));
                let w1 = vec4<f32>(load_b(hi.x), load_b(hi.y), load_b(hi.z), load_b(hi.w));
                acc0a = fma(vec4<f32>(w0.x), xa, acc0a);
                acc1a = fma(vec4<f32>(w0.y), xa, acc1a);
                acc2a = fma(vec4<f32>(w0.z), xa, acc2a);
                acc3a = fma(vec4<f32>(w0.w), xa, acc3a);
                acc4a = fma(vec4<f32>(w1.x), xa, acc4a);
                acc5a = fma(vec4<f32>(w1.y), xa, acc5a);
                acc6a = fma(vec4<f32>(w1.z), xa, acc6a);
                acc7a = fma(vec4<f32>(w1.w), xa, acc7a);
                acc0b = fma(vec4<f32>(w0.x), xb, acc0b);
                acc1b = fma(vec4<f32>(w0.y), xb, acc1b);
                acc2b = fma(vec4<f32>(w0.z), xb, acc2b);
                acc3b = fma(vec4<f32>(w0.w), xb, acc3b);
                acc4b = fma(vec4<f32>(w1.x), xb, acc4b);
                acc5b = fma(vec4<f32>(w1.y), xb, acc5b);
                acc6b = fma(vec4<f32>(w1.z), xb, acc6b);
                acc7b = fma(vec4<f32>(w1.w), xb, acc7b);
            }
        }
    }
    var acca = array<vec4<f32>, 8>(acc0a, acc1a, acc2a, acc3a, acc4a, acc5a, acc6a, acc7a);
    var accb = array<vec4<f32>, 8>(acc0b, acc1b, acc2b, acc3b, acc4b, acc5b, acc6b, acc7b);
    for (var r = 0u; r < 8u; r = r + 1u) {
        let co = co0 + r;
        if (co >= p.out_c) {
            break;
        }
        store_cols(ca, co, acca[r]);
        store_cols(cb, co, accb[r]);
    }
}

// One invocation: 4 input channels x 4 input positions of one row that share a stride phase.
// In padded coordinates px = ix + pad, write px = rx + stride * q with rx = px % stride: only taps
// kx = rx + stride * jx reach it, from output ox = q - jx. Lanes q0..q0+3 of one phase thus read 4
// consecutive dy values per tap and skip no taps: no per-lane division, no wasted iterations (the
// stride-2 3x3 case does 4 of 9 taps' work, against all 9 per lane with a branch each before).
// gid.x enumerates (example, iy, rx, q group); q covers every padded column, lanes outside the input
// are dropped at the store.
@compute @workgroup_size(8, 8, 1)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = p.stride;
    let qn = (p.in_w + 2u * p.pad + s - 1u) / s;
    let qgroups = (qn + 3u) / 4u;
    let per_row = s * qgroups;
    let total = p.batch * p.in_h * per_row;
    let ci0 = gid.y * 4u;
    if (gid.x >= total || ci0 >= p.in_c) {
        return;
    }
    let rowid = gid.x / per_row;
    let within = gid.x % per_row;
    let rx = within / qgroups;
    let q0 = (within % qgroups) * 4u;
    let n = rowid / p.in_h;
    let iy = rowid % p.in_h;
    let py = iy + p.pad;
    let ry = py % s;
    let qy = py / s;
    let positions = p.out_h * p.out_w;
    let dy0 = n * p.out_c * positions;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var co = 0u; co < p.out_c; co = co + 1u) {
        // Counters instead of (k - r) / s: llvmpipe runs integer division lane by lane.
        var jy = 0u;
        for (var ky = ry; ky < p.kh; ky = ky + s) {
            if (jy > qy || qy - jy >= p.out_h) {
                jy = jy + 1u;
                continue;
            }
            let row = dy0 + co * positions + (qy - jy) * p.out_w;
            jy = jy + 1u;
            var jx = 0u;
            for (var kx = rx; kx < p.kw; kx = kx + s) {
                var dv = vec4<f32>(0.0);
                for (var t = 0u; t < 4u; t = t + 1u) {
                    // ox = q0 + t - jx, in range [0, out_w).
                    let ox = i32(q0 + t) - i32(jx);
                    if (ox >= 0 && u32(ox) < p.out_w) {
                        dv[t] = a[row + u32(ox)];
                    }
                }
                acc0 = fma(vec4<f32>(load_w(co, ci0, ky, kx)), dv, acc0);
                acc1 = fma(vec4<f32>(load_w(co, ci0 + 1u, ky, kx)), dv, acc1);
                acc2 = fma(vec4<f32>(load_w(co, ci0 + 2u, ky, kx)), dv, acc2);
                acc3 = fma(vec4<f32>(load_w(co, ci0 + 3u, ky, kx)), dv, acc3);
                jx = jx + 1u;
            }
        }
    }
    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let in_plane = p.in_h * p.in_w;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let ci = ci0 + r;
        if (ci >= p.in_c) {
            break;
        }
        for (var t = 0u; t < 4u; t = t + 1u) {
            let px = rx + s * (q0 + t);
            if (px < p.pad || px >= p.in_w + p.pad) {
                continue;
            }
            let idx = (n * p.in_c + ci) * in_plane + iy * p.in_w + (px - p.pad);
            var v = acc[r][t];
            if ((p.flags & FLAG_MASK) != 0u && aux[idx] <= 0.0) {
                v = 0.0;
            }
            c[idx] = v;
        }
    }
}

// Four consecutive weight elements (ci, ky, kx) of conv2d_backward_weight, clamped at the end of the
// row (the extra ones are computed and dropped at the store).
struct Taps {
    // Offset of each element's input channel plane within an example.
    plane: vec4<u32>,
    ky: vec4<i32>,
    kx: vec4<i32>,
}

fn decode_taps(kk0: u32, k_total: u32) -> Taps {
    let kernel = p.kh * p.kw;
    var t = Taps(vec4<u32>(0u), vec4<i32>(0), vec4<i32>(0));
    for (var j = 0u; j < 4u; j = j + 1u) {
        let kk = min(kk0 + j, k_total - 1u);
        t.plane[j] = (kk / kernel) * p.in_h * p.in_w;
        t.ky[j] = i32((kk % kernel) / p.kw) - i32(p.pad);
        t.kx[j] = i32(kk % p.kw) - i32(p.pad);
    }
    return t;
}

// The four elements' inputs for output position (oy, ox) of the example whose x starts at xbase (0 in
// the padding).
fn gather_taps(t: Taps, xbase: u32, oy: i32, ox: i32) -> vec4<f32> {
    var xv = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j = j + 1u) {
        let iy = oy + t.ky[j];
        let ix = ox + t.kx[j];
        if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
            xv[j] = load_b(xbase + t.plane[j] + u32(iy) * p.in_w + u32(ix));
        }
    }
    return xv;
}

// One-dimensional workgroups over (channel block, tile) so that small layers (the first conv has 3
// tiles) still fill whole SIMD vectors on llvmpipe instead of leaving most lanes of an 8x8 group dead.
@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let kernel = p.kh * p.kw;
    let k_total = p.in_c * kernel;
    let k_tiles = (k_total + 7u) / 8u;
    let tile = gid.x % (k_tiles + 1u);
    let co0 = (gid.x / (k_tiles + 1u)) * 8u;
    let split = p.n0 + gid.z;
    // (tile <= k_tiles by construction; tile == k_tiles is the bias column.)
    if (co0 >= p.out_c || split >= p.splits) {
        return;
    }
    let positions = p.out_h * p.out_w;
    let in_plane = p.in_h * p.in_w;
    let b_lo = split * p.batch / p.splits;
    let b_hi = (split + 1u) * p.batch / p.splits;
    let last_co = p.out_c - 1u;
    // Offsets of the 8 output channels' dy planes within an example (clamped; dropped at the store).
    let co = vec4<u32>(co0, min(co0 + 1u, last_co), min(co0 + 2u, last_co), min(co0 + 3u, last_co))
        * positions;
    let co_hi = vec4<u32>(min(co0 + 4u, last_co), min(co0 + 5u, last_co), min(co0 + 6u, last_co),
                          min(co0 + 7u, last_co)) * positions;
    let row = k_total + 1u;
    let out_base = split * p.out_c * row;
    if (tile == k_tiles) {
        // Bias tile: sums of dy over this batch range and all positions.
        var sums = vec4<f32>(0.0);
        var sums_hi = vec4<f32>(0.0);
        for (var n = b_lo; n < b_hi; n = n + 1u) {
            for (var q = 0u; q < positions; q = q + 1u) {
                let base = n * p.out_c * positions + q;
                sums = sums + vec4<f32>(load_a(base + co.x), load_a(base + co.y), load_a(base + co.z),
                                        load_a(base + co.w));
                sums_hi = sums_hi + vec4<f32>(load_a(base + co_hi.x), load_a(base + co_hi.y),
                                              load_a(base + co_hi.z), load_a(base + co_hi.w));
            }
        }
        for (var r = 0u; r < 8u; r = r + 1u) {
            if (co0 + r < p.out_c) {
                var v = 0.0;
                if (r < 4u) {
                    v = sums[r];
                } else {
                    v = sums_hi[r - 4u];
                }
                c[out_base + (co0 + r) * row + k_total] = v;
            }
        }
        return;
    }
    // The 8 weight elements of this tile in two groups of four (ta, tb).
    let ta = decode_taps(tile * 8u, k_total);
    let tb = decode_taps(tile * 8u + 4u, k_total);
    // acc{r}{a|b}: output channel co0 + r, weight elements of ta / tb.
    var acc0a = vec4<f32>(0.0);
    var acc1a = vec4<f32>(0.0);
    var acc2a = vec4<f32>(0.0);
    var acc3a = vec4<f32>(0.0);
    var acc4a = vec4<f32>(0.0);
    var acc5a = vec4<f32>(0.0);
    var acc6a = vec4<f32>(0.0);
    var acc7a = vec4<f32>(0.0);
    var acc0b = vec4<f32>(0.0);
    var acc1b = vec4<f32>(0.0);
    var acc2b = vec4<f32>(0.0);
    var acc3b = vec4<f32>(0.0);
    var acc4b = vec4<f32>(0.0);
    var acc5b = vec4<f32>(0.0);
    var acc6b = vec4<f32>(0.0);
    var acc7b = vec4<f32>(0.0);
    for (var n = b_lo; n < b_hi; n = n + 1u) {
        let dbase = n * p.out_c * positions;
        let xbase = n * p.in_c * in_plane;
        var q = dbase;
        for (var oy = 0u; oy < p.out_h; oy = oy + 1u) {
            let sy = i32(oy * p.stride);
            for (var ox = 0u; ox < p.out_w; ox = ox + 1u) {
                let sx = i32(ox * p.stride);
                let d0 = vec4<f32>(load_a(q + co.x), load_a(q + co.y), load_a(q + co.z), load_a(q + co.w));
                let d1 = vec4<f32>(load_a(q + co_hi.x), load_a(q + co_hi.y), load_a(q + co_hi.z),
                                   load_a(q + co_hi.w));
                q = q + 1u;
                let xa = gather_taps(ta, xbase, sy, sx);
                let xb = gather_taps(tb, xbase, sy, sx);
                acc0a = fma(vec4<f32>(d0.x), xa, acc0a);
                acc1a = fma(vec4<f32>(d0.y), xa, acc1a);
                acc2a = fma(vec4<f32>(d0.z), xa, acc2a);
                acc3a = fma(vec4<f32>(d0.w), xa, acc3a);
                acc4a = fma(vec4<f32>(d1.x), xa, acc4a);
                acc5a = fma(vec4<f32>(d1.y), xa, acc5a);
                acc6a = fma(vec4<f32>(d1.z), xa, acc6a);
                acc7a = fma(vec4<f32>(d1.w), xa, acc7a);
                acc0b = fma(vec4<f32>(d0.x), xb, acc0b);
                acc1b = fma(vec4<f32>(d0.y), xb, acc1b);
                acc2b = fma(vec4<f32>(d0.z), xb, acc2b);
                acc3b = fma(vec4<f32>(d0.w), xb, acc3b);
                acc4b = fma(vec4<f32>(d1.x), xb, acc4b);
                acc5b = fma(vec4<f32>(d1.y), xb, acc5b);
                acc6b = fma(vec4<f32>(d1.z), xb, acc6b);
                acc7b = fma(vec4<f32>(d1.w), xb, acc7b);
            }
        }
    }
    var acca = array<vec4<f32>, 8>(acc0a, acc1a, acc2a, acc3a, acc4a, acc5a, acc6a, acc7a);
    var accb = array<vec4<f32>, 8>(acc0b, acc1b, acc2b, acc3b, acc4b, acc5b, acc6b, acc7b);
    for (var r = 0u; r < 8u; r = r + 1u) {
        if (co0 + r >= p.out_c) {
            break;
        }
        let base = out_base + (co0 + r) * row + tile * 8u;
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (tile * 8u + j < k_total) {
                c[base + j] = acca[r][j];
            }
            if (tile * 8u + 4u + j < k_total) {
                c[base + 4u + j] = accb[r][j];
            }
        }
    }
}

// Sum the per-split partials [splits, out_c, k + 1] (read through `a`) into the weight and bias
// gradients in `c`, in split order.
@compute @workgroup_size(64, 1, 1)
fn conv2d_weight_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid;
    let k_total = p.in_c * p.kh * p.kw;
    let row = k_total + 1u;
    let total = p.out_c * row;
    if (i >= total) {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
        sum = sum + a[s * total + i];
    }
    let co = i / row;
    let kk = i % row;
    if (kk == k_total) {
        if ((p.flags & FLAG_NO_BIAS) == 0u) {
            c[p.b_off + co] = sum;
        }
    } else {
        c[p.w_off + co * k_total + kk] = sum;
    }
}

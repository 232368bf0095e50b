// General strided matrix multiply with fused epilogues: C[m, n] = A[m, k] * B[k, n].
//
// A and B are read through (offset, row stride, column stride), so one kernel covers the three products a
// linear layer needs without transposing anything in memory:
//   forward          Y  = X  * W^T   A = X  [batch, in]  (rs in, cs 1)   B = W^T (rs 1, cs in)
//   backward input   dX = dY * W     A = dY [batch, out] (rs out, cs 1)  B = W   (rs in, cs 1)
//   backward weight  dW = dY^T * X   A = dY^T (rs 1, cs out)             B = X   (rs in, cs 1)
//
// Each invocation computes a 4x4 block of C in registers with no workgroup memory and no barriers: on
// llvmpipe (lavapipe) barriers turn a shader into coroutines, and per-invocation register tiles are several
// times faster than shared-memory tiling. Every load and store is bounds-guarded, so m, n, k need not be
// multiples of anything.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    // FLAG_BIAS: offset of the bias in `aux`. FLAG_BIAS_GRAD: offset in `c` where the row sums go.
    bias_off: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    // FLAG_MASK: offset in `aux` of a [m, n] row-major mask (an activation; zero where it is <= 0).
    mask_off: u32,
    c_off: u32,
    c_rs: u32,
    pad0: u32,
    pad1: u32,
}

// c[i, j] += aux[bias_off + j]
const FLAG_BIAS: u32 = 1u;
// c = max(c, 0)
const FLAG_RELU: u32 = 2u;
// c[i, j] = 0 where aux[mask_off + i * n + j] <= 0 (ReLU backward fused into the product)
const FLAG_MASK: u32 = 4u;
// An extra virtual column j == n of B filled with ones: its results, the row sums of A, are written to
// c[bias_off + i]. Fuses the bias gradient (sum of dY over the batch) into the weight-gradient product.
const FLAG_BIAS_GRAD: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn load_a(i: u32, kk: u32) -> f32 {
    if (i >= p.m) {
        return 0.0;
    }
    return a[p.a_off + i * p.a_rs + kk * p.a_cs];
}

fn load_b(kk: u32, j: u32) -> f32 {
    if (j < p.n) {
        return b[p.b_off + kk * p.b_rs + j * p.b_cs];
    }
    if (j == p.n && (p.flags & FLAG_BIAS_GRAD) != 0u) {
        return 1.0;
    }
    return 0.0;
}

fn store_row(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= p.m) {
        return;
    }
    for (var t = 0u; t < 4u; t = t + 1u) {
        let j = j0 + t;
        var x = v[t];
        if (j < p.n) {
            if ((p.flags & FLAG_BIAS) != 0u) {
                x = x + aux[p.bias_off + j];
            }
            if ((p.flags & FLAG_RELU) != 0u) {
                x = max(x, 0.0);
            }
            if ((p.flags & FLAG_MASK) != 0u && aux[p.mask_off + i * p.n + j] <= 0.0) {
                x = 0.0;
            }
            c[p.c_off + i * p.c_rs + j] = x;
        } else if (j == p.n && (p.flags & FLAG_BIAS_GRAD) != 0u) {
            c[p.bias_off + i] = x;
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    var n_ext = p.n;
    if ((p.flags & FLAG_BIAS_GRAD) != 0u) {
        n_ext = p.n + 1u;
    }
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.m || j0 >= n_ext) {
        return;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let bv = vec4<f32>(load_b(kk, j0), load_b(kk, j0 + 1u), load_b(kk, j0 + 2u), load_b(kk, j0 + 3u));
        acc0 = fma(vec4<f32>(load_a(i0, kk)), bv, acc0);
        acc1 = fma(vec4<f32>(load_a(i0 + 1u, kk)), bv, acc1);
        acc2 = fma(vec4<f32>(load_a(i0 + 2u, kk)), bv, acc2);
        acc3 = fma(vec4<f32>(load_a(i0 + 3u, kk)), bv, acc3);
    }
    store_row(i0, j0, acc0);
    store_row(i0 + 1u, j0, acc1);
    store_row(i0 + 2u, j0, acc2);
    store_row(i0 + 3u, j0, acc3);
}

// The textbook shared-memory variant of `matmul`, kept for adapters where workgroup memory is fast
// (hardware GPUs): same parameters, epilogues and 32x32 tile per 8x8 workgroup, but each 32-deep slice
// of the reduction is first staged in workgroup memory (A transposed, so both operands are read
// along a row), then every invocation runs its 4x4 block out of it. A slice costs 16 + 16 global loads
// per invocation instead of 32 x 8 (each element is loaded once per workgroup, not once per invocation
// that needs it). On llvmpipe the barriers make this several times slower than `matmul` (measured in
// `wgtrain bench`); ops::matmul picks the variant per adapter.
const TILE: u32 = 32u;
var<workgroup> tile_a: array<f32, 1024>; // [kk][i]: A[i0 + i, k0 + kk]
var<workgroup> tile_b: array<f32, 1024>; // [kk][j]: B[k0 + kk, j0 + j]

@compute @workgroup_size(8, 8, 1)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i0 = wid.y * TILE;
    let j0 = wid.x * TILE;
    // No early return: every invocation must reach the barriers. Out-of-range loads read 0 (load_a,
    // load_b) and out-of-range stores are dropped (store_row).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let ti = lid.y * 4u;
    let tj = lid.x * 4u;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE) {
        // 1024 elements of each operand, 16 per invocation; consecutive invocations take consecutive
        // rows of the A slice and consecutive columns of the B slice.
        for (var s = 0u; s < 16u; s = s + 1u) {
            let e = s * 64u + li;
            let r = e % TILE;
            let kk = e / TILE;
            var av = 0.0;
            var bv = 0.0;
            if (k0 + kk < p.k) {
                av = load_a(i0 + r, k0 + kk);
                bv = load_b(k0 + kk, j0 + r);
            }
            tile_a[kk * TILE + r] = av;
            tile_b[kk * TILE + r] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk = kk + 1u) {
            let row = kk * TILE;
            let bv = vec4<f32>(tile_b[row + tj], tile_b[row + tj + 1u], tile_b[row + tj + 2u],
                               tile_b[row + tj + 3u]);
            acc0 = fma(vec4<f32>(tile_a[row + ti]), bv, acc0);
            acc1 = fma(vec4<f32>(tile_a[row + ti + 1u]), bv, acc1);
            acc2 = fma(vec4<f32>(tile_a[row + ti + 2u]), bv, acc2);
            acc3 = fma(vec4<f32>(tile_a[row + ti + 3u]), bv, acc3);
        }
        workgroupBarrier();
    }
    let i = i0 + ti;
    let j = j0 + tj;
    // store_row drops rows past m and columns past n (past n + 1 with FLAG_BIAS_GRAD).
    store_row(i, j, acc0);
    store_row(i + 1u, j, acc1);
    store_row(i + 2u, j, acc2);
    store_row(i + 3u, j, acc3);
}

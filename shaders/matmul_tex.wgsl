// Matrix products that read their operands from rgba32float textures, for software adapters.
//
// On llvmpipe (lavapipe) a texel fetch is several times cheaper than a storage-buffer load (a storage
// load is compiled as a per-lane loop with bounds checks; see docs/BENCHMARKS.md), and loads, not FMAs,
// bound a matmul there. So each operand is first packed into a texture (pack_tex.wgsl: texel (c / 4, r)
// holds M[r, c .. c + 4], zero-padded past the last column), and each invocation then computes a 16x16
// block of C in registers (64 vec4 accumulators): per 4-wide step of the reduction it fetches 16 + 16
// texels and does 1,024 multiply-adds. Measured on a 2-core Zen 5 host (docs/BENCHMARKS.md): 512³ at
// 35 GFLOP/s with packing (`wgtrain bench`) against 12 for the 4x4-block storage kernel of
// matmul_vec4.wgsl; in a scratch probe, 16x16 blocks beat 8x8 and 16x8 ones. Hardware GPUs keep the
// storage kernels: 256 accumulators per invocation would spill there (expected, not measured).
//
// The epilogues: bias (+ ReLU) in matmul_tex_nt, the ReLU-backward mask in matmul_tex_nn, the bias
// gradient in matmul_tex_tn, as in matmul.wgsl but split so each kernel compiles only its own.
//
//   matmul_tex_nt  C = A · Bᵀ   A [m, k], B [n, k]   forward Y = X Wᵀ
//   matmul_tex_nn  C = A · B    A [m, k], B [k, n]   backward input dX = dY W
//   matmul_tex_tn  C = Aᵀ · B   A [k, m], B [k, n]   backward weight dW = dYᵀ X (+ bias gradient)

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    // FLAG_BIAS: offset of the bias in `aux`. FLAG_BIAS_GRAD: offset in `c` where the sums go.
    bias_off: u32,
    c_off: u32,
    c_rs: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
    pad4: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;
// matmul_tex_tn only: the column sums of A (the bias gradient, sum of dY over the batch) are written to
// c[bias_off + i] by the invocations of one extra block column.
const FLAG_BIAS_GRAD: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ta: texture_2d<f32>;
@group(0) @binding(2) var tb: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// matmul_tex_nn with FLAG_MASK: the ReLU output whose mask applies, packed like the operands.
@group(0) @binding(5) var tm: texture_2d<f32>;

// The epilogue's staging area: each invocation parks its 64 accumulators in its own 64 slots, then
// stores them to C in a loop. Written out, the 64 guarded stores (each a per-lane loop on llvmpipe) made
// each kernel's first-dispatch compile take 0.8-1.1 s; staged, one store site compiles in 0.3-0.5 s,
// with the same throughput (scratch probe, Zen 5). A private array instead of workgroup memory compiled
// in ~4 s. No barrier is needed: no invocation reads another's slots.
var<workgroup> stage: array<vec4<f32>, 512>;

// Texel (x, y) of t, with y clamped to the matrix's last row (clamped rows are never stored).
fn fetch(t: texture_2d<f32>, x: u32, y: u32, rows: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(x, min(y, rows - 1u)), 0);
}

// C[i, j0 .. j0 + 4] = v; columns past n are dropped.
fn store_row(i: u32, j0: u32, v: vec4<f32>) {
    let base = p.c_off + i * p.c_rs + j0;
    if (i < p.m) {
        if (j0 < p.n) {
            c[base] = v.x;
        }
        if (j0 + 1u < p.n) {
            c[base + 1u] = v.y;
        }
        if (j0 + 2u < p.n) {
            c[base + 2u] = v.z;
        }
        if (j0 + 3u < p.n) {
            c[base + 3u] = v.w;
        }
    }
}

// The epilogues, each used by the one kernel that needs it. They are inlined 64 times per kernel and
// llvmpipe's compile time grows with every storage-buffer access in them (each becomes a per-lane loop),
// so the bias is added when the accumulators start, and the mask is a texel fetch.
fn store_relu(i: u32, j0: u32, v: vec4<f32>) {
    store_row(i, j0, select(v, max(v, vec4<f32>(0.0)), (p.flags & FLAG_RELU) != 0u));
}

fn store_masked(i: u32, j0: u32, v: vec4<f32>) {
    let m = textureLoad(tm, vec2<u32>(j0 / 4u, min(i, p.m - 1u)), 0);
    let off = (m <= vec4<f32>(0.0)) & vec4<bool>((p.flags & FLAG_MASK) != 0u);
    store_row(i, j0, select(v, vec4<f32>(0.0), off));
}

// Four bias values from aux[bias_off + j0 ..] (zeros without FLAG_BIAS): the accumulators' start.
fn bias4(j0: u32) -> vec4<f32> {
    if ((p.flags & FLAG_BIAS) == 0u) {
        return vec4<f32>(0.0);
    }
    // Past column n these read other parameters (or nothing: loads are bounds-checked); such columns
    // are never stored.
    let o = p.bias_off + j0;
    return vec4<f32>(aux[o], aux[o + 1u], aux[o + 2u], aux[o + 3u]);
}

// (a·b0, a·b1, a·b2, a·b3)
fn dot4(a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(a, b0), dot(a, b1), dot(a, b2), dot(a, b3));
}

// The bias gradient for rows i0 .. i0 + 15 of C: sums of A's columns i0 .. over the reduction.
fn bias_grad(i0: u32, lid: u32) {
    let xa = i0 / 4u;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var q = 0u; q < p.k; q = q + 1u) {
        s0 = s0 + fetch(ta, xa, q, p.k);
        s1 = s1 + fetch(ta, xa + 1u, q, p.k);
        s2 = s2 + fetch(ta, xa + 2u, q, p.k);
        s3 = s3 + fetch(ta, xa + 3u, q, p.k);
    }
    // Staged like the products' epilogues (a private array here compiles slowly on llvmpipe).
    let b0 = lid * 64u;
    stage[b0] = s0;
    stage[b0 + 1u] = s1;
    stage[b0 + 2u] = s2;
    stage[b0 + 3u] = s3;
    for (var r = 0u; r < 16u; r = r + 1u) {
        if (i0 + r < p.m) {
            c[p.bias_off + i0 + r] = stage[b0 + r / 4u][r % 4u];
        }
    }
}

// C[i, j] = sum_q A[i, q] B[j, q]: per texel column q of both, 16 texels of B (rows j0 ..) and, row
// by row, one texel of A, each giving four dot products per group of four columns.
@compute @workgroup_size(8, 1, 1)
fn matmul_tex_nt(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i0 = gid.y * 16u;
    let j0 = gid.x * 16u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    let k4 = (p.k + 3u) / 4u;
    let ra0 = min(i0 + 0u, p.m - 1u);
    let ra1 = min(i0 + 1u, p.m - 1u);
    let ra2 = min(i0 + 2u, p.m - 1u);
    let ra3 = min(i0 + 3u, p.m - 1u);
    let ra4 = min(i0 + 4u, p.m - 1u);
    let ra5 = min(i0 + 5u, p.m - 1u);
    let ra6 = min(i0 + 6u, p.m - 1u);
    let ra7 = min(i0 + 7u, p.m - 1u);
    let ra8 = min(i0 + 8u, p.m - 1u);
    let ra9 = min(i0 + 9u, p.m - 1u);
    let ra10 = min(i0 + 10u, p.m - 1u);
    let ra11 = min(i0 + 11u, p.m - 1u);
    let ra12 = min(i0 + 12u, p.m - 1u);
    let ra13 = min(i0 + 13u, p.m - 1u);
    let ra14 = min(i0 + 14u, p.m - 1u);
    let ra15 = min(i0 + 15u, p.m - 1u);
    let rb0 = min(j0 + 0u, p.n - 1u);
    let rb1 = min(j0 + 1u, p.n - 1u);
    let rb2 = min(j0 + 2u, p.n - 1u);
    let rb3 = min(j0 + 3u, p.n - 1u);
    let rb4 = min(j0 + 4u, p.n - 1u);
    let rb5 = min(j0 + 5u, p.n - 1u);
    let rb6 = min(j0 + 6u, p.n - 1u);
    let rb7 = min(j0 + 7u, p.n - 1u);
    let rb8 = min(j0 + 8u, p.n - 1u);
    let rb9 = min(j0 + 9u, p.n - 1u);
    let rb10 = min(j0 + 10u, p.n - 1u);
    let rb11 = min(j0 + 11u, p.n - 1u);
    let rb12 = min(j0 + 12u, p.n - 1u);
    let rb13 = min(j0 + 13u, p.n - 1u);
    let rb14 = min(j0 + 14u, p.n - 1u);
    let rb15 = min(j0 + 15u, p.n - 1u);
    let bias0 = bias4(j0 + 0u);
    let bias1 = bias4(j0 + 4u);
    let bias2 = bias4(j0 + 8u);
    let bias3 = bias4(j0 + 12u);
    var acc0_0 = bias0;
    var acc0_1 = bias1;
    var acc0_2 = bias2;
    var acc0_3 = bias3;
    var acc1_0 = bias0;
    var acc1_1 = bias1;
    var acc1_2 = bias2;
    var acc1_3 = bias3;
    var acc2_0 = bias0;
    var acc2_1 = bias1;
    var acc2_2 = bias2;
    var acc2_3 = bias3;
    var acc3_0 = bias0;
    var acc3_1 = bias1;
    var acc3_2 = bias2;
    var acc3_3 = bias3;
    var acc4_0 = bias0;
    var acc4_1 = bias1;
    var acc4_2 = bias2;
    var acc4_3 = bias3;
    var acc5_0 = bias0;
    var acc5_1 = bias1;
    var acc5_2 = bias2;
    var acc5_3 = bias3;
    var acc6_0 = bias0;
    var acc6_1 = bias1;
    var acc6_2 = bias2;
    var acc6_3 = bias3;
    var acc7_0 = bias0;
    var acc7_1 = bias1;
    var acc7_2 = bias2;
    var acc7_3 = bias3;
    var acc8_0 = bias0;
    var acc8_1 = bias1;
    var acc8_2 = bias2;
    var acc8_3 = bias3;
    var acc9_0 = bias0;
    var acc9_1 = bias1;
    var acc9_2 = bias2;
    var acc9_3 = bias3;
    var acc10_0 = bias0;
    var acc10_1 = bias1;
    var acc10_2 = bias2;
    var acc10_3 = bias3;
    var acc11_0 = bias0;
    var acc11_1 = bias1;
    var acc11_2 = bias2;
    var acc11_3 = bias3;
    var acc12_0 = bias0;
    var acc12_1 = bias1;
    var acc12_2 = bias2;
    var acc12_3 = bias3;
    var acc13_0 = bias0;
    var acc13_1 = bias1;
    var acc13_2 = bias2;
    var acc13_3 = bias3;
    var acc14_0 = bias0;
    var acc14_1 = bias1;
    var acc14_2 = bias2;
    var acc14_3 = bias3;
    var acc15_0 = bias0;
    var acc15_1 = bias1;
    var acc15_2 = bias2;
    var acc15_3 = bias3;
    for (var q = 0u; q < k4; q = q + 1u) {
        let b0 = textureLoad(tb, vec2<u32>(q, rb0), 0);
        let b1 = textureLoad(tb, vec2<u32>(q, rb1), 0);
        let b2 = textureLoad(tb, vec2<u32>(q, rb2), 0);
        let b3 = textureLoad(tb, vec2<u32>(q, rb3), 0);
        let b4 = textureLoad(tb, vec2<u32>(q, rb4), 0);
        let b5 = textureLoad(tb, vec2<u32>(q, rb5), 0);
        let b6 = textureLoad(tb, vec2<u32>(q, rb6), 0);
        let b7 = textureLoad(tb, vec2<u32>(q, rb7), 0);
        let b8 = textureLoad(tb, vec2<u32>(q, rb8), 0);
        let b9 = textureLoad(tb, vec2<u32>(q, rb9), 0);
        let b10 = textureLoad(tb, vec2<u32>(q, rb10), 0);
        let b11 = textureLoad(tb, vec2<u32>(q, rb11), 0);
        let b12 = textureLoad(tb, vec2<u32>(q, rb12), 0);
        let b13 = textureLoad(tb, vec2<u32>(q, rb13), 0);
        let b14 = textureLoad(tb, vec2<u32>(q, rb14), 0);
        let b15 = textureLoad(tb, vec2<u32>(q, rb15), 0);
        let a0 = textureLoad(ta, vec2<u32>(q, ra0), 0);
        acc0_0 = acc0_0 + dot4(a0, b0, b1, b2, b3);
        acc0_1 = acc0_1 + dot4(a0, b4, b5, b6, b7);
        acc0_2 = acc0_2 + dot4(a0, b8, b9, b10, b11);
        acc0_3 = acc0_3 + dot4(a0, b12, b13, b14, b15);
        let a1 = textureLoad(ta, vec2<u32>(q, ra1), 0);
        acc1_0 = acc1_0 + dot4(a1, b0, b1, b2, b3);
        acc1_1 = acc1_1 + dot4(a1, b4, b5, b6, b7);
        acc1_2 = acc1_2 + dot4(a1, b8, b9, b10, b11);
        acc1_3 = acc1_3 + dot4(a1, b12, b13, b14, b15);
        let a2 = textureLoad(ta, vec2<u32>(q, ra2), 0);
        acc2_0 = acc2_0 + dot4(a2, b0, b1, b2, b3);
        acc2_1 = acc2_1 + dot4(a2, b4, b5, b6, b7);
        acc2_2 = acc2_2 + dot4(a2, b8, b9, b10, b11);
        acc2_3 = acc2_3 + dot4(a2, b12, b13, b14, b15);
        let a3 = textureLoad(ta, vec2<u32>(q, ra3), 0);
        acc3_0 = acc3_0 + dot4(a3, b0, b1, b2, b3);
        acc3_1 = acc3_1 + dot4(a3, b4, b5, b6, b7);
        acc3_2 = acc3_2 + dot4(a3, b8, b9, b10, b11);
        acc3_3 = acc3_3 + dot4(a3, b12, b13, b14, b15);
        let a4 = textureLoad(ta, vec2<u32>(q, ra4), 0);
        acc4_0 = acc4_0 + dot4(a4, b0, b1, b2, b3);
        acc4_1 = acc4_1 + dot4(a4, b4, b5, b6, b7);
        acc4_2 = acc4_2 + dot4(a4, b8, b9, b10, b11);
        acc4_3 = acc4_3 + dot4(a4, b12, b13, b14, b15);
        let a5 = textureLoad(ta, vec2<u32>(q, ra5), 0);
        acc5_0 = acc5_0 + dot4(a5, b0, b1, b2, b3);
        acc5_1 = acc5_1 + dot4(a5, b4, b5, b6, b7);
        acc5_2 = acc5_2 + dot4(a5, b8, b9, b10, b11);
        acc5_3 = acc5_3 + dot4(a5, b12, b13, b14, b15);
        let a6 = textureLoad(ta, vec2<u32>(q, ra6), 0);
        acc6_0 = acc6_0 + dot4(a6, b0, b1, b2, b3);
        acc6_1 = acc6_1 + dot4(a6, b4, b5, b6, b7);
        acc6_2 = acc6_2 + dot4(a6, b8, b9, b10, b11);
        acc6_3 = acc6_3 + dot4(a6, b12, b13, b14, b15);
        let a7 = textureLoad(ta, vec2<u32>(q, ra7), 0);
        acc7_0 = acc7_0 + dot4(a7, b0, b1, b2, b3);
        acc7_1 = acc7_1 + dot4(a7, b4, b5, b6, b7);
        acc7_2 = acc7_2 + dot4(a7, b8, b9, b10, b11);
        acc7_3 = acc7_3 + dot4(a7, b12, b13, b14, b15);
        let a8 = textureLoad(ta, vec2<u32>(q, ra8), 0);
        acc8_0 = acc8_0 + dot4(a8, b0, b1, b2, b3);
        acc8_1 = acc8_1 + dot4(a8, b4, b5, b6, b7);
        acc8_2 = acc8_2 + dot4(a8, b8, b9, b10, b11);
        acc8_3 = acc8_3 + dot4(a8, b12, b13, b14, b15);
        let a9 = textureLoad(ta, vec2<u32>(q, ra9), 0);
        acc9_0 = acc9_0 + dot4(a9, b0, b1, b2, b3);
        acc9_1 = acc9_1 + dot4(a9, b4, b5, b6, b7);
        acc9_2 = acc9_2 + dot4(a9, b8, b9, b10, b11);
        acc9_3 = acc9_3 + dot4(a9, b12, b13, b14, b15);
        let a10 = textureLoad(ta, vec2<u32>(q, ra10), 0);
        acc10_0 = acc10_0 + dot4(a10, b0, b1, b2, b3);
        acc10_1 = acc10_1 + dot4(a10, b4, b5, b6, b7);
        acc10_2 = acc10_2 + dot4(a10, b8, b9, b10, b11);
        acc10_3 = acc10_3 + dot4(a10, b12, b13, b14, b15);
        let a11 = textureLoad(ta, vec2<u32>(q, ra11), 0);
        acc11_0 = acc11_0 + dot4(a11, b0, b1, b2, b3);
        acc11_1 = acc11_1 + dot4(a11, b4, b5, b6, b7);
        acc11_2 = acc11_2 + dot4(a11, b8, b9, b10, b11);
        acc11_3 = acc11_3 + dot4(a11, b12, b13, b14, b15);
        let a12 = textureLoad(ta, vec2<u32>(q, ra12), 0);
        acc12_0 = acc12_0 + dot4(a12, b0, b1, b2, b3);
        acc12_1 = acc12_1 + dot4(a12, b4, b5, b6, b7);
        acc12_2 = acc12_2 + dot4(a12, b8, b9, b10, b11);
        acc12_3 = acc12_3 + dot4(a12, b12, b13, b14, b15);
        let a13 = textureLoad(ta, vec2<u32>(q, ra13), 0);
        acc13_0 = acc13_0 + dot4(a13, b0, b1, b2, b3);
        acc13_1 = acc13_1 + dot4(a13, b4, b5, b6, b7);
        acc13_2 = acc13_2 + dot4(a13, b8, b9, b10, b11);
        acc13_3 = acc13_3 + dot4(a13, b12, b13, b14, b15);
        let a14 = textureLoad(ta, vec2<u32>(q, ra14), 0);
        acc14_0 = acc14_0 + dot4(a14, b0, b1, b2, b3);
        acc14_1 = acc14_1 + dot4(a14, b4, b5, b6, b7);
        acc14_2 = acc14_2 + dot4(a14, b8, b9, b10, b11);
        acc14_3 = acc14_3 + dot4(a14, b12, b13, b14, b15);
        let a15 = textureLoad(ta, vec2<u32>(q, ra15), 0);
        acc15_0 = acc15_0 + dot4(a15, b0, b1, b2, b3);
        acc15_1 = acc15_1 + dot4(a15, b4, b5, b6, b7);
        acc15_2 = acc15_2 + dot4(a15, b8, b9, b10, b11);
        acc15_3 = acc15_3 + dot4(a15, b12, b13, b14, b15);
    }
    let s0 = lid * 64u;
    stage[s0 + 0u] = acc0_0;
    stage[s0 + 1u] = acc0_1;
    stage[s0 + 2u] = acc0_2;
    stage[s0 + 3u] = acc0_3;
    stage[s0 + 4u] = acc1_0;
    stage[s0 + 5u] = acc1_1;
    stage[s0 + 6u] = acc1_2;
    stage[s0 + 7u] = acc1_3;
    stage[s0 + 8u] = acc2_0;
    stage[s0 + 9u] = acc2_1;
    stage[s0 + 10u] = acc2_2;
    stage[s0 + 11u] = acc2_3;
    stage[s0 + 12u] = acc3_0;
    stage[s0 + 13u] = acc3_1;
    stage[s0 + 14u] = acc3_2;
    stage[s0 + 15u] = acc3_3;
    stage[s0 + 16u] = acc4_0;
    stage[s0 + 17u] = acc4_1;
    stage[s0 + 18u] = acc4_2;
    stage[s0 + 19u] = acc4_3;
    stage[s0 + 20u] = acc5_0;
    stage[s0 + 21u] = acc5_1;
    stage[s0 + 22u] = acc5_2;
    stage[s0 + 23u] = acc5_3;
    stage[s0 + 24u] = acc6_0;
    stage[s0 + 25u] = acc6_1;
    stage[s0 + 26u] = acc6_2;
    stage[s0 + 27u] = acc6_3;
    stage[s0 + 28u] = acc7_0;
    stage[s0 + 29u] = acc7_1;
    stage[s0 + 30u] = acc7_2;
    stage[s0 + 31u] = acc7_3;
    stage[s0 + 32u] = acc8_0;
    stage[s0 + 33u] = acc8_1;
    stage[s0 + 34u] = acc8_2;
    stage[s0 + 35u] = acc8_3;
    stage[s0 + 36u] = acc9_0;
    stage[s0 + 37u] = acc9_1;
    stage[s0 + 38u] = acc9_2;
    stage[s0 + 39u] = acc9_3;
    stage[s0 + 40u] = acc10_0;
    stage[s0 + 41u] = acc10_1;
    stage[s0 + 42u] = acc10_2;
    stage[s0 + 43u] = acc10_3;
    stage[s0 + 44u] = acc11_0;
    stage[s0 + 45u] = acc11_1;
    stage[s0 + 46u] = acc11_2;
    stage[s0 + 47u] = acc11_3;
    stage[s0 + 48u] = acc12_0;
    stage[s0 + 49u] = acc12_1;
    stage[s0 + 50u] = acc12_2;
    stage[s0 + 51u] = acc12_3;
    stage[s0 + 52u] = acc13_0;
    stage[s0 + 53u] = acc13_1;
    stage[s0 + 54u] = acc13_2;
    stage[s0 + 55u] = acc13_3;
    stage[s0 + 56u] = acc14_0;
    stage[s0 + 57u] = acc14_1;
    stage[s0 + 58u] = acc14_2;
    stage[s0 + 59u] = acc14_3;
    stage[s0 + 60u] = acc15_0;
    stage[s0 + 61u] = acc15_1;
    stage[s0 + 62u] = acc15_2;
    stage[s0 + 63u] = acc15_3;
    for (var t = 0u; t < 64u; t = t + 1u) {
        store_relu(i0 + t / 4u, j0 + 4u * (t % 4u), stage[s0 + t]);
    }
}

// C[i, j] = sum_q A[i, q] B[q, j]: per texel column q of A, the four rows 4q .. 4q + 3 of B (16
// texels: columns j0 ..) and, row by row, one texel of A. Rows of B past k are clamped; the zero padding
// of A cancels them.
@compute @workgroup_size(8, 1, 1)
fn matmul_tex_nn(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i0 = gid.y * 16u;
    let j0 = gid.x * 16u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    let x0 = j0 / 4u;
    let k4 = (p.k + 3u) / 4u;
    let ra0 = min(i0 + 0u, p.m - 1u);
    let ra1 = min(i0 + 1u, p.m - 1u);
    let ra2 = min(i0 + 2u, p.m - 1u);
    let ra3 = min(i0 + 3u, p.m - 1u);
    let ra4 = min(i0 + 4u, p.m - 1u);
    let ra5 = min(i0 + 5u, p.m - 1u);
    let ra6 = min(i0 + 6u, p.m - 1u);
    let ra7 = min(i0 + 7u, p.m - 1u);
    let ra8 = min(i0 + 8u, p.m - 1u);
    let ra9 = min(i0 + 9u, p.m - 1u);
    let ra10 = min(i0 + 10u, p.m - 1u);
    let ra11 = min(i0 + 11u, p.m - 1u);
    let ra12 = min(i0 + 12u, p.m - 1u);
    let ra13 = min(i0 + 13u, p.m - 1u);
    let ra14 = min(i0 + 14u, p.m - 1u);
    let ra15 = min(i0 + 15u, p.m - 1u);
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc0_2 = vec4<f32>(0.0);
    var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc1_2 = vec4<f32>(0.0);
    var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc2_2 = vec4<f32>(0.0);
    var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc3_2 = vec4<f32>(0.0);
    var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc4_2 = vec4<f32>(0.0);
    var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc5_2 = vec4<f32>(0.0);
    var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc6_2 = vec4<f32>(0.0);
    var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc7_2 = vec4<f32>(0.0);
    var acc7_3 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc8_2 = vec4<f32>(0.0);
    var acc8_3 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc9_2 = vec4<f32>(0.0);
    var acc9_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc10_2 = vec4<f32>(0.0);
    var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc11_2 = vec4<f32>(0.0);
    var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc12_2 = vec4<f32>(0.0);
    var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc13_2 = vec4<f32>(0.0);
    var acc13_3 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc14_2 = vec4<f32>(0.0);
    var acc14_3 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc15_2 = vec4<f32>(0.0);
    var acc15_3 = vec4<f32>(0.0);
    for (var q = 0u; q < k4; q = q + 1u) {
        let b0_0 = fetch(tb, x0 + 0u, 4u * q + 0u, p.k);
        let b0_1 = fetch(tb, x0 + 1u, 4u * q + 0u, p.k);
        let b0_2 = fetch(tb, x0 + 2u, 4u * q + 0u, p.k);
        let b0_3 = fetch(tb, x0 + 3u, 4u * q + 0u, p.k);
        let b1_0 = fetch(tb, x0 + 0u, 4u * q + 1u, p.k);
        let b1_1 = fetch(tb, x0 + 1u, 4u * q + 1u, p.k);
        let b1_2 = fetch(tb, x0 + 2u, 4u * q + 1u, p.k);
        let b1_3 = fetch(tb, x0 + 3u, 4u * q + 1u, p.k);
        let b2_0 = fetch(tb, x0 + 0u, 4u * q + 2u, p.k);
        let b2_1 = fetch(tb, x0 + 1u, 4u * q + 2u, p.k);
        let b2_2 = fetch(tb, x0 + 2u, 4u * q + 2u, p.k);
        let b2_3 = fetch(tb, x0 + 3u, 4u * q + 2u, p.k);
        let b3_0 = fetch(tb, x0 + 0u, 4u * q + 3u, p.k);
        let b3_1 = fetch(tb, x0 + 1u, 4u * q + 3u, p.k);
        let b3_2 = fetch(tb, x0 + 2u, 4u * q + 3u, p.k);
        let b3_3 = fetch(tb, x0 + 3u, 4u * q + 3u, p.k);
        let a0 = textureLoad(ta, vec2<u32>(q, ra0), 0);
        acc0_0 = acc0_0 + a0.x * b0_0 + a0.y * b1_0 + a0.z * b2_0 + a0.w * b3_0;
        acc0_1 = acc0_1 + a0.x * b0_1 + a0.y * b1_1 + a0.z * b2_1 + a0.w * b3_1;
        acc0_2 = acc0_2 + a0.x * b0_2 + a0.y * b1_2 + a0.z * b2_2 + a0.w * b3_2;
        acc0_3 = acc0_3 + a0.x * b0_3 + a0.y * b1_3 + a0.z * b2_3 + a0.w * b3_3;
        let a1 = textureLoad(ta, vec2<u32>(q, ra1), 0);
        acc1_0 = acc1_0 + a1.x * b0_0 + a1.y * b1_0 + a1.z * b2_0 + a1.w * b3_0;
        acc1_1 = acc1_1 + a1.x * b0_1 + a1.y * b1_1 + a1.z * b2_1 + a1.w * b3_1;
        acc1_2 = acc1_2 + a1.x * b0_2 + a1.y * b1_2 + a1.z * b2_2 + a1.w * b3_2;
        acc1_3 = acc1_3 + a1.x * b0_3 + a1.y * b1_3 + a1.z * b2_3 + a1.w * b3_3;
        let a2 = textureLoad(ta, vec2<u32>(q, ra2), 0);
        acc2_0 = acc2_0 + a2.x * b0_0 + a2.y * b1_0 + a2.z * b2_0 + a2.w * b3_0;
        acc2_1 = acc2_1 + a2.x * b0_1 + a2.y * b1_1 + a2.z * b2_1 + a2.w * b3_1;
        acc2_2 = acc2_2 + a2.x * b0_2 + a2.y * b1_2 + a2.z * b2_2 + a2.w * b3_2;
        acc2_3 = acc2_3 + a2.x * b0_3 + a2.y * b1_3 + a2.z * b2_3 + a2.w * b3_3;
        let a3 = textureLoad(ta, vec2<u32>(q, ra3), 0);
        acc3_0 = acc3_0 + a3.x * b0_0 + a3.y * b1_0 + a3.z * b2_0 + a3.w * b3_0;
        acc3_1 = acc3_1 + a3.x * b0_1 + a3.y * b1_1 + a3.z * b2_1 + a3.w * b3_1;
        acc3_2 = acc3_2 + a3.x * b0_2 + a3.y * b1_2 + a3.z * b2_2 + a3.w * b3_2;
        acc3_3 = acc3_3 + a3.x * b0_3 + a3.y * b1_3 + a3.z * b2_3 + a3.w * b3_3;
        let a4 = textureLoad(ta, vec2<u32>(q, ra4), 0);
        acc4_0 = acc4_0 + a4.x * b0_0 + a4.y * b1_0 + a4.z * b2_0 + a4.w * b3_0;
        acc4_1 = acc4_1 + a4.x * b0_1 + a4.y * b1_1 + a4.z * b2_1 + a4.w * b3_1;
        acc4_2 = acc4_2 + a4.x * b0_2 + a4.y * b1_2 + a4.z * b2_2 + a4.w * b3_2;
        acc4_3 = acc4_3 + a4.x * b0_3 + a4.y * b1_3 + a4.z * b2_3 + a4.w * b3_3;
        let a5 = textureLoad(ta, vec2<u32>(q, ra5), 0);
        acc5_0 = acc5_0 + a5.x * b0_0 + a5.y * b1_0 + a5.z * b2_0 + a5.w * b3_0;
        acc5_1 = acc5_1 + a5.x * b0_1 + a5.y * b1_1 + a5.z * b2_1 + a5.w * b3_1;
        acc5_2 = acc5_2 + a5.x * b0_2 + a5.y * b1_2 + a5.z * b2_2 + a5.w * b3_2;
        acc5_3 = acc5_3 + a5.x * b0_3 + a5.y * b1_3 + a5.z * b2_3 + a5.w * b3_3;
        let a6 = textureLoad(ta, vec2<u32>(q, ra6), 0);
        acc6_0 = acc6_0 + a6.x * b0_0 + a6.y * b1_0 + a6.z * b2_0 + a6.w * b3_0;
        acc6_1 = acc6_1 + a6.x * b0_1 + a6.y * b1_1 + a6.z * b2_1 + a6.w * b3_1;
        acc6_2 = acc6_2 + a6.x * b0_2 + a6.y * b1_2 + a6.z * b2_2 + a6.w * b3_2;
        acc6_3 = acc6_3 + a6.x * b0_3 + a6.y * b1_3 + a6.z * b2_3 + a6.w * b3_3;
        let a7 = textureLoad(ta, vec2<u32>(q, ra7), 0);
        acc7_0 = acc7_0 + a7.x * b0_0 + a7.y * b1_0 + a7.z * b2_0 + a7.w * b3_0;
        acc7_1 = acc7_1 + a7.x * b0_1 + a7.y * b1_1 + a7.z * b2_1 + a7.w * b3_1;
        acc7_2 = acc7_2 + a7.x * b0_2 + a7.y * b1_2 + a7.z * b2_2 + a7.w * b3_2;
        acc7_3 = acc7_3 + a7.x * b0_3 + a7.y * b1_3 + a7.z * b2_3 + a7.w * b3_3;
        let a8 = textureLoad(ta, vec2<u32>(q, ra8), 0);
        acc8_0 = acc8_0 + a8.x * b0_0 + a8.y * b1_0 + a8.z * b2_0 + a8.w * b3_0;
        acc8_1 = acc8_1 + a8.x * b0_1 + a8.y * b1_1 + a8.z * b2_1 + a8.w * b3_1;
        acc8_2 = acc8_2 + a8.x * b0_2 + a8.y * b1_2 + a8.z * b2_2 + a8.w * b3_2;
        acc8_3 = acc8_3 + a8.x * b0_3 + a8.y * b1_3 + a8.z * b2_3 + a8.w * b3_3;
        let a9 = textureLoad(ta, vec2<u32>(q, ra9), 0);
        acc9_0 = acc9_0 + a9.x * b0_0 + a9.y * b1_0 + a9.z * b2_0 + a9.w * b3_0;
        acc9_1 = acc9_1 + a9.x * b0_1 + a9.y * b1_1 + a9.z * b2_1 + a9.w * b3_1;
        acc9_2 = acc9_2 + a9.x * b0_2 + a9.y * b1_2 + a9.z * b2_2 + a9.w * b3_2;
        acc9_3 = acc9_3 + a9.x * b0_3 + a9.y * b1_3 + a9.z * b2_3 + a9.w * b3_3;
        let a10 = textureLoad(ta, vec2<u32>(q, ra10), 0);
        acc10_0 = acc10_0 + a10.x * b0_0 + a10.y * b1_0 + a10.z * b2_0 + a10.w * b3_0;
        acc10_1 = acc10_1 + a10.x * b0_1 + a10.y * b1_1 + a10.z * b2_1 + a10.w * b3_1;
        acc10_2 = acc10_2 + a10.x * b0_2 + a10.y * b1_2 + a10.z * b2_2 + a10.w * b3_2;
        acc10_3 = acc10_3 + a10.x * b0_3 + a10.y * b1_3 + a10.z * b2_3 + a10.w * b3_3;
        let a11 = textureLoad(ta, vec2<u32>(q, ra11), 0);
        acc11_0 = acc11_0 + a11.x * b0_0 + a11.y * b1_0 + a11.z * b2_0 + a11.w * b3_0;
        acc11_1 = acc11_1 + a11.x * b0_1 + a11.y * b1_1 + a11.z * b2_1 + a11.w * b3_1;
        acc11_2 = acc11_2 + a11.x * b0_2 + a11.y * b1_2 + a11.z * b2_2 + a11.w * b3_2;
        acc11_3 = acc11_3 + a11.x * b0_3 + a11.y * b1_3 + a11.z * b2_3 + a11.w * b3_3;
        let a12 = textureLoad(ta, vec2<u32>(q, ra12), 0);
        acc12_0 = acc12_0 + a12.x * b0_0 + a12.y * b1_0 + a12.z * b2_0 + a12.w * b3_0;
        acc12_1 = acc12_1 + a12.x * b0_1 + a12.y * b1_1 + a12.z * b2_1 + a12.w * b3_1;
        acc12_2 = acc12_2 + a12.x * b0_2 + a12.y * b1_2 + a12.z * b2_2 + a12.w * b3_2;
        acc12_3 = acc12_3 + a12.x * b0_3 + a12.y * b1_3 + a12.z * b2_3 + a12.w * b3_3;
        let a13 = textureLoad(ta, vec2<u32>(q, ra13), 0);
        acc13_0 = acc13_0 + a13.x * b0_0 + a13.y * b1_0 + a13.z * b2_0 + a13.w * b3_0;
        acc13_1 = acc13_1 + a13.x * b0_1 + a13.y * b1_1 + a13.z * b2_1 + a13.w * b3_1;
        acc13_2 = acc13_2 + a13.x * b0_2 + a13.y * b1_2 + a13.z * b2_2 + a13.w * b3_2;
        acc13_3 = acc13_3 + a13.x * b0_3 + a13.y * b1_3 + a13.z * b2_3 + a13.w * b3_3;
        let a14 = textureLoad(ta, vec2<u32>(q, ra14), 0);
        acc14_0 = acc14_0 + a14.x * b0_0 + a14.y * b1_0 + a14.z * b2_0 + a14.w * b3_0;
        acc14_1 = acc14_1 + a14.x * b0_1 + a14.y * b1_1 + a14.z * b2_1 + a14.w * b3_1;
        acc14_2 = acc14_2 + a14.x * b0_2 + a14.y * b1_2 + a14.z * b2_2 + a14.w * b3_2;
        acc14_3 = acc14_3 + a14.x * b0_3 + a14.y * b1_3 + a14.z * b2_3 + a14.w * b3_3;
        let a15 = textureLoad(ta, vec2<u32>(q, ra15), 0);
        acc15_0 = acc15_0 + a15.x * b0_0 + a15.y * b1_0 + a15.z * b2_0 + a15.w * b3_0;
        acc15_1 = acc15_1 + a15.x * b0_1 + a15.y * b1_1 + a15.z * b2_1 + a15.w * b3_1;
        acc15_2 = acc15_2 + a15.x * b0_2 + a15.y * b1_2 + a15.z * b2_2 + a15.w * b3_2;
        acc15_3 = acc15_3 + a15.x * b0_3 + a15.y * b1_3 + a15.z * b2_3 + a15.w * b3_3;
    }
    let s0 = lid * 64u;
    stage[s0 + 0u] = acc0_0;
    stage[s0 + 1u] = acc0_1;
    stage[s0 + 2u] = acc0_2;
    stage[s0 + 3u] = acc0_3;
    stage[s0 + 4u] = acc1_0;
    stage[s0 + 5u] = acc1_1;
    stage[s0 + 6u] = acc1_2;
    stage[s0 + 7u] = acc1_3;
    stage[s0 + 8u] = acc2_0;
    stage[s0 + 9u] = acc2_1;
    stage[s0 + 10u] = acc2_2;
    stage[s0 + 11u] = acc2_3;
    stage[s0 + 12u] = acc3_0;
    stage[s0 + 13u] = acc3_1;
    stage[s0 + 14u] = acc3_2;
    stage[s0 + 15u] = acc3_3;
    stage[s0 + 16u] = acc4_0;
    stage[s0 + 17u] = acc4_1;
    stage[s0 + 18u] = acc4_2;
    stage[s0 + 19u] = acc4_3;
    stage[s0 + 20u] = acc5_0;
    stage[s0 + 21u] = acc5_1;
    stage[s0 + 22u] = acc5_2;
    stage[s0 + 23u] = acc5_3;
    stage[s0 + 24u] = acc6_0;
    stage[s0 + 25u] = acc6_1;
    stage[s0 + 26u] = acc6_2;
    stage[s0 + 27u] = acc6_3;
    stage[s0 + 28u] = acc7_0;
    stage[s0 + 29u] = acc7_1;
    stage[s0 + 30u] = acc7_2;
    stage[s0 + 31u] = acc7_3;
    stage[s0 + 32u] = acc8_0;
    stage[s0 + 33u] = acc8_1;
    stage[s0 + 34u] = acc8_2;
    stage[s0 + 35u] = acc8_3;
    stage[s0 + 36u] = acc9_0;
    stage[s0 + 37u] = acc9_1;
    stage[s0 + 38u] = acc9_2;
    stage[s0 + 39u] = acc9_3;
    stage[s0 + 40u] = acc10_0;
    stage[s0 + 41u] = acc10_1;
    stage[s0 + 42u] = acc10_2;
    stage[s0 + 43u] = acc10_3;
    stage[s0 + 44u] = acc11_0;
    stage[s0 + 45u] = acc11_1;
    stage[s0 + 46u] = acc11_2;
    stage[s0 + 47u] = acc11_3;
    stage[s0 + 48u] = acc12_0;
    stage[s0 + 49u] = acc12_1;
    stage[s0 + 50u] = acc12_2;
    stage[s0 + 51u] = acc12_3;
    stage[s0 + 52u] = acc13_0;
    stage[s0 + 53u] = acc13_1;
    stage[s0 + 54u] = acc13_2;
    stage[s0 + 55u] = acc13_3;
    stage[s0 + 56u] = acc14_0;
    stage[s0 + 57u] = acc14_1;
    stage[s0 + 58u] = acc14_2;
    stage[s0 + 59u] = acc14_3;
    stage[s0 + 60u] = acc15_0;
    stage[s0 + 61u] = acc15_1;
    stage[s0 + 62u] = acc15_2;
    stage[s0 + 63u] = acc15_3;
    for (var t = 0u; t < 64u; t = t + 1u) {
        store_masked(i0 + t / 4u, j0 + 4u * (t % 4u), stage[s0 + t]);
    }
}

// C[i, j] = sum_q A[q, i] B[q, j]: per reduction row q, four texels of A (columns i0 ..) and four of B
// (columns j0 ..), an outer product. With FLAG_BIAS_GRAD the invocations of one extra block column sum
// A over q instead (the bias gradient).
@compute @workgroup_size(8, 1, 1)
fn matmul_tex_tn(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i0 = gid.y * 16u;
    let j0 = gid.x * 16u;
    var n_ext = p.n;
    if ((p.flags & FLAG_BIAS_GRAD) != 0u) {
        n_ext = (p.n + 15u) / 16u * 16u + 16u;
    }
    if (i0 >= p.m || j0 >= n_ext) {
        return;
    }
    let xa = i0 / 4u;
    if (j0 >= p.n) {
        bias_grad(i0, lid);
        return;
    }
    let xb = j0 / 4u;
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc0_2 = vec4<f32>(0.0);
    var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc1_2 = vec4<f32>(0.0);
    var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc2_2 = vec4<f32>(0.0);
    var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc3_2 = vec4<f32>(0.0);
    var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc4_2 = vec4<f32>(0.0);
    var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc5_2 = vec4<f32>(0.0);
    var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc6_2 = vec4<f32>(0.0);
    var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc7_2 = vec4<f32>(0.0);
    var acc7_3 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc8_2 = vec4<f32>(0.0);
    var acc8_3 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc9_2 = vec4<f32>(0.0);
    var acc9_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc10_2 = vec4<f32>(0.0);
    var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc11_2 = vec4<f32>(0.0);
    var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc12_2 = vec4<f32>(0.0);
    var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc13_2 = vec4<f32>(0.0);
    var acc13_3 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc14_2 = vec4<f32>(0.0);
    var acc14_3 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc15_2 = vec4<f32>(0.0);
    var acc15_3 = vec4<f32>(0.0);
    for (var q = 0u; q < p.k; q = q + 1u) {
        let a0 = fetch(ta, xa + 0u, q, p.k);
        let a1 = fetch(ta, xa + 1u, q, p.k);
        let a2 = fetch(ta, xa + 2u, q, p.k);
        let a3 = fetch(ta, xa + 3u, q, p.k);
        let b0 = fetch(tb, xb + 0u, q, p.k);
        let b1 = fetch(tb, xb + 1u, q, p.k);
        let b2 = fetch(tb, xb + 2u, q, p.k);
        let b3 = fetch(tb, xb + 3u, q, p.k);
        acc0_0 = acc0_0 + a0.x * b0;
        acc0_1 = acc0_1 + a0.x * b1;
        acc0_2 = acc0_2 + a0.x * b2;
        acc0_3 = acc0_3 + a0.x * b3;
        acc1_0 = acc1_0 + a0.y * b0;
        acc1_1 = acc1_1 + a0.y * b1;
        acc1_2 = acc1_2 + a0.y * b2;
        acc1_3 = acc1_3 + a0.y * b3;
        acc2_0 = acc2_0 + a0.z * b0;
        acc2_1 = acc2_1 + a0.z * b1;
        acc2_2 = acc2_2 + a0.z * b2;
        acc2_3 = acc2_3 + a0.z * b3;
        acc3_0 = acc3_0 + a0.w * b0;
        acc3_1 = acc3_1 + a0.w * b1;
        acc3_2 = acc3_2 + a0.w * b2;
        acc3_3 = acc3_3 + a0.w * b3;
        acc4_0 = acc4_0 + a1.x * b0;
        acc4_1 = acc4_1 + a1.x * b1;
        acc4_2 = acc4_2 + a1.x * b2;
        acc4_3 = acc4_3 + a1.x * b3;
        acc5_0 = acc5_0 + a1.y * b0;
        acc5_1 = acc5_1 + a1.y * b1;
        acc5_2 = acc5_2 + a1.y * b2;
        acc5_3 = acc5_3 + a1.y * b3;
        acc6_0 = acc6_0 + a1.z * b0;
        acc6_1 = acc6_1 + a1.z * b1;
        acc6_2 = acc6_2 + a1.z * b2;
        acc6_3 = acc6_3 + a1.z * b3;
        acc7_0 = acc7_0 + a1.w * b0;
        acc7_1 = acc7_1 + a1.w * b1;
        acc7_2 = acc7_2 + a1.w * b2;
        acc7_3 = acc7_3 + a1.w * b3;
        acc8_0 = acc8_0 + a2.x * b0;
        acc8_1 = acc8_1 + a2.x * b1;
        acc8_2 = acc8_2 + a2.x * b2;
        acc8_3 = acc8_3 + a2.x * b3;
        acc9_0 = acc9_0 + a2.y * b0;
        acc9_1 = acc9_1 + a2.y * b1;
        acc9_2 = acc9_2 + a2.y * b2;
        acc9_3 = acc9_3 + a2.y * b3;
        acc10_0 = acc10_0 + a2.z * b0;
        acc10_1 = acc10_1 + a2.z * b1;
        acc10_2 = acc10_2 + a2.z * b2;
        acc10_3 = acc10_3 + a2.z * b3;
        acc11_0 = acc11_0 + a2.w * b0;
        acc11_1 = acc11_1 + a2.w * b1;
        acc11_2 = acc11_2 + a2.w * b2;
        acc11_3 = acc11_3 + a2.w * b3;
        acc12_0 = acc12_0 + a3.x * b0;
        acc12_1 = acc12_1 + a3.x * b1;
        acc12_2 = acc12_2 + a3.x * b2;
        acc12_3 = acc12_3 + a3.x * b3;
        acc13_0 = acc13_0 + a3.y * b0;
        acc13_1 = acc13_1 + a3.y * b1;
        acc13_2 = acc13_2 + a3.y * b2;
        acc13_3 = acc13_3 + a3.y * b3;
        acc14_0 = acc14_0 + a3.z * b0;
        acc14_1 = acc14_1 + a3.z * b1;
        acc14_2 = acc14_2 + a3.z * b2;
        acc14_3 = acc14_3 + a3.z * b3;
        acc15_0 = acc15_0 + a3.w * b0;
        acc15_1 = acc15_1 + a3.w * b1;
        acc15_2 = acc15_2 + a3.w * b2;
        acc15_3 = acc15_3 + a3.w * b3;
    }
    let s0 = lid * 64u;
    stage[s0 + 0u] = acc0_0;
    stage[s0 + 1u] = acc0_1;
    stage[s0 + 2u] = acc0_2;
    stage[s0 + 3u] = acc0_3;
    stage[s0 + 4u] = acc1_0;
    stage[s0 + 5u] = acc1_1;
    stage[s0 + 6u] = acc1_2;
    stage[s0 + 7u] = acc1_3;
    stage[s0 + 8u] = acc2_0;
    stage[s0 + 9u] = acc2_1;
    stage[s0 + 10u] = acc2_2;
    stage[s0 + 11u] = acc2_3;
    stage[s0 + 12u] = acc3_0;
    stage[s0 + 13u] = acc3_1;
    stage[s0 + 14u] = acc3_2;
    stage[s0 + 15u] = acc3_3;
    stage[s0 + 16u] = acc4_0;
    stage[s0 + 17u] = acc4_1;
    stage[s0 + 18u] = acc4_2;
    stage[s0 + 19u] = acc4_3;
    stage[s0 + 20u] = acc5_0;
    stage[s0 + 21u] = acc5_1;
    stage[s0 + 22u] = acc5_2;
    stage[s0 + 23u] = acc5_3;
    stage[s0 + 24u] = acc6_0;
    stage[s0 + 25u] = acc6_1;
    stage[s0 + 26u] = acc6_2;
    stage[s0 + 27u] = acc6_3;
    stage[s0 + 28u] = acc7_0;
    stage[s0 + 29u] = acc7_1;
    stage[s0 + 30u] = acc7_2;
    stage[s0 + 31u] = acc7_3;
    stage[s0 + 32u] = acc8_0;
    stage[s0 + 33u] = acc8_1;
    stage[s0 + 34u] = acc8_2;
    stage[s0 + 35u] = acc8_3;
    stage[s0 + 36u] = acc9_0;
    stage[s0 + 37u] = acc9_1;
    stage[s0 + 38u] = acc9_2;
    stage[s0 + 39u] = acc9_3;
    stage[s0 + 40u] = acc10_0;
    stage[s0 + 41u] = acc10_1;
    stage[s0 + 42u] = acc10_2;
    stage[s0 + 43u] = acc10_3;
    stage[s0 + 44u] = acc11_0;
    stage[s0 + 45u] = acc11_1;
    stage[s0 + 46u] = acc11_2;
    stage[s0 + 47u] = acc11_3;
    stage[s0 + 48u] = acc12_0;
    stage[s0 + 49u] = acc12_1;
    stage[s0 + 50u] = acc12_2;
    stage[s0 + 51u] = acc12_3;
    stage[s0 + 52u] = acc13_0;
    stage[s0 + 53u] = acc13_1;
    stage[s0 + 54u] = acc13_2;
    stage[s0 + 55u] = acc13_3;
    stage[s0 + 56u] = acc14_0;
    stage[s0 + 57u] = acc14_1;
    stage[s0 + 58u] = acc14_2;
    stage[s0 + 59u] = acc14_3;
    stage[s0 + 60u] = acc15_0;
    stage[s0 + 61u] = acc15_1;
    stage[s0 + 62u] = acc15_2;
    stage[s0 + 63u] = acc15_3;
    for (var t = 0u; t < 64u; t = t + 1u) {
        store_row(i0 + t / 4u, j0 + 4u * (t % 4u), stage[s0 + t]);
    }
}

// Vectorised variants of matmul.wgsl for the layouts a network actually uses, when the reduction or
// column dimension and every offset/stride involved are multiples of 4 (the Rust launcher checks and
// falls back to matmul.wgsl otherwise). A and B are bound as arrays of vec4<f32>, so each load moves 16
// bytes: on llvmpipe, where neighbouring invocations' loads become gathers, this cuts load instructions
// by 4x; on GPUs it is the usual vectorised load. Same uniform, flags and epilogue as matmul.wgsl.
//
//   matmul_nt  A[m,k] and B^T[n,k] both contiguous along k   (forward Y = X W^T)
//   matmul_nn  A[m,k] contiguous along k, B[k,n] along n      (backward input dX = dY W)
//   matmul_tn  A^T[k,m] contiguous along m, B[k,n] along n    (backward weight dW = dY^T X, + bias grad)
// Offsets and strides in the uniform are in floats, as in matmul.wgsl.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    bias_off: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    mask_off: u32,
    c_off: u32,
    c_rs: u32,
    pad0: u32,
    pad1: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_MASK: u32 = 4u;
const FLAG_BIAS_GRAD: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

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
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    // Rows and columns past the edge are clamped for loading and dropped when storing.
    let last_i = p.m - 1u;
    let last_j = p.n - 1u;
    let ar0 = (p.a_off + min(i0, last_i) * p.a_rs) / 4u;
    let ar1 = (p.a_off + min(i0 + 1u, last_i) * p.a_rs) / 4u;
    let ar2 = (p.a_off + min(i0 + 2u, last_i) * p.a_rs) / 4u;
    let ar3 = (p.a_off + min(i0 + 3u, last_i) * p.a_rs) / 4u;
    let bc0 = (p.b_off + min(j0, last_j) * p.b_cs) / 4u;
    let bc1 = (p.b_off + min(j0 + 1u, last_j) * p.b_cs) / 4u;
    let bc2 = (p.b_off + min(j0 + 2u, last_j) * p.b_cs) / 4u;
    let bc3 = (p.b_off + min(j0 + 3u, last_j) * p.b_cs) / 4u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k4 = p.k / 4u;
    for (var q = 0u; q < k4; q = q + 1u) {
        let b0 = b[bc0 + q];
        let b1 = b[bc1 + q];
        let b2 = b[bc2 + q];
        let b3 = b[bc3 + q];
        let a0 = a[ar0 + q];
        let a1 = a[ar1 + q];
        let a2 = a[ar2 + q];
        let a3 = a[ar3 + q];
        acc0 = acc0 + vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        acc1 = acc1 + vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        acc2 = acc2 + vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        acc3 = acc3 + vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
    store_row(i0, j0, acc0);
    store_row(i0 + 1u, j0, acc1);
    store_row(i0 + 2u, j0, acc2);
    store_row(i0 + 3u, j0, acc3);
}

@compute @workgroup_size(8, 8, 1)
fn matmul_nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    let last_i = p.m - 1u;
    let ar0 = (p.a_off + min(i0, last_i) * p.a_rs) / 4u;
    let ar1 = (p.a_off + min(i0 + 1u, last_i) * p.a_rs) / 4u;
    let ar2 = (p.a_off + min(i0 + 2u, last_i) * p.a_rs) / 4u;
    let ar3 = (p.a_off + min(i0 + 3u, last_i) * p.a_rs) / 4u;
    let bcol = (p.b_off + j0) / 4u;
    let brow = p.b_rs / 4u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k4 = p.k / 4u;
    for (var q = 0u; q < k4; q = q + 1u) {
        let base = bcol + 4u * q * brow;
        let b0 = b[base];
        let b1 = b[base + brow];
        let b2 = b[base + 2u * brow];
        let b3 = b[base + 3u * brow];
        let a0 = a[ar0 + q];
        let a1 = a[ar1 + q];
        let a2 = a[ar2 + q];
        let a3 = a[ar3 + q];
        acc0 = acc0 + a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
        acc1 = acc1 + a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
        acc2 = acc2 + a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
        acc3 = acc3 + a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
    }
    store_row(i0, j0, acc0);
    store_row(i0 + 1u, j0, acc1);
    store_row(i0 + 2u, j0, acc2);
    store_row(i0 + 3u, j0, acc3);
}

@compute @workgroup_size(8, 8, 1)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let bias_grad = (p.flags & FLAG_BIAS_GRAD) != 0u;
    var n_ext = p.n;
    if (bias_grad) {
        n_ext = p.n + 4u;
    }
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.m || j0 >= n_ext) {
        return;
    }
    let acol = (p.a_off + i0) / 4u;
    let astep = p.a_cs / 4u;
    let bcol = (p.b_off + min(j0, p.n - 4u)) / 4u;
    let bstep = p.b_rs / 4u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    if (j0 >= p.n) {
        // The bias-gradient tile: row sums of A over the reduction, written to c[bias_off + i].
        var sums = vec4<f32>(0.0);
        for (var q = 0u; q < p.k; q = q + 1u) {
            sums = sums + a[acol + q * astep];
        }
        for (var r = 0u; r < 4u; r = r + 1u) {
            c[p.bias_off + i0 + r] = sums[r];
        }
        return;
    }
    for (var q = 0u; q < p.k; q = q + 1u) {
        let av = a[acol + q * astep];
        let bv = b[bcol + q * bstep];
        acc0 = fma(vec4<f32>(av.x), bv, acc0);
        acc1 = fma(vec4<f32>(av.y), bv, acc1);
        acc2 = fma(vec4<f32>(av.z), bv, acc2);
        acc3 = fma(vec4<f32>(av.w), bv, acc3);
    }
    store_row(i0, j0, acc0);
    store_row(i0 + 1u, j0, acc1);
    store_row(i0 + 2u, j0, acc2);
    store_row(i0 + 3u, j0, acc3);
}

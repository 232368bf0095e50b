// Packs a row-major matrix from a storage buffer into an rgba32float texture for matmul_tex.wgsl:
// texel (x, r) = src[off + r * rs + 4 x .. 4 x + 4], zero past the last column, so products over
// the padded width need no tail handling. One texel per invocation; the texture is written once and
// then fetched many times (a 16x16 block kernel reads each texel n / 16 times).

struct PackParams {
    rows: u32,
    cols: u32,
    off: u32,
    rs: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

@group(0) @binding(0) var<uniform> pk: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// One texel per invocation over a 2-D grid of 64-wide workgroups (grid_1d on the host).
@compute @workgroup_size(64, 1, 1)
fn pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.y * nwg.x + wid.x) * 64u + lid;
    let width = (pk.cols + 3u) / 4u;
    if (idx >= pk.rows * width) {
        return;
    }
    let r = idx / width;
    let x = idx % width;
    let base = pk.off + r * pk.rs + 4u * x;
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t = t + 1u) {
        if (4u * x + t < pk.cols) {
            v[t] = src[base + t];
        }
    }
    textureStore(dst, vec2<u32>(x, r), v);
}

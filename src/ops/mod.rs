//! Ops, one family per file: the CPU reference and the GPU launcher side by side, forward next to backward.
//! The matching WGSL kernels live in `shaders/<op>.wgsl`.

pub mod add;
pub mod batchnorm;
pub mod conv2d;
pub mod conv2d_cpu;
pub mod conv2d_direct;
pub mod conv2d_winograd;
pub mod dropout;
pub mod gap;
pub mod matmul;
pub mod matmul_tex;
pub mod pool;
pub mod relu;
pub mod softmax_xent;
pub mod vector;

/// Zero `d` where the ReLU output `mask <= 0` (the backward of a fused ReLU). Written without a branch
/// so it compiles to vector compares and ands, on the CPU's widest vectors ([`vector::vectorized`]).
#[inline]
pub fn relu_mask(d: &mut [f32], mask: &[f32]) {
    vector::vectorized(
        #[inline(always)]
        || {
            for (d, &m) in d.iter_mut().zip(mask) {
                *d = if m <= 0.0 { 0.0 } else { *d };
            }
        },
    )
}

/// `sum(f(v[i]))` with 16 independent f32 partial sums, so the compiler keeps them in vector
/// registers (a plain `iter().sum()` is one serial chain of scalar adds). Callers keep `v` short
/// (a plane, a row) and add the results in f64 when they need more.
#[inline(always)]
pub fn sum_lanes_with(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&x| f(x)).sum::<f32>()
}

/// `(sum(f(a[i], b[i]).0, sum(f(a[i], b[i]).1)` with 8 independent partial sums of each.
#[inline(always)]
pub fn sum2_lanes_with(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f32, f32) {
    let (mut s0, mut s1) = ([0f32; 8], [0f32; 8]);
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            let (u, v) = f(xa[i], xb[i]);
            s0[i] += u;
            s1[i] += v;
        }
    }
    let (mut t0, mut t1) = (s0.iter().sum::<f32>(), s1.iter().sum::<f32>());
    for (&x, &y) in ra.iter().zip(rb) {
        let (u, v) = f(x, y);
        t0 += u;
        t1 += v;
    }
    (t0, t1)
}

/// Uniform of the elementwise kernels (add, relu, dropout): element count and flags.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    pub flags: u32,
    pub pad: [u32; 2],
}

/// Epilogue flag: ReLU the result (the same bit in every shader).
pub const FLAG_RELU: u32 = 2;
/// Backward flag: zero the gradient where the mask (a ReLU output) is <= 0.
pub const FLAG_MASK: u32 = 4;

/// Dispatch an elementwise kernel (256 invocations per workgroup, one per element) over `n` floats.
pub fn push_elementwise(
    pb: &mut crate::device::gpu::PlanBuilder<'_>,
    kernel: &crate::device::gpu::Kernel,
    n: usize,
    flags: u32,
    bindings: &[(u32, &wgpu::Buffer)],
) {
    let p = ElementwiseParams {
        n: u32::try_from(n).expect("elementwise length exceeds u32"),
        flags,
        pad: [0; 2],
    };
    let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
    let groups = crate::device::gpu::grid_1d(n.div_ceil(256) as u32, max);
    pb.push_bindings(kernel, &p, bindings, groups);
}

/// Fold a per-output-channel affine map into a layer whose weight is `[out, row]` rows at `weight`
/// (a convolution's filters, a linear layer's rows): row `o` is scaled by `a.scale[o]` and the bias,
/// read from `old_bias` (zero when the layer has none), becomes `b * scale + shift` at `new_bias`.
/// Evaluation only: the caller's parameter vector is a copy.
pub fn fold_rows(
    params: &mut [f32],
    weight: usize,
    old_bias: Option<usize>,
    new_bias: usize,
    row: usize,
    a: &crate::nn::op::EvalAffine,
) {
    for (o, (&k, &shift)) in a.scale.iter().zip(&a.shift).enumerate() {
        params[weight + o * row..][..row]
            .iter_mut()
            .for_each(|w| *w *= k);
        let b = old_bias.map_or(0.0, |b| params[b + o]);
        params[new_bias + o] = b * k + shift;
    }
}

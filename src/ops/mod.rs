//! Ops, one family per file: the CPU reference and the GPU launcher side by side, forward next to backward.
//! The matching WGSL kernels live in `shaders/<op>.wgsl`.

pub mod conv2d;
pub mod conv2d_cpu;
pub mod matmul;
pub mod matmul_tex;
pub mod pool;
pub mod softmax_xent;

/// Zero `d` where the ReLU output `mask <= 0` (the backward of a fused ReLU). Written without a branch
/// so it compiles to vector compares and ands.
#[inline]
pub fn relu_mask(d: &mut [f32], mask: &[f32]) {
    for (d, &m) in d.iter_mut().zip(mask) {
        *d = if m <= 0.0 { 0.0 } else { *d };
    }
}

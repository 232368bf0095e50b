//! Ops, one family per file: the CPU reference and the GPU launcher side by side, forward next to backward.
//! The matching WGSL kernels live in `shaders/<op>.wgsl`.

pub mod conv2d;
pub mod conv2d_cpu;
pub mod matmul;
pub mod pool;
pub mod softmax_xent;

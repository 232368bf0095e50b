//! Uniform-buffer windows: reading part of a storage buffer through a 64 KiB uniform binding.
//!
//! On llvmpipe (Mesa 22.3) a load from a storage buffer is compiled as a loop over the SIMD lanes with
//! a bounds check and a branch per lane, while a load from a uniform buffer is one gather: measured on
//! the 2026-12-02 AMD EPYC (Zen 1) machine, 6.7 ns per float through a storage buffer, 1.3 through a
//! uniform buffer (docs/BENCHMARKS.md). Kernels written with `load_a(i)` / `load_b(i)` helpers get a
//! variant whose helpers read windows bound at bindings 5 and 6 instead; launchers split the work so each
//! dispatch reads only what one window holds. Hardware GPUs keep the storage-buffer kernels: their
//! uniform caches are built for indices shared across a wave, not the divergent indexing these kernels
//! do (an expectation, not measured: no hardware GPU was available).

use super::gpu::{ByteRange, GpuContext, Kernel};
use crate::error::Result;

/// Floats in one window: the WGSL array's size, 64 KiB, which is WebGPU's minimum
/// `max_uniform_buffer_binding_size` (so every adapter can bind it).
pub const WINDOW_FLOATS: usize = 16384;

/// The strictest uniform-offset alignment WebGPU allows (256 bytes), in floats: sizes computed with it
/// hold on every adapter.
pub const MAX_ALIGN_FLOATS: usize = 64;

/// Whether launchers should use window variants on this adapter.
pub fn preferred(ctx: &GpuContext) -> bool {
    ctx.policy.conv == super::policy::ConvInputs::UniformWindows
}

/// A storage buffer of `len` floats that window variants can read: on adapters that prefer windows,
/// also bindable as a uniform buffer and at least one window long; elsewhere a plain storage buffer.
pub fn buffer(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    extra: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    if preferred(ctx) {
        ctx.storage_buffer(
            label,
            len.max(WINDOW_FLOATS),
            extra | wgpu::BufferUsages::UNIFORM,
        )
    } else {
        ctx.storage_buffer(label, len, extra)
    }
}

/// How many consecutive items of `len` floats one window holds wherever they start (0 when not even
/// one does).
pub fn items_per_window(len: usize) -> usize {
    (WINDOW_FLOATS - (MAX_ALIGN_FLOATS - 1)) / len.max(1)
}

/// The first float of a window of `buffer` that holds floats `lo..hi`, or `None` when there is none:
/// the buffer is not bindable as a uniform buffer, is shorter than a window, or the range does not fit.
pub fn place(ctx: &GpuContext, buffer: &wgpu::Buffer, lo: usize, hi: usize) -> Option<usize> {
    let size = buffer.size() as usize / 4;
    if !buffer.usage().contains(wgpu::BufferUsages::UNIFORM) || size < WINDOW_FLOATS || hi > size {
        return None;
    }
    let align = (ctx.limits.min_uniform_buffer_offset_alignment as usize / 4).max(1);
    let base = lo.min(size - WINDOW_FLOATS) / align * align;
    (hi <= base + WINDOW_FLOATS).then_some(base)
}

/// The byte range to bind for the window starting at float `base`.
pub fn range(base: usize) -> ByteRange {
    Some((base as u64 * 4, WINDOW_FLOATS as u64 * 4))
}

/// The storage-buffer helpers every windowed shader defines, and what the variant replaces them with.
const STORAGE_HELPERS: &str = "fn load_a(i: u32) -> f32 {\n    return a[i];\n}\n\n\
                               fn load_b(i: u32) -> f32 {\n    return b[i];\n}\n";
const WINDOW_HELPERS: &str = "@group(0) @binding(5) var<uniform> aw: array<vec4<f32>, 4096>;\n\
    @group(0) @binding(6) var<uniform> bw: array<vec4<f32>, 4096>;\n\n\
    fn load_a(i: u32) -> f32 {\n    let j = i - p.a_base;\n    return aw[j >> 2u][j & 3u];\n}\n\n\
    fn load_b(i: u32) -> f32 {\n    let j = i - p.b_base;\n    return bw[j >> 2u][j & 3u];\n}\n";

/// The window variant of a shader source (which must define the storage helpers exactly as
/// `STORAGE_HELPERS` spells them, and uniform fields `a_base` and `b_base`).
pub fn variant_source(source: &str) -> String {
    assert!(
        source.contains(STORAGE_HELPERS),
        "shader lacks the load_a/load_b helpers the window variant replaces"
    );
    source.replace(STORAGE_HELPERS, WINDOW_HELPERS)
}

/// `kernel`'s window variant, named `name`; `source` is the variant source, built once by the caller.
pub fn variant(kernel: &Kernel, name: &'static str, source: &'static str) -> Kernel {
    Kernel {
        name,
        source,
        entry: kernel.entry,
    }
}

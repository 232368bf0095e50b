//! The linear layer's products on software adapters: operands packed into rgba32float textures, then
//! multiplied by 16x16-block kernels (`shaders/pack_tex.wgsl`, `shaders/matmul_tex.wgsl`).
//!
//! Why: on llvmpipe a texel fetch is several times cheaper than a storage-buffer load, and a matmul is
//! bound by loads there; with the operands in textures, 16x16 register blocks run a 512³ product at
//! 35 GFLOP/s (packing included) on a 2-core Zen 5 host where the 4x4-block storage kernel
//! (`matmul_vec4.wgsl`) runs at 12 (`wgtrain bench`, docs/BENCHMARKS.md). Hardware GPUs keep the
//! storage kernels (256 accumulators per invocation would spill their registers; an expectation, not
//! measured). `WGTRAIN_MATMUL=texture|storage|tiled` overrides the choice, for A/B measurements (see
//! ops::matmul::tiled_preferred).
//!
//! Shapes as in [`crate::ops::matmul`]: `x: [batch, in]`, `w: [out, in]`, `y: [batch, out]`. A texture
//! matrix of `rows x cols` floats is `ceil(cols / 4)` texels wide and `rows` high, zero-padded.

use super::matmul::{FLAG_BIAS, FLAG_BIAS_GRAD, FLAG_MASK, FLAG_RELU};
use crate::device::gpu::{grid_1d, GpuContext, Kernel, PlanBuilder, Resource};
use crate::error::Result;

const SOURCE: &str = include_str!("../../shaders/matmul_tex.wgsl");

pub const MATMUL_TEX_NT: Kernel = Kernel {
    name: "matmul_tex_nt",
    source: SOURCE,
    entry: "matmul_tex_nt",
};

pub const MATMUL_TEX_NN: Kernel = Kernel {
    name: "matmul_tex_nn",
    source: SOURCE,
    entry: "matmul_tex_nn",
};

pub const MATMUL_TEX_TN: Kernel = Kernel {
    name: "matmul_tex_tn",
    source: SOURCE,
    entry: "matmul_tex_tn",
};

pub const PACK_TEX: Kernel = Kernel {
    name: "pack_tex",
    source: include_str!("../../shaders/pack_tex.wgsl"),
    entry: "pack",
};

/// Rows and columns of C one invocation computes.
const BLOCK: u32 = 16;
/// Invocations per workgroup (along the columns of C).
const WORKGROUP: u32 = 8;

/// Which product: `Nt` is A·Bᵀ, `Nn` A·B, `Tn` Aᵀ·B (see the shader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nt,
    Nn,
    Tn,
}

impl Layout {
    fn kernel(self) -> &'static Kernel {
        match self {
            Layout::Nt => &MATMUL_TEX_NT,
            Layout::Nn => &MATMUL_TEX_NN,
            Layout::Tn => &MATMUL_TEX_TN,
        }
    }
}

/// Whether the linear layers on this adapter should use the texture kernels.
/// The adapter's kernel policy decides (`device::policy`; `WGTRAIN_MATMUL` overrides).
pub fn preferred(ctx: &GpuContext) -> bool {
    ctx.policy.linear == crate::device::policy::LinearKernels::Texture
}

/// A texture holding a `rows x cols` matrix (the capacity; products may use fewer rows).
#[derive(Debug, Clone)]
pub struct TexMatrix {
    pub view: wgpu::TextureView,
    pub rows: usize,
    pub cols: usize,
}

/// Whether a `rows x cols` matrix fits in one texture on this adapter.
pub fn fits(ctx: &GpuContext, rows: usize, cols: usize) -> bool {
    let max = ctx.limits.max_texture_dimension_2d;
    rows >= 1 && cols >= 1 && pow2_extent(rows) <= max && pow2_extent(cols.div_ceil(4)) <= max
}

/// A texture extent: `x` rounded up to a power of two, so that every texture the kernels read has the
/// same "is a power of two" flags, which llvmpipe's sampler code is specialised on. Whether that saves
/// shader variants was not measured (the slow first compile it was tried against turned out to be the
/// epilogue, see shaders/matmul_tex.wgsl); it costs at most 2x texture memory, under 2 MiB for the
/// presets.
fn pow2_extent(x: usize) -> u32 {
    x.next_power_of_two() as u32
}

/// Allocate a texture matrix; the caller checks [`fits`] first.
pub fn texture_matrix(
    ctx: &GpuContext,
    label: &str,
    rows: usize,
    cols: usize,
) -> Result<TexMatrix> {
    assert!(
        fits(ctx, rows, cols),
        "{label}: {rows}x{cols} exceeds the texture limit"
    );
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: pow2_extent(cols.div_ceil(4)),
            height: pow2_extent(rows),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
        view_formats: &[],
    });
    ctx.check(label)?;
    Ok(TexMatrix {
        view: texture.create_view(&Default::default()),
        rows,
        cols,
    })
}

/// Uniform of `shaders/pack_tex.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    rows: u32,
    cols: u32,
    off: u32,
    rs: u32,
    pad: [u32; 4],
}

/// Pack `rows x cols` floats of `src` (row-major from `off`, row stride `rs`) into `dst`.
pub fn push_pack(
    pb: &mut PlanBuilder<'_>,
    src: &wgpu::Buffer,
    off: usize,
    rs: usize,
    rows: usize,
    cols: usize,
    dst: &TexMatrix,
) {
    assert!(
        rows <= dst.rows && cols <= dst.cols,
        "pack: {rows}x{cols} into a {}x{} texture",
        dst.rows,
        dst.cols
    );
    let u = |x: usize| u32::try_from(x).expect("pack dimension exceeds u32");
    let p = PackParams {
        rows: u(rows),
        cols: u(cols),
        off: u(off),
        rs: u(rs),
        ..Default::default()
    };
    let texels = u(rows * cols.div_ceil(4));
    let groups = grid_1d(
        texels.div_ceil(64),
        pb.ctx().limits.max_compute_workgroups_per_dimension,
    );
    pb.push_resources(
        &PACK_TEX,
        &p,
        vec![
            (1, Resource::Buffer(src.clone(), None)),
            (2, Resource::Texture(dst.view.clone())),
        ],
        groups,
    );
}

/// Uniform of `shaders/matmul_tex.wgsl` (field meanings are documented there).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TexParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub bias_off: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub pad: [u32; 5],
}

impl TexParams {
    /// C `[m, n]` (row stride `c_rs`, from `c_off`) of a product reducing over `k`.
    pub fn new(m: usize, n: usize, k: usize, c_off: usize, c_rs: usize) -> Self {
        let u = |x: usize| u32::try_from(x).expect("matmul dimension exceeds u32");
        TexParams {
            m: u(m),
            n: u(n),
            k: u(k),
            c_off: u(c_off),
            c_rs: u(c_rs),
            ..Default::default()
        }
    }
}

/// One product of two packed operands into the storage buffer `c`, with the epilogue `p.flags` asks for:
/// bias (+ ReLU) for `Nt` (`aux` holds the bias), the ReLU mask for `Nn` (`mask`, packed), the bias
/// gradient for `Tn`. `aux` may be any buffer when no bias is read.
#[allow(clippy::too_many_arguments)]
pub fn push_matmul_tex(
    pb: &mut PlanBuilder<'_>,
    layout: Layout,
    p: TexParams,
    a: &TexMatrix,
    b: &TexMatrix,
    mask: Option<&TexMatrix>,
    aux: &wgpu::Buffer,
    c: &wgpu::Buffer,
) {
    let allowed = match layout {
        Layout::Nt => FLAG_BIAS | FLAG_RELU,
        Layout::Nn => FLAG_MASK,
        Layout::Tn => FLAG_BIAS_GRAD,
    };
    assert!(
        p.flags & !allowed == 0,
        "{layout:?}: epilogue flags {:#x} not supported",
        p.flags
    );
    assert_eq!(
        mask.is_some(),
        p.flags & FLAG_MASK != 0,
        "a mask texture goes with FLAG_MASK"
    );
    let blocks = |x: u32| x.div_ceil(BLOCK);
    // The bias gradient takes one extra block column.
    let col_blocks = blocks(p.n) + u32::from(p.flags & FLAG_BIAS_GRAD != 0);
    let mut resources = vec![
        (1, Resource::Texture(a.view.clone())),
        (2, Resource::Texture(b.view.clone())),
        (4, Resource::Buffer(c.clone(), None)),
    ];
    // Layouts are derived from each entry point, so bind exactly what it reads.
    match layout {
        Layout::Nt => resources.push((3, Resource::Buffer(aux.clone(), None))),
        // Without FLAG_MASK the kernel still fetches (and ignores) a texel: bind any texture.
        Layout::Nn => resources.push((5, Resource::Texture(mask.unwrap_or(a).view.clone()))),
        Layout::Tn => {}
    }
    pb.push_resources(
        layout.kernel(),
        &p,
        resources,
        [col_blocks.div_ceil(WORKGROUP), blocks(p.m), 1],
    );
}

/// The textures one linear layer's products read: its input, its weight and its output gradient.
#[derive(Debug, Clone)]
pub struct LinearTextures {
    pub x: TexMatrix,
    pub w: TexMatrix,
    pub dy: TexMatrix,
}

impl LinearTextures {
    /// Textures for batches up to `max_batch`, or `None` when one would exceed the adapter's limits.
    pub fn new(ctx: &GpuContext, max_batch: usize, inp: usize, out: usize) -> Result<Option<Self>> {
        if !(fits(ctx, max_batch, inp) && fits(ctx, out, inp) && fits(ctx, max_batch, out)) {
            return Ok(None);
        }
        Ok(Some(LinearTextures {
            x: texture_matrix(ctx, "linear input texture", max_batch, inp)?,
            w: texture_matrix(ctx, "linear weight texture", out, inp)?,
            dy: texture_matrix(ctx, "linear gradient texture", max_batch, out)?,
        }))
    }
}

/// [`crate::ops::matmul::push_linear_forward`] through textures: packs `x` and the weight, then
/// `y = x Wᵀ + b` (ReLU'd when asked). The packed textures stay valid for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn push_linear_forward_tex(
    pb: &mut PlanBuilder<'_>,
    tex: &LinearTextures,
    x: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w: usize,
    bias: usize,
    y: &wgpu::Buffer,
    batch: usize,
    inp: usize,
    out: usize,
    relu: bool,
) {
    push_pack(pb, x, 0, inp, batch, inp, &tex.x);
    push_pack(pb, params, w, inp, out, inp, &tex.w);
    let mut p = TexParams::new(batch, out, inp, 0, out);
    p.flags = FLAG_BIAS | if relu { FLAG_RELU } else { 0 };
    p.bias_off = bias as u32;
    push_matmul_tex(pb, Layout::Nt, p, &tex.x, &tex.w, None, params, y);
}

/// The linear layer's backward through textures, after [`push_linear_forward_tex`] in the same step:
/// packs `dy`, writes the weight and bias gradients into `grads`, and, when `dx` is given, the input
/// gradient (masked where the layer's input, a ReLU output, is <= 0 when `masked`: the mask is read from
/// the input's texture, packed in the forward pass).
#[allow(clippy::too_many_arguments)]
pub fn push_linear_backward_tex(
    pb: &mut PlanBuilder<'_>,
    tex: &LinearTextures,
    dy: &wgpu::Buffer,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w: usize,
    bias: usize,
    dx: Option<(&wgpu::Buffer, bool)>,
    batch: usize,
    inp: usize,
    out: usize,
) {
    push_pack(pb, dy, 0, out, batch, out, &tex.dy);
    let mut p = TexParams::new(out, inp, batch, w, inp);
    p.flags = FLAG_BIAS_GRAD;
    p.bias_off = bias as u32;
    push_matmul_tex(pb, Layout::Tn, p, &tex.dy, &tex.x, None, params, grads);
    if let Some((dx, masked)) = dx {
        let mut p = TexParams::new(batch, inp, out, 0, inp);
        if masked {
            p.flags = FLAG_MASK;
        }
        let mask = masked.then_some(&tex.x);
        push_matmul_tex(pb, Layout::Nn, p, &tex.dy, &tex.w, mask, params, dx);
    }
}

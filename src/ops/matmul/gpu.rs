//! The GPU launchers of the matmul kernels (shaders/matmul.wgsl, matmul_vec4.wgsl): parameters, the
//! per-adapter choice between the register-blocked, vec4 and shared-memory tiled variants, and the
//! linear layer's three products with their fused bias, ReLU, mask and bias-gradient epilogues.

use super::Strided;
use crate::device::gpu::{GpuContext, Kernel, PlanBuilder};

pub const MATMUL: Kernel = Kernel {
    name: "matmul",
    source: include_str!("../../../shaders/matmul.wgsl"),
    entry: "matmul",
};

/// The shared-memory tiled variant of [`MATMUL`] (same file, parameters and epilogues).
pub const MATMUL_TILED: Kernel = Kernel {
    name: "matmul_tiled",
    source: include_str!("../../../shaders/matmul.wgsl"),
    entry: "matmul_tiled",
};

pub const FLAG_BIAS: u32 = 1;
pub const FLAG_RELU: u32 = 2;
pub const FLAG_MASK: u32 = 4;
pub const FLAG_BIAS_GRAD: u32 = 8;

/// Uniform of `shaders/matmul.wgsl` (field meanings are documented there).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub a_off: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub bias_off: u32,
    pub b_off: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub mask_off: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub pad0: u32,
    pub pad1: u32,
}

impl MatmulParams {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        m: usize,
        n: usize,
        k: usize,
        sa: Strided,
        sb: Strided,
        c_off: usize,
        c_rs: usize,
    ) -> Self {
        let u = |x: usize| u32::try_from(x).expect("matmul dimension exceeds u32");
        MatmulParams {
            m: u(m),
            n: u(n),
            k: u(k),
            a_off: u(sa.off),
            a_rs: u(sa.rs),
            a_cs: u(sa.cs),
            b_off: u(sb.off),
            b_rs: u(sb.rs),
            b_cs: u(sb.cs),
            c_off: u(c_off),
            c_rs: u(c_rs),
            ..Default::default()
        }
    }
}

const VEC4_SOURCE: &str = include_str!("../../../shaders/matmul_vec4.wgsl");

pub const MATMUL_NT: Kernel = Kernel {
    name: "matmul_nt",
    source: VEC4_SOURCE,
    entry: "matmul_nt",
};

pub const MATMUL_NN: Kernel = Kernel {
    name: "matmul_nn",
    source: VEC4_SOURCE,
    entry: "matmul_nn",
};

pub const MATMUL_TN: Kernel = Kernel {
    name: "matmul_tn",
    source: VEC4_SOURCE,
    entry: "matmul_tn",
};

/// The vectorised kernel that fits this product's layout, if any (see `shaders/matmul_vec4.wgsl`).
pub fn vec4_variant(p: &MatmulParams) -> Option<&'static Kernel> {
    let all4 = |v: &[u32]| v.iter().all(|x| x % 4 == 0);
    if !all4(&[p.a_off, p.b_off]) || p.m == 0 || p.n == 0 || p.k == 0 {
        return None;
    }
    let bias_grad = p.flags & FLAG_BIAS_GRAD != 0;
    if p.a_cs == 1 && p.b_rs == 1 && !bias_grad && all4(&[p.k, p.a_rs, p.b_cs]) {
        Some(&MATMUL_NT)
    } else if p.a_cs == 1 && p.b_cs == 1 && !bias_grad && all4(&[p.k, p.n, p.a_rs, p.b_rs]) {
        Some(&MATMUL_NN)
    } else if p.a_rs == 1 && p.b_cs == 1 && all4(&[p.m, p.n, p.a_cs, p.b_rs]) {
        Some(&MATMUL_TN)
    } else {
        None
    }
}

/// Whether storage-buffer products on this adapter use the shared-memory tiled kernel
/// ([`MATMUL_TILED`]) rather than the register-blocked ones ([`vec4_variant`], else [`MATMUL`]): the
/// adapter's kernel policy decides (`device::policy`; `WGTRAIN_MATMUL` overrides).
pub fn tiled_preferred(ctx: &GpuContext) -> bool {
    ctx.policy.matmul == crate::device::policy::StorageMatmul::Tiled
}

/// The register-blocked kernel for a product: a vectorised variant when the layout allows, else the
/// general [`MATMUL`].
pub fn register_blocked(p: &MatmulParams) -> &'static Kernel {
    vec4_variant(p).unwrap_or(&MATMUL)
}

/// The storage-buffer kernel this adapter runs a product with (see [`tiled_preferred`]).
pub fn storage_kernel(ctx: &GpuContext, p: &MatmulParams) -> &'static Kernel {
    if tiled_preferred(ctx) {
        &MATMUL_TILED
    } else {
        register_blocked(p)
    }
}

/// Add one matmul dispatch: each invocation computes a 4x4 block, each 8x8 workgroup a 32x32 tile,
/// with the kernel [`storage_kernel`] picks for the adapter.
pub fn push_matmul(
    pb: &mut PlanBuilder<'_>,
    p: MatmulParams,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    aux: &wgpu::Buffer,
    c: &wgpu::Buffer,
) {
    let kernel = storage_kernel(pb.ctx(), &p);
    push_matmul_with(pb, p, a, b, aux, c, kernel);
}

/// [`push_matmul`] with an explicit kernel (tests use it to check the general kernel on every layout).
pub fn push_matmul_with(
    pb: &mut PlanBuilder<'_>,
    p: MatmulParams,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    aux: &wgpu::Buffer,
    c: &wgpu::Buffer,
    kernel: &Kernel,
) {
    // The bias gradient is one extra column in the general kernels, one extra 4-wide tile in matmul_tn.
    let general = kernel.name == MATMUL.name || kernel.name == MATMUL_TILED.name;
    let bias_cols = match (p.flags & FLAG_BIAS_GRAD != 0, general) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 4,
    };
    let n_ext = p.n + bias_cols;
    pb.push(
        kernel,
        &p,
        &[a, b, aux, c],
        [n_ext.div_ceil(32), p.m.div_ceil(32), 1],
    );
}

/// GPU [`linear_forward`](super::linear_forward): `x: [batch, inp]` at the start of `x`; weight/bias at offsets of `params`.
#[allow(clippy::too_many_arguments)]
pub fn push_linear_forward(
    pb: &mut PlanBuilder<'_>,
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
    let mut p = MatmulParams::new(
        batch,
        out,
        inp,
        Strided::rows(0, inp),
        Strided::transposed(w, inp),
        0,
        out,
    );
    p.flags = FLAG_BIAS | if relu { FLAG_RELU } else { 0 };
    p.bias_off = bias as u32;
    push_matmul(pb, p, x, params, params, y);
}

/// GPU [`linear_backward_input`](super::linear_backward_input); `mask` is the layer's input activation when a ReLU produced it.
#[allow(clippy::too_many_arguments)]
pub fn push_linear_backward_input(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    params: &wgpu::Buffer,
    w: usize,
    dx: &wgpu::Buffer,
    mask: Option<&wgpu::Buffer>,
    batch: usize,
    inp: usize,
    out: usize,
) {
    let mut p = MatmulParams::new(
        batch,
        inp,
        out,
        Strided::rows(0, out),
        Strided::rows(w, inp),
        0,
        inp,
    );
    if mask.is_some() {
        p.flags = FLAG_MASK;
    }
    push_matmul(pb, p, dy, params, mask.unwrap_or(params), dx);
}

/// GPU [`linear_backward_weight`](super::linear_backward_weight): weight and bias gradients in one dispatch.
#[allow(clippy::too_many_arguments)]
pub fn push_linear_backward_weight(
    pb: &mut PlanBuilder<'_>,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    w: usize,
    bias: usize,
    batch: usize,
    inp: usize,
    out: usize,
) {
    let mut p = MatmulParams::new(
        out,
        inp,
        batch,
        Strided::transposed(0, out),
        Strided::rows(0, inp),
        w,
        inp,
    );
    p.flags = FLAG_BIAS_GRAD;
    p.bias_off = bias as u32;
    push_matmul(pb, p, dy, x, x, grads);
}

//! Matrix multiply and the linear layer built on it.
//!
//! Shapes: `x: [batch, in]`, `w: [out, in]` (PyTorch layout), `b: [out]`, `y: [batch, out]`, all row-major.
//! A linear layer needs three products — `Y = X W^T` (forward), `dX = dY W` (backward to the input) and
//! `dW = dY^T X` (backward to the weight) — expressed here through strides, not transposed copies.
//! CPU: the `gemm` crate (strided, multithreaded). GPU: `shaders/matmul.wgsl`, with bias, ReLU, the ReLU
//! backward mask and the bias gradient fused into the same dispatch.

use crate::device::gpu::{GpuContext, Kernel, PlanBuilder};

/// Where a matrix lives inside a flat slice: element `(i, j)` is at `off + i * rs + j * cs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strided {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Strided {
    /// Row-major `[rows, cols]` at `off`.
    pub fn rows(off: usize, cols: usize) -> Self {
        Strided {
            off,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[rows, cols]` matrix at `off` (so it reads as `[cols, rows]`).
    pub fn transposed(off: usize, cols: usize) -> Self {
        Strided {
            off,
            rs: 1,
            cs: cols,
        }
    }

    /// Index one past the last element of a `rows x cols` view (for bounds checks).
    fn end(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return self.off;
        }
        self.off + (rows - 1) * self.rs + (cols - 1) * self.cs + 1
    }
}

/// Work (multiply-adds) above which the CPU product is split across threads.
const PARALLEL_MACS: usize = 1 << 18;

/// `C[m, n] = A[m, k] B[k, n]` (or `C += A B` with `accumulate`), C row-major with row stride `c_rs`.
/// Multithreaded when the product is large. Panics if a view reaches past its slice.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    c: &mut [f32],
    c_off: usize,
    c_rs: usize,
    accumulate: bool,
) {
    let threads = rayon::current_num_threads();
    let parallel = m * n * k >= PARALLEL_MACS && threads > 1;
    matmul_with(m, n, k, a, sa, b, sb, c, c_off, c_rs, accumulate, parallel)
}

/// [`matmul`] on the calling thread only (for callers that already split the work across threads).
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    c: &mut [f32],
    c_off: usize,
    c_rs: usize,
    accumulate: bool,
) {
    matmul_with(m, n, k, a, sa, b, sb, c, c_off, c_rs, accumulate, false)
}

#[allow(clippy::too_many_arguments)]
fn matmul_with(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    c: &mut [f32],
    c_off: usize,
    c_rs: usize,
    accumulate: bool,
    parallel: bool,
) {
    assert!(
        sa.end(m, k) <= a.len(),
        "matmul: A view [{m}x{k}] {sa:?} past len {}",
        a.len()
    );
    assert!(
        sb.end(k, n) <= b.len(),
        "matmul: B view [{k}x{n}] {sb:?} past len {}",
        b.len()
    );
    let sc = Strided {
        off: c_off,
        rs: c_rs,
        cs: 1,
    };
    assert!(
        sc.end(m, n) <= c.len(),
        "matmul: C view [{m}x{n}] past len {}",
        c.len()
    );
    assert!(c_rs >= n || m <= 1, "matmul: C rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[c_off + i * c_rs..c_off + i * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    // Measured on the training shapes (docs/BENCHMARKS.md): gemm's own rayon split loses to splitting
    // C into one column block (or, for narrow C, one row block) per thread and running the serial gemm
    // in each, by up to 1.6x on X·Wᵀ at batch 64.
    let split_cols = n >= m || n >= 64;
    let (dim, align) = if split_cols { (n, 16) } else { (m, 8) };
    let chunk = dim.div_ceil(threads).div_ceil(align) * align;
    let parts = dim.div_ceil(chunk);
    let pa = Shared(a[sa.off..].as_ptr());
    let pb = Shared(b[sb.off..].as_ptr());
    let pc = Shared(c[c_off..].as_mut_ptr());
    let run = |part: usize| {
        let lo = part * chunk;
        let len = chunk.min(dim - lo);
        let (mm, nn, a_off, b_off, c_part) = if split_cols {
            (m, len, 0, lo * sb.cs, lo)
        } else {
            (len, n, lo * sa.rs, 0, lo * c_rs)
        };
        // SAFETY: the asserts above keep every element of the three views inside its slice; each part
        // writes a disjoint block of C, and C does not alias A or B (it is a distinct &mut borrow).
        unsafe {
            gemm::gemm(
                mm,
                nn,
                k,
                pc.get().add(c_part),
                1,
                c_rs as isize,
                accumulate,
                pa.get().add(a_off),
                sa.cs as isize,
                sa.rs as isize,
                pb.get().add(b_off),
                sb.cs as isize,
                sb.rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if parts <= 1 {
        run(0);
    } else {
        rayon::scope(|s| {
            for part in 1..parts {
                s.spawn(move |_| run(part));
            }
            run(0);
        });
    }
}

/// A raw pointer that may cross threads: [`matmul_with`] reads A and B through it and hands each thread
/// a disjoint block of C.
#[derive(Clone, Copy)]
struct Shared<P>(P);
// SAFETY: only dereferenced inside the bounds asserted by `matmul_with`, reads of A/B and writes to
// one thread's own block of C.
unsafe impl<P> Send for Shared<P> {}
unsafe impl<P> Sync for Shared<P> {}
impl<P: Copy> Shared<P> {
    fn get(self) -> P {
        self.0
    }
}

/// The simple triple loop in f64: the oracle the fast paths are tested against.
#[allow(clippy::too_many_arguments)]
pub fn matmul_reference(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                s += a[sa.off + i * sa.rs + kk * sa.cs] as f64
                    * b[sb.off + kk * sb.rs + j * sb.cs] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

/// Linear forward: `y = x w^T + b`, then ReLU when `relu`.
/// `x: [batch, inp]`, `params[w..]: [out, inp]`, `params[bias..]: [out]`, `y: [batch, out]`.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    x: &[f32],
    params: &[f32],
    w: usize,
    bias: usize,
    y: &mut [f32],
    batch: usize,
    inp: usize,
    out: usize,
    relu: bool,
) {
    matmul(
        batch,
        out,
        inp,
        x,
        Strided::rows(0, inp),
        params,
        Strided::transposed(w, inp),
        y,
        0,
        out,
        false,
    );
    let b = &params[bias..bias + out];
    for row in y[..batch * out].chunks_exact_mut(out) {
        for (v, bb) in row.iter_mut().zip(b) {
            let s = *v + bb;
            *v = if relu { s.max(0.0) } else { s };
        }
    }
}

/// Linear backward to the input: `dx = dy w`, zeroed where `mask <= 0` (the ReLU that produced `x`).
/// `dy: [batch, out]`, `dx: [batch, inp]`, `mask: [batch, inp]`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_input(
    dy: &[f32],
    params: &[f32],
    w: usize,
    dx: &mut [f32],
    mask: Option<&[f32]>,
    batch: usize,
    inp: usize,
    out: usize,
) {
    matmul(
        batch,
        inp,
        out,
        dy,
        Strided::rows(0, out),
        params,
        Strided::rows(w, inp),
        dx,
        0,
        inp,
        false,
    );
    if let Some(mask) = mask {
        super::relu_mask(&mut dx[..batch * inp], &mask[..batch * inp]);
    }
}

/// Linear backward to the parameters: `dw = dy^T x` into `grads[w..]`, `db = sum over batch of dy` into
/// `grads[bias..]`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_weight(
    dy: &[f32],
    x: &[f32],
    grads: &mut [f32],
    w: usize,
    bias: usize,
    batch: usize,
    inp: usize,
    out: usize,
) {
    matmul(
        out,
        inp,
        batch,
        dy,
        Strided::transposed(0, out),
        x,
        Strided::rows(0, inp),
        grads,
        w,
        inp,
        false,
    );
    let db = &mut grads[bias..bias + out];
    db.fill(0.0);
    for row in dy[..batch * out].chunks_exact(out) {
        for (g, v) in db.iter_mut().zip(row) {
            *g += v;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// GPU launchers

pub const MATMUL: Kernel = Kernel {
    name: "matmul",
    source: include_str!("../../shaders/matmul.wgsl"),
    entry: "matmul",
};

/// The shared-memory tiled variant of [`MATMUL`] (same file, parameters and epilogues).
pub const MATMUL_TILED: Kernel = Kernel {
    name: "matmul_tiled",
    source: include_str!("../../shaders/matmul.wgsl"),
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

const VEC4_SOURCE: &str = include_str!("../../shaders/matmul_vec4.wgsl");

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
/// ([`MATMUL_TILED`]) rather than the register-blocked ones ([`vec4_variant`], else [`MATMUL`]).
///
/// Software adapters take the register-blocked kernels: on llvmpipe every barrier splits a shader into
/// coroutines, and `wgtrain bench` measures the tiled kernel several times slower there
/// (docs/BENCHMARKS.md). Hardware GPUs take the tiled kernel, whose workgroup memory loads each element
/// once per workgroup instead of once per invocation: the usual choice for hardware, but not measured
/// here (no hardware GPU was available). `WGTRAIN_MATMUL=tiled` forces it; `storage` or `texture`
/// force the register-blocked kernels (`texture` also moves linear layers to ops::matmul_tex).
pub fn tiled_preferred(ctx: &GpuContext) -> bool {
    match std::env::var("WGTRAIN_MATMUL").as_deref() {
        Ok("tiled") => true,
        Ok("storage" | "texture") => false,
        _ => !ctx.adapter.software,
    }
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

/// GPU [`linear_forward`]: `x: [batch, inp]` at the start of `x`; weight/bias at offsets of `params`.
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

/// GPU [`linear_backward_input`]; `mask` is the layer's input activation when a ReLU produced it.
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

/// GPU [`linear_backward_weight`]: weight and bias gradients in one dispatch.
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

//! Matrix multiply and the linear layer built on it.
//!
//! Shapes: `x: [batch, in]`, `w: [out, in]` (PyTorch layout), `b: [out]`, `y: [batch, out]`, all row-major.
//! A linear layer needs three products — `Y = X W^T` (forward), `dX = dY W` (backward to the input) and
//! `dW = dY^T X` (backward to the weight) — expressed here through strides, not transposed copies.
//! CPU: the `gemm` crate (strided, multithreaded). GPU: `shaders/matmul.wgsl`, with bias, ReLU, the ReLU
//! backward mask and the bias gradient fused into the same dispatch.

mod gpu;
mod layer;
pub use layer::{parse, Linear, LinearLayer};

pub use gpu::*;

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
    linear_forward_on(x, params, w, bias, y, (batch, inp, out), relu, true);
}

/// [`linear_forward`], its product on the calling thread alone unless `parallel`.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_on(
    x: &[f32],
    params: &[f32],
    w: usize,
    bias: usize,
    y: &mut [f32],
    (batch, inp, out): (usize, usize, usize),
    relu: bool,
    parallel: bool,
) {
    let (a, b) = (Strided::rows(0, inp), Strided::transposed(w, inp));
    if parallel {
        matmul(batch, out, inp, x, a, params, b, y, 0, out, false);
    } else {
        matmul_serial(batch, out, inp, x, a, params, b, y, 0, out, false);
    }
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

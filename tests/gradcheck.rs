//! CPU ops against hand-computed values, and every backward against central finite differences.
//!
//! The ops are f32, so the finite differences use eps = 1e-3 on a loss accumulated in f64 and compare with
//! |numeric - analytic| <= 2e-3 + 2e-2 |analytic| (the f32 rounding of the loss, ~3e-7, divided by 2 eps
//! gives ~1.5e-4 of noise; the rest is the O(eps^2) truncation error).

mod common;

use common::{assert_close, numeric, random};
use wgtrain::ops::matmul::{
    linear_backward_input, linear_backward_weight, linear_forward, matmul, matmul_reference,
    Strided,
};
use wgtrain::ops::softmax_xent::softmax_xent;

#[test]
fn linear_forward_hand_computed() {
    // x = [1, 2]; w = [[1, 0], [0, 1], [1, 1], [-1, 0]]; b = [0.5, -0.5, 0, 0]
    let params = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0, 0.5, -0.5, 0.0, 0.0];
    let mut y = [0.0; 4];
    linear_forward(&[1.0, 2.0], &params, 0, 8, &mut y, 1, 2, 4, false);
    assert_eq!(y, [1.5, 1.5, 3.0, -1.0]);
    linear_forward(&[1.0, 2.0], &params, 0, 8, &mut y, 1, 2, 4, true);
    assert_eq!(y, [1.5, 1.5, 3.0, 0.0]);
}

#[test]
fn softmax_xent_hand_computed_and_stable() {
    let mut g = [0.0f32; 2];
    let s = softmax_xent(&[0.0, 0.0], &[0], 2, Some(&mut g));
    assert!((s.loss_sum - std::f64::consts::LN_2).abs() < 1e-6);
    assert_eq!(g, [-0.5, 0.5]);
    let s = softmax_xent(&[1.0, 2.0, 3.0], &[2], 3, None);
    assert!((s.loss_sum - 0.407_605_96).abs() < 1e-6, "{}", s.loss_sum);
    assert_eq!(s.correct, 1);
    // Huge logits must not overflow: loss = 1000 for the wrong class, gradient finite.
    let mut g = [0.0f32; 2];
    let s = softmax_xent(&[1000.0, 0.0], &[1], 2, Some(&mut g));
    assert!((s.loss_sum - 1000.0).abs() < 1e-3);
    assert_eq!(s.correct, 0);
    assert!(g.iter().all(|v| v.is_finite()));
    // Ties go to the lowest index.
    let s = softmax_xent(&[2.0, 2.0, 1.0], &[0], 3, None);
    assert_eq!(s.correct, 1);
}

#[test]
fn gemm_matches_reference_on_awkward_strided_shapes() {
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 37, 5),
        (37, 1, 5),
        (33, 65, 17),
        (64, 10, 1000),
        (130, 70, 3),
        // Large enough to be split across threads: by columns (odd width) and by rows (narrow C).
        (70, 301, 33),
        (301, 40, 50),
    ] {
        let a = random(m * k + 7, 1);
        let b = random(k * n + 5, 2);
        for (sa, sb) in [
            (Strided::rows(3, k), Strided::rows(2, n)),
            (Strided::transposed(0, m), Strided::transposed(1, k)),
        ] {
            let expect = matmul_reference(m, n, k, &a, sa, &b, sb);
            let mut c = vec![0.0; m * n];
            matmul(m, n, k, &a, sa, &b, sb, &mut c, 0, n, false);
            assert_close(&c, &expect, 1e-4, 1e-4, &format!("gemm {m}x{n}x{k}"));
            // accumulate: C += A B
            matmul(m, n, k, &a, sa, &b, sb, &mut c, 0, n, true);
            let twice: Vec<f32> = expect.iter().map(|v| 2.0 * v).collect();
            assert_close(&c, &twice, 2e-4, 1e-4, "gemm accumulate");
            // C inside a larger buffer: offset and a row stride wider than n; the gaps stay untouched.
            let (c_off, c_rs) = (5, n + 3);
            let mut big = vec![-7.0; c_off + m * c_rs];
            matmul(m, n, k, &a, sa, &b, sb, &mut big, c_off, c_rs, false);
            for i in 0..m {
                let row = &big[c_off + i * c_rs..c_off + i * c_rs + n];
                assert_close(
                    row,
                    &expect[i * n..(i + 1) * n],
                    1e-4,
                    1e-4,
                    "gemm strided C",
                );
                assert!(big[c_off + i * c_rs + n..c_off + (i + 1) * c_rs]
                    .iter()
                    .all(|&v| v == -7.0));
            }
            assert!(big[..c_off].iter().all(|&v| v == -7.0));
        }
    }
}

/// A two-layer net evaluated with the CPU ops: x -> fc(h) + relu -> fc(c) -> mean softmax-xent.
struct Net {
    b: usize,
    i: usize,
    h: usize,
    c: usize,
    y: Vec<u32>,
}

impl Net {
    // Flat layout: w1 [h, i] at 0, b1 [h], w2 [c, h], b2 [c].
    fn offsets(&self) -> (usize, usize, usize, usize) {
        let w1 = 0;
        let b1 = self.h * self.i;
        let w2 = b1 + self.h;
        let b2 = w2 + self.c * self.h;
        (w1, b1, w2, b2)
    }

    fn len(&self) -> usize {
        self.offsets().3 + self.c
    }

    fn loss(&self, p: &[f32], x: &[f32]) -> f64 {
        let (w1, b1, w2, b2) = self.offsets();
        let mut hid = vec![0.0; self.b * self.h];
        let mut z = vec![0.0; self.b * self.c];
        linear_forward(x, p, w1, b1, &mut hid, self.b, self.i, self.h, true);
        linear_forward(&hid, p, w2, b2, &mut z, self.b, self.h, self.c, false);
        softmax_xent(&z, &self.y, self.c, None).loss_sum / self.b as f64
    }

    /// Smallest |pre-activation| of the hidden layer: finite differences are only valid away from the kink.
    fn min_abs_preactivation(&self, p: &[f32], x: &[f32]) -> f32 {
        let (w1, b1, _, _) = self.offsets();
        let mut pre = vec![0.0; self.b * self.h];
        linear_forward(x, p, w1, b1, &mut pre, self.b, self.i, self.h, false);
        pre.iter().fold(f32::MAX, |m, v| m.min(v.abs()))
    }

    /// Analytic gradients (params, input) with the backward ops, in the order the executors use them.
    fn grads(&self, p: &[f32], x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (w1, b1, w2, b2) = self.offsets();
        let mut hid = vec![0.0; self.b * self.h];
        let mut z = vec![0.0; self.b * self.c];
        linear_forward(x, p, w1, b1, &mut hid, self.b, self.i, self.h, true);
        linear_forward(&hid, p, w2, b2, &mut z, self.b, self.h, self.c, false);
        let mut dz = vec![0.0; self.b * self.c];
        softmax_xent(&z, &self.y, self.c, Some(&mut dz));
        let mut g = vec![0.0; self.len()];
        linear_backward_weight(&dz, &hid, &mut g, w2, b2, self.b, self.h, self.c);
        let mut dh = vec![0.0; self.b * self.h];
        linear_backward_input(&dz, p, w2, &mut dh, Some(&hid), self.b, self.h, self.c);
        linear_backward_weight(&dh, x, &mut g, w1, b1, self.b, self.i, self.h);
        let mut dx = vec![0.0; self.b * self.i];
        linear_backward_input(&dh, p, w1, &mut dx, None, self.b, self.i, self.h);
        (g, dx)
    }
}

fn gradcheck(b: usize, i: usize, h: usize, c: usize) {
    let net = Net {
        b,
        i,
        h,
        c,
        y: (0..b as u32).map(|s| (s * 7 + 3) % c as u32).collect(),
    };
    // Find a seed whose hidden pre-activations all stay clear of the ReLU kink by >> eps.
    let (p, x) = (0..100u64)
        .map(|s| (random(net.len(), 100 + s), random(b * i, 200 + s)))
        .find(|(p, x)| net.min_abs_preactivation(p, x) > 0.01)
        .expect("a kink-free seed");
    let (g, dx) = net.grads(&p, &x);
    let eps = 1e-3;
    let gn = numeric(|pp| net.loss(pp, &x), &p, eps);
    assert_close(
        &g,
        &gn,
        2e-3,
        2e-2,
        &format!("param grads b{b} i{i} h{h} c{c}"),
    );
    let dxn = numeric(|xx| net.loss(&p, xx), &x, eps);
    assert_close(
        &dx,
        &dxn,
        2e-3,
        2e-2,
        &format!("input grads b{b} i{i} h{h} c{c}"),
    );
    // Not vacuous: the gradients are far from zero somewhere.
    assert!(g.iter().any(|v| v.abs() > 1e-2));
}

#[test]
fn linear_relu_softmax_backward_matches_finite_differences() {
    gradcheck(4, 5, 7, 3);
}

#[test]
fn gradcheck_batch_1_and_odd_sizes() {
    gradcheck(1, 3, 9, 10);
    gradcheck(5, 11, 1, 2);
}

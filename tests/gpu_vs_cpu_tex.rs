//! The texture-operand matmul kernels (ops::matmul_tex, used by linear layers on software adapters)
//! against the CPU ops, on shapes that are not multiples of the 16x16 block, the 8-wide workgroup or
//! the 4-float texel, with batches smaller than the textures were allocated for.
//! Skips with a message when there is no adapter; fails instead when `CI` is set.

mod common;

use common::{assert_close, download, gpu, random, run, upload_f32};
use wgtrain::device::gpu::PlanBuilder;
use wgtrain::ops::matmul as mm;
use wgtrain::ops::matmul_tex::{push_linear_backward_tex, push_linear_forward_tex, LinearTextures};

#[test]
fn texture_linear_kernels_match_cpu_ops() {
    let Some(ctx) = gpu() else { return };
    // (batch, texture capacity, inp, out)
    for &(batch, cap, inp, out) in &[
        (1, 1, 1, 1),
        (3, 5, 17, 5),
        (37, 64, 33, 130),
        (64, 64, 784, 10),
        (17, 20, 6, 19),
        (64, 64, 784, 256),
        (130, 130, 70, 3),
    ] {
        let tex = LinearTextures::new(&ctx, cap, inp, out)
            .unwrap()
            .expect("small textures fit");
        // params: padding, weight [out, inp] at 4, bias [out] after it.
        let w = 4;
        let bias = w + out * inp;
        let params = random(bias + out, 21);
        let x = random(batch * inp, 22);
        let dy = random(batch * out, 23);
        let (gp, gx, gdy) = (
            upload_f32(&ctx, &params),
            upload_f32(&ctx, &x),
            upload_f32(&ctx, &dy),
        );
        let what = format!("batch {batch} inp {inp} out {out}");
        for relu in [false, true] {
            let mut expect = vec![0.0; batch * out];
            mm::linear_forward(&x, &params, w, bias, &mut expect, batch, inp, out, relu);
            let gy = upload_f32(&ctx, &vec![0.0; batch * out]);
            let mut pb = PlanBuilder::new(&ctx);
            push_linear_forward_tex(&mut pb, &tex, &gx, &gp, w, bias, &gy, batch, inp, out, relu);
            run(&ctx, pb);
            let got = download(&ctx, &gy, batch * out);
            assert_close(&got, &expect, 1e-4, 1e-4, &format!("forward, {what}"));
        }
        // The backward reads the input's texture (packed by the forward) both as the weight
        // gradient's operand and as the ReLU mask, here x itself (about half negative).
        for masked in [false, true] {
            let mut dx_expect = vec![0.0; batch * inp];
            let mask = masked.then_some(&x[..]);
            mm::linear_backward_input(&dy, &params, w, &mut dx_expect, mask, batch, inp, out);
            let mut g_expect = vec![0.0; params.len()];
            mm::linear_backward_weight(&dy, &x, &mut g_expect, w, bias, batch, inp, out);
            let gdx = upload_f32(&ctx, &vec![0.0; batch * inp]);
            let gg = upload_f32(&ctx, &vec![0.0; params.len()]);
            let gy = upload_f32(&ctx, &vec![0.0; batch * out]);
            let mut pb = PlanBuilder::new(&ctx);
            push_linear_forward_tex(
                &mut pb, &tex, &gx, &gp, w, bias, &gy, batch, inp, out, false,
            );
            push_linear_backward_tex(
                &mut pb,
                &tex,
                &gdy,
                &gp,
                &gg,
                w,
                bias,
                Some((&gdx, masked)),
                batch,
                inp,
                out,
            );
            run(&ctx, pb);
            let dx = download(&ctx, &gdx, batch * inp);
            assert_close(&dx, &dx_expect, 1e-4, 1e-4, &format!("dx, {what}"));
            let g = download(&ctx, &gg, params.len());
            // The first `w` floats are not gradients of anything and stay zero on both sides.
            assert_close(&g, &g_expect, 1e-4, 1e-4, &format!("dW and db, {what}"));
        }
    }
}

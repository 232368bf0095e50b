//! Helpers shared by the integration tests: the GPU context (skip locally, FAIL under CI when there is
//! no adapter), buffer upload/download, running a plan, random data and comparisons.
#![allow(dead_code)]

pub mod cli;

use std::sync::{Arc, OnceLock};
use wgtrain::device::gpu::{GpuContext, PlanBuilder};
use wgtrain::device::{AdapterFilter, Device, DeviceChoice};
use wgtrain::rng::Rng;

/// The GPU for this test binary, or `None` (after printing why) when there is none and `CI` is unset.
/// Under `CI` a missing adapter fails the test: CI must not go green without running the shaders.
pub fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            // Silences a warning of headless Vulkan loaders run as root.
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
        match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
            Ok((Device::Gpu(ctx), why)) => {
                eprintln!("GPU tests run on {why}");
                Ok(ctx)
            }
            Ok((Device::Cpu, _)) => Err("selection returned the CPU".into()),
            Err(e) => Err(e.to_string()),
        }
    });
    match r {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but no GPU adapter could be opened: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test (no adapter; set CI=1 to make this a failure): {e}");
            None
        }
    }
}

pub fn upload_f32(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    use wgpu::BufferUsages as U;
    let b = ctx
        .storage_buffer("test", data.len(), U::COPY_DST | U::COPY_SRC)
        .unwrap();
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

/// Like [`upload_f32`], but allocated as the training executor allocates the buffers conv kernels
/// read, so a software adapter takes the uniform-window variants (`wgtrain::device::window`).
pub fn upload_windowed(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    use wgpu::BufferUsages as U;
    let usage = U::COPY_DST | U::COPY_SRC;
    let b = wgtrain::device::window::buffer(ctx, "test", data.len(), usage).unwrap();
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

pub fn upload_u32(ctx: &GpuContext, data: &[u32]) -> wgpu::Buffer {
    use wgpu::BufferUsages as U;
    let b = ctx
        .storage_buffer("test", data.len(), U::COPY_DST | U::COPY_SRC)
        .unwrap();
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

pub fn download(ctx: &GpuContext, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let raw = ctx
        .read_buffer(b, (len * 4) as u64, "test readback")
        .unwrap();
    bytemuck::pod_collect_to_vec(&raw)
}

/// Build the plan, record it into one pass, submit and wait; returns the plan's dispatch count.
pub fn run(ctx: &GpuContext, pb: PlanBuilder<'_>) -> usize {
    let plan = pb.finish().unwrap();
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        plan.record(&mut pass);
    }
    ctx.queue.submit([enc.finish()]);
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    ctx.check("test").unwrap();
    plan.len()
}

pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

/// Assert |a - b| <= atol + rtol * |b| elementwise, reporting the worst element.
pub fn assert_close(a: &[f32], b: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0f32);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let excess = (x - y).abs() - (atol + rtol * y.abs());
        assert!(x.is_finite(), "{what}: got a non-finite {x} at {i}");
        assert!(
            y.is_finite(),
            "{what}: the expected value at {i} is {y}, not a number to compare with"
        );
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: element {i}: got {} expected {} (atol {atol}, rtol {rtol})",
        a[i],
        b[i]
    );
}

/// Central differences of `f` at `at` with step `eps`.
pub fn numeric(f: impl Fn(&[f32]) -> f64, at: &[f32], eps: f32) -> Vec<f32> {
    let mut v = at.to_vec();
    (0..at.len())
        .map(|j| {
            let orig = v[j];
            v[j] = orig + eps;
            let up = f(&v);
            v[j] = orig - eps;
            let down = f(&v);
            v[j] = orig;
            ((up - down) / (2.0 * eps as f64)) as f32
        })
        .collect()
}

/// `(batch, ConvShape { in_c, in_h, in_w, out_c, kh, kw, stride, pad })`.
#[allow(clippy::too_many_arguments, dead_code)]
pub fn conv_case(
    batch: usize,
    in_c: usize,
    in_h: usize,
    in_w: usize,
    out_c: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
) -> (usize, wgtrain::ops::conv2d::ConvShape) {
    let s = wgtrain::ops::conv2d::ConvShape {
        in_c,
        in_h,
        in_w,
        out_c,
        kh,
        kw,
        stride,
        pad,
    };
    (batch, s)
}

/// Convolution shapes every conv test covers, with their batch size: padding 0/1/2, stride 1, 2 and 3,
/// non-square inputs and kernels, channel counts not a multiple of 4, batch 1.
pub fn conv_cases() -> Vec<(usize, wgtrain::ops::conv2d::ConvShape)> {
    let c = conv_case;
    vec![
        c(1, 1, 5, 7, 3, 3, 3, 1, 1),
        c(2, 3, 8, 6, 5, 3, 2, 2, 0),
        c(3, 2, 7, 7, 6, 5, 5, 2, 2),
        c(2, 5, 4, 9, 1, 1, 1, 1, 0),
        // Output rows of 13 and 16: the CPU im2col's 8-float blocks, with and without an overlapping tail.
        c(2, 2, 6, 13, 3, 3, 3, 1, 1),
        c(1, 1, 4, 18, 2, 3, 3, 1, 0),
        // Strided: stride 3 with padding and a 3x2 kernel; a 1x1 stride-2 shortcut on odd sizes; a
        // stride-2 output row of 20 (the phase-split im2col's contiguous copies, 8-float blocks + tail).
        c(2, 3, 9, 11, 4, 3, 2, 3, 1),
        c(2, 4, 7, 9, 3, 1, 1, 2, 0),
        c(1, 2, 5, 40, 3, 3, 3, 2, 1),
    ]
}

/// Train the same model from the same init on the CPU and on `ctx` for `steps` steps of (x, y), checking
/// after each step that the GPU's update (new - init) matches the CPU's to 1e-5 absolute + 1e-2
/// relative (Adam's lr is 1e-3: a weight moves by up to ~1e-3 per step), and at the end that the
/// logits agree to 1e-4. Returns both executors for further checks.
pub fn assert_steps_agree(
    ctx: &Arc<GpuContext>,
    model: &wgtrain::nn::Model,
    init: &[f32],
    optim: wgtrain::nn::OptimConfig,
    x: &[f32],
    y: &[u32],
    steps: usize,
) -> (
    Box<dyn wgtrain::nn::Executor>,
    Box<dyn wgtrain::nn::Executor>,
) {
    let batch = y.len();
    let mut cpu = Device::Cpu.executor(model, init, optim, batch).unwrap();
    let mut gpu = Device::Gpu(ctx.clone())
        .executor(model, init, optim, batch)
        .unwrap();
    for step in 1..=steps {
        cpu.train_step(x, y).unwrap();
        gpu.train_step(x, y).unwrap();
        let (pc, pg) = (cpu.params().unwrap(), gpu.params().unwrap());
        let dc: Vec<f32> = pc.iter().zip(init).map(|(a, b)| a - b).collect();
        let dg: Vec<f32> = pg.iter().zip(init).map(|(a, b)| a - b).collect();
        let what = format!("{} {optim:?}: update after step {step}", model.spec());
        assert_close(&dg, &dc, 1e-5, 1e-2, &what);
        assert!(
            dc.iter().any(|d| d.abs() > 1e-4),
            "{what}: the step changed nothing"
        );
        let frozen = optim.frozen_prefix;
        assert!(
            pg[..frozen] == init[..frozen],
            "{what}: frozen prefix moved"
        );
    }
    let (sc, sg) = (cpu.state().unwrap(), gpu.state().unwrap());
    assert_close(
        &sg,
        &sc,
        1e-5,
        1e-3,
        &format!("{} running statistics", model.spec()),
    );
    let (lc, lg) = (cpu.logits(x).unwrap(), gpu.logits(x).unwrap());
    assert_close(&lg, &lc, 1e-4, 1e-3, &format!("{} logits", model.spec()));
    (cpu, gpu)
}

/// The parameter gradient a model computes in training mode — read off one SGD step with lr 1 — against
/// central differences of the training-mode mean loss (taken as one step with lr 0, so BatchNorm uses
/// batch statistics and dropout the same step-1 masks). Tolerance 2e-3 + 5e-2 relative: f32 loss
/// rounding and the parameter subtraction dominate. Also checks that most gradients are non-zero.
pub fn gradcheck_model(spec: &str, input: wgtrain::data::ImageShape, classes: usize, batch: usize) {
    use wgtrain::nn::OptimConfig;
    let model = wgtrain::models::build(None, Some(spec), input, classes).unwrap();
    let params = model.init_params(3);
    // Move BatchNorm's weight and bias off 1 and 0, so their gradients are exercised generally.
    let params: Vec<f32> = params
        .iter()
        .zip(random(params.len(), 77))
        .map(|(p, r)| p + 0.3 * r)
        .collect();
    let x = random(batch * input.len(), 101);
    let y: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 7 + 1) % classes as u32)
        .collect();
    let mut exec = Device::Cpu
        .executor(&model, &params, OptimConfig::sgd(1.0, 0.0), batch)
        .unwrap();
    exec.train_step(&x, &y).unwrap();
    let after = exec.params().unwrap();
    let analytic: Vec<f32> = params.iter().zip(&after).map(|(b, a)| b - a).collect();
    let loss = |p: &[f32]| {
        let mut e = Device::Cpu
            .executor(&model, p, OptimConfig::sgd(0.0, 0.0), batch)
            .unwrap();
        e.train_step(&x, &y).unwrap();
        e.take_train_stats().unwrap().mean_loss()
    };
    let numeric = numeric(loss, &params, 1e-3);
    assert_close(&analytic, &numeric, 2e-3, 5e-2, &format!("{spec} gradient"));
    let live = analytic.iter().filter(|g| g.abs() > 1e-4).count();
    assert!(
        live > model.num_params() / 4,
        "{spec}: gradients mostly zero ({live} live)"
    );
}

/// Three SGD steps of the model `spec` on `ctx` agree with the CPU (updates, running statistics,
/// logits): the executor-level check of an op's kernels.
pub fn assert_spec_steps_agree(
    ctx: &Arc<GpuContext>,
    spec: &str,
    input: wgtrain::data::ImageShape,
    classes: usize,
    batch: usize,
) {
    let model = wgtrain::models::build(None, Some(spec), input, classes).unwrap();
    let init = model.init_params(11);
    let x = random(batch * input.len(), 12);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
    // SGD, not Adam: Adam's first update is +-lr whatever the gradient's size, so a gradient that is
    // zero up to rounding (a bias before a BatchNorm) would flip its sign between devices.
    let mut optim = wgtrain::nn::OptimConfig::sgd(0.05, 0.9);
    optim.seed = 5;
    assert_steps_agree(ctx, &model, &init, optim, &x, &y, 3);
}

/// Three Adam steps of an mlp (batch 37) and a cnn (batch 9) on `ctx` agree with the CPU: the
/// executor-level check of a matmul path picked by `WGTRAIN_MATMUL`. The same cases as
/// tests/gpu_vs_cpu.rs and tests/gpu_vs_cpu_conv.rs. (Adam's first updates are +-lr whatever a
/// gradient's size, so a gradient that is zero up to rounding can flip an update's sign under another
/// summation order; these seeds have none.)
pub fn assert_mlp_and_cnn_steps_agree(ctx: &Arc<GpuContext>) {
    let input = wgtrain::data::ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    for (name, batch, init_seed, x_seed) in [("mlp", 37, 5, 31), ("cnn", 9, 11, 12)] {
        let model = wgtrain::models::build(Some(name), None, input, 10).unwrap();
        let init = model.init_params(init_seed);
        let x = random(batch * 784, x_seed);
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        let optim = wgtrain::nn::OptimConfig::adam(1e-3);
        assert_steps_agree(ctx, &model, &init, optim, &x, &y, 3);
    }
}

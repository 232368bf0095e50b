//! The kernels `wgtrain bench` and the criterion benchmarks (benches/training.rs) time: the matmul
//! products of the mlp's and the cnn's linear layers, the cnn's convolutions in all three directions,
//! and its max pooling, each set up once on a device and run on demand.

use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::device::policy::CpuConv;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::conv2d::{self as cv, ConvShape};
use crate::ops::matmul::{self as mm, MatmulParams, Strided};
use crate::ops::matmul_tex as mt;
use crate::ops::pool::{self as pl, PoolKind, PoolShape};
use crate::rng::Rng;

/// One kernel on one device with its operands in place: what it is, its FLOPs per call, and how to
/// run it.
pub struct KernelCase<'a> {
    pub kernel: String,
    pub shape: String,
    pub flops: f64,
    run: Box<dyn FnMut(usize) -> Result<()> + 'a>,
}

impl KernelCase<'_> {
    /// Run the kernel `reps` times and wait for it: on the CPU `reps` calls; on a GPU its dispatches
    /// recorded `reps` times into one compute pass, one submit, then a wait for the queue.
    pub fn run(&mut self, reps: usize) -> Result<()> {
        (self.run)(reps)
    }
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn cpu_case<'a>(kernel: &str, shape: &str, flops: f64, mut f: impl FnMut() + 'a) -> KernelCase<'a> {
    KernelCase {
        kernel: kernel.into(),
        shape: shape.into(),
        flops,
        run: Box::new(move |reps| {
            for _ in 0..reps {
                f();
            }
            Ok(())
        }),
    }
}

/// A GPU case: the dispatches `build` adds, built into one plan now (pipelines included).
fn gpu_case<'a>(
    ctx: &'a GpuContext,
    kernel: &str,
    shape: &str,
    flops: f64,
    build: impl FnOnce(&mut PlanBuilder<'_>),
) -> Result<KernelCase<'a>> {
    let mut pb = PlanBuilder::new(ctx);
    build(&mut pb);
    let plan = pb.finish()?;
    Ok(KernelCase {
        kernel: kernel.into(),
        shape: shape.into(),
        flops,
        run: Box::new(move |reps| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for _ in 0..reps {
                    plan.record(&mut pass);
                }
            }
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::gpu("benchmark", e.to_string()))?;
            ctx.check("benchmark")
        }),
    })
}

fn upload(ctx: &GpuContext, data: &[f32]) -> Result<wgpu::Buffer> {
    let b = ctx.storage_buffer("bench", data.len(), wgpu::BufferUsages::COPY_DST)?;
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    Ok(b)
}

/// A buffer a conv kernel reads, allocated as the training executor allocates it, so the kernels pick
/// the same variants as in training.
fn upload_windowed(ctx: &GpuContext, data: &[f32]) -> Result<wgpu::Buffer> {
    let usage = wgpu::BufferUsages::COPY_DST;
    let b = crate::device::window::buffer(ctx, "bench", data.len(), usage)?;
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    Ok(b)
}

/// Every kernel case on `device`, in report order.
pub fn kernel_cases(device: &Device) -> Result<Vec<KernelCase<'_>>> {
    let mut out = matmul_cases(device)?;
    out.extend(conv_cases(device)?);
    out.extend(pool_cases(device)?);
    Ok(out)
}

/// A square matmul and the three products of the mlp's first layer and the cnn's fc layer. On a GPU
/// each has the register-blocked kernel (the plain row), the shared-memory tiled variant (what
/// hardware GPUs train with, see `mm::tiled_preferred`) and, where software adapters train with them,
/// the texture kernels with their packing.
fn matmul_cases(device: &Device) -> Result<Vec<KernelCase<'_>>> {
    let products: [(&str, usize, usize, usize, bool, bool); 7] = [
        ("matmul", 512, 512, 512, false, false),
        ("linear forward (X W^T)", 64, 256, 784, false, true),
        ("linear backward input (dY W)", 64, 784, 256, false, false),
        ("linear backward weight (dY^T X)", 256, 784, 64, true, false),
        ("linear forward (X W^T)", 256, 256, 784, false, true),
        ("linear forward (X W^T)", 64, 128, 1568, false, true),
        (
            "linear backward weight (dY^T X)",
            128,
            1568,
            64,
            true,
            false,
        ),
    ];
    let mut out = Vec::new();
    for (name, m, n, k, ta, tb) in products {
        let shape = format!("{m}x{n}x{k}");
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let sa = if ta {
            Strided::transposed(0, m)
        } else {
            Strided::rows(0, k)
        };
        let sb = if tb {
            Strided::transposed(0, k)
        } else {
            Strided::rows(0, n)
        };
        let flops = 2.0 * (m * n * k) as f64;
        let ctx = match device {
            Device::Cpu => {
                let mut c = vec![0f32; m * n];
                out.push(cpu_case(name, &shape, flops, move || {
                    mm::matmul(m, n, k, &a, sa, &b, sb, &mut c, 0, n, false)
                }));
                continue;
            }
            Device::Gpu(ctx) => ctx,
        };
        let (ga, gb, gc) = (
            upload(ctx, &a)?,
            upload(ctx, &b)?,
            upload(ctx, &vec![0.0; m * n])?,
        );
        let p = MatmulParams::new(m, n, k, sa, sb, 0, n);
        out.push(gpu_case(
            ctx,
            &format!("{name} (tiled)"),
            &shape,
            flops,
            |pb| mm::push_matmul_with(pb, p, &ga, &gb, &ga, &gc, &mm::MATMUL_TILED),
        )?);
        let layout = match (ta, tb) {
            (false, true) => mt::Layout::Nt,
            (false, false) => mt::Layout::Nn,
            _ => mt::Layout::Tn,
        };
        let a_dims = if ta { (k, m) } else { (m, k) };
        let b_dims = if tb { (n, k) } else { (k, n) };
        if mt::preferred(ctx)
            && mt::fits(ctx, a_dims.0, a_dims.1)
            && mt::fits(ctx, b_dims.0, b_dims.1)
        {
            let at = mt::texture_matrix(ctx, "bench a", a_dims.0, a_dims.1)?;
            let bt = mt::texture_matrix(ctx, "bench b", b_dims.0, b_dims.1)?;
            out.push(gpu_case(
                ctx,
                &format!("{name} (tex)"),
                &shape,
                flops,
                |pb| {
                    mt::push_pack(pb, &ga, 0, a_dims.1, a_dims.0, a_dims.1, &at);
                    mt::push_pack(pb, &gb, 0, b_dims.1, b_dims.0, b_dims.1, &bt);
                    let p = mt::TexParams::new(m, n, k, 0, n);
                    mt::push_matmul_tex(pb, layout, p, &at, &bt, None, &ga, &gc);
                },
            )?);
        }
        let blocked = mm::register_blocked(&p);
        out.push(gpu_case(ctx, name, &shape, flops, |pb| {
            mm::push_matmul_with(pb, p, &ga, &gb, &ga, &gc, blocked)
        })?);
    }
    Ok(out)
}

/// The three passes of one CPU convolution shape on `kernels`, named by the kernels that run it
/// (`[winograd]`, `[direct avx2]` or `[direct avx512]`, `[im2col+gemm]`). Winograd's GFLOP/s count the direct convolution's
/// FLOPs: an effective rate, which may pass the CPU's peak.
fn cpu_conv_cases(
    out: &mut Vec<KernelCase<'_>>,
    s: ConvShape,
    shape: &str,
    flops: f64,
    (params, x, dy): (Vec<f32>, Vec<f32>, Vec<f32>),
    batch: usize,
    kernels: CpuConv,
) {
    let bias = s.out_c * s.k();
    let threads = rayon::current_num_threads();
    let work = || cv::ConvWork::with_kernels(&s, threads, kernels);
    let (mut w1, mut w2, mut w3) = (work(), work(), work());
    let tag = if w1.is_winograd() {
        "winograd".to_string()
    } else if let Some(simd) = w1.direct_simd() {
        format!("direct {}", simd.name())
    } else {
        "im2col+gemm".to_string()
    };
    let (p1, p2, x1, dy1, dy2) = (params.clone(), params, x.clone(), dy.clone(), dy);
    let mut y = vec![0.0; batch * s.out_len()];
    let mut dx = vec![0.0; batch * s.in_len()];
    let mut grads = vec![0.0; p1.len()];
    out.push(cpu_case(
        &format!("conv2d forward [{tag}]"),
        shape,
        flops,
        move || cv::conv2d_forward(&x1, &p1, 0, Some(bias), &mut y, &mut w1, batch, &s, true),
    ));
    out.push(cpu_case(
        &format!("conv2d backward input [{tag}]"),
        shape,
        flops,
        move || cv::conv2d_backward_input(&dy1, &p2, 0, &mut dx, None, &mut w2, batch, &s),
    ));
    out.push(cpu_case(
        &format!("conv2d backward weight [{tag}]"),
        shape,
        flops,
        move || cv::conv2d_backward_weight(&dy2, &x, &mut grads, 0, Some(bias), &mut w3, batch, &s),
    ));
}

/// The cnn's two convolutions at batch 64: forward (with bias and ReLU), input and weight gradient.
fn conv_cases(device: &Device) -> Result<Vec<KernelCase<'_>>> {
    let batch = 64;
    let mut out = Vec::new();
    // The cnn's two convolutions, resnet's 3x3 convolutions at 28x28 and 7x7, then its downsampling
    // ones (3x3 stride 2, 1x1 shortcut).
    let down = |kh, pad| ConvShape {
        kh,
        kw: kh,
        stride: 2,
        pad,
        ..ConvShape::same_3x3(16, 28, 32)
    };
    for s in [
        ConvShape::same_3x3(1, 28, 16),
        ConvShape::same_3x3(16, 14, 32),
        ConvShape::same_3x3(16, 28, 16),
        ConvShape::same_3x3(64, 7, 64),
        down(3, 1),
        down(1, 0),
    ] {
        let stride = if s.stride == 1 {
            String::new()
        } else {
            format!(" s{}", s.stride)
        };
        let shape = format!(
            "batch {batch}, {}x{}x{} -> {}, {}x{}{stride}",
            s.in_c, s.in_h, s.in_w, s.out_c, s.kh, s.kw
        );
        let flops = 2.0 * (batch * s.macs()) as f64;
        let params = random(s.out_c * s.k() + s.out_c, 3);
        let bias = s.out_c * s.k();
        let x = random(batch * s.in_len(), 4);
        let dy = random(batch * s.out_len(), 5);
        let ctx = match device {
            Device::Cpu => {
                // The policy's kernels, and for a shape Winograd can run the other of Winograd and
                // the direct kernels beside them (both ways in one sitting).
                let default = crate::device::policy::cpu_conv().map_or(CpuConv::Gemm, |p| p.0);
                let mut variants = vec![default];
                if crate::ops::conv2d_winograd::pays(&s) {
                    match default {
                        CpuConv::Direct => variants.push(CpuConv::Winograd),
                        CpuConv::Winograd => variants.push(CpuConv::Direct),
                        CpuConv::Gemm => {}
                    }
                }
                for kernels in variants {
                    let data = (params.clone(), x.clone(), dy.clone());
                    cpu_conv_cases(&mut out, s, &shape, flops, data, batch, kernels);
                }
                continue;
            }
            Device::Gpu(ctx) => ctx,
        };
        let (gp, gx, gdy) = (
            upload_windowed(ctx, &params)?,
            upload_windowed(ctx, &x)?,
            upload_windowed(ctx, &dy)?,
        );
        let gy = upload(ctx, &vec![0.0; batch * s.out_len()])?;
        let gdx = upload(ctx, &vec![0.0; batch * s.in_len()])?;
        let gg = upload(ctx, &vec![0.0; params.len()])?;
        let gpart = upload(ctx, &vec![0.0; s.gpu_partial_len(batch)])?;
        out.push(gpu_case(ctx, "conv2d forward", &shape, flops, |pb| {
            cv::push_conv2d_forward(pb, &gx, &gp, 0, Some(bias), &gy, batch, &s, true)
        })?);
        out.push(gpu_case(
            ctx,
            "conv2d backward input",
            &shape,
            flops,
            |pb| cv::push_conv2d_backward_input(pb, &gdy, &gp, 0, &gdx, None, batch, &s),
        )?);
        out.push(gpu_case(
            ctx,
            "conv2d backward weight",
            &shape,
            flops,
            |pb| {
                cv::push_conv2d_backward_weight(
                    pb,
                    &gdy,
                    &gx,
                    &gpart,
                    &gg,
                    0,
                    Some(bias),
                    batch,
                    &s,
                )
            },
        )?);
    }
    Ok(out)
}

/// Max pooling of the cnn's first block at batch 64 (FLOPs counted as one comparison per window
/// element).
fn pool_cases(device: &Device) -> Result<Vec<KernelCase<'_>>> {
    let batch = 64;
    let s = PoolShape {
        kind: PoolKind::Max,
        channels: 16,
        in_h: 28,
        in_w: 28,
        k: 2,
        stride: 2,
    };
    let shape = format!("batch {batch}, 16x28x28, 2x2");
    let flops = (batch * s.in_len()) as f64;
    let x = random(batch * s.in_len(), 6);
    let dy = random(batch * s.out_len(), 7);
    let out_len = batch * s.out_len();
    match device {
        Device::Cpu => {
            // The backward pass reads the argmax the forward pass wrote: fill it once here.
            let mut y = vec![0.0; out_len];
            let mut arg = vec![0u32; out_len];
            pl::pool_forward(&x, &mut y, &mut arg, batch, &s);
            let mut arg_fwd = arg.clone();
            let mut dx = vec![0.0; x.len()];
            let fwd = cpu_case("maxpool forward", &shape, flops, move || {
                pl::pool_forward(&x, &mut y, &mut arg_fwd, batch, &s)
            });
            let bwd = cpu_case("maxpool backward", &shape, flops, move || {
                pl::pool_backward(&dy, &arg, &mut dx, None, batch, &s)
            });
            Ok(vec![fwd, bwd])
        }
        Device::Gpu(ctx) => {
            let (gx, gdy) = (upload(ctx, &x)?, upload(ctx, &dy)?);
            let gy = upload(ctx, &vec![0.0; out_len])?;
            let garg = upload(ctx, &vec![0.0; out_len])?;
            let gdx = upload(ctx, &vec![0.0; x.len()])?;
            Ok(vec![
                gpu_case(ctx, "maxpool forward", &shape, flops, |pb| {
                    pl::push_pool_forward(pb, &gx, &garg, &gy, batch, &s)
                })?,
                gpu_case(ctx, "maxpool backward", &shape, flops, |pb| {
                    pl::push_pool_backward(pb, &gdy, &garg, &gdx, None, batch, &s)
                })?,
            ])
        }
    }
}

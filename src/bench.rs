//! `wgtrain bench`: kernel GFLOP/s and model images/s on the CPU and each GPU adapter, warm-up apart
//! from steady state, with the share of the CPU's estimated f32 peak and GPU dispatches per step.

use crate::data::{DataChoice, DataSplit};
use crate::device::gpu::{GpuContext, PlanBuilder};
use crate::device::{cpu_description, Device};
use crate::error::{Error, Result};
use crate::experiments::runner::{measure_throughput, Throughput};
use crate::models;
use crate::ops::conv2d::{self as cv, ConvShape};
use crate::ops::matmul::{self as mm, MatmulParams, Strided};
use crate::ops::matmul_tex as mt;
use crate::ops::pool::{self as pl, PoolKind, PoolShape};
use crate::rng::Rng;
use std::time::Instant;

/// One kernel measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelResult {
    pub kernel: String,
    pub shape: String,
    pub device: String,
    pub adapter: String,
    pub software_adapter: bool,
    pub flops: f64,
    pub seconds_per_call: f64,
    pub gflops: f64,
    /// Share of the CPU's estimated f32 peak (CPU rows only).
    pub percent_of_cpu_peak: Option<f64>,
}

/// One model measurement (dispatches per step are part of the throughput record).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelResult {
    #[serde(flatten)]
    pub throughput: Throughput,
    /// Always 1 on a GPU (the whole step is one submit); `None` on the CPU.
    pub submits_per_step: Option<usize>,
}

/// Everything `wgtrain bench --json` writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub cpu_model: String,
    pub threads: usize,
    pub cpu_peak_gflops: f64,
    pub cpu_peak_formula: String,
    pub kernels: Vec<KernelResult>,
    pub models: Vec<ModelResult>,
}

/// The f32 peak of the threads in use: measured with a register-only FMA loop ([`crate::peak`]) where
/// the CPU has one, else estimated by [`cpu_peak_estimate`]; the string says which, with both figures.
pub fn cpu_peak(threads: usize) -> (f64, String) {
    let (estimate, formula) = cpu_peak_estimate(threads);
    match crate::peak::measure_fma_peak(threads) {
        Some((measured, isa)) => (
            measured,
            format!("measured: {threads} threads of a register-only {isa} loop; estimate {estimate:.1} = {formula}"),
        ),
        None => (estimate, formula),
    }
}

/// Estimated f32 peak of the threads in use: cores x clock x FLOP per cycle, where FLOP per cycle is
/// 64 with AVX-512 on Intel (two 16-wide FMA pipes), 32 with AVX2+FMA (two 8-wide pipes; also Zen 4's
/// AVX-512, which is double-pumped 256-bit), 16 with AVX, 8 otherwise. The clock is the maximum from
/// cpufreq when the kernel exposes it, else the largest "cpu MHz" in /proc/cpuinfo — which in a VM is
/// often the base clock, so the estimate can be low; `--cpu-peak-gflops` overrides it.
pub fn cpu_peak_estimate(threads: usize) -> (f64, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpufreq_khz =
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok());
    let mhz = cpufreq_khz.map(|k| k / 1000.0).unwrap_or_else(|| {
        info.lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
            .fold(0.0, f64::max)
    });
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let intel = info
        .lines()
        .any(|l| l.starts_with("vendor_id") && l.contains("GenuineIntel"));
    let field = |name: &str| -> Option<u32> {
        let (_, value) = info
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(key, _)| key.trim() == name)?;
        value.trim().parse().ok()
    };
    // AMD Zen 1 (family 0x17, models below 0x30) splits each 256-bit FMA into two 128-bit halves.
    let zen1 =
        !intel && field("cpu family") == Some(0x17) && field("model").is_some_and(|m| m < 0x30);
    let per_cycle = if has("avx512f") && intel {
        64.0
    } else if has("avx2") && has("fma") && zen1 {
        16.0
    } else if has("avx2") && has("fma") {
        32.0
    } else if has("avx") {
        16.0
    } else {
        8.0
    };
    let ghz = if mhz > 0.0 { mhz / 1000.0 } else { 3.0 };
    let peak = threads as f64 * ghz * per_cycle;
    (
        peak,
        format!("{threads} threads x {ghz:.2} GHz x {per_cycle} FLOP/cycle (estimate)"),
    )
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

/// Call `f` until `seconds` have passed (at least 3 times, after one warm-up call); seconds per call.
fn time_cpu(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0;
    while n < 3 || t.elapsed().as_secs_f64() < seconds {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// Record the one-dispatch plan `reps` times in one pass, submit, wait: seconds per dispatch.
fn time_gpu(ctx: &GpuContext, seconds: f64, build: &dyn Fn(&mut PlanBuilder<'_>)) -> Result<f64> {
    let mut pb = PlanBuilder::new(ctx);
    build(&mut pb);
    let plan = pb.finish()?;
    let run = |reps: usize| -> Result<f64> {
        let t = Instant::now();
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
        ctx.check("benchmark")?;
        Ok(t.elapsed().as_secs_f64())
    };
    let one = run(1)?; // warm-up (and the first-use cost of the pipeline)
    let reps = ((seconds / one.max(1e-6)) as usize).clamp(3, 2000);
    Ok(run(reps)? / reps as f64)
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

/// Measure every kernel on `device`.
pub fn kernels(device: &Device, seconds: f64, peak: f64) -> Result<Vec<KernelResult>> {
    let mut out = Vec::new();
    let (adapter, software) = match device {
        Device::Cpu => (cpu_description().model, false),
        Device::Gpu(ctx) => (ctx.adapter.short(), ctx.adapter.software),
    };
    let mut push = |kernel: &str, shape: String, flops: f64, secs: f64| {
        let gflops = flops / secs / 1e9;
        out.push(KernelResult {
            kernel: kernel.into(),
            shape,
            device: device.kind().into(),
            adapter: adapter.clone(),
            software_adapter: software,
            flops,
            seconds_per_call: secs,
            gflops,
            percent_of_cpu_peak: matches!(device, Device::Cpu).then(|| 100.0 * gflops / peak),
        });
    };
    // Matmuls: a square one, and the three products of the mlp's first layer and the cnn's fc layer.
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
    for (name, m, n, k, ta, tb) in products {
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
        let secs = match device {
            Device::Cpu => {
                let mut c = vec![0f32; m * n];
                time_cpu(seconds, || {
                    mm::matmul(m, n, k, &a, sa, &b, sb, &mut c, 0, n, false)
                })
            }
            Device::Gpu(ctx) => {
                let (ga, gb, gc) = (
                    upload(ctx, &a)?,
                    upload(ctx, &b)?,
                    upload(ctx, &vec![0.0; m * n])?,
                );
                let p = MatmulParams::new(m, n, k, sa, sb, 0, n);
                // The register-blocked kernel in the plain row; the shared-memory tiled variant
                // (what hardware GPUs train with, see mm::tiled_preferred) beside it.
                let blocked = mm::register_blocked(&p);
                let storage = time_gpu(ctx, seconds, &|pb| {
                    mm::push_matmul_with(pb, p, &ga, &gb, &ga, &gc, blocked)
                })?;
                let tiled = time_gpu(ctx, seconds, &|pb| {
                    mm::push_matmul_with(pb, p, &ga, &gb, &ga, &gc, &mm::MATMUL_TILED)
                })?;
                push(
                    &format!("{name} (tiled)"),
                    format!("{m}x{n}x{k}"),
                    flops,
                    tiled,
                );
                // Software adapters train with the texture kernels: time them too, packing included.
                let layout = match (ta, tb) {
                    (false, true) => mt::Layout::Nt,
                    (false, false) => mt::Layout::Nn,
                    _ => mt::Layout::Tn,
                };
                let (a_dims, b_dims) = (
                    if ta { (k, m) } else { (m, k) },
                    if tb { (n, k) } else { (k, n) },
                );
                if mt::preferred(ctx)
                    && mt::fits(ctx, a_dims.0, a_dims.1)
                    && mt::fits(ctx, b_dims.0, b_dims.1)
                {
                    let at = mt::texture_matrix(ctx, "bench a", a_dims.0, a_dims.1)?;
                    let bt = mt::texture_matrix(ctx, "bench b", b_dims.0, b_dims.1)?;
                    let secs = time_gpu(ctx, seconds, &|pb| {
                        mt::push_pack(pb, &ga, 0, a_dims.1, a_dims.0, a_dims.1, &at);
                        mt::push_pack(pb, &gb, 0, b_dims.1, b_dims.0, b_dims.1, &bt);
                        let p = mt::TexParams::new(m, n, k, 0, n);
                        mt::push_matmul_tex(pb, layout, p, &at, &bt, None, &ga, &gc);
                    })?;
                    push(
                        &format!("{name} (tex)"),
                        format!("{m}x{n}x{k}"),
                        flops,
                        secs,
                    );
                }
                storage
            }
        };
        push(name, format!("{m}x{n}x{k}"), flops, secs);
    }
    // Convolutions of the cnn at batch 64.
    let batch = 64;
    for s in [
        ConvShape::same_3x3(1, 28, 16),
        ConvShape::same_3x3(16, 14, 32),
    ] {
        let shape = format!(
            "batch {batch}, {}x{}x{} -> {}, {}x{}",
            s.in_c, s.in_h, s.in_w, s.out_c, s.kh, s.kw
        );
        let flops = 2.0 * (batch * s.macs()) as f64;
        let params = random(s.out_c * s.k() + s.out_c, 3);
        let bias = s.out_c * s.k();
        let x = random(batch * s.in_len(), 4);
        let dy = random(batch * s.out_len(), 5);
        match device {
            Device::Cpu => {
                let mut y = vec![0.0; batch * s.out_len()];
                let mut work = cv::ConvWork::for_current_pool(&s);
                let mut dx = vec![0.0; batch * s.in_len()];
                let mut grads = vec![0.0; params.len()];
                push(
                    "conv2d forward",
                    shape.clone(),
                    flops,
                    time_cpu(seconds, || {
                        cv::conv2d_forward(&x, &params, 0, bias, &mut y, &mut work, batch, &s, true)
                    }),
                );
                push(
                    "conv2d backward input",
                    shape.clone(),
                    flops,
                    time_cpu(seconds, || {
                        cv::conv2d_backward_input(
                            &dy, &params, 0, &mut dx, None, &mut work, batch, &s,
                        )
                    }),
                );
                push(
                    "conv2d backward weight",
                    shape.clone(),
                    flops,
                    time_cpu(seconds, || {
                        cv::conv2d_backward_weight(
                            &dy, &x, &mut grads, 0, bias, &mut work, batch, &s,
                        )
                    }),
                );
            }
            Device::Gpu(ctx) => {
                let (gp, gx, gdy) = (
                    upload_windowed(ctx, &params)?,
                    upload_windowed(ctx, &x)?,
                    upload_windowed(ctx, &dy)?,
                );
                let gy = upload(ctx, &vec![0.0; batch * s.out_len()])?;
                let gdx = upload(ctx, &vec![0.0; batch * s.in_len()])?;
                let gg = upload(ctx, &vec![0.0; params.len()])?;
                let gpart = upload(ctx, &vec![0.0; s.gpu_partial_len(batch)])?;
                push(
                    "conv2d forward",
                    shape.clone(),
                    flops,
                    time_gpu(ctx, seconds, &|pb| {
                        cv::push_conv2d_forward(pb, &gx, &gp, 0, bias, &gy, batch, &s, true)
                    })?,
                );
                push(
                    "conv2d backward input",
                    shape.clone(),
                    flops,
                    time_gpu(ctx, seconds, &|pb| {
                        cv::push_conv2d_backward_input(pb, &gdy, &gp, 0, &gdx, None, batch, &s)
                    })?,
                );
                push(
                    "conv2d backward weight",
                    shape.clone(),
                    flops,
                    time_gpu(ctx, seconds, &|pb| {
                        cv::push_conv2d_backward_weight(
                            pb, &gdy, &gx, &gpart, &gg, 0, bias, batch, &s,
                        )
                    })?,
                );
            }
        }
    }
    // Max pooling of the cnn's first block (FLOPs counted as one comparison per window element).
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
    match device {
        Device::Cpu => {
            let mut y = vec![0.0; batch * s.out_len()];
            let mut arg = vec![0u32; y.len()];
            let mut dx = vec![0.0; x.len()];
            push(
                "maxpool forward",
                shape.clone(),
                flops,
                time_cpu(seconds, || {
                    pl::pool_forward(&x, &mut y, &mut arg, batch, &s)
                }),
            );
            push(
                "maxpool backward",
                shape,
                flops,
                time_cpu(seconds, || {
                    pl::pool_backward(&dy, &arg, &mut dx, None, batch, &s)
                }),
            );
        }
        Device::Gpu(ctx) => {
            let (gx, gdy) = (upload(ctx, &x)?, upload(ctx, &dy)?);
            let gy = upload(ctx, &vec![0.0; batch * s.out_len()])?;
            let garg = upload(ctx, &vec![0.0; batch * s.out_len()])?;
            let gdx = upload(ctx, &vec![0.0; x.len()])?;
            push(
                "maxpool forward",
                shape.clone(),
                flops,
                time_gpu(ctx, seconds, &|pb| {
                    pl::push_pool_forward(pb, &gx, &garg, &gy, batch, &s)
                })?,
            );
            push(
                "maxpool backward",
                shape,
                flops,
                time_gpu(ctx, seconds, &|pb| {
                    pl::push_pool_backward(pb, &gdy, &garg, &gdx, None, batch, &s)
                })?,
            );
        }
    }
    Ok(out)
}

/// Training and inference images/s of each model at each batch size on `device`.
pub fn models(
    device: &Device,
    names: &[String],
    batches: &[usize],
    data: &DataSplit,
    seconds: f64,
) -> Result<Vec<ModelResult>> {
    let mut out = Vec::new();
    for name in names {
        let model = models::build(Some(name), None, data.train.shape, data.num_classes)?;
        for &b in batches {
            let throughput =
                measure_throughput(device, &model, &data.train, &data.normalization, b, seconds)?;
            out.push(ModelResult {
                submits_per_step: throughput.dispatches_per_step.map(|_| 1),
                throughput,
            });
        }
    }
    Ok(out)
}

/// The data the model benchmarks run on (the embedded subset: no file access needed).
pub fn bench_data() -> Result<DataSplit> {
    crate::data::load(&DataChoice::Embedded, None)
}

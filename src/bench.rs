//! `wgtrain bench`: kernel GFLOP/s and model images/s on the CPU and each GPU adapter, warm-up apart
//! from steady state, with the share of the CPU's estimated f32 peak and GPU dispatches per step.

mod cases;
pub mod profile;

pub use cases::{kernel_cases, KernelCase};

use crate::data::{DataChoice, DataSplit};
use crate::device::{cpu_description, Device};
use crate::error::Result;
use crate::experiments::runner::{measure_throughput, Throughput};
use crate::models;
use std::time::Instant;

/// One kernel measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelResult {
    pub kernel: String,
    pub shape: String,
    pub device: String,
    pub adapter: String,
    pub software_adapter: bool,
    /// The adapter's kernel policy (`device::policy`), `None` on the CPU.
    pub kernel_policy: Option<crate::device::policy::KernelPolicy>,
    /// The CPU's convolution kernels, `None` on a GPU.
    pub cpu_conv: Option<crate::device::policy::CpuConv>,
    /// Their instruction set, `None` on a GPU.
    pub cpu_simd: Option<crate::device::policy::Simd>,
    pub flops: f64,
    /// The fastest of the samples (see `time_case`); `gflops` and the share of peak come from it.
    pub seconds_per_call: f64,
    /// The samples' mean.
    pub seconds_per_call_mean: f64,
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
    /// Op by op, with `--profile` (CPU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<profile::ModelProfile>,
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

/// Samples per kernel measurement: the fastest is reported (as [`crate::peak`] keeps the best of its
/// runs), the mean beside it.
pub const KERNEL_SAMPLES: usize = 5;

/// Seconds per call of one kernel: the fastest of [`KERNEL_SAMPLES`] samples and their mean.
#[derive(Debug, Clone, Copy)]
struct Timing {
    best: f64,
    mean: f64,
}

/// Run `case` once (warm-up: the pipeline's first use, caches), time one more run to size the
/// measurement, then time [`KERNEL_SAMPLES`] samples of as many runs as fill an equal share of
/// `seconds` each (at least 3 runs, at most `max_reps`). On a shared machine another tenant only
/// ever slows a sample down, so the fastest sample is the kernel's own speed and the one a "% of
/// peak" can be compared with (the peak is the best of its runs too); the mean is what the period
/// measured as a whole.
fn time_case(case: &mut KernelCase<'_>, seconds: f64, max_reps: usize) -> Result<Timing> {
    case.run(1)?;
    let t = Instant::now();
    case.run(1)?;
    let one = t.elapsed().as_secs_f64();
    let reps = ((seconds / KERNEL_SAMPLES as f64 / one.max(1e-7)) as usize).clamp(3, max_reps);
    let (mut best, mut total) = (f64::INFINITY, 0.0);
    for _ in 0..KERNEL_SAMPLES {
        let t = Instant::now();
        case.run(reps)?;
        let per_call = t.elapsed().as_secs_f64() / reps as f64;
        best = best.min(per_call);
        total += per_call;
    }
    Ok(Timing {
        best,
        mean: total / KERNEL_SAMPLES as f64,
    })
}

/// Measure every kernel on `device`.
/// The kernel measurements on `device`, only those whose name or shape contains `filter` when given
/// (one that matches none is an error naming the flag).
pub fn kernels(
    device: &Device,
    seconds: f64,
    peak: f64,
    filter: Option<&str>,
) -> Result<Vec<KernelResult>> {
    let (adapter, software, max_reps) = match device {
        Device::Cpu => (cpu_description().model, false, 1_000_000),
        // One compute pass holds all of a GPU measurement's dispatches: keep it bounded.
        Device::Gpu(ctx) => (ctx.adapter.short(), ctx.adapter.software, 2000),
    };
    let mut out = Vec::new();
    let mut cases = kernel_cases(device)?;
    if let Some(f) = filter {
        cases.retain(|c| c.kernel.contains(f) || c.shape.contains(f));
        if cases.is_empty() {
            return Err(crate::error::Error::Config(format!(
                "--kernel-filter {f:?} matches no kernel on {}; `wgtrain bench --no-models` lists them",
                device.kind()
            )));
        }
    }
    for mut case in cases {
        let timing = time_case(&mut case, seconds, max_reps)?;
        let secs = timing.best;
        let gflops = case.flops / secs / 1e9;
        out.push(KernelResult {
            kernel: case.kernel,
            shape: case.shape,
            device: device.kind().into(),
            adapter: adapter.clone(),
            software_adapter: software,
            kernel_policy: match device {
                Device::Gpu(ctx) => Some(ctx.policy.clone()),
                Device::Cpu => None,
            },
            cpu_conv: crate::experiments::runner::cpu_conv_of(device)?,
            cpu_simd: crate::experiments::runner::cpu_simd_of(device)?,
            flops: case.flops,
            seconds_per_call: secs,
            seconds_per_call_mean: timing.mean,
            gflops,
            percent_of_cpu_peak: matches!(device, Device::Cpu).then(|| 100.0 * gflops / peak),
        });
    }
    Ok(out)
}

/// Training and inference images/s of each preset in `names`, then of the `arch` spec, at each batch
/// size on `device`; with `profile`, then each op's share of the steps (also for `seconds`).
pub fn models(
    device: &Device,
    names: &[String],
    arch: Option<&str>,
    batches: &[usize],
    data: &DataSplit,
    seconds: f64,
    profile: bool,
) -> Result<Vec<ModelResult>> {
    let mut out = Vec::new();
    let specs = names
        .iter()
        .map(|n| (Some(n.as_str()), None))
        .chain(arch.map(|a| (None, Some(a))));
    for (name, arch) in specs {
        let model = models::build(name, arch, data.train.shape, data.num_classes)?;
        for &b in batches {
            let throughput =
                measure_throughput(device, &model, &data.train, &data.normalization, b, seconds)?;
            let profile = profile
                .then(|| profile::profile_model(device, &model, data, b, seconds))
                .transpose()?;
            out.push(ModelResult {
                submits_per_step: throughput.dispatches_per_step.map(|_| 1),
                throughput,
                profile,
            });
        }
    }
    Ok(out)
}

/// The data the model benchmarks run on (the embedded subset: no file access needed).
pub fn bench_data() -> Result<DataSplit> {
    crate::data::load(&DataChoice::Embedded, &Default::default())
}

//! `wgtrain bench`: the command around `crate::bench`.

use crate::cli::*;
use crate::device::{self, Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::metrics::write_json;

/// `wgtrain bench`.
pub fn run_bench(args: &BenchArgs) -> Result<()> {
    use crate::bench;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(Error::Config("--seconds must be a positive number".into()));
    }
    if args.batch_sizes.contains(&0) {
        return Err(Error::Config("--batch-sizes must all be at least 1".into()));
    }
    if args.profile && args.device != BenchDevice::Cpu {
        return Err(Error::Config(
            "--profile times the CPU executor's ops; add --device cpu".into(),
        ));
    }
    if args.profile && args.no_models {
        return Err(Error::Config(
            "--profile profiles the models; drop --no-models".into(),
        ));
    }
    // The CPU kernel overrides, checked before anything is measured or printed.
    device::policy::cpu_conv()?;
    device::policy::cpu_simd()?;
    let dev_args = DeviceArgs {
        device: DeviceArg::Cpu,
        adapter: args.adapter.clone(),
        backend: args.backend.clone(),
        threads: args.threads,
    };
    dev_args.select()?; // sizes the thread pool
    let mut devices = Vec::new();
    if args.device != BenchDevice::Gpu {
        devices.push(Device::Cpu);
    }
    if args.device != BenchDevice::Cpu {
        match Device::select(DeviceChoice::Gpu, &dev_args.filter()) {
            Ok((d, _)) => devices.push(d),
            Err(e) if args.device == BenchDevice::Gpu => return Err(e),
            Err(e) => println!("gpu: not measured ({e})"),
        }
    }
    let cpu = device::cpu_description();
    let (peak, formula) = match args.cpu_peak_gflops {
        Some(p) if p.is_finite() && p > 0.0 => (p, "given with --cpu-peak-gflops".to_string()),
        Some(p) => {
            return Err(Error::Config(format!(
                "--cpu-peak-gflops {p} must be a positive number"
            )))
        }
        None => bench::cpu_peak(cpu.threads),
    };
    println!(
        "cpu: {} ({} threads), f32 peak {peak:.1} GFLOP/s ({formula})",
        cpu.model, cpu.threads
    );
    let mut report = bench::BenchReport {
        cpu_model: cpu.model.clone(),
        threads: cpu.threads,
        cpu_peak_gflops: peak,
        cpu_peak_formula: formula,
        kernels: Vec::new(),
        models: Vec::new(),
    };
    if !args.no_kernels {
        println!(
            "\n{:<40} {:<30} {:<5} {:>11} {:>11} {:>9} {:>8}",
            "kernel", "shape", "dev", "us/call", "mean us", "GFLOP/s", "% peak"
        );
        println!(
            "(us/call, GFLOP/s and % peak: the fastest of {} samples; mean us: their mean)",
            bench::KERNEL_SAMPLES
        );
        for d in &devices {
            for k in bench::kernels(d, args.seconds, peak, args.kernel_filter.as_deref())? {
                println!(
                    "{:<40} {:<30} {:<5} {:>11.1} {:>11.1} {:>9.2} {:>8}",
                    k.kernel,
                    k.shape,
                    k.device,
                    k.seconds_per_call * 1e6,
                    k.seconds_per_call_mean * 1e6,
                    k.gflops,
                    k.percent_of_cpu_peak
                        .map_or("-".into(), |p| format!("{p:.1}"))
                );
                report.kernels.push(k);
            }
        }
    }
    if !args.no_models {
        let data = bench::bench_data()?;
        println!(
            "\n{:<8} {:<5} {:>6} {:>13} {:>13} {:>10} {:>11}",
            "model", "dev", "batch", "train img/s", "infer img/s", "warm-up s", "dispatches"
        );
        for d in &devices {
            for m in bench::models(
                d,
                &args.models,
                args.arch.as_deref(),
                &args.batch_sizes,
                &data,
                args.seconds,
                args.profile,
            )? {
                println!(
                    "{:<8} {:<5} {:>6} {:>13.0} {:>13.0} {:>10.3} {:>11}",
                    m.throughput.model,
                    m.throughput.device,
                    m.throughput.batch_size,
                    m.throughput.train_images_per_sec,
                    m.throughput.inference_images_per_sec,
                    m.throughput.warmup_seconds,
                    m.throughput
                        .dispatches_per_step
                        .map_or("-".into(), |n| format!("{n} / 1 submit"))
                );
                report.models.push(m);
            }
        }
    }
    for m in &report.models {
        if let Some(p) = &m.profile {
            let what = format!("{} batch {}", m.throughput.model, m.throughput.batch_size);
            print!(
                "{}",
                bench::profile::table(&format!("{what}, training"), &p.train)
            );
            print!(
                "{}",
                bench::profile::table(&format!("{what}, inference"), &p.inference)
            );
        }
    }
    for d in &devices {
        if let Device::Gpu(ctx) = d {
            println!(
                "\ngpu adapter: {}{}",
                ctx.adapter.short(),
                if ctx.adapter.software {
                    " -- a software rasteriser running on the CPU, not a GPU"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

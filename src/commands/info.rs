//! `wgtrain devices` and `wgtrain summary`: information, no training.

use crate::checkpoint::{self};
use crate::cli::*;
use crate::device::gpu::AdapterDescription;
use crate::device::{self, AdapterFilter};
use crate::error::{Error, Result};
use crate::models;

/// `wgtrain devices`.
pub fn run_devices(args: &DevicesArgs) -> Result<()> {
    let filter = AdapterFilter {
        adapter: None,
        backend: args.backend.clone(),
    };
    let adapters: Vec<AdapterDescription> = device::list_adapters(&filter)?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let cpu = device::cpu_description();
    let cpu_kernels = device::policy::describe_cpu()?;
    let (cpu_conv, cpu_conv_source) = device::policy::cpu_conv()?;
    let cpu_simd = device::policy::cpu_simd()?;
    // The kernel policy of each adapter; an unknown override is an error even with no adapter.
    device::policy::KernelPolicy::decide(false)?;
    let policies = adapters
        .iter()
        .map(|a| device::policy::KernelPolicy::decide(a.software))
        .collect::<Result<Vec<_>>>()?;
    if args.json {
        let listed: Vec<serde_json::Value> = adapters
            .iter()
            .zip(&policies)
            .map(|(a, p)| {
                let mut v = serde_json::to_value(a).expect("adapter serialises");
                v["kernel_policy"] = serde_json::to_value(p).expect("policy serialises");
                v
            })
            .collect();
        let v = serde_json::json!({
            "cpu": cpu,
            "cpu_kernel_policy": {
                "conv": cpu_conv,
                "source": cpu_conv_source,
                "simd": cpu_simd.as_ref().map(|s| s.0),
                "simd_source": cpu_simd.map(|s| s.1),
            },
            "adapters": listed
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!("cpu: {} ({} threads)", cpu.model, cpu.threads);
    println!("    {cpu_kernels}");
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. apt-get install mesa-vulkan-drivers)");
    }
    for (a, policy) in adapters.iter().zip(&policies) {
        println!(
            "[{}] {} | backend {} | type {}{} | driver {} {}",
            a.index,
            a.name,
            a.backend,
            a.device_type,
            if a.software {
                " (SOFTWARE rasteriser, not a GPU)"
            } else {
                ""
            },
            a.driver,
            a.driver_info
        );
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, {} invocations/workgroup",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup
        );
        println!("    {}", policy.describe());
    }
    Ok(())
}

fn parse_input_shape(s: &str) -> Result<crate::data::ImageShape> {
    let dims: Option<Vec<usize>> = s.split('x').map(|d| d.trim().parse().ok()).collect();
    match dims.as_deref() {
        Some(&[channels, height, width]) if channels * height * width > 0 => {
            Ok(crate::data::ImageShape {
                channels,
                height,
                width,
            })
        }
        _ => Err(Error::Config(format!(
            "--input {s}: expected CxHxW with positive sizes, e.g. 1x28x28 or 3x32x32"
        ))),
    }
}

/// `wgtrain summary`.
pub fn run_summary(args: &SummaryArgs) -> Result<()> {
    let model = match &args.checkpoint {
        Some(p) => checkpoint::load(p)?.0,
        None => {
            if args.classes < 2 {
                return Err(Error::Config("--classes must be at least 2".into()));
            }
            let input = parse_input_shape(&args.input)?;
            models::build(Some(&args.model), args.arch.as_deref(), input, args.classes)?
        }
    };
    let rows = model.summary();
    if args.json {
        let v = serde_json::json!({
            "model": model.name, "arch": model.spec(),
            "input": [model.input.channels, model.input.height, model.input.width],
            "layers": rows, "params": model.num_params(), "buffers": model.num_buffers(),
            "forward_flops": model.forward_flops(),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    let shape = |d: &[usize]| {
        d.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("x")
    };
    println!(
        "{} [{}], input {}",
        model.name,
        model.spec(),
        shape(&[model.input.channels, model.input.height, model.input.width])
    );
    // Residual blocks' tokens are long: the layer column is as wide as the longest.
    let width = rows
        .iter()
        .map(|r| r.layer.len())
        .max()
        .unwrap_or(0)
        .max(16);
    println!(
        "{:>3}  {:<width$} {:>12} {:>10} {:>8} {:>14}",
        "#", "layer", "output", "params", "buffers", "fwd FLOPs"
    );
    for r in &rows {
        println!(
            "{:>3}  {:<width$} {:>12} {:>10} {:>8} {:>14}",
            r.index,
            r.layer,
            shape(&r.output_shape),
            r.params,
            r.buffers,
            r.forward_flops
        );
    }
    println!(
        "total: {} parameters ({:.2} MiB as f32), {} buffer values (running statistics, not trained), \
         {:.3} MFLOP forward per image",
        model.num_params(),
        model.num_params() as f64 * 4.0 / (1 << 20) as f64,
        model.num_buffers(),
        model.forward_flops() as f64 / 1e6
    );
    Ok(())
}

//! Devices, chosen at run time: the CPU or one wgpu adapter. Models and the training loop only ever see
//! `Device` and the `Executor` it builds, never a wgpu type.

pub mod gpu;
pub mod pipeline_cache;
pub mod policy;
pub mod window;

use crate::error::{Error, Result};
use gpu::{AdapterDescription, GpuContext};
use std::sync::Arc;

/// Where a model runs.
#[derive(Debug, Clone)]
pub enum Device {
    Cpu,
    Gpu(Arc<GpuContext>),
}

/// What `--device` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    Cpu,
    Gpu,
}

/// `--adapter` and `--backend` (both also read from WGPU_ADAPTER_NAME / WGPU_BACKEND when not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterFilter {
    /// Adapter index (as `wgtrain devices` lists it) or a case-insensitive substring of its name.
    pub adapter: Option<String>,
    /// vulkan, metal, dx12 or gl.
    pub backend: Option<String>,
}

/// The CPU as `wgtrain devices` and reports describe it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuDescription {
    pub model: String,
    pub threads: usize,
}

pub fn cpu_description() -> CpuDescription {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    CpuDescription {
        model,
        threads: rayon::current_num_threads(),
    }
}

/// The CPU as precisely as /proc/cpuinfo names it (model name, family, model, stepping, and the vector
/// extensions the kernels dispatch on): two machines that report the same model name can differ.
pub fn cpu_identity() -> serde_json::Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    serde_json::json!({
        "model": cpu_description().model,
        "family": field("cpu family"),
        "model_number": field("model"),
        "stepping": field("stepping"),
        "avx2": has("avx2"),
        "fma": has("fma"),
        "avx512f": has("avx512f"),
    })
}

fn parse_backends(filter: &AdapterFilter) -> Result<wgpu::Backends> {
    match filter.backend.as_deref() {
        None => Ok(wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())),
        Some(b) => match b.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
            "metal" | "mtl" => Ok(wgpu::Backends::METAL),
            "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
            "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
            other => Err(Error::Config(format!(
                "--backend {other}: unknown backend; use vulkan, metal, dx12 or gl"
            ))),
        },
    }
}

/// Every adapter wgpu finds for the requested backends, in a stable order (the index `--adapter` takes).
pub fn list_adapters(filter: &AdapterFilter) -> Result<Vec<(wgpu::Adapter, AdapterDescription)>> {
    let backends = parse_backends(filter)?;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    Ok(adapters
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let d = AdapterDescription::from_adapter(i, &a);
            (a, d)
        })
        .collect())
}

/// Pick an adapter: the one `--adapter`/WGPU_ADAPTER_NAME names, else a hardware GPU (discrete first),
/// else a software one. Returns `None` when wgpu finds nothing.
fn pick_adapter(filter: &AdapterFilter) -> Result<Option<(wgpu::Adapter, AdapterDescription)>> {
    let mut adapters = list_adapters(filter)?;
    let wanted = filter
        .adapter
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok());
    if let Some(w) = wanted {
        let pos = match w.parse::<usize>() {
            Ok(i) => adapters.iter().position(|(_, d)| d.index == i),
            Err(_) => adapters
                .iter()
                .position(|(_, d)| d.name.to_lowercase().contains(&w.to_lowercase())),
        };
        return match pos {
            Some(p) => Ok(Some(adapters.swap_remove(p))),
            None => Err(Error::Config(format!(
                "--adapter {w}: no such adapter; `wgtrain devices` lists {} adapter(s){}",
                adapters.len(),
                adapters
                    .iter()
                    .map(|(_, d)| format!(" [{}] {}", d.index, d.name))
                    .collect::<String>()
            ))),
        };
    }
    let rank = |d: &AdapterDescription| match (d.software, d.device_type.as_str()) {
        (false, "DiscreteGpu") => 0,
        (false, "IntegratedGpu") => 1,
        (false, _) => 2,
        (true, _) => 3 + usize::from(d.backend == "gl"),
    };
    adapters.sort_by_key(|(_, d)| (rank(d), d.index));
    Ok(adapters.into_iter().next())
}

impl Device {
    /// Resolve `--device`. Returns the device and a sentence saying what was picked and why.
    pub fn select(choice: DeviceChoice, filter: &AdapterFilter) -> Result<(Device, String)> {
        match choice {
            DeviceChoice::Cpu => {
                let c = cpu_description();
                Ok((
                    Device::Cpu,
                    format!("cpu: {} ({} threads)", c.model, c.threads),
                ))
            }
            DeviceChoice::Gpu => match pick_adapter(filter)? {
                Some((adapter, d)) => {
                    let why = format!("gpu: {}", d.short());
                    let ctx = GpuContext::new(adapter, d.index)?;
                    Ok((Device::Gpu(Arc::new(ctx)), why))
                }
                None => Err(Error::NoAdapter(String::from(" for --device gpu"))),
            },
            DeviceChoice::Auto => {
                let picked = pick_adapter(filter)?;
                match picked {
                    Some((adapter, d)) if !d.software || filter.adapter.is_some() => {
                        let why = format!("auto picked gpu: {}", d.short());
                        let ctx = GpuContext::new(adapter, d.index)?;
                        Ok((Device::Gpu(Arc::new(ctx)), why))
                    }
                    Some((_, d)) => {
                        let c = cpu_description();
                        Ok((
                            Device::Cpu,
                            format!(
                                "auto picked cpu: {} ({} threads); the only adapter is {}, a software rasteriser (use --device gpu to train on it anyway)",
                                c.model, c.threads, d.short()
                            ),
                        ))
                    }
                    None => {
                        let c = cpu_description();
                        Ok((
                            Device::Cpu,
                            format!(
                                "auto picked cpu: {} ({} threads); wgpu found no GPU adapter",
                                c.model, c.threads
                            ),
                        ))
                    }
                }
            }
        }
    }

    /// "cpu" or "gpu".
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu(_) => "gpu",
        }
    }

    /// The adapter name (with backend and a software flag) or the CPU model.
    pub fn adapter_name(&self) -> String {
        match self {
            Device::Cpu => cpu_description().model,
            Device::Gpu(ctx) => ctx.adapter.short(),
        }
    }
}

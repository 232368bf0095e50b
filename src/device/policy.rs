//! The kernel policy: the one place that decides which GPU kernel variant runs on which adapter, from
//! the adapter's kind, overridable by validated environment variables. Decided once when a
//! [`GpuContext`](super::gpu::GpuContext) opens; launchers only read it; `wgtrain devices` prints it and
//! `wgtrain bench --json` records it.
//!
//! Defaults, and why (measurements in docs/BENCHMARKS.md):
//! - software adapters (llvmpipe): linear layers through rgba32f textures (`ops::matmul_tex`), other
//!   products with the register-blocked storage kernels, convolutions reading their inputs through
//!   64 KiB uniform-buffer windows (`device::window`) — llvmpipe's storage loads are bounds-checked
//!   per element and every barrier splits a shader into coroutines;
//! - hardware GPUs: every product on the shared-memory tiled kernel, convolutions on storage buffers
//!   (the usual choices for hardware; not yet measured on one).

use crate::error::{Error, Result};
pub use crate::ops::conv2d_direct::Simd;

/// How the linear layers' products run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinearKernels {
    /// Operands packed into textures (`ops::matmul_tex`).
    Texture,
    /// The storage-buffer products below.
    Storage,
}

/// Which storage-buffer matmul kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageMatmul {
    /// Workgroup-memory tiles (`matmul_tiled`).
    Tiled,
    /// 4x4 register blocks per invocation (vectorised where the layout allows).
    RegisterBlocked,
}

/// How convolutions read their inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvInputs {
    /// Uniform-buffer windows (activation buffers are also bindable as uniforms).
    UniformWindows,
    /// Plain storage buffers.
    Storage,
}

/// The variants one adapter runs, and what decided each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelPolicy {
    pub linear: LinearKernels,
    pub matmul: StorageMatmul,
    pub conv: ConvInputs,
    /// "software-adapter default", "hardware default", or the overriding variables.
    pub source: String,
}

/// `WGTRAIN_MATMUL`: tiled | storage | texture.
pub const MATMUL_VAR: &str = "WGTRAIN_MATMUL";
/// `WGTRAIN_CONV`: windows | storage.
pub const CONV_VAR: &str = "WGTRAIN_CONV";

fn var(name: &str, allowed: &[&str]) -> Result<Option<String>> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
        Ok(v) => Err(Error::Config(format!(
            "{name}={v}: unknown kernel choice; use one of {} (or unset it for the adapter's default)",
            allowed.join(", ")
        ))),
        Err(_) => Err(Error::Config(format!(
            "{name} is not valid UTF-8; use one of {}",
            allowed.join(", ")
        ))),
    }
}

/// `WGTRAIN_CPU_CONV`: auto | winograd | direct | gemm.
pub const CPU_CONV_VAR: &str = "WGTRAIN_CPU_CONV";

/// How the CPU runs stride-1 convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuConv {
    /// Winograd F(2x2, 3x3) for stride-1 pad-1 3x3 convolutions with at least 8 input and output
    /// channels (`ops::conv2d_winograd::pays`), the direct kernels for the rest.
    Winograd,
    /// Direct kernels reading the padded planes in place (`ops::conv2d_direct`), on the instruction
    /// set [`cpu_simd`] picks.
    Direct,
    /// Unfolding (im2col) and the gemm crate's GEMM (`ops::conv2d_cpu`).
    Gemm,
}

/// The CPU's convolution kernels and what decided them: the direct kernels where the CPU has AVX2 and
/// FMA (every x86-64 machine with AVX-512 has both; measured in docs/BENCHMARKS.md, 2026-12-07), else
/// im2col + GEMM; `WGTRAIN_CPU_CONV` overrides (`winograd` is opt-in: on the presets' shapes it was no
/// faster than the direct kernels, docs/BENCHMARKS.md, 2026-12-07 fourth sitting). Strided 1x1
/// convolutions (shortcuts) always take im2col + GEMM.
pub fn cpu_conv() -> Result<(CpuConv, String)> {
    let env = var(CPU_CONV_VAR, &["auto", "winograd", "direct", "gemm"])?;
    let avx2 = crate::ops::conv2d_direct::available();
    match env.as_deref() {
        Some(v @ ("winograd" | "direct")) if !avx2 => Err(Error::Config(format!(
            "{CPU_CONV_VAR}={v}: this CPU lacks AVX2 or FMA, which those kernels need; use auto or gemm"
        ))),
        Some("winograd") => Ok((CpuConv::Winograd, format!("{CPU_CONV_VAR}=winograd"))),
        Some("direct") => Ok((CpuConv::Direct, format!("{CPU_CONV_VAR}=direct"))),
        Some("gemm") => Ok((CpuConv::Gemm, format!("{CPU_CONV_VAR}=gemm"))),
        _ if avx2 => Ok((CpuConv::Direct, "default: the CPU has AVX2 and FMA".into())),
        _ => Ok((CpuConv::Gemm, "default: the CPU lacks AVX2 or FMA".into())),
    }
}

/// `WGTRAIN_CPU_SIMD`: auto | avx2 | avx512.
pub const CPU_SIMD_VAR: &str = "WGTRAIN_CPU_SIMD";

/// The instruction set of the CPU's direct (and Winograd's product) kernels and what decided it: the
/// widest the CPU has (AVX-512 where present: tiles twice as wide, measured in docs/BENCHMARKS.md,
/// 2026-12-07 fifth sitting), `WGTRAIN_CPU_SIMD` overriding; `None` without AVX2 and FMA (then the
/// convolutions take im2col + GEMM). Asking for a set the CPU lacks is an error.
pub fn cpu_simd() -> Result<Option<(Simd, String)>> {
    let env = var(CPU_SIMD_VAR, &["auto", "avx2", "avx512"])?;
    let wanted = match env.as_deref() {
        Some("avx2") => Some(Simd::Avx2),
        Some("avx512") => Some(Simd::Avx512),
        _ => None,
    };
    match wanted {
        Some(s) if !s.available() => Err(Error::Config(format!(
            "{CPU_SIMD_VAR}={}: this CPU lacks that instruction set; use auto{}",
            s.name(),
            if Simd::Avx2.available() {
                " or avx2"
            } else {
                ""
            }
        ))),
        Some(s) => Ok(Some((s, format!("{CPU_SIMD_VAR}={}", s.name())))),
        None => Ok(Simd::best().map(|s| (s, "default: the widest this CPU has".to_string()))),
    }
}

/// One line for `wgtrain devices`: the CPU's convolution kernels.
pub fn describe_cpu() -> Result<String> {
    let (conv, why) = cpu_conv()?;
    let simd = cpu_simd()?;
    let isa = match simd.as_ref().map(|s| s.0) {
        Some(Simd::Avx512) => "AVX-512",
        _ => "AVX2+FMA",
    };
    let what = match conv {
        CpuConv::Winograd => format!(
            "Winograd F(2x2, 3x3) for stride-1 3x3 with >= 8 channels (AVX2+FMA), direct {isa} \
             kernels for the rest (im2col + GEMM for strided 1x1)"
        ),
        CpuConv::Direct => format!("direct {isa} kernels (im2col + GEMM for strided 1x1)"),
        CpuConv::Gemm => "im2col + GEMM".into(),
    };
    let simd_why = match (conv, simd) {
        (CpuConv::Gemm, _) | (_, None) => String::new(),
        (_, Some((_, w))) => format!("; {isa}: {w}"),
    };
    Ok(format!("kernels: convolutions by {what} ({why}{simd_why})"))
}

impl KernelPolicy {
    /// The policy for an adapter (`software`: a CPU rasteriser such as llvmpipe), with the environment's
    /// overrides; an unknown override value is an error naming the variable.
    pub fn decide(software: bool) -> Result<Self> {
        let matmul_env = var(MATMUL_VAR, &["tiled", "storage", "texture"])?;
        let conv_env = var(CONV_VAR, &["windows", "storage"])?;
        let (linear, matmul) = match matmul_env.as_deref() {
            Some("tiled") => (LinearKernels::Storage, StorageMatmul::Tiled),
            Some("storage") => (LinearKernels::Storage, StorageMatmul::RegisterBlocked),
            Some(_) => (LinearKernels::Texture, StorageMatmul::RegisterBlocked),
            None if software => (LinearKernels::Texture, StorageMatmul::RegisterBlocked),
            None => (LinearKernels::Storage, StorageMatmul::Tiled),
        };
        let conv = match conv_env.as_deref() {
            Some("windows") => ConvInputs::UniformWindows,
            Some(_) => ConvInputs::Storage,
            None if software => ConvInputs::UniformWindows,
            None => ConvInputs::Storage,
        };
        let overrides: Vec<String> = [(MATMUL_VAR, &matmul_env), (CONV_VAR, &conv_env)]
            .into_iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={v}")))
            .collect();
        let source = if !overrides.is_empty() {
            format!("overridden by {}", overrides.join(" "))
        } else if software {
            "software-adapter default".into()
        } else {
            "hardware default".into()
        };
        Ok(KernelPolicy {
            linear,
            matmul,
            conv,
            source,
        })
    }

    /// One line for `wgtrain devices` and reports.
    pub fn describe(&self) -> String {
        let linear = match self.linear {
            LinearKernels::Texture => "texture kernels",
            LinearKernels::Storage => "storage kernels",
        };
        let matmul = match self.matmul {
            StorageMatmul::Tiled => "workgroup-tiled",
            StorageMatmul::RegisterBlocked => "register-blocked",
        };
        let conv = match self.conv {
            ConvInputs::UniformWindows => "convolution inputs through uniform windows",
            ConvInputs::Storage => "convolution inputs from storage buffers",
        };
        format!(
            "kernels: linear layers on {linear}, storage products {matmul}, {conv} ({})",
            self.source
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every environment case in one test: the variables are process-wide.
    #[test]
    fn defaults_overrides_and_unknown_values() {
        std::env::remove_var(MATMUL_VAR);
        std::env::remove_var(CONV_VAR);
        let sw = KernelPolicy::decide(true).unwrap();
        assert_eq!(
            (sw.linear, sw.matmul, sw.conv),
            (
                LinearKernels::Texture,
                StorageMatmul::RegisterBlocked,
                ConvInputs::UniformWindows
            )
        );
        let hw = KernelPolicy::decide(false).unwrap();
        assert_eq!(
            (hw.linear, hw.matmul, hw.conv),
            (
                LinearKernels::Storage,
                StorageMatmul::Tiled,
                ConvInputs::Storage
            )
        );
        std::env::set_var(MATMUL_VAR, "tiled");
        std::env::set_var(CONV_VAR, "storage");
        let p = KernelPolicy::decide(true).unwrap();
        assert_eq!(p.matmul, StorageMatmul::Tiled);
        assert_eq!(p.conv, ConvInputs::Storage);
        assert!(p
            .describe()
            .contains("WGTRAIN_MATMUL=tiled WGTRAIN_CONV=storage"));
        std::env::set_var(MATMUL_VAR, "fast");
        let e = KernelPolicy::decide(true).unwrap_err().to_string();
        assert!(
            e.starts_with("WGTRAIN_MATMUL=fast: unknown kernel choice"),
            "{e}"
        );
        std::env::remove_var(MATMUL_VAR);
        std::env::set_var(CONV_VAR, "");
        assert!(KernelPolicy::decide(false).is_err());
        std::env::remove_var(CONV_VAR);
    }
}

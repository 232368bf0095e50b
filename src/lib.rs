//! wgtrain: train MLPs and CNNs with hand-written WGSL compute shaders (wgpu) or on the CPU.
//!
//! Map of the crate:
//! - [`cli`]: clap types and validation of flags into config structs.
//! - [`commands`]: the command implementations (train, eval/predict, compare, bench, devices/summary).
//! - [`device`]: `Device` (CPU or a wgpu adapter) chosen at run time; adapter listing; plans of dispatches.
//! - [`ops`]: one op family per file, CPU reference next to the GPU launcher (kernels in `shaders/`).
//! - [`nn`]: layers, `Model` (shapes + flat parameter layout + fused plan), CPU and GPU executors.
//! - [`models`]: presets and the `--arch` spec parser.
//! - [`optim`]: SGD (+momentum) and Adam over the flat parameter vector.
//! - [`data`]: IDX reader, the embedded Fashion-MNIST subset, normalisation, batch assembly.
//! - [`train`]: the one training loop.
//! - [`experiments`]: `compare`, the ANN-vs-CNN experiment (protocol, claims, report, plots).
//! - [`bench`]: `wgtrain bench`, kernel GFLOP/s and model images/s per device.
//! - [`peak`]: the CPU's f32 peak, measured with a register-only FMA loop.
//! - [`export`]: `wgtrain export`, a checkpoint as a PyTorch module (`model.py` + state_dict).
//! - [`checkpoint`]: safetensors checkpoints with PyTorch tensor names.
//! - [`metrics`]: JSON reports and atomic file writes.
//! - [`predict`]: `wgtrain predict`, image files -> top-k classes.
//! - [`rng`]: a version-stable seeded RNG.
//! - [`error`]: the user-facing error type.

pub mod bench;
pub mod calibrate;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod data;
pub mod device;
pub mod error;
pub mod experiments;
pub mod export;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod outputs;
pub mod peak;
pub mod predict;
pub mod rng;
pub mod train;

pub use device::{Device, DeviceChoice};
pub use error::{Error, Result};

/// The git commit this binary was built from (`src/build.rs`), "unknown" outside a git checkout.
pub const BUILD_COMMIT: &str = match option_env!("WGTRAIN_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

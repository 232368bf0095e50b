//! Command-line interface: clap types, validation of every flag into config structs (bad values are
//! rejected here with the flag named), and the command implementations `main.rs` calls.

use crate::data::{self, DataChoice};
use crate::device::{AdapterFilter, Device, DeviceChoice};
use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

mod train_args;
pub use train_args::{RunArgs, TrainArgs};

#[derive(Debug, Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train MLPs and CNNs on the GPU (hand-written WGSL via wgpu) or the CPU",
    after_help = "Examples:\n  wgtrain train                          # mlp on the embedded Fashion-MNIST subset\n  wgtrain train --device gpu --epochs 1  # the same on a GPU adapter (lavapipe counts)\n  wgtrain devices                        # what adapters wgpu sees"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and report loss, accuracy and throughput per epoch.
    #[command(
        after_help = "Examples:\n  wgtrain train --model mlp --epochs 5 --report run.json\n  wgtrain train --device gpu --batch-size 256 --lr 0.002\n  wgtrain train --arch flatten,fc512,relu,fc10 --data /usr/share/datasets/fashion-mnist\n  wgtrain train --optimizer sgd --lr 0.01 --momentum 0.9 --save mlp.safetensors\n  wgtrain train --resume mlp.safetensors --epochs 10   # continue that run to epoch 10\n\nResuming: --resume restores every setting that defines the run (model, data and its selection,\naugmentation, optimiser, schedule, seed, batch size, early stopping, classes). Repeating one with the\nsame value is allowed; a different value is an error. Only these may differ from the first run:\n--epochs (the new total), --device, --adapter, --backend, --threads, --save, --save-best, --report,\n--log-dir, --json, --quiet."
    )]
    Train(TrainArgs),
    /// Evaluate a saved checkpoint on the test set.
    #[command(after_help = "Example:\n  wgtrain eval --checkpoint mlp.safetensors --device cpu")]
    Eval(EvalArgs),
    /// List the CPU and every GPU adapter wgpu finds.
    #[command(
        after_help = "Examples:\n  wgtrain devices\n  wgtrain devices --backend vulkan --json"
    )]
    Devices(DevicesArgs),
    /// The ANN-vs-CNN experiment: measure each claim made about CNNs and write a report with plots.
    #[command(
        after_help = "Examples:\n  wgtrain compare                                  # mlp vs cnn on the embedded subset, 3 seeds (~3 min on 2 cores)\n  wgtrain compare --full                           # the full Fashion-MNIST protocol\n  wgtrain compare --cnn lenet5 --seeds 1 --out runs/lenet\n  wgtrain compare --ann flatten,fc512,relu,fc10 --device gpu"
    )]
    Compare(CompareArgs),
    /// Per-layer output shapes, parameters and FLOPs of a model (like Keras' summary / torchinfo).
    #[command(
        after_help = "Examples:\n  wgtrain summary --model cnn\n  wgtrain summary --arch conv5x5x6p2,relu,maxpool2,flatten,fc10 --input 3x32x32\n  wgtrain summary --checkpoint mlp.safetensors"
    )]
    Summary(SummaryArgs),
    /// Classify image files (PNG, JPEG, BMP) with a checkpoint: top-k classes with probabilities.
    #[command(
        after_help = "Example:\n  wgtrain predict --checkpoint cnn.safetensors shirt.png boot.jpg --top-k 3"
    )]
    Predict(PredictArgs),
    /// Kernel GFLOP/s and model training/inference images/s on the CPU and the GPU adapter.
    #[command(
        after_help = "Examples:\n  wgtrain bench                         # everything, CPU and GPU\n  wgtrain bench --device cpu --models cnn --batch-sizes 64 --json bench.json"
    )]
    Bench(BenchArgs),
    /// Export a checkpoint: a PyTorch module (model.py + weights.safetensors) and/or an ONNX model.
    #[command(
        after_help = "Examples:\n  wgtrain export --checkpoint resnet.safetensors --pytorch resnet-torch/\n  python3 -c 'import sys; sys.path.insert(0, \"resnet-torch\"); import model; print(model.load())'\n  wgtrain export --checkpoint resnet.safetensors --onnx resnet.onnx   # input: pixels / 255, [batch, C, H, W]"
    )]
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerArg {
    Adam,
    Sgd,
}

/// Flags shared by every command that runs a model.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Where to run: auto picks a hardware GPU when there is one, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// GPU adapter: index from `wgtrain devices` or part of its name (default: WGPU_ADAPTER_NAME).
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU backend: vulkan, metal, dx12 or gl (default: WGPU_BACKEND, else all).
    #[arg(long)]
    pub backend: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where the data comes from (part of a training run's stored settings).
#[derive(Debug, Clone, Args, Serialize, Deserialize, PartialEq)]
pub struct DataArgs {
    /// Directory with the four IDX files (MNIST family, plain or .gz). Default: the system
    /// Fashion-MNIST (/usr/share/datasets/fashion-mnist) when installed, else the embedded subset.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use the embedded 10k/2k Fashion-MNIST subset even when the full set is installed.
    #[arg(long, conflicts_with = "data")]
    pub embedded: bool,
    /// Format of --data (default: detected from what the directory holds).
    #[arg(long, value_enum, requires = "data")]
    pub format: Option<FormatArg>,
    /// Image folders: resize every image to this size, N or HxW (default: the first image's size).
    #[arg(long, requires = "data")]
    pub image_size: Option<String>,
    /// Image folders with one level of class folders: fraction of each class held out as the test set
    /// (default 0.2).
    #[arg(long, requires = "data")]
    pub test_split: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatArg {
    Idx,
    Cifar,
    Folder,
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Checkpoint written by `wgtrain train --save`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Write accuracy, loss, per-class precision/recall and the confusion matrix as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Draw the confusion matrix into this PNG.
    #[arg(long)]
    pub confusion_png: Option<PathBuf>,
    /// Write every test image's logits to this NumPy file (.npy, float32 [images, classes], in
    /// test-set order): e.g. to compare with an exported model.
    #[arg(long)]
    pub logits: Option<PathBuf>,
    /// For a plain state_dict without wgtrain metadata (e.g. saved by PyTorch): the preset it holds.
    #[arg(long)]
    pub model: Option<String>,
    /// For a plain state_dict: the layer spec it holds.
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The plain network: a preset (mlp, mlp-bn, ...) or an --arch spec (contains commas).
    #[arg(long, default_value = "mlp")]
    pub ann: String,
    /// The convolutional network: a preset (cnn, lenet5, resnet) or an --arch spec.
    #[arg(long, default_value = "cnn")]
    pub cnn: String,
    /// More than two nets: comma-separated presets, e.g. mlp,mlp-bn,cnn,resnet (each tagged ANN or CNN
    /// by whether it has a convolution). Every claim is measured for every net; verdicts compare the best
    /// ANN with each CNN. Replaces --ann/--cnn.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["ann", "cnn"])]
    pub nets: Vec<String>,
    /// A net given as an --arch spec, added after --nets (repeatable), e.g.
    /// --net-arch conv3x3x16p1,bn,relu,gap,fc10.
    #[arg(long, conflicts_with_all = ["ann", "cnn"])]
    pub net_arch: Vec<String>,
    /// Seeds; mean ± sd over them decides the verdicts.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The full protocol: the full Fashion-MNIST (when installed or given with --data), 10 to 1,000 images per class
    /// for data efficiency. Without it, the embedded 10k/2k subset is used unless --data is given.
    #[arg(long)]
    pub full: bool,
    /// Canvas sides in pixels for the scale claim, e.g. 28,56,84 (default 1x and 1.5x the image side;
    /// with --full 1x to 4x). Each image is placed at a random position on each canvas.
    #[arg(long, value_delimiter = ',')]
    pub canvas: Vec<usize>,
    /// Training-time budgets in seconds for the equal-budget comparison, e.g. 10,30,100 (default 0.5,2;
    /// with --full 10,30,100). Every net trains from scratch for the largest one, on every seed.
    #[arg(long, value_delimiter = ',')]
    pub budgets: Vec<f64>,
    /// Directory for report.md, report.json and the plots.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Go on with an earlier run into the same --out: every finished (net, seed) measurement is kept in
    /// OUT/parts/ as it ends, and --resume reads those back instead of measuring them again (an error
    /// if one was measured under other settings). Without it, everything is measured afresh.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f32,
    /// Seconds of each throughput measurement (after warm-up).
    #[arg(long, default_value_t = 0.5)]
    pub throughput_seconds: f64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Directory with the four IDX files (default: the embedded subset; with --full the system
    /// Fashion-MNIST when installed).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Preset model.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Layer spec instead of a preset.
    #[arg(long)]
    pub arch: Option<String>,
    /// Input shape CxHxW.
    #[arg(long, default_value = "1x28x28")]
    pub input: String,
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Summarise the model a checkpoint holds instead.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Checkpoint written by `wgtrain train --save`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Directory to write model.py (a plain torch.nn.Module) and weights.safetensors (its state_dict).
    #[arg(long, required_unless_present = "onnx")]
    pub pytorch: Option<PathBuf>,
    /// File to write the ONNX model (opset 17, evaluation mode) to. Its input is float32
    /// [batch, C, H, W] pixel values / 255; the normalisation is folded in. Outputs: logits,
    /// probabilities.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Checkpoint written by `wgtrain train --save`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// The CPU and the picked GPU adapter (when there is one).
    All,
    Cpu,
    Gpu,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = BenchDevice::All)]
    pub device: BenchDevice,
    /// GPU adapter: index from `wgtrain devices` or part of its name.
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub backend: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Models to time (comma-separated presets).
    #[arg(long, value_delimiter = ',', default_value = "mlp,cnn,lenet5")]
    pub models: Vec<String>,
    /// Also time this layer spec (e.g. a variant of a preset), after the --models.
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub batch_sizes: Vec<usize>,
    /// Seconds per measurement after warm-up.
    #[arg(long, default_value_t = 0.5)]
    pub seconds: f64,
    /// Skip the per-kernel measurements.
    #[arg(long)]
    pub no_kernels: bool,
    /// Skip the per-model measurements.
    #[arg(long)]
    pub no_models: bool,
    /// Time only the kernels whose name or shape contains this text (e.g. "backward weight", "14x14").
    #[arg(long)]
    pub kernel_filter: Option<String>,
    /// Also time every op of each model's training and inference steps and print where the step
    /// goes (CPU only: needs --device cpu).
    #[arg(long)]
    pub profile: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The CPU's f32 peak in GFLOP/s for the "% peak" column, when known (default: an estimate from
    /// the clock and the vector extensions, which in a VM may use the base clock).
    #[arg(long)]
    pub cpu_peak_gflops: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only this backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub backend: Option<String>,
}

impl DeviceArgs {
    pub(crate) fn choice(&self) -> DeviceChoice {
        match self.device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Gpu => DeviceChoice::Gpu,
        }
    }

    pub(crate) fn filter(&self) -> AdapterFilter {
        AdapterFilter {
            adapter: self.adapter.clone(),
            backend: self.backend.clone(),
        }
    }

    /// Size the global thread pool, then pick the device.
    pub(crate) fn select(&self) -> Result<(Device, String)> {
        if let Some(t) = self.threads {
            if t == 0 {
                return Err(Error::Config("--threads must be at least 1".into()));
            }
            // Fails only if the pool was already built (e.g. in tests); the existing pool is then kept.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build_global();
        }
        Device::select(self.choice(), &self.filter())
    }
}

impl DataArgs {
    pub(crate) fn choice(&self) -> Result<DataChoice> {
        let Some(dir) = &self.data else {
            return Ok(if self.embedded {
                DataChoice::Embedded
            } else {
                DataChoice::Default
            });
        };
        if self.format.is_none() && self.image_size.is_none() && self.test_split.is_none() {
            return Ok(DataChoice::Dir(dir.clone()));
        }
        let image_size = match &self.image_size {
            None => None,
            Some(s) => {
                let dims: Option<Vec<usize>> =
                    s.split('x').map(|d| d.trim().parse().ok()).collect();
                match dims.as_deref() {
                    Some(&[n]) if n > 0 => Some((n, n)),
                    Some(&[h, w]) if h > 0 && w > 0 => Some((h, w)),
                    _ => {
                        return Err(Error::Config(format!(
                        "--image-size {s}: expected N or HxW with positive sizes, e.g. 32 or 28x28"
                    )))
                    }
                }
            }
        };
        if let Some(v) = self.test_split {
            if !(v > 0.0 && v < 1.0) {
                return Err(Error::Config(format!(
                    "--test-split {v}: must be between 0 and 1, e.g. 0.2"
                )));
            }
        }
        let format = self.format.map(|f| match f {
            FormatArg::Idx => data::Format::Idx,
            FormatArg::Cifar => data::Format::Cifar,
            FormatArg::Folder => data::Format::Folder,
        });
        Ok(DataChoice::DirWith(
            dir.clone(),
            data::DirOptions {
                format,
                image_size,
                test_fraction: self.test_split,
            },
        ))
    }
}

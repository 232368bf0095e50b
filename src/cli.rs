//! Command-line interface: clap types, validation of every flag into config structs (bad values are
//! rejected here with the flag named), and the command implementations `main.rs` calls.

use crate::checkpoint::{self, CheckpointMeta};
use crate::data::{self, Batcher, DataChoice};
use crate::device::gpu::AdapterDescription;
use crate::device::{self, AdapterFilter, Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::experiments::compare::{self, CompareConfig};
use crate::experiments::runner::NetChoice;
use crate::metrics::{write_json, TrainReport};
use crate::models;
use crate::nn::{OptimConfig, OptimizerKind};
use crate::train::{self, median, TrainConfig};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Instant;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and report loss, accuracy and throughput per epoch.
    #[command(
        after_help = "Examples:\n  wgtrain train --model mlp --epochs 5 --report run.json\n  wgtrain train --device gpu --batch-size 256 --lr 0.002\n  wgtrain train --arch flatten,fc512,relu,fc10 --data /usr/share/datasets/fashion-mnist\n  wgtrain train --optimizer sgd --lr 0.01 --momentum 0.9 --save mlp.safetensors"
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Idx,
    Cifar,
    Folder,
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Preset model.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Custom layer spec instead of a preset, e.g. flatten,fc256,relu,fc10 (overrides --model).
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f32,
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,
    /// SGD momentum (ignored by Adam).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub momentum: f32,
    /// Learning-rate schedule per epoch: constant, cosine, or step:EVERY:GAMMA.
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// L2 weight decay added to the gradient.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// Seed for initialisation and shuffling (same seed on the CPU = identical run).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Write a JSON report of the run to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Save a safetensors checkpoint here after every epoch (atomic write), plus FILE's training
    /// state (optimiser moments, step, seed) as NAME.optim.safetensors for --resume.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Continue a run saved with --save: model, weights, optimiser state, seed and batch size come from
    /// the checkpoint; --epochs is the total, so a checkpoint of epoch 2 with --epochs 5 trains 3-5.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Training-time augmentation: shift:N (random shifts up to N pixels, zero fill) and/or flip
    /// (mirror left-right half the time), e.g. shift:2,flip. Seeded, and identical on resume.
    #[arg(long)]
    pub augment: Option<String>,
    /// Hold out this fraction of each class's training images as a validation set (evaluated every
    /// epoch; used by --save-best and --early-stop, never the test set).
    #[arg(long)]
    pub val_split: Option<f64>,
    /// Also save the checkpoint of the epoch with the best validation accuracy here (needs --val-split).
    #[arg(long, requires = "val_split")]
    pub save_best: Option<PathBuf>,
    /// Stop when validation accuracy has not improved for N epochs (needs --val-split).
    #[arg(long, requires = "val_split")]
    pub early_stop: Option<usize>,
    /// Machine-readable output: one JSON object per epoch on stdout, then the report; messages on stderr.
    #[arg(long)]
    pub json: bool,
    /// Write metrics.csv, metrics.jsonl (one line per epoch) and learning_curves.png here.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
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
    /// The plain network: a preset (mlp, cnn, lenet5) or an --arch spec (contains commas).
    #[arg(long, default_value = "mlp")]
    pub ann: String,
    /// The convolutional network: a preset or an --arch spec.
    #[arg(long, default_value = "cnn")]
    pub cnn: String,
    /// Seeds; mean ± sd over them decides the verdicts.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The full protocol: the full Fashion-MNIST (when installed or given with --data), 1k/10k/all images
    /// for data efficiency. Without it, the embedded 10k/2k subset is used unless --data is given.
    #[arg(long)]
    pub full: bool,
    /// Directory for report.md, report.json and the plots.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f32,
    /// Seconds of each throughput measurement (after warm-up).
    #[arg(long, default_value_t = 1.0)]
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
    fn choice(&self) -> DeviceChoice {
        match self.device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Gpu => DeviceChoice::Gpu,
        }
    }

    fn filter(&self) -> AdapterFilter {
        AdapterFilter {
            adapter: self.adapter.clone(),
            backend: self.backend.clone(),
        }
    }

    /// Size the global thread pool, then pick the device.
    fn select(&self) -> Result<(Device, String)> {
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
    fn choice(&self) -> Result<DataChoice> {
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

impl TrainArgs {
    /// Check every numeric flag; errors name the flag and the accepted range.
    pub fn validate(&self) -> Result<OptimConfig> {
        if self.epochs == 0 {
            return Err(Error::Config("--epochs must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "--lr {} is not a positive finite number; try 0.001",
                self.lr
            )));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(Error::Config(format!(
                "--momentum {} must be in [0, 1); try 0.9",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::Config(format!(
                "--weight-decay {} must be a non-negative number",
                self.weight_decay
            )));
        }
        if self.train_size == Some(0) {
            return Err(Error::Config("--train-size must be at least 1".into()));
        }
        if let Some(v) = self.val_split {
            if !(v > 0.0 && v < 1.0) {
                return Err(Error::Config(format!(
                    "--val-split {v}: must be between 0 and 1, e.g. 0.1"
                )));
            }
        }
        if self.early_stop == Some(0) {
            return Err(Error::Config(
                "--early-stop must be at least 1 epoch".into(),
            ));
        }
        let mut cfg = match self.optimizer {
            OptimizerArg::Adam => OptimConfig::adam(self.lr),
            OptimizerArg::Sgd => OptimConfig::sgd(self.lr, self.momentum),
        };
        cfg.weight_decay = self.weight_decay;
        Ok(cfg)
    }
}

fn optimizer_label(cfg: &OptimConfig) -> String {
    match cfg.kind {
        OptimizerKind::Adam { .. } => "adam".into(),
        OptimizerKind::Sgd { momentum } => format!("sgd(momentum {momentum})"),
    }
}

/// `wgtrain train`.
pub fn run_train(args: &TrainArgs, process_start: Instant) -> Result<()> {
    // With --json, stdout carries only JSON (one line per epoch, then the report); messages go to stderr.
    macro_rules! info {
        ($($t:tt)*) => {
            if args.json {
                eprintln!($($t)*)
            } else {
                println!($($t)*)
            }
        };
    }
    let mut optim = args.validate()?;
    let mut data = data::load(&args.data.choice()?, args.train_size)?;
    if let Some(f) = args.val_split {
        data.split_validation(f)?;
    }
    // --resume: model, weights, optimiser state, seed and batch size all come from the checkpoint.
    let resumed = match &args.resume {
        Some(path) => {
            let (model, params, meta) = checkpoint::load(path)?;
            let ts = checkpoint::load_training_state(path, model.param_len, meta.epoch)?;
            if model.input != data.train.shape || model.num_classes < data.num_classes {
                return Err(Error::data(
                    path,
                    "was trained on data of another shape or class count than --data gives",
                ));
            }
            if meta.epoch >= args.epochs {
                return Err(Error::Config(format!(
                    "--resume {}: already trained {} epoch(s); --epochs is the total, so ask for more than {}",
                    path.display(),
                    meta.epoch,
                    meta.epoch
                )));
            }
            Some((model, params, ts))
        }
        None => None,
    };
    let (model, params, seed, batch_size, start_epoch, opt_state) = match resumed {
        Some((model, params, ts)) => {
            optim = ts.optim;
            (
                model,
                params,
                ts.seed,
                ts.batch_size,
                ts.epoch,
                Some(ts.state),
            )
        }
        None => {
            let model = models::build(
                Some(&args.model),
                args.arch.as_deref(),
                data.train.shape,
                data.num_classes,
            )?;
            let params = model.init_params(args.seed);
            (model, params, args.seed, args.batch_size, 0, None)
        }
    };
    let (device, why) = args.device.select()?;
    info!("device: {why}");
    info!(
        "data: {} ({}), {} train / {} test images of {}x{}x{}, {} classes",
        data.source.name,
        data.source.location,
        data.train.len(),
        data.test.len(),
        data.train.shape.channels,
        data.train.shape.height,
        data.train.shape.width,
        data.num_classes
    );
    info!(
        "model: {} [{}], {} parameters, {:.3} MFLOP/image forward",
        model.name,
        model.spec(),
        model.num_params(),
        model.forward_flops() as f64 / 1e6
    );
    let schedule = train::LrSchedule::parse(&args.lr_schedule)?;
    let augment = match &args.augment {
        Some(a) => Some(data::augment::Augment::parse(a)?),
        None => None,
    };
    let lr_schedule = (schedule != train::LrSchedule::Constant).then_some((schedule, optim.lr));
    if start_epoch > 0 {
        info!(
            "resuming after epoch {start_epoch} with the checkpoint's seed {seed}, batch size {batch_size} and optimiser ({})",
            optimizer_label(&optim)
        );
    }
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size,
        seed,
        eval_batch_size: batch_size.max(256),
        progress: !args.quiet,
        start_epoch,
        lr_schedule,
        early_stop: args.early_stop,
        augment,
    };
    let mut exec = device.executor(&model, &params, optim, cfg.max_batch())?;
    if let Some(state) = &opt_state {
        exec.set_optimizer_state(state)?;
    }
    let meta = CheckpointMeta {
        model_name: model.name.clone(),
        arch: model.spec(),
        input: model.input,
        num_classes: model.num_classes,
        normalization: data.normalization.clone(),
        class_names: data.class_names.clone(),
        epoch: 0,
    };
    // A resumed run keeps saving to the file it resumed from unless --save says otherwise.
    let save_path = args.save.clone().or_else(|| args.resume.clone());
    // Saved after every epoch, atomically: the training state first, then the weights, so a crash at any
    // moment leaves a loadable pair (or an epoch mismatch that --resume reports).
    let mut log = match &args.log_dir {
        Some(d) => Some(crate::metrics::EpochLog::create(d, start_epoch > 0)?),
        None => None,
    };
    let mut best_val = f64::NEG_INFINITY;
    let mut save =
        |r: &crate::train::EpochRecord, exec: &mut dyn crate::nn::Executor| -> Result<()> {
            if let Some(log) = log.as_mut() {
                log.append(r)?;
            }
            if let (Some(path), Some(acc)) = (&args.save_best, r.val_accuracy) {
                if acc > best_val {
                    best_val = acc;
                    let meta = CheckpointMeta {
                        epoch: r.epoch,
                        ..meta.clone()
                    };
                    checkpoint::save(path, &model, &exec.params()?, &meta)?;
                }
            }
            if let Some(path) = &save_path {
                let ts = checkpoint::TrainingState {
                    optim,
                    state: exec.optimizer_state()?,
                    seed,
                    batch_size,
                    epoch: r.epoch,
                };
                checkpoint::save_training_state(path, &ts)?;
                let meta = CheckpointMeta {
                    epoch: r.epoch,
                    ..meta.clone()
                };
                checkpoint::save(path, &model, &exec.params()?, &meta)?;
            }
            Ok(())
        };
    let outcome = train::train_validated(
        &mut *exec,
        &data.train,
        data.val.as_ref(),
        &data.test,
        &data.normalization,
        &cfg,
        |r, exec| {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(r).expect("epoch record serialises")
                );
            }
            let val = r
                .val_accuracy
                .map_or(String::new(), |v| format!("  val acc {:.2}%", 100.0 * v));
            info!(
                "epoch {:>3}  loss {:.4}  train acc {:.2}%{val}  test acc {:.2}%  {:>8.0} img/s  {:.2}s (+{:.2}s eval)",
                r.epoch,
                r.train_loss,
                100.0 * r.train_accuracy,
                100.0 * r.test_accuracy,
                r.images_per_sec,
                r.seconds,
                r.eval_seconds
            );
            save(r, exec)
        },
    )?;
    if let (Some(log), Some(dir)) = (&log, &args.log_dir) {
        log.finish(&format!(
            "{} on {}: learning curves",
            model.name, data.source.name
        ))?;
        let filters = log.filters(&model, &exec.params()?)?;
        info!(
            "wrote metrics.csv, metrics.jsonl, learning_curves.png{} to {}",
            if filters { " and filters.png" } else { "" },
            dir.display()
        );
    }

    if let Some(path) = &save_path {
        info!(
            "saved {} (and its training state {}) after every epoch",
            path.display(),
            checkpoint::state_path(path).display()
        );
    }
    let last = outcome.epochs.last().expect("at least one epoch");
    let startup = outcome
        .first_step_done
        .map(|t| t.duration_since(process_start).as_secs_f64())
        .unwrap_or(0.0);
    let ips: Vec<f64> = outcome.epochs.iter().map(|e| e.images_per_sec).collect();
    info!(
        "final test accuracy {:.2}%, median {:.0} train img/s, first step done {:.2}s after start, peak memory {}",
        100.0 * last.test_accuracy,
        median(&ips),
        startup,
        crate::metrics::peak_rss_mib().map_or("unknown".into(), |m| format!("{m:.0} MiB"))
    );
    let report = TrainReport {
        wgtrain_version: env!("CARGO_PKG_VERSION").into(),
        model: model.name.clone(),
        arch: model.spec(),
        device: device.kind().into(),
        adapter: device.adapter_name(),
        params: model.num_params(),
        data: data.source.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        batch_size,
        optimizer: optimizer_label(&optim),
        lr: optim.lr,
        seed,
        threads: rayon::current_num_threads(),
        test_accuracy: last.test_accuracy,
        train_images_per_sec: median(&ips),
        startup_seconds: startup,
        peak_rss_mib: crate::metrics::peak_rss_mib(),
        epochs: outcome.epochs.clone(),
    };
    if let Some(path) = &args.report {
        write_json(path, &report)?;
        info!("report written to {}", path.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serialises")
        );
    }
    Ok(())
}

/// `wgtrain eval`.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let data = data::load(&args.data.choice()?, None)?;
    let plain = !checkpoint::has_wgtrain_metadata(&args.checkpoint)?;
    let (model, params, meta) = if plain && (args.model.is_some() || args.arch.is_some()) {
        // A plain state_dict: the flags say what it is, the data gives shapes and normalisation.
        let model = models::build(
            args.model.as_deref(),
            args.arch.as_deref(),
            data.test.shape,
            data.num_classes,
        )?;
        let params = checkpoint::load_plain(&args.checkpoint, &model)?;
        let meta = CheckpointMeta {
            model_name: model.name.clone(),
            arch: model.spec(),
            input: model.input,
            num_classes: model.num_classes,
            normalization: data.normalization.clone(),
            class_names: data.class_names.clone(),
            epoch: 0,
        };
        (model, params, meta)
    } else {
        checkpoint::load(&args.checkpoint)?
    };
    if data.test.shape != model.input {
        return Err(Error::data(
            &args.checkpoint,
            format!(
                "model expects {}x{}x{} images but the data has {}x{}x{}",
                model.input.channels,
                model.input.height,
                model.input.width,
                data.test.shape.channels,
                data.test.shape.height,
                data.test.shape.width
            ),
        ));
    }
    if data.num_classes > model.num_classes {
        return Err(Error::data(
            &args.checkpoint,
            format!(
                "model has {} classes but the data has {}",
                model.num_classes, data.num_classes
            ),
        ));
    }
    let (device, why) = args.device.select()?;
    println!("device: {why}");
    let batch = args.batch_size.min(data.test.len());
    let mut exec = device.executor(&model, &params, OptimConfig::adam(1e-3), batch)?;
    let batcher = Batcher::new(&meta.normalization, model.input);
    let t = Instant::now();
    let stats = train::evaluate(&mut *exec, &data.test, &batcher, batch)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} [{}] on {} ({} test images): accuracy {:.2}%, loss {:.4}, {:.0} img/s",
        meta.model_name,
        meta.arch,
        data.source.name,
        data.test.len(),
        100.0 * stats.accuracy(),
        stats.mean_loss(),
        data.test.len() as f64 / secs.max(1e-9)
    );
    let mut names = meta.class_names.clone();
    names.resize_with(model.num_classes, || String::from("?"));
    let cm = train::confusion(&mut *exec, &data.test, &batcher, batch, names)?;
    let per_class = cm.per_class();
    println!(
        "\n{:<14} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "images"
    );
    for c in &per_class {
        println!(
            "{:<14} {:>8.2}% {:>8.2}% {:>8}",
            c.class,
            100.0 * c.precision,
            100.0 * c.recall,
            c.support
        );
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted class)");
    for (name, row) in cm.class_names.iter().zip(&cm.counts) {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        println!("{:<14}{cells}", name);
    }
    if let Some(path) = &args.confusion_png {
        crate::experiments::plots::confusion_png(
            path,
            &cm,
            &format!(
                "{} on {}: confusion matrix",
                meta.model_name, data.source.name
            ),
        )?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.report {
        let v = serde_json::json!({
            "model": meta.model_name,
            "arch": meta.arch,
            "data": data.source,
            "test_images": data.test.len(),
            "test_accuracy": stats.accuracy(),
            "test_loss": stats.mean_loss(),
            "per_class": per_class,
            "confusion_matrix": cm,
        });
        write_json(path, &v)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

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
    if args.json {
        let v = serde_json::json!({ "cpu": cpu, "adapters": adapters });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!("cpu: {} ({} threads)", cpu.model, cpu.threads);
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. apt-get install mesa-vulkan-drivers)");
    }
    for a in &adapters {
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
    }
    Ok(())
}

fn net_choice(role: &str, value: &str) -> NetChoice {
    if value.contains(',') {
        NetChoice {
            role: role.into(),
            preset: None,
            arch: Some(value.into()),
        }
    } else {
        NetChoice {
            role: role.into(),
            preset: Some(value.into()),
            arch: None,
        }
    }
}

/// `wgtrain compare`.
pub fn run_compare(args: &CompareArgs) -> Result<()> {
    if args.seeds == 0 {
        return Err(Error::Config("--seeds must be at least 1".into()));
    }
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Error::Config(format!(
            "--lr {} is not a positive finite number; try 0.001",
            args.lr
        )));
    }
    if !(args.throughput_seconds.is_finite() && args.throughput_seconds >= 0.0) {
        return Err(Error::Config(
            "--throughput-seconds must be a non-negative number".into(),
        ));
    }
    let data = match (&args.data, args.full) {
        (Some(d), _) => DataChoice::Dir(d.clone()),
        (None, true) => DataChoice::Default,
        (None, false) => DataChoice::Embedded,
    };
    let (device, why) = args.device.select()?;
    println!("device: {why}");
    let cfg = CompareConfig {
        ann: net_choice("ann", &args.ann),
        cnn: net_choice("cnn", &args.cnn),
        data,
        seeds: args.seeds,
        full: args.full,
        out: args.out.clone(),
        batch_size: args.batch_size,
        lr: args.lr,
        throughput_seconds: args.throughput_seconds,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    // Fail on an unwritable output directory before spending minutes training.
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let report = compare::run(&cfg, &device, &mut |line| println!("{line}"))?;
    let files = compare::write(&report, &cfg.out)?;
    println!("\n{}", compare::summary_table(&report));
    println!(
        "finished in {:.0}s; wrote {}",
        report.wall_seconds,
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `wgtrain bench`.
pub fn run_bench(args: &BenchArgs) -> Result<()> {
    use crate::bench;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(Error::Config("--seconds must be a positive number".into()));
    }
    if args.batch_sizes.contains(&0) {
        return Err(Error::Config("--batch-sizes must all be at least 1".into()));
    }
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
            "\n{:<34} {:<30} {:<5} {:>11} {:>9} {:>8}",
            "kernel", "shape", "dev", "us/call", "GFLOP/s", "% peak"
        );
        for d in &devices {
            for k in bench::kernels(d, args.seconds, peak)? {
                println!(
                    "{:<34} {:<30} {:<5} {:>11.1} {:>9.2} {:>8}",
                    k.kernel,
                    k.shape,
                    k.device,
                    k.seconds_per_call * 1e6,
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
            for m in bench::models(d, &args.models, &args.batch_sizes, &data, args.seconds)? {
                println!(
                    "{:<8} {:<5} {:>6} {:>13.0} {:>13.0} {:>10.3} {:>11}",
                    m.throughput.model,
                    m.throughput.device,
                    m.throughput.batch_size,
                    m.throughput.train_images_per_sec,
                    m.throughput.inference_images_per_sec,
                    m.throughput.warmup_seconds,
                    m.dispatches_per_step
                        .map_or("-".into(), |n| format!("{n} / 1 submit"))
                );
                report.models.push(m);
            }
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
            "layers": rows, "params": model.num_params(), "forward_flops": model.forward_flops(),
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
    println!(
        "{:>3}  {:<16} {:>12} {:>10} {:>14}",
        "#", "layer", "output", "params", "fwd FLOPs"
    );
    for r in &rows {
        println!(
            "{:>3}  {:<16} {:>12} {:>10} {:>14}",
            r.index,
            r.layer,
            shape(&r.output_shape),
            r.params,
            r.forward_flops
        );
    }
    println!(
        "total: {} parameters ({:.2} MiB as f32), {:.3} MFLOP forward per image",
        model.num_params(),
        model.num_params() as f64 * 4.0 / (1 << 20) as f64,
        model.forward_flops() as f64 / 1e6
    );
    Ok(())
}

/// `wgtrain predict`.
pub fn run_predict(args: &PredictArgs) -> Result<()> {
    let (device, _) = args.device.select()?;
    let preds = crate::predict::predict(&device, &args.checkpoint, &args.images, args.top_k)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&preds).expect("json"));
        return Ok(());
    }
    for p in &preds {
        let top = p
            .top
            .iter()
            .map(|c| format!("{} {:.1}%", c.name, 100.0 * c.probability))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{}: {top}", p.file.display());
    }
    Ok(())
}

//! Running one training job for an experiment and measuring throughput: the pieces every claim shares.

use crate::data::{Batcher, Dataset, Normalization};
use crate::device::Device;
use crate::error::Result;
use crate::models;
use crate::nn::{Executor, Model, OptimConfig, Weights};
use crate::train::{self, median, EpochRecord, TrainConfig};
use std::time::Instant;

/// One network of the comparison: a preset name or an `--arch` spec.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NetChoice {
    pub preset: Option<String>,
    pub arch: Option<String>,
}

/// Which side of the comparison a net is on: a CNN has at least one convolution, an ANN none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ann,
    Cnn,
}

impl Family {
    pub fn of(model: &Model) -> Family {
        let conv = model
            .graph
            .nodes
            .iter()
            .any(|n| n.op.as_any().is::<crate::ops::conv2d::Conv2d>());
        if conv {
            Family::Cnn
        } else {
            Family::Ann
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Family::Ann => "ANN",
            Family::Cnn => "CNN",
        }
    }
}

impl NetChoice {
    /// A preset name, or an `--arch` spec when `value` has a comma.
    pub fn parse(value: &str) -> NetChoice {
        if value.contains(',') {
            NetChoice {
                preset: None,
                arch: Some(value.into()),
            }
        } else {
            NetChoice {
                preset: Some(value.into()),
                arch: None,
            }
        }
    }

    /// The model for images of `input` and `classes` classes, named by [`label`](Self::label).
    pub fn build(&self, input: crate::data::ImageShape, classes: usize) -> Result<Model> {
        let mut m = models::build_with_classes(
            self.preset.as_deref(),
            self.arch.as_deref(),
            input,
            classes,
        )?;
        m.name = self.label();
        Ok(m)
    }

    /// How the net is named in tables: the preset, or the spec.
    pub fn label(&self) -> String {
        match (&self.preset, &self.arch) {
            (_, Some(a)) => a.clone(),
            (Some(p), None) => p.clone(),
            (None, None) => "net".into(),
        }
    }
}

/// What an experiment's training run produced.
pub struct Run {
    pub epochs: Vec<EpochRecord>,
    pub executor: Box<dyn Executor>,
}

impl Run {
    pub fn final_test(&self) -> f64 {
        self.epochs.last().map_or(0.0, |e| e.test_accuracy)
    }

    pub fn final_train(&self) -> f64 {
        self.epochs.last().map_or(0.0, |e| e.train_accuracy)
    }

    pub fn train_images_per_sec(&self) -> f64 {
        median(
            &self
                .epochs
                .iter()
                .map(|e| e.images_per_sec)
                .collect::<Vec<_>>(),
        )
    }

    /// Training seconds summed until the first epoch whose test accuracy reaches `target`.
    pub fn seconds_to(&self, target: f64) -> Option<f64> {
        let mut t = 0.0;
        for e in &self.epochs {
            t += e.seconds;
            if e.test_accuracy >= target {
                return Some(t);
            }
        }
        None
    }
}

/// The shared recipe of every run in an experiment.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub batch_size: usize,
    pub optim: OptimConfig,
    pub eval_batch_size: usize,
    /// Training-time augmentation (`None` for every run but the strong ANN's).
    pub augment: Option<crate::data::augment::Augment>,
}

/// Train `model` from `init` on `train`, evaluating on `test` after each epoch when `curve` is set,
/// else only after the last one (`TrainConfig::test_every_epoch`): most runs of an experiment need only
/// the final accuracy, and evaluating a few thousand test images after each of 50 epochs on 100 images
/// would cost several times the training.
#[allow(clippy::too_many_arguments)]
pub fn train_run(
    device: &Device,
    model: &Model,
    init: &[f32],
    optim: OptimConfig,
    recipe: &Recipe,
    train: &Dataset,
    test: &Dataset,
    norm: &Normalization,
    epochs: usize,
    seed: u64,
    curve: bool,
) -> Result<Run> {
    let cfg = TrainConfig {
        epochs,
        batch_size: recipe.batch_size.min(train.len()),
        seed,
        eval_batch_size: recipe.eval_batch_size,
        progress: false,
        start_epoch: 0,
        lr_schedule: None,
        early_stop: None,
        best_val: None,
        augment: recipe.augment,
        // Every BatchNorm net is evaluated with statistics recomputed over its training set (see
        // `crate::calibrate`): lagging running statistics must not decide a verdict.
        recalibrate_bn: crate::calibrate::BnLayout::of(model),
        test_every_epoch: curve,
    };
    let max_batch = device.batch_that_fits(model, cfg.batch_size, cfg.max_batch());
    let mut executor = device.executor(model, init, optim, max_batch)?;
    let out = train::train(&mut *executor, train, test, norm, &cfg, |_, _| Ok(()))?;
    Ok(Run {
        epochs: out.epochs,
        executor,
    })
}

/// Accuracy of a trained executor on a data set.
pub fn accuracy(
    exec: &mut dyn Executor,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
) -> Result<f64> {
    let batcher = Batcher::new(norm, ds.shape);
    Ok(train::evaluate(exec, ds, &batcher, batch)?.accuracy())
}

/// The CPU's convolution kernels when `device` is the CPU.
pub fn cpu_conv_of(device: &Device) -> Result<Option<crate::device::policy::CpuConv>> {
    match device {
        Device::Cpu => Ok(Some(crate::device::policy::cpu_conv()?.0)),
        Device::Gpu(_) => Ok(None),
    }
}

/// The instruction set of the CPU's direct kernels when `device` is the CPU (and it has one).
pub fn cpu_simd_of(device: &Device) -> Result<Option<crate::device::policy::Simd>> {
    match device {
        Device::Cpu => Ok(crate::device::policy::cpu_simd()?.map(|s| s.0)),
        Device::Gpu(_) => Ok(None),
    }
}

/// Steady-state throughput of one model on one device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    pub device: String,
    pub adapter: String,
    pub software_adapter: bool,
    /// The adapter's kernel policy (`device::policy`), `None` on the CPU.
    pub kernel_policy: Option<crate::device::policy::KernelPolicy>,
    /// The CPU's convolution kernels (`device::policy::cpu_conv`), `None` on a GPU.
    pub cpu_conv: Option<crate::device::policy::CpuConv>,
    /// Their instruction set (`device::policy::cpu_simd`), `None` on a GPU.
    pub cpu_simd: Option<crate::device::policy::Simd>,
    pub model: String,
    /// Pixels per side of the images (the data's own, or a canvas of the scale claim).
    pub image_size: usize,
    pub batch_size: usize,
    pub train_images_per_sec: f64,
    pub inference_images_per_sec: f64,
    /// Seconds for executor creation (buffers, pipelines) plus the first training step.
    pub warmup_seconds: f64,
    /// GPU dispatches one training step records (one submit per step); `None` on the CPU.
    pub dispatches_per_step: Option<usize>,
}

/// The first `batch` images of `data` (all of them when it has fewer), normalised, and their labels:
/// what the throughput measurements step on.
pub fn first_batch(data: &Dataset, norm: &Normalization, batch: usize) -> (Vec<f32>, Vec<u32>) {
    let batch = batch.min(data.len());
    let batcher = Batcher::new(norm, data.shape);
    let mut x = vec![0f32; batch * data.shape.len()];
    let mut y = vec![0u32; batch];
    let idx: Vec<usize> = (0..batch).collect();
    batcher.fill(data, &idx, &mut x, &mut y);
    (x, y)
}

/// Training (or evaluation) steps on `x, y` until at least `min_seconds` and 3 steps have passed,
/// the device synchronised every 4 steps and at the end; returns how many ran.
pub fn steady_steps(
    exec: &mut dyn Executor,
    x: &[f32],
    y: &[u32],
    train: bool,
    min_seconds: f64,
) -> Result<usize> {
    let t = Instant::now();
    let mut steps = 0usize;
    while steps < 3 || t.elapsed().as_secs_f64() < min_seconds {
        if train {
            exec.train_step(x, y)?;
        } else {
            exec.eval_step(x, y)?;
        }
        steps += 1;
        if steps.is_multiple_of(4) {
            exec.wait()?;
        }
    }
    exec.wait()?;
    Ok(steps)
}

/// Time training steps (after one warm-up step) until at least `min_seconds` and 3 steps have passed,
/// then inference batches the same way. The device is synchronised before each clock read.
pub fn measure_throughput(
    device: &Device,
    model: &Model,
    data: &Dataset,
    norm: &Normalization,
    batch: usize,
    min_seconds: f64,
) -> Result<Throughput> {
    let (x, y) = first_batch(data, norm, batch);
    let batch = y.len();
    let t0 = Instant::now();
    let mut exec = device.executor(model, &model.init_params(0), OptimConfig::adam(1e-3), batch)?;
    exec.train_step(&x, &y)?;
    exec.wait()?;
    let warmup = t0.elapsed().as_secs_f64();
    let dispatches = exec.dispatches_per_step(batch)?;
    let timed = |exec: &mut Box<dyn Executor>, train: bool| -> Result<f64> {
        let t = Instant::now();
        let steps = steady_steps(exec.as_mut(), &x, &y, train, min_seconds)?;
        Ok((steps * batch) as f64 / t.elapsed().as_secs_f64())
    };
    let train_ips = timed(&mut exec, true)?;
    let _ = exec.take_train_stats()?;
    // Inference runs the evaluation graph (BatchNorm folded, dropout gone), as `eval` and `predict`.
    let weights = Weights {
        params: exec.params()?,
        state: exec.state()?,
    };
    drop(exec);
    let mut exec = device.inference_executor(model, &weights, batch)?;
    exec.eval_step(&x, &y)?;
    exec.wait()?;
    let infer_ips = timed(&mut exec, false)?;
    let _ = exec.take_eval_stats()?;
    let (software, adapter, kernel_policy) = match device {
        Device::Cpu => (false, device.adapter_name(), None),
        Device::Gpu(ctx) => (
            ctx.adapter.software,
            ctx.adapter.short(),
            Some(ctx.policy.clone()),
        ),
    };
    Ok(Throughput {
        device: device.kind().into(),
        adapter,
        software_adapter: software,
        kernel_policy,
        cpu_conv: cpu_conv_of(device)?,
        cpu_simd: cpu_simd_of(device)?,
        model: model.name.clone(),
        image_size: data.shape.height.max(data.shape.width),
        batch_size: batch,
        train_images_per_sec: train_ips,
        inference_images_per_sec: infer_ips,
        warmup_seconds: warmup,
        dispatches_per_step: dispatches,
    })
}

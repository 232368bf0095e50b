//! The ONE training loop, the same for every model and device: shuffle, assemble batches, step the
//! executor, read loss/accuracy back once per epoch, evaluate on the test set.

use crate::data::{epoch_order, Batcher, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::nn::{Executor, Stats};
use crate::rng::Rng;
use std::io::IsTerminal;
use std::time::Instant;

/// Loop settings (the optimiser lives in the executor).
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Batch size used for evaluation.
    pub eval_batch_size: usize,
    /// Draw a progress bar (only when a terminal is attached).
    pub progress: bool,
    /// Epochs already completed (when resuming): training runs epochs `start_epoch + 1 ..= epochs`,
    /// with the same shuffles an uninterrupted run would draw.
    pub start_epoch: usize,
    /// Learning rate per epoch, with the base rate; `None` keeps the optimiser's rate.
    pub lr_schedule: Option<(LrSchedule, f32)>,
    /// Stop when validation accuracy has not improved for this many epochs (needs a validation set).
    pub early_stop: Option<usize>,
    /// Best validation accuracy and its epoch before `start_epoch` (a resumed run's early stopping goes
    /// on counting from it).
    pub best_val: Option<(f64, usize)>,
    /// Training-time augmentation (`None`: the images as stored).
    pub augment: Option<crate::data::augment::Augment>,
    /// Recompute the BatchNorm statistics over the (unaugmented) training set after every epoch, before
    /// evaluating (`--recalibrate-bn`; see [`crate::calibrate`]). Parameters are untouched, so the
    /// training trajectory is the same with or without it.
    pub recalibrate_bn: Option<crate::calibrate::BnLayout>,
    /// Evaluate the test set after every epoch (what `wgtrain train` prints). `false`: only after the
    /// last epoch (or the one early stopping ends on); the other epochs' test fields are NaN, and the
    /// BatchNorm statistics are recomputed only where something is evaluated (they do not steer
    /// training, so the result is the same).
    pub test_every_epoch: bool,
}

/// Per-epoch learning-rate schedules (PyTorch's StepLR and CosineAnnealingLR with eta_min 0, stepped
/// once per epoch).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum LrSchedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f32,
    },
    /// Half a cosine from the base rate down to 0 over the run's epochs.
    Cosine,
}

impl LrSchedule {
    /// The rate for epoch `epoch` (1-based) of `total`.
    pub fn lr(&self, base: f32, epoch: usize, total: usize) -> f32 {
        let done = epoch.saturating_sub(1);
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((done / every.max(1)) as i32),
            LrSchedule::Cosine => {
                let t = done as f64 / total.max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }

    /// Parse `constant`, `step:EVERY:GAMMA` or `cosine`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "--lr-schedule {s}: expected constant, cosine or step:EVERY:GAMMA (e.g. step:2:0.5)"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["constant"] => Ok(LrSchedule::Constant),
            ["cosine"] => Ok(LrSchedule::Cosine),
            ["step", every, gamma] => {
                let every: usize = every.parse().map_err(|_| bad())?;
                let gamma: f32 = gamma.parse().map_err(|_| bad())?;
                if every == 0 || !(gamma.is_finite() && gamma > 0.0) {
                    return Err(bad());
                }
                Ok(LrSchedule::Step { every, gamma })
            }
            _ => Err(bad()),
        }
    }
}

impl TrainConfig {
    /// The largest batch an executor for this run must accept (training or evaluation).
    pub fn max_batch(&self) -> usize {
        self.batch_size.max(self.eval_batch_size)
    }
}

/// One epoch's numbers, as printed and as written to reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Training images per second (training steps only, device synchronised, evaluation excluded).
    pub images_per_sec: f64,
    /// Seconds spent training this epoch (evaluation excluded).
    pub seconds: f64,
    /// Seconds spent evaluating the test set after this epoch.
    pub eval_seconds: f64,
    /// Loss and accuracy on the validation set, when there is one (`--val-split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
}

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub epochs: Vec<EpochRecord>,
    /// When the first training step had finished on the device.
    pub first_step_done: Option<Instant>,
}

/// Evaluate `exec` on every example of `ds` (in order) and return loss and accuracy.
pub fn evaluate(
    exec: &mut dyn Executor,
    ds: &Dataset,
    batcher: &Batcher,
    batch: usize,
) -> Result<Stats> {
    let n = ds.shape.len();
    // At most what the executor holds (see `Device::batch_that_fits`).
    let batch = batch.min(exec.max_batch()).min(ds.len()).max(1);
    let mut x = vec![0f32; batch * n];
    let mut y = vec![0u32; batch];
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(batch) {
        let b = chunk.len();
        batcher.fill(ds, chunk, &mut x[..b * n], &mut y[..b]);
        exec.eval_step(&x[..b * n], &y[..b])?;
    }
    exec.take_eval_stats()
}

/// The logits of `exec` for every example of `ds`, in order: `[ds.len(), classes]` row-major.
pub fn logits(
    exec: &mut dyn Executor,
    ds: &Dataset,
    batcher: &Batcher,
    batch: usize,
) -> Result<Vec<f32>> {
    let n = ds.shape.len();
    let batch = batch.min(exec.max_batch()).min(ds.len()).max(1);
    let mut x = vec![0f32; batch * n];
    let mut y = vec![0u32; batch];
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut all = Vec::new();
    for chunk in idx.chunks(batch) {
        let b = chunk.len();
        batcher.fill(ds, chunk, &mut x[..b * n], &mut y[..b]);
        all.extend_from_slice(&exec.logits(&x[..b * n])?);
    }
    Ok(all)
}

/// Predictions (`logits` of every example of `ds`) tallied against the labels.
pub fn confusion(
    logits: &[f32],
    ds: &Dataset,
    class_names: Vec<String>,
) -> crate::metrics::ConfusionMatrix {
    let classes = class_names.len();
    let mut m = crate::metrics::ConfusionMatrix::new(class_names);
    for (z, &t) in logits.chunks_exact(classes).zip(&ds.labels) {
        // argmax, ties to the lowest index (as in the loss kernels)
        let p = (0..classes).fold(0, |best, c| if z[c] > z[best] { c } else { best });
        m.add(t as usize, p);
    }
    m
}

fn progress_bar(
    steps: usize,
    enabled: bool,
    epoch: usize,
    epochs: usize,
) -> indicatif::ProgressBar {
    if !enabled || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(steps as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_message(format!("{epoch}/{epochs}"));
    pb
}

/// Train on `train` for `cfg.epochs` epochs, evaluating on `test` after each and calling `on_epoch`
/// with the epoch's record and the executor (to save a checkpoint, say); an error from it stops training.
pub fn train(
    exec: &mut dyn Executor,
    train: &Dataset,
    test: &Dataset,
    normalization: &Normalization,
    cfg: &TrainConfig,
    on_epoch: impl FnMut(&EpochRecord, &mut dyn Executor) -> Result<()>,
) -> Result<TrainOutcome> {
    train_validated(exec, train, None, test, normalization, cfg, on_epoch)
}

/// [`train`] with an optional validation set, evaluated every epoch (for `--save-best` and early
/// stopping, which never look at the test set).
pub fn train_validated(
    exec: &mut dyn Executor,
    train: &Dataset,
    val: Option<&Dataset>,
    test: &Dataset,
    normalization: &Normalization,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochRecord, &mut dyn Executor) -> Result<()>,
) -> Result<TrainOutcome> {
    if cfg.early_stop.is_some() && val.is_none() {
        return Err(Error::Config(
            "--early-stop needs a validation set: add --val-split (early stopping on the test set would leak it)".into(),
        ));
    }
    let mut best_val = cfg.best_val;
    if cfg.epochs == 0 {
        return Err(Error::Config("--epochs must be at least 1".into()));
    }
    if cfg.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    if cfg.batch_size > train.len() {
        return Err(Error::Config(format!(
            "--batch-size {} is larger than the {} training images; lower it or use more data",
            cfg.batch_size,
            train.len()
        )));
    }
    let batcher = Batcher::new(normalization, train.shape);
    let n = train.shape.len();
    let mut x = vec![0f32; cfg.batch_size * n];
    let mut y = vec![0u32; cfg.batch_size];
    let mut rng = Rng::derive(cfg.seed, 2);
    // Replay the shuffles of the epochs already done, so a resumed run sees the same order.
    for _ in 0..cfg.start_epoch {
        epoch_order(train.len(), &mut rng);
    }
    let mut records = Vec::new();
    let mut first_step_done = None;
    for epoch in cfg.start_epoch + 1..=cfg.epochs {
        if let Some((schedule, base)) = cfg.lr_schedule {
            exec.set_lr(schedule.lr(base, epoch, cfg.epochs));
        }
        let order = epoch_order(train.len(), &mut rng);
        let steps = order.len().div_ceil(cfg.batch_size);
        let bar = progress_bar(steps, cfg.progress, epoch, cfg.epochs);
        let t0 = Instant::now();
        let mut aug_rng = crate::data::augment::Augment::rng(cfg.seed, epoch);
        for (step, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let b = chunk.len();
            match &cfg.augment {
                Some(a) if !a.is_identity() => batcher.fill_augmented(
                    train,
                    chunk,
                    &mut x[..b * n],
                    &mut y[..b],
                    a,
                    &mut aug_rng,
                ),
                _ => batcher.fill(train, chunk, &mut x[..b * n], &mut y[..b]),
            }
            exec.train_step(&x[..b * n], &y[..b])?;
            // Divergence check at the executor's interval (every step on the CPU, every 32 on a GPU);
            // the error names the first checked step at which the loss was NaN or infinite, and no
            // checkpoint of this epoch is written.
            let last = step + 1 == steps;
            if (step + 1) % exec.loss_check_interval() == 0 || last {
                let loss = exec.peek_train_loss()?;
                if !loss.is_finite() {
                    return Err(Error::Diverged {
                        epoch,
                        step: step + 1,
                        loss,
                    });
                }
            }
            if first_step_done.is_none() {
                exec.wait()?;
                first_step_done = Some(Instant::now());
            }
            if step % 16 == 0 {
                bar.set_position(step as u64);
            }
        }
        let stats = exec.take_train_stats()?;
        let seconds = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if !stats.mean_loss().is_finite() {
            return Err(Error::Diverged {
                epoch,
                step: steps,
                loss: stats.mean_loss(),
            });
        }
        let evaluating = cfg.test_every_epoch || epoch == cfg.epochs || val.is_some();
        if let (Some(layout), true) = (&cfg.recalibrate_bn, evaluating) {
            crate::calibrate::recalibrate_bn(exec, layout, train, normalization, cfg.batch_size)?;
        }
        let val_stats = match val {
            Some(v) => Some(evaluate(exec, v, &batcher, cfg.eval_batch_size)?),
            None => None,
        };
        let mut stop = false;
        if let (Some(patience), Some(acc)) = (cfg.early_stop, val_stats.map(|v| v.accuracy())) {
            match best_val {
                Some((best, _)) if acc <= best => {}
                _ => best_val = Some((acc, epoch)),
            }
            if let Some((_, best_epoch)) = best_val {
                stop = epoch - best_epoch >= patience;
            }
        }
        let te = Instant::now();
        let (test_loss, test_accuracy) = if cfg.test_every_epoch || epoch == cfg.epochs || stop {
            let test = evaluate(exec, test, &batcher, cfg.eval_batch_size)?;
            (test.mean_loss(), test.accuracy())
        } else {
            (f64::NAN, f64::NAN)
        };
        let record = EpochRecord {
            epoch,
            train_loss: stats.mean_loss(),
            train_accuracy: stats.accuracy(),
            test_loss,
            test_accuracy,
            images_per_sec: train.len() as f64 / seconds.max(1e-9),
            seconds,
            eval_seconds: te.elapsed().as_secs_f64(),
            val_loss: val_stats.map(|v| v.mean_loss()),
            val_accuracy: val_stats.map(|v| v.accuracy()),
        };
        on_epoch(&record, exec)?;
        records.push(record);
        if stop {
            break;
        }
    }
    Ok(TrainOutcome {
        epochs: records,
        first_step_done,
    })
}

/// Median of a list (mean of the middle two for even lengths); 0 for an empty list.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_pytorch() {
        let step = LrSchedule::parse("step:2:0.5").unwrap();
        let lrs: Vec<f32> = (1..=5).map(|e| step.lr(0.1, e, 5)).collect();
        assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
        let cos = LrSchedule::parse("cosine").unwrap();
        assert_eq!(cos.lr(0.1, 1, 4), 0.1);
        assert!((cos.lr(0.1, 3, 4) - 0.05).abs() < 1e-7);
        assert!(LrSchedule::parse("step:0:0.5").is_err());
        assert!(LrSchedule::parse("linear").is_err());
        assert_eq!(LrSchedule::parse("constant").unwrap().lr(0.3, 9, 10), 0.3);
    }
}

//! `wgtrain train`'s flags, split into the settings that define a run ([`RunArgs`], stored in the
//! training state and restored by `--resume`) and those that may change between a run and its resume
//! (total epochs, device, outputs, logging).

use super::{DataArgs, DeviceArgs, OptimizerArg};
use crate::error::{Error, Result};
use crate::nn::OptimConfig;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything that defines a training run. Serialised (flat, one key per flag) into the training state;
/// `--resume` takes it back and refuses a flag given with another value.
#[derive(Debug, Clone, Args, Serialize, Deserialize, PartialEq)]
pub struct RunArgs {
    /// Preset model.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Custom layer spec instead of a preset, e.g. flatten,fc256,relu,fc10 (overrides --model).
    #[arg(long)]
    pub arch: Option<String>,
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
    /// Training-time augmentation: shift:N (random shifts up to N pixels, zero fill) and/or flip
    /// (mirror left-right half the time), e.g. shift:2,flip. Seeded, and identical on resume.
    #[arg(long)]
    pub augment: Option<String>,
    /// Hold out this fraction of each class's training images as a validation set (evaluated every
    /// epoch; used by --save-best and --early-stop, never the test set).
    #[arg(long)]
    pub val_split: Option<f64>,
    /// Stop when validation accuracy has not improved for N epochs (needs --val-split).
    #[arg(long)]
    pub early_stop: Option<usize>,
    /// Recompute the BatchNorm running statistics over the training set with each epoch's final
    /// weights (batch statistics averaged over the set, as PyTorch's update_bn) before evaluating and
    /// saving. Parameters do not change; costs one forward pass over the training set per epoch.
    #[arg(long)]
    #[serde(default)]
    pub recalibrate_bn: bool,
    /// The number of classes K, when some of 0..K-1 have no training image (without it, every class
    /// must have one: a gap in the labels is an error).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Class names in label order, comma-separated (default: classes.txt beside the data, one name per
    /// line, else the format's own names, else the label numbers).
    #[arg(long)]
    pub class_names: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Total epochs (on --resume: the new total, so a checkpoint of epoch 2 with --epochs 5 trains 3-5).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Write a JSON report of the run to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Save a safetensors checkpoint here after every epoch (atomic write), plus FILE's training
    /// state (optimiser moments, step, the run's settings) as NAME.optim.safetensors for --resume.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Continue a run saved with --save: model, weights, optimiser state and every setting of the run
    /// come from the checkpoint (see "Resuming" below).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Also save the checkpoint of the epoch with the best validation accuracy here (needs --val-split).
    #[arg(long)]
    pub save_best: Option<PathBuf>,
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
    /// The run-defining flags given on the command line (clap ids), filled by [`TrainArgs::note_explicit`];
    /// empty when built in code, so that a resume then takes every setting from the checkpoint.
    #[arg(skip)]
    pub explicit: Vec<String>,
}

impl TrainArgs {
    /// Record which flags the user typed (not defaults), for the resume conflict check.
    pub fn note_explicit(&mut self, m: &ArgMatches) {
        self.explicit = m
            .ids()
            .map(|id| id.as_str().to_string())
            .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
            .collect();
    }

    /// Check the flags outside the run's settings (those are checked by [`RunArgs::validate`] once a
    /// resume has restored them).
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Config("--epochs must be at least 1".into()));
        }
        Ok(())
    }

    /// `--resume`: the stored run with no flag contradicting it. A flag typed with the stored value is
    /// fine; one with another value is an error naming both.
    pub fn restore(&self, stored: &RunArgs, from: &Path) -> Result<RunArgs> {
        let given = serde_json::to_value(&self.run).expect("run settings serialise");
        let saved = serde_json::to_value(stored).expect("run settings serialise");
        for id in &self.explicit {
            let (Some(g), Some(s)) = (given.get(id), saved.get(id)) else {
                continue;
            };
            if g != s {
                let flag = format!("--{}", id.replace('_', "-"));
                return Err(Error::Config(format!(
                    "{flag} {} conflicts with the run being resumed from {} ({flag} {}); drop {flag} to continue that run, or start a new run without --resume",
                    show(g),
                    from.display(),
                    show(s)
                )));
            }
        }
        Ok(stored.clone())
    }
}

/// A stored setting as the user would type it.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(not set)".into(),
        serde_json::Value::Bool(true) => "(given)".into(),
        serde_json::Value::Bool(false) => "(not given)".into(),
        serde_json::Value::String(s) => s.clone(),
        // f32 flags travel as f64: show the f32 the user typed (0.001, not 0.0010000000474974513).
        serde_json::Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if (x as f32) as f64 == x {
                (x as f32).to_string()
            } else {
                x.to_string()
            }
        }
        other => other.to_string(),
    }
}

impl RunArgs {
    /// Check every numeric flag; errors name the flag and the accepted range.
    pub fn validate(&self) -> Result<OptimConfig> {
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
        if self.early_stop.is_some() && self.val_split.is_none() {
            return Err(Error::Config(
                "--early-stop needs a validation set: add --val-split (early stopping on the test set would leak it)".into(),
            ));
        }
        if let Some(k) = self.num_classes {
            if !(2..=256).contains(&k) {
                return Err(Error::Config(format!(
                    "--num-classes {k}: must be between 2 and 256 (labels are bytes)"
                )));
            }
        }
        let mut cfg = match self.optimizer {
            OptimizerArg::Adam => OptimConfig::adam(self.lr),
            OptimizerArg::Sgd => OptimConfig::sgd(self.lr, self.momentum),
        };
        cfg.weight_decay = self.weight_decay;
        Ok(cfg)
    }

    /// `--class-names a,b,c` as a list (empty names refused).
    pub fn class_names(&self) -> Result<Option<Vec<String>>> {
        let Some(s) = &self.class_names else {
            return Ok(None);
        };
        let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
        if names.iter().any(String::is_empty) {
            return Err(Error::Config(format!(
                "--class-names {s}: a name is empty; give one non-empty name per class, comma-separated"
            )));
        }
        Ok(Some(names))
    }
}

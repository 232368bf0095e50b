//! `wgtrain train`: the training command (resume, checkpoints, logs, reports).

use crate::checkpoint::{self, CheckpointMeta};
use crate::cli::*;
use crate::data;
use crate::error::{Error, Result};
use crate::metrics::{write_json, TrainReport};
use crate::models;
use crate::nn::{OptimConfig, OptimizerKind};
use crate::train::{self, median, TrainConfig};
use std::time::Instant;

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
            let params = crate::nn::Weights {
                params: model.init_params(args.seed),
                state: model.init_state(),
            };
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
    optim.seed = seed;
    let mut exec = device.executor_from(&model, &params, optim, cfg.max_batch())?;
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
                    checkpoint::save(path, &model, &exec.params()?, &exec.state()?, &meta)?;
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
                checkpoint::save(path, &model, &exec.params()?, &exec.state()?, &meta)?;
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

//! `wgtrain train`: the training command (resume, checkpoints, logs, reports).

use crate::checkpoint::{self, CheckpointMeta};
use crate::cli::*;
use crate::data;
use crate::error::{Error, Result};
use crate::metrics::{write_json, TrainReport};
use crate::models;
use crate::nn::{OptimConfig, OptimizerKind};
use crate::outputs;
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
    args.validate()?;
    // --resume: the model, weights, optimiser state and the run's settings come from the checkpoint.
    let resumed = match &args.resume {
        Some(path) => {
            let (model, params, meta) = checkpoint::load(path)?;
            let ts = checkpoint::load_training_state(path, model.param_len, meta.epoch)?;
            if meta.epoch >= args.epochs {
                return Err(Error::Config(format!(
                    "--resume {}: already trained {} epoch(s); --epochs is the total, so ask for more than {}",
                    path.display(),
                    meta.epoch,
                    meta.epoch
                )));
            }
            Some((path, model, params, ts))
        }
        None => None,
    };
    let mut run = match &resumed {
        Some((path, _, _, ts)) => restored_run(args, path, ts)?,
        None => args.run.clone(),
    };
    let mut optim = run.validate()?;
    if args.save_best.is_some() && run.val_split.is_none() {
        return Err(Error::Config(
            "--save-best needs a validation set: add --val-split".into(),
        ));
    }
    // Every output is probed before the data is read or a step is taken: a bad path fails now, not
    // after the run.
    let save_path = args.save.clone().or_else(|| args.resume.clone());
    for (path, flag) in [
        (&save_path, "--save"),
        (&args.save_best, "--save-best"),
        (&args.report, "--report"),
    ] {
        if let Some(p) = path {
            outputs::probe_file(p, flag)?;
            if flag != "--report" {
                outputs::probe_file(&checkpoint::state_path(p), flag)?;
            }
        }
    }
    if let Some(d) = &args.log_dir {
        outputs::probe_dir(d, "--log-dir")?;
    }
    let mut data = data::load(
        &run.data.choice()?,
        &data::LoadOptions {
            train_size: run.train_size,
            num_classes: run.num_classes,
            class_names: run.class_names()?,
        },
    )?;
    if let Some(f) = run.val_split {
        data.split_validation(f)?;
    }
    // A run on the default data records which set that was, so that its resume reads the same one.
    if run.data.data.is_none() && data.source.location.starts_with("embedded") {
        run.data.embedded = true;
    }
    let fingerprint = data.fingerprint();
    let (model, params, seed, batch_size, start_epoch, opt_state, best_val) = match resumed {
        Some((path, model, params, ts)) => {
            if model.input != data.train.shape || model.num_classes < data.num_classes {
                return Err(Error::data(
                    path,
                    "was trained on data of another shape or class count than --data gives",
                ));
            }
            if let Some(saved) = ts.data.as_ref().filter(|&s| *s != fingerprint) {
                return Err(Error::Config(format!(
                    "--resume {}: the run trained on {saved}, but the data now reads {fingerprint}; resume with the run's data, or start a new run",
                    path.display()
                )));
            }
            optim = ts.optim;
            (
                model,
                params,
                ts.seed,
                ts.batch_size,
                ts.epoch,
                Some(ts.state),
                ts.best_val,
            )
        }
        None => {
            let model = models::build(
                Some(&run.model),
                run.arch.as_deref(),
                data.train.shape,
                data.num_classes,
            )?;
            let params = crate::nn::Weights {
                params: model.init_params(run.seed),
                state: model.init_state(),
            };
            (model, params, run.seed, run.batch_size, 0, None, None)
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
    if !data.empty_classes.is_empty() {
        info!(
            "note: {} of the {} classes have no training image (allowed by --num-classes)",
            data.empty_classes.len(),
            data.num_classes
        );
    }
    let schedule = train::LrSchedule::parse(&run.lr_schedule)?;
    let augment = match &run.augment {
        Some(a) => Some(data::augment::Augment::parse(a)?),
        None => None,
    };
    let lr_schedule = (schedule != train::LrSchedule::Constant).then_some((schedule, optim.lr));
    if start_epoch > 0 {
        info!(
            "resuming after epoch {start_epoch}: the run's settings come from the checkpoint (seed {seed}, batch size {batch_size}, {})",
            optimizer_label(&optim)
        );
    }
    let recalibrate_bn = if run.recalibrate_bn {
        let layout = crate::calibrate::BnLayout::of(&model);
        if layout.is_none() {
            info!(
                "note: --recalibrate-bn has nothing to do: {} has no BatchNorm layer",
                model.name
            );
        }
        layout
    } else {
        None
    };
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size,
        seed,
        eval_batch_size: batch_size.max(256),
        progress: !args.quiet,
        start_epoch,
        lr_schedule,
        early_stop: run.early_stop,
        best_val,
        augment,
        recalibrate_bn,
        test_every_epoch: true,
    };
    optim.seed = seed;
    let max_batch = device.batch_that_fits(&model, cfg.batch_size, cfg.max_batch());
    let mut exec = device.executor_from(&model, &params, optim, max_batch)?;
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
    // Saved after every epoch, atomically: the training state first, then the weights, so a crash at any
    // moment leaves a loadable pair (or an epoch mismatch that --resume reports).
    let mut log = match &args.log_dir {
        Some(d) => Some(crate::metrics::EpochLog::create(d, start_epoch > 0)?),
        None => None,
    };
    let mut best_epoch = best_val.map_or(0, |(_, e)| e);
    let mut best = best_val.map_or(f64::NEG_INFINITY, |(acc, _)| acc);
    let run_json = serde_json::to_string(&run).expect("run settings serialise");
    let mut save =
        |r: &crate::train::EpochRecord, exec: &mut dyn crate::nn::Executor| -> Result<()> {
            if let Some(log) = log.as_mut() {
                log.append(r)?;
            }
            let meta = CheckpointMeta {
                epoch: r.epoch,
                ..meta.clone()
            };
            let weights = crate::nn::Weights {
                params: exec.params()?,
                state: exec.state()?,
            };
            if let Some(acc) = r.val_accuracy.filter(|&acc| acc > best) {
                best = acc;
                best_epoch = r.epoch;
                if let Some(path) = &args.save_best {
                    save_or_rescue(path, "--save-best", &model, &weights, &meta, None)?;
                }
            }
            if let Some(path) = &save_path {
                let ts = checkpoint::TrainingState {
                    optim,
                    state: exec.optimizer_state()?,
                    seed,
                    batch_size,
                    epoch: r.epoch,
                    run: Some(run_json.clone()),
                    data: Some(fingerprint.clone()),
                    best_val: best.is_finite().then_some((best, best_epoch)),
                };
                save_or_rescue(path, "--save", &model, &weights, &meta, Some(&ts))?;
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

/// The run's settings on `--resume`: those stored in the training state, with no flag on the command
/// line contradicting them. Training states from before the settings were stored give the model,
/// optimiser, seed and batch size only; the rest then comes from the command line, as it used to.
fn restored_run(
    args: &TrainArgs,
    path: &std::path::Path,
    ts: &checkpoint::TrainingState,
) -> Result<RunArgs> {
    match &ts.run {
        Some(json) => {
            let stored: RunArgs = serde_json::from_str(json).map_err(|e| {
                Error::data(
                    &checkpoint::state_path(path),
                    format!("malformed run settings ({e})"),
                )
            })?;
            args.restore(&stored, path)
        }
        None => {
            eprintln!(
                "note: {} predates stored run settings; model, optimiser, seed and batch size come from it, the rest from the command line",
                checkpoint::state_path(path).display()
            );
            Ok(args.run.clone())
        }
    }
}

/// Save `weights` (and the training state `ts`) to `path`. When that fails, the files already there stay
/// as they were (atomic writes; the previous training state is kept), this epoch's files are written
/// under a rescue name, and the error says where, so that no epoch of a long run is lost.
fn save_or_rescue(
    path: &std::path::Path,
    flag: &str,
    model: &crate::nn::Model,
    weights: &crate::nn::Weights,
    meta: &CheckpointMeta,
    ts: Option<&checkpoint::TrainingState>,
) -> Result<()> {
    let write = |p: &std::path::Path| -> Result<()> {
        if let Some(ts) = ts {
            checkpoint::save_training_state(p, ts)?;
        }
        checkpoint::save(p, model, &weights.params, &weights.state, meta)
    };
    let Err(e) = write(path) else {
        return Ok(());
    };
    let tag = format!("epoch{}", meta.epoch);
    let kept = if meta.epoch > 1 {
        format!("{} still holds epoch {}", path.display(), meta.epoch - 1)
    } else {
        "nothing was there yet".to_string()
    };
    let msg = match outputs::rescue(path, &tag, write) {
        Some(r) => format!(
            "{flag} {}: cannot write epoch {}'s checkpoint ({e}); {kept}; epoch {} was written to {} instead{}",
            path.display(),
            meta.epoch,
            meta.epoch,
            r.display(),
            if ts.is_some() {
                format!(" (continue with --resume {})", r.display())
            } else {
                String::new()
            }
        ),
        None => format!(
            "{flag} {}: cannot write epoch {}'s checkpoint ({e}), nor a rescue copy beside it or in the temporary directory; {kept}",
            path.display(),
            meta.epoch
        ),
    };
    Err(Error::Output(msg))
}

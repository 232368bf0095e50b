//! `wgtrain eval`, `wgtrain predict` and `wgtrain export`: using a saved checkpoint.

use crate::checkpoint::{self, CheckpointMeta};
use crate::cli::*;
use crate::data::{self, Batcher};
use crate::error::{Error, Result};
use crate::metrics::{write_json, write_npy};
use crate::models;
use crate::train::{self};
use std::time::Instant;

/// `wgtrain eval`.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    for (path, flag) in [
        (&args.report, "--report"),
        (&args.confusion_png, "--confusion-png"),
        (&args.logits, "--logits"),
    ] {
        if let Some(p) = path {
            crate::outputs::probe_file(p, flag)?;
        }
    }
    let data = data::load(&args.data.choice()?, &Default::default())?;
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
    let mut exec = device.inference_executor(&model, &params, batch)?;
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
    let logits = train::logits(&mut *exec, &data.test, &batcher, batch)?;
    if let Some(path) = &args.logits {
        let rows = data.test.len();
        write_npy(path, &[rows, model.num_classes], &logits)?;
        println!(
            "wrote {} (float32 logits [{rows}, {}], test-set order)",
            path.display(),
            model.num_classes
        );
    }
    let cm = train::confusion(&logits, &data.test, names);
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

/// `wgtrain export`.
pub fn run_export(args: &ExportArgs) -> Result<()> {
    if let Some(dir) = &args.pytorch {
        crate::outputs::probe_dir(dir, "--pytorch")?;
    }
    if let Some(path) = &args.onnx {
        crate::outputs::probe_file(path, "--onnx")?;
    }
    let ex = crate::export::Exportable::load(&args.checkpoint)?;
    if let Some(dir) = &args.pytorch {
        for p in crate::export::pytorch::export(dir, &ex)? {
            println!("wrote {}", p.display());
        }
    }
    if let Some(path) = &args.onnx {
        let bytes = crate::export::onnx::export(path, &ex)?;
        println!(
            "wrote {} ({bytes} bytes, ONNX opset {}; input: float32 [batch, {}, {}, {}] pixels / 255)",
            path.display(),
            crate::export::onnx::OPSET,
            ex.model.input.channels,
            ex.model.input.height,
            ex.model.input.width
        );
    }
    Ok(())
}

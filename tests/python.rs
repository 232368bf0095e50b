//! The independent references in tests/python, run on checkpoints the binary trains:
//! - numpy_reference.py: PyTorch's layer definitions written in numpy (linear, conv, pooling,
//!   BatchNorm in evaluation mode, residual add, global average pooling) against `wgtrain predict`,
//!   for every preset. Needs numpy and safetensors: without them it skips with a printed reason, and
//!   fails when `CI` is set (.ci/run installs them into a venv and sets `WGTRAIN_PYTHON`).
//! - export_check.py: `wgtrain export --pytorch`'s model.py loaded with `strict=True` by PyTorch
//!   itself and compared with `wgtrain predict`; runs where torch imports.
//! - onnx_check.py: `wgtrain export --onnx` through `onnx.checker` (full check) and ONNX Runtime,
//!   logits against `wgtrain eval --logits`, for every preset and a custom spec. Needs onnx and
//!   onnxruntime: skips locally without them (printed), fails when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> String {
    std::env::var("WGTRAIN_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `python -c "import <modules>"` succeeds.
fn imports(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-py-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A checkpoint of `model` trained for one short epoch on the embedded subset.
fn trained(dir: &Path, model: &str) -> PathBuf {
    trained_with(dir, model, &["--model", model])
}

/// A checkpoint trained with `how` (`--model NAME` or `--arch SPEC`), saved as `name`.
fn trained_with(dir: &Path, name: &str, how: &[&str]) -> PathBuf {
    let ckpt = dir.join(format!("{name}.safetensors"));
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .arg("train")
        .args(how)
        .args(["--embedded", "--device", "cpu"])
        .args([
            "--epochs",
            "1",
            "--train-size",
            "640",
            "--seed",
            "3",
            "--save",
        ])
        .arg(&ckpt)
        .output()
        .expect("run wgtrain");
    assert!(
        out.status.success(),
        "train {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ckpt
}

fn run_script(script: &str, args: &[&str], ckpt: &Path) {
    let out = Command::new(python())
        .arg(root().join("tests/python").join(script))
        .arg("--checkpoint")
        .arg(ckpt)
        .args(["--wgtrain", env!("CARGO_BIN_EXE_wgtrain")])
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run python");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{script} {}: {}", ckpt.display(), text.trim());
    assert!(out.status.success(), "{script} {args:?} failed: {text}");
}

/// Skip (locally) or fail (CI) when `modules` do not import.
fn require(modules: &str) -> bool {
    if imports(modules) {
        return true;
    }
    let why = format!(
        "`{} -c 'import {modules}'` fails (pip install {}; or set WGTRAIN_PYTHON)",
        python(),
        modules.replace(',', "")
    );
    assert!(std::env::var_os("CI").is_none(), "CI is set and {why}");
    eprintln!("skipping: {why}");
    false
}

#[test]
fn numpy_reference_agrees_with_predict_for_every_preset() {
    if !require("numpy, safetensors") {
        return;
    }
    let dir = tmpdir("numpy");
    for model in wgtrain::models::PRESETS {
        let ckpt = trained(&dir, model);
        run_script(
            "numpy_reference.py",
            &["--model", model, "--images", "100"],
            &ckpt,
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn exported_pytorch_module_loads_strictly_and_agrees_with_predict() {
    if !imports("numpy, safetensors, torch") {
        eprintln!(
            "skipping: `{} -c 'import torch'` fails (pip install torch to run the PyTorch check)",
            python()
        );
        return;
    }
    let dir = tmpdir("torch");
    for model in ["resnet", "mlp-bn", "lenet5"] {
        let ckpt = trained(&dir, model);
        run_script("export_check.py", &["--images", "100"], &ckpt);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Strides, padding, average and strided max pooling, a bias-free conv before BatchNorm, an identity
/// residual block, dropout and a linear layer on a 1x1 image.
const CUSTOM: &str = "conv5x5x8p2s2,relu,avgpool2,conv3x3x16p1nb,bn,relu,\
    res(conv3x3x16p1,relu,conv3x3x16p1),relu,maxpool3s2,dropout0.2,conv3x3x32,relu,fc10";

#[test]
fn onnx_export_passes_the_checker_and_agrees_with_eval_in_onnxruntime() {
    if !require("numpy, safetensors, onnx, onnxruntime") {
        return;
    }
    let dir = tmpdir("onnx");
    let mut ckpts: Vec<PathBuf> = wgtrain::models::PRESETS
        .iter()
        .map(|m| trained(&dir, m))
        .collect();
    ckpts.push(trained_with(&dir, "custom", &["--arch", CUSTOM]));
    for ckpt in &ckpts {
        run_script("onnx_check.py", &["--images", "1000"], ckpt);
    }
    std::fs::remove_dir_all(&dir).ok();
}
